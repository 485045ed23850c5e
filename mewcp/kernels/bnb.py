"""Branch and bound for the cardinality-constrained maximum edge weight clique.

The search state lives in arrays owned by the caller (`new_state`), so a search can
stop after a node budget and resume where it stopped: the driver checks the clock
between calls.

Notation at a search node: ``C`` is the clique built so far (``|C| = d``), ``W(C)``
its weight, ``P`` the candidates (every vertex of ``P`` is adjacent to all of
``C``), ``sigma(v) = sum_{u in C} w_uv`` for ``v in P`` (MEWCat's pseudo vertex
weight), and ``r = k - d`` the slots left. A clique ``S`` of ``P`` completes ``C``
to weight ``W(C) + sigma(S) + W(S)``.

Bound (`expand`). ``P`` is scanned into independent sets ``I_1, I_2, ...`` built
one after another, each greedily from the unplaced vertices of highest degree in
``P`` (MEWCat, Liu, Xiao & Zhou, AAAI-24). Order the members of ``S`` by the index
of their set; every member x has at most ``|S| - 1 <= r - 1`` earlier members, one
per earlier set, so

* ``wt(x) = sigma(x) + top_{r-2}(positive values of max_{y in I_c, y ~ x} w_xy
  over the earlier sets c)`` bounds x's part (its sigma and its edges to earlier
  members; x is not the latest, so it has at most r - 2);
* ``up(v) = sigma(v) + top_{r-1}(max_{u in I_c, u ~ v} (wt(u) + w_uv) over the
  earlier sets c)`` bounds ``sigma(S) + W(S)`` for every clique S of placed
  vertices whose latest member is v. With ``size="exact"`` the values of every set
  reaching v count (and ``up = -inf`` when fewer than ``r - 1`` sets reach v: v
  cannot be the latest of an r-clique); with ``size="at_most"`` the positive ones.

``top_c`` of a list is its sum while it has at most c values, else the smaller of
c times its largest value and the sum of its positive values (an upper bound on the
sum of its c largest that costs O(1) per value; exact top-c sums kept in heaps
cost 1.5-2.7x the time on the DIMACS graphs at k* for the same nodes). The ``r - 1``
/ ``r - 2`` limits are where the cardinality bound enters; without them (``r``
unlimited, weights positive) the bound is MEWCat's.

It charges every earlier member with up to ``r - 2`` edges, about twice what an
r-clique has when many sets reach x (``r`` well below the clique number). A second
bound is symmetric in the members: ``sigma(S) + W(S) = sum_{x in S} (sigma(x) +
(1/2) sum_{y in S, y != x} w_xy) <= sum_{x in S} h(x)`` with ``h(x) = sigma(x) +
(1/2) c(x)``, ``c(x)`` a bound on x's star into an (r-1)-clique of ``N(x) ∩ P``: the
first r - 1 class maxima of a first-fit colouring of those neighbours in decreasing
``w_xy`` (a clique holds one vertex per class; positive ones only with
``size="at_most"``; ``-inf`` with ``size="exact"`` when fewer than r - 1 classes exist,
`_coloured_top`), at most the sum of the r - 1 largest ``w_xy``. S takes at most one
vertex per set, so the sum of the ``r``
largest per-set maxima of h over the placed vertices bounds every clique of them
(``-inf`` with ``size="exact"`` while fewer than r sets hold a placed vertex). A
vertex is placed when either bound of the placed set with it stays at most the
target. h costs a second pass over P, so a node computes it only once the first
bound refuses a vertex after r sets are closed (before that its caps do not bind), and at
each search level only while it keeps saving branches (`expand`). The half-sum bound holds
for any partition into independent sets, so when vertices are left to branch on,
`_h_branch` tries two partitions chosen for h and keeps the smaller branching set. A vertex whose
``up`` exceeds the target ``best - W(C)`` is not placed: it goes to the branching
set B. Every clique of P either lies in the placed set, whose bound cannot beat
the incumbent, or contains a vertex of B; branching on ``b_1, b_2, ...`` (lowest
degree first) with candidates ``N(b_i) ∩ (P minus b_1..b_{i-1})`` covers them
all (the branching-set scheme of WLMC, Jiang, Li & Manyà 2016, and MEWCat).
With ``size="exact"`` a vertex with fewer than ``r - 1`` neighbours in P is
removed first, repeatedly (a vertex of an r-clique has r - 1 neighbours in it), and
a node whose remaining candidates fall into fewer than r of these sets (built with
nothing branched on) is closed at once: a proper colouring with fewer than r colours
rules out an r-clique.

Layout: the adjacency is uint64 bit rows (`adjacency_bits`; degrees in P are
popcounts), each set is one scan of the candidates sorted by degree, and nodes with
at most `LOCAL_MAX` candidates keep their weights as a local matrix (``-inf`` off the
edges) filled from the parent's, so the bound reads them from cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["adjacency_bits", "expand", "new_state", "open_bound", "search"]

_NEG = -np.inf
#: Search nodes with at most this many candidates get a local copy of their weights (`search`).
LOCAL_MAX = 192
#: `_coloured_top` colours at most this many times ``cap`` neighbours, then bounds the sets still to open.
POP_LIMIT = 3
#: `expand` counts a win of the half-sum values when the vertices they saved from branching times the slots left
#: reach this.
WIN_WORK = 64


def adjacency_bits(adj: np.ndarray) -> np.ndarray:
    """The 0/1 matrix ``adj`` (n x n) as bit rows: bit ``u % 64`` of word ``u // 64`` of row v is ``adj[v, u]``."""
    n = adj.shape[0]
    nw = max(1, (n + 63) // 64)
    packed = np.packbits(np.asarray(adj, dtype=bool), axis=1, bitorder="little")
    out = np.zeros((n, nw * 8), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return np.ascontiguousarray(out.view("<u8").astype(np.uint64, copy=False))


@intrinsic
def _popcount(typingctx, x):  # pragma: no cover - compiled
    """Number of set bits of a uint64 (LLVM ``ctpop``)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@njit(cache=True, inline="always")
def _has(row, u):  # pragma: no cover - compiled
    """Whether bit ``u`` of the bit row ``row`` is set."""
    return (row[u >> 6] >> np.uint64(u & 63)) & np.uint64(1) != 0


def new_state(n: int, k: int) -> tuple[np.ndarray, ...]:
    """Arrays for a search over ``n`` candidates and cliques of at most ``k`` vertices.

    Returns ``(S, sig, rem, bl, lv, fw, best, scratch_i, scratch_f, tops, scratch_b, wl)``;
    the root (level 0) holds every vertex with ``sigma = 0``.
    """
    levels = k + 1
    s = np.zeros((levels, n), dtype=np.int64)
    s[0] = np.arange(n)
    sig = np.zeros((levels, n), dtype=np.float64)
    rem = np.zeros((levels, n), dtype=np.uint8)
    bl = np.zeros((levels, n), dtype=np.int64)
    # per level: size, number of branches, next branch, vertex added, needs expanding; the half-sum bound's
    # tries, wins and skips at this level (`expand`); where its local weight matrix starts in wl (-1: none)
    lv = np.zeros((levels, 9), dtype=np.int64)
    lv[:, 8] = -1
    lv[0, 0] = n
    lv[0, 4] = 1
    # per level: W(C); then [best weight, depth, best size] in the last row
    fw = np.zeros(levels + 1, dtype=np.float64)
    fw[levels] = _NEG
    best = np.full(k + 2, -1, dtype=np.int64)  # best clique, then [size, depth]
    best[k] = 0
    best[k + 1] = 0
    scratch_i = np.zeros((19, n + 1), dtype=np.int64)
    scratch_f = np.zeros((8, n), dtype=np.float64)
    tops = np.zeros((3, n), dtype=np.float64)
    scratch_b = np.zeros((2, max(1, (n + 63) // 64)), dtype=np.uint64)
    # local weight matrices of the levels with at most LOCAL_MAX candidates, stacked: sizes fall by at least one
    # per level, so they fit in min(levels L^2, sum of x^2 for x <= L)
    el = min(LOCAL_MAX, n)
    wl = np.zeros(min(levels * el * el, el * (el + 1) * (2 * el + 1) // 6), dtype=np.float64)
    return s, sig, rem, bl, lv, fw, best, scratch_i, scratch_f, tops, scratch_b, wl


@njit(cache=True, inline="always")
def _capped(total, count, cap, largest, positive):  # pragma: no cover - compiled
    """A bound on the sum of the ``cap`` largest of ``count`` values: their ``total`` while ``count <= cap``,
    else the smaller of ``cap`` times the ``largest`` and the sum of their ``positive`` parts."""
    if count <= cap:
        return total
    b = cap * largest
    return b if b < positive else positive


@njit(cache=True, inline="always")
def _sift_down(h, c, i, x):  # pragma: no cover - compiled
    """Put ``x`` at position ``i`` of the min-heap ``h[:c]`` (whose subtrees below ``i`` are heaps) and sift it down."""
    while True:
        a = 2 * i + 1
        if a >= c:
            break
        b = a + 1
        if b < c and h[b] < h[a]:
            a = b
        if x <= h[a]:
            break
        h[i] = h[a]
        i = a
    h[i] = x


@njit(cache=True, inline="always")
def _heap_add(h, c, tot, cap, exact, x):  # pragma: no cover - compiled
    """Keep the ``cap`` largest values (positive ones only unless ``exact``) in the min-heap ``h[:c]``
    whose sum is ``tot``; returns the new ``(c, tot)``. ``-inf`` (an empty set) is never kept."""
    if x == _NEG or (not exact and x <= 0.0):
        return c, tot
    if c < cap:
        q = c
        h[q] = x
        while q > 0 and h[(q - 1) // 2] > h[q]:
            y = h[q]
            h[q] = h[(q - 1) // 2]
            h[(q - 1) // 2] = y
            q = (q - 1) // 2
        return c + 1, tot + x
    if x > h[0]:
        tot += x - h[0]
        _sift_down(h, c, 0, x)
    return c, tot


@njit(cache=True, inline="always")
def _max_sift(hw, hj, c, i, x, j):  # pragma: no cover - compiled
    """Put ``(x, j)`` at position ``i`` of the max-heap ``hw[:c]`` (keyed by value, ``hj`` alongside) and sift it
    down."""
    while True:
        a = 2 * i + 1
        if a >= c:
            break
        b = a + 1
        if b < c and hw[b] > hw[a]:
            a = b
        if x >= hw[a]:
            break
        hw[i] = hw[a]
        hj[i] = hj[a]
        i = a
    hw[i] = x
    hj[i] = j


@njit(cache=True)
def _coloured_top(w, bits, verts, m, i, proc, cap, exact, hw, hj, nxt, head, wl, off):  # pragma: no cover
    """A bound on ``sum_{u in Q} w_vu`` (``v = verts[i]``) over the cliques Q of at most ``cap`` vertices
    (exactly ``cap`` with ``exact``) among v's neighbours in ``verts[:m]`` with ``proc == 0``.

    The neighbours are coloured first fit in decreasing order of ``w_vu`` (each joins the first independent set
    with no neighbour of it, else opens a new one), so the sets' maxima appear in decreasing order; Q holds at
    most one vertex per set, so the sum of the first ``cap`` maxima bounds it (positive ones only without
    ``exact``; ``-inf`` with ``exact`` when fewer than ``cap`` sets exist: no such Q). It stops once ``cap`` sets
    are open, or after ``POP_LIMIT * cap`` neighbours, bounding each set still to open by the largest weight
    left. ``hw``/``hj`` hold the max-heap of weights and positions, ``nxt``/``head`` the sets as linked lists.
    """
    if cap <= 0:
        return 0.0
    v = verts[i]
    row = bits[v]
    wrow = w[v]
    c = 0
    for j in range(m):
        if proc[j] != 0 or j == i:
            continue
        if off >= 0:
            x = wl[off + i * m + j]
            if x == _NEG:
                continue
        else:
            u = verts[j]
            if not _has(row, u):
                continue
            x = wrow[u]
        if not exact and x <= 0.0:
            continue
        hw[c] = x
        hj[c] = j
        c += 1
    for q in range(c // 2 - 1, -1, -1):  # heapify
        _max_sift(hw, hj, c, q, hw[q], hj[q])
    ncls = 0
    tot = 0.0
    pops = 0
    while c > 0 and ncls < cap:
        x = hw[0]
        if pops == POP_LIMIT * cap:
            # enough work: each set still to open has a maximum of at most x, the largest weight left
            return tot + (cap - ncls) * x
        pops += 1
        j = hj[0]
        c -= 1
        if c > 0:
            _max_sift(hw, hj, c, 0, hw[c], hj[c])
        ru = bits[verts[j]]
        q = 0
        while q < ncls:
            y = head[q]
            while y >= 0 and not _has(ru, verts[y]):
                y = nxt[y]
            if y < 0:
                break  # no neighbour of j in set q
            q += 1
        if q == ncls:
            ncls += 1
            tot += x
            nxt[j] = -1
        else:
            nxt[j] = head[q]
        head[q] = j
    if exact and ncls < cap:
        return _NEG
    return tot


@njit(cache=True)
def _half_sums(w, bits, verts, sig, m, r, exact, removed, placed, setof, npl, nset, hv, heap, hw, hj, nxt, head,
               wl, off):  # pragma: no cover
    """Write ``hv[i] = h(i)`` for the candidates not ``removed``; put the largest h of each of the closed sets
    ``0 .. nset - 1`` of the ``placed[:npl]`` vertices (set ``setof``) in the top-r min-heap ``heap``.

    Returns ``(heap size, heap sum, largest h in set nset)``, the last ``-inf`` when set nset has none.
    """
    for t in range(m):
        if removed[t] == 0:
            hv[t] = sig[t] + 0.5 * _coloured_top(w, bits, verts, m, t, removed, r - 1, exact, hw, hj, nxt, head, wl,
                                                         off)
    hn = 0
    hsum = 0.0
    hcur = _NEG
    for c in range(nset + 1):
        hmx = _NEG
        for t in range(npl):
            if setof[t] == c and hv[placed[t]] > hmx:
                hmx = hv[placed[t]]
        if c < nset:
            hn, hsum = _heap_add(heap, hn, hsum, r, exact, hmx)
        else:
            hcur = hmx
    return hn, hsum, hcur


@njit(cache=True, inline="always")
def _val(x, exact):  # pragma: no cover - compiled
    """What a set maximum of h adds to a top-r sum: itself with ``exact``, else its positive part."""
    return x if exact or x > 0.0 else 0.0


@njit(cache=True)
def _top_maxima(hv, cur, ncls, r, exact, heap):  # pragma: no cover - compiled
    """Sum of the ``r`` largest ``hv[cur[q]]`` over the classes q with ``cur[q] >= 0`` (positive parts unless
    ``exact``; ``-inf`` with ``exact`` when fewer than r classes are non-empty)."""
    c = 0
    tot = 0.0
    for q in range(ncls):
        if cur[q] >= 0:
            c, tot = _heap_add(heap, c, tot, r, True, _val(hv[cur[q]], exact))
    if exact and c < r:
        return _NEG
    return tot


@njit(cache=True)
def _h_branch(bits, verts, m, r, exact, removed, hv, target, limit, out, si, heap):  # pragma: no cover
    """Branching sets from the half-sum values alone, on independent sets chosen for them.

    The half-sum bound holds for any partition of the placed vertices into independent sets (a clique takes at
    most one vertex of each), and it is smallest when vertices of similar h share a set. Two partitions of the
    candidates ``verts[:m]`` not ``removed`` (vertices with ``h = -inf``, in no clique of the size, are always
    placed):

    1. first fit in decreasing h: the sets' maxima appear in decreasing order; the highest-h vertices are
       branched on, one by one, until the r largest maxima of the rest are at most ``target``;
    2. best fit in increasing h: each vertex joins the set, among those with no neighbour of it, whose maximum
       is largest (it becomes that set's maximum), else opens one; it is placed if the bound stays at most
       ``target``, else branched on.

    Writes the smaller branching set into ``out``, if it has fewer than ``limit`` vertices, and returns its size
    and the bound of the vertices placed (``(limit, inf)`` when neither beats ``limit``). ``si`` holds 8 int
    rows of scratch, ``heap`` a float one.
    """
    idx = si[0]
    cls = si[1]
    head = si[2]
    tail = si[3]
    nxt = si[4]
    cur = si[5]
    rec = si[6]
    out2 = si[7]
    order = np.argsort(-hv[:m], kind="mergesort")
    c = 0
    for t in order:
        if removed[t] == 0 and hv[t] != _NEG:
            idx[c] = t
            c += 1
    # 1. first fit in decreasing h; each set a linked list, members in decreasing h
    ncls = 0
    for a in range(c):
        v = idx[a]
        row = bits[verts[v]]
        q = 0
        while q < ncls:
            x = head[q]
            while x >= 0 and not _has(row, verts[x]):
                x = nxt[x]
            if x < 0:
                break
            q += 1
        if q == ncls:
            head[q] = v
            ncls += 1
        else:
            nxt[tail[q]] = v
        tail[q] = v
        nxt[v] = -1
        cls[v] = q
    for q in range(ncls):
        cur[q] = head[q]
    best_nb = limit
    best_b = np.inf
    j = 0
    while j < limit:
        b = _top_maxima(hv, cur, ncls, r, exact, heap)
        if b <= target:
            best_nb = j
            best_b = b
            for t in range(j):
                out[t] = idx[t]
            break
        if j == c:
            break
        v = idx[j]  # the highest h left: its set's maximum
        cur[cls[v]] = nxt[v]
        j += 1
    # 2. best fit in increasing h; rec: the sets, most recently raised (largest maximum) first
    ncls = 0
    nb2 = 0
    srun = 0.0  # sum of the first min(r, ncls) maxima in rec order (their values, _val)
    for a in range(c - 1, -1, -1):
        if nb2 >= best_nb:
            break
        v = idx[a]
        row = bits[verts[v]]
        pos = 0
        while pos < ncls:
            x = head[rec[pos]]
            while x >= 0 and not _has(row, verts[x]):
                x = nxt[x]
            if x < 0:
                break
            pos += 1
        hval = _val(hv[v], exact)
        cnt = ncls + (1 if pos == ncls else 0)
        if exact and cnt < r:
            b = _NEG
        elif pos < ncls and pos < r:
            b = hval + srun - _val(hv[head[rec[pos]]], exact)
        elif ncls >= r:
            b = hval + srun - _val(hv[head[rec[r - 1]]], exact)
        else:
            b = hval + srun
        if b > target:
            out2[nb2] = v
            nb2 += 1
            continue
        if pos == ncls:
            q = ncls
            ncls += 1
            nxt[v] = -1
        else:
            q = rec[pos]
            nxt[v] = head[q]
        head[q] = v  # members in decreasing h: the new one (the largest so far) first
        for t in range(pos, 0, -1):
            rec[t] = rec[t - 1]
        rec[0] = q
        srun = 0.0
        for t in range(min(r, ncls)):
            srun += _val(hv[head[rec[t]]], exact)
    else:
        if nb2 < best_nb:
            best_nb = nb2
            best_b = _NEG if exact and ncls < r else srun
            for t in range(nb2):
                out[t] = out2[t]
    return best_nb, best_b


@njit(cache=True)
def _colours_below(bits, verts, rest, nr, r, tmp, banned):  # pragma: no cover - compiled
    """Whether the candidates ``rest[:nr]`` fall into fewer than ``r`` independent sets, built one after another
    as `expand` builds them when it branches on nothing (each scans the vertices left in order and takes every one
    with no neighbour among those it took). A proper colouring with fewer than r colours rules out an r-clique."""
    for t in range(nr):
        tmp[t] = rest[t]
    nw = bits.shape[1]
    left = nr
    for _ in range(r - 1):
        if left == 0:
            break
        for q in range(nw):
            banned[q] = 0
        kept = 0
        for t in range(left):
            v = tmp[t]
            u = verts[v]
            if _has(banned, u):
                tmp[kept] = v
                kept += 1
            else:
                row = bits[u]
                for q in range(nw):
                    banned[q] |= row[q]
        left = kept
    return left == 0


@njit(cache=True, inline="always")
def _ask(hstat):  # pragma: no cover - compiled
    """Whether a node computes the half-sum values (`expand`): always in the first 16 tries at its level, then
    while at least one try in 8 won, else once every 64 chances. Counts the try or the skip in ``hstat``."""
    if hstat[0] < 16 or 8 * hstat[1] >= hstat[0] or hstat[2] >= 63:
        hstat[0] += 1
        hstat[2] = 0
        return True
    hstat[2] += 1
    return False


@njit(cache=True)
def expand(w, bits, verts, sig, m, r, exact, target, out_rem, out_branch, scratch_i, scratch_f, tops, scratch_b,
           hstat, wl, off):  # pragma: no cover
    """Split candidates ``verts[:m]`` into placed vertices and a branching set.

    ``bits`` is the adjacency as bit rows (`adjacency_bits`), ``sig[:m]`` the
    candidates' sigma values, ``r`` the slots left, ``target`` the most the placed
    vertices may add (``best - W(C)``). Writes ``out_rem[i] = 1`` for candidates
    removed by the degree rule (``exact`` only) and the branching set's positions
    into ``out_branch`` (lowest degree first). Returns the size of the branching set
    and a bound on what any clique of placed vertices adds to ``W(C)`` (the smaller
    of the two bounds of the module notes; ``-inf`` when none can).

    ``hstat`` (``[tries, wins, skips]``, kept per search level) decides whether the
    half-sum bound is computed when it could bind: always for the first 16 tries,
    then while at least one try in 8 placed a vertex the first bound refused (a
    win), else once every 64 chances. At k = k* on DSJC500.5 it placed 4 vertices
    in 59,800 tries (a quarter of the running time); below k* it is what proves.
    Either way every bound is valid; only the work changes.
    """
    deg = scratch_i[0]
    count = scratch_i[1]
    order = scratch_i[3]
    rest = scratch_i[6]
    wadd = scratch_f[1]
    uadd = scratch_f[2]
    wmax = tops[0]
    umax = tops[1]
    upos = tops[2]
    hwc = scratch_i[4]
    huc = scratch_i[5]
    hws = scratch_f[3]
    hus = scratch_f[4]
    inset = scratch_b[0]  # the candidates, as a bit row
    banned = scratch_b[1]  # neighbours of the current set's placed vertices
    nw = bits.shape[1]
    for q in range(nw):
        inset[q] = 0
    for i in range(m):
        u = verts[i]
        inset[u >> 6] |= np.uint64(1) << np.uint64(u & 63)
        hwc[i] = 0
        huc[i] = 0
        hws[i] = 0.0
        hus[i] = 0.0
        wmax[i] = _NEG
        umax[i] = _NEG
        upos[i] = 0.0
        out_rem[i] = 0
        wadd[i] = _NEG
        uadd[i] = _NEG
    for i in range(m):
        row = bits[verts[i]]
        c = 0
        for q in range(nw):
            c += _popcount(row[q] & inset[q])
        deg[i] = c
    if exact and r > 1:  # peel to the (r-1)-core: a stack of removed vertices whose neighbours lose a degree
        stack = order
        ns = 0
        for i in range(m):
            if deg[i] < r - 1:
                out_rem[i] = 1
                stack[ns] = i
                ns += 1
        while ns > 0:
            ns -= 1
            i = stack[ns]
            row = bits[verts[i]]
            for j in range(m):
                if out_rem[j] == 0 and _has(row, verts[j]):
                    deg[j] -= 1
                    if deg[j] < r - 1:
                        out_rem[j] = 1
                        stack[ns] = j
                        ns += 1
    capw = r - 2 if r > 2 else 0
    capu = r - 1
    hv = scratch_f[5]
    hset = scratch_f[6]
    placed = scratch_i[7]
    setof = scratch_i[8]
    hw = scratch_f[7]
    hj = scratch_i[9]
    cnxt = scratch_i[10]  # (`_h_branch` reuses rows 10-18 after the half-sum values are computed)
    chead = scratch_i[11]
    npl = 0
    nset = 0
    have_h = False
    asked = False  # whether this node has decided on the half-sum bound
    saved = 0  # vertices the first bound refused that the half-sum values placed
    hn = 0  # set maxima of h of the closed sets: the r largest (positive only unless exact) in a min-heap
    hsum = 0.0
    hcur = _NEG  # largest h among the placed vertices of the current set
    best_h = np.inf  # the half-sum bound of the placed vertices (none until h is computed)
    # rest[:nr]: the unplaced candidates, highest degree first (ties: lowest position), by a counting sort
    for d in range(m + 1):
        count[d] = 0
    for i in range(m):
        if out_rem[i] == 0:
            count[m - deg[i]] += 1
    nr = 0
    for d in range(m + 1):
        c = count[d]
        count[d] = nr
        nr += c
    for i in range(m):
        if out_rem[i] == 0:
            d = m - deg[i]
            rest[count[d]] = i
            count[d] += 1
    if exact and r > 1 and _colours_below(bits, verts, rest, nr, r, placed, banned):
        return 0, _NEG  # fewer than r independent sets cover the candidates: no r-clique among them
    nb = 0
    best_up = _NEG
    while nr > 0:
        # one independent set: scan rest in order; a vertex with no placed neighbour in the set joins it
        # (it is the highest-degree such vertex left), the others stay, in order, for the next sets
        for q in range(nw):
            banned[q] = 0
        kept = 0
        for t in range(nr):
            v = rest[t]
            if _has(banned, verts[v]):
                rest[kept] = v
                kept += 1
                continue
            if exact and huc[v] < capu:
                up = _NEG
            else:
                up = sig[v] + _capped(hus[v], huc[v], capu, umax[v], upos[v])
            if up < best_up:
                up = best_up
            if up > target and not asked and nset >= r:
                # the sequential bound refuses v and r sets are closed (its caps bind): compute h and the set maxima
                # so far, unless it has rarely won at this level
                asked = True
                if _ask(hstat):
                    have_h = True
                    hn, hsum, hcur = _half_sums(w, bits, verts, sig, m, r, exact, out_rem, placed, setof, npl, nset,
                                                hv, hset, hw, hj, cnxt, chead, wl, off)
            hnew = _NEG
            hb = np.inf
            if not have_h:
                pass
            elif exact:
                hnew = hv[v] if hv[v] > hcur else hcur
                if hn + 1 < r:
                    hb = _NEG
                elif hn < r:
                    hb = hsum + hnew
                else:
                    hb = hsum + (hnew - hset[0] if hnew > hset[0] else 0.0)
            else:
                hnew = hv[v] if hv[v] > hcur else hcur
                if hnew <= 0.0:
                    hb = hsum
                elif hn < r:
                    hb = hsum + hnew
                else:
                    hb = hsum + (hnew - hset[0] if hnew > hset[0] else 0.0)
            if up > target and hb > target:
                order[nb] = v
                nb += 1
                continue
            if up > target:
                saved += 1
            best_up = up
            if have_h:
                best_h = hb
                hcur = hnew
            placed[npl] = v
            setof[npl] = nset
            npl += 1
            wv = sig[v] + _capped(hws[v], hwc[v], capw, wmax[v], hws[v])
            vv = verts[v]
            row = bits[vv]
            for q in range(nw):
                banned[q] |= row[q]
            # every unplaced candidate: the kept ones and those not yet scanned (branchless: -inf off the edges)
            if off >= 0:
                lo = off + v * m
                for t2 in range(kept):
                    j = rest[t2]
                    x = wl[lo + j]
                    a = wadd[j]
                    wadd[j] = x if x > a else a
                    y = wv + x
                    b = uadd[j]
                    uadd[j] = y if y > b else b
                for t2 in range(t + 1, nr):
                    j = rest[t2]
                    x = wl[lo + j]
                    a = wadd[j]
                    wadd[j] = x if x > a else a
                    y = wv + x
                    b = uadd[j]
                    uadd[j] = y if y > b else b
            else:
                wrow = w[vv]
                for t2 in range(kept):
                    j = rest[t2]
                    u = verts[j]
                    x = wrow[u] if _has(row, u) else _NEG
                    a = wadd[j]
                    wadd[j] = x if x > a else a
                    y = wv + x
                    b = uadd[j]
                    uadd[j] = y if y > b else b
                for t2 in range(t + 1, nr):
                    j = rest[t2]
                    u = verts[j]
                    x = wrow[u] if _has(row, u) else _NEG
                    a = wadd[j]
                    wadd[j] = x if x > a else a
                    y = wv + x
                    b = uadd[j]
                    uadd[j] = y if y > b else b
        nr = kept
        if have_h:
            hn, hsum = _heap_add(hset, hn, hsum, r, exact, hcur)
        nset += 1
        hcur = _NEG
        for t in range(nr):
            j = rest[t]
            if wadd[j] != _NEG:
                x = wadd[j]
                if capw > 0 and x > 0.0:
                    hwc[j] += 1
                    hws[j] += x
                    if x > wmax[j]:
                        wmax[j] = x
                x = uadd[j]
                if capu > 0 and (exact or x > 0.0):
                    huc[j] += 1
                    hus[j] += x
                    if x > 0.0:
                        upos[j] += x
                    if x > umax[j]:
                        umax[j] = x
                wadd[j] = _NEG
                uadd[j] = _NEG
    bound = best_up if best_up < best_h else best_h
    if have_h and nb > 0:
        # independent sets chosen for h may place more of the refused vertices
        nb2, b2 = _h_branch(bits, verts, m, r, exact, out_rem, hv, target, nb, scratch_i[18], scratch_i[10:18], hw)
        if nb2 < nb:
            saved += nb - nb2
            nb = nb2
            bound = b2
            for t in range(nb):
                order[t] = scratch_i[18, t]
    if saved >= nb and saved * r >= WIN_WORK:
        # a win: the half-sum values at least halved the branching set and saved children with work below them
        # (few slots left: such children close at once, not worth the values' cost)
        hstat[1] += 1
    # lowest degree in P first (MEWCat); insertion sort, stable, so runs are reproducible
    for t in range(nb):
        v = order[t]
        q = t
        while q > 0 and deg[out_branch[q - 1]] > deg[v]:
            out_branch[q] = out_branch[q - 1]
            q -= 1
        out_branch[q] = v
    if target == np.inf and not have_h and npl > 0:
        # bound-only call (nothing refused, as `open_bound` makes): the half-sum bound of every set
        hn, hsum, _ = _half_sums(w, bits, verts, sig, m, r, exact, out_rem, placed, setof, npl, nset, hv, hset, hw, hj,
                                 cnxt, chead, wl, off)
        best_h = _NEG if exact and hn < r else hsum
        if best_h < bound:
            bound = best_h
        b2 = _h_branch(bits, verts, m, r, exact, out_rem, hv, target, 1, scratch_i[18], scratch_i[10:18], hw)[1]
        if b2 < bound:
            bound = b2
    return nb, bound


@njit(cache=True)
def search(w, bits, k, exact, s, sig, rem, bl, lv, fw, best, scratch_i, scratch_f, tops, scratch_b, wl, budget,
           rtol):  # pragma: no cover
    """Run the depth-first search for about ``budget`` units of work; returns nodes visited.

    A unit is about 32 inner-loop steps: a node is charged for what its bound actually
    did (one scan of its m candidates per independent set with a placed vertex, plus the
    degrees, the colouring test and, when computed, the quadratic half-sum bound) and
    each child for building its candidates (and its local weights), so a unit's running
    time varies little from one region of the search to another and the driver's
    budget keeps a call close to its target time (charging ``m^2`` per node whatever
    the bound did made a call of one budget last 50 s where the previous ones took
    0.02 s: complete graph, n = 3000, k = 50).

    ``fw[k + 1]`` holds the incumbent weight (``-inf`` without one), ``best[:best[k]]``
    its vertices; ``best[k + 1]`` the current depth, -1 once the search is exhausted.
    A node is pruned when its bound is at most ``best + rtol * max(1, |best|)``.
    """
    nodes = 0
    work = 0
    depth = best[k + 1]
    while depth >= 0 and work < budget:
        d = depth
        if lv[d, 4]:
            lv[d, 4] = 0
            nodes += 1
            m = lv[d, 0]
            work += 1
            cw = fw[d]
            if d >= 1 and (d == k or not exact) and cw > fw[k + 1]:
                fw[k + 1] = cw
                for t in range(d):
                    best[t] = lv[t + 1, 3]
                best[k] = d
            r = k - d
            if r == 0 or m == 0 or (exact and m < r):
                depth -= 1
                continue
            inc = fw[k + 1]
            target = inc - cw + rtol * max(1.0, abs(inc)) if inc != _NEG else _NEG
            tries = lv[d, 5]
            nb, _ = expand(w, bits, s[d], sig[d], m, r, exact, target, rem[d], bl[d], scratch_i, scratch_f, tops,
                           scratch_b, lv[d, 5:8], wl, lv[d, 8])
            # charge what expand did, not m^2 whatever happened: each independent set is one scan of the candidates
            # and each placed vertex updates them (so (placed + 1) * m), plus the degrees, the colouring test and,
            # when it ran, the half-sum bound (m^2)
            npl = m - nb
            for j in range(m):
                npl -= rem[d, j]
            cost = m * (npl + 2 + bits.shape[1] + (r if exact else 0))
            if lv[d, 5] != tries:
                cost += m * m
            work += cost // 32
            lv[d, 1] = nb
            lv[d, 2] = 0
        if lv[d, 2] < lv[d, 1]:
            p = bl[d, lv[d, 2]]
            lv[d, 2] += 1
            v = s[d, p]
            row = bits[v]
            wrow = w[v]
            m = lv[d, 0]
            off = lv[d, 8]
            rem[d, p] = 1
            pos = scratch_i[2]
            m2 = 0
            # branchless: every candidate is written, the next overwrites a non-neighbour
            if off >= 0:
                lo = off + p * m
                for j in range(m):
                    s[d + 1, m2] = s[d, j]
                    sig[d + 1, m2] = sig[d, j] + wl[lo + j]
                    pos[m2] = j
                    m2 += 1 if rem[d, j] == 0 and wl[lo + j] != _NEG else 0
            else:
                for j in range(m):
                    u = s[d, j]
                    s[d + 1, m2] = u
                    sig[d + 1, m2] = sig[d, j] + wrow[u]
                    pos[m2] = j
                    m2 += 1 if rem[d, j] == 0 and _has(row, u) else 0
            # the child's weights as a local m2 x m2 matrix (-inf off the edges) when small enough: its bound then
            # reads them from cache, not from the whole graph's matrix
            base = off + m * m if off >= 0 else 0
            r2 = k - d - 1
            if m2 <= LOCAL_MAX and base + m2 * m2 <= wl.size and r2 > 0 and m2 > 0 and not (exact and m2 < r2):
                lv[d + 1, 8] = base
                for a in range(m2):
                    dst = base + a * m2
                    if off >= 0:
                        src = off + pos[a] * m
                        for b in range(m2):
                            wl[dst + b] = wl[src + pos[b]]
                    else:
                        ua = s[d + 1, a]
                        rowa = bits[ua]
                        wa = w[ua]
                        for b in range(m2):
                            ub = s[d + 1, b]
                            wl[dst + b] = wa[ub] if _has(rowa, ub) else _NEG
            else:
                lv[d + 1, 8] = -1
            work += (m + (m2 * m2 if lv[d + 1, 8] >= 0 else 0)) // 32  # the child's candidates and local weights
            lv[d + 1, 0] = m2
            lv[d + 1, 3] = v
            lv[d + 1, 4] = 1
            fw[d + 1] = fw[d] + sig[d, p]
            depth = d + 1
        else:
            depth -= 1
    best[k + 1] = depth
    return nodes


@njit(cache=True)
def open_bound(w, bits, k, exact, s, sig, rem, bl, lv, fw, best, scratch_i, scratch_f, tops, scratch_b, wl,
               max_work):  # pragma: no cover
    """An upper bound on every clique the stopped search has not yet ruled out.

    For each level on the stack, the bound of `expand` with nothing pruned (every
    candidate placed) over the candidates not yet branched on, plus ``W(C)``; the
    largest of these and the incumbent. Once about ``max_work`` (sum of m^2) is
    spent, the level reached also counts its current branch, whose bound covers
    every deeper level, and the walk stops. ``-inf`` when nothing is open and there is
    no incumbent.
    """
    depth = best[k + 1]
    out = fw[k + 1]
    n = s.shape[1]
    verts = np.empty(n, dtype=np.int64)
    sg = np.empty(n, dtype=np.float64)
    junk_rem = np.empty(n, dtype=np.uint8)
    junk_branch = np.empty(n, dtype=np.int64)
    junk_stat = np.zeros(3, dtype=np.int64)
    work = 0
    for d in range(depth + 1):
        r = k - d
        if r == 0:
            continue
        fresh = lv[d, 4] == 1
        size = lv[d, 0]
        # the last level evaluated also takes its current branch, covering every deeper level
        last = d == depth or work + size * size > max_work
        current = lv[d, 2] - 1 if (last and not fresh and lv[d, 2] > 0) else -1
        if current >= 0:
            current = bl[d, current]
        if not last and not fresh and lv[d, 2] >= lv[d, 1]:
            continue  # only placed vertices left: bounded by the incumbent when expanded
        m = 0
        for j in range(size):
            if fresh or rem[d, j] == 0 or j == current:
                verts[m] = s[d, j]
                sg[m] = sig[d, j]
                m += 1
        work += m * m
        if m > 0 and not (exact and m < r):
            _, up = expand(w, bits, verts, sg, m, r, exact, np.inf, junk_rem, junk_branch, scratch_i, scratch_f, tops,
                           scratch_b, junk_stat, wl, -1)
            if up != _NEG and fw[d] + up > out:
                out = fw[d] + up
        if last:
            break
    return out
