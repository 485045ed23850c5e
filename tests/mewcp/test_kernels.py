"""Every numba kernel against a plain-Python reference (peel: see test_greedy.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from mewcp.kernels import checks, clique, gains, pls, rand, swap
from tests.mewcp.helpers import random_graph, random_symmetric


def least_weight(w: np.ndarray) -> float:
    """The least off-diagonal entry."""
    return float(w[~np.eye(len(w), dtype=bool)].min())


def weight_of(w: np.ndarray, members) -> float:
    members = list(members)
    return sum(w[a][b] for i, a in enumerate(members) for b in members[i + 1:])


def csr(w: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = sp.csr_array((w[mask.nonzero()], mask.nonzero()), shape=w.shape)  # explicit entries on the mask
    m.sort_indices()
    return m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data.astype(np.float64)


def is_clique(mask: np.ndarray, members) -> bool:
    return all(mask[a, b] for a, b in itertools.combinations(members, 2))


# --------------------------------------------------------------------- gains


@pytest.mark.parametrize("m", [0, 1, 3, 4, 7, 12])
def test_set_gains_is_the_plain_loop_bit_for_bit(m):
    rng = np.random.default_rng(m)
    w = random_symmetric(13, rng, negative=True)
    members = rng.permutation(13)[:m].astype(np.int64)
    ref = np.zeros(13)
    for u in members:  # the same order of additions
        for i in range(13):
            ref[i] += w[u, i]
    assert np.array_equal(gains.set_gains(w, members), ref)


def test_swap_and_add_gains_update_in_place():
    rng = np.random.default_rng(1)
    w = random_symmetric(9, rng)
    g = gains.set_gains(w, np.array([0, 3, 5], dtype=np.int64))
    gains.swap_gains(g, w[7], w[3])  # 7 enters, 3 leaves
    assert np.allclose(g, [sum(w[u][i] for u in (0, 5, 7)) for i in range(9)], rtol=0, atol=1e-12)
    gains.add_gains(g, w[2])
    assert np.allclose(g, [sum(w[u][i] for u in (0, 5, 7, 2)) for i in range(9)], rtol=0, atol=1e-12)


# --------------------------------------------------------------------- checks


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 130])
def test_max_asymmetry_is_the_largest_difference_and_where(n):
    rng = np.random.default_rng(n)
    w = rng.normal(size=(n, n))
    best, at = 0.0, (0, 0)
    for i in range(n):
        for j in range(i + 1, n):
            d = abs(w[i, j] - w[j, i])
            if d > best:
                best, at = d, (i, j)
    diff, i, j = checks.max_asymmetry(w)
    assert diff == best and (i, j) == at
    sym = w + w.T
    assert checks.max_asymmetry(sym)[0] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_set_weights_dense_and_sparse(seed):
    rng = np.random.default_rng(seed)
    w, mask = random_graph(15, 0.5, rng, negative=True)
    idx = np.sort(rng.permutation(15)[: rng.integers(0, 8)]).astype(np.int64)
    ref = sum(w[a, b] for a, b in itertools.combinations(idx, 2))
    pairs = sum(bool(mask[a, b]) for a, b in itertools.combinations(idx, 2))
    assert checks.dense_set_weight(w, idx) == pytest.approx(ref, abs=1e-12)
    total, count = checks.sparse_set_weight(*csr(w, mask), idx)
    assert total == pytest.approx(ref, abs=1e-12) and count == pairs


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_enumerate_cliques_from_finds_the_heaviest_clique_with_that_least_vertex(seed, exact):
    rng = np.random.default_rng(seed)
    n, k = 9, 4
    w, mask = random_graph(n, 0.7, rng, negative=seed % 2 == 1)
    for first in range(n):
        ref_w, ref_c = -np.inf, None
        for size in range(1, k + 1):
            if exact and size != k:
                continue
            for rest in itertools.combinations(range(first + 1, n), size - 1):
                c = (first, *rest)
                if is_clique(mask, c) and weight_of(w, c) > ref_w + 1e-12:
                    ref_w, ref_c = weight_of(w, c), c
        best = np.empty(k, dtype=np.int64)
        value, size, visited = checks.enumerate_cliques_from(w, mask, first, k, exact, -np.inf, best, 0)
        assert visited >= 1
        if ref_c is None:
            assert size == 0
        else:
            assert value == pytest.approx(ref_w, abs=1e-12) and tuple(best[:size]) == ref_c


# --------------------------------------------------------------------- swap


def _state(w: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.full(w.shape[0], -1, dtype=np.int64)
    pos[members] = np.arange(members.size)
    return members.copy(), pos, gains.set_gains(w, members)


def _check_state(w: np.ndarray, members: np.ndarray, pos: np.ndarray, g: np.ndarray) -> None:
    assert len(set(members.tolist())) == members.size
    assert all(pos[v] == i for i, v in enumerate(members)) and (pos >= 0).sum() == members.size
    assert np.allclose(g, [sum(w[u][i] for u in members) for i in range(w.shape[0])], rtol=0, atol=1e-9)


def test_set_value_and_apply_swap():
    rng = np.random.default_rng(2)
    w = random_symmetric(10, rng)
    members, pos, g = _state(w, np.array([1, 4, 6], dtype=np.int64))
    assert swap.set_value(g, members) == pytest.approx(weight_of(w, members))
    swap.apply_swap(w, members, pos, g, 4, 9)
    assert sorted(members) == [1, 6, 9]
    _check_state(w, members, pos, g)


def local_search_reference(w: np.ndarray, members: list[int]) -> list[int]:
    """Best-improvement swaps until none improves (plain Python)."""
    members = list(members)
    while True:
        best = (1e-12, None, None)
        for u in members:
            for v in range(len(w)):
                if v not in members:
                    d = sum(w[v][x] for x in members if x != u) - sum(w[u][x] for x in members if x != u)
                    if d > best[0]:
                        best = (d, u, v)
        if best[1] is None:
            return members
        members[members.index(best[1])] = best[2]


@pytest.mark.parametrize("seed", range(6))
def test_swap_local_search_matches_the_reference(seed):
    rng = np.random.default_rng(seed)
    w = random_symmetric(12, rng, negative=seed % 2 == 1)
    start = rng.permutation(12)[:4].astype(np.int64)
    members, pos, g = _state(w, start)
    value, swaps, at_opt = swap.swap_local_search(w, members, pos, g, swap.set_value(g, members), False, 10_000)
    assert at_opt and sorted(members) == sorted(local_search_reference(w, start.tolist()))
    assert value == pytest.approx(weight_of(w, members), abs=1e-9)
    _check_state(w, members, pos, g)
    members2, pos2, g2 = _state(w, start)  # first improvement ends at a local optimum too
    value2, _, at_opt2 = swap.swap_local_search(w, members2, pos2, g2, swap.set_value(g2, members2), True, 10_000)
    assert at_opt2 and sorted(local_search_reference(w, members2.tolist())) == sorted(members2)


@pytest.mark.parametrize("seed", range(4))
def test_swap_tabu_keeps_its_state_and_best_set_exact(seed):
    rng = np.random.default_rng(seed)
    n, k = 14, 5
    w = random_symmetric(n, rng)
    members, pos, g = _state(w, rng.permutation(n)[:k].astype(np.int64))
    value = swap.set_value(g, members)
    best, tabu = members.copy(), np.zeros(n, dtype=np.int64)
    value, best_value, stall, done = swap.swap_tabu(
        w, members, pos, g, value, tabu, 0, 300, best, value, 0, 10**9, 3, 2, least_weight(w),
        np.random.default_rng(seed))
    assert done == 300
    _check_state(w, members, pos, g)
    assert value == pytest.approx(weight_of(w, members), abs=1e-9)
    assert best_value == pytest.approx(weight_of(w, best), abs=1e-9)
    brute = max(weight_of(w, c) for c in itertools.combinations(range(n), k))
    assert best_value == pytest.approx(brute, abs=1e-9)  # 300 tabu moves solve n = 14 exactly


def swap_tabu_reference(w, members, pos, g, value, tabu_until, it, iters, best, best_value, stall, max_stall,
                        tenure_out, tenure_in, rng):
    """`swap.swap_tabu` as its docstring states it, in plain Python: every pair is scanned."""
    n, k = len(g), len(members)
    done = 0
    while done < iters and stall < max_stall:
        eps = 1e-12 * (1.0 + abs(best_value))
        free_u = [u for u in members if tabu_until[u] <= it]
        free_v = [v for v in range(n) if pos[v] < 0 and tabu_until[v] <= it]
        floor_d = -np.inf
        if free_u and free_v:
            u0 = min(free_u, key=lambda u: g[u])  # the first of least gain
            v0 = max(free_v, key=lambda v: g[v])
            floor_d = g[v0] - g[u0] - w[u0][v0] - eps
        best_d, bu, bv, ties = -np.inf, -1, -1, 0
        for u in members:
            for v in range(n):
                if pos[v] >= 0:
                    continue
                d = g[v] - g[u] - w[u][v]
                if d < floor_d or d < best_d - eps:
                    continue
                if not (tabu_until[u] <= it and tabu_until[v] <= it) and value + d <= best_value + eps:
                    continue
                if d > best_d + eps:
                    best_d, bu, bv, ties = d, u, v, 1
                else:
                    ties += 1
                    if rng.integers(0, ties) == 0:
                        bu, bv = u, v
        if bu < 0:
            bu = members[rng.integers(0, k)]
            bv = rng.integers(0, n)
            while pos[bv] >= 0:
                bv = rng.integers(0, n)
            best_d = g[bv] - g[bu] - w[bu][bv]
        slot = pos[bu]
        members[slot], pos[bv], pos[bu] = bv, slot, -1
        for i in range(n):
            g[i] += w[bv][i] - w[bu][i]
        value += best_d
        tabu_until[bu] = it + tenure_out + rng.integers(0, 3)
        tabu_until[bv] = it + tenure_in + rng.integers(0, 3)
        it += 1
        done += 1
        if value > best_value + eps:
            best_value, best[:], stall = value, list(members), 0
        else:
            stall += 1
    return value, best_value, stall, done


@pytest.mark.parametrize("n", [1, 3, swap.BLOCK, swap.BLOCK + 1, 3 * swap.BLOCK + 5, 97])
def test_block_maxima_are_numpy_maxima(n):
    """Each block's maximum of ``g + mask`` and the largest, with members masked by -inf,
    negative gains, ties and a fully masked block, whatever n's remainder modulo the block;
    the maximum planted at every position of a block in turn."""
    rng = np.random.default_rng(n)
    out = np.full((n + swap.BLOCK - 1) // swap.BLOCK, np.nan)
    for trial in range(3 * swap.BLOCK):
        g = np.round(rng.normal(size=n) * 2) / 2 if trial % 3 else rng.normal(size=n)  # ties on a coarse grid
        g[trial % min(n, swap.BLOCK):: swap.BLOCK] += 100.0  # the planted maxima
        mask = np.where(rng.random(n) < 0.3, -np.inf, 0.0)
        if n > 2 * swap.BLOCK and trial % 2:
            mask[: swap.BLOCK] = -np.inf  # a block of members only
        top = swap._block_maxima(g, mask, out)
        expected = [np.max((g + mask)[b: b + swap.BLOCK]) for b in range(0, n, swap.BLOCK)]
        np.testing.assert_array_equal(out, expected)
        assert top == np.max(g + mask)


@pytest.mark.parametrize("seed", range(8))
def test_swap_tabu_moves_are_the_reference_ones(seed):
    """The kernel, in chunks, makes exactly the reference's moves (same random stream): ties
    (weights on a coarse grid), aspiration, all-tabu random swaps (seeds 5, 7: long tenures),
    outsiders in several blocks of the vectorised scan, the last one partial (seeds 6, 7)."""
    rng = np.random.default_rng(seed)
    n, k = (2 * swap.BLOCK + 11, 20) if seed >= 6 else (23, 7)
    w = np.round(random_symmetric(n, rng) * 3) / 3 if seed % 2 else random_symmetric(n, rng, negative=seed % 4 == 0)
    tenure_out, tenure_in = (30, 20) if seed in (5, 7) else (4, 3)
    start = rng.permutation(n)[:k].astype(np.int64)
    members, pos, g = _state(w, start)
    value = swap.set_value(g, members)
    best, tabu = members.copy(), np.zeros(n, dtype=np.int64)
    ref = [start.tolist(), pos.tolist(), g.tolist(), value, np.zeros(n, dtype=np.int64).tolist(), start.tolist()]
    kr, rr = np.random.default_rng(seed + 10), np.random.default_rng(seed + 10)
    it, best_value, stall, ref_best_value, ref_stall = 0, value, 0, value, 0
    w_min = least_weight(w) - (1.0 if seed == 3 else 0.0)  # a lower bound serves as well
    for chunk in (1, 5, 40, 200, 13):
        value, best_value, stall, done = swap.swap_tabu(
            w, members, pos, g, value, tabu, it, chunk, best, best_value, stall, 60, tenure_out, tenure_in, w_min, kr)
        ref[3], ref_best_value, ref_stall, ref_done = swap_tabu_reference(
            w.tolist(), ref[0], ref[1], ref[2], ref[3], ref[4], it, chunk, ref[5], ref_best_value, ref_stall, 60,
            tenure_out, tenure_in, rr)
        assert done == ref_done and stall == ref_stall
        assert members.tolist() == ref[0] and pos.tolist() == ref[1] and tabu.tolist() == ref[4]
        assert g.tolist() == ref[2] and value == ref[3]  # bit for bit
        assert best.tolist() == ref[5] and best_value == ref_best_value
        it += done
        if stall >= 60:
            stall = ref_stall = 0
    assert it > 50



@pytest.mark.parametrize("seed", range(6))
def test_swap_tabu_makes_a_best_admissible_swap(seed):
    """Certificate against enumeration: every move's value change is the greatest over all
    admissible swaps (non-tabu, or beating the best value), negative weights and ties too."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(12, 2 * swap.BLOCK + 20))
    k = int(rng.integers(2, n - 1))
    w = random_symmetric(n, rng, negative=seed % 2 == 0)
    if seed % 3 == 2:
        w = np.round(w)  # many ties
    members, pos, g = _state(w, rng.permutation(n)[:k].astype(np.int64))
    value = best_value = swap.set_value(g, members)
    best, tabu = members.copy(), np.zeros(n, dtype=np.int64)
    kernel_rng, stall, checked = np.random.default_rng(seed), 0, 0
    for it in range(150):
        eps = 1e-12 * (1.0 + abs(best_value))
        outs = np.flatnonzero(pos < 0)
        d = g[outs][None, :] - g[members][:, None] - w[np.ix_(members, outs)]
        free = (tabu[members] <= it)[:, None] & (tabu[outs] <= it)[None, :]
        admissible = free | (value + d > best_value + eps)
        before = value
        value, best_value, stall, _ = swap.swap_tabu(
            w, members, pos, g, value, tabu, it, 1, best, best_value, stall, 10**9, 5, 3, least_weight(w), kernel_rng)
        if admissible.any():
            assert value - before == pytest.approx(d[admissible].max(), abs=1e-9)
            checked += 1
    assert checked >= 50


