"""The measured budget: output distortion against a direct computation, planted cases."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from sirfp_adapter import prune_once  # noqa: E402
from sirfp_adapter.apply import ChannelMasks  # noqa: E402
from sirfp_adapter.criteria import L1, SIRFP, Random, Sensitivity  # noqa: E402
from sirfp_adapter.criteria.sensitivity import hull_rates, output_logits  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402
from tests.sirfp_adapter.pruning_helpers import inputs, lite, train_passes  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


class TwoBranches(nn.Module):
    """Two parallel 8-channel branches summed into the head; branch ``b`` is scaled by
    ``weight_b``, so its channels move the output ``weight_b`` times less."""

    def __init__(self, weight_b: float = 1e-3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head_a = nn.Conv2d(8, 4, 1)
        self.head_b = nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            self.head_b.weight.mul_(weight_b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_a(self.a(x)) + self.head_b(self.b(x))


def attached_sensitivity(model, x, **options):
    groups = ChannelGroups.build(model, x)
    crit = Sensitivity(**options).attach(model, groups)
    model.train()
    with torch.no_grad():
        model(x)
    return crit, groups


def kl(ref_logits, logits) -> float:
    ref, logp = F.log_softmax(ref_logits, 1), F.log_softmax(logits, 1)
    return float((ref.exp() * (ref - logp)).sum(1).mean())


def test_budget_scores_are_the_measured_kl_of_removing_each_prefix():
    model, x = TwoBranches(weight_b=1.0), inputs(batch=4, size=16)
    crit, groups = attached_sensitivity(model, x, samples=4, points=8, allocation="level")
    group = groups[groups.index("a.0")]
    order = np.array([5, 2, 7, 0, 1, 3, 4, 6])
    scores = crit.budget_scores(group, order)
    assert model.training  # the mode is restored
    model.eval()
    with torch.no_grad():
        ref = model(x)
        expected = []
        for t in range(1, 8):  # points=8 over 1..7 (a group is never emptied): every count measured,
            # then made non-decreasing
            masks = ChannelMasks(model, groups)
            masks.remove_channels({"a.0": order[:t]})
            expected.append(kl(ref, model(x)))
            masks.remove()
    np.testing.assert_allclose(scores[:7], np.maximum.accumulate(expected), rtol=1e-5, atol=1e-9)
    assert scores[7] == scores[6]  # the last removal is never measured (it would empty the group)
    assert np.all(np.diff(scores) >= 0)


def test_the_budget_takes_channels_from_the_group_that_moves_the_output_least():
    model, x = TwoBranches(weight_b=1e-3), inputs(batch=4, size=16)
    crit, groups = attached_sensitivity(model, x)
    a, b = groups[groups.index("a.0")], groups[groups.index("b.0")]
    order = np.arange(8)
    assert crit.budget_scores(b, order)[3] < 1e-3 * crit.budget_scores(a, order)[3]
    from sirfp_adapter.cost import CostModel
    from sirfp_adapter.plan import make_plan

    plan = make_plan(groups, CostModel(model, x, groups), [crit.rank(g) for g in groups], 0.4)
    assert plan.keep["a.0"] == 8 and plan.keep["b.0"] < 8  # the same cost per channel: b pays


def test_interpolates_between_measured_counts_and_scores_zero_for_irrelevant_channels():
    model, x = TwoBranches(weight_b=1.0), inputs(batch=2, size=16)
    with torch.no_grad():  # channels 0..3 of branch a are dead: exactly zero after BN and ReLU
        model.a[1].weight[:4] = 0.0
        model.a[1].bias[:4] = 0.0
    crit, groups = attached_sensitivity(model, x, points=2, allocation="level")
    group = groups[groups.index("a.0")]
    scores = crit.budget_scores(group, np.arange(8))  # measured at 4 and 7 removals
    np.testing.assert_allclose(scores[:4], 0.0, atol=1e-12)
    np.testing.assert_allclose(scores[4:7], np.interp([5, 6, 7], [4, 7], [0.0, scores[6]]), rtol=1e-12)


def test_records_the_latest_training_inputs_up_to_samples_and_only_in_training():
    model, x = TwoBranches(), inputs(batch=3, size=16)
    groups = ChannelGroups.build(model, x)
    crit = Sensitivity(samples=4).attach(model, groups)
    with pytest.raises(RuntimeError, match="sensitivity: no inputs recorded yet: run forward passes before pruning"):
        crit.check_ready()
    model.eval()
    with torch.no_grad():
        model(x)
    assert crit._inputs == []  # eval passes are not training data
    model.train()
    batches = [inputs(seed=s, batch=3, size=16) for s in range(3)]
    with torch.no_grad():
        for b in batches:
            model(b)
    recorded = [b[0] for b in crit._inputs]
    assert len(recorded) == 2 and torch.equal(recorded[-1], batches[2]) and torch.equal(recorded[0], batches[1])
    crit.close()
    with torch.no_grad():
        model(x)
    assert torch.equal(crit._inputs[-1][0], batches[2])  # closed: nothing more recorded


def test_a_recorded_input_with_a_non_finite_output_is_named_not_planned_around():
    """A model whose output is NaN (a NaN training batch poisons BatchNorm's running
    statistics; a diverged weight) made every distortion NaN: the plan then removed
    nothing, and its note blamed min_keep and round_to."""
    model, x = TwoBranches(), inputs(batch=3, size=16)
    groups = ChannelGroups.build(model, x)
    crit = Sensitivity(samples=6).attach(model, groups)
    model.train()
    with torch.no_grad():
        for b in (inputs(1, batch=3, size=16), torch.full_like(x, float("nan")), inputs(2, batch=3, size=16)):
            model(b)
    with pytest.raises(RuntimeError) as info:
        crit.rank(groups[0])
    assert str(info.value) == ("sensitivity: the unpruned model's output is not finite (NaN or inf) on recorded "
                               "input batch(es) [1, 2] of 2: the distortion of a removal cannot be measured; check "
                               "the weights and the inputs")
    assert model.training and not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules()
                                      if m is not model)
    crit.close()


def test_state_round_trip_and_option_errors():
    model, x = TwoBranches(), inputs(batch=2, size=16)
    crit, groups = attached_sensitivity(model, x, order=Random(seed=2))
    twin = Sensitivity(order=Random(seed=2)).attach(model, groups)
    twin.load_state_dict(crit.state_dict())
    for g in groups:
        np.testing.assert_array_equal(twin.rank(g).scores, crit.rank(g).scores)
    with pytest.raises(ValueError, match="sensitivity: state must be a mapping with keys 'inputs' and 'order'"):
        twin.load_state_dict({"inputs": []})
    with pytest.raises(ValueError, match="samples must be a positive integer, got 0"):
        Sensitivity(samples=0)
    with pytest.raises(ValueError, match="points must be a positive integer, got True"):
        Sensitivity(points=True)
    with pytest.raises(ValueError, match="allocation must be 'per_flop' or 'level', got 'flops'"):
        Sensitivity(allocation="flops")
    with pytest.raises(ValueError, match="order must be a Criterion other than Sensitivity"):
        Sensitivity(order=Sensitivity())
    with pytest.raises(ValueError, match="budget must be a Criterion other than SIRFP"):
        SIRFP(budget=SIRFP())


def test_output_logits_reads_torchvision_dicts_and_tuples_and_names_what_it_needs():
    t = torch.zeros(2, 3, 4, 4)
    assert output_logits({"out": t, "aux": t + 1}) is t
    assert output_logits((t, 1)) is t
    with pytest.raises(ValueError, match=r"logits of shape \(B, classes, \.\.\.\), got Tensor\(5,\)"):
        output_logits(torch.zeros(5))


def test_as_sirfp_budget_its_forward_passes_do_not_feed_the_redundancy_graph():
    model, x = lite(), inputs()
    groups = ChannelGroups.build(model, x)
    sirfp = SIRFP("js", budget=Sensitivity(samples=2, points=2)).attach(model, groups)
    train_passes(model, 2)
    updates = sirfp.collector.updates()
    matrices = sirfp.collector.matrices()
    rankings = [sirfp.rank(g) for g in groups]
    assert sirfp.collector.updates() == updates
    for name, m in sirfp.collector.matrices().items():
        np.testing.assert_array_equal(m, matrices[name])
    for g, r in zip(groups, rankings, strict=True):  # EHGP's order, the measured shares
        np.testing.assert_array_equal(r.order, sirfp._choice(g, None).order)
        assert np.all(np.diff(r.scores[np.isfinite(r.scores)]) >= 0)
    sirfp.close()
    assert isinstance(Sensitivity().order, L1)


class SharedInPlace(nn.Module):
    """Torchvision's bottleneck habits: one ``ReLU(inplace=True)`` called three times, an
    in-place residual addition onto a norm's output, a dict output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.conv1, self.bn1 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.relu(self.stem(x))
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return {"out": self.head(self.relu(out))}


