"""Peeling kernels: EHGP (the SIRFP paper's Algorithm 1) on complete and general graphs."""

from __future__ import annotations

import numpy as np
from numba import njit

from mewcp.kernels.gains import set_gains

# ---------------------------------------------------------------------------
# Peeling (EHGP, the SIRFP paper's Algorithm 1)
# ---------------------------------------------------------------------------


@njit(cache=True)
def _subtract_and_min(s: np.ndarray, row: np.ndarray) -> float:  # pragma: no cover
    """``s -= row`` and return ``min(s)``, with eight independent running minima."""
    n = s.shape[0]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = np.inf
    i = 0
    while i + 8 <= n:
        v0 = s[i] - row[i]
        v1 = s[i + 1] - row[i + 1]
        v2 = s[i + 2] - row[i + 2]
        v3 = s[i + 3] - row[i + 3]
        v4 = s[i + 4] - row[i + 4]
        v5 = s[i + 5] - row[i + 5]
        v6 = s[i + 6] - row[i + 6]
        v7 = s[i + 7] - row[i + 7]
        s[i], s[i + 1], s[i + 2], s[i + 3] = v0, v1, v2, v3
        s[i + 4], s[i + 5], s[i + 6], s[i + 7] = v4, v5, v6, v7
        m0 = v0 if v0 < m0 else m0
        m1 = v1 if v1 < m1 else m1
        m2 = v2 if v2 < m2 else m2
        m3 = v3 if v3 < m3 else m3
        m4 = v4 if v4 < m4 else m4
        m5 = v5 if v5 < m5 else m5
        m6 = v6 if v6 < m6 else m6
        m7 = v7 if v7 < m7 else m7
        i += 8
    while i < n:
        v = s[i] - row[i]
        s[i] = v
        m0 = v if v < m0 else m0
        i += 1
    return min(min(min(m0, m1), min(m2, m3)), min(min(m4, m5), min(m6, m7)))


