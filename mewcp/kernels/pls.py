"""Phased local search over the cliques of a general graph, with a cardinality bound.

State: ``members[:size]`` (the clique), ``pos`` (slot in ``members`` or -1), ``g[v]`` =
the sum of v's edge weights to the members, and one of two bookkeepings of the add set
C0 (outsiders adjacent to every member) and the swap set C1 (outsiders missing exactly
one member), chosen by the caller from the density:

* *sparse* (no bitsets given; `mewcp.kernels.clique`'s layout): ``cnt[v]`` = members
  adjacent to v, ``ids[v]`` = the sum of their ids, ``ctl[SUMS]`` = the members' id sum.
  C0 (``cnt[v] == size``) lies in the row of the member of least degree, C1 (``cnt[v]
  == size - 1``, missing ``ctl[SUMS] - ids[v]``) in the rows of the two members of
  least degree, so a selection costs O(degree) and a sparse graph is never scanned whole;
  a move updates ``g`` along the vertex's row.
* *dense* (the adjacency rows as bitsets ``adj`` and the weight matrix ``w``, zero for
  non-edges, given): C0 and C1 are the bitsets ``bits[C0]``, ``bits[C1]``. An ADD of v
  is word-parallel (C1 <- (C1 & adj[v]) | (C0 & ~adj[v]), C0 <- C0 & adj[v]); a DROP
  recounts both from the members' rows with two bit planes ("missed once", "missed
  twice"), O(size * n / 64); ``g`` is kept for every vertex (one row of ``w`` per move,
  which vectorises). A C1 vertex v's missing member is the one bit of ``bits[MEM] &
  ~adj[v]``. Per move this is O(n + size * n / 64) word operations instead of
  O(n - degree) scattered counter updates, the cost that dominated (perf, sanr200_0.7).

One *iteration* (Pullan 2006, 2008): add vertices from C0 while ``size < k``; record the
clique; make a plateau swap (a vertex of C1 for the one member it misses, or, at ``size
== k``, a vertex of C0 for its best partner) with a vertex not dropped earlier in this
plateau; repeat until neither an add nor such a swap is left (or after ``FULL_PLATEAU``
swaps at ``size == k`` with C0 not empty); then raise the penalties of the members and perturb.
Selection in the *greedy* phase: the greatest weight gain; *penalty* phase: the least
vertex penalty, then the greatest gain; *degree* phase: the greatest degree, then the
greatest gain; ties at random. Perturbation in the greedy and degree phases: a random
vertex enters and the members it misses leave; in the penalty phase the search restarts
from a random vertex. The phases run 50, 50 and 100 iterations in turn. Penalties decay
every ``delay`` iterations; ``delay`` adapts so that about three quarters of the
vertices carry a penalty.

With ``exact`` only cliques of exactly k vertices are recorded; otherwise any clique,
and also the clique minus its member of most negative gain.

References
----------
.. [1] W. Pullan, "Phased local search for the maximum clique problem", J.
   Combinatorial Optimization 12 (2006).
.. [2] W. Pullan, "Approximating the maximum vertex/edge weighted clique using local
   search", J. Heuristics 14 (2008).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mewcp.kernels.clique import add_vertex, drop_vertex, edge_weight, least_degree_pair
from mewcp.kernels.rand import below
from numba.cpython.unsafe.numbers import trailing_zeros

GREEDY, PENALTY, DEGREE = 0, 1, 2
#: Iterations of each phase, in the order they run.
PHASE_LENGTHS = np.array([50, 50, 100], dtype=np.int64)
PHASE_KIND = np.array([GREEDY, PENALTY, DEGREE], dtype=np.int64)
#: Plateau swaps of a clique of k vertices that is not maximal (so that C0 x members was
#: scanned) before the iteration ends.
FULL_PLATEAU = 8
#: Slots of the integer control array ``ctl``: clique size, members' id sum (sparse),
#: penalty cycle count, penalty delay, penalised vertices, phase index, iterations done
#: in the phase, plateau stamp, scratch stamp, size of the best clique.
SIZE, SUMS, PCOUNT, PDELAY, PNUM, PHASE, PITER, STAMP, MSTAMP, BEST_SIZE = range(10)
N_CTL = 10
#: Rows of ``bits`` (dense bookkeeping): the bitsets of C0, C1 and the members.
C0, C1, MEM = range(3)
ONE = np.uint64(1)
ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
# The search allocates nothing, so it and its helpers (inlined) compile without numba's
# reference counting (``_nrt=False``; a compile error if one ever allocated): with it,
# passing the dozen state arrays around cost an atomic increment and decrement each per
# helper call, half the run time (perf, C125.9).


def dense_structure(indptr, indices, data):
    """The dense bookkeeping's graph: ``(w, adj)``, the weight matrix (zero for non-edges)
    and the adjacency rows as bitsets (``adj[v, x >> 6]`` bit ``x & 63``), filled in one
    pass over the CSR rows (allocated here: see `start_state`)."""
    n = indptr.shape[0] - 1
    w, adj = np.zeros((n, n)), np.zeros((n, (n + 63) >> 6), dtype=np.uint64)
    _fill_dense(indptr, indices, data, w, adj)
    return w, adj


@njit(cache=True)
def _fill_dense(indptr, indices, data, w, adj):  # pragma: no cover
    for v in range(indptr.shape[0] - 1):
        for q in range(indptr[v], indptr[v + 1]):
            x = indices[q]
            w[v, x] = data[q]
            adj[v, x >> 6] |= ONE << np.uint64(x & 63)


@njit(cache=True, inline="always", _nrt=False)
def _tail_mask(n):  # pragma: no cover
    """The valid bits of the last word of an n-bit set."""
    tail = n - 64 * ((n + 63) // 64 - 1)
    return ALL if tail == 64 else (ONE << np.uint64(tail)) - ONE


@njit(cache=True, inline="always", _nrt=False)
def _dense_unlink(w, members, pos, g, bits, ctl, u):  # pragma: no cover
    """Member u leaves (``g`` updated; the bitsets are left for `_dense_recount`)."""
    row = w[u]
    for x in range(g.shape[0]):
        g[x] -= row[x]
    size = ctl[SIZE] - 1
    slot = pos[u]
    last = members[size]
    members[slot] = last
    pos[last] = slot
    pos[u] = -1
    ctl[SIZE] = size
    bits[MEM, u >> 6] &= ~(ONE << np.uint64(u & 63))


@njit(cache=True, inline="always", _nrt=False)
def _dense_recount(adj, members, bits, ctl):  # pragma: no cover
    """C0 and C1 afresh from the members' rows: two bit planes count up to two misses."""
    size = ctl[SIZE]
    nw = bits.shape[1]
    for j in range(nw):
        once = np.uint64(0)
        twice = np.uint64(0)
        for i in range(size):
            miss = ~adj[members[i], j]
            twice |= once & miss
            once |= miss
        bits[C0, j] = ~once
        bits[C1, j] = once & ~twice & ~bits[MEM, j]  # a member misses only itself
    bits[C0, nw - 1] &= _tail_mask(adj.shape[0])
    bits[C1, nw - 1] &= _tail_mask(adj.shape[0])


