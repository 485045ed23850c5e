"""Channel redundancy measures: activations ``(B, C, H, W)`` to a ``(C, C)`` matrix.

Every measure here is a pure function of one batch of feature maps ``x`` (the
output of a normalization layer, say) that returns a symmetric ``(C, C)``
``float32`` tensor on ``x``'s device whose entry ``(i, j)`` is large when
channels ``i`` and ``j`` carry alike spatial information. The collector averages
these matrices over training iterations; the planner turns ``1 - r`` (or
``max - r``) into edge weights of a MEWCP graph.

All measures:

* accept any floating dtype, including ``float16``/``bfloat16`` produced under
  autocast; inputs are cast up to ``float32`` (``float64`` inputs are computed
  in ``float64``) and the arithmetic runs with autocast disabled;
* run on ``x``'s device, never synchronise with the host and never build an
  autograd graph (the input is detached);
* average the per-sample matrices over the batch;
* return finite values for finite inputs, including dead (all-zero or
  all-negative) channels and values up to the dtype's largest: sums and squares
  are taken of maps first divided by their largest magnitude.

The measures
------------
Write ``x[b, i]`` flattened over the ``N = H * W`` positions as ``x_bi``.

``js`` -- **the paper's measure** (Wu et al., "Structural Pruning via
Spatial-aware Information Redundancy for Semantic Segmentation", AAAI 2025,
Eq. 3). Each map is turned into a probability distribution ``P_bi`` over the
``N`` positions (``normalize="softmax"``: ``softmax(x_bi)``; ``"relu_l1"``:
``relu(x_bi) / sum(relu(x_bi))``, with a dead channel mapped to the uniform
distribution; ``"relu_softmax"``: ``softmax(relu(x_bi))``, the map after a ReLU) and

.. math::

    r_{ij} = \\frac{1}{B} \\sum_b \\left( \\log 2 - \\mathrm{JS}(P_{bi}, P_{bj}) \\right),
    \\qquad
    \\mathrm{JS}(P, Q) = \\tfrac12 \\mathrm{KL}(P \\| M) + \\tfrac12 \\mathrm{KL}(Q \\| M),
    \\quad M = \\tfrac12 (P + Q),

natural logarithms, so ``JS`` and ``r`` lie in ``[0, log 2]``: identical maps
give ``r = log 2``, maps with disjoint supports give ``r = 0``. The paper uses
the full-resolution maps; ``downsample`` reproduces its resolution ablation.

``gram`` -- **the released code's measure** (the SIRFP repository, a DCFP fork,
which contains no JS divergence). Per sample, each signed map (before ReLU) is
divided by its L1 norm plus ``1e-5`` and the ``C x C`` Gram matrix of these
vectors is taken, ``G_bij = <x_bi / (|x_bi|_1 + 1e-5), x_bj / (|x_bj|_1 + 1e-5)>``,
then averaged over the batch, diagonal included as computed. It is an inner
product, not a divergence: the paper's Table 9 finds the raw dot product clearly
worse than JS, KL or Dice. Offered to reproduce the released code.

``hellinger`` -- the Bhattacharyya coefficient of the same distributions as
``js``, ``BC_ij = sum_p sqrt(P_bi[p] P_bj[p])`` in ``[0, 1]`` (1 for identical
maps, 0 for disjoint supports), averaged over the batch. ``1 - BC`` is the
squared Hellinger distance. It is one matrix product of square roots, so it is
as cheap as ``gram`` while still being a divergence between distributions.

``kl`` -- the symmetrised Kullback-Leibler divergence of the same distributions as
``js``, negated: ``r_ij = -(KL(P_bi || P_bj) + KL(P_bj || P_bi)) / 2`` averaged over
the batch, in ``(-inf, 0]`` (0 for identical maps; the paper's Table 9 "SIRFP-KL").
KL is infinite where one distribution vanishes and the other does not, so
log-probabilities are floored at the log of the dtype's smallest normal number
(-87.3 in float32): disjoint supports give a large finite value. One batched matrix
product, like ``hellinger``.

``dice`` -- the soft Dice similarity of the ReLU maps ``a_bi = relu(x_bi)``,
``D_bij = 2 <a_bi, a_bj> / (|a_bi|^2 + |a_bj|^2)`` in ``[0, 1]`` (the
paper's Table 9 lists Dice among the measures that work); a dead channel gives 0
off the diagonal, and the diagonal is set to 1 for every channel, dead ones
included.

Cost: ``gram``, ``hellinger``, ``kl`` and ``dice`` are one batched matrix product,
``O(B C^2 N)`` multiply-adds. ``js`` is exact but has no matrix-product form: it
evaluates one logarithm per channel pair and position, ``O(B C^2 N / 2)``
logarithms (``positions=S`` samples ``S`` of the ``N`` positions per sample for an
unbiased estimate at ``S / N`` of that cost), in blocks whose temporary is bounded by ``chunk`` elements, so its
memory stays ``O(C^2 + C N + chunk)``. On CUDA tensors, when Triton can be imported,
``js`` evaluates those logarithms in a Triton kernel instead (``backend="auto"``; see
:func:`js`), which is what makes full-resolution maps affordable during training; the
torch code is the reference and the fallback. No measure validates that ``x`` is
finite (that would synchronise with the device): NaN or inf in, NaN out.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MEASURES", "Measure", "check_options", "dice", "get_measure", "gram", "hellinger", "js", "kl"]

Normalize = Literal["softmax", "relu_l1", "relu_softmax"]
Backend = Literal["auto", "torch", "triton"]
Downsample = int | tuple[int, int] | None
Measure = Callable[..., Tensor]

_NORMALIZATIONS = ("softmax", "relu_l1", "relu_softmax")
_BACKENDS = ("auto", "torch", "triton")
#: Default bound on the elements of the pairwise temporaries of ``js``'s torch path on the CPU
#: (1 MiB in float32, cache-sized).
DEFAULT_CHUNK = 2**18
#: The same on other devices (64 MiB in float32): on a GPU the torch path is bound by kernel
#: launches, one per block and operation, so it wants few, large blocks.
DEFAULT_CHUNK_DEVICE = 2**24
#: Added to the L1 norm in ``gram``, as in the released code.
GRAM_EPS = 1e-5
#: Channel-block side below which ``js`` splits the positions instead of shrinking blocks.
_MIN_SIDE = 16
_LOG2 = math.log(2.0)


# ----------------------------------------------------------------------------- validation


def _check_x(x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (B, C, H, W); got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must have a floating dtype; got {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"x must be a 4-D tensor of shape (B, C, H, W); got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"x must have B, C, H and W all >= 1; got shape {tuple(x.shape)}")
    return x


def _check_normalize(normalize: object) -> str:
    if not isinstance(normalize, str) or normalize not in _NORMALIZATIONS:
        raise ValueError(f"normalize must be one of 'softmax', 'relu_l1', 'relu_softmax'; got {normalize!r}")
    return normalize


def _check_chunk(chunk: object) -> int | None:
    if chunk is None:
        return None
    if isinstance(chunk, bool) or not isinstance(chunk, int):
        raise TypeError(f"chunk must be a positive int or None; got {type(chunk).__name__}")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive int or None; got {chunk}")
    return chunk


def _check_positions(positions: object, generator: object) -> int | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator; got one on {generator.device}")
    if positions is None:
        return None
    if isinstance(positions, bool) or not isinstance(positions, int):
        raise TypeError(f"positions must be a positive int or None; got {type(positions).__name__}")
    if positions < 1:
        raise ValueError(f"positions must be a positive int or None; got {positions}")
    return positions


def _check_backend(backend: object) -> str:
    if not isinstance(backend, str) or backend not in _BACKENDS:
        raise ValueError(f"backend must be one of 'auto', 'torch', 'triton'; got {backend!r}")
    return backend


def _check_downsample(downsample: object) -> tuple[int, int] | None:
    if downsample is None:
        return None
    msg = f"downsample must be None, a positive int or a pair of positive ints (h, w); got {downsample!r}"
    if isinstance(downsample, int) and not isinstance(downsample, bool):
        size = (downsample, downsample)
    elif isinstance(downsample, tuple | list) and len(downsample) == 2:
        size = tuple(downsample)
    else:
        raise TypeError(msg)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in size):
        raise TypeError(msg)
    if min(size) < 1:
        raise ValueError(msg)
    return (int(size[0]), int(size[1]))


# ----------------------------------------------------------------------------- shared steps


@contextlib.contextmanager
def _exact_math(x: Tensor) -> Iterator[None]:
    """No autograd graph, and autocast off on ``x``'s device (where autocast exists)."""
    device_type = x.device.type
    available = getattr(torch.amp, "is_autocast_available", None)
    ok = available(device_type) if available is not None else device_type in ("cpu", "cuda")
    autocast_off = torch.autocast(device_type=device_type, enabled=False) if ok else contextlib.nullcontext()
    with torch.no_grad(), autocast_off:
        yield


