"""numba kernels: arrays in, arrays out; no validation, no clocks, no Python objects.

Every function here is tested against a plain-Python reference in
``tests/mewcp/test_kernels.py``. Callers (the solver modules) validate inputs and
convert results.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# ---------------------------------------------------------------------------
# Peeling (EHGP, the SIRFP paper's Algorithm 1)
# ---------------------------------------------------------------------------


@njit(cache=True)
def row_sums(w: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """s[i] = sum_j w[i, j], accumulated in increasing j for every i.

    Rows are added four at a time, ``s += w[j] + ...`` in order, which is contiguous
    and vectorisable and touches ``s`` once per four rows; because ``w`` is
    symmetric this is the same sequence of additions as summing row i left to
    right, so the result is bit-identical to a plain loop.
    """
    n = w.shape[0]
    s = np.zeros(n)
    j = 0
    while j + 4 <= n:
        r0, r1, r2, r3 = w[j], w[j + 1], w[j + 2], w[j + 3]
        for i in range(n):
            s[i] = (((s[i] + r0[i]) + r1[i]) + r2[i]) + r3[i]
        j += 4
    while j < n:
        r0 = w[j]
        for i in range(n):
            s[i] += r0[i]
        j += 1
    return s


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
    O(n * n_remove) after an O(n^2) row-sum pass. Removed vertices are kept at
    ``+inf`` (``inf - w == inf``), so each step is one contiguous pass that
    subtracts the removed row and finds the minimum, then a scan for the first
    index holding it.
    """
    n = w.shape[0]
    s = row_sums(w)
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
def peel_sparse(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:  # pragma: no cover
    """Peel a general graph to the end, keyed on (degree, score, index) in the remainder.

    The vertex removed next is the one with the fewest neighbours among the
    remaining vertices (the most non-edges), then the least score (sum of weights
    to remaining neighbours), then the lowest index. Returns the removal order, the
    score of each vertex at its removal, and ``clique_size``: the size of the
    largest remaining set that was a clique (every suffix of the order at most that
    long is a clique). O((n + m) log(n + m)) with a lazy binary heap.
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
    clique_size = 0
    t = 0
    while t < n:
        d0, s0, v = hd[0], hs[0], hv[0]
        size = _heap_pop(hd, hs, hv, size)
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
    return order, scores, clique_size


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


@njit(cache=True)
def max_asymmetry(w: np.ndarray) -> tuple[float, int, int]:  # pragma: no cover
    """Largest ``|w[i, j] - w[j, i]|`` and where (``i < j``), read in 64 x 64 tiles.

    One pass over the matrix, where ``np.abs(w - w.T).max()`` makes three and reads
    ``w.T`` column by column.
    """
    n = w.shape[0]
    tile = 64
    worst, wi, wj = 0.0, 0, 0
    for bi in range(0, n, tile):
        for bj in range(bi, n, tile):
            for i in range(bi, min(bi + tile, n)):
                for j in range(max(bj, i + 1), min(bj + tile, n)):
                    d = abs(w[i, j] - w[j, i])
                    if d > worst:
                        worst, wi, wj = d, i, j
    return worst, wi, wj


# ---------------------------------------------------------------------------
# Objective and certificates
# ---------------------------------------------------------------------------


@njit(cache=True)
def dense_set_weight(w: np.ndarray, idx: np.ndarray) -> float:  # pragma: no cover
    """Sum of w[i, j] over pairs i < j of ``idx``."""
    total = 0.0
    k = idx.shape[0]
    for a in range(k):
        row = w[idx[a]]
        for b in range(a + 1, k):
            total += row[idx[b]]
    return total


@njit(cache=True)
def sparse_set_weight(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, idx: np.ndarray
) -> tuple[float, int]:  # pragma: no cover
    """Weight of the edges inside ``idx`` and how many there are (a clique has k(k-1)/2)."""
    n = indptr.shape[0] - 1
    inside = np.zeros(n, dtype=np.bool_)
    for v in idx:
        inside[v] = True
    total = 0.0
    count = 0
    for v in idx:
        for p in range(indptr[v], indptr[v + 1]):
            u = indices[p]
            if u > v and inside[u]:
                total += data[p]
                count += 1
    return total, count


# ---------------------------------------------------------------------------
# Exhaustive enumeration (the `brute` method)
# ---------------------------------------------------------------------------


@njit(cache=True)
def enumerate_cliques_from(
    w: np.ndarray,
    adj: np.ndarray,
    first: int,
    k: int,
    exact: bool,
    best_weight: float,
    best: np.ndarray,
    best_size: int,
) -> tuple[float, int, int]:  # pragma: no cover
    """Every clique of size <= k whose least vertex is ``first``, depth first.

    Improves ``(best_weight, best[:best_size])`` in place when a clique of an
    admissible size (``== k`` if ``exact``, else ``<= k``) is strictly heavier.
    Returns the new best weight, best size and the number of cliques visited.
    """
    n = w.shape[0]
    chosen = np.empty(k, dtype=np.int64)
    weights = np.empty(k + 1)
    nxt = np.empty(k + 1, dtype=np.int64)
    chosen[0] = first
    weights[1] = 0.0
    visited = 1
    if (not exact or k == 1) and 0.0 > best_weight:
        best_weight = 0.0
        best[0] = first
        best_size = 1
    if k == 1:
        return best_weight, best_size, visited
    d = 1
    nxt[1] = first + 1
    while d >= 1:
        v = nxt[d]
        if v >= n or (exact and n - v < k - d):
            d -= 1
            continue
        nxt[d] = v + 1
        gain = 0.0
        ok = True
        for t in range(d):
            u = chosen[t]
            if not adj[u, v]:
                ok = False
                break
            gain += w[u, v]
        if not ok:
            continue
        chosen[d] = v
        weights[d + 1] = weights[d] + gain
        visited += 1
        size = d + 1
        if (not exact or size == k) and weights[size] > best_weight:
            best_weight = weights[size]
            best[:size] = chosen[:size]
            best_size = size
        if size < k:
            d += 1
            nxt[d] = v + 1
    return best_weight, best_size, visited
