"""Input checks, set weights and exhaustive enumeration."""

from __future__ import annotations

import numpy as np
from numba import njit

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


@njit(cache=True)
def dense_scan(w: np.ndarray) -> tuple[bool, float, float, float, bool, float, int, int]:  # pragma: no cover
    """One tiled pass over a square matrix for `mewcp.as_problem`.

    Returns ``(finite, max_offdiag, min_offdiag, max_abs_offdiag, zero_diagonal,
    max_asymmetry, i, j)`` where ``max_asymmetry = |w[i, j] - w[j, i]|`` is the
    largest over ``i < j``. No temporary array: the checks of a 3 GB matrix need
    no second 3 GB.
    """
    n = w.shape[0]
    tile = 64
    finite = True
    zero_diag = True
    hi, lo = -np.inf, np.inf
    worst, wi, wj = 0.0, 0, 0
    for i in range(n):
        x = w[i, i]
        if not abs(x) < np.inf:
            finite = False
        if x != 0.0:
            zero_diag = False
    for bi in range(0, n, tile):
        for bj in range(bi, n, tile):
            for i in range(bi, min(bi + tile, n)):
                for j in range(max(bj, i + 1), min(bj + tile, n)):
                    a = w[i, j]
                    b = w[j, i]
                    if not (abs(a) < np.inf and abs(b) < np.inf):
                        finite = False
                        continue
                    hi = max(hi, max(a, b))
                    lo = min(lo, min(a, b))
                    d = abs(a - b)
                    if d > worst:
                        worst, wi, wj = d, i, j
    amax = max(abs(hi), abs(lo)) if n > 1 else 0.0
    return finite, hi, lo, amax, zero_diag, worst, wi, wj


#: Rows per block of `csr_scan` (2**11): a block's lower halves of rows (about 16 bytes
#: times its stored entries) stay in a core's L2 cache while its mirrors are matched.
CSR_SCAN_SHIFT = 11


@njit(cache=True)
def csr_scan(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
             shift: int = CSR_SCAN_SHIFT) -> tuple[bool, float]:  # pragma: no cover
    """Is a canonical CSR (sorted rows, no duplicates) a clean undirected graph, and its max |w|?

    Clean: no diagonal entry, every value finite, the pattern symmetric and every
    value exactly equal to its mirror. Returns ``(clean, max_abs)``; ``max_abs`` is
    only meaningful when clean.

    Three sequential passes instead of one with a random access per entry: (1) the
    entry checks, and the number of upper entries ``(i, j)``, ``j > i``, per block of
    ``2**shift`` target rows ``j``; (2) the upper entries copied, in row order, into
    their target block's bucket as ``(j, i, w)``; (3) block by block, each bucket's
    entries matched against row ``j``'s lower entries in order (a row's lower entries
    are its first ones and come sorted by column; its bucket entries arrive sorted by
    ``i``). With as many upper as lower entries, every upper entry matching the next
    unmatched lower entry of its row means every lower entry is matched too. On a
    million-vertex graph with 20M stored entries the random accesses of pass 3 stay
    inside one block (in cache): about 2x faster than matching each entry in place
    (`csr_scan_direct`); 16 bytes per upper entry of extra memory. Vertex ids are
    stored as int32 (n < 2**31; larger graphs use `csr_scan_direct`).
    """
    n = indptr.shape[0] - 1
    if n >= 2**31:
        return csr_scan_direct(indptr, indices, data)
    nb = (n >> shift) + 1
    start = np.zeros(nb + 1, dtype=np.int64)
    amax = 0.0
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            x = data[p]
            if not abs(x) < np.inf or j == i:
                return False, amax
            if abs(x) > amax:
                amax = abs(x)
            if j > i:
                start[(j >> shift) + 1] += 1
    for b in range(nb):
        start[b + 1] += start[b]
    m = start[nb]
    if 2 * m != indptr[n]:  # as many upper as lower entries
        return False, amax
    bucket_j = np.empty(m, dtype=np.int32)
    bucket_i = np.empty(m, dtype=np.int32)
    bucket_w = np.empty(m)
    fill = start[:nb].copy()
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j > i:
                b = j >> shift
                q = fill[b]
                bucket_j[q] = j
                bucket_i[q] = i
                bucket_w[q] = data[p]
                fill[b] = q + 1
    cursor = indptr[:-1].copy()  # row j's next unmatched lower entry
    for q in range(m):
        j = bucket_j[q]
        r = cursor[j]
        if r >= indptr[j + 1] or indices[r] != bucket_i[q] or data[r] != bucket_w[q]:
            return False, amax
        cursor[j] = r + 1
    return True, amax


@njit(cache=True)
def csr_scan_direct(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> tuple[bool, float]:  # pragma: no cover
    """`csr_scan` in one pass and no extra memory, matching each upper entry in place.

    Entry (i, j) with j > i must be the next unmatched entry of row j (rows are
    visited in order, so row j's lower entries arrive sorted), and each row's lower
    entries must all have been matched when its turn comes. One random access per
    upper entry (the mirror's row): on large graphs, cache misses dominate.
    """
    n = indptr.shape[0] - 1
    cursor = indptr[:-1].copy()
    amax = 0.0
    for i in range(n):
        q = indptr[i]
        while q < indptr[i + 1] and indices[q] < i:
            q += 1
        if cursor[i] != q:  # some (i, j), j < i, had no (j, i)
            return False, amax
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            x = data[p]
            if not abs(x) < np.inf or j == i:
                return False, amax
            if abs(x) > amax:
                amax = abs(x)
            if j > i:
                q = cursor[j]
                if q >= indptr[j + 1] or indices[q] != i or data[q] != x:
                    return False, amax
                cursor[j] = q + 1
    return True, amax
