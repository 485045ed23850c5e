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
def _before(s: np.ndarray, a: int, b: int) -> bool:  # pragma: no cover
    """Bucket heap order: the lesser score, then the lower index."""
    return s[a] < s[b] or (s[a] == s[b] and a < b)


@njit(cache=True)
def _sift_up(ent, pos, s, base, i) -> None:  # pragma: no cover
    v = ent[base + i]
    while i > 0:
        p = (i - 1) >> 1
        u = ent[base + p]
        if not _before(s, v, u):
            break
        ent[base + i] = u
        pos[u] = i
        i = p
    ent[base + i] = v
    pos[v] = i


@njit(cache=True)
def _sift_down(ent, pos, s, base, size, i) -> None:  # pragma: no cover
    v = ent[base + i]
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and _before(s, ent[base + c + 1], ent[base + c]):
            c += 1
        u = ent[base + c]
        if not _before(s, u, v):
            break
        ent[base + i] = u
        pos[u] = i
        i = c
    ent[base + i] = v
    pos[v] = i


@njit(cache=True)
def _heap_remove(ent, pos, s, base, heap, fill, d, v) -> None:  # pragma: no cover
    """Delete ``v`` from bucket ``d``'s heap.

    When the bucket has a tail, the heap's old last slot keeps ``v`` as a stale
    entry (``v`` is leaving the bucket), so the tail stays where it is.
    """
    i = pos[v]
    last = heap[d] - 1
    heap[d] = last
    pos[v] = -1
    if i != last:
        u = ent[base + last]
        ent[base + i] = u
        pos[u] = i
        if i > 0 and _before(s, u, ent[base + ((i - 1) >> 1)]):
            _sift_up(ent, pos, s, base, i)
        else:
            _sift_down(ent, pos, s, base, last, i)
    if fill[d] == last + 1:
        fill[d] = last
    else:
        ent[base + last] = v


@njit(cache=True)
def _absorb_tail(ent, pos, s, deg, bstart, heap, fill, d) -> None:  # pragma: no cover
    """Push bucket ``d``'s tail (its arrivals while it was not current) into its heap.

    Entries of vertices that have left the bucket since (a lower degree, or
    removed: degree -1) are dropped.
    """
    base = bstart[d]
    size = heap[d]
    for q in range(base + size, base + fill[d]):
        v = ent[q]
        if deg[v] == d:
            ent[base + size] = v
            _sift_up(ent, pos, s, base, size)
            size += 1
    heap[d] = size
    fill[d] = size


@njit(cache=True)
def peel_sparse_init(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray):  # pragma: no cover
    """The state of a sparse peel before its first removal (see `peel_sparse_steps`).

    Returns ``(deg, s, ent, bstart, heap, fill, pos, order, scores, counters)``
    with ``counters = [removals done, clique_size, next bucket to look at]``.
    Bucket ``d`` owns ``ent[bstart[d]:bstart[d + 1]]``, room for every vertex of
    initial degree >= d (each enters it at most once: degrees only fall); its
    first ``heap[d]`` slots are a binary heap on (score, index), the slots up to
    ``fill[d]`` a tail of later arrivals. Vertex ids are int32 (n < 2**31).
    """
    n = indptr.shape[0] - 1
    deg = np.empty(n, dtype=np.int32)
    s = np.zeros(n)
    maxdeg = 0
    for v in range(n):
        dv = indptr[v + 1] - indptr[v]
        deg[v] = dv
        maxdeg = max(maxdeg, dv)
        acc = 0.0
        for p in range(indptr[v], indptr[v + 1]):
            acc += data[p]
        s[v] = acc
    cap = np.zeros(maxdeg + 2, dtype=np.int64)
    for v in range(n):
        cap[deg[v]] += 1
    for d in range(maxdeg - 1, -1, -1):  # cap[d]: vertices of initial degree >= d
        cap[d] += cap[d + 1]
    bstart = np.zeros(maxdeg + 2, dtype=np.int64)
    for d in range(maxdeg + 1):
        bstart[d + 1] = bstart[d] + cap[d]
    ent = np.empty(bstart[maxdeg + 1], dtype=np.int32)
    heap = np.zeros(maxdeg + 1, dtype=np.int64)
    fill = np.zeros(maxdeg + 1, dtype=np.int64)
    for v in range(n):
        d = deg[v]
        ent[bstart[d] + fill[d]] = v
        fill[d] += 1
    pos = np.full(n, -1, dtype=np.int32)
    order = np.empty(n, dtype=np.int64)
    scores = np.empty(n)
    counters = np.array([0, 0, 0], dtype=np.int64)
    return deg, s, ent, bstart, heap, fill, pos, order, scores, counters


@njit(cache=True)
def peel_sparse_steps(indptr, indices, data, deg, s, ent, bstart, heap, fill, pos, order, scores,
                      counters, max_work):  # pragma: no cover
    """Continue a sparse peel for about ``max_work`` removals plus edge updates; True when complete.

    A bucket queue on the degree in the remainder with lazy updates: a vertex
    that loses a neighbour is appended to the tail of its new bucket in O(1) (its
    old entry goes stale), except into the bucket being peeled, whose heap it
    joins at once. A bucket's tail enters its heap (O(log) each, stale entries
    dropped) only when the least degree reaches that bucket, so a vertex pays for
    a heap operation about once per time its bucket is peeled, not once per lost
    neighbour. A heap member that loses a neighbour is deleted from it (``pos``).
    Removed vertices get degree -1.
    """
    n = indptr.shape[0] - 1
    t, clique_size, d = counters[0], counters[1], counters[2]
    work = 0
    while t < n and work < max_work:
        while True:
            if fill[d] > heap[d]:
                _absorb_tail(ent, pos, s, deg, bstart, heap, fill, d)
            if heap[d] > 0:
                break
            d += 1
        base = bstart[d]
        v = ent[base]
        _heap_remove(ent, pos, s, base, heap, fill, d, v)
        work += 1
        remaining = n - t
        if clique_size == 0 and d == remaining - 1:
            clique_size = remaining  # least degree is |R| - 1: R is a clique
        order[t] = v
        scores[t] = s[v] if remaining > 1 else 0.0
        deg[v] = -1
        t += 1
        for p in range(indptr[v], indptr[v + 1]):
            u = indices[p]
            du = deg[u]
            if du < 0:
                continue  # removed
            if pos[u] >= 0:
                _heap_remove(ent, pos, s, bstart[du], heap, fill, du, u)
            du -= 1
            deg[u] = du
            s[u] -= data[p]
            ent[bstart[du] + fill[du]] = u
            fill[du] += 1
            if du == d:  # joins the bucket being peeled (which has no tail)
                heap[du] += 1
                _sift_up(ent, pos, s, bstart[du], heap[du] - 1)
            work += 1
        if d > 0:
            d -= 1  # a neighbour may now have degree d - 1
    counters[0], counters[1], counters[2] = t, clique_size, d
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
    long is a clique). A bucket queue on the degree with a heap inside each bucket
    reached (`peel_sparse_steps`): O(n + m) plus O(log) per edge whose update lands
    in a bucket at or below the least degree reached so far; O(n + m) memory (one
    int32 slot per vertex and bucket it can pass through). The same run in bounded
    pieces is `peel_sparse_init` + `peel_sparse_steps`.
    """
    state = peel_sparse_init(indptr, indices, data)
    peel_sparse_steps(indptr, indices, data, *state, np.iinfo(np.int64).max)
    return state[7], state[8], state[9][1]
