"""Redundancy measures: float64 references, exact special cases, dtypes, chunking, memory, errors."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scipy.spatial.distance import jensenshannon  # noqa: E402
from scipy.special import softmax  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from sirfp_adapter import measures  # noqa: E402
from sirfp_adapter.measures import MEASURES, dice, get_measure, gram, hellinger, js, kl  # noqa: E402

LOG2 = math.log(2.0)
NORMALIZATIONS = ["softmax", "relu_l1", "relu_softmax"]


def maps(b: int = 2, c: int = 6, h: int = 5, w: int = 7, *, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=g) * scale


# ----------------------------------------------------------------------------- float64 references


def ref_probabilities(x: torch.Tensor, normalize: str) -> np.ndarray:
    a = x.double().numpy().reshape(x.shape[0], x.shape[1], -1)
    if normalize == "softmax":
        return softmax(a, axis=-1)
    a = np.maximum(a, 0.0)
    if normalize == "relu_softmax":
        return softmax(a, axis=-1)
    total = a.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, a / total, 1.0 / a.shape[-1])


def ref_js(x: torch.Tensor, normalize: str) -> np.ndarray:
    p = ref_probabilities(x, normalize)
    b, c, _ = p.shape
    r = np.zeros((c, c))
    for s in range(b):
        for i in range(c):
            for j in range(c):
                r[i, j] += LOG2 - jensenshannon(p[s, i], p[s, j]) ** 2  # scipy: sqrt(JS), base e
    return r / b


def ref_gram(x: torch.Tensor) -> np.ndarray:
    a = x.double().numpy().reshape(x.shape[0], x.shape[1], -1)
    b, c, _ = a.shape
    g = np.zeros((c, c))
    for s in range(b):
        f = [a[s, i] / (np.abs(a[s, i]).sum() + 1e-5) for i in range(c)]
        for i in range(c):
            for j in range(c):
                g[i, j] += float(np.dot(f[i], f[j]))
    return g / b


def ref_hellinger(x: torch.Tensor, normalize: str) -> np.ndarray:
    p = ref_probabilities(x, normalize)
    b, c, _ = p.shape
    bc = np.zeros((c, c))
    for s in range(b):
        for i in range(c):
            for j in range(c):
                bc[i, j] += np.sqrt(p[s, i] * p[s, j]).sum()
    return bc / b


def ref_kl(x: torch.Tensor, normalize: str, floor: float) -> np.ndarray:
    """-(KL(p_i || p_j) + KL(p_j || p_i)) / 2 term by term, log-probabilities floored at ``floor``."""
    p = ref_probabilities(x, normalize)
    with np.errstate(divide="ignore"):
        logp = np.maximum(np.log(p), floor)
    b, c, _ = p.shape
    r = np.zeros((c, c))
    for s in range(b):
        for i in range(c):
            for j in range(c):
                r[i, j] -= 0.5 * (np.sum(p[s, i] * (logp[s, i] - logp[s, j]))
                                  + np.sum(p[s, j] * (logp[s, j] - logp[s, i])))
    return r / b


def ref_dice(x: torch.Tensor) -> np.ndarray:
    a = np.maximum(x.double().numpy().reshape(x.shape[0], x.shape[1], -1), 0.0)
    b, c, _ = a.shape
    d = np.zeros((c, c))
    for s in range(b):
        for i in range(c):
            for j in range(c):
                den = (a[s, i] ** 2).sum() + (a[s, j] ** 2).sum()
                d[i, j] += 2 * np.dot(a[s, i], a[s, j]) / den if den > 0 else 0.0
    np.fill_diagonal(d, b)
    return d / b


def relu_with_dead(x: torch.Tensor) -> torch.Tensor:
    """Make channel 0 all zero and channel 1 all negative (dead after ReLU)."""
    x = x.clone()
    x[:, 0] = 0.0
    x[:, 1] = -x[:, 1].abs() - 0.1
    return x


# ----------------------------------------------------------------------------- js


@pytest.mark.parametrize("normalize", NORMALIZATIONS)
def test_js_matches_scipy_reference(normalize):
    x = maps()
    expected = ref_js(x, normalize)
    r = js(x, normalize=normalize)
    np.testing.assert_allclose(r.numpy(), expected, atol=3e-7, rtol=0)
    # float64 input is computed in float64: agreement to float32 rounding of the output
    r64 = js(x.double(), normalize=normalize)
    assert r64.dtype == torch.float32
    np.testing.assert_allclose(r64.numpy(), expected, atol=1e-7, rtol=0)


@pytest.mark.parametrize("normalize", NORMALIZATIONS)
def test_js_identical_maps_give_log2(normalize):
    base = maps(c=1).abs() + 0.1  # positive, so relu_l1 keeps them
    x = base.repeat(1, 4, 1, 1)
    r = js(x, normalize=normalize)
    np.testing.assert_allclose(r.numpy(), np.full((4, 4), LOG2), atol=1e-6, rtol=0)
    assert torch.all(r.diagonal() == torch.tensor(LOG2, dtype=torch.float32))  # exact


def test_js_disjoint_supports_give_zero():
    x = torch.zeros(2, 3, 4, 4)
    x[:, 0, :2] = torch.rand(2, 2, 4) + 0.5  # rows 0-1
    x[:, 1, 2:3] = torch.rand(2, 1, 4) + 0.5  # row 2
    x[:, 2, 3:] = torch.rand(2, 1, 4) + 0.5  # row 3
    r = js(x, normalize="relu_l1")
    off = r[~torch.eye(3, dtype=torch.bool)]
    assert torch.all(off.abs() <= 1e-6), r
    assert torch.all(r.diagonal() == torch.tensor(LOG2, dtype=torch.float32))


@pytest.mark.parametrize("normalize", NORMALIZATIONS)
def test_js_symmetric_in_range_float32_on_device(normalize):
    x = maps(c=9)
    r = js(x, normalize=normalize)
    assert r.shape == (9, 9) and r.dtype == torch.float32 and r.device == x.device
    assert torch.equal(r, r.T)
    assert torch.all(r >= 0) and torch.all(r <= LOG2)


@pytest.mark.parametrize("normalize", NORMALIZATIONS)
def test_js_independent_of_chunk(normalize):
    x = maps(b=2, c=11, h=4, w=6)
    full = js(x, normalize=normalize)
    for chunk in (1, 5, 37, 200, 11 * 11 * 24 - 1):
        np.testing.assert_allclose(js(x, normalize=normalize, chunk=chunk).numpy(), full.numpy(), atol=1e-6, rtol=0)


@settings(max_examples=25)
@given(
    c=st.integers(1, 7),
    h=st.integers(1, 4),
    w=st.integers(1, 4),
    chunk=st.integers(1, 300),
    seed=st.integers(0, 2**16),
    normalize=st.sampled_from(NORMALIZATIONS),
)
def test_js_chunk_property(c, h, w, chunk, seed, normalize):
    x = maps(b=1, c=c, h=h, w=w, seed=seed)
    r = js(x, normalize=normalize, chunk=chunk)
    assert torch.equal(r, r.T) and torch.isfinite(r).all()
    np.testing.assert_allclose(r.numpy(), js(x, normalize=normalize).numpy(), atol=1e-6, rtol=0)


def test_block_shape_respects_budget():
    for c, n, budget in [(64, 4096, 4096), (256, 8192, 2**24), (3, 10, 1), (300, 7, 50), (5, 100_000, 2**20)]:
        side, chunk = measures._block_shape(c, n, budget)
        assert 1 <= side <= c and 1 <= chunk <= n
        assert side * side * chunk <= budget


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_js_low_precision_input(dtype):
    x = maps(c=5)
    low = x.to(dtype)
    r = js(low)
    assert r.dtype == torch.float32 and r.device == low.device
    assert torch.equal(r, js(low.float()))  # cast up, then float32 math
    np.testing.assert_allclose(r.numpy(), js(x).numpy(), atol=2e-2, rtol=0)


def test_measures_ignore_autocast():
    x = maps(c=5)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        inside = {name: f(x) for name, f in MEASURES.items()}
    for name, f in MEASURES.items():
        assert inside[name].dtype == torch.float32
        assert torch.equal(inside[name], f(x)), name


class LargestTensor(TorchDispatchMode):
    """Record the largest number of elements of any tensor an aten op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def naive_js(x: torch.Tensor) -> torch.Tensor:
    """Broadcast over a C x C x N tensor (what ``js`` must not do)."""
    p = torch.softmax(x.flatten(-2), dim=-1)[0]
    m = 0.5 * (p[:, None] + p[None, :])
    kl_p = (torch.xlogy(p, p)[:, None] - torch.xlogy(p[:, None], m)).sum(-1)
    kl_q = (torch.xlogy(p, p)[None, :] - torch.xlogy(p[None, :], m)).sum(-1)
    return LOG2 - 0.5 * (kl_p + kl_q)