def test_swap_tabu_aspiration_finds_a_tabu_outsider_in_any_block():
    """A tabu outsider whose swap beats the best set is a candidate (aspiration) even when
    the rest of its block of the vectorised scan is far below the threshold."""
    n, members = swap.BLOCK + 8, np.array([0, 1, 2], dtype=np.int64)
    x, y = 5, swap.BLOCK + 3  # x tabu in the first block, y the best non-tabu outsider, in the second
    w = np.full((n, n), 0.1)
    w[x, :3] = w[:3, x] = 0.9
    w[y, :3] = w[:3, y] = 0.85
    np.fill_diagonal(w, 0.0)
    _, pos, g = _state(w, members)
    value = swap.set_value(g, members)
    tabu = np.zeros(n, dtype=np.int64)
    tabu[x] = 100
    swap.swap_tabu(w, members, pos, g, value, tabu, 0, 1, members.copy(), value, 0, 10, 4, 3, 0.1,
                   np.random.default_rng(0))
    assert x in members and y not in members


def test_perturb_random_members_crossover_and_opposite():
    rng = np.random.default_rng(3)
    n, k = 16, 5
    w = random_symmetric(n, rng)
    members, pos, _ = _state(w, swap.random_members(n, k, rng))
    assert len(set(members.tolist())) == k and members.min() >= 0 and members.max() < n
    before = set(members.tolist())
    g, value = swap.perturb(w, members, pos, 2, rng)
    _check_state(w, members, pos, g)
    assert value == pytest.approx(weight_of(w, members)) and len(before - set(members.tolist())) <= 2
    a = np.array([0, 1, 2, 3, 4], dtype=np.int64)
    b = np.array([3, 4, 5, 6, 7], dtype=np.int64)
    child = swap.backbone_crossover(w, a, b, rng)
    assert {3, 4} <= set(child.tolist()) <= set(range(8)) and len(set(child.tolist())) == k
    # the reference: backbone, then the parents in turn give their vertex of greatest gain
    ref, turn = [3, 4], 0
    while len(ref) < k:
        src = [u for u in (a if turn == 0 else b) if u not in ref]
        if src:
            ref.append(max(src, key=lambda u: sum(w[u][x] for x in ref)))
        turn = 1 - turn
    assert child.tolist() == ref
    opp = swap.opposite_members(w, a, b, k, rng)
    assert len(set(opp.tolist())) == k and not set(opp.tolist()) & set(range(8))
    ref = [int(opp[0])]  # after a random seed vertex: greatest gain among the left-out vertices
    while len(ref) < k:
        ref.append(max((v for v in range(8, n) if v not in ref), key=lambda v: sum(w[v][x] for x in ref)))
    assert opp.tolist() == ref


