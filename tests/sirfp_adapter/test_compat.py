"""Which groups a redundancy measure can take, found by the constructor's trace, and the
groups no criterion can prune exactly (GroupNorm over several channels)."""

from __future__ import annotations

import re
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from sirfp_adapter.groups import ChannelGroups, channel_dim  # noqa: E402
from sirfp_adapter.oneshot import prune_once  # noqa: E402
from sirfp_adapter.criteria import SIRFP  # noqa: E402
from sirfp_adapter.schedule import SIRFPPruner  # noqa: E402
from tests.sirfp_adapter.pruning_helpers import finalize_matches_masks, inputs  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


class Hybrid(nn.Module):
    """A convolutional stem, a token MLP block (Linear → GELU → Linear on a residual
    stream), a channels-last Linear on 4-D maps, then a convolutional head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem, self.bn0 = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 8)
        self.last = nn.Linear(8, 8)  # applied channels-last to (B, H, W, C)
        self.conv, self.bn1 = nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12)
        self.classifier = nn.Conv2d(12, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn0(self.stem(x)))
        b, c, h, w = y.shape
        tokens = y.flatten(2).transpose(1, 2)  # (B, N, C)
        tokens = tokens + self.fc2(F.gelu(self.fc1(tokens)))
        y = tokens.transpose(1, 2).reshape(b, c, h, w)
        y = self.last(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = F.relu(self.bn1(self.conv(y)))
        return F.interpolate(self.classifier(y), size=x.shape[2:], mode="bilinear", align_corners=False)


def test_the_trace_names_every_layer_whose_output_is_not_a_channel_map():
    groups = ChannelGroups.build(Hybrid(), inputs())
    assert groups.not_maps == {
        "fc1": "Linear output (2, 256, 16) is not (B, C, H, W)",
        "fc2": "Linear output (2, 256, 8) is not (B, C, H, W)",
        "last": "Linear output (2, 16, 16, 8) has its channels last",
    }
    # the residual stream {stem, bn0, fc2} is measured at bn0, a (B, C, H, W) map
    assert [(g.name, g.feature_layers) for g in groups] == [
        ("fc1", ("fc1",)), ("fc2", ("bn0",)), ("last", ("last",)), ("conv", ("bn1",))]
    assert groups.unmeasurable() == {
        "fc1": "fc1: Linear output (2, 256, 16) is not (B, C, H, W)",
        "last": "last: Linear output (2, 16, 16, 8) has its channels last",
    }


def test_sirfp_leaves_the_unmeasurable_groups_out_with_one_warning_and_prunes_the_rest():
    model, x = Hybrid(), inputs()
    with pytest.warns(UserWarning) as caught:
        pruner = SIRFPPruner(model, x, flops_reduction=0.3, interval=1, criterion=SIRFP("gram", budget=None))
    (message,) = [str(w.message) for w in caught]
    assert message == (
        "2 of 4 channel groups have no (B, C, H, W) feature maps for a redundancy measure and are left "
        "out of SIRFP (not pruned); the other 2 are pruned:\n"
        "  group fc1, measured at fc1: Linear output (2, 256, 16) is not (B, C, H, W)\n"
        "  group last, measured at last: Linear output (2, 16, 16, 8) has its channels last\n"
        "to silence this, pass ignored_layers=['fc1', 'last']"
    )
    assert [g.name for g in pruner.groups] == ["fc2", "conv"]
    assert {"fc1", "last", "classifier"} <= set(pruner.groups.ignored)
    model.train()
    with torch.no_grad():
        model(x)  # the collector hooks only (B, C, H, W) maps: no error here
    pruner.step()
    pruner.finalize()
    assert (model.fc1.out_features, model.last.out_features) == (16, 8)
    assert model.stem.out_channels < 8 or model.conv.out_channels < 12
    assert model.stem.out_channels == model.fc2.out_features == model.fc1.in_features
    # the line the warning offers silences it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SIRFPPruner(Hybrid(), x, flops_reduction=0.3, interval=1, criterion=SIRFP("gram", budget=None),
                    ignored_layers=["fc1", "last"]).close()


def test_a_model_without_any_channel_map_is_an_error_naming_the_fix():
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.b(F.gelu(self.a(x.flatten(2).transpose(1, 2)))).transpose(1, 2).reshape(x.shape)

    with pytest.raises(ValueError, match=re.escape(
            "no group of the model has (B, C, H, W) feature maps for a redundancy measure; all 1 were found "
            "elsewhere:\n  group a, measured at a: Linear output (2, 1024, 8) is not (B, C, H, W)\n"
            "rank them with a baseline criterion")):
        SIRFPPruner(Tokens(), inputs(), flops_reduction=0.3, interval=1)


def test_baselines_prune_token_groups_and_masks_act_on_their_last_dimension():
    model, x = Hybrid(), inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no group is left out for a baseline
        pruner = SIRFPPruner(model, x, flops_reduction=0.4, interval=1, criterion="l1")
    assert [g.name for g in pruner.groups] == ["fc1", "fc2", "last", "conv"]
    pruner.step()
    removed = pruner.masks.removed()
    assert removed[0] > 0 and removed[1] > 0  # the token MLP's hidden channels and its stream
    finalize_matches_masks(model, pruner, x)
    assert model.fc1.out_features < 16 and model.fc2.in_features == model.fc1.out_features


def test_channel_dim():
    assert channel_dim(nn.Linear(2, 3), torch.zeros(1, 5, 3)) == -1
    assert channel_dim(nn.LayerNorm(3), torch.zeros(1, 4, 4, 3)) == -1
    assert channel_dim(nn.Conv2d(2, 3, 1), torch.zeros(1, 3, 4, 4)) == 1
    assert channel_dim(nn.BatchNorm1d(3), torch.zeros(4, 3)) == -1


class NormNet(nn.Module):
    """conv → norm → conv → BN → classifier, the first norm given."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.norm = nn.Conv2d(3, 8, 3, padding=1), norm
        self.b, self.bn = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.classifier = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = self.a(x)
        if isinstance(self.norm, nn.LayerNorm):  # over the channels, channels-last
            y = self.norm(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        else:
            y = self.norm(y)
        return self.classifier(F.relu(self.bn(self.b(F.relu(y)))))


@pytest.mark.parametrize(("norm", "why"), [
    (nn.GroupNorm(4, 8), "norm is GroupNorm(4, 8)"),
    (nn.GroupNorm(1, 8), "norm is GroupNorm(1, 8)"),
    (nn.LayerNorm(8), "norm is LayerNorm((8,))"),
])
def test_groups_through_a_norm_over_several_channels_are_left_out_for_every_criterion(norm, why):
    with pytest.warns(UserWarning, match=re.escape(
            "1 of 2 channel groups are left out of pruning: their channels cannot be removed exactly (a "
            "normalisation over several channels together, a grouped convolution, or channel indices the "
            "dependency graph maps beyond a layer's width):\n"
            f"  a: {why}\nto silence this, pass ignored_layers=['a']")):
        groups = ChannelGroups.build(NormNet(norm), inputs())
    assert [g.name for g in groups] == ["b"] and groups.left_out == {"a": why}
    assert "a" in groups.ignored


class GroupedNet(nn.Module):
    """conv → BN → grouped conv → BN → conv → BN → classifier; the grouped conv given."""

    def __init__(self, grouped: nn.Conv2d) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.bn_a = nn.Conv2d(3, grouped.in_channels, 3, padding=1), nn.BatchNorm2d(grouped.in_channels)
        self.g, self.bn_g = grouped, nn.BatchNorm2d(grouped.out_channels)
        self.b, self.bn_b = nn.Conv2d(grouped.out_channels, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.classifier = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x = F.relu(self.bn_a(self.a(x)))
        x = F.relu(self.bn_g(self.g(x)))
        return self.classifier(F.relu(self.bn_b(self.b(x))))


@pytest.mark.parametrize(("grouped", "why"), [
    (nn.Conv2d(8, 8, 3, padding=1, groups=2), "g is a grouped convolution (8 -> 8 channels in 2 groups)"),
    (nn.Conv2d(8, 16, 3, padding=1, groups=8), "g is a grouped convolution (8 -> 16 channels in 8 groups)"),
])
@pytest.mark.parametrize("criterion", ["l1", "sirfp"])
def test_groups_through_a_grouped_convolution_are_left_out_and_the_pruned_model_runs(grouped, why, criterion):
    """Removing single channels around a grouped convolution used to fail inside
    Torch-Pruning with the model half pruned (groups=2), or leave a convolution with no
    weights (a depthwise one with a channel multiplier)."""
    model, x = GroupedNet(grouped), inputs()
    with pytest.warns(UserWarning, match=re.escape(
            "2 of 3 channel groups are left out of pruning: their channels cannot be removed exactly (a "
            "normalisation over several channels together, a grouped convolution, or channel indices the "
            "dependency graph maps beyond a layer's width):\n"
            f"  a: {why}\n  g: {why}\nto silence this, pass ignored_layers=['a', 'g']")):
        plan = prune_once(model, x, [inputs(1), inputs(2)], criterion=criterion, flops_reduction=0.3)
    assert set(plan.remove) == {"b"}
    assert (model.a.out_channels, model.g.in_channels, model.g.out_channels) == (
        grouped.in_channels, grouped.in_channels, grouped.out_channels)
    assert model.b.out_channels < 8
    assert model(x).shape == (2, 2, 32, 32)


def test_a_groupnorm_with_one_channel_per_group_is_prunable_exactly():
    model, x = NormNet(nn.GroupNorm(8, 8)), inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruner = SIRFPPruner(model, x, flops_reduction=0.3, interval=1, criterion="l1")
    assert [g.name for g in pruner.groups] == ["a", "b"]
    pruner.step()
    finalize_matches_masks(model, pruner, x)
    assert model.norm.num_channels == model.norm.num_groups < 8