def test_js_memory_is_bounded_by_chunk():
    c, h, w, chunk = 64, 64, 64, 4096
    x = maps(b=1, c=c, h=h, w=w, scale=1.0)
    bound = max(chunk, x.numel(), c * c)  # O(chunk + C*HW + C^2)
    with LargestTensor() as rec:
        small = js(x, chunk=chunk)
    assert rec.largest <= bound < c * c * h * w
    np.testing.assert_allclose(small.numpy(), js(x).numpy(), atol=1e-6, rtol=0)
    # the recorder does see a C x C x HW temporary when one is built
    with LargestTensor() as rec_naive:
        naive = naive_js(x)
    assert rec_naive.largest >= c * c * h * w
    naive.fill_diagonal_(LOG2)
    np.testing.assert_allclose(small.numpy(), naive.numpy(), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- gram, hellinger, dice


def test_gram_matches_naive_formula():
    x = maps(b=3, c=7)
    g = gram(x)
    assert g.dtype == torch.float32 and torch.equal(g, g.T)
    np.testing.assert_allclose(g.numpy(), ref_gram(x), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("normalize", NORMALIZATIONS)
def test_hellinger_matches_naive_reference(normalize):
    x = maps(b=3, c=7)
    bc = hellinger(x, normalize=normalize)
    expected = ref_hellinger(x, normalize)
    np.fill_diagonal(expected, 1.0)
    np.testing.assert_allclose(bc.numpy(), expected, atol=1e-6, rtol=0)
    assert torch.equal(bc, bc.T) and torch.all((bc >= 0) & (bc <= 1))


def test_hellinger_identical_and_disjoint():
    x = torch.zeros(1, 3, 2, 4)
    x[0, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    x[0, 1] = x[0, 0]
    x[0, 2, 1] = 1.0
    bc = hellinger(x, normalize="relu_l1")
    assert bc[0, 1].item() == pytest.approx(1.0, abs=1e-6)
    assert bc[0, 2].item() == 0.0 and bc[1, 2].item() == 0.0


@pytest.mark.parametrize("normalize", NORMALIZATIONS)
def test_kl_matches_naive_reference(normalize):
    x = relu_with_dead(maps(b=3, c=7)) if normalize == "relu_l1" else maps(b=3, c=7)
    r = kl(x, normalize=normalize)
    expected = ref_kl(x, normalize, math.log(torch.finfo(torch.float32).tiny))
    np.testing.assert_allclose(r.numpy(), expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(r, r.T) and torch.all(r <= 0) and torch.all(r.diagonal() == 0)


def test_kl_is_the_symmetrised_divergence_and_disjoint_maps_are_finite():
    from scipy.stats import entropy
    x = maps(b=1, c=2)
    p = ref_probabilities(x, "softmax")[0]
    expected = -0.5 * (entropy(p[0], p[1]) + entropy(p[1], p[0]))  # scipy: KL in nats
    assert kl(x)[0, 1].item() == pytest.approx(expected, rel=1e-5)
    y = torch.zeros(1, 2, 2, 2)
    y[0, 0, 0, 0] = y[0, 1, 1, 1] = 1.0
    far = kl(y, normalize="relu_l1")[0, 1].item()
    assert math.isfinite(far) and far == pytest.approx(math.log(torch.finfo(torch.float32).tiny), rel=1e-6)


def test_dice_matches_naive_reference():
    x = relu_with_dead(maps(b=3, c=7))
    d = dice(x)
    np.testing.assert_allclose(d.numpy(), ref_dice(x), atol=1e-6, rtol=0)
    assert torch.equal(d, d.T)
    assert torch.all(d[0, 1:] == 0) and torch.all(d[1, 2:] == 0)  # dead channels
    assert torch.all(d.diagonal() == 1)


# ----------------------------------------------------------------------------- all measures


@pytest.mark.parametrize("name", sorted(MEASURES))
@pytest.mark.parametrize("normalize", NORMALIZATIONS)
def test_dead_channels_give_finite_values(name, normalize):
    x = relu_with_dead(maps(c=5))
    x[:, 2] = 0.0
    kwargs = {"normalize": normalize} if name in ("js", "hellinger", "kl") else {}
    r = get_measure(name)(x, **kwargs)
    assert r.shape == (5, 5) and r.dtype == torch.float32
    assert torch.isfinite(r).all() and torch.equal(r, r.T)


def test_relu_l1_dead_channel_is_uniform():
    x = relu_with_dead(maps(b=1, c=3, h=3, w=3))
    uniform = torch.ones(1, 1, 3, 3)
    probe = torch.cat([x[:, :1], uniform, x[:, 2:]], dim=1)
    np.testing.assert_allclose(js(x, normalize="relu_l1")[0, 2].item(), js(probe, normalize="relu_l1")[1, 2].item())


@pytest.mark.parametrize("name", ["js", "hellinger", "kl", "dice"])
@pytest.mark.parametrize("size", [3, (2, 5), (8, 9)])
def test_downsample_equals_measure_of_pooled_input(name, size):
    x = maps(c=4, h=8, w=9)
    f = get_measure(name)
    pooled = torch.nn.functional.adaptive_avg_pool2d(x, size)
    assert torch.equal(f(x, downsample=size), f(pooled))
    if size != (8, 9):
        assert not torch.equal(f(x, downsample=size), f(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(MEASURES))
def test_cuda_matches_cpu(name):
    x = maps(c=9, h=6, w=6)
    r = get_measure(name)(x.cuda().half())
    assert r.device.type == "cuda" and r.dtype == torch.float32
    np.testing.assert_allclose(r.cpu().numpy(), get_measure(name)(x.half()).numpy(), atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- registry and errors


def test_registry():
    assert set(MEASURES) == {"js", "gram", "hellinger", "kl", "dice"}
    for name, f in MEASURES.items():
        assert get_measure(name) is f
    with pytest.raises(TypeError):
        MEASURES["cosine"] = js  # read-only
    with pytest.raises(ValueError, match=r"unknown measure 'cosine'; expected one of: dice, gram, hellinger, js, kl"):
        get_measure("cosine")
    with pytest.raises(ValueError, match="unknown measure None"):
        get_measure(None)


@pytest.mark.parametrize("name", sorted(MEASURES))
@pytest.mark.parametrize(
    ("x", "exc", "match"),
    [
        (np.zeros((1, 2, 3, 3)), TypeError, r"x must be a torch.Tensor of shape \(B, C, H, W\); got ndarray"),
        (torch.zeros(1, 2, 3, 3, dtype=torch.int64), TypeError, "x must have a floating dtype; got torch.int64"),
        (torch.zeros(2, 3, 3), ValueError, r"x must be a 4-D tensor of shape \(B, C, H, W\); got shape \(2, 3, 3\)"),
        (torch.zeros(0, 2, 3, 3), ValueError, r"x must have B, C, H and W all >= 1; got shape \(0, 2, 3, 3\)"),
    ],
)
def test_bad_x(name, x, exc, match):
    with pytest.raises(exc, match=match):
        get_measure(name)(x)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"normalize": "l1"}, ValueError, r"normalize must be one of 'softmax', 'relu_l1', 'relu_softmax'; got 'l1'"),
        ({"chunk": 0}, ValueError, "chunk must be a positive int or None; got 0"),
        ({"chunk": 2.5}, TypeError, "chunk must be a positive int or None; got float"),
        ({"chunk": True}, TypeError, "chunk must be a positive int or None; got bool"),
        ({"downsample": 0}, ValueError, "downsample must be None, a positive int or a pair of positive ints"),
        ({"downsample": (2, -1)}, ValueError, r"pair of positive ints \(h, w\); got \(2, -1\)"),
        ({"downsample": (2, 2, 2)}, TypeError, r"got \(2, 2, 2\)"),
        ({"downsample": 1.5}, TypeError, "got 1.5"),
        ({"positions": 0}, ValueError, "positions must be a positive int or None; got 0"),
        ({"positions": 2.0}, TypeError, "positions must be a positive int or None; got float"),
        ({"positions": 4, "generator": 7}, TypeError, "generator must be a torch.Generator or None; got int"),
        ({"backend": "cuda"}, ValueError, r"backend must be one of 'auto', 'torch', 'triton'; got 'cuda'"),
        ({"backend": None}, ValueError, r"backend must be one of 'auto', 'torch', 'triton'; got None"),
        ({"backend": "triton"}, ValueError, r"backend='triton' needs a CUDA tensor; x is on cpu"),
    ],
)
def test_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        js(maps(), **kwargs)


def test_bad_options_other_measures():
    with pytest.raises(ValueError, match="normalize must be one of"):
        hellinger(maps(), normalize="max")
    with pytest.raises(ValueError, match="downsample must be None"):
        dice(maps(), downsample=(0, 1))
    with pytest.raises(ValueError, match="normalize must be one of"):
        kl(maps(), normalize="max")


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_meta_device_runs_without_host_sync(name):
    """Meta tensors have no data: any ``.item()``/host copy would raise, so this checks there is none."""
    x = torch.empty(2, 5, 4, 4, device="meta", dtype=torch.float16)
    r = get_measure(name)(x)
    assert r.shape == (5, 5) and r.dtype == torch.float32 and r.device.type == "meta"


# ----------------------------------------------------------------------------- js on sampled positions


def test_js_positions_at_least_all_positions_is_exact():
    x = maps(c=5, h=4, w=6)
    assert torch.equal(js(x, positions=24), js(x)) and torch.equal(js(x, positions=10**6), js(x))


def test_js_positions_is_an_unbiased_estimate():
    """The mean over many draws converges to the exact value (4 standard errors, fixed seed), peaked maps too."""
    x = maps(b=1, c=4, h=6, w=6, scale=3.0)
    exact = ref_js(x, "softmax")
    g = torch.Generator().manual_seed(3)
    draws = torch.stack([js(x, positions=9, generator=g) for _ in range(3000)]).double().numpy()
    off = ~np.eye(4, dtype=bool)
    assert draws[:, off].max() > LOG2  # single draws overshoot: they are not clamped there
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert (np.abs(draws.mean(axis=0) - exact)[off] < 4 * se[off]).all()
    assert (draws[:, off] >= 0).all() and (draws.std(axis=0)[off] > 1e-4).all()


def test_js_positions_follow_the_generator():
    x = maps(c=6, h=8, w=8)
    a = js(x, positions=8, generator=torch.Generator().manual_seed(1))
    b = js(x, positions=8, generator=torch.Generator().manual_seed(1))
    c = js(x, positions=8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, a.T) and (a >= 0).all() and (a.diagonal() == np.float32(LOG2)).all()


# ----------------------------------------------------------------------------- js backends (CPU side)


def test_js_torch_backend_is_the_cpu_default():
    x = maps(c=7)
    assert torch.equal(js(x, backend="torch"), js(x))
    assert torch.equal(js(x, backend="auto", chunk=50), js(x, backend="torch", chunk=50))


def test_select_backend(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    f32, f64 = torch.float32, torch.float64
    monkeypatch.setattr(measures, "_triton_import_error", lambda: None)
    assert measures._select_backend("auto", cuda, f32) == "triton"
    assert measures._select_backend("auto", cuda, f64) == "torch"  # float64 stays float64
    assert measures._select_backend("auto", cpu, f32) == "torch"
    assert measures._select_backend("torch", cuda, f32) == "torch"
    assert measures._select_backend("triton", cuda, f32) == "triton"
    with pytest.raises(ValueError, match=r"backend='triton' computes in float32; x is torch.float64"):
        measures._select_backend("triton", cuda, f64)
    with pytest.raises(ValueError, match=r"backend='triton' needs a CUDA tensor; x is on cpu"):
        measures._select_backend("triton", cpu, f32)
    missing = "ModuleNotFoundError: No module named 'triton'"
    monkeypatch.setattr(measures, "_triton_import_error", lambda: missing)
    assert measures._select_backend("auto", cuda, f32) == "torch"
    with pytest.raises(ImportError, match=r"backend='triton' needs the triton package, which could not be "
                                          r"imported \(ModuleNotFoundError: No module named 'triton'\)"):
        measures._select_backend("triton", cuda, f32)


def test_importing_measures_does_not_import_triton():
    code = (
        "import sys, torch\n"
        "before = 'triton' in sys.modules\n"
        "from sirfp_adapter import measures\n"
        "measures.js(torch.randn(1, 3, 4, 4))\n"
        "assert 'sirfp_adapter._triton_js' not in sys.modules\n"
        "assert ('triton' in sys.modules) == before, 'measures imported triton'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- js backends: Triton on CUDA


def _cuda_triton_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "needs a CUDA device (torch.cuda.is_available() is False)"
    error = measures._triton_import_error()
    if error is not None:
        return f"needs triton ({error})"
    return None


_CUDA_TRITON_SKIP = _cuda_triton_skip_reason()
requires_cuda_triton = pytest.mark.skipif(_CUDA_TRITON_SKIP is not None, reason=_CUDA_TRITON_SKIP or "")
#: Triton kernel vs the float32 torch path, and vs the float64 torch path, in r (float32 rounding
#: of both paths, the kernel's lg2.approx and its float32 accumulation; about 1e-6 seen).
TRITON_ATOL = 5e-6


@requires_cuda_triton
@pytest.mark.parametrize("normalize", NORMALIZATIONS)
@pytest.mark.parametrize(
    ("c", "h", "w"),
    [(1, 3, 3), (5, 5, 7), (37, 9, 13), (70, 16, 17), (130, 8, 8), (300, 11, 3)],
)  # C not multiples of the 32/64-channel tiles, H*W not multiples of the 16-position chunk
def test_cuda_triton_js_matches_torch_path(c, h, w, normalize):
    x = maps(b=2, c=c, h=h, w=w, seed=c + h * w, scale=3.0)
    if c >= 2 and normalize == "relu_l1":
        x = relu_with_dead(x)
    xc = x.cuda()
    r = js(xc, normalize=normalize, backend="triton")
    assert r.device == xc.device and r.dtype == torch.float32 and r.shape == (c, c)
    assert torch.equal(r, r.T) and torch.isfinite(r).all()
    assert torch.all(r.diagonal() == torch.tensor(LOG2, dtype=torch.float32, device=xc.device))
    assert torch.all(r >= 0) and torch.all(r <= LOG2)
    torch_path = js(xc, normalize=normalize, backend="torch")
    np.testing.assert_allclose(r.cpu().numpy(), torch_path.cpu().numpy(), atol=TRITON_ATOL, rtol=0)
    reference = js(xc.double(), normalize=normalize)  # float64 torch path
    np.testing.assert_allclose(r.cpu().numpy(), reference.cpu().numpy(), atol=TRITON_ATOL, rtol=0)


@requires_cuda_triton
@pytest.mark.parametrize(
    "config",
    [(8, 32, 16, 1), (8, 64, 16, 1), (8, 128, 16, 2), (8, 256, 16, 4), (8, 512, 16, 4), (16, 128, 16, 4),
     (8, 64, 8, 1), (8, 128, 32, 2)],
)
def test_cuda_triton_tile_configs(config):
    from sirfp_adapter import _triton_js

    x = maps(b=1, c=70, h=20, w=25, seed=3, scale=3.0).cuda()
    p = measures._probabilities(x[0], "softmax")
    expected = measures._pairwise_js_terms(p.double(), torch.xlogy(p.double(), p.double()), 2**24)
    t = _triton_js.pairwise_js_terms(p, torch.xlogy(p, p), _triton_js.TileConfig(*config))
    assert t.dtype == torch.float64 and torch.equal(t, t.T)
    # t = 2 r: twice the tolerance in r
    np.testing.assert_allclose(t.cpu().numpy(), expected.cpu().numpy(), atol=2 * TRITON_ATOL, rtol=0)


@requires_cuda_triton
def test_cuda_triton_split_positions():
    """Few channels, many positions: the positions are split across programs; same values."""
    x = maps(b=2, c=3, h=64, w=96, seed=5).cuda()
    for normalize in NORMALIZATIONS:
        np.testing.assert_allclose(
            js(x, normalize=normalize, backend="triton").cpu().numpy(),
            js(x.double(), normalize=normalize).cpu().numpy(),
            atol=TRITON_ATOL,
            rtol=0,
        )


@requires_cuda_triton
@pytest.mark.parametrize("normalize", NORMALIZATIONS)
def test_cuda_triton_identical_maps_give_log2(normalize):
    base = maps(c=1, h=12, w=11).abs() + 0.1
    r = js(base.repeat(1, 40, 1, 1).cuda(), normalize=normalize, backend="triton")
    # the kernel's approximate log2 of s = 2p against torch's p log p: a few float32 ulps
    np.testing.assert_allclose(r.cpu().numpy(), np.full((40, 40), LOG2), atol=2e-6, rtol=0)


@requires_cuda_triton
def test_cuda_triton_disjoint_supports_give_zero():
    x = torch.zeros(2, 3, 4, 4)
    x[:, 0, :2] = torch.rand(2, 2, 4) + 0.5
    x[:, 1, 2:3] = torch.rand(2, 1, 4) + 0.5
    x[:, 2, 3:] = torch.rand(2, 1, 4) + 0.5
    r = js(x.cuda(), normalize="relu_l1", backend="triton").cpu()
    assert torch.all(r[~torch.eye(3, dtype=torch.bool)].abs() <= 1e-6), r


@requires_cuda_triton
def test_cuda_auto_backend_uses_triton_for_float32_only(monkeypatch):
    calls = []
    original = measures._triton_pairwise_js_terms

    def spy(*args):
        calls.append(args[0].shape)
        return original(*args)

    monkeypatch.setattr(measures, "_triton_pairwise_js_terms", spy)
    x = maps(b=2, c=6).cuda()
    js(x)
    js(x.half())
    assert calls == [(6, 35)] * 4  # two samples each
    js(x.double())
    js(x, backend="torch")
    assert len(calls) == 4
