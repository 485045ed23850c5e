"""Masks, hard pruning, the progressive pruner, saving and loading, baselines."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from sirfp_adapter.apply import ChannelMasks, load_pruned, prune_channels, save_pruned  # noqa: E402
from sirfp_adapter.cost import count_flops, count_params  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402
from sirfp_adapter.importance import BASELINES, TaylorAccumulator, group_importance  # noqa: E402
from sirfp_adapter.schedule import CRITERIA, SIRFPPruner  # noqa: E402
from tests.sirfp_adapter.pruning_helpers import (  # noqa: E402
    MODELS,
    depthwise,
    inputs,
    lite,
    resnet,
    train_passes,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TARGETS = [0.3, 0.6, 0.8]


def train(model, pruner, iterations, *, lr=0.05, momentum=0.9, weight_decay=1e-2, seed=100):
    """A few SGD steps on a regression to zero, ``pruner.step()`` after each; returns the plans."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    plans = []
    for i in range(iterations):
        loss = model(inputs(seed + i)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if pruner is not None and (plan := pruner.step()) is not None:
            plans.append(plan)
    return plans


def prune_with(model, target, *, criterion="sirfp", metric="flops", **options):
    """One-step pruner, collection passes, the step; returns (pruner, plan)."""
    x = inputs()
    pruner = SIRFPPruner(model, x, **{f"{metric}_reduction": target}, interval=2, criterion=criterion,
                         **options)
    if criterion == "taylor":
        plans = train(model, pruner, 2)
    else:
        train_passes(model, 2)
        plans = [p for p in (pruner.step(), pruner.step()) if p is not None]
    assert len(plans) == 1 and pruner.done
    return pruner, plans[0]


# ---------------------------------------------------------------------------
# masks and hard pruning
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(MODELS))
def test_masked_model_equals_hard_pruned_model(name, target):
    model, x = MODELS[name](), inputs()
    shape = model.eval()(x).shape
    pruner = SIRFPPruner(model, x, flops_reduction=target, interval=2, measure="js")
    plans = train(model, pruner, 4)  # collect, prune at iteration 2, fine-tune masked for 2 more
    assert len(plans) == 1
    model.eval()
    with torch.no_grad():
        masked = model(x)
    pruner.finalize()
    with torch.no_grad():
        pruned = model(x)
    assert pruned.shape == shape and torch.isfinite(pruned).all()
    torch.testing.assert_close(pruned, masked, atol=1e-5, rtol=1e-5)
    # the plan's prediction is what the pruned model costs
    assert count_flops(model, x) == plans[0].flops and count_params(model) == plans[0].params
    # no hooks left, the smaller model trains with a new optimizer, and its groups rebuild
    assert not any(m._forward_hooks for m in model.modules())
    train(model, None, 2)
    assert torch.isfinite(model.eval()(x)).all()
    rebuilt = ChannelGroups.build(model, x)
    assert {g.name: g.size for g in rebuilt} == plans[0].keep


def test_masked_channels_stay_zero_through_sgd_with_momentum_and_weight_decay():
    model, x = lite(), inputs()
    pruner = SIRFPPruner(model, x, flops_reduction=0.5, interval=2)
    train(model, pruner, 2)
    assert pruner.done
    watched = ["backbone.1.0.bn1", "backbone.2.1.bn2", "backbone.2.0.shortcut.1", "aspp.pool.1.1", "head.1"]
    dead: dict[str, np.ndarray] = {}
    for g in pruner.groups:
        for m in g.producers:
            if m.name in watched:
                dead[m.name] = m.index[~pruner.masks.active[g.name]]
    assert set(dead) == set(watched) and all(len(d) for d in dead.values())
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in watched}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda mod, i, out, n=n: seen[n].append(out.detach().clone()))
               for n in watched]
    before = model.backbone[1][0].bn1.weight.detach().clone()
    train(model, None, 5, lr=0.1)
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    for n in watched:
        assert len(seen[n]) == 6
        for out in seen[n]:
            assert torch.count_nonzero(out[:, dead[n]]) == 0
            alive = np.setdiff1d(np.arange(out.shape[1]), dead[n])
            assert torch.count_nonzero(out[:, alive]) > 0
    # the optimizer still moves the masked channels' parameters: only their outputs are zero
    d = dead["backbone.1.0.bn1"]
    assert not torch.equal(model.backbone[1][0].bn1.weight.detach()[d], before[d])


