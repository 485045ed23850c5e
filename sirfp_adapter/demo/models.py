"""Segmentation networks in plain torch, for tests, benchmarks and the built-in demo.

Three DeepLab-style networks share one head (ASPP with an image-pool branch, a 1×1
projection and a classifier):

* :class:`DeepLabLite` — a small ResNet-style backbone of basic blocks with dilation,
  trainable on a CPU in minutes (the demo's and the tests' model);
* :class:`DeepLabV3PlusLite` — the same backbone and ASPP with a DeepLabV3+ decoder:
  stride-4 features of the first stage join the upsampled ASPP output (a skip
  connection at high resolution, the layout of smp's ``DeepLabV3Plus``);
* :class:`DeepLabResNet` — a ResNet-50-style backbone of bottleneck blocks (layers
  3-4-6-3, expansion 4, dilated to output stride 8 like torchvision's
  ``deeplabv3_resnet50``); ``DeepLabResNet()`` has that network's size (about 39 M
  parameters), ``width`` scales every stage for quick tests.

Both contain what makes structured pruning hard — residual additions (coupled
channels), a concatenation (ASPP), a 1×1 image-pool map — and nothing exotic.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ASPP", "DeepLabLite", "DeepLabResNet", "DeepLabV3PlusLite"]


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Convolution (no bias), BatchNorm, ReLU; 'same' padding for odd kernels."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 conv-BN, an identity or 1×1 conv-BN shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1×1 reduce, 3×3 (stride, dilation), 1×1 expand (×4), shortcut."""

    expansion = 4

    def __init__(self, cin: int, mid: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        cout = mid * self.expansion
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + self.shortcut(x))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabV3): a 1×1 branch, one dilated 3×3 branch
    per rate and an image-pool branch, concatenated and projected by a 1×1 conv-BN-ReLU."""

    def __init__(self, cin: int, channels: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, channels, 1)] + [conv_bn_relu(cin, channels, 3, dilation=r) for r in rates]
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(cin, channels, 1))
        self.project = conv_bn_relu((len(rates) + 2) * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(F.interpolate(self.pool(x), size=x.shape[2:], mode="nearest"))
        return self.project(torch.cat(outs, dim=1))


class _DeepLab(nn.Module):
    """Backbone, ASPP, a 3×3 conv-BN-ReLU, a 1×1 classifier; logits upsampled to the input."""

    classifier: nn.Conv2d

    def __init__(self, backbone: nn.Module, cin: int, aspp_channels: int, rates: Sequence[int], n_classes: int) -> None:
        super().__init__()
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        self.backbone = backbone
        self.aspp = ASPP(cin, aspp_channels, rates)
        self.head = conv_bn_relu(aspp_channels, aspp_channels, 3)
        self.classifier = nn.Conv2d(aspp_channels, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.classifier(self.head(self.aspp(self.backbone(x))))
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)


class DeepLabLite(_DeepLab):
    """A small DeepLabV3: stem, four stages of basic blocks (output stride 8, dilations
    2 and 4 in the last two stages), ASPP with rates (2, 4, 6) and an image pool.

    Parameters
    ----------
    n_classes : int
        Number of output classes.
    widths : sequence of 4 ints
        Channels of the four stages (the stem has ``widths[0]``).
    blocks : int
        Basic blocks per stage.
    aspp_channels : int
        Channels of each ASPP branch and of the head.
    """

    def __init__(
        self,
        n_classes: int = 8,
        widths: Sequence[int] = (32, 64, 128, 128),
        blocks: int = 2,
        aspp_channels: int = 64,
    ) -> None:
        super().__init__(nn.Sequential(*_basic_stages(widths, blocks)), widths[3], aspp_channels, (2, 4, 6),
                         n_classes)


def _basic_stages(widths: Sequence[int], blocks: int) -> list[nn.Module]:
    """DeepLabLite's stem and four stages (strides 2, 2, 2, 1, 1; dilations 1, 1, 2, 4)."""
    if len(widths) != 4 or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"widths must be 4 positive integers, got {tuple(widths)!r}")
    stages: list[nn.Module] = [conv_bn_relu(3, widths[0], 3, stride=2)]
    cin = widths[0]
    for cout, stride, dilation in zip(widths, (2, 2, 1, 1), (1, 1, 2, 4), strict=True):
        layer = [BasicBlock(cin, cout, stride, dilation)]
        layer += [BasicBlock(cout, cout, 1, dilation) for _ in range(blocks - 1)]
        stages.append(nn.Sequential(*layer))
        cin = cout
    return stages