# --------------------------------------------------------------------- clique (general graphs)


def _clique_state(w, mask, start, k):
    indptr, indices, data = csr(w, mask)
    state = clique.build_state(indptr, indices, data, np.array(start, dtype=np.int64), k)
    return (indptr, indices, data), list(state)


def _check_clique_state(w, mask, state) -> None:
    members, pos, adj, idsum, g, sums, size, value = state
    cl = members[:size].tolist()
    assert is_clique(mask, cl) and value == pytest.approx(weight_of(w, cl), abs=1e-9)
    n = w.shape[0]
    assert adj.tolist() == [sum(bool(mask[u, v]) for u in cl) for v in range(n)]
    assert idsum.tolist() == [sum(u for u in cl if mask[u, v]) for v in range(n)]
    assert np.allclose(g, [sum(w[u, v] for u in cl if mask[u, v]) for v in range(n)], rtol=0, atol=1e-9)
    assert sums[0] == sum(cl) and all(pos[v] == i for i, v in enumerate(cl))


def all_moves(w, mask, cl, k):
    """The module's neighbourhood, by brute force, with each move's value change: ADD v
    (size < k); SWAP u -> v where v misses exactly u, or where v is adjacent to every
    member and the clique is full; DROP u (size > 1)."""
    n, out = w.shape[0], []
    for v in set(range(n)) - set(cl):
        full = is_clique(mask, cl + [v])
        if len(cl) < k and full:
            out.append((clique.ADD, -1, v, weight_of(w, cl + [v]) - weight_of(w, cl)))
        for u in cl:
            new = [x for x in cl if x != u] + [v]
            misses_only_u = not full and is_clique(mask, new)
            if misses_only_u or (full and len(cl) == k):
                out.append((clique.SWAP, u, v, weight_of(w, new) - weight_of(w, cl)))
    if len(cl) > 1:
        out += [(clique.DROP, u, -1, weight_of(w, [x for x in cl if x != u]) - weight_of(w, cl)) for u in cl]
    return out


