"""Swap searches on complete graphs (the Maximum Diversity Problem fast path).

State of a search, shared by every kernel here: ``members`` (the k chosen
vertices, in any order), ``pos`` (``pos[v]`` = index of ``v`` in ``members``, or
-1), and the gain vector ``g`` (`mewcp.kernels.gains`). Exchanging ``u`` in the set
for ``v`` outside changes the value by ``g[v] - g[u] - w[u, v]``; no adjacency
checks are needed on a complete graph.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mewcp.kernels.gains import add_gains, set_gains, swap_gains


@njit(cache=True)
def set_value(g: np.ndarray, members: np.ndarray) -> float:  # pragma: no cover - compiled
    """The set's weight from its gain vector: half the sum of the members' gains."""
    total = 0.0
    for u in members:
        total += g[u]
    return 0.5 * total


@njit(cache=True)
def apply_swap(w, members, pos, g, u, v) -> None:  # pragma: no cover
    """``u`` (a member) leaves, ``v`` enters; gains updated in O(n)."""
    slot = pos[u]
    members[slot] = v
    pos[v] = slot
    pos[u] = -1
    swap_gains(g, w[v], w[u])


@njit(cache=True)
def swap_local_search(w, members, pos, g, value, first_improvement, max_iters):  # pragma: no cover
    """Improving swaps until none is left or ``max_iters`` swaps were made.

    Best improvement scans all k(n-k) swaps per move; first improvement takes the
    first improving one in index order. Returns ``(value, swaps, local_optimum)``.
    """
    n = w.shape[0]
    k = members.shape[0]
    it = 0
    while it < max_iters:
        eps = 1e-12 * (1.0 + abs(value))
        best_d, bu, bv = eps, -1, -1
        for a in range(k):
            u = members[a]
            gu = g[u]
            row = w[u]
            for v in range(n):
                if pos[v] < 0:
                    d = g[v] - gu - row[v]
                    if d > best_d:
                        best_d, bu, bv = d, u, v
            if first_improvement and bu >= 0:
                break
        if bu < 0:
            return value, it, True
        apply_swap(w, members, pos, g, bu, bv)
        value += best_d
        it += 1
    return value, it, False


#: The least finite float: a window open to every outsider (members, at -inf, stay out).
LOWEST = float(np.finfo(np.float64).min)
#: Vertices per block of `_block_maxima` (a multiple of its four lanes): candidates are looked for only in
#: blocks that can hold one.
BLOCK = 32


@njit(cache=True, fastmath={"nnan", "nsz", "reassoc"})
def _block_maxima(g: np.ndarray, mask: np.ndarray, out: np.ndarray) -> float:  # pragma: no cover - compiled
    """``out[b] = max(g + mask)`` over block ``b`` of `BLOCK` entries (``mask`` 0 or -inf);
    returns the largest. A full block is reduced in four interleaved lanes, so that four
    independent comparison chains run at once (the maximum is exact in any order; numba's
    compiler does not vectorise a floating-point maximum); the last partial block is a plain loop."""
    n = g.shape[0]
    full = n // BLOCK
    top = -np.inf
    for b in range(full):
        base = b * BLOCK
        m0 = m1 = m2 = m3 = -np.inf
        for j in range(base, base + BLOCK, 4):
            x0 = g[j] + mask[j]
            x1 = g[j + 1] + mask[j + 1]
            x2 = g[j + 2] + mask[j + 2]
            x3 = g[j + 3] + mask[j + 3]
            m0 = x0 if x0 > m0 else m0
            m1 = x1 if x1 > m1 else m1
            m2 = x2 if x2 > m2 else m2
            m3 = x3 if x3 > m3 else m3
        m = max(max(m0, m1), max(m2, m3))
        out[b] = m
        top = m if m > top else top
    if full < out.shape[0]:
        m = -np.inf
        for i in range(full * BLOCK, n):
            x = g[i] + mask[i]
            m = x if x > m else m
        out[full] = m
        top = m if m > top else top
    return top


@njit(cache=True)
def swap_tabu(
    w, members, pos, g, value, tabu_until, it0, max_iters, best_members, best_value, stall, max_stall,
    tenure_out, tenure_in, w_min, rng,
):  # pragma: no cover
    """Tabu search by best admissible swaps (Wu & Hao 2013), each found without a full scan.

    A swap is admissible when neither vertex is tabu, or when it beats ``best_value``
    (aspiration). Every iteration makes the admissible swap of greatest value change
    ``d``, over the whole neighbourhood; ties (within ``eps``) are broken uniformly at
    random among the swaps met in scan order (members in ``members`` order, outsiders in
    index order) whose ``d`` is at least ``d0 - eps``. Here ``d0`` is the change of
    swapping ``u0``, the first non-tabu member of least gain, for ``v0``, the first
    non-tabu outsider of greatest gain: an admissible swap, so the best is no worse.
    As ``d(u, v) <= g[v] - g[u] - w_min`` (``w_min``: at most the least weight), only
    members and outsiders whose gain can reach ``d0`` are examined, and for a pair with a
    tabu vertex only those that can reach aspiration (the constrained neighbourhood of
    Wu & Hao, with its width taken from ``d0`` instead of the greatest weight). When every
    member or every outsider is tabu, all pairs are examined; when none is admissible, a
    random swap is made. A vertex that leaves may not re-enter for ``tenure_out + U{0..2}``
    iterations, one that enters may not leave for ``tenure_in + U{0..2}``.

    ``best_members``/``best_value`` hold this run's best set. Runs until ``max_iters``
    iterations or ``max_stall`` iterations in a row without beating it. Updates the
    state, ``tabu_until`` and ``best_members`` in place; returns
    ``(value, best_value, stall, iterations)``.
    """
    n = w.shape[0]
    k = members.shape[0]
    cand_v = np.empty(n, dtype=np.int64)
    it = it0
    done = 0
    om = np.zeros(n)  # 0 for an outsider, -inf for a member
    tabu_out = np.empty(n, dtype=np.int64)  # a superset of the tabu outsiders
    block_max = np.empty((n + BLOCK - 1) // BLOCK)
    n_tabu = 0
    for v in range(n):
        if pos[v] >= 0:
            om[v] = -np.inf
        elif tabu_until[v] > it:
            tabu_out[n_tabu] = v
            n_tabu += 1
    while done < max_iters and stall < max_stall:
        # members: least gain (low_g) and least non-tabu gain (min_g, at u0)
        low_g, min_g, u0 = np.inf, np.inf, -1
        for a in range(k):
            u = members[a]
            gu = g[u]
            low_g = min(low_g, gu)
            if gu < min_g and tabu_until[u] <= it:
                min_g, u0 = gu, u
        # outsiders: greatest non-tabu gain (max_g, at v0) by a vectorised pass over blocks with the
        # tabu outsiders (a short list) masked in `om`; then unmasked, for the greatest gain (high_g)
        kept = 0
        for b in range(n_tabu):
            x = tabu_out[b]
            if pos[x] < 0 and tabu_until[x] > it:
                tabu_out[kept] = x
                kept += 1
                om[x] = -np.inf
        n_tabu = kept
        max_g = _block_maxima(g, om, block_max)
        v0 = -1
        for b in range(block_max.shape[0]):
            if block_max[b] == max_g and max_g > -np.inf:
                for v in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
                    if g[v] + om[v] == max_g:
                        v0 = v
                        break
                break
        high_g = max_g
        for b in range(n_tabu):
            x = tabu_out[b]
            om[x] = 0.0
            block_max[x // BLOCK] = max(block_max[x // BLOCK], g[x])
            high_g = max(high_g, g[x])
        eps = 1e-12 * (1.0 + abs(best_value))
        if u0 >= 0 and v0 >= 0:
            floor_d = g[v0] - g[u0] - w[u0, v0] - eps
            floor_t = max(floor_d, best_value - value)  # a pair with a tabu vertex needs aspiration
            slack = eps + 1e-12 * (abs(high_g) + abs(low_g) + abs(w_min) + abs(floor_d))
            u_free = max(max_g - floor_d, high_g - floor_t) - w_min + slack
            u_tabu = high_g - floor_t - w_min + slack
            v_free = min(min_g + floor_d, low_g + floor_t) + w_min - slack
            v_tabu = low_g + floor_t + w_min - slack
        else:
            floor_d, slack = -np.inf, 0.0
            u_free, u_tabu, v_free, v_tabu = np.inf, np.inf, LOWEST, LOWEST
        nv = 0
        for b in range(block_max.shape[0]):
            if block_max[b] >= v_free:
                for v in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
                    # an outsider (a member's g + om is -inf) whose gain reaches its window (v_tabu >= v_free)
                    if g[v] + om[v] >= v_free and (tabu_until[v] <= it or g[v] >= v_tabu):
                        cand_v[nv] = v
                        nv += 1
        best_d = -np.inf
        bu, bv, ties = -1, -1, 0
        for a in range(k):
            u = members[a]
            gu = g[u]
            free = tabu_until[u] <= it
            if gu > (u_free if free else u_tabu):
                continue  # no swap of u can reach d0 (or aspiration, u tabu)
            row = w[u]
            cut = floor_d + gu + w_min - slack  # an outsider of less gain has d < floor_d
            for b in range(nv):
                v = cand_v[b]
                if g[v] < cut:
                    continue
                d = g[v] - gu - row[v]
                if d < floor_d or d < best_d - eps:
                    continue
                if not (free and tabu_until[v] <= it) and value + d <= best_value + eps:
                    continue  # tabu and no aspiration
                if d > best_d + eps:
                    best_d, bu, bv, ties = d, u, v, 1
                else:
                    ties += 1
                    if rng.integers(0, ties) == 0:
                        bu, bv = u, v
        if bu < 0:  # nothing admissible: a random swap
            bu = members[rng.integers(0, k)]
            bv = rng.integers(0, n)
            while pos[bv] >= 0:
                bv = rng.integers(0, n)
            best_d = g[bv] - g[bu] - w[bu, bv]
        apply_swap(w, members, pos, g, bu, bv)
        om[bu] = 0.0
        om[bv] = -np.inf
        tabu_out[n_tabu] = bu
        n_tabu += 1
        value += best_d
        tabu_until[bu] = it + tenure_out + rng.integers(0, 3)
        tabu_until[bv] = it + tenure_in + rng.integers(0, 3)
        it += 1
        done += 1
        if value > best_value + eps:
            best_value = value
            best_members[:] = members
            stall = 0
        else:
            stall += 1
    return value, best_value, stall, done


@njit(cache=True)
def perturb(w, members, pos, strength, rng):  # pragma: no cover
    """Swap ``strength`` random members for random outsiders; returns fresh gains and value."""
    n = w.shape[0]
    k = members.shape[0]
    for _ in range(min(strength, k, n - k)):
        u = members[rng.integers(0, k)]
        v = rng.integers(0, n)
        while pos[v] >= 0:
            v = rng.integers(0, n)
        slot = pos[u]
        members[slot] = v
        pos[v] = slot
        pos[u] = -1
    g = set_gains(w, members)
    return g, set_value(g, members)


@njit(cache=True)
def backbone_crossover(w, parent_a, parent_b, rng):  # pragma: no cover
    """A child keeping both parents' common vertices, filled greedily from each in turn.

    Starting from the backbone ``A & B``, the parents take turns giving the child
    their vertex of greatest gain to it (ties at random) until it has k vertices
    (Wu & Hao 2013, MAMDP). Returns the child's members.
    """
    n = w.shape[0]
    k = parent_a.shape[0]
    in_a = np.zeros(n, dtype=np.bool_)
    in_b = np.zeros(n, dtype=np.bool_)
    for u in parent_a:
        in_a[u] = True
    for u in parent_b:
        in_b[u] = True
    child = np.empty(k, dtype=np.int64)
    taken = np.zeros(n, dtype=np.bool_)
    size = 0
    for u in parent_a:
        if in_b[u]:
            child[size] = u
            taken[u] = True
            size += 1
    g = set_gains(w, child[:size])
    turn = 0
    while size < k:
        src = parent_a if turn == 0 else parent_b
        best, pick, ties = -np.inf, -1, 0
        for u in src:
            if taken[u]:
                continue
            if g[u] > best:
                best, pick, ties = g[u], u, 1
            elif g[u] == best:
                ties += 1
                if rng.integers(0, ties) == 0:
                    pick = u
        if pick >= 0:
            child[size] = pick
            taken[pick] = True
            size += 1
            add_gains(g, w[pick])
        turn = 1 - turn
    return child


@njit(cache=True)
def random_members(n, k, rng):  # pragma: no cover
    """k distinct vertices drawn uniformly."""
    perm = np.arange(n)
    for i in range(k):
        j = i + rng.integers(0, n - i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm[:k].copy()


@njit(cache=True)
def opposite_members(w, avoid_a, avoid_b, k, rng):  # pragma: no cover
    """k vertices chosen greedily (greatest gain first) among those in neither set.

    Opposition-based learning (Zhou, Hao & Duval 2017, OBMA): a solution built from
    the vertices both parents left out explores the other side of the space. When
    fewer than k vertices are left out, the rest are drawn at random.
    """
    n = w.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    for u in avoid_a:
        out[u] = True
    for u in avoid_b:
        out[u] = True
    child = np.empty(k, dtype=np.int64)
    size = 0
    free = 0
    for v in range(n):
        if not out[v]:
            free += 1
    first = random_members(n, n, rng)
    for v in first:  # a random outsider seeds the greedy fill
        if not out[v]:
            child[0] = v
            out[v] = True
            size = 1
            break
    g = set_gains(w, child[:size])
    while size < k and size < free:
        best, pick = -np.inf, -1
        for v in range(n):
            if not out[v] and g[v] > best:
                best, pick = g[v], v
        child[size] = pick
        out[pick] = True
        size += 1
        add_gains(g, w[pick])
    while size < k:
        v = rng.integers(0, n)
        dup = False
        for j in range(size):
            if child[j] == v:
                dup = True
                break
        if not dup:
            child[size] = v
            size += 1
    return child