class DeepLabV3PlusLite(_DeepLab):
    """DeepLabLite with the DeepLabV3+ decoder (Chen et al., ECCV 2018).

    The stem and first stage (output stride 4) feed both the rest of the backbone and,
    reduced by a 1×1 conv-BN-ReLU to ``low_channels``, the decoder: the ASPP output is
    upsampled to stride 4, concatenated with them and refined by two 3×3 conv-BN-ReLU
    before the classifier — so thin structures the stride-8 path loses can come back
    through the skip connection.

    Parameters
    ----------
    n_classes : int
        Number of output classes.
    widths : sequence of 4 ints
        Channels of the four stages (the stem has ``widths[0]``).
    blocks : int
        Basic blocks per stage.
    aspp_channels : int
        Channels of each ASPP branch and of the decoder.
    low_channels : int
        Channels of the reduced stride-4 features (48 in the paper's ResNet-101 setting).
    """

    def __init__(
        self,
        n_classes: int = 8,
        widths: Sequence[int] = (32, 64, 128, 128),
        blocks: int = 2,
        aspp_channels: int = 64,
        low_channels: int = 16,
    ) -> None:
        if not isinstance(low_channels, int) or low_channels < 1:
            raise ValueError(f"low_channels must be a positive integer, got {low_channels!r}")
        stages = _basic_stages(widths, blocks)
        super().__init__(nn.Sequential(*stages[2:]), widths[3], aspp_channels, (2, 4, 6), n_classes)
        self.low = nn.Sequential(*stages[:2])
        self.reduce = conv_bn_relu(widths[0], low_channels, 1)
        self.head = nn.Sequential(conv_bn_relu(aspp_channels + low_channels, aspp_channels, 3),
                                  conv_bn_relu(aspp_channels, aspp_channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low(x)
        y = F.interpolate(self.aspp(self.backbone(low)), size=low.shape[2:], mode="bilinear", align_corners=False)
        y = self.classifier(self.head(torch.cat([y, self.reduce(low)], dim=1)))
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)


class DeepLabResNet(_DeepLab):
    """DeepLabV3 on a ResNet-50-style bottleneck backbone, output stride 8.

    ``DeepLabResNet(21)`` matches torchvision's ``deeplabv3_resnet50`` in layout and size
    (ResNet-50 layers 3-4-6-3, stage widths 64-128-256-512 expanded ×4 to 2048, layers 3
    and 4 dilated 2 and 4, ASPP 256 with rates 12-24-36, no auxiliary head).

    Parameters
    ----------
    n_classes : int
        Number of output classes.
    layers : sequence of 4 ints
        Bottleneck blocks per stage.
    width : int
        Bottleneck width of the first stage (64 in ResNet-50); later stages double it.
    aspp_channels : int
        Channels of each ASPP branch and of the head.
    """

    def __init__(
        self,
        n_classes: int = 21,
        layers: Sequence[int] = (3, 4, 6, 3),
        width: int = 64,
        aspp_channels: int = 256,
    ) -> None:
        if len(layers) != 4 or any(not isinstance(n, int) or n < 1 for n in layers):
            raise ValueError(f"layers must be 4 positive integers, got {tuple(layers)!r}")
        stem = nn.Sequential(conv_bn_relu(3, width, 7, stride=2), nn.MaxPool2d(3, stride=2, padding=1))
        stages: list[nn.Module] = [stem]
        cin = width
        for i, (n_blocks, stride, dilation) in enumerate(zip(layers, (1, 2, 1, 1), (1, 1, 2, 4), strict=True)):
            mid = width * 2**i
            blocks = [Bottleneck(cin, mid, stride, dilation)]
            cin = mid * Bottleneck.expansion
            blocks += [Bottleneck(cin, mid, 1, dilation) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
        super().__init__(nn.Sequential(*stages), cin, aspp_channels, (12, 24, 36), n_classes)