@njit(cache=True, inline="always", _nrt=False)
def _add(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, v):  # pragma: no cover
    """Add v (adjacent to every member)."""
    if adj.shape[0] == 0:
        ctl[SIZE] = add_vertex(indptr, indices, data, members, pos, cnt, ids, g, ctl[SUMS:], ctl[SIZE], v)
        return
    members[ctl[SIZE]] = v
    pos[v] = ctl[SIZE]
    ctl[SIZE] += 1
    for j in range(bits.shape[1]):
        a = adj[v, j]
        c0 = bits[C0, j]
        bits[C1, j] = (bits[C1, j] & a) | (c0 & ~a)
        bits[C0, j] = c0 & a
    bits[C1, v >> 6] &= ~(ONE << np.uint64(v & 63))  # v misses only itself
    bits[MEM, v >> 6] |= ONE << np.uint64(v & 63)
    row = w[v]
    for x in range(g.shape[0]):
        g[x] += row[x]


@njit(cache=True, inline="always", _nrt=False)
def _drop(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, u):  # pragma: no cover
    """Drop member u."""
    if adj.shape[0] == 0:
        ctl[SIZE] = drop_vertex(indptr, indices, data, members, pos, cnt, ids, g, ctl[SUMS:], ctl[SIZE], u)
        return
    _dense_unlink(w, members, pos, g, bits, ctl, u)
    _dense_recount(adj, members, bits, ctl)


