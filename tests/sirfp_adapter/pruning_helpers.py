"""Small networks and helpers shared by the pruning tests (groups, plan, apply, schedule)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sirfp_adapter.demo.models import DeepLabLite, DeepLabResNet, DeepLabV3PlusLite
from sirfp_adapter.criteria import Criterion, get_criterion
from sirfp_adapter.groups import ChannelGroups
from sirfp_adapter.plan import PlanOptions, Ranking
from sirfp_adapter.schedule import SIRFPPruner
from sirfp_adapter.threshold import keep_floor


def lite(seed: int = 0) -> DeepLabLite:
    """DeepLabLite small enough for a test: 18 groups, about 35 k parameters."""
    torch.manual_seed(seed)
    return DeepLabLite(widths=(8, 16, 16, 16), aspp_channels=8)


def resnet(seed: int = 0) -> DeepLabResNet:
    """The ResNet-50-style bottleneck network, one block per stage, width 4."""
    torch.manual_seed(seed)
    return DeepLabResNet(width=4, layers=(1, 1, 1, 1), aspp_channels=8)


def plus(seed: int = 0) -> DeepLabV3PlusLite:
    """DeepLabLite's backbone with the DeepLabV3+ decoder (a stride-4 skip connection)."""
    torch.manual_seed(seed)
    return DeepLabV3PlusLite(widths=(8, 16, 16, 16), aspp_channels=8, low_channels=4)


MODELS = {"lite": lite, "resnet": resnet}


def inputs(seed: int = 0, batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


class DepthwiseNet(nn.Module):
    """conv → BN → depthwise conv → BN → pointwise conv → BN, a residual 3×3 conv-BN on
    the pointwise output, a 1×1 classifier and an upsampling to the input size.

    Groups: {stem, bn0, dw, bn1} (the depthwise conv carries its producer's channels)
    and {pw, bn2, conv, bn3} (the residual addition); the classifier is excluded.
    """

    def __init__(self, last_is_conv: bool = False) -> None:
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8)
        self.dw, self.bn1 = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8)
        self.pw, self.bn2 = nn.Conv2d(8, 12, 1), nn.BatchNorm2d(12)
        self.conv, self.bn3 = nn.Conv2d(12, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12)
        self.classifier = nn.Conv2d(12, 4, 1)
        self.last_is_conv = last_is_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(self.bn1(self.dw(x)))
        y = F.relu(self.bn2(self.pw(x)))
        y = F.relu(y + self.bn3(self.conv(y)))
        y = self.classifier(y)
        if self.last_is_conv:
            return y
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


def depthwise(seed: int = 0, last_is_conv: bool = False) -> DepthwiseNet:
    torch.manual_seed(seed)
    return DepthwiseNet(last_is_conv)


def train_passes(model: nn.Module, n: int, seed: int = 1) -> None:
    """``n`` training-mode forward passes on random batches (what the collector sees)."""
    model.train()
    with torch.no_grad():
        for i in range(n):
            model(inputs(seed + i))


def finalize_matches_masks(model: nn.Module, pruner: SIRFPPruner, x: torch.Tensor) -> torch.Tensor:
    """Finalize ``pruner`` (physical removal) and check the smaller model computes what the
    masked one did, in eval mode; returns the pruned model's output."""
    model.eval()
    with torch.no_grad():
        masked = model(x)
    pruner.finalize()
    with torch.no_grad():
        pruned = model(x)
    torch.testing.assert_close(pruned, masked, atol=1e-5, rtol=1e-5)
    return pruned


def greedy_fill(cost, rankings: list[Ranking], target: float, sizes: np.ndarray, min_keep=0.1) -> np.ndarray:
    """A removal vector that follows every ranking's order (prefixes), respects the
    ``min_keep`` floor and never exceeds ``target``: repeatedly take, among the groups'
    next channels, the lowest-scored one that still fits. A certificate that a target
    is reachable within a tolerance with the same rankings and floors."""
    n = np.zeros(len(rankings), dtype=np.int64)
    room = np.array([s - keep_floor(int(s), min_keep) for s in sizes])
    while True:
        best = None
        for g, r in enumerate(rankings):
            if n[g] >= room[g]:
                continue
            cand = n.copy()
            cand[g] += 1
            fits = 1.0 - cost.flops(cand) / cost.flops_base <= target
            if fits and (best is None or r.scores[n[g]] < best[0]):
                best = (r.scores[n[g]], g)
        if best is None:
            return n
        n[best[1]] += 1


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


def prune_with(model, target, *, criterion="sirfp", metric="flops", **plan_fields):
    """One-step pruner, collection passes, the step; returns (pruner, plan)."""
    x = inputs()
    pruner = SIRFPPruner(model, x, **{f"{metric}_reduction": target}, interval=2, criterion=criterion,
                         plan=PlanOptions(**plan_fields) if plan_fields else None)
    if pruner.criterion.needs_gradients:
        plans = train(model, pruner, 2)
    else:
        train_passes(model, 2)
        plans = [p for p in (pruner.step(), pruner.step()) if p is not None]
    assert len(plans) == 1 and pruner.done
    return pruner, plans[0]


def attached(criterion: str | Criterion, model: nn.Module, **options) -> Criterion:
    """A criterion attached to ``model`` (groups traced on the test inputs)."""
    return get_criterion(criterion, **options).attach(model, ChannelGroups.build(model, inputs()))


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
