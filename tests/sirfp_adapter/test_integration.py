"""Pruning third-party segmentation networks end to end: torchvision's
``deeplabv3_resnet50`` and segmentation_models_pytorch's DeepLabV3 / DeepLabV3+ / PSPNet.

These skip where the packages do not import (PyPI's torchvision does not import beside
this project's CPU torch pin); they run wherever torchvision does, e.g. on a CUDA
machine, and use the GPU when there is one.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sirfp_adapter.criteria import SIRFP
from sirfp_adapter.cost import count_flops
from sirfp_adapter.schedule import SIRFPPruner

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True)
def _exact_convolutions():
    """TF32 convolutions differ by ~1e-3 between layer shapes: compare in full float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _logits(output: Any) -> torch.Tensor:
    return output["out"] if isinstance(output, dict) else output


def _prune_and_check(model: torch.nn.Module, n_classes: int, criterion: str, target: float = 0.6) -> None:
    model = model.to(DEVICE)
    x = torch.randn(2, 3, 64, 64, device=DEVICE)
    base = count_flops(model, x)
    chosen = SIRFP("js", max_samples=2) if criterion == "sirfp" else criterion
    pruner = SIRFPPruner(model, x, flops_reduction=target, steps=2, interval=1, criterion=chosen)
    model.train()
    for _ in range(2):
        with torch.no_grad():
            model(torch.randn(2, 3, 64, 64, device=DEVICE))
        pruner.step()
    assert pruner.done
    model.eval()
    with torch.no_grad():
        masked = _logits(model(x)).clone()
    pruner.finalize()
    with torch.no_grad():
        pruned = _logits(model(x))
    assert pruned.shape == (2, n_classes, 64, 64)
    assert torch.isfinite(pruned).all()
    torch.testing.assert_close(pruned, masked, atol=1e-4, rtol=1e-4)
    for module in model.modules():  # no layer was emptied
        if isinstance(module, torch.nn.Conv2d):
            assert module.in_channels >= 1 and module.out_channels >= 1, module
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.num_features >= 1, module
    achieved = 1 - count_flops(model, x) / base
    assert target - 0.01 <= achieved <= target + 1e-9, achieved
    # the smaller network still trains
    model.train()
    loss = _logits(model(torch.randn(2, 3, 64, 64, device=DEVICE))).square().mean()
    loss.backward()


@pytest.mark.parametrize("criterion", ["sirfp", "l1"])
def test_torchvision_deeplabv3_resnet50(criterion: str) -> None:
    segmentation = pytest.importorskip("torchvision.models.segmentation")
    model = segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    _prune_and_check(model, 21, criterion)


@pytest.mark.parametrize("arch", ["DeepLabV3", "DeepLabV3Plus", "PSPNet"])
def test_smp_models(arch: str) -> None:
    smp = pytest.importorskip("segmentation_models_pytorch")
    model = getattr(smp, arch)(encoder_name="resnet34", encoder_weights=None, classes=5)
    _prune_and_check(model, 5, "sirfp")