@njit(cache=True, inline="always", _nrt=False)
def _clear(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl):  # pragma: no cover
    """Empty the clique (dense: at once; sparse: drop the members one by one)."""
    if adj.shape[0] == 0:
        while ctl[SIZE] > 0:
            _drop(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, members[ctl[SIZE] - 1])
        return
    for i in range(ctl[SIZE]):
        pos[members[i]] = -1
    ctl[SIZE] = 0
    for x in range(g.shape[0]):
        g[x] = 0.0
    nw = bits.shape[1]
    for j in range(nw):
        bits[C0, j] = ALL
        bits[C1, j] = np.uint64(0)
        bits[MEM, j] = np.uint64(0)
    bits[C0, nw - 1] = _tail_mask(adj.shape[0])


def start_state(indptr, indices, data, adj, w, start, k):
    """The arrays of a search from the clique ``start``: ``(members, pos, cnt, ids, g, bits, ctl)``.

    ``adj``, ``w``: the dense bookkeeping's bitsets and weight matrix (`dense_structure`),
    or empty for the sparse one.

    ``ctl`` starts with penalty delay 2 and the other counters 0 (see ``N_CTL``). The
    arrays are allocated here, in numpy, and filled in place by a kernel: returning
    them from numba would box each one (about 2 us apiece, a fifth of a small solve).
    """
    n = indptr.shape[0] - 1
    state = (np.empty(k, dtype=np.int64), np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64),
             np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros((3, adj.shape[1]), dtype=np.uint64),
             np.zeros(N_CTL, dtype=np.int64))
    _start(indptr, indices, data, adj, w, start, *state)
    return state


@njit(cache=True)
def _start(indptr, indices, data, adj, w, start, members, pos, cnt, ids, g, bits, ctl):  # pragma: no cover
    ctl[PDELAY] = 2
    if adj.shape[0]:
        _clear(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl)
    for v in start:
        _add(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, v)


@njit(cache=True, inline="always", _nrt=False)
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


@njit(cache=True, inline="always", _nrt=False)
def _offer(kind, eps, rs, u, v, p, d, gv, bu, bv, bp, bd, bg, ties):  # pragma: no cover
    """Keep candidate (u, v) with penalty p, degree d and gain gv if it beats the best; ties at random."""
    c = 1 if bv < 0 else _better(kind, p, d, gv, bp, bd, bg, eps)
    if c > 0:
        return u, v, p, d, gv, 1
    if c == 0:
        ties += 1
        if below(rs, ties) == 0:
            return u, v, bp, bd, bg, ties
    return bu, bv, bp, bd, bg, ties


@njit(cache=True, inline="always", _nrt=False)
def _select_add(indptr, indices, adj, members, pos, cnt, g, bits, ctl, penalty, kind, eps, rs):  # pragma: no cover
    """The vertex of C0 to add under the phase rule, or -1 when C0 is empty."""
    size = ctl[SIZE]
    bu, bv, bp, bd, bg, ties = -1, -1, 0, 0, -np.inf, 0
    if adj.shape[0] > 0:
        for j in range(bits.shape[1]):
            word = bits[C0, j]
            while word:
                v = 64 * j + np.int64(trailing_zeros(word))
                word &= word - ONE
                bu, bv, bp, bd, bg, ties = _offer(kind, eps, rs, -1, v, penalty[v], indptr[v + 1] - indptr[v], g[v],
                                                  bu, bv, bp, bd, bg, ties)
        return bv
    a = least_degree_pair(indptr, members, size)[0]
    for q in range(indptr[a], indptr[a + 1]):
        v = indices[q]
        if pos[v] < 0 and cnt[v] == size:
            bu, bv, bp, bd, bg, ties = _offer(kind, eps, rs, -1, v, penalty[v], indptr[v + 1] - indptr[v], g[v],
                                              bu, bv, bp, bd, bg, ties)
    return bv


@njit(cache=True, inline="always", _nrt=False)
def _best_partner(indptr, indices, data, w, members, g, size, v):  # pragma: no cover
    """The member u whose place v (adjacent to every member) takes best, and the gain
    (``w`` dense: the weight matrix, else the CSR rows give w_uv)."""
    u, gv = -1, -np.inf
    for j in range(size):
        x = members[j]
        d = g[v] - g[x] - (w[x, v] if w.shape[0] else edge_weight(indptr, indices, data, x, v))
        if d > gv:
            u, gv = x, d
    return u, gv