@pytest.mark.parametrize("seed", range(8))
def test_best_move_is_the_best_of_all_moves(seed):
    rng = np.random.default_rng(seed)
    n, k = 12, 4
    w, mask = random_graph(n, 0.6, rng, negative=seed % 2 == 0)
    csr_arrays, state = _clique_state(w, mask, [int(rng.integers(n))], k)
    _check_clique_state(w, mask, state)
    seen, cand = np.zeros(n + 1, dtype=np.int64), np.empty(n, dtype=np.int64)
    for step in range(6):
        members, pos, adj, idsum, g, sums, size, value = state
        cl = members[:size].tolist()
        moves = all_moves(w, mask, cl, k)
        kind, u, v, d = clique.best_move(*csr_arrays, members, pos, adj, idsum, g, sums, size, k, False, value,
                                         -np.inf, np.zeros(n, dtype=np.int64), 0, False, seen, step + 1, cand,
                                         np.random.default_rng(step))
        if not moves:
            assert kind == -1
            break
        assert d == pytest.approx(max(m[3] for m in moves), abs=1e-9)
        assert any((kind, u, v) == m[:3] and m[3] == pytest.approx(d, abs=1e-9) for m in moves)
        state[6] = clique.apply_move(*csr_arrays, members, pos, adj, idsum, g, sums, size, kind, u, v)
        state[7] = value + d
        _check_clique_state(w, mask, state)
    w_uv = clique.edge_weight(*csr_arrays, 0, 1)
    assert (w_uv == w[0, 1]) if mask[0, 1] else np.isnan(w_uv)


