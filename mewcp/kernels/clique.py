"""Clique-preserving move searches on general graphs (CSR storage, no n^2 memory).

State of a search: ``members[:size]`` (the clique), ``pos`` (index in
``members`` or -1), and for every vertex v: ``adj[v]`` = how many members are
adjacent to v, ``idsum[v]`` = the sum of those members' ids, ``g[v]`` = the sum of
their edge weights to v; ``sums[0]`` holds the members' id sum. Moves keep the set
a clique:

* ADD v (``adj[v] == size``): value += g[v];
* SWAP u -> v where v misses exactly one member (``adj[v] == size - 1``): that
  member is ``u = sum(ids) - idsum[v]``, and value += g[v] - g[u];
* SWAP u -> v where v is adjacent to all members: value += g[v] - g[u] - w_uv;
* DROP u: value -= g[u].

Each move costs O(deg) to apply. Candidates come from the neighbourhoods of two
members (any vertex missing at most one member is adjacent to one of any two), so a
sparse graph is never scanned whole once the clique has two vertices (Wu, Hao &
Glover 2012, multi-neighbourhood tabu search).
"""

from __future__ import annotations

import numpy as np
from numba import njit

ADD, SWAP, DROP = 0, 1, 2


@njit(cache=True)
def edge_weight(indptr, indices, data, u, v):  # pragma: no cover - compiled
    """w_uv by binary search in u's sorted row (NaN when not adjacent)."""
    lo, hi = indptr[u], indptr[u + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        x = indices[mid]
        if x < v:
            lo = mid + 1
        elif x > v:
            hi = mid
        else:
            return data[mid]
    return np.nan


@njit(cache=True)
def add_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, v):  # pragma: no cover
    members[size] = v
    pos[v] = size
    sums[0] += v
    for p in range(indptr[v], indptr[v + 1]):
        x = indices[p]
        adj[x] += 1
        idsum[x] += v
        g[x] += data[p]
    return size + 1


@njit(cache=True)
def drop_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, u):  # pragma: no cover
    slot = pos[u]
    last = members[size - 1]
    members[slot] = last
    pos[last] = slot
    pos[u] = -1
    sums[0] -= u
    for p in range(indptr[u], indptr[u + 1]):
        x = indices[p]
        adj[x] -= 1
        idsum[x] -= u
        g[x] -= data[p]
    return size - 1


@njit(cache=True)
def least_degree_pair(indptr, members, size):  # pragma: no cover
    """The two members of least degree, least first (the second is -1 when size == 1)."""
    a, b = members[0], -1
    da, db = indptr[a + 1] - indptr[a], np.iinfo(np.int64).max
    for j in range(1, size):
        m = members[j]
        dm = indptr[m + 1] - indptr[m]
        if dm < da:
            b, db, a, da = a, da, m, dm
        elif dm < db:
            b, db = m, dm
    return a, b


@njit(cache=True)
def build_state(indptr, indices, data, start, k):  # pragma: no cover
    """Arrays for a search over cliques of at most k vertices, starting from ``start``."""
    n = indptr.shape[0] - 1
    members = np.empty(k, dtype=np.int64)
    pos = np.full(n, -1, dtype=np.int64)
    adj = np.zeros(n, dtype=np.int64)
    idsum = np.zeros(n, dtype=np.int64)
    g = np.zeros(n)
    sums = np.zeros(1, dtype=np.int64)
    size = 0
    value = 0.0
    for v in start:
        value += g[v]
        size = add_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, v)
    return members, pos, adj, idsum, g, sums, size, value


@njit(cache=True)
def _candidates(indptr, indices, members, pos, size, seen, stamp, out):  # pragma: no cover
    """Outsiders that may enter by ADD or SWAP (a superset); returns their count."""
    n = indptr.shape[0] - 1
    count = 0
    if size <= 1:
        for v in range(n):
            if pos[v] < 0:
                out[count] = v
                count += 1
        return count
    for src in least_degree_pair(indptr, members, size):
        for p in range(indptr[src], indptr[src + 1]):
            v = indices[p]
            if pos[v] < 0 and seen[v] != stamp:
                seen[v] = stamp
                out[count] = v
                count += 1
    return count


@njit(cache=True)
def _offer(d, kind, u, v, best_d, best_kind, best_u, best_v, ties, eps, rng):  # pragma: no cover
    """Take move (kind, u, v) of value d if strictly better; among equals, each with equal chance."""
    if d > best_d + eps:
        return d, kind, u, v, 1
    if d >= best_d - eps:
        ties += 1
        if rng.integers(0, ties) == 0:
            return best_d, kind, u, v, ties
    return best_d, best_kind, best_u, best_v, ties