def direct_scores(model, groups, group, order, x) -> np.ndarray:
    """The budget computed from its definition: one fresh masked forward per count."""
    model.eval()
    with torch.no_grad():
        ref = output_logits(model(x))
        most = min(order.size, group.size - 1)
        counts = np.unique(np.linspace(0, most, 9).round().astype(np.int64)[1:])
        expected = []
        for t in counts:
            masks = ChannelMasks(model, groups)
            masks.remove_channels({group.name: order[:t]})
            expected.append(kl(ref, output_logits(model(x))))
            masks.remove()
    model.train()
    return np.maximum.accumulate(np.interp(np.arange(1, order.size + 1), np.r_[0, counts], np.r_[0.0, expected]))


@pytest.mark.parametrize("build", [TwoBranches, SharedInPlace, lite], ids=["branches", "in-place", "lite"])
def test_replayed_prefixes_give_the_direct_scores_of_every_group(build):
    model, x = build(), inputs(batch=4, size=16)
    crit, groups = attached_sensitivity(model, x, allocation="level")
    for group in groups:  # in order: later groups also replay the earlier group's stored calls
        order = np.random.default_rng(len(group.name)).permutation(group.size)
        np.testing.assert_allclose(crit.budget_scores(group, order), direct_scores(model, groups, group, order, x),
                                   rtol=1e-5, atol=1e-9)
    assert crit.replay  # never switched off