def _prepare(x: Tensor, downsample: tuple[int, int] | None) -> Tensor:
    """Detach, cast up (half/bf16/float32 -> float32, float64 stays) and pool if asked."""
    work_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.detach().to(work_dtype)
    if downsample is not None:
        # pool maps scaled to at most 2 in magnitude (the sums of huge finite values would
        # overflow), then scale back: an average is never larger than the map's maximum, and
        # a power-of-two scale changes no bit of the result
        scale = _power_of_two_scale(x.abs().amax(dim=(-2, -1), keepdim=True))
        x = F.adaptive_avg_pool2d(x / scale, downsample) * scale
    return x


def _scale_exponent(peak: Tensor) -> Tensor:
    """``e`` with ``peak / 2**e`` in ``[1, 2)`` (``e = 0`` for ``peak == 0``)."""
    _, exponent = torch.frexp(peak)  # peak = mantissa * 2**exponent, mantissa in [0.5, 1)
    return torch.where(peak > 0, exponent - 1, torch.zeros_like(exponent))


def _power_of_two_scale(peak: Tensor) -> Tensor:
    """``2**e`` with ``peak / 2**e`` in ``[1, 2)`` (1 for ``peak == 0``): dividing by it is
    exact, and ``2**e <= peak`` cannot overflow."""
    return torch.exp2(_scale_exponent(peak).to(peak.dtype))


