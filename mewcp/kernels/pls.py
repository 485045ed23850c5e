"""Phased local search over the cliques of a general graph, with a cardinality bound.

State (`mewcp.kernels.clique.build_state`, the layout of `mewcp.kernels.clique`): ``members[:size]`` (the
clique), ``pos`` (slot in ``members`` or -1), and for every vertex v: ``adj[v]`` =
members adjacent to v, ``idsum[v]`` = the sum of their ids, ``g[v]`` = the sum of
their edge weights to v; ``sums[0]`` is the members' id sum. The add set C0
(``adj[v] == size``) lies in the row of the member of least degree, the swap set
C1 (``adj[v] == size - 1``; its one missing member is ``sums[0] - idsum[v]``) in
the rows of the two members of least degree, so a selection costs O(degree) and
a sparse graph is never scanned whole.

One *iteration* (Pullan 2006, 2008): add vertices from C0 while ``size < k``;
record the clique; make a plateau swap (a vertex of C1 for the one member it
misses, or, at ``size == k``, a vertex of C0 for its best partner) with a vertex
not dropped earlier in this plateau; repeat until neither an add nor such a swap
is left (at ``size == k``: after at most ``FULL_PLATEAU`` swaps); then raise the penalties of the
members and perturb. Selection in the
*greedy* phase: the greatest weight gain; *penalty* phase: the least vertex
penalty, then the greatest gain; *degree* phase: the greatest degree, then the
greatest gain; ties at random. Perturbation in the greedy and degree phases: a
random vertex enters and the members it misses leave; in the penalty phase the
search restarts from a random vertex. The phases run 50, 50 and 100 iterations in
turn. Penalties decay every ``delay`` iterations; ``delay`` adapts so that about
three quarters of the vertices carry a penalty.

With ``exact`` only cliques of exactly k vertices are recorded; otherwise any
clique, and also the clique minus its member of most negative gain.

References
----------
.. [1] W. Pullan, "Phased local search for the maximum clique problem", J.
   Combinatorial Optimization 12 (2006).
.. [2] W. Pullan, "Approximating the maximum vertex/edge weighted clique using
   local search", J. Heuristics 14 (2008).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mewcp.kernels.clique import add_vertex, drop_vertex, edge_weight, least_degree_pair

GREEDY, PENALTY, DEGREE = 0, 1, 2
#: Iterations of each phase, in the order they run.
PHASE_LENGTHS = np.array([50, 50, 100], dtype=np.int64)
PHASE_KIND = np.array([GREEDY, PENALTY, DEGREE], dtype=np.int64)
#: Plateau swaps of a clique of k vertices before the iteration ends.
FULL_PLATEAU = 8


@njit(cache=True)
def _better(kind, pen_a, deg_a, gain_a, pen_b, deg_b, gain_b, eps):  # pragma: no cover
    """1 when candidate a beats b under the phase rule, 0 on a tie, -1 otherwise."""
    if kind == PENALTY:
        if pen_a != pen_b:
            return 1 if pen_a < pen_b else -1
    elif kind == DEGREE:
        if deg_a != deg_b:
            return 1 if deg_a > deg_b else -1
    if gain_a > gain_b + eps:
        return 1
    if gain_a >= gain_b - eps:
        return 0
    return -1


@njit(cache=True)
def _select_add(indptr, indices, members, pos, adj, g, penalty, size, kind, eps, rng):  # pragma: no cover
    """The vertex to add (adjacent to every member, all in the least-degree member's row), or -1."""
    a = least_degree_pair(indptr, members, size)[0]
    best, bp, bd, bg, ties = -1, 0, 0, -np.inf, 0
    for q in range(indptr[a], indptr[a + 1]):
        v = indices[q]
        if pos[v] >= 0 or adj[v] != size:
            continue
        p, d, gv = penalty[v], indptr[v + 1] - indptr[v], g[v]
        c = 1 if best < 0 else _better(kind, p, d, gv, bp, bd, bg, eps)
        if c > 0:
            best, bp, bd, bg, ties = v, p, d, gv, 1
        elif c == 0:
            ties += 1
            if rng.integers(0, ties) == 0:
                best = v
    return best


@njit(cache=True)
def _select_swap(indptr, indices, data, members, pos, adj, g, idsum, sums, penalty, plateau, stamp,
                 seen, sstamp, size, k, kind, eps, rng):  # pragma: no cover
    """A plateau swap ``(u, v, delta)`` with ``v`` not dropped in this plateau; v = -1: none.

    ``v`` misses exactly one member ``u`` (found from the id sums), or, when the
    clique is full, ``v`` is adjacent to every member and ``u`` is its best partner.
    Every such ``v`` is a neighbour of one of the two least-degree members.
    """
    bu, bv, bp, bd, bg, ties = -1, -1, 0, 0, -np.inf, 0
    a, b = least_degree_pair(indptr, members, size)
    for src in (a, b):
        if src < 0:
            continue
        for q in range(indptr[src], indptr[src + 1]):
            v = indices[q]
            if pos[v] >= 0 or plateau[v] == stamp or seen[v] == sstamp:
                continue
            seen[v] = sstamp
            if adj[v] == size - 1:
                u = sums[0] - idsum[v]
                gv = g[v] - g[u]
            elif adj[v] == size and size == k:
                u, gv = -1, -np.inf
                for j in range(size):
                    x = members[j]
                    d = g[v] - g[x] - edge_weight(indptr, indices, data, x, v)
                    if d > gv:
                        u, gv = x, d
            else:
                continue
            p, dg = penalty[v], indptr[v + 1] - indptr[v]
            c = 1 if bv < 0 else _better(kind, p, dg, gv, bp, bd, bg, eps)
            if c > 0:
                bu, bv, bp, bd, bg, ties = u, v, p, dg, gv, 1
            elif c == 0:
                ties += 1
                if rng.integers(0, ties) == 0:
                    bu, bv = u, v
    return bu, bv, bg


@njit(cache=True)
def pls_search(
    indptr, indices, data, members, pos, adj, idsum, g, sums, size, value, k, exact,
    penalty, pen_state, plateau, mark, phase_state, max_iters, best_members, best_size, best_value, target, rng,
):  # pragma: no cover
    """Run ``max_iters`` PLS iterations (see the module notes), or until ``target`` is reached.

    ``pen_state`` = [cycle count, delay, number of penalised vertices];
    ``phase_state`` = [phase index, iterations done in it, plateau stamp];
    ``plateau`` marks vertices dropped in the current plateau (by stamp); ``mark``
    (n + 1 slots, the last a running stamp) is scratch. ``best_members[:best_size]``
    and ``best_value`` hold the best admissible clique (size 0: none yet).

    Returns ``(size, value, best_size, best_value, iterations)``.
    """
    n = indptr.shape[0] - 1
    done = 0
    stamp = phase_state[2]
    mstamp = mark[n]
    while done < max_iters:
        kind = PHASE_KIND[phase_state[0]]
        eps = 1e-12 * (1.0 + abs(value))
        full_swaps = 0
        while True:
            if size < k:
                v = _select_add(indptr, indices, members, pos, adj, g, penalty, size, kind, eps, rng)
                if v >= 0:
                    stamp += 1  # an add ends the plateau: every vertex may be swapped in again
                    full_swaps = 0
                while v >= 0:
                    value += g[v]
                    size = add_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, v)
                    v = _select_add(indptr, indices, members, pos, adj, g, penalty, size, kind, eps, rng) if size < k else -1
            if (not exact or size == k) and size > 0:
                if best_size == 0 or value > best_value + 1e-12 * (1.0 + abs(best_value)):
                    best_value = value
                    best_size = size
                    best_members[:size] = members[:size]
            if not exact and size > 1:  # the clique minus its member of most negative gain
                worst = 0
                for j in range(1, size):
                    if g[members[j]] < g[members[worst]]:
                        worst = j
                gw = g[members[worst]]
                if gw < 0.0 and value - gw > best_value + 1e-12 * (1.0 + abs(best_value)):
                    best_value = value - gw
                    best_size = size - 1
                    t = 0
                    for j in range(size):
                        if j != worst:
                            best_members[t] = members[j]
                            t += 1
            if best_size > 0 and best_value >= target:
                break
            mstamp += 1
            u, v, d = _select_swap(indptr, indices, data, members, pos, adj, g, idsum, sums, penalty,
                                   plateau, stamp, mark, mstamp, size, k, kind, eps, rng)
            if v < 0:
                break
            if size == k:  # a full clique's plateau is short: each swap there scans C0 x members
                full_swaps += 1
                if full_swaps > FULL_PLATEAU:
                    break
            plateau[u] = stamp
            size = drop_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, u)
            value += d
            size = add_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, v)
        done += 1
        if best_size > 0 and best_value >= target:
            break
        # penalties: members up; every `delay` iterations all down by one
        for j in range(size):
            x = members[j]
            if penalty[x] == 0:
                pen_state[2] += 1
            penalty[x] += 1
        pen_state[0] += 1
        if pen_state[0] > pen_state[1]:
            pen_state[0] = 0
            for x in range(n):
                if penalty[x] > 0:
                    if penalty[x] == 1:
                        pen_state[2] -= 1
                    penalty[x] -= 1
        if 4 * pen_state[2] < 3 * n:
            pen_state[1] += 1
        elif 4 * pen_state[2] > 3 * n and pen_state[1] > 1:
            pen_state[1] -= 1
        # perturbation
        stamp += 1
        if size >= n:
            break
        v = rng.integers(0, n)
        while pos[v] >= 0:
            v = rng.integers(0, n)
        if kind == PENALTY:  # restart from a random vertex
            while size > 0:
                size = drop_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, members[size - 1])
            value = 0.0
        else:  # v enters; the members it misses leave (and one more if the clique is full)
            mstamp += 1
            for p in range(indptr[v], indptr[v + 1]):
                mark[indices[p]] = mstamp
            j = 0
            while j < size:
                x = members[j]
                if mark[x] != mstamp:
                    value -= g[x]
                    size = drop_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, x)
                else:
                    j += 1
            if size == k:
                x = members[rng.integers(0, size)]
                value -= g[x]
                size = drop_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, x)
        value += g[v]
        size = add_vertex(indptr, indices, data, members, pos, adj, idsum, g, sums, size, v)
        phase_state[1] += 1
        if phase_state[1] >= PHASE_LENGTHS[phase_state[0]]:
            phase_state[1] = 0
            phase_state[0] = (phase_state[0] + 1) % PHASE_LENGTHS.shape[0]
    phase_state[2] = stamp
    mark[n] = mstamp
    return size, value, best_size, best_value, done
