"""Pruning third-party segmentation networks end to end, on the CPU at tiny inputs.

torchvision's ``deeplabv3_resnet50``, ``fcn_resnet50`` and ``lraspp_mobilenet_v3_large``;
segmentation_models_pytorch's DeepLabV3, DeepLabV3+, PSPNet, U-Net and FPN; smp's
SegFormer (a MiT transformer encoder, whose token layers SIRFP cannot measure). Each is
pruned to 60% fewer FLOPs in one step; the FLOPs are counted here with
``torch.utils.flop_counter`` (not with the library's counter), the physically pruned
network must compute what the masked one computed, no layer may be emptied, and the
smaller network must still train. Untrained weights, nothing downloaded; the models come
with the ``models`` extra (the conftest applies ``sirfp_adapter.zoo``'s torchvision shim).
These tests check the mechanics, so they use the cheap ``gram`` measure and one pruning
step after one collected batch; the criterion itself is tested elsewhere.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from sirfp_adapter.criteria import SIRFP  # noqa: E402
from sirfp_adapter.schedule import SIRFPPruner  # noqa: E402
from sirfp_adapter.zoo import build_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TARGET = 0.6
CLASSES = 3

#: spec, input side (the smallest that every stage of the network accepts, about)
CONVOLUTIONAL = [
    pytest.param("torchvision:deeplabv3_resnet50", 32, marks=pytest.mark.slow),
    pytest.param("torchvision:fcn_resnet50", 32, marks=pytest.mark.slow),
    pytest.param("torchvision:lraspp_mobilenet_v3_large", 64),
    pytest.param("smp:DeepLabV3:resnet18", 64),
    pytest.param("smp:DeepLabV3Plus:resnet18", 64),
    pytest.param("smp:PSPNet:resnet18", 64),
    pytest.param("smp:Unet:resnet18", 64),
    pytest.param("smp:FPN:resnet18", 64),
]


@pytest.fixture(autouse=True)
def _exact_convolutions():
    """TF32 convolutions differ by ~1e-3 between layer shapes: compare in full float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _logits(output: Any) -> torch.Tensor:
    return output["out"] if isinstance(output, dict) else output


def _flops(model: nn.Module, x: torch.Tensor) -> int:
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def _widths(model: nn.Module) -> dict[str, tuple[int, ...]]:
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            out[name] = (m.in_channels, m.out_channels)
        elif isinstance(m, nn.Linear):
            out[name] = (m.in_features, m.out_features)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            out[name] = (m.num_features,)
        elif isinstance(m, nn.LayerNorm):
            out[name] = tuple(m.normalized_shape)
    return out


def _prune_and_check(spec: str, side: int, **options: Any) -> tuple[nn.Module, dict, dict, list]:
    """Prune ``spec`` to TARGET and check the properties; returns the model, its widths
    before and after, and the warnings the constructor raised."""
    torch.manual_seed(0)
    model = build_model(spec, num_classes=CLASSES).to(DEVICE)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    x = torch.randn(2, 3, side, side, device=DEVICE, generator=gen)
    base = _flops(model, x)
    before = _widths(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruner = SIRFPPruner(model, x, flops_reduction=TARGET, steps=1, interval=1, **options)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, side, side, device=DEVICE, generator=gen))
    assert pruner.step() is not None and pruner.done
    model.eval()
    with torch.no_grad():
        masked = _logits(model(x)).clone()
    pruner.finalize()
    with torch.no_grad():
        pruned = _logits(model(x))
    assert pruned.shape == (2, CLASSES, side, side)
    assert torch.isfinite(pruned).all()
    torch.testing.assert_close(pruned, masked, atol=1e-4, rtol=1e-4)  # hard == masked
    after = _widths(model)
    assert after.keys() == before.keys()
    assert all(min(w) >= 1 for w in after.values()), "a layer was emptied"
    assert sum(a != b for a, b in zip(after.values(), before.values())) > 0
    achieved = 1 - _flops(model, x) / base
    assert TARGET - 0.01 <= achieved <= TARGET + 0.01, achieved
    # the smaller network still trains: its gradients are finite and a gradient step lowers
    # its loss on a fixed batch (the same seed each pass: the same drop-path pattern, a
    # fixed objective; backtracking, as a random initialisation may be steep)
    model.train()
    labels = torch.randint(0, CLASSES, (2, side, side), device=DEVICE, generator=gen)

    def loss_now() -> torch.Tensor:
        torch.manual_seed(0)
        return nn.functional.cross_entropy(_logits(model(x)), labels)

    called: list[nn.Module] = []
    hook = nn.modules.module.register_module_forward_hook(lambda m, i, o: called.append(m))
    try:
        loss = loss_now()
    finally:
        hook.remove()
    loss.backward()
    # every parameter of every layer that ran (smp's PSPNet skips its encoder's last stages)
    params = list({id(p): p for m in called for p in m.parameters(recurse=False)}.values())
    assert params and all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    start = [p.detach().clone() for p in params]
    losses = []
    with torch.no_grad():
        for lr in (1e-3, 1e-4, 1e-5):
            for p, p0 in zip(params, start):
                p.copy_(p0 - lr * p.grad)
            losses.append(loss_now().item())
            if losses[-1] < loss.item():
                break
    assert losses[-1] < loss.item(), (loss.item(), losses)
    return model, before, after, [str(w.message) for w in caught]


