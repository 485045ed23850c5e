"""Coupled channel groups (Torch-Pruning's dependency graph) and the cost model."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
from torch import nn  # noqa: E402

from sirfp_adapter.apply import prune_channels  # noqa: E402
from sirfp_adapter.cost import CostModel, count_flops, count_params  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402
from tests.sirfp_adapter.pruning_helpers import MODELS, depthwise, inputs, lite, resnet  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def names(members):
    return {m.name for m in members}


# ---------------------------------------------------------------------------
# groups
# ---------------------------------------------------------------------------


def test_lite_groups_exclude_the_classifier_and_follow_module_order():
    model = lite()
    groups = ChannelGroups.build(model, inputs())
    assert groups.ignored == ("classifier",)
    assert all("classifier" not in names(g.producers) for g in groups)
    # the classifier still reads the head's channels: a consumer, never a producer
    assert names(groups[groups.index("head.0")].consumers) == {"classifier"}
    order = [n for n, _ in model.named_modules()]
    positions = [order.index(g.name) for g in groups]
    assert positions == sorted(positions)
    assert len(groups) == 18 and sum(g.size for g in groups) == 200
    assert groups.feature_layers() == list(dict.fromkeys(n for g in groups for n in g.feature_layers))
    with pytest.raises(KeyError, match="no prunable group has root layer 'classifier'"):
        groups.index("classifier")


def test_every_member_carries_every_channel_in_order_without_concatenation():
    groups = ChannelGroups.build(resnet(), inputs())
    for g in groups:
        for m in g.producers + g.norms:
            np.testing.assert_array_equal(m.index, np.arange(g.size))
        for m in g.consumers:
            if m.name != "aspp.project.0":
                np.testing.assert_array_equal(m.index, np.arange(g.size))


def test_lite_residual_streams_couple_every_block_and_the_shortcut():
    groups = ChannelGroups.build(lite(), inputs())
    stage1 = groups[groups.index("backbone.1.0.shortcut.0")]
    assert names(stage1.norms) == {"backbone.1.0.shortcut.1", "backbone.1.0.bn2", "backbone.1.1.bn2"}
    assert names(stage1.producers) == names(stage1.norms) | {
        "backbone.1.0.shortcut.0", "backbone.1.0.conv2", "backbone.1.1.conv2"}
    assert names(stage1.consumers) == {"backbone.1.1.conv1", "backbone.2.0.conv1", "backbone.2.0.shortcut.0"}
    # stages 2-4 all have 16 channels and identity shortcuts after stage 2's first block: one stream
    stream = groups[groups.index("backbone.2.0.shortcut.0")]
    bn2 = {f"backbone.{s}.{b}.bn2" for s in (2, 3, 4) for b in (0, 1)}
    assert names(stream.norms) == bn2 | {"backbone.2.0.shortcut.1"}
    assert stream.feature_layers == tuple(m.name for m in stream.norms)
    aspp = {f"aspp.branches.{i}.0" for i in range(4)} | {"aspp.pool.1.0"}
    later_conv1 = {f"backbone.{s}.{b}.conv1" for s in (2, 3, 4) for b in (0, 1)} - {"backbone.2.0.conv1"}
    assert names(stream.consumers) == later_conv1 | aspp
    # the blocks' own conv1 groups stay separate and small
    for s in (1, 2, 3, 4):
        for b in (0, 1):
            g = groups[groups.index(f"backbone.{s}.{b}.conv1")]
            assert names(g.norms) == {f"backbone.{s}.{b}.bn1"}
            assert names(g.consumers) == {f"backbone.{s}.{b}.conv2"}


def test_resnet_residual_groups_hold_bn3_and_the_shortcut():
    groups = ChannelGroups.build(resnet(), inputs())
    assert len(groups) == 20 and groups.ignored == ("classifier",)
    for s, width in zip((1, 2, 3, 4), (16, 32, 64, 128), strict=True):
        g = groups[groups.index(f"backbone.{s}.0.shortcut.0")]
        assert g.size == width
        assert names(g.norms) == {f"backbone.{s}.0.bn3", f"backbone.{s}.0.shortcut.1"}
        assert names(g.producers) == names(g.norms) | {f"backbone.{s}.0.conv3", f"backbone.{s}.0.shortcut.0"}


@pytest.mark.parametrize("build", [lite, resnet], ids=["lite", "resnet"])
def test_aspp_concatenation_maps_each_branch_to_its_slice_of_the_projection(build):
    groups = ChannelGroups.build(build(), inputs())
    roots = [f"aspp.branches.{i}.0" for i in range(4)] + ["aspp.pool.1.0"]
    for k, root in enumerate(roots):
        g = groups[groups.index(root)]
        assert g.size == 8
        assert [c.name for c in g.consumers] == ["aspp.project.0"]
        np.testing.assert_array_equal(g.consumers[0].index, np.arange(8 * k, 8 * k + 8))
        assert names(g.norms) == {root[:-1] + "1"}


def test_concatenation_slices_shift_after_pruning_an_earlier_branch():
    model = lite()
    groups = ChannelGroups.build(model, inputs())
    prune_channels(groups, {"aspp.branches.0.0": [1, 4, 6]})
    assert model.aspp.project[0].in_channels == 37
    rebuilt = ChannelGroups.build(model, inputs())
    assert rebuilt[rebuilt.index("aspp.branches.0.0")].size == 5
    branch1 = rebuilt[rebuilt.index("aspp.branches.1.0")]
    pool = rebuilt[rebuilt.index("aspp.pool.1.0")]
    np.testing.assert_array_equal(branch1.consumers[0].index, np.arange(5, 13))
    np.testing.assert_array_equal(pool.consumers[0].index, np.arange(29, 37))


@pytest.mark.parametrize(
    ("ignored", "gone"),
    [
        (["aspp.project.0"], {"aspp.project.0"}),
        (["head.0", "backbone.1.0.conv1"], {"head.0", "backbone.1.0.conv1"}),
        # one block of a residual stream pins the whole stream
        (["backbone.3.1.conv2"], {"backbone.2.0.shortcut.0"}),
    ],
)
def test_ignored_layers_by_name_remove_their_groups(ignored, gone):
    model = lite()
    full = ChannelGroups.build(model, inputs())
    groups = ChannelGroups.build(model, inputs(), ignored_layers=ignored)
    assert {g.name for g in groups} == {g.name for g in full} - gone
    assert set(groups.ignored) == set(ignored) | {"classifier"}
    # the vanished groups' norms are neither hooked nor counted
    gone_norms = {n for g in full if g.name in gone for n in g.feature_layers}
    assert gone_norms and gone_norms.isdisjoint(groups.feature_layers())
    assert CostModel(model, inputs(), groups).sizes.size == len(groups)


def test_ignored_layers_by_module_and_bad_entries():
    model = lite()
    groups = ChannelGroups.build(model, inputs(), ignored_layers=[model.head[0], model.aspp.pool[1][0]])
    assert {"head.0", "aspp.pool.1.0"}.isdisjoint(g.name for g in groups)
    assert len(groups) == 16
    with pytest.raises(ValueError, match="ignored_layers: 'nope' is not a module of the model"):
        ChannelGroups.build(model, inputs(), ignored_layers=["nope"])
    with pytest.raises(ValueError, match="ignored_layers must hold modules of the model or their names, "
                                         "got 3"):
        ChannelGroups.build(model, inputs(), ignored_layers=[3])
    stranger = nn.Conv2d(1, 1, 1)
    with pytest.raises(ValueError, match=re.escape(f"ignored_layers must hold modules of the model or their "
                                                   f"names, got {stranger!r}")):
        ChannelGroups.build(model, inputs(), ignored_layers=[stranger])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        ChannelGroups.build("model", inputs())
    # one name or module, not a sequence: a name used to be read letter by letter ("'h' is not a module")
    with pytest.raises(TypeError) as info:
        ChannelGroups.build(model, inputs(), ignored_layers="head.0")
    assert str(info.value) == "ignored_layers must be a sequence of modules or module names, got one str: " \
                              "pass ['head.0']"
    with pytest.raises(TypeError, match=r"^ignored_layers must be a sequence of modules or module names, got one "
                                        r"Conv2d: pass \[Conv2d\("):
        ChannelGroups.build(model, inputs(), ignored_layers=model.head[0])


def test_bad_example_inputs_are_named():
    """None or a numpy array used to fail inside conv2d with its argument list; an input
    the model refuses keeps the model's own error, with a note naming example_inputs, and
    no longer leaves Torch-Pruning's tracing hooks on the model (53 on this one)."""
    model = lite()
    for bad, kind in ((None, "NoneType"), (inputs().numpy(), "ndarray")):
        with pytest.raises(TypeError) as info:
            ChannelGroups.build(model, bad)
        assert str(info.value) == ("example_inputs must be a batch the model accepts: a tensor, or a tuple or dict "
                                   f"of its arguments; got {kind}")
    with pytest.raises(RuntimeError, match="expected input") as info:
        ChannelGroups.build(model, torch.randn(2, 4, 16, 16))
    assert info.value.__notes__ == ["(raised while tracing the model on example_inputs, a torch.float32 tensor of "
                                    "shape (2, 4, 16, 16) on cpu: example_inputs must be a batch the model accepts)"]
    assert not any(m._forward_hooks for m in model.modules())
    assert model.training


