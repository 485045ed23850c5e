"""Masks, hard pruning of coupled groups, saving and loading."""

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
from sirfp_adapter.plan import PlanOptions  # noqa: E402
from sirfp_adapter.schedule import SIRFPPruner  # noqa: E402
from tests.sirfp_adapter.pruning_helpers import (  # noqa: E402
    MODELS,
    depthwise,
    finalize_matches_masks,
    inputs,
    lite,
    plus,
    prune_with,
    resnet,
    train,
    train_passes,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TARGETS = [0.3, 0.6, 0.8]

# ---------------------------------------------------------------------------
# masks and hard pruning
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(MODELS))
def test_masked_model_equals_hard_pruned_model(name, target):
    model, x = MODELS[name](), inputs()
    shape = model.eval()(x).shape
    pruner = SIRFPPruner(model, x, flops_reduction=target, interval=2, criterion="sirfp")
    plans = train(model, pruner, 4)  # collect, prune at iteration 2, fine-tune masked for 2 more
    assert len(plans) == 1
    pruned = finalize_matches_masks(model, pruner, x)
    assert pruned.shape == shape and torch.isfinite(pruned).all()
    # the plan's prediction is what the pruned model costs
    assert count_flops(model, x) == plans[0].flops and count_params(model) == plans[0].params
    # no hooks left, the smaller model trains with a new optimizer, and its groups rebuild
    assert not any(m._forward_hooks for m in model.modules())
    train(model, None, 2)
    assert torch.isfinite(model.eval()(x)).all()
    rebuilt = ChannelGroups.build(model, x)
    assert {g.name: g.size for g in rebuilt} == plans[0].keep


def test_decoder_skip_connection_is_pruned_consistently():
    """DeepLabV3+: the stride-4 features feed both the backbone and the decoder's concatenation."""
    model, x = plus(), inputs()
    pruner = SIRFPPruner(model, x, flops_reduction=0.6, interval=2, criterion="l1")  # the structure is the point
    train(model, pruner, 2)
    finalize_matches_masks(model, pruner, x)
    low = model.low[1][0].bn2.num_features
    assert model.reduce[0].in_channels == model.backbone[0][0].conv1.in_channels == low
    concat = model.head[0][0].in_channels
    assert concat == model.aspp.project[0].out_channels + model.reduce[0].out_channels
    assert 1 - count_flops(model, x) / count_flops(plus(), x) == pytest.approx(0.6, abs=0.01)


def test_masked_channels_stay_zero_through_sgd_with_momentum_and_weight_decay():
    model, x = lite(), inputs()  # the same ratio in every group, so every watched layer loses channels
    pruner = SIRFPPruner(model, x, flops_reduction=0.5, interval=2, plan=PlanOptions(mode="uniform"))
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
    # indices numpy would have taken silently: -1 (the last channel), 1.7 (channel 1), a bool
    # mask (channels 0 and 1); and one out of range (an IndexError from numpy)
    refusals = [
        ({"head.0": [-1]}, ValueError, "channels must lie in [0, 8) for group 'head.0'"),
        ({"head.0": [99]}, ValueError, "channels must lie in [0, 8) for group 'head.0'"),
        ({"head.0": [1.7]}, TypeError, "channels of group 'head.0' must be integer indices, got float64 values"),
        ({"head.0": np.array([True, False] * 4)}, TypeError,
         "channels of group 'head.0' must be integer indices, got bool values"),
        ({"head.0": [[1, 2]]}, ValueError, "channels of group 'head.0' must be a flat sequence of indices, "
                                           "got shape (1, 2)"),
        ({"backbone.1.0.conv1": [5], "head.0": [-1]}, ValueError,  # the valid first entry is not taken either
         "channels must lie in [0, 8) for group 'head.0'"),
    ]
    for remove, error, message in refusals:
        with pytest.raises(error) as info:
            masks.remove_channels(remove)
        assert str(info.value) == message
        with pytest.raises(error) as info:  # the same contract for physical removal, checked before any
            prune_channels(groups, remove)
        assert str(info.value) == message
    assert masks.removed().tolist() == removed.tolist()
    assert model.head[0].out_channels == 8 and model.backbone[1][0].conv1.out_channels == 8
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