@pytest.mark.parametrize(("spec", "side"), CONVOLUTIONAL)
def test_convolutional_networks_prune_to_the_target(spec: str, side: int) -> None:
    pytest.importorskip("torchvision" if spec.startswith("torchvision") else "segmentation_models_pytorch")
    *_, caught = _prune_and_check(spec, side, criterion=SIRFP("gram", budget=None))
    assert not [w for w in caught if "left out of SIRFP" in w]  # every group has (B, C, H, W) maps
    inexact = [w for w in caught if "left out of pruning" in w]
    if spec.startswith("smp:FPN"):  # its decoder's GroupNorm(32, 128) blocks cannot lose single channels
        assert len(inexact) == 1 and inexact[0].startswith("4 of 17 channel groups are left out of pruning")
        assert "GroupNorm(32, 128)" in inexact[0]
    else:
        assert not inexact


@pytest.mark.slow
def test_deeplabv3_resnet50_with_a_baseline_criterion() -> None:
    pytest.importorskip("torchvision")
    _prune_and_check("torchvision:deeplabv3_resnet50", 32, criterion="l1")


def test_segformer_prunes_its_convolutional_groups_and_names_the_token_layers() -> None:
    pytest.importorskip("segmentation_models_pytorch")
    _, before, after, caught = _prune_and_check("smp:Segformer:mit_b0", 64, criterion=SIRFP("gram", budget=None))
    # the trace leaves out what cannot lose channels exactly: LayerNorms over the channels,
    # and Torch-Pruning's coupling of each attention's query with its twice-as-wide key-value
    (exact,) = [w for w in caught if "left out of pruning" in w]
    assert exact.startswith("18 of 31 channel groups are left out of pruning")
    assert ("\n  encoder.block1.0.attn.kv: encoder.block1.0.attn.q is given channel 63 of its 32 output "
            "channels by the dependency graph\n") in exact
    assert "\n  encoder.block1.1.mlp.fc2: encoder.norm1 is LayerNorm((32,))\n" in exact
    # SIRFP leaves out the groups it cannot measure: the decoder's token MLPs
    (message,) = [w for w in caught if "left out of SIRFP" in w]
    assert message.startswith("4 of 13 channel groups have no (B, C, H, W) feature maps")
    assert ("\n  group decoder.mlp_stage.3.linear, measured at decoder.mlp_stage.3.linear: Linear output "
            "(2, 256, 256) is not (B, C, H, W)\n") in message
    assert message.endswith("'decoder.mlp_stage.3.linear']")
    # the token layers are untouched; the MLPs' depthwise convolutions and the decoder's fusion are pruned
    changed = {n for n in before if before[n] != after[n]}
    assert not any(n.endswith((".attn.q", ".attn.kv", ".attn.proj", ".norm1", ".norm2")) for n in changed)
    assert any(n.endswith("mlp.dwconv.dwconv") for n in changed)
    assert "decoder.fuse_stage.0" in changed