def _probabilities(x: Tensor, normalize: str) -> Tensor:
    """``(..., H, W)`` maps to ``(..., H*W)`` distributions over the positions."""
    flat = x.flatten(-2)
    if normalize == "softmax":
        return torch.softmax(flat, dim=-1)
    if normalize == "relu_softmax":
        return torch.softmax(torch.relu(flat), dim=-1)
    a = torch.relu(flat)
    a = a / _power_of_two_scale(a.amax(dim=-1, keepdim=True))  # scale first: the sum cannot overflow
    total = a.sum(dim=-1, keepdim=True)
    alive = total > 0
    p = a / torch.where(alive, total, torch.ones_like(total))
    uniform = torch.full_like(p, 1.0 / p.shape[-1])
    return torch.where(alive, p, uniform)


def _finish(r: Tensor, diagonal: float | None) -> Tensor:
    """Exactly symmetric float32 result; optionally an exact diagonal."""
    r = 0.5 * (r + r.transpose(0, 1))
    if diagonal is not None:
        r.diagonal().fill_(diagonal)
    return r.to(torch.float32).contiguous()


# ----------------------------------------------------------------------------- js


def _block_shape(n_channels: int, n_positions: int, budget: int) -> tuple[int, int]:
    """Channel-block side ``s`` and position chunk ``n`` with ``s * s * n <= budget``.

    Keep all positions in one chunk while that leaves blocks of at least
    ``_MIN_SIDE`` channels (fewer, larger kernel calls); otherwise use
    ``_MIN_SIDE``-channel blocks (or fewer when ``budget`` is tiny) and split the
    positions. Blocks are then evened out so that the last one is not a sliver.
    """
    min_side = min(n_channels, _MIN_SIDE)
    side = math.isqrt(budget // n_positions) if budget >= n_positions else 0
    if side >= min_side:
        side, n = min(side, n_channels), n_positions
    else:
        side = max(1, min(min_side, math.isqrt(budget)))
        n = max(1, min(n_positions, budget // (side * side)))
    n_blocks = -(-n_channels // side)
    side = -(-n_channels // n_blocks)
    return side, n


@functools.lru_cache(maxsize=1)
def _triton_import_error() -> str | None:
    """None if the Triton kernel module imports, else why not (checked once, lazily)."""
    try:
        from sirfp_adapter import _triton_js  # noqa: F401  (imports triton)
    except Exception as err:  # noqa: BLE001 - ImportError, or a broken installation (then: torch)
        return f"{type(err).__name__}: {err}"
    return None


def _select_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """``"torch"`` or ``"triton"`` for ``js`` on ``device`` with working dtype ``dtype``."""
    if backend == "torch":
        return "torch"
    if backend == "auto":
        usable = device.type == "cuda" and dtype == torch.float32 and _triton_import_error() is None
        return "triton" if usable else "torch"
    if device.type != "cuda":
        raise ValueError(f"backend='triton' needs a CUDA tensor; x is on {device.type}")
    if dtype != torch.float32:
        raise ValueError(
            f"backend='triton' computes in float32; x is {dtype} (use backend='torch' for float64 arithmetic)"
        )
    error = _triton_import_error()
    if error is not None:
        raise ImportError(f"backend='triton' needs the triton package, which could not be imported ({error})")
    return "triton"


def _triton_pairwise_js_terms(p: Tensor, plogp: Tensor, budget: int) -> Tensor:
    """`_pairwise_js_terms` through the Triton kernel (``budget`` does not apply there)."""
    from sirfp_adapter import _triton_js

    return _triton_js.pairwise_js_terms(p, plogp)


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    """float64 for the small per-block sums over position chunks (MPS has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _pairwise_js_terms(p: Tensor, plogp: Tensor, budget: int) -> Tensor:
    """``T[i, j] = sum_k (s log s - p_ik log p_ik - p_jk log p_jk)``, ``s = p_ik + p_jk``.

    ``p`` is ``(C, N)``, ``plogp = xlogy(p, p)``. Every term is ``>= 0`` and
    ``T = 2 r``. Loops over the upper triangle of channel blocks and over
    position chunks; the only large temporaries are two ``(bi, bj, n)`` buffers
    (``s`` and ``log s``) of at most ``budget`` elements together, reused for every
    block. Partial sums over position
    chunks are accumulated in float64 (``(bi, bj)``-sized). The lower triangle is
    mirrored.
    """
    n_channels, n_positions = p.shape
    side, n = _block_shape(n_channels, n_positions, max(1, budget // 2))  # two buffers share it
    acc_dtype = _accumulator_dtype(p.device)
    buf = torch.empty(side * side * n, dtype=p.dtype, device=p.device)
    logs = torch.empty_like(buf)
    tiny = torch.finfo(p.dtype).tiny  # clamping 0 to it gives 0 * log(tiny) = 0
    out = torch.empty(n_channels, n_channels, dtype=acc_dtype, device=p.device)
    for i0 in range(0, n_channels, side):
        pi, ei = p[i0 : i0 + side], plogp[i0 : i0 + side]
        for j0 in range(i0, n_channels, side):
            pj, ej = p[j0 : j0 + side], plogp[j0 : j0 + side]
            bi, bj = pi.shape[0], pj.shape[0]
            acc = torch.zeros(bi, bj, dtype=acc_dtype, device=p.device)
            for k0 in range(0, n_positions, n):
                k1 = min(k0 + n, n_positions)
                s = buf[: bi * bj * (k1 - k0)].view(bi, bj, k1 - k0)
                torch.add(pi[:, None, k0:k1], pj[None, :, k0:k1], out=s)
                log_s = logs[: s.numel()].view_as(s)
                torch.clamp_min(s, tiny, out=log_s).log_()
                s.mul_(log_s)  # s log s with 0 log 0 = 0; several times faster than xlogy_ on CPU
                s.sub_(ei[:, None, k0:k1]).sub_(ej[None, :, k0:k1])
                acc += s.sum(dim=-1)
            out[i0 : i0 + bi, j0 : j0 + bj] = acc
            if j0 != i0:
                out[j0 : j0 + bj, i0 : i0 + bi] = acc.transpose(0, 1)
    return out


def js(
    x: Tensor,
    *,
    normalize: Normalize = "softmax",
    downsample: Downsample = None,
    positions: int | None = None,
    generator: torch.Generator | None = None,
    chunk: int | None = None,
    backend: Backend = "auto",
) -> Tensor:
    """The paper's redundancy ``r_ij = log 2 - JS(P_i, P_j)``, averaged over the batch.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W)
        Feature maps, any floating dtype (half and bfloat16 are cast up to
        float32), any device.
    normalize : {"softmax", "relu_l1", "relu_softmax"}, default "softmax"
        How a channel's map becomes a distribution over the ``H*W`` positions:
        a softmax over the positions, ReLU followed by division by the sum, or
        ReLU followed by the softmax (the map as it is after a ReLU activation:
        on BatchNorm outputs followed by a ReLU, the map read after the activation).
        With ``"relu_l1"`` a dead channel (all zero after ReLU) is mapped to the
        uniform distribution, which keeps every value finite (its redundancy
        with another channel is then ``log 2`` minus the JS divergence between
        that channel's map and the uniform map).
    downsample : int or (int, int), optional
        Average-pool the maps to this size first (``adaptive_avg_pool2d``). The
        paper uses full resolution (``None``); pooling is its Table 8 ablation.
    positions : int, optional
        Estimate each sample's pairwise sum from this many positions drawn
        uniformly without replacement (a fresh draw per sample), scaled by
        ``H*W / positions``: an unbiased estimate of the exact value at
        ``positions / (H*W)`` of the pairwise cost; a single estimate can exceed
        ``log 2`` (it is not clamped there, which would bias the average that
        the collector keeps). The distributions themselves are always normalised over every
        position. ``None`` (default), or at least ``H*W``: exact.
    generator : torch.Generator, optional
        A CPU generator for the positions' draws (default: torch's global one).
    chunk : int, optional
        Maximum number of elements of the pairwise temporaries of the torch
        path (default ``2**18`` on the CPU, 1 MiB in float32, which stays in
        cache: larger values are slower there; ``2**24`` on other devices, where
        fewer, larger blocks mean fewer kernel launches). The result does not
        depend on it beyond float rounding. The Triton kernel keeps its
        temporaries in registers and ignores it.
    backend : {"auto", "torch", "triton"}, default "auto"
        Who evaluates the pairwise logarithms. ``"torch"``: blocked torch
        operations, any device, float32 or float64 (the reference).
        ``"triton"``: a Triton kernel (``sirfp_adapter._triton_js``), CUDA and
        float32 only. ``"auto"``: ``"triton"`` when ``x`` is a CUDA tensor, the
        working dtype is float32 (any input but float64) and Triton can be
        imported, otherwise ``"torch"``. Triton is imported only then, never
        when this module is.

    Returns
    -------
    Tensor of shape (C, C), float32, on ``x.device``
        Symmetric, entries in ``[0, log 2]`` (``>= 0`` for a ``positions``
        estimate), diagonal exactly ``log 2``.

    Raises
    ------
    TypeError
        If ``x`` is not a floating torch.Tensor, or ``chunk``/``downsample``/
        ``positions``/``generator`` has the wrong type.
    ValueError
        If ``x`` is not 4-D or is empty, ``normalize`` or ``backend`` is
        unknown, ``chunk``/``downsample``/``positions`` is not positive, or
        ``backend="triton"`` is asked for a tensor that is not on CUDA or is
        float64.
    ImportError
        If ``backend="triton"`` and Triton cannot be imported.

    Notes
    -----
    Eq. 3 of Wu et al., "Structural Pruning via Spatial-aware Information
    Redundancy for Semantic Segmentation" (AAAI 2025):
    ``r_ij = log 2 - JS(P_i, P_j)`` with
    ``JS(P, Q) = KL(P || M) / 2 + KL(Q || M) / 2``, ``M = (P + Q) / 2``,
    natural logarithms, so ``JS`` is in ``[0, log 2]``. Computed per sample
    and averaged over the batch.

    The computation is exact, through ``JS(P, Q) = H(M) - H(P)/2 - H(Q)/2``
    with ``H`` the entropy. Since ``sum_k s_k = 2`` for ``s = p_i + p_j``,
    ``H(M) = log 2 - (1/2) sum_k s_k log s_k``, hence

    ``r_ij = (1/2) sum_k (s_k log s_k - p_ik log p_ik - p_jk log p_jk)``,

    with every summand ``p log(s/p) + q log(s/q) >= 0``. The per-channel terms
    ``p log p`` cost ``O(C N)``; the pairwise ``s log s`` has no matrix-product
    form and is evaluated block by block over the upper triangle of channel
    pairs and over position chunks, with reusable ``(bi, bj, n)`` temporaries
    of at most ``chunk`` elements together, so the peak extra memory is
    ``O(C^2 + C N + chunk)`` and a ``C x C x N`` tensor is never formed.
    Subtracting the entropies per position before summing (instead of
    subtracting three summed entropies of size ``log N``) keeps the error
    relative to ``r`` itself. ``0 log 0 = 0`` (``s * log(max(s, tiny))``, several
    times faster than ``torch.xlogy`` on CPU). Arithmetic is
    float32 (float64 for float64 input) with autocast disabled; sums over
    position chunks and over the batch are accumulated in float64 (float32 on
    MPS); results are clamped to ``[0, log 2]`` against rounding.

    With ``positions=S < N`` each sample's sum over positions is replaced by
    ``N / S`` times its sum over ``S`` positions drawn uniformly without replacement
    (the same positions for every channel pair of that sample, a new draw per
    sample): since every summand is a function of one position, the expectation is
    the exact sum. The estimate stays ``>= 0`` but is not clamped at ``log 2``
    (clamping draws would bias their mean); its variance falls as the EMA folds in
    more batches. It is largest for peaked maps whose mass few positions carry.

    Backends. Both share everything but the pairwise sum: casting,
    ``downsample``, the probabilities (dead channels included), ``p log p``,
    the batch loop, the clamp and the symmetrisation. The Triton kernel tiles
    the upper triangle of channel pairs, walks the positions in chunks of 16
    and evaluates ``s log2 s`` with the hardware's approximate ``log2``
    (``lg2.approx``, absolute error about ``2**-22``), in float32: each chunk's
    sum has the chunk's ``p log p`` terms subtracted before it is added, with
    Kahan compensation, to the pair's total, so the error does not grow with
    ``H*W``. Its results differ from the torch path's by float32 rounding:
    4.5e-7 at most from the float64 reference in ``r`` for C = 256 to 2048 at
    H x W = 128 x 256 (the float32 torch path: 1.8e-7; the CUDA tests allow
    ``5e-6``; see ``benchmarks/results/redundancy_speed_gpu.md``). It is bound
    by the GPU's special-function units, one logarithm per pair and position:
    one sample at C = 2048, 128 x 256 takes about 28 ms on an H200, the torch
    path 1.3 s. Its extra memory is three ``C x H*W`` float32 maps (``p``,
    ``p log p`` and a transposed copy for the kernel) plus ``O(C^2)``.
    """
    x = _check_x(x)
    normalize = _check_normalize(normalize)
    budget = _check_chunk(chunk)
    size = _check_downsample(downsample)
    sampled = _check_positions(positions, generator)
    backend = _check_backend(backend)
    if budget is None:
        budget = DEFAULT_CHUNK if x.device.type == "cpu" else DEFAULT_CHUNK_DEVICE
    with _exact_math(x):
        x = _prepare(x, size)
        if _select_backend(backend, x.device, x.dtype) == "triton":
            pairwise = _triton_pairwise_js_terms
        else:
            pairwise = _pairwise_js_terms
        n_batch, n_channels = x.shape[:2]
        total = torch.zeros(n_channels, n_channels, dtype=_accumulator_dtype(x.device), device=x.device)
        n_positions = x.shape[-2] * x.shape[-1]
        estimate = sampled is not None and sampled < n_positions
        for b in range(n_batch):
            p = _probabilities(x[b], normalize)  # (C, N)
            if not estimate:
                total += pairwise(p, torch.xlogy(p, p), budget)
                continue
            index = torch.randperm(n_positions, generator=generator)[:sampled].to(p.device, non_blocking=True)
            p = p[:, index]
            total += pairwise(p, torch.xlogy(p, p), budget) * (n_positions / sampled)
        # an estimate is left unclamped above: clamping single draws would bias their average
        r = (total * (0.5 / n_batch)).clamp_(0.0, None if estimate else _LOG2)
        return _finish(r, diagonal=_LOG2)


# ----------------------------------------------------------------------------- matrix-product measures


def gram(x: Tensor) -> Tensor:
    """The released code's redundancy: Gram matrix of L1-normalised signed maps.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W)
        Feature maps (the released code hooks the BatchNorm outputs, before
        ReLU), any floating dtype, any device.

    Returns
    -------
    Tensor of shape (C, C), float32, on ``x.device``
        Symmetric; the diagonal holds each map's squared L2 norm over its squared
        L1 norm (plus epsilon), as computed.

    Raises
    ------
    TypeError, ValueError
        If ``x`` is not a 4-D, non-empty, floating torch.Tensor.

    Notes
    -----
    What the SIRFP release computes in place of Eq. 3 (read from its code; no
    JS divergence appears there): per sample ``b``, with ``f_bi = x_bi /
    (sum_k |x_bik| + 1e-5)`` the flattened signed map of channel ``i``,
    ``G_bij = <f_bi, f_bj>``, then ``G = mean_b G_b``. One batched matrix
    product. It is an inner product, not a divergence, and its scale depends on
    the map size (roughly ``1 / N`` for spread-out maps), so values from layers
    of different resolutions are not comparable. The result is symmetrised
    (``(G + G^T) / 2``) to remove matmul rounding asymmetry.
    """
    x = _check_x(x)
    with _exact_math(x):
        x = _prepare(x, None)
        f = x.flatten(-2)  # (B, C, N)
        scale = _power_of_two_scale(f.abs().amax(dim=-1, keepdim=True))  # (B, C, 1)
        f = f / scale  # |f| < 2: the L1 norm cannot overflow
        # x / (|x|_1 + eps) == f / (|f|_1 + eps / scale)
        f = f / (f.abs().sum(dim=-1, keepdim=True) + GRAM_EPS / scale)
        g = torch.bmm(f, f.transpose(1, 2)).mean(dim=0)
        return _finish(g, diagonal=None)


def hellinger(
    x: Tensor,
    *,
    normalize: Normalize = "softmax",
    downsample: Downsample = None,
) -> Tensor:
    """Bhattacharyya coefficient between the channels' spatial distributions.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W)
        Feature maps, any floating dtype, any device.
    normalize : {"softmax", "relu_l1", "relu_softmax"}, default "softmax"
        As in :func:`js` (a dead channel is uniform under ``"relu_l1"``).
    downsample : int or (int, int), optional
        Average-pool the maps to this size first.

    Returns
    -------
    Tensor of shape (C, C), float32, on ``x.device``
        Symmetric, entries in ``[0, 1]``, diagonal exactly 1.

    Raises
    ------
    TypeError, ValueError
        As in :func:`js`.

    Notes
    -----
    With ``P_bi`` the distributions of :func:`js`,
    ``BC_ij = mean_b sum_k sqrt(P_bik P_bjk) = mean_b (sqrt(P_b) sqrt(P_b)^T)_ij``:
    1 for identical maps, 0 for disjoint supports. ``1 - BC_ij`` is the squared
    Hellinger distance ``H^2(P_i, P_j) = (1/2) sum_k (sqrt(p_ik) - sqrt(p_jk))^2``,
    a divergence between the same distributions as the paper's JS (Wu et al.,
    AAAI 2025, Eq. 3); both are f-divergences and bound each other, but this one
    costs a single batched matrix product instead of one logarithm per pair and
    position. Not in the paper or its code.
    """
    x = _check_x(x)
    normalize = _check_normalize(normalize)
    size = _check_downsample(downsample)
    with _exact_math(x):
        q = _probabilities(_prepare(x, size), normalize).sqrt_()  # (B, C, N)
        bc = torch.bmm(q, q.transpose(1, 2)).mean(dim=0).clamp_(0.0, 1.0)
        return _finish(bc, diagonal=1.0)


def kl(
    x: Tensor,
    *,
    normalize: Normalize = "softmax",
    downsample: Downsample = None,
) -> Tensor:
    """Negated symmetrised Kullback-Leibler divergence between the channels' spatial distributions.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W)
        Feature maps, any floating dtype, any device.
    normalize : {"softmax", "relu_l1", "relu_softmax"}, default "softmax"
        As in :func:`js` (a dead channel is uniform under ``"relu_l1"``).
    downsample : int or (int, int), optional
        Average-pool the maps to this size first.

    Returns
    -------
    Tensor of shape (C, C), float32, on ``x.device``
        Symmetric, entries ``<= 0``, diagonal exactly 0.

    Raises
    ------
    TypeError, ValueError
        As in :func:`js`.

    Notes
    -----
    With ``P_bi`` the distributions of :func:`js` and ``L_bi = max(log P_bi, log tiny)``
    (``tiny`` the dtype's smallest normal number),

    .. math::

        r_{ij} = -\\frac{1}{2B} \\sum_b \\sum_k (P_{bik} - P_{bjk}) (L_{bik} - L_{bjk}),

    which is ``-(KL(P_i || P_j) + KL(P_j || P_i)) / 2`` wherever no probability is below
    ``tiny``. Expanded, ``sum_k (p_i - p_j)(l_i - l_j) = a_i + a_j - <p_i, l_j> - <p_j, l_i>``
    with ``a_i = <p_i, l_i>``: one batched matrix product. Under ``"softmax"`` the
    log-probabilities come from ``log_softmax`` (no ``log(0)`` for moderate inputs). The
    paper's Table 9 (Wu et al., AAAI 2025) reports KL among the measures that work,
    without saying how it was symmetrised; this is the Jeffreys divergence, halved.
    """
    x = _check_x(x)
    normalize = _check_normalize(normalize)
    size = _check_downsample(downsample)
    with _exact_math(x):
        work = _prepare(x, size)
        floor = math.log(torch.finfo(work.dtype).tiny)
        if normalize != "relu_l1":  # a softmax: the log-probabilities from log_softmax
            flat = work.flatten(-2)
            logp = torch.log_softmax(flat if normalize == "softmax" else torch.relu(flat), dim=-1)
            p = logp.exp()
        else:
            p = _probabilities(work, normalize)
            logp = p.log()
        logp = logp.clamp_(min=floor)  # also maps -inf (underflow, log 0) to the floor
        own = (p * logp).sum(dim=-1)  # (B, C)
        cross = torch.bmm(p, logp.transpose(1, 2))  # (B, C, C): <p_i, l_j>
        jeffreys = own[:, :, None] + own[:, None, :] - cross - cross.transpose(1, 2)
        return _finish(-0.5 * jeffreys.clamp_(min=0.0).mean(dim=0), diagonal=0.0)


def dice(x: Tensor, *, downsample: Downsample = None) -> Tensor:
    """Soft Dice similarity of the channels' ReLU maps, averaged over the batch.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W)
        Feature maps, any floating dtype, any device.
    downsample : int or (int, int), optional
        Average-pool the maps to this size first (before the ReLU).

    Returns
    -------
    Tensor of shape (C, C), float32, on ``x.device``
        Symmetric, entries in ``[0, 1]``, diagonal exactly 1.

    Raises
    ------
    TypeError, ValueError
        If ``x`` is not a 4-D, non-empty, floating torch.Tensor, or
        ``downsample`` is invalid.

    Notes
    -----
    With ``a_bi = relu(x_bi)`` flattened,
    ``D_ij = mean_b 2 <a_bi, a_bj> / (|a_bi|^2 + |a_bj|^2)``. A dead channel
    (all zero after ReLU) has similarity 0 with every other channel; the
    diagonal is set to 1 for every channel, dead or not. ``D = 1`` iff the maps
    are equal, and it is invariant to scaling both maps by the same factor.
    Squaring is never done on the raw values, which overflows for large finite
    inputs (float32 from about ``1e19``): each map is divided by the power of two
    ``2**e_i`` just below its peak, ``u_i = a_i / 2**e_i`` (exact), and
    ``D_ij = 2 <u_i, u_j> / (t |u_i|^2 + |u_j|^2 / t)`` with
    ``t = 2**(e_i - e_j)``, the same value, finite for any finite input. The paper's Table 9 (Wu et al.,
    AAAI 2025) reports Dice among the measures that work; the exact form used
    there is not given, this is the standard soft Dice. One batched matrix
    product.
    """
    x = _check_x(x)
    size = _check_downsample(downsample)
    with _exact_math(x):
        a = torch.relu(_prepare(x, size).flatten(-2))  # (B, C, N)
        peak = a.amax(dim=-1)  # (B, C)
        alive = peak > 0
        e = _scale_exponent(peak)  # a_i = 2**e_i u_i with max u_i in [1, 2)
        u = a / torch.exp2(e.to(a.dtype))[..., None]
        inner = torch.bmm(u, u.transpose(1, 2))  # (B, C, C), entries < 4 N: no overflow
        sq = torch.diagonal(inner, dim1=1, dim2=2)  # (B, C): |u_bi|^2 >= 1 for a live channel
        # D_ij = 2 <u_i, u_j> / (t |u_i|^2 + |u_j|^2 / t), t = 2**(e_i - e_j) (inf or 0: D = 0)
        t = torch.exp2((e[:, :, None] - e[:, None, :]).to(a.dtype))
        d = 2.0 * inner / (t * sq[:, :, None] + sq[:, None, :] / t)
        both = alive[:, :, None] & alive[:, None, :]
        d = torch.where(both, d, torch.zeros_like(d)).mean(dim=0).clamp_(0.0, 1.0)
        return _finish(d, diagonal=1.0)


# ----------------------------------------------------------------------------- registry

#: Read-only registry of the measures by name.
MEASURES: Mapping[str, Measure] = MappingProxyType(
    {"js": js, "gram": gram, "hellinger": hellinger, "kl": kl, "dice": dice}
)


def get_measure(name: str) -> Measure:
    """Return the measure registered under ``name``.

    Parameters
    ----------
    name : str
        One of ``"dice"``, ``"gram"``, ``"hellinger"``, ``"js"``, ``"kl"``.

    Returns
    -------
    callable
        ``f(x, **options) -> Tensor`` of shape ``(C, C)``.

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the valid names.
    """
    if isinstance(name, str) and name in MEASURES:
        return MEASURES[name]
    raise ValueError(f"unknown measure {name!r}; expected one of: {', '.join(sorted(MEASURES))}")



def check_options(name: str, **options: Any) -> None:
    """Check a measure's options before any map is measured (the collector calls it at once).

    Raises the `TypeError` the call would raise for an option the measure does not take
    (naming only those), and the measure's own `TypeError` / `ValueError` for a bad value.

    >>> check_options("js", normalize="relu_softmax", positions=256)
    >>> check_options("gram", positions=256)
    Traceback (most recent call last):
    ...
    TypeError: measure 'gram' does not take the option(s) ['positions']; it takes: none
    """
    measure = get_measure(name)
    takes = [p for p in inspect.signature(measure).parameters if p != "x"]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise TypeError(f"measure {name!r} does not take the option(s) {unknown}; it takes: "
                        f"{', '.join(takes) if takes else 'none'}")
    if "normalize" in options:
        _check_normalize(options["normalize"])
    if "chunk" in options:
        _check_chunk(options["chunk"])
    if "positions" in options or "generator" in options:
        _check_positions(options.get("positions"), options.get("generator"))
    if "backend" in options:
        _check_backend(options["backend"])
    if "downsample" in options:
        _check_downsample(options["downsample"])


# ---------------------------------------------------------------------------
# Public access to the pieces of `js`, for benchmarks and diagnostics
# ---------------------------------------------------------------------------


def probabilities(x: Tensor, normalize: str = "softmax") -> Tensor:
    """Feature maps ``(..., H, W)`` as the ``(..., H*W)`` distributions `js` and `hellinger` compare.

    ``normalize`` is ``"softmax"``, ``"relu_l1"`` (a dead map becomes uniform) or
    ``"relu_softmax"``.
    """
    return _probabilities(x, _check_normalize(normalize))


def triton_import_error() -> str | None:
    """None when the Triton backend of `js` can be imported, else the reason it cannot."""
    return _triton_import_error()


def triton_default_tiles(n_channels: int) -> tuple[int, int, int, int]:
    """The Triton kernel's default tile shape ``(rows, columns, positions per chunk, warps)`` for C channels."""
    from sirfp_adapter import _triton_js

    return tuple(_triton_js.choose_config(n_channels))  # type: ignore[return-value]


def triton_js_terms(p: Tensor, plogp: Tensor, tiles: tuple[int, int, int, int] | None = None) -> Tensor:
    """The Triton kernel alone (CUDA): pairwise JS terms of distributions ``p`` ``(C, N)`` and ``p log p``.

    ``tiles`` overrides the tile shape (`triton_default_tiles`); the result is ``2 * JS``
    off the diagonal, as `js` uses it.
    """
    from sirfp_adapter import _triton_js

    return _triton_js.pairwise_js_terms(p, plogp, None if tiles is None else _triton_js.TileConfig(*tiles))