@pytest.mark.parametrize("seed", range(6))
def test_least_degree_pair_is_the_two_members_of_least_degree(seed):
    rng = np.random.default_rng(seed)
    n = 15
    w, mask = random_graph(n, 0.5, rng)
    indptr, _, _ = csr(w, mask)
    degree = mask.sum(axis=1)
    for size in range(1, 8):
        members = rng.permutation(n)[:size].astype(np.int64)
        a, b = clique.least_degree_pair(indptr, members, size)
        if size == 1:
            assert (a, b) == (members[0], -1)
            continue
        assert a != b and {a, b} <= set(members.tolist()) and degree[a] <= degree[b]
        assert [degree[a], degree[b]] == sorted(degree[members])[:2]


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_clique_search_keeps_a_clique_and_finds_the_optimum(seed, exact):
    rng = np.random.default_rng(seed)
    n, k = 12, 4
    w, mask = random_graph(n, 0.6, rng, negative=seed % 2 == 1)
    csr_arrays, state = _clique_state(w, mask, [0], k)
    members, pos, adj, idsum, g, sums, size, value = state
    best = np.empty(k, dtype=np.int64)
    out = clique.clique_search(*csr_arrays, members, pos, adj, idsum, g, sums, size, value, k, exact, True, False,
                               np.zeros(n, dtype=np.int64), 0, 3000, best, 0, -np.inf, 0, 10**9, 3,
                               np.zeros(n + 1, dtype=np.int64), np.random.default_rng(seed))
    size, value, best_size, best_value = out[:4]
    _check_clique_state(w, mask, [members, pos, adj, idsum, g, sums, size, value])
    sizes = [k] if exact else range(1, k + 1)
    cliques = [c for s in sizes for c in itertools.combinations(range(n), s) if is_clique(mask, c)]
    if not cliques:
        assert best_size == 0
        return
    assert is_clique(mask, best[:best_size].tolist()) and best_value == pytest.approx(weight_of(w, best[:best_size]))
    assert best_value == pytest.approx(max(max(weight_of(w, c) for c in cliques), 0.0 if not exact else -np.inf))