def test_channel_masks_bookkeeping_and_errors():
    model, x = lite(), inputs()
    groups = ChannelGroups.build(model, x)
    masks = ChannelMasks(model, groups)
    assert masks.removed().tolist() == [0] * len(groups)
    masks.remove_channels({"backbone.1.0.conv1": [1, 3]})
    masks.remove_channels({"backbone.1.0.conv1": [3, 4], "head.0": [0]})
    removed = masks.removed()
    assert removed[groups.index("backbone.1.0.conv1")] == 3 and removed[groups.index("head.0")] == 1
    state = masks.state_dict()
    other = ChannelMasks(model, groups)
    other.load_state_dict(state)
    assert other.removed().tolist() == removed.tolist()
    other.remove()
    with pytest.raises(KeyError, match="no prunable group has root layer 'classifier'"):
        masks.remove_channels({"classifier": [0]})
    with pytest.raises(ValueError, match="cannot mask every channel of group 'head.0'"):
        masks.remove_channels({"head.0": range(8)})
    assert masks.removed().tolist() == removed.tolist()  # a refused call changes nothing
    bad = {"active": {k: v for k, v in state["active"].items() if k != "head.0"}}
    with pytest.raises(ValueError, match="the saved masks belong to other groups"):
        masks.load_state_dict(bad)
    short = {"active": {**state["active"], "head.0": torch.ones(3, dtype=torch.bool)}}
    with pytest.raises(ValueError, match="mask of group 'head.0' has 3 channels, the group 8"):
        masks.load_state_dict(short)
    model.eval()
    with torch.no_grad():
        y_masked = model(x)
    masks.remove()
    with torch.no_grad():
        y_live = model(x)
    assert not torch.allclose(y_masked, y_live)
    assert not any(m._forward_hooks for m in model.modules())


def test_depthwise_model_masks_equal_hard_pruning():
    model, x = depthwise(), inputs()
    groups = ChannelGroups.build(model, x)
    masks = ChannelMasks(model, groups)
    masks.remove_channels({groups[0].name: [1, 5, 6], groups[1].name: [0, 7, 8, 11]})
    model.eval()
    with torch.no_grad():
        masked = model(x)
    masks.prune()
    assert (model.dw.in_channels, model.dw.out_channels, model.dw.groups) == (5, 5, 5)
    assert (model.pw.out_channels, model.conv.in_channels, model.classifier.in_channels) == (8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), masked, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------
# FLOPs and parameter targets, end to end
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("criterion", ["sirfp", "l1"])
@pytest.mark.parametrize("name", list(MODELS))
def test_flops_target_is_met_within_one_percent(name, criterion, target):
    model, x = MODELS[name](), inputs()
    base = count_flops(model, x)
    pruner, plan = prune_with(model, target, criterion=criterion)
    pruner.finalize()
    achieved = 1 - count_flops(model, x) / base
    assert achieved == pytest.approx(plan.flops_reduction, abs=1e-12)
    assert target - 0.01 <= achieved <= target + 1e-9
    assert pruner.report() == {"flops": float(count_flops(model, x)), "params": float(count_params(model))}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(MODELS))
def test_uniform_mode_never_exceeds_the_target(name, target):
    model, x = MODELS[name](), inputs()
    base = count_flops(model, x)
    pruner, plan = prune_with(model, target, criterion="l1", mode="uniform")
    pruner.finalize()
    achieved = 1 - count_flops(model, x) / base
    assert achieved == pytest.approx(plan.flops_reduction, abs=1e-12)
    assert target - 0.05 <= achieved <= target + 1e-9


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(MODELS))
def test_params_target(name, target):
    model, x = MODELS[name](), inputs()
    base = count_params(model)
    pruner, plan = prune_with(model, target, metric="params")
    assert plan.metric == "params" and plan.achieved == plan.params_reduction
    pruner.finalize()
    achieved = 1 - count_params(model) / base
    assert achieved == pytest.approx(plan.params_reduction, abs=1e-12)
    assert target - 0.01 <= achieved <= target + 1e-9


