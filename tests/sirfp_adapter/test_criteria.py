"""The criteria: baselines against their definitions, the registry, SIRFP variants."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from sirfp_adapter import measures  # noqa: E402
from sirfp_adapter.criteria import (  # noqa: E402
    CRITERIA,
    DCFP,
    L1,
    SIRFP,
    BNScale,
    ImportanceCriterion,
    Random,
    ReleasedSIRFP,
    Taylor,
    get_criterion,
)
from sirfp_adapter.groups import ChannelGroups  # noqa: E402
from sirfp_adapter.plan import group_matrix, rank_redundancy  # noqa: E402
from tests.sirfp_adapter.pruning_helpers import (  # noqa: E402
    NoNormNet,
    attached,
    depthwise,
    inputs,
    lite,
    prune_with,
    train_passes,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# ---------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------


def filters(module) -> np.ndarray:
    w = module.weight.detach().double().numpy()
    return w.reshape(w.shape[0], -1)


@pytest.fixture
def lite_groups():
    model = lite()
    with torch.no_grad():  # distinct, known norm parameters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(-1.0, 1.0)
                m.bias.uniform_(-1.0, 1.0)
    return model, ChannelGroups.build(model, inputs())


def test_l1_importance_sums_the_filter_norms_of_the_producing_convolutions(lite_groups):
    model, groups = lite_groups
    modules = dict(model.named_modules())
    g = groups[groups.index("backbone.1.0.conv1")]
    np.testing.assert_allclose(attached("l1", model).importance(g),
                               np.abs(filters(model.backbone[1][0].conv1)).sum(axis=1), rtol=1e-12)
    stream = groups[groups.index("backbone.1.0.shortcut.0")]
    convs = ["backbone.1.0.shortcut.0", "backbone.1.0.conv2", "backbone.1.1.conv2"]
    expected = sum(np.abs(filters(modules[n])).sum(axis=1) for n in convs)
    np.testing.assert_allclose(attached("l1", model).importance(stream), expected, rtol=1e-12)
    dw_model = depthwise()
    dw_group = ChannelGroups.build(dw_model, inputs())[0]
    expected = np.abs(filters(dw_model.stem)).sum(axis=1) + np.abs(filters(dw_model.dw)).sum(axis=1)
    np.testing.assert_allclose(attached("l1", dw_model).importance(dw_group), expected, rtol=1e-12)


def test_bn_scale_importance_is_the_mean_absolute_gamma(lite_groups):
    model, groups = lite_groups
    modules = dict(model.named_modules())
    stream = groups[groups.index("backbone.2.0.shortcut.0")]
    gammas = np.stack([np.abs(modules[n].weight.detach().double().numpy()) for n in stream.feature_layers])
    assert gammas.shape == (7, 16)
    np.testing.assert_allclose(attached("bn_scale", model).importance(stream), gammas.mean(axis=0), rtol=1e-12)


def test_fpgm_importance_sums_pairwise_filter_distances(lite_groups):
    model, groups = lite_groups
    modules = dict(model.named_modules())
    stream = groups[groups.index("backbone.1.0.shortcut.0")]
    expected = np.zeros(8)
    for n in ["backbone.1.0.shortcut.0", "backbone.1.0.conv2", "backbone.1.1.conv2"]:
        f = filters(modules[n])
        for i in range(8):
            expected[i] += sum(np.linalg.norm(f[i] - f[j]) for j in range(8))
    np.testing.assert_allclose(attached("fpgm", model).importance(stream), expected, rtol=1e-9)


def test_taylor_importance_accumulates_squared_first_order_terms(lite_groups):
    model, groups = lite_groups
    modules = dict(model.named_modules())
    acc = Taylor().attach(model, groups)
    norms = groups.feature_layers()
    rng = np.random.default_rng(3)
    grads = [{n: (rng.normal(size=modules[n].num_features), rng.normal(size=modules[n].num_features))
              for n in norms} for _ in range(2)]
    skipped = "backbone.1.0.bn1"  # no gradient on the second step: skipped there
    for step, g in enumerate(grads):
        for n in norms:
            gw, gb = g[n]
            missing = step == 1 and n == skipped
            modules[n].weight.grad = None if missing else torch.tensor(gw, dtype=torch.float32)
            modules[n].bias.grad = None if missing else torch.tensor(gb, dtype=torch.float32)
        acc.observe()
    assert acc.steps == 2
    values = acc.values()
    assert set(values) == set(norms)

    def term(n, step):
        w = modules[n].weight.detach().double().numpy()
        b = modules[n].bias.detach().double().numpy()
        gw, gb = (np.asarray(v, dtype=np.float32).astype(np.float64) for v in grads[step][n])
        return (w * gw + b * gb) ** 2

    for n in norms:
        expected = term(n, 0) + (0 if n == skipped else term(n, 1))
        np.testing.assert_allclose(values[n], expected, rtol=1e-5)
    stream = groups[groups.index("backbone.2.0.shortcut.0")]
    np.testing.assert_allclose(acc.importance(stream), sum(values[n] for n in stream.feature_layers), rtol=1e-12)
    fresh = Taylor().attach(model, groups)
    with pytest.raises(RuntimeError, match=re.escape("taylor: no gradients observed yet: call observe() "
                                                     "after loss.backward()")):
        fresh.check_ready()
    with pytest.raises(ValueError, match="taylor: no accumulated values for group 'backbone.2.0.shortcut.0'"):
        fresh.importance(stream)


def test_taylor_accumulator_matches_a_real_backward_pass():
    model, x = lite(), inputs()
    groups = ChannelGroups.build(model, x)
    acc = Taylor().attach(model, groups)
    model.train()
    model(x).square().mean().backward()
    acc.observe()
    bn = model.backbone[3][1].bn1
    expected = (bn.weight * bn.weight.grad + bn.bias * bn.bias.grad).double().square().detach().numpy()
    np.testing.assert_allclose(acc.values()["backbone.3.1.bn1"], expected, rtol=1e-12)


def test_random_importance_and_unknown_kinds(lite_groups):
    model, groups = lite_groups
    g = groups[0]
    a = Random(seed=5).attach(model, groups).importance(g)
    np.testing.assert_array_equal(a, Random(seed=5).attach(model, groups).importance(g))
    assert a.shape == (g.size,) and np.all((0 <= a) & (a < 1))
    assert tuple(CRITERIA) == ("sirfp", "sirfp-paper", "sirfp-released", "random", "l1", "bn_scale", "fpgm",
                               "taylor", "dcfp", "group_norm", "sensitivity")
    with pytest.raises(ValueError, match=re.escape(f"criterion must be a Criterion or one of {tuple(CRITERIA)}, "
                                                   f"got 'hrank'")):
        get_criterion("hrank")




def test_groups_without_norm_layers_are_measured_at_their_convolution():
    model = NoNormNet()
    groups = ChannelGroups.build(model, inputs())
    assert [(g.name, g.feature_layers) for g in groups] == [("a", ("a",)), ("b", ("b",))]
    for kind in ("l1", "fpgm"):
        assert attached(kind, model).importance(groups[0]).shape == (6,)
    pruner, plan = prune_with(model, 0.3, criterion="l1")
    assert plan.flops_reduction <= 0.3


def test_bn_scale_refuses_groups_without_a_norm_layer():
    model = NoNormNet()
    groups = ChannelGroups.build(model, inputs())
    with pytest.raises(ValueError, match="bn_scale: group 'a' has no affine normalisation layer"):
        attached("bn_scale", model).importance(groups[0])


def test_taylor_accumulator_survives_groups_without_a_norm_layer():
    model, x = NoNormNet(), inputs()
    groups = ChannelGroups.build(model, x)
    acc = Taylor().attach(model, groups)
    model(x).square().mean().backward()
    acc.observe()
    assert all(v.shape == (6,) for v in acc.values().values())




# ---------------------------------------------------------------------------
# the registry and the contract
# ---------------------------------------------------------------------------


def test_registry_is_read_only_and_instances_pass_through():
    with pytest.raises(TypeError):
        CRITERIA["mine"] = Random  # type: ignore[index]
    crit = Random(seed=1)
    assert get_criterion(crit) is crit
    with pytest.raises(TypeError, match=r"options \['seed'\] go to the criterion's constructor"):
        get_criterion(crit, seed=2)
    assert all(name == cls.name for name, cls in CRITERIA.items())


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Random(seed=-1), "seed must be a non-negative integer, got -1"),
        (lambda: DCFP(decay=1.0), r"decay must be a number in \[0, 1\), got 1.0"),
        (lambda: SIRFP(calibration="max"), r"calibration must be one of \('mean', 'range', 'none'\), got 'max'"),
        (lambda: SIRFP(decay=1.5), r"decay must be a number in \[0, 1\); got 1.5"),
        (lambda: SIRFP(every=0), "every must be a positive integer; got 0"),
        (lambda: SIRFP(start="late"), r"start must be one of \('mean', 'first', 'zero'\); got 'late'"),
        (lambda: SIRFP(min_positions=0), "min_positions must be a positive integer, got 0"),
        (lambda: SIRFP(fallback=SIRFP()), "fallback must be a Criterion that does not watch activations"),
        (lambda: ReleasedSIRFP(prior_weight=float("nan")), "prior_weight must be a finite number, got nan"),
    ],
)
def test_each_criterion_validates_its_options_in_its_constructor(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_a_criterion_is_attached_once_and_says_when_it_is_not():
    model = lite()
    crit = BNScale()
    with pytest.raises(RuntimeError, match=r"BNScale\(\) is not attached to a model"):
        crit.importance(ChannelGroups.build(model, inputs())[0])
    crit.attach(model, ChannelGroups.build(model, inputs()))
    with pytest.raises(RuntimeError, match="already attached"):
        crit.attach(model, ChannelGroups.build(model, inputs()))
    with pytest.raises(ValueError, match="bn_scale: this criterion keeps no state"):
        crit.load_state_dict({"x": 1})


def test_a_custom_importance_criterion_in_a_few_lines():
    class Widest(ImportanceCriterion):
        name = "widest"

        def importance(self, group):
            return np.arange(group.size, dtype=float)  # keep the last channels

    model = lite()
    pruner, plan = prune_with(model, 0.3, criterion=Widest())
    for name, removed in plan.remove.items():
        kept = plan.keep[name]
        assert removed.tolist() == list(range(removed.size)) and kept >= 1


# ---------------------------------------------------------------------------
# gradient criteria, DepGraph, the released code's score
# ---------------------------------------------------------------------------


def test_dcfp_is_a_running_mean_then_an_ema_of_gamma_times_its_gradient(lite_groups):
    model, groups = lite_groups
    bn = model.backbone[1][0].bn1
    crit = DCFP(decay=0.5).attach(model, groups)
    seen = []
    for step in range(4):
        bn.weight.grad = torch.full_like(bn.weight, float(step + 1))
        crit.observe()
        seen.append((bn.weight.detach().double() * (step + 1)).abs().numpy())
    # rate max(1 - decay, 1/n): 1, 1/2, then 1/2, 1/2
    expected = seen[0]
    for n, term in enumerate(seen[1:], start=2):
        rate = max(0.5, 1.0 / n)
        expected = (1 - rate) * expected + rate * term
    np.testing.assert_allclose(crit.values()["backbone.1.0.bn1"], expected, rtol=1e-12)


def test_group_norm_is_torch_prunings_group_magnitude_importance(lite_groups):
    model, groups = lite_groups
    crit = attached("group_norm", model)
    g = groups[groups.index("backbone.1.0.conv1")]
    modules = dict(model.named_modules())
    # DepGraph's group norm: per channel, the mean over the group's members of the squared
    # L2 norm of the weights coupled with it (filters, BN scale, the consumer's input slices)
    parts = [np.square(filters(modules["backbone.1.0.conv1"])).sum(1),
             np.square(modules["backbone.1.0.bn1"].weight.detach().double().numpy()),
             np.square(modules["backbone.1.0.conv2"].weight.detach().double().numpy()).sum((0, 2, 3))]
    value = crit.importance(g)
    assert value.shape == (g.size,)
    np.testing.assert_allclose(value / value.mean(), np.mean(parts, 0) / np.mean(parts, 0).mean(), rtol=1e-5)


def test_bn_scale_equals_torch_prunings_bn_scale_importance(lite_groups):
    import torch_pruning as tp

    model, groups = lite_groups
    for i, g in enumerate(groups):
        theirs = tp.importance.BNScaleImportance(group_reduction="mean", normalizer=None)(groups.tp_group(i))
        np.testing.assert_allclose(attached("bn_scale", model).importance(g), theirs.double().numpy(), rtol=1e-6)


def test_released_score_adds_the_gradient_prior_to_raw_ehgp_scores():
    model, x = lite(), inputs()
    groups = ChannelGroups.build(model, x)
    crit = ReleasedSIRFP(prior_weight=0.4).attach(model, groups)
    model.train()
    model(x).square().mean().backward()
    crit.observe()
    g = groups[groups.index("backbone.1.0.conv1")]
    collector = crit.collector
    # zero start, decay 0.999: the first update is 0.001 of the batch's weights
    np.testing.assert_allclose(collector.matrices()["backbone.1.0.bn1"] / 0.001,
                               1.0 - measures.gram(collector_input(model, x, "backbone.1.0.bn1")).double().numpy(),
                               rtol=1e-4, atol=1e-6)
    ranking = crit.rank(g)
    raw = rank_redundancy(group_matrix(g, collector.matrices()), None, "none")
    prior = 0.001 * model.backbone[1][0].bn1.weight.grad.abs().double().numpy()
    np.testing.assert_array_equal(ranking.order, raw.order)
    np.testing.assert_allclose(ranking.scores, np.maximum.accumulate(raw.scores + 0.4 * prior[raw.order]))
    state = crit.state_dict()
    twin = ReleasedSIRFP(prior_weight=0.4).attach(lite(), ChannelGroups.build(lite(), x))
    twin.load_state_dict(state)
    np.testing.assert_allclose(twin.rank(g).scores, ranking.scores)
    crit.close()


def collector_input(model, x, name):
    """The output of module ``name`` on ``x`` (train mode)."""
    out = {}
    handle = dict(model.named_modules())[name].register_forward_hook(lambda m, i, o: out.setdefault("y", o.detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    return out["y"]


# ---------------------------------------------------------------------------
# SIRFP: tiny maps
# ---------------------------------------------------------------------------


def test_groups_with_maps_too_small_for_spatial_information_use_the_fallback_and_say_so():
    model, x = lite(), inputs()
    groups = ChannelGroups.build(model, x)
    crit = SIRFP("js", min_positions=4, budget=None).attach(model, groups)
    train_passes(model, 2)
    pool = groups[groups.index("aspp.pool.1.0")]  # the image-pool branch: 1×1 maps
    assert crit.collector.positions()["aspp.pool.1.1"] == 1
    with pytest.warns(UserWarning, match=r"^sirfp: 1 group with maps of fewer than 4 positions, which carry "
                      r"no spatial information, ranked by L1\(\): 'aspp.pool.1.0'$"):
        ranking = crit.rank(pool)
    expected = attached("l1", model).rank(pool)
    np.testing.assert_array_equal(ranking.order, expected.order)
    assert crit.fallback_groups == ["aspp.pool.1.0"]
    other = groups[groups.index("backbone.1.0.conv1")]
    assert crit.rank(other).matrix is not None
    crit.close()


class TwoPools(nn.Module):
    """A stem and two image-pool branches (1×1 maps), concatenated into a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.pools = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 6, 1), nn.BatchNorm2d(6),
                                                 nn.ReLU()) for _ in range(2))
        self.head = nn.Conv2d(8 + 12, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        pooled = [p(y).expand(-1, -1, *y.shape[2:]) for p in self.pools]
        return self.head(torch.cat([y, *pooled], 1))


def test_every_group_with_maps_too_small_is_named_in_one_warning():
    model, x = TwoPools(), inputs()
    groups = ChannelGroups.build(model, x)
    crit = SIRFP("js", min_positions=4, budget=None).attach(model, groups)
    train_passes(model, 2)
    with pytest.warns(UserWarning) as caught:
        rankings = [crit.rank(g) for g in groups]
    small = [str(w.message) for w in caught if "fewer than 4 positions" in str(w.message)]
    assert small == ["sirfp: 2 groups with maps of fewer than 4 positions, which carry no spatial information, "
                     "ranked by L1(): 'pools.0.1', 'pools.1.1'"]
    assert crit.fallback_groups == ["pools.0.1", "pools.1.1"]
    assert [r.matrix is None for r in rankings] == [g.name != "stem.0" for g in groups]
    crit.close()


# ---------------------------------------------------------------------------
# SIRFP with a budget criterion: redundancy picks the channels, the budget the counts
# ---------------------------------------------------------------------------


def _plan_keep(criterion, model, target=0.6):
    from sirfp_adapter.cost import CostModel
    from sirfp_adapter.plan import make_plan

    groups = criterion.groups
    cost = CostModel(model, inputs(), groups)
    return make_plan(groups, cost, [criterion.rank(g) for g in groups], target)


def test_a_budget_decides_the_counts_and_redundancy_the_channels():
    model = lite()
    groups = ChannelGroups.build(model, inputs())
    sirfp = SIRFP("js", budget=L1()).attach(model, groups)
    train_passes(model, 2)
    l1 = attached("l1", model)
    with_budget, alone = _plan_keep(sirfp, model), _plan_keep(l1, model)
    assert with_budget.keep == alone.keep  # the same counts as the budget criterion alone
    for g in groups:  # ... and the channels are a prefix of EHGP's removal order
        if g.name in with_budget.remove:
            order = sirfp._choice(g, None).order
            n = len(with_budget.remove[g.name])
            assert sorted(with_budget.remove[g.name]) == sorted(order[:n])
    sirfp.close()


def test_no_redundancy_level_can_empty_a_full_resolution_layer_under_a_budget():
    """A planted stem whose channels all look redundant (a large additive offset in its
    graph, as the Gram measure gives full-resolution maps) is cut to the floor when
    raw scores compare groups, and keeps its budget's count under the recommended setup."""
    model = lite()
    groups = ChannelGroups.build(model, inputs())
    stem = groups[0]
    assert stem.name == "backbone.0.0"  # full resolution, the stem
    planted = np.full((stem.size, stem.size), 1e-3) + 1e-4 * np.random.default_rng(0).random((stem.size,) * 2)
    planted = (planted + planted.T) / 2

    def keep(criterion):
        criterion.attach(model, groups)
        train_passes(model, 2)
        layer = stem.feature_layers[0]
        criterion.collector._ema[layer] = torch.as_tensor(planted, dtype=torch.float32)
        plan = _plan_keep(criterion, model)
        criterion.close()
        return plan.keep[stem.name]

    floor = math.ceil(0.1 * stem.size)
    assert keep(SIRFP("js", calibration="none", budget=None)) == floor
    budget = keep(SIRFP("js", budget=L1()))
    assert budget == _plan_keep(attached("l1", model), model).keep[stem.name] > floor


def test_sirfp_with_a_gradient_budget_needs_gradients_and_round_trips_its_state(tmp_path):
    model, x = lite(), inputs()
    crit = SIRFP("gram", budget=Taylor())
    assert crit.needs_gradients and not SIRFP("gram").needs_gradients
    assert ReleasedSIRFP().needs_gradients
    groups = ChannelGroups.build(model, x)
    crit.attach(model, groups)
    model.train()
    model(x).square().mean().backward()
    crit.observe()
    state = crit.state_dict()
    twin = SIRFP("gram", budget=Taylor()).attach(lite(), ChannelGroups.build(lite(), x))
    twin.load_state_dict(state)
    for g in groups:
        np.testing.assert_array_equal(twin.rank(g).order, crit.rank(g).order)
    with pytest.raises(ValueError, match="sirfp: the state was saved with a budget criterion, this criterion has none"):
        SIRFP("gram", budget=None).attach(lite(), ChannelGroups.build(lite(), x)).load_state_dict(state)
    crit.close()
    twin.close()


def test_the_documented_custom_criterion_prunes():
    """The ~20-line example of docs/adapter.md ("A criterion of your own"), verbatim."""

    class OutputVariance(ImportanceCriterion):
        name = "output_variance"
        watches_activations = True

        def _attach(self, training_only):
            self.sums, self._hooks = {}, []
            for layer in self.groups.feature_layers():
                module = self.model.get_submodule(layer)
                self._hooks.append(module.register_forward_hook(self._hook(layer)))

        def _hook(self, layer):
            def hook(module, inputs, out):
                v = out.detach().double().var(dim=(0, 2, 3)).cpu()
                self.sums[layer] = self.sums.get(layer, 0) + v
            return hook

        def importance(self, group):
            return np.sum([self.sums[m.name].numpy()[m.index] for m in group.features], axis=0)

        def close(self):
            for h in self._hooks:
                h.remove()

    model = lite()
    pruner, plan = prune_with(model, 0.5, criterion=OutputVariance())
    assert 0.49 <= plan.flops_reduction <= 0.5
    pruner.finalize()
    assert not any(m._forward_hooks for m in model.modules())