# --------------------------------------------------------------------- rand, pls


def splitmix64_reference(state: int, count: int) -> list[int]:
    mask, out = (1 << 64) - 1, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**64 - 1])
def test_rand_is_splitmix64_and_below_stays_in_range(seed):
    rs = rand.seed_state(seed)
    assert [int(rand.next_u64(rs)) for _ in range(5)] == splitmix64_reference(seed, 5)
    draws = [int(rand.below(rs, 7)) for _ in range(700)]
    assert set(draws) == set(range(7)) and max(draws.count(x) for x in range(7)) < 160
    assert rand.seed_state(seed + 2**64)[0] == rs.dtype.type(seed)


def _bitset(row: np.ndarray, n: int) -> list[int]:
    return [x for x in range(n) if int(row[x >> 6]) >> (x & 63) & 1]


@pytest.mark.parametrize("n", [13, 64, 70])
@pytest.mark.parametrize("density", [0.0, 0.4, 0.8, 1.0])
def test_dense_structure_is_the_matrix_and_the_adjacency_bitsets(density, n):
    rng = np.random.default_rng(int(density * 10) + n)
    w, mask = random_graph(n, density, rng)
    w[mask] = np.where(rng.random(mask.sum()) < 0.2, 0.0, w[mask])  # edges of weight 0 stay edges
    w = np.triu(w, 1) + np.triu(w, 1).T
    dense, adj = pls.dense_structure(*csr(w, mask))
    assert np.array_equal(dense, w) and adj.shape == (n, (n + 63) // 64) and adj.dtype == np.uint64
    for v in range(n):
        assert _bitset(adj[v], n) == [x for x in range(n) if x != v and mask[v, x]]
        assert n % 64 == 0 or int(adj[v, -1]) >> (n % 64) == 0  # no bit past vertex n - 1


def _pls_arrays(w, mask, start, k, dense):
    indptr, indices, data = csr(w, mask)
    if dense:
        matrix, adj = pls.dense_structure(indptr, indices, data)
    else:
        matrix, adj = np.empty((0, 0)), np.empty((0, 0), np.uint64)
    graph = (indptr, indices, data, adj, matrix)
    return graph, list(pls.start_state(*graph, np.array(start, dtype=np.int64), k))


def _check_pls_state(w, mask, state, dense) -> None:
    members, pos, cnt, ids, g, bits, ctl = state
    n, size = w.shape[0], int(ctl[pls.SIZE])
    cl = members[:size].tolist()
    out = [v for v in range(n) if v not in cl]
    assert is_clique(mask, cl) and all(pos[v] == i for i, v in enumerate(cl)) and all(pos[v] == -1 for v in out)
    missing = {v: [u for u in cl if not mask[u, v]] for v in out}
    assert np.allclose(g, [sum(w[u, v] for u in cl if mask[u, v]) for v in range(n)], rtol=0, atol=1e-9)
    if not dense:
        assert [cnt[v] for v in out] == [size - len(missing[v]) for v in out]
        assert [ids[v] for v in out] == [sum(cl) - sum(missing[v]) for v in out] and ctl[pls.SUMS] == sum(cl)
        return
    assert _bitset(bits[pls.C0], n) == [v for v in out if not missing[v]]
    assert _bitset(bits[pls.C1], n) == [v for v in out if len(missing[v]) == 1]
    assert _bitset(bits[pls.MEM], n) == sorted(cl)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize(("seed", "n"), [(0, 14), (1, 14), (2, 70), (3, 70)])
def test_pls_moves_keep_both_bookkeepings_exact(seed, n, dense):
    rng = np.random.default_rng(seed)
    k = 6
    w, mask = random_graph(n, 0.7, rng, negative=seed % 2 == 1)
    graph, state = _pls_arrays(w, mask, [int(rng.integers(n))], k, dense)
    _check_pls_state(w, mask, state, dense)
    for _ in range(40):
        members, pos, cnt, ids, g, sets, ctl = state
        cl = members[: ctl[pls.SIZE]].tolist()
        addable = [v for v in range(n) if v not in cl and is_clique(mask, cl + [v])]
        if addable and len(cl) < k and rng.random() < 0.6:
            pls._add(*graph, *state, int(rng.choice(addable)))
        elif len(cl) > 1:
            pls._drop(*graph, *state, int(rng.choice(cl)))
        _check_pls_state(w, mask, state, dense)
    pls._clear(*graph, *state)
    _check_pls_state(w, mask, state, dense)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_pls_search_keeps_its_state_and_finds_the_optimum(seed, exact, dense):
    rng = np.random.default_rng(seed)
    n, k = 12, 4
    w, mask = random_graph(n, 0.65, rng, negative=seed % 2 == 1)
    graph, state = _pls_arrays(w, mask, [0], k, dense)
    members, pos, cnt, ids, g, sets, ctl = state
    best = np.empty(k, dtype=np.int64)
    value = float(g[members[: ctl[pls.SIZE]]].sum() / 2)
    value, best_value, done = pls.pls_search(*graph, *state, value, k, exact, np.zeros(n, np.int64),
                                             np.zeros(n, np.int64), np.zeros(n, np.int64), 600, best, -np.inf,
                                             np.inf, rand.seed_state(seed))
    assert done == 600
    _check_pls_state(w, mask, state, dense)
    assert value == pytest.approx(weight_of(w, members[: ctl[pls.SIZE]]), abs=1e-9)
    sizes = [k] if exact else range(1, k + 1)
    cliques = [c for s in sizes for c in itertools.combinations(range(n), s) if is_clique(mask, c)]
    best_size = int(ctl[pls.BEST_SIZE])
    if not cliques:
        assert best_size == 0
        return
    assert is_clique(mask, best[:best_size].tolist()) and best_value == pytest.approx(weight_of(w, best[:best_size]))
    assert best_value == pytest.approx(max(weight_of(w, c) for c in cliques))