def test_min_keep_and_round_to_reach_the_pruned_model():
    model, x = lite(), inputs()
    sizes = {g.name: g.size for g in ChannelGroups.build(model, x)}
    pruner, plan = prune_with(model, 0.8, min_keep=0.5, round_to=4)
    pruner.finalize()
    kept = {g.name: g.size for g in ChannelGroups.build(model, x)}
    assert kept == plan.keep
    for name, size in sizes.items():
        assert kept[name] >= math.ceil(0.5 * size)
        assert kept[name] % 4 == 0 or kept[name] == size


@pytest.mark.parametrize("criterion", [c for c in CRITERIA if c not in ("sirfp", "l1")])
def test_every_baseline_runs_through_the_pruner(criterion):
    model, x = resnet(), inputs()
    base = count_flops(model, x)
    pruner = SIRFPPruner(model, x, flops_reduction=0.5, interval=2, criterion=criterion)
    plans = train(model, pruner, 2)  # SGD moves the BatchNorm scales off their initial 1.0
    assert len(plans) == 1
    plan = plans[0]
    pruner.finalize()
    achieved = 1 - count_flops(model, x) / base
    assert achieved == pytest.approx(plan.flops_reduction, abs=1e-12)
    assert 0.45 <= achieved <= 0.5 + 1e-9
    assert torch.isfinite(model(x)).all()


# ---------------------------------------------------------------------------
# residual groups
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", [0.6, 0.8])
def test_lite_residual_streams_are_pruned_consistently(target):
    model = lite()
    pruner, _ = prune_with(model, target)
    pruner.finalize()
    bb = model.backbone
    widths = []
    for s in (1, 2, 3, 4):
        stage = bb[s]
        outs = {blk.bn2.num_features for blk in stage} | {blk.conv2.out_channels for blk in stage}
        outs |= {blk.shortcut[1].num_features for blk in stage if isinstance(blk.shortcut, nn.Sequential)}
        assert len(outs) == 1
        width = outs.pop()
        readers = [blk.conv1.in_channels for blk in stage[1:]]
        if s < 4:
            readers.append(bb[s + 1][0].conv1.in_channels)
        else:
            readers += [b[0].in_channels for b in model.aspp.branches]
        assert set(readers) == {width}
        widths.append(width)
    assert widths[1] == widths[2] == widths[3]  # one stream through stages 2-4 (identity shortcuts)
    assert widths[0] < 8 or widths[1] < 16


def test_resnet_residual_groups_are_pruned_consistently():
    model = resnet()
    pruner, _ = prune_with(model, 0.7)
    pruner.finalize()
    bb = model.backbone
    reduced = 0
    for s in (1, 2, 3, 4):
        blk = bb[s][0]
        width = blk.bn3.num_features
        assert blk.conv3.out_channels == blk.shortcut[0].out_channels == blk.shortcut[1].num_features == width
        nxt = [bb[s + 1][0].conv1.in_channels, bb[s + 1][0].shortcut[0].in_channels] if s < 4 else \
            [b[0].in_channels for b in model.aspp.branches] + [model.aspp.pool[1][0].in_channels]
        assert set(nxt) == {width}
        reduced += width < 4 * 4 * 2 ** (s - 1)
    assert reduced


