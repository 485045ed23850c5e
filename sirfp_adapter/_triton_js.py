"""Triton kernel for the pairwise term of :func:`sirfp_adapter.measures.js` (CUDA).

Imported lazily by :mod:`sirfp_adapter.measures` only when the ``"triton"`` backend
is used (``backend="auto"`` on a CUDA tensor with Triton importable), so importing the
measures never imports Triton. This module holds only the kernel and a thin launcher;
normalisation, downsampling, dead channels, the batch loop and the final clamp and
symmetrisation stay in :mod:`sirfp_adapter.measures`, shared with the torch path.

What it computes
----------------
For one sample, ``p`` ``(C, N)`` float32 (each row a distribution over the ``N``
positions) and ``plogp = xlogy(p, p)``, the same ``(C, C)`` matrix as the torch path's
``_pairwise_js_terms``,

``T[i, j] = sum_k (s log s - p_ik log p_ik - p_jk log p_jk)``, ``s = p_ik + p_jk``,

which is ``2 r_ij = 2 (log 2 - JS(P_i, P_j))``, returned in float64.

How
---
* Layout: ``p`` is copied transposed to ``(N', C')`` (positions major, zero-padded
  to ``N'`` a multiple of the position chunk ``BK`` and ``C'`` a multiple of the
  channel tile), so a warp reads 32 consecutive channels at one position.
* Each program owns a ``BI x BJ`` tile of channel pairs (only tiles that reach the
  upper triangle ``j >= i`` are run; the launcher mirrors them) and walks the
  positions; per position it forms the ``BI x BJ`` outer sum ``s = p_i + p_j`` and
  adds ``s * log2(s)``: one logarithm per pair and position, the whole cost of the
  measure (``C^2 N / 2`` of them), so the kernel is bound by the GPU's special-function
  units (MUFU, 16 results per clock per SM on Hopper). On NVIDIA the logarithm is the
  hardware approximation ``lg2.approx.ftz.f32`` (absolute error about ``2^-22``);
  elsewhere (ROCm, the Triton interpreter) ``tl.log2``.
* ``0 log 0``: probabilities are clamped to the smallest normal float32 (``tiny``) in the
  copy, so ``s >= 2 tiny`` is normal (``ftz`` is harmless) and ``s log2 s`` is finite;
  a zero probability, or a padded position, then contributes about ``-3e-36`` instead
  of 0, far below float32 resolution of any sum it enters. The ``p log p`` terms come
  from the exact ``plogp`` of the caller.
* Accumulation, float32 throughout (float64 is slow on these units): per chunk of
  ``BK`` positions the ``BK`` terms are summed, then the chunk's ``sum_k (p_ik log2 p_ik +
  p_jk log2 p_jk)`` (precomputed per channel and chunk by torch) is subtracted, so the
  large ``s log s`` and ``p log p`` sums cancel chunk by chunk and what is carried is the
  non-negative contribution itself; the chunk contributions are added with Kahan
  compensation. The rounding error therefore stays at a few float32 ulps of the chunk
  terms and does not grow with ``N``; the result is ``O(1e-7)``-``O(1e-6)`` from the
  float64 reference in ``r`` (checked by the CUDA tests and reported by
  ``benchmarks/redundancy_speed.py``).
* Small ``C``: when there are too few tiles to fill the GPU the positions are split
  into ``S`` contiguous ranges run by separate programs; their partial ``(C', C')``
  sums are added in float64.

Memory: the ``(N', C')`` float32 copy, ``(N' / BK, C')`` chunk sums and ``S`` partial
``(C', C')`` float32 outputs; no ``C x C x N`` temporary.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["TileConfig", "choose_config", "pairwise_js_terms"]

_LN2 = math.log(2.0)
_TINY = torch.finfo(torch.float32).tiny
#: Rows per channel tile; each thread then holds ``BI x (BJ / (32 * warps))`` pairs.
_BI = 8
#: Positions per chunk (unrolled inner loop; a chunk's terms are summed before compensation).
_BK = 16
#: Candidate column-tile widths and their warps: every one gives each thread an 8 x 2 block
#: of pairs (8 x 1 for 32), so they differ only in how many pairs padding and the diagonal waste.
_BJ_WARPS = {256: 4, 128: 2, 64: 1, 32: 1}
#: 8 x 1 per thread needs about 1.8x the loads per logarithm of 8 x 2: count its pairs this much dearer.
_NARROW_PENALTY = 1.15
#: Warps per SM wanted before positions are split across programs.
_WARPS_PER_SM = 16


class TileConfig(NamedTuple):
    """Kernel tile shape: ``bi x bj`` channel pairs per program, ``bk`` positions per chunk."""

    bi: int
    bj: int
    bk: int
    num_warps: int


@triton.jit
def _log2(x, FAST: tl.constexpr):
    if FAST:
        # MUFU.LG2 without the subnormal fix-up; x >= 2 * tiny is normal here
        return tl.inline_asm_elementwise(
            "lg2.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1
        )
    else:
        return tl.log2(x)


@triton.jit
def _js_tiles_kernel(
    p_ptr,  # (NC * BK, CP) float32, probabilities clamped to >= tiny, positions major
    e_ptr,  # (NC, CP) float32, per chunk: sum_k p log2 p
    out_ptr,  # (S, CP, CP) float32
    n_chunks,
    chunks_per_split,
    CP: tl.constexpr,
    BI: tl.constexpr,
    BJ: tl.constexpr,
    BK: tl.constexpr,
    FAST: tl.constexpr,
):
    tj = tl.program_id(0)
    ti = tl.program_id(1)
    sp = tl.program_id(2)
    if (tj + 1) * BJ <= ti * BI:  # the tile lies strictly below the diagonal
        return
    c0 = sp * chunks_per_split
    c1 = tl.minimum(c0 + chunks_per_split, n_chunks)
    oi = ti * BI + tl.arange(0, BI)
    oj = tj * BJ + tl.arange(0, BJ)
    pa = p_ptr + c0.to(tl.int64) * (BK * CP) + oi[:, None]  # (BI, 1)
    pb = p_ptr + c0.to(tl.int64) * (BK * CP) + oj[None, :]  # (1, BJ)
    ea_ptr = e_ptr + c0.to(tl.int64) * CP + oi
    eb_ptr = e_ptr + c0.to(tl.int64) * CP + oj
    acc = tl.zeros((BI, BJ), dtype=tl.float32)
    comp = tl.zeros((BI, BJ), dtype=tl.float32)
    for _ in range(c0, c1):
        part = tl.zeros((BI, BJ), dtype=tl.float32)
        for kk in tl.static_range(BK):
            s = tl.load(pa + kk * CP) + tl.load(pb + kk * CP)  # (BI, BJ)
            part += s * _log2(s, FAST)
        ea = tl.load(ea_ptr)
        eb = tl.load(eb_ptr)
        pa += BK * CP
        pb += BK * CP
        ea_ptr += CP
        eb_ptr += CP
        # this chunk's non-negative contribution, added with Kahan compensation
        y = (part - (ea[:, None] + eb[None, :])) - comp
        t = acc + y
        comp = (t - acc) - y
        acc = t
    out = out_ptr + sp.to(tl.int64) * (CP * CP) + oi[:, None] * CP + oj[None, :]
    tl.store(out, acc - comp)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _computed_pairs(n_channels: int, bi: int, bj: int) -> int:
    """Pairs evaluated by the kernel: tiles reaching ``j >= i``, over the padded channels."""
    cp = -(-n_channels // bj) * bj
    n_tj = cp // bj
    return sum(n_tj - (ti * bi) // bj for ti in range(cp // bi)) * bi * bj


def choose_config(n_channels: int) -> TileConfig:
    """The column tile that evaluates the fewest pairs (padding and diagonal tiles included)."""

    def cost(bj: int) -> tuple[float, int]:
        pairs = _computed_pairs(n_channels, _BI, bj) * (_NARROW_PENALTY if bj == 32 else 1.0)
        return (pairs, -bj)  # ties: the wider tile (fewer programs)

    bj = min(_BJ_WARPS, key=cost)
    return TileConfig(_BI, bj, _BK, _BJ_WARPS[bj])


def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 4  # interpreter on CPU tensors: any small number
    return torch.cuda.get_device_properties(device).multi_processor_count


def pairwise_js_terms(p: Tensor, plogp: Tensor, config: TileConfig | None = None) -> Tensor:
    """``T[i, j] = sum_k (s log s - p_ik log p_ik - p_jk log p_jk)``, ``s = p_ik + p_jk``.

    Parameters
    ----------
    p : Tensor of shape (C, N), float32, CUDA
        One sample's per-channel distributions over the positions.
    plogp : Tensor of shape (C, N), float32
        ``torch.xlogy(p, p)``.
    config : TileConfig, optional
        Tile shape; default :func:`choose_config`. The result does not depend on it
        beyond float rounding.

    Returns
    -------
    Tensor of shape (C, C), float64, on ``p.device``
        Symmetric; ``T = 2 r`` (natural logarithms), as the torch path's
        ``_pairwise_js_terms``.
    """
    if p.dtype != torch.float32 or plogp.dtype != torch.float32:
        raise TypeError(f"p and plogp must be float32; got {p.dtype} and {plogp.dtype}")
    if p.dim() != 2 or plogp.shape != p.shape:
        shapes = f"{tuple(p.shape)} and {tuple(plogp.shape)}"
        raise ValueError(f"p and plogp must have the same shape (C, N); got {shapes}")
    if p.device.type != "cuda" and not _interpreting():
        raise ValueError(f"the Triton kernel needs CUDA tensors; got device {p.device}")
    n_channels, n_positions = p.shape
    cfg = config if config is not None else choose_config(n_channels)
    bi, bj, bk, num_warps = cfg
    if bj % bi:
        raise ValueError(f"the column tile must be a multiple of the row tile; got {cfg}")
    device = p.device
    cp = -(-n_channels // bj) * bj
    n_chunks = -(-n_positions // bk)
    n_full = n_positions // bk

    # positions-major copy, clamped to tiny (padding too: its terms are ~ -3e-36, negligible)
    pt = torch.full((n_chunks * bk, cp), _TINY, dtype=torch.float32, device=device)
    pt[:n_positions, :n_channels].copy_(p.transpose(0, 1)).clamp_min_(_TINY)
    # per channel and chunk: sum_k p log2 p (padding contributes 0)
    e = torch.zeros(n_chunks, cp, dtype=torch.float32, device=device)
    if n_full:
        e[:n_full, :n_channels] = plogp[:, : n_full * bk].reshape(n_channels, n_full, bk).sum(dim=-1).T
    if n_full < n_chunks:
        e[n_full, :n_channels] = plogp[:, n_full * bk :].sum(dim=-1)
    e.mul_(1.0 / _LN2)

    # split the positions when the tiles alone leave the GPU underused
    n_ti, n_tj = cp // bi, cp // bj
    n_tiles = sum(n_tj - (ti * bi) // bj for ti in range(n_ti))
    want = -(-_WARPS_PER_SM * _sm_count(device) // num_warps)  # programs
    splits = max(1, min(n_chunks, -(-want // n_tiles)))
    per_split = -(-n_chunks // splits)
    splits = -(-n_chunks // per_split)

    out = torch.zeros(splits, cp, cp, dtype=torch.float32, device=device)
    fast = device.type == "cuda" and torch.version.hip is None and not _interpreting()
    guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with guard:
        _js_tiles_kernel[(n_tj, n_ti, splits)](
            pt,
            e,
            out,
            n_chunks,
            per_split,
            CP=cp,
            BI=bi,
            BJ=bj,
            BK=bk,
            FAST=fast,
            num_warps=num_warps,
            num_stages=1,
        )
    t = out.sum(dim=0, dtype=torch.float64) if splits > 1 else out[0].to(torch.float64)
    upper = t[:n_channels, :n_channels].triu()
    return (upper + upper.triu(1).transpose(0, 1)) * _LN2
