"""Rankings, the global threshold search and its options (make_plan)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

import mewcp  # noqa: E402
from sirfp_adapter.collector import RedundancyCollector  # noqa: E402
from sirfp_adapter.cost import CostModel  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402
from sirfp_adapter.plan import (  # noqa: E402
    PlanOptions,
    Ranking,
    group_matrix,
    make_plan,
    rank_importance,
    rank_redundancy,
)
from sirfp_adapter.criteria import SIRFP  # noqa: E402
from sirfp_adapter.schedule import SIRFPPruner  # noqa: E402
from tests.sirfp_adapter.pruning_helpers import (  # noqa: E402
    MODELS,
    depthwise,
    attached,
    greedy_fill,
    inputs,
    lite,
    train_passes,
)

pytestmark = pytest.mark.usefixtures("one_thread")

DUPLICATES = [0, 2, 3, 5, 6]  # channel 0 and four exact copies of it


def plant_duplicates(model) -> None:
    """Make channels 2, 3, 5, 6 of backbone.1.0.conv1 / bn1 exact copies of channel 0."""
    block = model.backbone[1][0]
    with torch.no_grad():
        for d in DUPLICATES[1:]:
            block.conv1.weight[d] = block.conv1.weight[0]
            block.bn1.weight[d] = block.bn1.weight[0]
            block.bn1.bias[d] = block.bn1.bias[0]


def setup(model, x=None):
    x = inputs() if x is None else x
    groups = ChannelGroups.build(model, x)
    return groups, CostModel(model, x, groups)


def l1_rankings(model, groups):
    return [rank_importance(attached("l1", model).importance(g)) for g in groups]


def random_rankings(groups, seed=0):
    rng = np.random.default_rng(seed)
    return [rank_importance(rng.random(g.size)) for g in groups]


# ---------------------------------------------------------------------------
# rankings
# ---------------------------------------------------------------------------


def test_rank_redundancy_records_the_peeling_order_and_normalised_scores():
    rng = np.random.default_rng(0)
    a = rng.random((6, 6))
    a = (a + a.T) / 2
    np.fill_diagonal(a, 0.0)
    r = rank_redundancy(a)
    peel = mewcp.ehgp_order(a)
    np.testing.assert_array_equal(r.order, peel.order)
    mean = a.sum() / 30
    raw = np.asarray(peel.scores)[:-1] / np.arange(5, 0, -1) / mean
    np.testing.assert_allclose(r.scores[:-1], np.maximum.accumulate(raw))
    assert r.scores[-1] == np.inf and np.all(np.diff(r.scores) >= 0)
    # scaling the graph (a wider measure range) leaves the scores alone
    np.testing.assert_allclose(rank_redundancy(7.0 * a).scores, r.scores)
    # inactive channels are left out of the graph; order refers to group channels
    active = np.array([True, False, True, True, False, True])
    sub = rank_redundancy(a, active)
    assert set(sub.order) == {0, 2, 3, 5}
    np.testing.assert_array_equal(sub.matrix, a[np.ix_([0, 2, 3, 5], [0, 2, 3, 5])])
    one = rank_redundancy(a, np.eye(6, dtype=bool)[4])
    np.testing.assert_array_equal(one.order, [4])
    assert one.scores.tolist() == [np.inf]


def test_rank_importance_orders_by_ascending_importance():
    r = rank_importance(np.array([3.0, 1.0, 2.0, 2.0]))
    np.testing.assert_array_equal(r.order, [1, 2, 3, 0])
    np.testing.assert_allclose(r.scores, np.array([1.0, 2.0, 2.0, 3.0]) / 2.0)
    assert r.matrix is None
    r = rank_importance(np.array([3.0, 1.0, 2.0, 2.0]), np.array([True, False, True, True]))
    np.testing.assert_array_equal(r.order, [2, 3, 0])
    with pytest.raises(ValueError, match="importance must be finite"):
        rank_importance(np.array([1.0, np.nan]))


@pytest.mark.parametrize(("call", "message"), [
    # a mask of another length used to be taken (a 1-channel ranking of a 4-channel group)
    (lambda: rank_importance(np.ones(4), np.array([True])), "active must be a bool mask of the 4 channels, "
                                                            "got bool of shape (1,)"),
    (lambda: rank_importance(np.ones(4), np.array([0, 2])), "active must be a bool mask of the 4 channels, "
                                                            "got int64 of shape (2,)"),
    (lambda: rank_importance(np.ones(4), np.zeros(4, dtype=bool)), "active must keep at least one channel"),
    (lambda: rank_importance(np.ones((2, 2))), "importance must hold one value per channel (1-D), got shape (2, 2)"),
    (lambda: rank_redundancy(np.ones((4, 3))), "matrix must be a square (C, C) array of edge weights, got shape "
                                               "(4, 3)"),
    (lambda: rank_redundancy(np.ones((4, 4)), np.array([True, False])),
     "active must be a bool mask of the 4 channels, got bool of shape (2,)"),
])
def test_rankings_refuse_a_mask_or_an_array_of_the_wrong_shape(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message
    r = rank_redundancy([[0.0, 1.0], [1.0, 0.0]])  # a nested list is an array
    assert sorted(r.order.tolist()) == [0, 1]


def test_a_custom_importance_of_the_wrong_length_names_the_criterion_and_group():
    from sirfp_adapter.criteria import ImportanceCriterion

    class PerLayer(ImportanceCriterion):
        name = "per_layer"

        def importance(self, group):
            return np.ones(group.size + 1)

    groups, _ = setup(lite())
    group = groups[0]
    with pytest.raises(ValueError) as info:
        PerLayer().rank(group)
    assert str(info.value) == (f"per_layer: importance(group) must return one value per channel of group "
                               f"{group.name!r} (shape ({group.size},)), got shape ({group.size + 1},)")


def test_group_matrix_is_the_mean_of_the_members_matrices():
    groups, _ = setup(lite())
    stream = groups[groups.index("backbone.1.0.shortcut.0")]
    rng = np.random.default_rng(1)
    mats = {n: rng.random((8, 8)) for n in stream.feature_layers}
    np.testing.assert_allclose(group_matrix(stream, mats), np.mean(list(mats.values()), axis=0))
    some = dict(list(mats.items())[:2])
    np.testing.assert_allclose(group_matrix(stream, some), np.mean(list(some.values()), axis=0))
    with pytest.raises(KeyError, match="no redundancy matrix for group 'backbone.1.0.shortcut.0'"):
        group_matrix(stream, {})


@pytest.mark.parametrize("measure", ["js", "gram"])
def test_planted_duplicates_are_ranked_first_in_their_group(measure):
    model = lite()
    plant_duplicates(model)
    groups, _ = setup(model)
    group = groups[groups.index("backbone.1.0.conv1")]
    with RedundancyCollector(model, groups.feature_layers(), measure=measure) as collector:
        train_passes(model, 3)
    ranking = rank_redundancy(group_matrix(group, collector.matrices()))
    assert set(ranking.order[:4]) <= set(DUPLICATES)  # at most one copy survives four removals
    assert ranking.order[4] not in ranking.order[:4]


@pytest.mark.parametrize("measure", ["js", "gram"])
def test_a_plan_for_four_channels_removes_four_planted_duplicates(measure):
    model, x = lite(), inputs()
    plant_duplicates(model)
    # only the planted group is prunable: the plan's choice is the ranking's
    others = [n for n, m in model.named_modules()
              if isinstance(m, torch.nn.Conv2d) and n != "backbone.1.0.conv1"]
    probe = ChannelGroups.build(model, x, ignored_layers=others)
    assert [g.name for g in probe] == ["backbone.1.0.conv1"]
    cost = CostModel(model, x, probe)
    target = 1.0 - cost.params([4]) / cost.params_base + 1e-9
    pruner = SIRFPPruner(model, x, params_reduction=target, interval=3, criterion=SIRFP(measure, budget=None),
                         ignored_layers=others)
    before = model.backbone[1][0].conv1.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # statistics only: the copies stay copies
    plan = None
    for i in range(3):
        loss = model(inputs(10 + i)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        plan = pruner.step() or plan
    assert plan is not None and pruner.done
    removed = plan.remove["backbone.1.0.conv1"]
    assert len(removed) == 4 and set(removed) <= set(DUPLICATES)
    pruner.finalize()
    kept = model.backbone[1][0].conv1.weight.detach()
    assert kept.shape[0] == 4
    copies = [int(torch.equal(k, before[0])) for k in kept]
    assert sum(copies) == 1


# ---------------------------------------------------------------------------
# the threshold search
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", [0.3, 0.6, 0.8])
@pytest.mark.parametrize("metric", ["flops", "params"])
@pytest.mark.parametrize("name", list(MODELS))
def test_plan_never_exceeds_the_target_and_reports_its_prediction(name, metric, target):
    model = MODELS[name]()
    groups, cost = setup(model)
    plan = make_plan(groups, cost, l1_rankings(model, groups), target, metric=metric)
    assert plan.metric == metric and plan.target == target
    assert plan.achieved <= target + 1e-9
    removed = np.array([g.size - plan.keep[g.name] for g in groups])
    assert plan.flops == cost.flops(removed) and plan.params == cost.params(removed)
    assert plan.flops_reduction == pytest.approx(1 - cost.flops(removed) / cost.flops_base, abs=1e-12)
    assert plan.params_reduction == pytest.approx(1 - cost.params(removed) / cost.params_base, abs=1e-12)
    for g in groups:
        n = len(plan.remove.get(g.name, []))
        assert n == g.size - plan.keep[g.name]
        if n:
            assert np.all(np.diff(plan.remove[g.name]) > 0)
    assert plan.summary().startswith(f"target {metric} reduction {target:.1%}: achieved {plan.achieved:.2%}")


def test_global_plan_removes_a_prefix_of_every_ranking_down_to_the_threshold():
    model = lite()
    groups, cost = setup(model)
    rankings = l1_rankings(model, groups)
    plan = make_plan(groups, cost, rankings, 0.5)
    assert np.isfinite(plan.threshold)
    for g, r in zip(groups, rankings, strict=True):
        n = g.size - plan.keep[g.name]
        np.testing.assert_array_equal(plan.remove.get(g.name, np.array([], dtype=int)), np.sort(r.order[:n]))
        # every channel scored at or below the threshold goes, unless the floor keeps it
        floor = max(1, math.ceil(0.1 * g.size))
        assert n >= min(np.searchsorted(r.scores, plan.threshold, side="right"), g.size - floor)


def test_target_zero_removes_nothing():
    model = lite()
    groups, cost = setup(model)
    plan = make_plan(groups, cost, l1_rankings(model, groups), 0.0)
    assert plan.remove == {} and plan.flops_reduction == 0.0
    assert plan.keep == {g.name: g.size for g in groups}


@pytest.mark.parametrize("min_keep", [0.5, 0.75, 3, 12])
def test_min_keep_is_a_per_group_floor(min_keep):
    model = lite()
    groups, cost = setup(model)
    plan = make_plan(groups, cost, l1_rankings(model, groups), 0.9, min_keep=min_keep)
    floors = {g.name: math.ceil(min_keep * g.size) if isinstance(min_keep, float) else min(g.size, min_keep)
              for g in groups}
    assert all(plan.keep[name] >= floor for name, floor in floors.items())
    assert any(plan.keep[name] == floor for name, floor in floors.items())  # the floor binds
    assert plan.achieved <= 0.9
    if plan.achieved < 0.89:
        assert plan.notes[0].startswith(f"target not reached: {plan.achieved:.2%} < 90.0% — "
                                        f"the per-group floor (min_keep={min_keep!r})")
    else:
        assert plan.notes == ()


@pytest.mark.parametrize("mode", ["global", "uniform"])
@pytest.mark.parametrize("target", [0.3, 0.6, 0.8])
def test_round_to_keeps_multiples(target, mode):
    for build in (lite, depthwise):
        model = build()
        groups, cost = setup(model)
        plan = make_plan(groups, cost, l1_rankings(model, groups), target, round_to=4, mode=mode)
        assert plan.achieved <= target + 1e-9
        for g in groups:
            assert plan.keep[g.name] % 4 == 0 or plan.keep[g.name] == g.size
            assert len(plan.remove.get(g.name, [])) == g.size - plan.keep[g.name]
        if build is lite:
            assert plan.flops_reduction > 0.25


@pytest.mark.parametrize("target", [0.3, 0.6, 0.8])
@pytest.mark.parametrize("name", list(MODELS))
def test_uniform_mode_removes_one_ratio_from_every_group(name, target):
    model = MODELS[name]()
    groups, cost = setup(model)
    plan = make_plan(groups, cost, l1_rankings(model, groups), target, mode="uniform")
    assert plan.achieved <= target + 1e-9 and math.isnan(plan.threshold)
    sizes = np.array([g.size for g in groups])
    removed = np.array([g.size - plan.keep[g.name] for g in groups])
    assert removed.sum() > 0
    # removed[g] == floor(r * size[g]) for one ratio r: every lower bound below every upper bound
    assert np.max(removed / sizes) < np.min((removed + 1) / sizes)
    # the next ratio step (one more channel in the groups that reach it first) overshoots
    step = np.min((removed + 1) / sizes)
    nxt = np.floor(step * sizes + 1e-12).astype(int)
    assert 1 - cost.flops(nxt) / cost.flops_base > target


def test_removed_channels_are_counted_and_the_plan_adds_to_them():
    model = lite()
    groups, cost = setup(model)
    first = make_plan(groups, cost, l1_rankings(model, groups), 0.3)
    before = np.array([g.size - first.keep[g.name] for g in groups])
    active = {g.name: np.ones(g.size, dtype=bool) for g in groups}
    for name, idx in first.remove.items():
        active[name][idx] = False
    rankings = [rank_importance(attached("l1", model).importance(g), active[g.name]) for g in groups]
    second = make_plan(groups, cost, rankings, 0.6, removed=before)
    assert first.flops_reduction < second.flops_reduction <= 0.6
    for g in groups:
        extra = second.remove.get(g.name, np.array([], dtype=int))
        assert not set(extra) & set(first.remove.get(g.name, []))
        assert second.keep[g.name] == g.size - before[groups.index(g.name)] - len(extra)
    with pytest.raises(ValueError, match="each ranking must cover exactly the channels its group still has"):
        make_plan(groups, cost, l1_rankings(model, groups), 0.6, removed=before)


def test_targets_are_reachable_within_one_percent_with_the_same_rankings():
    """The certificate behind the test below: following each group's removal
    order and the floors, a greedy fill lands within 0.1% of every target."""
    for build in MODELS.values():
        model = build()
        groups, cost = setup(model)
        sizes = np.array([g.size for g in groups])
        rankings = random_rankings(groups)
        for target in (0.3, 0.6, 0.8):
            n = greedy_fill(cost, rankings, target, sizes)
            achieved = 1 - cost.flops(n) / cost.flops_base
            assert target - 0.001 <= achieved <= target


@pytest.mark.parametrize("name", list(MODELS))
def test_global_plan_is_within_one_percent_of_reachable_targets(name):
    model = MODELS[name]()
    groups, cost = setup(model)
    rankings = random_rankings(groups)
    for target in (0.3, 0.6, 0.8):
        plan = make_plan(groups, cost, rankings, target)
        assert target - 0.01 <= plan.flops_reduction <= target + 1e-9


# ---------------------------------------------------------------------------
# other MEWCP methods
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["tabu", "local_search"])
def test_other_methods_keep_at_least_ehgps_clique_weight(method):
    model = lite()
    groups, cost = setup(model)
    with RedundancyCollector(model, groups.feature_layers(), measure="js") as collector:
        train_passes(model, 2)
    mats = collector.matrices()
    rankings = [rank_redundancy(group_matrix(g, mats)) for g in groups]
    ehgp = make_plan(groups, cost, rankings, 0.6)
    other = make_plan(groups, cost, rankings, 0.6, method=method, method_options={"seed": 0})
    assert other.keep == ehgp.keep and other.flops == ehgp.flops
    for g, r in zip(groups, rankings, strict=True):
        if g.name not in ehgp.remove:
            assert g.name not in other.remove
            continue
        kept_e = np.setdiff1d(np.arange(g.size), ehgp.remove[g.name])
        kept_o = np.setdiff1d(np.arange(g.size), other.remove[g.name])
        assert kept_o.size == kept_e.size
        w_e, w_o = mewcp.objective(r.matrix, kept_e), mewcp.objective(r.matrix, kept_o)
        assert w_o >= w_e - 1e-9
        direct = r.matrix[np.ix_(kept_o, kept_o)]
        assert w_o == pytest.approx((direct.sum() - np.trace(direct)) / 2)


# ---------------------------------------------------------------------------
# option errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target": 1.0}, r"the reduction target must be a number in \[0, 1\), got 1.0"),
        ({"target": -0.1}, r"the reduction target must be a number in \[0, 1\), got -0.1"),
        ({"target": "0.5"}, r"the reduction target must be a number in \[0, 1\), got '0.5'"),
        ({"metric": "latency"}, "metric must be 'flops' or 'params', got 'latency'"),
        ({"mode": "layerwise"}, "mode must be 'global' or 'uniform', got 'layerwise'"),
        ({"min_keep": 0}, r"min_keep must be a fraction in \[0, 1\] or a channel count >= 1, got 0"),
        ({"min_keep": 1.5}, r"min_keep must be a fraction in \[0, 1\] or a channel count >= 1, got 1.5"),
        ({"min_keep": True}, r"min_keep must be a fraction in \[0, 1\] or a channel count >= 1, got True"),
        ({"round_to": 0}, "round_to must be an integer >= 1, got 0"),
        ({"round_to": 2.0}, "round_to must be an integer >= 1, got 2.0"),
        ({"round_to": True}, "round_to must be an integer >= 1, got True"),
    ],
)
def test_make_plan_option_errors(kwargs, match):
    model = lite()
    groups, cost = setup(model)
    rankings = l1_rankings(model, groups)
    kwargs = {"target": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_plan(groups, cost, rankings, **kwargs)


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"bogus": 1}, TypeError, "method_options: unknown option 'bogus' for method 'tabu'; its options are: start, "
                              "tenure, max_stall, strength, patience, max_iters, target"),
    ({"time_limit": -1}, ValueError, "method_options: time_limit must be a positive, finite number of seconds; "
                                     "got -1"),
    ({"time_limit": "a"}, TypeError, "method_options: time_limit must be a number of seconds or None; got str"),
    ({"seed": -2}, ValueError, "method_options: seed must be a non-negative integer or None; got -2"),
    ({"size": "at_most"}, ValueError, "method_options must not set ['size']: the plan sets them"),
])
def test_plan_options_check_method_options_up_front(options, error, message):
    """These used to pass the constructor and fail at the first pruning step, after the
    training before it, or (``size``) let the solver keep fewer channels than planned."""
    with pytest.raises(error) as info:
        PlanOptions(method="tabu", method_options=options)
    assert str(info.value) == message
    assert PlanOptions(method="tabu", method_options={"time_limit": 1.0, "seed": 3, "tenure": 2}).method == "tabu"


def test_make_plan_needs_one_ranking_per_group():
    model = lite()
    groups, cost = setup(model)
    with pytest.raises(ValueError, match=re.escape("rankings must hold one Ranking per group (18), got 17")):
        make_plan(groups, cost, l1_rankings(model, groups)[:-1], 0.5)
    bad = l1_rankings(model, groups)
    bad[0] = Ranking(bad[0].order[:-1], bad[0].scores[:-1])
    with pytest.raises(ValueError, match="each ranking must cover exactly the channels its group still has"):
        make_plan(groups, cost, bad, 0.5)


class _ConcatDepthwise(torch.nn.Module):
    """DeepLabV3+'s decoder pattern: two branches concatenated into a depthwise conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8))
        self.b = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4))
        self.dw = torch.nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.pw = torch.nn.Sequential(torch.nn.Conv2d(12, 6, 1), torch.nn.BatchNorm2d(6), torch.nn.ReLU())
        self.classifier = torch.nn.Conv2d(6, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pw(self.dw(torch.cat([self.a(x), self.b(x)], dim=1))))