def test_build_restores_the_mode():
    model = lite().eval()
    ChannelGroups.build(model, inputs())
    assert not any(m.training for m in model.modules())
    model.train()
    ChannelGroups.build(model, inputs())
    assert all(m.training for m in model.modules())


def test_depthwise_convolution_is_coupled_with_its_producer():
    groups = ChannelGroups.build(depthwise(), inputs())
    assert len(groups) == 2  # the root layer naming a group is Torch-Pruning's pick among its producers
    assert groups.ignored == ("classifier",)
    dw = groups[0]
    assert dw.name in {"stem", "dw"}
    assert dw.size == 8
    assert names(dw.producers) == {"stem", "bn0", "dw", "bn1"}
    assert names(dw.norms) == {"bn0", "bn1"}
    assert names(dw.consumers) == {"pw"}
    assert sum("dw" in names(g.producers) for g in groups) == 1
    res = groups[1]
    assert res.size == 12 and res.name in {"pw", "conv"}
    assert names(res.producers) == {"pw", "bn2", "conv", "bn3"}
    assert names(res.consumers) == {"conv", "classifier"}


def test_a_network_ending_with_its_classifier_conv_keeps_the_classifier():
    model = depthwise(last_is_conv=True)
    groups = ChannelGroups.build(model, inputs())
    assert groups.ignored == ("classifier",)
    expected = [{"stem", "bn0", "dw", "bn1"}, {"pw", "bn2", "conv", "bn3"}]
    assert [names(g.producers) for g in groups] == expected
    assert model(inputs()).shape == (2, 4, 16, 16)


