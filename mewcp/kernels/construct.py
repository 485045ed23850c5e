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