@njit(cache=True)
def peel_dense(w: np.ndarray, n_remove: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Remove ``n_remove`` vertices of a complete graph, least score first.

    Returns the removed vertices in order and each one's score at removal: the sum
    of its weights to the vertices still present. Ties go to the lowest index.
    O(n * n_remove) after an O(n^2) pass for the initial gains (`set_gains`). Removed vertices are kept at
    ``+inf`` (``inf - w == inf``), so each step is one contiguous pass that
    subtracts the removed row and finds the minimum, then a scan for the first
    index holding it.
    """
    n = w.shape[0]
    s = set_gains(w, np.arange(n))  # s[i]: row i's sum, left to right
    order = np.empty(n_remove, dtype=np.int64)
    scores = np.empty(n_remove)
    k = 0
    for i in range(1, n):
        if s[i] < s[k]:
            k = i
    for t in range(n_remove):
        order[t] = k
        scores[t] = s[k]
        s[k] = np.inf
        best = _subtract_and_min(s, w[k])
        k = 0
        while s[k] != best:
            k += 1
    return order, scores


@njit(cache=True)
def _heap_less(deg: np.ndarray, sc: np.ndarray, vx: np.ndarray, a: int, b: int) -> bool:  # pragma: no cover
    if deg[a] != deg[b]:
        return deg[a] < deg[b]
    if sc[a] != sc[b]:
        return sc[a] < sc[b]
    return vx[a] < vx[b]


@njit(cache=True)
def _heap_swap(deg: np.ndarray, sc: np.ndarray, vx: np.ndarray, a: int, b: int) -> None:  # pragma: no cover
    deg[a], deg[b] = deg[b], deg[a]
    sc[a], sc[b] = sc[b], sc[a]
    vx[a], vx[b] = vx[b], vx[a]


@njit(cache=True)
def _heap_push(deg, sc, vx, size, d, s, v):  # pragma: no cover
    deg[size] = d
    sc[size] = s
    vx[size] = v
    i = size
    while i > 0:
        p = (i - 1) // 2
        if _heap_less(deg, sc, vx, i, p):
            _heap_swap(deg, sc, vx, i, p)
            i = p
        else:
            break
    return size + 1


@njit(cache=True)
def _heap_pop(deg, sc, vx, size):  # pragma: no cover
    size -= 1
    _heap_swap(deg, sc, vx, 0, size)
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        c = left
        if left + 1 < size and _heap_less(deg, sc, vx, left + 1, left):
            c = left + 1
        if _heap_less(deg, sc, vx, c, i):
            _heap_swap(deg, sc, vx, c, i)
            i = c
        else:
            break
    return size


@njit(cache=True)
def peel_sparse_init(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray):  # pragma: no cover
    """The state of a sparse peel before its first removal (see `peel_sparse_steps`).

    Returns ``(deg, s, hd, hs, hv, removed, order, scores, counters)`` with
    ``counters = [heap size, removals done, clique_size]``.
    """
    n = indptr.shape[0] - 1
    deg = np.empty(n, dtype=np.int64)
    s = np.zeros(n)
    for v in range(n):
        deg[v] = indptr[v + 1] - indptr[v]
        acc = 0.0
        for p in range(indptr[v], indptr[v + 1]):
            acc += data[p]
        s[v] = acc
    cap = n + indices.shape[0] // 2 + 1
    hd = np.empty(cap, dtype=np.int64)
    hs = np.empty(cap)
    hv = np.empty(cap, dtype=np.int64)
    size = 0
    for v in range(n):
        size = _heap_push(hd, hs, hv, size, deg[v], s[v], v)
    removed = np.zeros(n, dtype=np.bool_)
    order = np.empty(n, dtype=np.int64)
    scores = np.empty(n)
    counters = np.array([size, 0, 0], dtype=np.int64)
    return deg, s, hd, hs, hv, removed, order, scores, counters


@njit(cache=True)
def peel_sparse_steps(indptr, indices, data, deg, s, hd, hs, hv, removed, order, scores, counters,
                      max_work):  # pragma: no cover
    """Continue a sparse peel for about ``max_work`` heap operations; True when it is complete."""
    n = indptr.shape[0] - 1
    size, t, clique_size = counters[0], counters[1], counters[2]
    work = 0
    while t < n and work < max_work:
        d0, s0, v = hd[0], hs[0], hv[0]
        size = _heap_pop(hd, hs, hv, size)
        work += 1
        if removed[v] or d0 != deg[v] or s0 != s[v]:
            continue  # stale entry
        remaining = n - t
        if clique_size == 0 and deg[v] == remaining - 1:
            clique_size = remaining  # least degree is |R| - 1: R is a clique
        order[t] = v
        scores[t] = s[v] if remaining > 1 else 0.0
        removed[v] = True
        t += 1
        for p in range(indptr[v], indptr[v + 1]):
            u = indices[p]
            if not removed[u]:
                deg[u] -= 1
                s[u] -= data[p]
                size = _heap_push(hd, hs, hv, size, deg[u], s[u], u)
                work += 1
    counters[0], counters[1], counters[2] = size, t, clique_size
    return t >= n


@njit(cache=True)
def peel_sparse(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:  # pragma: no cover
    """Peel a general graph to the end, keyed on (degree, score, index) in the remainder.

    The vertex removed next is the one with the fewest neighbours among the
    remaining vertices (the most non-edges), then the least score (sum of weights
    to remaining neighbours), then the lowest index. Returns the removal order, the
    score of each vertex at its removal, and ``clique_size``: the size of the
    largest remaining set that was a clique (every suffix of the order at most that
    long is a clique). O((n + m) log(n + m)) with a lazy binary heap; the same run
    in bounded pieces is `peel_sparse_init` + `peel_sparse_steps`.
    """
    deg, s, hd, hs, hv, removed, order, scores, counters = peel_sparse_init(indptr, indices, data)
    peel_sparse_steps(indptr, indices, data, deg, s, hd, hs, hv, removed, order, scores, counters,
                      np.iinfo(np.int64).max)
    return order, scores, counters[2]