def test_the_replay_skips_the_calls_before_the_group():
    model, x = TwoBranches(weight_b=1.0), inputs(batch=4, size=16)
    crit, groups = attached_sensitivity(model, x, points=8, allocation="level")
    runs = {"a": 0}
    original = model.a.forward

    def counted(*args):
        runs["a"] += 1
        return original(*args)

    model.a.forward = counted  # branch a runs before branch b: b's measurements need it once
    crit.budget_scores(groups[groups.index("b.0")], np.arange(8))
    assert runs["a"] == 1 + 1 + 1  # the dense reference, the first count (stored), one check of the replay
    runs["a"] = 0
    crit.replay = False
    crit.budget_scores(groups[groups.index("b.0")], np.arange(8))
    assert runs["a"] == 7  # one per measured count (the reference is cached)


class Unsteady(nn.Module):
    """After ``arm()``, its next pass calls the stem's ReLU once more: the pass the calls
    are recorded on differs from the next ones."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Conv2d(8, 4, 1)
        self.extra = 0

    def arm(self) -> None:
        self.extra = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        for _ in range(self.extra):
            y = self.stem[2](y)
        self.extra = 0
        return self.head(self.block(y))


def test_a_model_whose_calls_change_is_measured_in_full_passes_with_a_warning():
    model, x = Unsteady(), inputs(batch=2, size=16)
    crit, groups = attached_sensitivity(model, x, allocation="level")
    group = groups[groups.index("block.0")]
    model.arm()
    with pytest.warns(RuntimeWarning, match="sensitivity: replaying the unchanged calls is switched off for this "
                                            "model \\(the pass did not make the recorded sequence of calls\\)"):
        scores = crit.budget_scores(group, np.arange(8))
    assert not crit.replay
    np.testing.assert_allclose(scores, direct_scores(model, groups, group, np.arange(8), x), rtol=1e-5, atol=1e-9)


def test_the_stored_prefix_is_capped_in_bytes_over_its_copies():
    from sirfp_adapter.replay import PrefixReplay

    model, x = lite(), inputs(batch=2, size=16)
    replay = PrefixReplay(model)
    model.eval()
    with torch.no_grad():
        replay.record(x)
    last = max(replay.calls, key=lambda c: c.start).name  # a layer late in the pass
    full = replay.prefix({last})
    size = sum(c.nbytes for c in full)
    assert full and all(c.end < replay.first({last}) for c in full)
    replay.max_bytes = 3 * size
    assert replay.prefix({last}, copies=3) == full
    capped = replay.prefix({last}, copies=4)
    assert capped and sum(c.nbytes for c in capped) <= 3 * size / 4 and set(capped) < set(full)


def test_hull_rates_price_every_removal_on_the_lower_convex_hull():
    rng = np.random.default_rng(3)
    for _ in range(200):
        a = int(rng.integers(2, 30))
        saved = np.r_[0.0, np.cumsum(rng.uniform(0.0, 2.0, a))]  # flat steps too (nothing saved)
        counts = np.unique(rng.integers(1, a + 1, int(rng.integers(1, 8))))
        measured = np.maximum.accumulate(rng.uniform(0.0, 1.0, counts.size))
        rates = hull_rates(saved, counts, measured)
        assert rates.shape == (a,) and np.all(np.diff(rates) >= 0)
        finite = np.isfinite(rates)
        assert np.all(finite | (np.diff(saved) == 0))
        # the price paid up to each measured count never exceeds the distortion measured
        # there, and equals it at the last (the hull's end point)
        paid = np.r_[0.0, np.cumsum(np.where(finite, rates, 0.0) * np.diff(saved))]
        assert np.all(paid[counts] <= measured + 1e-9)
        assert paid[counts[-1]] == pytest.approx(measured[-1], abs=1e-9)



def test_hull_rates_without_a_measured_count_price_everything_infinite():
    assert hull_rates(np.array([0.0]), np.zeros(0, dtype=np.int64), np.zeros(0)).shape == (0,)
    assert np.all(np.isinf(hull_rates(np.array([0.0, 1.0]), np.zeros(0, dtype=np.int64), np.zeros(0))))


@pytest.mark.parametrize("allocation", ["per_flop", "level"])
def test_a_one_channel_group_is_kept_and_the_rest_still_planned(allocation):
    """A layer of one channel (nothing to measure: it is never emptied) beside prunable ones."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1), nn.BatchNorm2d(1), nn.ReLU(),
                          nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))
    x = torch.randn(2, 3, 16, 16)
    plan = prune_once(model, x, [x, x], flops_reduction=0.3,
                      criterion=SIRFP(budget=Sensitivity(allocation=allocation)))
    assert plan.keep["0"] == 1 and plan.keep["3"] < 8