def test_a_branch_of_a_concatenation_is_never_emptied():
    from sirfp_adapter.apply import prune_channels
    from sirfp_adapter.cost import CostModel, count_flops
    from sirfp_adapter.groups import ChannelGroups
    from sirfp_adapter.plan import Ranking, make_plan

    model, x = _ConcatDepthwise(), torch.randn(2, 3, 16, 16)
    groups = ChannelGroups.build(model, x)
    concat = next(g for g in groups if g.size == 12)
    assert any(np.any(m.index < 0) for m in concat.producers)  # each branch carries part of the group
    cost = CostModel(model, x, groups)
    # rankings that list branch b's channels (8..11) first in the concatenated group
    rankings = []
    for g in groups:
        order = np.r_[8:12, 0:8] if g is concat else np.arange(g.size)
        rankings.append(Ranking(order, np.linspace(0.0, 1.0, g.size)))
    plan = make_plan(groups, cost, rankings, 0.9, min_keep=0.1)
    prune_channels(groups, plan.remove)
    assert model.b[0].out_channels >= 1 and model.a[0].out_channels >= 1
    assert model(x).shape == (2, 3, 16, 16)
    assert 1 - count_flops(model, x) / cost.flops_base <= 0.9 + 1e-9


def test_exact_cost_counts_the_channels_each_branch_of_a_concatenation_loses():
    from sirfp_adapter.apply import prune_channels
    from sirfp_adapter.cost import CostModel, count_flops, count_params
    from sirfp_adapter.groups import ChannelGroups

    model, x = _ConcatDepthwise(), torch.randn(2, 3, 16, 16)
    groups = ChannelGroups.build(model, x)
    cost = CostModel(model, x, groups)
    assert not cost.counts_determine_cost
    # all three removed channels come from branch b (group channels 8..11), not evenly
    removed = [np.array([8, 9, 10]) if g.size == 12 else np.zeros(0, dtype=np.int64) for g in groups]
    predicted = cost.for_channels(removed)
    prune_channels(groups, {g.name: r for g, r in zip(groups, removed) if r.size})
    assert predicted == (count_flops(model, x), count_params(model))