@njit(cache=True, inline="always", _nrt=False)
def _missed_member(adj, bits, v):  # pragma: no cover
    """The member that v (in C1) is not adjacent to."""
    j = 0
    while True:
        word = bits[MEM, j] & ~adj[v, j]
        if word:
            return 64 * j + np.int64(trailing_zeros(word))
        j += 1


@njit(cache=True, inline="always", _nrt=False)
def _select_swap(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, penalty, plateau, seen, k, kind,
                 eps, rs):  # pragma: no cover
    """A plateau swap ``(u, v, delta, full)`` with ``v`` not dropped in this plateau (v = -1:
    none); ``full``: a vertex adjacent to every member of the full clique was considered.

    ``v`` misses exactly one member ``u``, or, when the clique is full, ``v`` is adjacent
    to every member and ``u`` is its best partner. Sparse bookkeeping: every such ``v``
    is a neighbour of one of the two least-degree members (``seen`` deduplicates them);
    dense: they are the bitsets C1 and C0.
    """
    size, stamp = ctl[SIZE], ctl[STAMP]
    bu, bv, bp, bd, bg, ties = -1, -1, 0, 0, -np.inf, 0
    if adj.shape[0] > 0:
        nw = bits.shape[1]
        for j in range(nw):
            word = bits[C1, j]
            while word:
                v = 64 * j + np.int64(trailing_zeros(word))
                word &= word - ONE
                if plateau[v] != stamp:
                    u = _missed_member(adj, bits, v)
                    bu, bv, bp, bd, bg, ties = _offer(kind, eps, rs, u, v, penalty[v], indptr[v + 1] - indptr[v],
                                                      g[v] - g[u], bu, bv, bp, bd, bg, ties)
        full = False
        if size == k:
            for j in range(nw):
                word = bits[C0, j]
                while word:
                    full = True
                    v = 64 * j + np.int64(trailing_zeros(word))
                    word &= word - ONE
                    if plateau[v] != stamp:
                        u, gv = _best_partner(indptr, indices, data, w, members, g, size, v)
                        bu, bv, bp, bd, bg, ties = _offer(kind, eps, rs, u, v, penalty[v], indptr[v + 1] - indptr[v],
                                                          gv, bu, bv, bp, bd, bg, ties)
        return bu, bv, bg, full
    ctl[MSTAMP] += 1
    sstamp = ctl[MSTAMP]
    full = False
    for src in least_degree_pair(indptr, members, size):
        if src < 0:
            continue
        for q in range(indptr[src], indptr[src + 1]):
            v = indices[q]
            if pos[v] >= 0 or plateau[v] == stamp or seen[v] == sstamp:
                continue
            seen[v] = sstamp
            if cnt[v] == size - 1:
                u = ctl[SUMS] - ids[v]
                gv = g[v] - g[u]
            elif cnt[v] == size and size == k:
                full = True
                u, gv = _best_partner(indptr, indices, data, w, members, g, size, v)
            else:
                continue
            bu, bv, bp, bd, bg, ties = _offer(kind, eps, rs, u, v, penalty[v], indptr[v + 1] - indptr[v], gv,
                                              bu, bv, bp, bd, bg, ties)
    return bu, bv, bg, full