class TwinBranches(nn.Module):
    """Two branches that compute the same function: ``b``'s 5×5 kernels are ``a``'s 3×3
    kernels zero-padded, so a channel of ``b`` moves the output exactly as much as the same
    channel of ``a`` and saves (3·25 + 4) / (3·9 + 4) = 79/31 times the FLOPs (its kernel
    and its share of the 1×1 head)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.BatchNorm2d(8), nn.ReLU())
        self.head_a, self.head_b = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            self.b[0].weight.zero_()
            self.b[0].weight[:, :, 1:4, 1:4] = self.a[0].weight
            self.b[0].bias.copy_(self.a[0].bias)
            self.head_b.load_state_dict(self.head_a.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_a(self.a(x)) + self.head_b(self.b(x))


def test_per_flop_takes_the_same_damage_where_it_saves_the_most_flops():
    from sirfp_adapter.cost import CostModel
    from sirfp_adapter.plan import make_plan

    keep = {}
    for allocation in ("level", "per_flop"):
        model, x = TwinBranches(), inputs(batch=4, size=16)
        crit, groups = attached_sensitivity(model, x, allocation=allocation)
        order = np.arange(8)
        a, b = (crit.budget_scores(groups[groups.index(n)], order) for n in ("a.0", "b.0"))
        if allocation == "level":
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)  # the same damage
        else:
            np.testing.assert_allclose(b, a * 31 / 79, rtol=1e-4, atol=1e-12)  # for 79/31 the FLOPs
        plan = make_plan(groups, CostModel(model, x, groups), [crit.rank(g) for g in groups], 0.3)
        keep[allocation] = plan.keep["a.0"], plan.keep["b.0"]
    assert abs(keep["level"][0] - keep["level"][1]) <= 1
    assert keep["per_flop"][1] < keep["per_flop"][0]


def test_per_flop_prices_are_distortion_over_flops_counted_on_the_pruned_model():
    import copy

    from sirfp_adapter.apply import prune_channels
    from sirfp_adapter.cost import count_flops

    model, x = TwoBranches(weight_b=1.0), inputs(batch=4, size=16)
    crit, groups = attached_sensitivity(model, x, allocation="per_flop", points=4)
    group, order = groups[groups.index("a.0")], np.array([3, 1, 7, 0, 2, 6, 5, 4])
    got = crit.budget_scores(group, order)
    counts = np.unique(np.linspace(0, 7, 5).round().astype(np.int64)[1:])
    model.eval()
    with torch.no_grad():  # the distortion at each measured count, from masks
        ref, measured = model(x), []
        for t in counts:
            masks = ChannelMasks(model, groups)
            masks.remove_channels({"a.0": order[:t]})
            measured.append(kl(ref, model(x)))
            masks.remove()
    model.train()
    base = count_flops(model, x[:1])
    saved = [0.0]
    for t in range(1, 9):
        twin = copy.deepcopy(model)
        twin_groups = ChannelGroups.build(twin, x)
        if t < 8:
            prune_channels(twin_groups, {"a.0": order[:t]})
            saved.append(base - count_flops(twin, x[:1]))
        else:
            saved.append(saved[-1] + (saved[-1] - saved[-2]))  # the last channel is never removed
    np.testing.assert_allclose(got, hull_rates(np.array(saved), counts, np.maximum.accumulate(measured)), rtol=1e-4)


@pytest.mark.parametrize("samples", [1, 3, 16])
@pytest.mark.parametrize("points", [1, 2, 8])
def test_fitted_sizes_fit_the_cap_within_the_floor_and_never_grow(samples, points):
    from sirfp_adapter.criteria.sensitivity import MIN_POINTS, fitted_sizes

    for groups in (1, 5, 44, 300):
        for cap in (1, 7, 48, 100, 960, 3840, 10**6):
            s, p = fitted_sizes(samples, points, groups, cap)
            assert 1 <= s <= samples and 1 <= p <= points
            if groups * points * samples <= cap:
                assert (s, p) == (samples, points)  # what fits is left alone
                continue
            floor = groups * min(points, MIN_POINTS)
            if floor <= cap:
                assert groups * p * s <= cap
                assert p >= min(points, MIN_POINTS)
                # nothing larger fits: one more point or one more sample would exceed the cap
                assert (p == points or groups * (p + 1) * s > cap) and (s == samples or groups * p * (s + 1) > cap)
            else:  # the floor itself is over the cap
                assert (s, p) == (1, min(points, MIN_POINTS))
    assert fitted_sizes(samples, points, 44, None) == (samples, points)


def test_fitted_sizes_keep_the_ratio_of_samples_to_points():
    from sirfp_adapter.criteria.sensitivity import fitted_sizes

    assert fitted_sizes(16, 8, 44, 3840) == (14, 6)  # deeplabv3_resnet50, sirfp prune's defaults
    assert fitted_sizes(16, 8, 44, 48) == (1, 2)  # ... pruned every 2 iterations of 2 images: the floor
    assert fitted_sizes(16, 8, 19, 3840) == (16, 8)  # the built-in model at the defaults: unchanged


def test_max_passes_bounds_the_measuring_passes_of_a_step():
    model, x = lite(), inputs(batch=4, size=32)
    groups = ChannelGroups.build(model, x)
    cap = 3 * len(groups)
    crit = Sensitivity(samples=16, points=8, replay=False, allocation="level",  # level: no cost-model trace
                       max_passes=cap).attach(model, groups)
    assert (crit.samples, crit.points) == (16, 8) and crit.sizes == (1, 3)  # asked, and fitted at attach
    assert "max_passes=" + str(cap) in repr(crit)
    model.train()
    with torch.no_grad():
        model(x)
        model(x)
    images = []
    handle = model.register_forward_pre_hook(lambda m, args: images.append(args[0].shape[0]))
    try:
        for group in groups:
            crit.budget_scores(group, np.arange(group.size))
    finally:
        handle.remove()
    assert images[0] == 1  # the reference pass: one recorded sample (of the last batch of 4)
    assert sum(images[1:]) <= cap and len(images) - 1 == sum(
        min(3, g.size - 1) for g in groups)  # 3 counts per group on one sample (fewer for tiny groups)


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_max_passes_must_be_a_positive_int(value):
    with pytest.raises(ValueError, match=f"max_passes must be a positive integer, got {value!r}"):
        Sensitivity(max_passes=value)


def _plan_on(rank: int) -> dict[str, list[int]]:
    """One pruning step of ``lite`` under the measured budget, on rank ``rank``'s own inputs:
    drawn from their own seed, and rank 1's with their right half blanked, so that the two
    ranks' distortions differ (inputs of one distribution can give the same plan)."""
    from sirfp_adapter import SIRFPPruner

    model = lite(0)
    pruner = SIRFPPruner(model, inputs(0), flops_reduction=0.5,
                         criterion=Sensitivity(L1(), samples=2, points=2))
    model.train()
    with torch.no_grad():
        for i in range(2):
            x = inputs(100 * rank + 1 + i)
            if rank == 1:
                x[..., x.shape[-1] // 2:] = 0.0
            model(x)
    plan = pruner.prune_step()
    pruner.close()
    return {name: sorted(int(c) for c in channels) for name, channels in plan.remove.items()}


def _budget_rank_main(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import json
    import os

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        plan = _plan_on(rank)
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(plan, f)
    finally:
        torch.distributed.destroy_process_group()


def test_every_rank_plans_the_same_budget_from_its_own_inputs():
    """Under torch.distributed each rank records its own training inputs; the budget uses
    the distortion averaged over the ranks, so every rank masks the same channels (else
    the physically pruned models differ and DDP cannot wrap them again)."""
    import json
    import os
    import tempfile

    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    alone = [_plan_on(r) for r in range(2)]
    assert alone[0] != alone[1], "the ranks' inputs must lead to different single-process plans"
    with tempfile.TemporaryDirectory() as tmp:
        torch.multiprocessing.spawn(_budget_rank_main, args=(2, os.path.join(tmp, "init"), tmp), nprocs=2, join=True)
        got = [json.load(open(os.path.join(tmp, f"rank{r}.json"))) for r in range(2)]
    assert got[0] == got[1]
