"""Greedy clique construction from heavy edges (general graphs, CSR storage).

From a seed edge ``(u, v)`` the candidates are the common neighbours of u and v;
the candidate of greatest gain (summed weight to the clique) enters, the
candidates not adjacent to it leave, until k vertices or no candidate remain.
With ``positive_only`` a candidate enters only with a positive gain. One seed
costs O(deg(u) + deg(v) + the degrees of the vertices that enter), so a few
hundred seeds cost far less than one pass over the edges.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def grow_from_edges(indptr, indices, data, seeds_u, seeds_v, k, positive_only):  # pragma: no cover
    """Grow a clique from every seed edge (at most k vertices; k >= 2).

    Returns ``(best, size, weight, best_k, weight_k)``: ``best[:size]`` is the
    heaviest clique grown, ``best_k`` the heaviest of exactly k vertices
    (``weight_k = -inf`` when no seed reached k).
    """
    n = indptr.shape[0] - 1
    mark = np.zeros(n, dtype=np.int64)
    gain = np.zeros(n)
    cand = np.empty(n, dtype=np.int64)
    clique = np.empty(k, dtype=np.int64)
    best = np.empty(k, dtype=np.int64)
    best_k = np.empty(k, dtype=np.int64)
    best_size, best_w, best_k_w = 0, -np.inf, -np.inf
    stamp = 0
    for t in range(seeds_u.shape[0]):
        u, v = seeds_u[t], seeds_v[t]
        stamp += 1
        for p in range(indptr[u], indptr[u + 1]):
            mark[indices[p]] = stamp
            gain[indices[p]] = data[p]
        wuv = 0.0
        nc = 0
        stamp += 1
        for p in range(indptr[v], indptr[v + 1]):
            x = indices[p]
            if x == u:
                wuv = data[p]
            elif mark[x] == stamp - 1:
                mark[x] = stamp
                gain[x] += data[p]
                cand[nc] = x
                nc += 1
        clique[0], clique[1] = u, v
        size, w = 2, wuv
        while size < k and nc > 0:
            bi = 0
            for i in range(1, nc):
                if gain[cand[i]] > gain[cand[bi]]:
                    bi = i
            c = cand[bi]
            if positive_only and gain[c] <= 0.0:
                break
            clique[size] = c
            size += 1
            w += gain[c]
            stamp += 1
            for p in range(indptr[c], indptr[c + 1]):
                x = indices[p]
                if mark[x] == stamp - 1:
                    mark[x] = stamp
                    gain[x] += data[p]
            keep = 0
            for i in range(nc):
                x = cand[i]
                if mark[x] == stamp:
                    cand[keep] = x
                    keep += 1
            nc = keep
        if w > best_w:
            best_w, best_size = w, size
            best[:size] = clique[:size]
        if size == k and w > best_k_w:
            best_k_w = w
            best_k[:size] = clique[:size]
    return best, best_size, best_w, best_k, best_k_w


@njit(cache=True)
def _key_less(hw, hp, a, b) -> bool:  # pragma: no cover
    """Heap order of `top_edges`: the lighter edge, then the later one."""
    return hw[a] < hw[b] or (hw[a] == hw[b] and hp[a] > hp[b])


@njit(cache=True)
def top_edges(indptr, indices, data, count):  # pragma: no cover
    """The ``count`` heaviest edges ``u < v``, heaviest first, ties to the lowest ``(u, v)``.

    One pass over the upper entries with a min-heap of ``count`` slots: O(m + count
    log(m)) time, O(count) memory. Returns ``(u, v)`` as int64 arrays (fewer when
    the graph has fewer edges).
    """
    n = indptr.shape[0] - 1
    hw = np.empty(max(count, 1))
    hp = np.empty(max(count, 1), dtype=np.int64)
    hr = np.empty(max(count, 1), dtype=np.int64)
    size = 0
    for u in range(n):
        for p in range(indptr[u], indptr[u + 1]):
            if indices[p] <= u:
                continue
            x = data[p]
            if size < count:
                i = size
                size += 1
                hw[i], hp[i], hr[i] = x, p, u
                while i > 0:
                    q = (i - 1) >> 1
                    if not _key_less(hw, hp, i, q):
                        break
                    hw[i], hw[q] = hw[q], hw[i]
                    hp[i], hp[q] = hp[q], hp[i]
                    hr[i], hr[q] = hr[q], hr[i]
                    i = q
            elif x > hw[0]:  # an equal weight comes later: it never displaces the root
                hw[0], hp[0], hr[0] = x, p, u
                i = 0
                while True:
                    c = 2 * i + 1
                    if c >= size:
                        break
                    if c + 1 < size and _key_less(hw, hp, c + 1, c):
                        c += 1
                    if not _key_less(hw, hp, c, i):
                        break
                    hw[i], hw[c] = hw[c], hw[i]
                    hp[i], hp[c] = hp[c], hp[i]
                    hr[i], hr[c] = hr[c], hr[i]
                    i = c
    # heaviest first, then the lowest position (row-major: the lowest (u, v))
    keys_w = -hw[:size]
    keys_p = hp[:size]
    idx = np.argsort(keys_p, kind="mergesort")
    idx = idx[np.argsort(keys_w[idx], kind="mergesort")]
    u_out = hr[:size][idx].copy()
    v_out = np.empty(size, dtype=np.int64)
    for i in range(size):
        v_out[i] = indices[hp[idx[i]]]
    return u_out, v_out