@njit(cache=True)
def best_move(
    indptr, indices, data, members, pos, adj, idsum, g, sums, size, k, exact,
    value, best_value, tabu_until, it, use_tabu, seen, stamp, cand, rng,
):  # pragma: no cover
    """The best admissible move: ``(kind, u, v, delta)``, kind -1 when there is none.

    Admissible: it keeps the set a clique of at most k vertices, and, with
    ``use_tabu``, its entering and leaving vertices are not tabu or it beats
    ``best_value`` at an admissible size (aspiration). Ties at random.
    """
    eps = 1e-12 * (1.0 + abs(value))  # `value` is finite; `best_value` may be -inf
    best_d = -np.inf
    kind, bu, bv, ties = -1, -1, -1, 0
    count = _candidates(indptr, indices, members, pos, size, seen, stamp, cand)
    for c in range(count):
        v = cand[c]
        v_free = (not use_tabu) or tabu_until[v] <= it
        if adj[v] == size:
            if size < k:  # ADD
                d = g[v]
                if v_free or (value + d > best_value + eps and (not exact or size + 1 == k)):
                    best_d, kind, bu, bv, ties = _offer(d, ADD, -1, v, best_d, kind, bu, bv, ties, eps, rng)
            if size == k:  # SWAP with any member
                for j in range(size):
                    u = members[j]
                    d = g[v] - g[u] - edge_weight(indptr, indices, data, u, v)
                    u_free = (not use_tabu) or tabu_until[u] <= it
                    if (v_free and u_free) or value + d > best_value + eps:
                        best_d, kind, bu, bv, ties = _offer(d, SWAP, u, v, best_d, kind, bu, bv, ties, eps, rng)
        elif size >= 1 and adj[v] == size - 1:  # SWAP with the one member v misses
            u = sums[0] - idsum[v]
            d = g[v] - g[u]
            u_free = (not use_tabu) or tabu_until[u] <= it
            if (v_free and u_free) or (value + d > best_value + eps and (not exact or size == k)):
                best_d, kind, bu, bv, ties = _offer(d, SWAP, u, v, best_d, kind, bu, bv, ties, eps, rng)
    if size > 1:
        for j in range(size):  # DROP
            u = members[j]
            d = -g[u]
            u_free = (not use_tabu) or tabu_until[u] <= it
            if u_free or (value + d > best_value + eps and (not exact or size - 1 == k)):
                best_d, kind, bu, bv, ties = _offer(d, DROP, u, -1, best_d, kind, bu, bv, ties, eps, rng)
    return kind, bu, bv, best_d


@njit(cache=True)
def apply_move(indptr, indices, data, members, pos, adj, idsum, g, sums, size, kind, u, v):  # pragma: no cover
    if kind == DROP or kind == SWAP:
        size = drop_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, u)
    if kind == ADD or kind == SWAP:
        size = add_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, v)
    return size


@njit(cache=True)
def clique_search(
    indptr, indices, data, members, pos, adj, idsum, g, sums, size, value, k, exact,
    use_tabu, improving_only, tabu_until, it0, max_iters, best_members, best_size, best_value,
    stall, max_stall, tenure, seen, rng,
):  # pragma: no cover
    """Local search (``improving_only``) or multi-neighbourhood tabu search over cliques.

    Each iteration applies the best admissible ADD, SWAP or DROP move (see
    `best_move`); local search stops at the first iteration without an improving
    move. A vertex that leaves may not re-enter for ``tenure + U{0..tenure}``
    iterations. ``best_members[:best_size]``/``best_value`` hold this run's best
    clique of an admissible size (``== k`` when ``exact``, otherwise any; size 0
    means none yet); the search stops after ``max_iters`` iterations or
    ``max_stall`` in a row without beating it. ``seen`` has n + 1 slots (its last
    keeps a running stamp).

    Returns ``(size, value, best_size, best_value, stall, iterations, local_optimum)``.
    """
    n = indptr.shape[0] - 1
    cand = np.empty(n, dtype=np.int64)
    it = it0
    done = 0
    stamp = seen[n]
    local_opt = False
    while done < max_iters and stall < max_stall:
        stamp += 1
        kind, u, v, d = best_move(
            indptr, indices, data, members, pos, adj, idsum, g, sums, size, k, exact,
            value, best_value, tabu_until, it, use_tabu, seen, stamp, cand, rng,
        )
        if kind < 0 or (improving_only and d <= 1e-12 * (1.0 + abs(value))):
            local_opt = True
            break
        size = apply_move(indptr, indices, data, members, pos, adj, idsum, g, sums, size, kind, u, v)
        value += d
        if use_tabu and u >= 0:
            tabu_until[u] = it + tenure + rng.integers(0, tenure + 1)
        it += 1
        done += 1
        if (not exact or size == k) and (best_size == 0 or value > best_value + 1e-12 * (1.0 + abs(best_value))):
            best_value = value
            best_size = size
            best_members[:size] = members[:size]
            stall = 0
        else:
            stall += 1
    seen[n] = stamp
    return size, value, best_size, best_value, stall, done, local_opt