@njit(cache=True, _nrt=False)
def pls_search(
    indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, value, k, exact,
    penalty, plateau, mark, max_iters, best_members, best_value, target, rs,
):  # pragma: no cover
    """Run ``max_iters`` PLS iterations (see the module notes), or until ``target`` is reached.

    The state comes from `start_state` (``adj`` empty: sparse bookkeeping);
    ``plateau`` marks vertices dropped in the current plateau (by ``ctl[STAMP]``),
    ``mark`` is scratch (by ``ctl[MSTAMP]``), ``rs`` the random state
    (`mewcp.kernels.rand`). ``best_members[:ctl[BEST_SIZE]]`` and ``best_value`` hold the
    best admissible clique (size 0: none yet).

    Returns ``(value, best_value, iterations)``.
    """
    n = indptr.shape[0] - 1
    dense = adj.shape[0] > 0
    done = 0
    while done < max_iters:
        kind = PHASE_KIND[ctl[PHASE]]
        eps = 1e-12 * (1.0 + abs(value))
        full_swaps = 0
        while True:
            if ctl[SIZE] < k:
                v = _select_add(indptr, indices, adj, members, pos, cnt, g, bits, ctl, penalty, kind, eps, rs)
                if v >= 0:
                    ctl[STAMP] += 1  # an add ends the plateau: every vertex may be swapped in again
                    full_swaps = 0
                while v >= 0:
                    value += g[v]
                    _add(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, v)
                    v = -1
                    if ctl[SIZE] < k:
                        v = _select_add(indptr, indices, adj, members, pos, cnt, g, bits, ctl, penalty, kind,
                                        eps, rs)
            size = ctl[SIZE]
            if (not exact or size == k) and size > 0:
                if ctl[BEST_SIZE] == 0 or value > best_value + 1e-12 * (1.0 + abs(best_value)):
                    best_value = value
                    ctl[BEST_SIZE] = size
                    for j in range(size):
                        best_members[j] = members[j]
            if not exact and size > 1:  # the clique minus its member of most negative gain
                worst = 0
                for j in range(1, size):
                    if g[members[j]] < g[members[worst]]:
                        worst = j
                gw = g[members[worst]]
                if gw < 0.0 and value - gw > best_value + 1e-12 * (1.0 + abs(best_value)):
                    best_value = value - gw
                    ctl[BEST_SIZE] = size - 1
                    t = 0
                    for j in range(size):
                        if j != worst:
                            best_members[t] = members[j]
                            t += 1
            if ctl[BEST_SIZE] > 0 and best_value >= target:
                break
            u, v, d, full = _select_swap(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, penalty,
                                         plateau, mark, k, kind, eps, rs)
            if v < 0:
                break
            if full:  # a plateau of full, non-maximal cliques is short: each swap scans C0 x members
                full_swaps += 1
                if full_swaps > FULL_PLATEAU:
                    break
            plateau[u] = ctl[STAMP]
            _drop(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, u)
            value += d
            _add(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, v)
        done += 1
        if ctl[BEST_SIZE] > 0 and best_value >= target:
            break
        # penalties: members up; every `delay` iterations all down by one
        size = ctl[SIZE]
        for j in range(size):
            x = members[j]
            if penalty[x] == 0:
                ctl[PNUM] += 1
            penalty[x] += 1
        ctl[PCOUNT] += 1
        if ctl[PCOUNT] > ctl[PDELAY]:
            ctl[PCOUNT] = 0
            for x in range(n):
                if penalty[x] > 0:
                    if penalty[x] == 1:
                        ctl[PNUM] -= 1
                    penalty[x] -= 1
        if 4 * ctl[PNUM] < 3 * n:
            ctl[PDELAY] += 1
        elif 4 * ctl[PNUM] > 3 * n and ctl[PDELAY] > 1:
            ctl[PDELAY] -= 1
        # perturbation
        ctl[STAMP] += 1
        if size >= n:
            break
        v = below(rs, n)
        while pos[v] >= 0:
            v = below(rs, n)
        if kind == PENALTY:  # restart from a random vertex
            _clear(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl)
            value = 0.0
        else:  # v enters; the members it misses leave (and one more if the clique is full)
            if dense:  # the members whose rows miss v leave; C0 and C1 recounted once
                j = 0
                while j < ctl[SIZE]:
                    x = members[j]
                    if adj[v, x >> 6] & (ONE << np.uint64(x & 63)):
                        j += 1
                    else:
                        value -= g[x]
                        _dense_unlink(w, members, pos, g, bits, ctl, x)
                _dense_recount(adj, members, bits, ctl)
            else:
                ctl[MSTAMP] += 1
                mstamp = ctl[MSTAMP]
                for p in range(indptr[v], indptr[v + 1]):
                    mark[indices[p]] = mstamp
                j = 0
                while j < ctl[SIZE]:
                    x = members[j]
                    if mark[x] != mstamp:
                        value -= g[x]
                        _drop(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, x)
                    else:
                        j += 1
            if ctl[SIZE] == k:
                x = members[below(rs, k)]
                value -= g[x]
                _drop(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, x)
        value += g[v]
        _add(indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, v)
        ctl[PITER] += 1
        if ctl[PITER] >= PHASE_LENGTHS[ctl[PHASE]]:
            ctl[PITER] = 0
            ctl[PHASE] = (ctl[PHASE] + 1) % PHASE_LENGTHS.shape[0]
    return value, best_value, done