# ---------------------------------------------------------------------------
# the progressive schedule
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_schedule_prunes_progressively_and_never_overshoots(name):
    model, x = MODELS[name](), inputs()
    base = count_flops(model, x)
    target, steps = 0.6, 3
    pruner = SIRFPPruner(model, x, flops_reduction=target, steps=steps, interval=2)
    counts = [pruner.masks.removed()]
    plans = []
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    for i in range(8):
        loss = model(inputs(50 + i)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        plan = pruner.step()
        if (i + 1) % 2 or i >= 6:
            assert plan is None
            continue
        plans.append(plan)
        t = len(plans)
        assert plan.target == pytest.approx(target * t / steps)
        assert plan.flops_reduction <= target * t / steps + 1e-9
        counts.append(pruner.masks.removed())
        assert np.all(counts[-1] >= counts[-2]) and counts[-1].sum() > counts[-2].sum()
        predicted = pruner.predicted()
        assert predicted["flops"] == plan.flops and predicted["flops_base"] == base
    assert pruner.done and len(pruner.history) == steps and pruner.iteration == 6
    assert [p.flops_reduction for p in plans] == sorted(p.flops_reduction for p in plans)
    with pytest.raises(RuntimeError, match="all 3 pruning steps have been taken"):
        pruner.prune_step()
    pruner.finalize()
    achieved = 1 - count_flops(model, x) / base
    assert achieved == pytest.approx(plans[-1].flops_reduction, abs=1e-12) and achieved <= target + 1e-9
    assert pruner.planning_time == pytest.approx(sum(p.planning_time for p in plans))


def test_pruning_before_statistics_is_refused_and_close_removes_every_hook():
    model, x = lite(), inputs()
    pruner = SIRFPPruner(model, x, flops_reduction=0.5, interval=5)
    message = "no redundancy statistics yet: run training iterations before pruning"
    with pytest.raises(RuntimeError, match=message):
        pruner.prune_step()
    pruner.close()
    assert not any(m._forward_hooks for m in model.modules())


# ---------------------------------------------------------------------------
# saving and loading
# ---------------------------------------------------------------------------


BUILDERS = {**MODELS, "depthwise": depthwise}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_save_and_load_round_trip(name, tmp_path):
    model, x = BUILDERS[name](), inputs()
    groups = ChannelGroups.build(model, x)
    rng = np.random.default_rng(0)
    prune_channels(groups, {g.name: rng.choice(g.size, g.size // 2, replace=False) for g in groups})
    train(model, None, 1)  # running statistics and weights moved off their initial values
    model.eval()
    path = tmp_path / "pruned.pt"
    meta = {"flops": float(count_flops(model, x)), "name": name, "sizes": [1, 2], "nested": {"a": 1.5}}
    save_pruned(model, path, metadata=meta)
    blob = torch.load(path, weights_only=True)
    assert blob["format"] == "sirfp-pruned-model/1"
    fresh = BUILDERS[name](seed=7)
    assert load_pruned(fresh, path) == meta
    fresh.eval()
    a, b = model.state_dict(), fresh.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))
    assert count_flops(fresh, x) == count_flops(model, x)
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in fresh.parameters())
    train(fresh, None, 1)  # the loaded model trains


def test_loading_a_wrong_file(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match=re.escape(f"{str(path)!r} is not a model saved by "
                                                   f"sirfp_adapter.save_pruned")):
        load_pruned(lite(), path)
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match="is not a model saved by sirfp_adapter.save_pruned"):
        load_pruned(lite(), path)
    save_pruned(lite(), path)
    message = "the saved model has modules this model lacks: ['aspp.branches.0.0'"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_pruned(depthwise(), path)


def test_loading_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match="is not a model saved by sirfp_adapter.save_pruned"):
        load_pruned(lite(), path)


def test_numpy_metadata_is_refused_when_saving_or_loads_back(tmp_path):
    path = tmp_path / "m.pt"
    meta = {"miou": np.float64(0.5), "per_class": np.array([0.25, 0.75])}
    try:
        save_pruned(lite(), path, metadata=meta)
    except TypeError:
        return  # refused up front: fine
    assert load_pruned(lite(), path) == {"miou": 0.5, "per_class": [0.25, 0.75]}


# ---------------------------------------------------------------------------
# option errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "give exactly one of flops_reduction and params_reduction"),
        ({"flops_reduction": 0.5, "params_reduction": 0.5}, ValueError,
         "give exactly one of flops_reduction and params_reduction"),
        ({"flops_reduction": 1.0}, ValueError, r"flops_reduction must be a number in \(0, 1\), got 1.0"),
        ({"flops_reduction": 0.0}, ValueError, r"flops_reduction must be a number in \(0, 1\), got 0.0"),
        ({"flops_reduction": True}, ValueError, r"flops_reduction must be a number in \(0, 1\), got True"),
        ({"params_reduction": 1.5}, ValueError, r"params_reduction must be a number in \(0, 1\), got 1.5"),
        ({"flops_reduction": 0.5, "steps": 0}, ValueError, "steps must be a positive integer, got 0"),
        ({"flops_reduction": 0.5, "steps": 2.0}, ValueError, "steps must be a positive integer, got 2.0"),
        ({"flops_reduction": 0.5, "interval": 0}, ValueError, "interval must be a positive integer, got 0"),
        ({"flops_reduction": 0.5, "criterion": "hrank"}, ValueError,
         re.escape(f"criterion must be one of {CRITERIA}, got 'hrank'")),
        ({"flops_reduction": 0.5, "ignored_layers": ["nope"]}, ValueError,
         "ignored_layers: 'nope' is not a module of the model"),
    ],
)
def test_pruner_option_errors(kwargs, error, match):
    model = lite()
    with pytest.raises(error, match=match):
        SIRFPPruner(model, inputs(), **kwargs)
    assert not any(m._forward_hooks for m in model.modules())


