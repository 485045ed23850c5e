"""Every measure is finite for finite inputs up to the dtype's largest value (issue 14):
sums and squares are taken of maps first scaled by a power of two near their peak."""

from __future__ import annotations

import pytest
import torch

from sirfp_adapter.measures import MEASURES, dice

# (measure, options): every code path that sums or squares map values
CASES = [
    ("js", {}), ("js", {"downsample": 3}), ("js", {"normalize": "relu_l1"}),
    ("js", {"normalize": "relu_l1", "downsample": 3}),
    ("hellinger", {}), ("hellinger", {"downsample": 3}), ("hellinger", {"normalize": "relu_l1"}),
    ("hellinger", {"normalize": "relu_l1", "downsample": 3}),
    ("kl", {}), ("kl", {"downsample": 3}), ("kl", {"normalize": "relu_l1"}),
    ("kl", {"normalize": "relu_l1", "downsample": 3}),
    ("gram", {}), ("dice", {}), ("dice", {"downsample": 3}),
]
# scale-invariant ones: the value for x * s equals the value for x
INVARIANT = [c for c in CASES if c[0] == "dice" or c[1].get("normalize") == "relu_l1"]


def unit_maps(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 6, 6, generator=g, dtype=torch.float64)
    x[0, 3] = -x[0, 3].abs()  # a dead channel in sample 0
    return x / x.abs().max()


@pytest.mark.parametrize(("name", "options"), CASES)
@pytest.mark.parametrize(("dtype", "peak"), [
    (torch.float32, 1e19), (torch.float32, 3.4e38), (torch.bfloat16, 1e30), (torch.bfloat16, 3.3e38),
    (torch.float16, 6.5e4), (torch.float64, 1e300), (torch.float64, 1.7e308),
])
def test_finite_for_huge_finite_inputs(name, options, dtype, peak):
    x = (unit_maps() * peak).to(dtype)
    assert torch.isfinite(x).all()
    assert torch.isfinite(MEASURES[name](x, **options)).all()


@pytest.mark.parametrize(("name", "options"), CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_finite_for_constant_maps_at_the_largest_value(name, options, dtype):
    top = torch.finfo(dtype).max
    x = torch.full((2, 3, 8, 8), top, dtype=dtype)
    x[:, 1] = -top
    x[0, 2, :4] = 0
    assert torch.isfinite(MEASURES[name](x, **options)).all()


@pytest.mark.parametrize(("name", "options"), INVARIANT)
@pytest.mark.parametrize("scale", [1e-300, 1e-30, 1e30, 1e300])
def test_scale_invariant_measures_keep_their_value_at_any_scale(name, options, scale):
    x = unit_maps(1)
    f = MEASURES[name]
    torch.testing.assert_close(f(x * scale, **options), f(x, **options), rtol=1e-12, atol=1e-12)


def test_dice_of_maps_of_very_different_magnitude():
    # channel 1 is channel 0 times 1e200, channel 2 is channel 0 times 1e-200: the exact Dice
    # 2 s / (1 + s^2) underflows to 0 at these ratios, and must not become NaN
    a = torch.rand(1, 1, 5, 5, dtype=torch.float64) + 0.1
    x = torch.cat([a, a * 1e200, a * 1e-200, a * 2.0], dim=1)
    d = dice(x)
    assert torch.isfinite(d).all()
    assert d[0, 1].item() == 0.0 and d[0, 2].item() == 0.0
    assert d[0, 3].item() == pytest.approx(2 * 2.0 / (1 + 4.0), rel=1e-6)