class _FlattenHead(torch.nn.Module):
    """A map flattened straight into a linear layer: one channel feeds H·W = 16 of its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.b = torch.nn.Sequential(torch.nn.Conv2d(8, 12, 3, 4, 1, bias=False), torch.nn.BatchNorm2d(12), torch.nn.ReLU())
        self.fc = torch.nn.Linear(12 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.b(self.a(x)).flatten(1))


def test_the_cost_of_a_map_flattened_into_a_linear_layer_counts_every_position():
    from sirfp_adapter.apply import prune_channels
    from sirfp_adapter.cost import count_flops, count_params

    model, x = _FlattenHead(), torch.randn(1, 3, 16, 16)
    groups = ChannelGroups.build(model, x)
    cost = CostModel(model, x, groups)
    assert {m.name: m.fan for g in groups for m in g.consumers}["fc"] == 16
    removed = np.array([3 if g.name == "a.0" else 10 for g in groups])
    predicted = (cost.flops(removed), cost.params(removed))
    prune_channels(groups, {g.name: np.arange(r) for g, r in zip(groups, removed, strict=True)})
    assert model.fc.in_features == 2 * 16
    assert predicted == (count_flops(model, x), count_params(model))


def test_range_normalisation_ignores_a_measure_offset_and_mean_does_not():
    from sirfp_adapter.plan import rank_redundancy

    rng = np.random.default_rng(3)
    w = rng.uniform(0.0, 0.5, (9, 9))
    w = np.triu(w, 1) + np.triu(w, 1).T
    low, high = rank_redundancy(w + 0.1, calibration="range"), rank_redundancy(w + 5.0, calibration="range")
    assert np.array_equal(low.order[:-2], high.order[:-2])  # the last two always tie
    np.testing.assert_allclose(low.scores, high.scores, rtol=1e-9)
    assert not np.allclose(rank_redundancy(w + 0.1).scores[:-1], rank_redundancy(w + 5.0).scores[:-1])
    flat = rank_redundancy(np.full((4, 4), 0.3), calibration="range")  # nothing tells channels apart
    assert np.all(flat.scores[:-1] == 1.0) and np.isinf(flat.scores[-1])
    with pytest.raises(ValueError, match=r"calibration must be one of \('mean', 'range', 'none'\), got 'z'"):
        rank_redundancy(w, calibration="z")