def test_pruner_refuses_an_unknown_measure():
    with pytest.raises(ValueError, match="unknown measure 'cosine'"):
        SIRFPPruner(lite(), inputs(), flops_reduction=0.5, measure="cosine")


def test_a_refused_measure_leaves_no_hooks():
    model = lite()
    with pytest.raises(ValueError, match="unknown measure 'cosine'"):
        SIRFPPruner(model, inputs(), flops_reduction=0.5, measure="cosine")
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_keep": 0}, r"min_keep must be a fraction in \[0, 1\] or a channel count >= 1, got 0"),
        ({"min_keep": 1.5}, r"min_keep must be a fraction in \[0, 1\] or a channel count >= 1, got 1.5"),
        ({"round_to": 0}, "round_to must be an integer >= 1, got 0"),
        ({"mode": "layerwise"}, "mode must be 'global' or 'uniform', got 'layerwise'"),
        ({"method": "nope"}, "method must be one of"),
    ],
)
def test_pruner_checks_planning_options_up_front(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SIRFPPruner(lite(), inputs(), flops_reduction=0.5, criterion="l1", **kwargs)


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
    np.testing.assert_allclose(group_importance("l1", model, g),
                               np.abs(filters(model.backbone[1][0].conv1)).sum(axis=1), rtol=1e-12)
    stream = groups[groups.index("backbone.1.0.shortcut.0")]
    convs = ["backbone.1.0.shortcut.0", "backbone.1.0.conv2", "backbone.1.1.conv2"]
    expected = sum(np.abs(filters(modules[n])).sum(axis=1) for n in convs)
    np.testing.assert_allclose(group_importance("l1", model, stream), expected, rtol=1e-12)
    dw_model = depthwise()
    dw_group = ChannelGroups.build(dw_model, inputs())[0]
    expected = np.abs(filters(dw_model.stem)).sum(axis=1) + np.abs(filters(dw_model.dw)).sum(axis=1)
    np.testing.assert_allclose(group_importance("l1", dw_model, dw_group), expected, rtol=1e-12)


def test_bn_scale_importance_is_the_mean_absolute_gamma(lite_groups):
    model, groups = lite_groups
    modules = dict(model.named_modules())
    stream = groups[groups.index("backbone.2.0.shortcut.0")]
    gammas = np.stack([np.abs(modules[n].weight.detach().double().numpy()) for n in stream.feature_layers])
    assert gammas.shape == (7, 16)
    np.testing.assert_allclose(group_importance("bn_scale", model, stream), gammas.mean(axis=0), rtol=1e-12)


def test_fpgm_importance_sums_pairwise_filter_distances(lite_groups):
    model, groups = lite_groups
    modules = dict(model.named_modules())
    stream = groups[groups.index("backbone.1.0.shortcut.0")]
    expected = np.zeros(8)
    for n in ["backbone.1.0.shortcut.0", "backbone.1.0.conv2", "backbone.1.1.conv2"]:
        f = filters(modules[n])
        for i in range(8):
            expected[i] += sum(np.linalg.norm(f[i] - f[j]) for j in range(8))
    np.testing.assert_allclose(group_importance("fpgm", model, stream), expected, rtol=1e-9)


def test_taylor_importance_accumulates_squared_first_order_terms(lite_groups):
    model, groups = lite_groups
    modules = dict(model.named_modules())
    acc = TaylorAccumulator(model, groups)
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
        acc.update()
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
    np.testing.assert_allclose(group_importance("taylor", model, stream, taylor=values),
                               sum(values[n] for n in stream.feature_layers), rtol=1e-12)
    with pytest.raises(ValueError, match=re.escape("taylor importance needs the accumulated values "
                                                   "(TaylorAccumulator.values())")):
        group_importance("taylor", model, stream)
    with pytest.raises(ValueError, match="taylor: no accumulated values for group 'backbone.2.0.shortcut.0'"):
        group_importance("taylor", model, stream, taylor={})


def test_taylor_accumulator_matches_a_real_backward_pass():
    model, x = lite(), inputs()
    groups = ChannelGroups.build(model, x)
    acc = TaylorAccumulator(model, groups)
    model.train()
    model(x).square().mean().backward()
    acc.update()
    bn = model.backbone[3][1].bn1
    expected = (bn.weight * bn.weight.grad + bn.bias * bn.bias.grad).double().square().detach().numpy()
    np.testing.assert_allclose(acc.values()["backbone.3.1.bn1"], expected, rtol=1e-12)


def test_random_importance_and_unknown_kinds(lite_groups):
    model, groups = lite_groups
    g = groups[0]
    a = group_importance("random", model, g, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, group_importance("random", model, g, rng=np.random.default_rng(5)))
    assert a.shape == (g.size,) and np.all((0 <= a) & (a < 1))
    assert BASELINES == ("random", "l1", "bn_scale", "fpgm", "taylor")
    with pytest.raises(ValueError, match=re.escape(f"kind must be one of {BASELINES}, got 'hrank'")):
        group_importance("hrank", model, g)


def test_tied_scores_still_reach_the_target():
    model, x = resnet(), inputs()
    pruner = SIRFPPruner(model, x, flops_reduction=0.5, interval=1, criterion="bn_scale")
    plan = pruner.step()
    assert 0.49 <= plan.flops_reduction <= 0.5


class NoNormNet(nn.Module):
    """conv → ReLU → conv → ReLU → classifier: groups without a normalisation layer."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 6, 3, padding=1)
        self.classifier = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        y = self.classifier(F.relu(self.b(F.relu(self.a(x)))))
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)


def test_groups_without_norm_layers_are_measured_at_their_convolution():
    model = NoNormNet()
    groups = ChannelGroups.build(model, inputs())
    assert [(g.name, g.feature_layers) for g in groups] == [("a", ("a",)), ("b", ("b",))]
    for kind in ("l1", "fpgm"):
        assert group_importance(kind, model, groups[0]).shape == (6,)
    pruner, plan = prune_with(model, 0.3, criterion="l1")
    assert plan.flops_reduction <= 0.3


def test_bn_scale_refuses_groups_without_a_norm_layer():
    model = NoNormNet()
    groups = ChannelGroups.build(model, inputs())
    with pytest.raises(ValueError, match="bn_scale: group 'a' has no affine normalisation layer"):
        group_importance("bn_scale", model, groups[0])


def test_taylor_accumulator_survives_groups_without_a_norm_layer():
    model, x = NoNormNet(), inputs()
    groups = ChannelGroups.build(model, x)
    acc = TaylorAccumulator(model, groups)
    model(x).square().mean().backward()
    acc.update()
    assert all(v.shape == (6,) for v in acc.values().values())


@pytest.mark.parametrize("criterion", ["sirfp", "taylor"])
def test_a_pruner_resumes_from_its_state_dict(criterion, tmp_path):
    import copy

    model, x = lite(), inputs()
    first = SIRFPPruner(model, x, flops_reduction=0.6, steps=3, interval=2, criterion=criterion)
    train(model, first, 3)
    assert first.completed == 1
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "pruner": first.state_dict()}, path)
    twin = copy.deepcopy(model)
    first.close()
    saved = torch.load(path, weights_only=True)
    twin.load_state_dict(saved["model"])
    second = SIRFPPruner(twin, x, flops_reduction=0.6, steps=3, interval=2, criterion=criterion)
    second.load_state_dict(saved["pruner"])
    assert (second.iteration, second.completed) == (3, 1)
    assert all(np.array_equal(second.masks.active[k], v) for k, v in first.masks.active.items())
    if criterion == "sirfp":
        a, b = first.collector.matrices(), second.collector.matrices()
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    other = SIRFPPruner(lite(), x, flops_reduction=0.6, criterion="l1")
    with pytest.raises(ValueError, match="saved by a pruner with another criterion than 'l1'"):
        other.load_state_dict(saved["pruner"])