def test_group_pruning_errors():
    groups = ChannelGroups.build(lite(), inputs())
    g = groups.index("backbone.1.0.conv1")
    with pytest.raises(ValueError, match=r"channels must lie in \[0, 8\) for group 'backbone.1.0.conv1'"):
        groups.prune(g, [8])
    with pytest.raises(ValueError, match=r"channels must lie in \[0, 8\) for group 'backbone.1.0.conv1'"):
        groups.prune(g, [-1])
    with pytest.raises(ValueError, match="cannot remove all 8 channels of group 'backbone.1.0.conv1'"):
        groups.prune(g, range(8))
    groups.prune(g, [])  # nothing to do
    assert groups.model.backbone[1][0].conv1.out_channels == 8


# ---------------------------------------------------------------------------
# cost model
# ---------------------------------------------------------------------------


BUILDERS = {**MODELS, "depthwise": depthwise}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_cost_model_is_exact_after_pruning_random_channels_of_every_group(name, seed):
    model = BUILDERS[name](seed)
    x = inputs(seed)
    groups = ChannelGroups.build(model, x)
    cost = CostModel(model, x, groups)
    assert cost.flops_base == count_flops(model, x) and cost.params_base == count_params(model)
    np.testing.assert_array_equal(cost.flops([0] * len(groups)), cost.flops_base)
    rng = np.random.default_rng(seed)
    removed = np.array([rng.integers(1, g.size) for g in groups])
    predicted_flops, predicted_params = cost.flops(removed), cost.params(removed)
    assert cost.flops_many(removed[None])[0] == predicted_flops
    assert cost.params_many(removed[None])[0] == predicted_params
    prune_channels(groups, {g.name: rng.choice(g.size, int(r), replace=False)
                            for g, r in zip(groups, removed, strict=True)})
    flops, params = count_flops(model, x), count_params(model)
    assert flops < cost.flops_base
    assert (predicted_flops, predicted_params) == (flops, params)  # exact integers
    assert model(x).shape == (2, model.classifier.out_channels, 32, 32)


def test_cost_model_batch_matches_single_predictions():
    model, x = lite(), inputs()
    groups = ChannelGroups.build(model, x)
    cost = CostModel(model, x, groups)
    rng = np.random.default_rng(0)
    batch = np.stack([[rng.integers(0, g.size) for g in groups] for _ in range(5)])
    np.testing.assert_allclose(cost.flops_many(batch), [cost.flops(r) for r in batch], rtol=1e-12)
    np.testing.assert_allclose(cost.params_many(batch), [cost.params(r) for r in batch], rtol=1e-12)
    # removing more never costs more
    more = batch + (batch < cost.sizes - 1)
    assert np.all(cost.flops_many(more) <= cost.flops_many(batch))
    message = "removed must hold one count per group (18), got shape (3,)"
    with pytest.raises(ValueError, match=re.escape(message)):
        cost.flops([1, 2, 3])
    # counts outside [0, size] used to give FLOPs below zero or above the unpruned model's
    size = int(cost.sizes[1])
    for count, shown in ((size + 1, str(size + 1)), (-3, "-3"), (float("nan"), "nan")):
        removed = np.zeros(len(groups))
        removed[1] = count
        for predict in (cost.flops, cost.params):
            with pytest.raises(ValueError) as info:
                predict(removed)
            assert str(info.value) == f"removed[1] must be a count from 0 to the group's {size} channels, got {shown}"
    full = cost.sizes.copy()
    assert cost.flops(full) >= 0 and cost.params(np.zeros(len(groups))) == cost.params_base
    with pytest.raises(TypeError, match="^model must be a torch.nn.Module, got str$"):
        count_flops("model", x)
    with pytest.raises(TypeError, match="^model must be a torch.nn.Module, got str$"):
        count_params("model")


def test_count_flops_restores_training_mode_and_counts_in_eval():
    model, x = lite().train(), inputs()
    flops = count_flops(model, x)
    assert model.training
    assert flops == count_flops(model.eval(), x) > 0
