"""The `bnb` method: agreement with brute force, valid bounds, planted optima, statuses."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import mewcp
from mewcp.kernels import bnb as kernel
from mewcp.solvers.bnb import BNB_MAX_N, RTOL, _dense_sub, core_vertices
from tests.mewcp.helpers import best_clique_reference, random_graph
from tests.mewcp.test_properties import instances


@settings(max_examples=60)
@given(inst=instances(max_n=12), start=st.sampled_from(["random", "pls", "tabu", "ehgp"]))
def test_agrees_with_brute_force(inst, start):
    data, k, size = inst
    best = mewcp.solve(data, k, "brute", size=size)
    sol = mewcp.solve(data, k, "bnb", size=size, start=start, seed=0)
    if best.status is mewcp.Status.INFEASIBLE:
        assert sol.status is mewcp.Status.INFEASIBLE and sol.nodes == ()
        return
    assert sol.status is mewcp.Status.OPTIMAL
    assert sol.weight == pytest.approx(best.weight, abs=1e-9)
    assert sol.bound == sol.weight and sol.gap == 0.0
    assert mewcp.is_clique(data, sol.nodes)
    assert (sol.size == k) if size == "exact" else (1 <= sol.size <= k)


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_the_bound_of_a_stopped_search_is_never_below_the_optimum(exact, seed):
    """Stop the kernel after every node budget; the open bound must cover the optimum."""
    rng = np.random.default_rng(seed)
    n, k = 12, int(rng.integers(2, 7))
    w, mask = random_graph(n, 0.7, rng, negative=seed % 2 == 1)
    opt = best_clique_reference(w, mask, k, exact)
    problem = mewcp.as_problem(sp.csr_array(w * mask))
    keep = core_vertices(problem, k) if exact else np.arange(n)
    wd, adj = _dense_sub(problem, keep)
    bits = kernel.adjacency_bits(adj)
    for budget in (1, 2, 3, 5, 8, 13):
        s, sig, rem, bl, lv, fw, best, si, sf, tp, sb, wl = kernel.new_state(keep.size, k)
        kernel.search(wd, bits, k, exact, s, sig, rem, bl, lv, fw, best, si, sf, tp, sb, wl, budget, RTOL)
        for max_work in (0, 50, 10**9):  # any cut-off of the walk keeps the bound valid
            bound = kernel.open_bound(wd, bits, k, exact, s, sig, rem, bl, lv, fw, best, si, sf, tp, sb, wl, max_work)
            assert bound >= opt - 1e-9
        if best[k] > 0:  # the incumbent is a real clique of the right size with the stated weight
            idx = best[: best[k]]
            assert adj[np.ix_(idx, idx)].sum() == idx.size * (idx.size - 1)
            assert (idx.size == k) if exact else (idx.size <= k)
            assert wd[np.ix_(idx, idx)].sum() / 2 == pytest.approx(fw[k + 1])
        if best[k + 1] < 0:  # exhausted: the incumbent is the optimum
            assert fw[k + 1] == pytest.approx(opt)


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("seed", range(40))
def test_expand_bounds_every_clique_of_the_placed_vertices(exact, seed):
    """At one node: no r-clique (``exact``; at most r otherwise) uses a removed vertex, every clique of the
    placed vertices adds at most the target and at most the returned bound; with no target the bound covers all."""
    rng = np.random.default_rng(100 + seed)
    m, r = int(rng.integers(4, 12)), int(rng.integers(1, 5))
    w, mask = random_graph(m, float(rng.uniform(0.3, 0.9)), rng, negative=seed % 2 == 1)
    adj = mask.astype(np.uint8)
    sig = rng.normal(0, 3, size=m) if seed % 2 else rng.uniform(0, 5, size=m)
    value = {}  # sigma(S) + W(S) of every clique S of the allowed sizes
    for bits in range(1, 1 << m):
        idx = [i for i in range(m) if bits >> i & 1]
        if (len(idx) == r if exact else len(idx) <= r) and all(mask[a, b] for a in idx for b in idx if a < b):
            value[bits] = sig[idx].sum() + w[np.ix_(idx, idx)].sum() / 2
    best = max(value.values(), default=-np.inf)
    # the candidates sit at random places of a larger graph (several bit words) whose other vertices must not count
    big_n = int(rng.integers(m, 200))
    verts = np.sort(rng.choice(big_n, m, replace=False))
    big_w, big_mask = random_graph(big_n, 0.5, rng)
    big_w[np.ix_(verts, verts)] = w
    big_mask[np.ix_(verts, verts)] = mask
    abits = kernel.adjacency_bits(big_mask.astype(np.uint8))
    # the node's weights as `search` keeps them for small nodes: a local m x m matrix, -inf off the edges, at an offset
    local = np.full(7 + m * m, np.nan)
    local[7:] = np.where(mask, w, -np.inf).ravel()
    targets = (np.inf, best - 1e-6, float(np.median(list(value.values()) or [0.0])), -np.inf)
    for target, (wl, off) in itertools.product(targets, [(local, -1), (local, 7)]):
        _, _, _, _, _, _, _, si, sf, tp, sb, _ = kernel.new_state(big_n, r + 1)
        rem, branch = np.zeros(m, dtype=np.uint8), np.zeros(m, dtype=np.int64)
        nb, bound = kernel.expand(big_w, abits, verts, sig.copy(), m, r, exact, target, rem, branch, si, sf, tp, sb,
                                  np.zeros(3, dtype=np.int64), wl, off)
        placed = np.ones(m, dtype=bool)
        placed[branch[:nb]] = False
        placed[rem == 1] = False
        for bits, v in value.items():
            members = [i for i in range(m) if bits >> i & 1]
            if exact:
                assert not rem[members].any()
            if placed[members].all():
                assert v <= target + 1e-9 and v <= bound + 1e-9
        if target == np.inf:
            assert nb == 0 and bound >= best - 1e-9


@pytest.mark.parametrize("size", ["exact", "at_most"])
def test_finds_a_planted_clique(size):
    rng = np.random.default_rng(7)
    n, k = 60, 8
    w, mask = random_graph(n, 0.3, rng)
    planted = rng.choice(n, k, replace=False)
    mask[np.ix_(planted, planted)] = True
    np.fill_diagonal(mask, False)
    w = np.where(mask, w, 0.0)
    w[np.ix_(planted, planted)] = 50.0
    np.fill_diagonal(w, 0.0)
    sol = mewcp.solve(sp.csr_array(w), k, "bnb", size=size, start="random")
    assert sol.status is mewcp.Status.OPTIMAL
    assert sorted(sol.nodes) == sorted(planted.tolist())
    assert sol.weight == pytest.approx(50.0 * k * (k - 1) / 2)


def test_proves_a_dimacs_optimum():
    p = mewcp.read("instances/dimacs/johnson8-4-4.wclq")
    sol = mewcp.solve(p, 14, "bnb", seed=0)
    assert sol.status is mewcp.Status.OPTIMAL and sol.weight == 6552


def test_complete_graph_matches_brute_force():
    w = np.random.default_rng(3).uniform(0, 10, size=(16, 16))
    w = np.triu(w, 1) + np.triu(w, 1).T
    for k in (3, 6):
        best = mewcp.solve(w, k, "brute")
        sol = mewcp.solve(w, k, "bnb", start="random")
        assert sol.status is mewcp.Status.OPTIMAL and sol.weight == pytest.approx(best.weight)


def test_a_time_limited_run_is_feasible_with_a_valid_bound():
    p = mewcp.read("instances/dimacs/DSJC500.5.wclq")  # optimum 9626 at k = 13
    start = mewcp.solve(p, 13, "tabu", seed=0).nodes
    sol = mewcp.solve(p, 13, "bnb", time_limit=0.5, start=start)
    assert sol.status is mewcp.Status.FEASIBLE
    assert sol.bound >= 9626 >= sol.weight and sol.gap > 0
    assert "time limit" in sol.message
    assert sol.runtime < 0.5 + 2.0  # generous: the machine may be shared


def test_infeasible_when_no_clique_of_size_k():
    cycle = sp.csr_array(np.roll(np.eye(7), 1, axis=1) + np.roll(np.eye(7), -1, axis=1))
    sol = mewcp.solve(cycle, 3, "bnb", start="random")
    assert sol.status is mewcp.Status.INFEASIBLE and "no clique of size 3" in sol.message
    assert mewcp.solve(cycle, 3, "bnb", size="at_most").weight == 1.0


def test_reproducible():
    p = mewcp.read("instances/dimacs/hamming6-4.wclq")
    a = mewcp.solve(p, 3, "bnb", seed=5)
    b = mewcp.solve(p, 3, "bnb", seed=5)
    assert a.nodes == b.nodes and a.n_iter == b.n_iter and a.weight == b.weight


def test_refuses_graphs_beyond_its_dense_limit():
    n = BNB_MAX_N + 1
    path = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1], format="csr")
    with pytest.raises(ValueError, match=f"method='bnb' stores dense arrays of the graph: n={n} vertices"):
        mewcp.solve(path, 2, "bnb", size="at_most", start="random")


def test_listed_as_exact():
    bnb = next(m for m in mewcp.methods() if m.name == "bnb")
    assert bnb.available and bnb.kind == "proven" and bnb.options == {"start": "pls"}


@pytest.mark.parametrize("graph", ["complete", "gnp"])
def test_the_time_limit_holds_on_500_vertices(graph):
    rng = np.random.default_rng(2)
    w = rng.uniform(0, 10, size=(500, 500))
    w = np.triu(w, 1) + np.triu(w, 1).T
    if graph == "gnp":
        upper = np.triu(rng.uniform(size=(500, 500)) < 0.5, 1)
        w = sp.csr_array(w * (upper | upper.T))
    mewcp.solve(w, 10, "bnb", time_limit=0.5, seed=0)  # first call: loads the cached kernels
    sol = mewcp.solve(w, 10, "bnb", time_limit=0.5, seed=0)
    assert sol.status is mewcp.Status.FEASIBLE and sol.bound >= sol.weight
    assert sol.runtime < 0.5 + 2.0  # generous: the machine may be shared


def test_the_time_limit_holds_when_the_bound_work_changes_across_the_search():
    # complete graph with Euclidean weights, n = 3000, k = 50: nodes near the root first refuse every vertex (cheap),
    # later ones place many (quadratic); with m^2 charged per node whatever the bound did, one kernel call of the
    # adapted budget ran 50 s past a 2 s limit
    rng = np.random.default_rng(0)
    x = rng.random((3000, 5))
    w = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    mewcp.solve(w[:100, :100], 50, "bnb", time_limit=0.5, seed=0)  # first call: loads the cached kernels
    t0 = time.perf_counter()
    sol = mewcp.solve(w, 50, "bnb", time_limit=2.0, seed=0)
    assert time.perf_counter() - t0 < 2.0 + 2.0  # generous: the machine may be shared
    assert sol.status is mewcp.Status.FEASIBLE and sol.bound >= sol.weight and len(sol.nodes) == 50


@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 130])
def test_adjacency_bits_match_the_matrix(n):
    rng = np.random.default_rng(n)
    _, mask = random_graph(n, 0.5, rng)
    bits = kernel.adjacency_bits(mask.astype(np.uint8))
    assert bits.dtype == np.uint64 and bits.shape == (n, max(1, -(-n // 64)))
    for v in range(n):
        for u in range(n):
            assert (int(bits[v, u // 64]) >> (u % 64)) & 1 == int(mask[v, u])
        assert sum(bin(int(x)).count("1") for x in bits[v]) == mask[v].sum()  # no bit beyond n


@pytest.mark.parametrize("seed", range(20))
def test_colours_below_matches_a_plain_greedy_colouring(seed):
    """`_colours_below` against sets built one after another in the given order, written out plainly."""
    rng = np.random.default_rng(300 + seed)
    n = int(rng.integers(2, 150))
    _, mask = random_graph(n, float(rng.uniform(0.1, 0.95)), rng)
    m = int(rng.integers(1, n + 1))
    verts = rng.choice(n, m, replace=False)
    order = rng.permutation(m)
    left, colours = list(order), 0
    while left:
        taken: list[int] = []
        for v in left:
            if not any(mask[verts[v], verts[u]] for u in taken):
                taken.append(v)
        left = [v for v in left if v not in taken]
        colours += 1
    bits = kernel.adjacency_bits(mask.astype(np.uint8))
    banned = np.zeros(bits.shape[1], dtype=np.uint64)
    for r in (1, 2, colours - 1, colours, colours + 1, m + 1):
        if r >= 1:
            got = kernel._colours_below(bits, verts, order.astype(np.int64), m, r, np.zeros(m, dtype=np.int64), banned)
            assert got == (colours < r)


def _cliques(mask, members):
    """Every clique (as a sorted tuple, the empty one included) of the vertices ``members``."""
    out = [()]
    for size in range(1, len(members) + 1):
        for c in itertools.combinations(members, size):
            if all(mask[a, b] for a, b in itertools.combinations(c, 2)):
                out.append(c)
    return out


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("seed", range(30))
def test_coloured_top_bounds_every_clique_of_the_neighbourhood(exact, seed):
    """`_coloured_top` against brute force: never below the heaviest star of v into a clique of the allowed size
    among its unprocessed neighbours; -inf only when no such clique exists (``exact``)."""
    rng = np.random.default_rng(500 + seed)
    m = int(rng.integers(2, 11))
    w, mask = random_graph(m, float(rng.uniform(0.3, 0.95)), rng, negative=seed % 2 == 1)
    proc = (rng.uniform(size=m) < 0.2).astype(np.uint8)
    i = int(rng.integers(m))
    proc[i] = 0
    cap = int(rng.integers(1, 5))
    bits = kernel.adjacency_bits(mask.astype(np.uint8))
    verts = np.arange(m, dtype=np.int64)
    local = np.where(mask, w, -np.inf).ravel()
    nbrs = [j for j in range(m) if j != i and mask[i, j] and proc[j] == 0]
    stars = [w[i, list(q)].sum() for q in _cliques(mask, nbrs) if (len(q) == cap if exact else len(q) <= cap)]
    best = max(stars, default=-np.inf)
    for off in (-1, 0):
        si = np.zeros((4, m + 1), dtype=np.int64)
        got = kernel._coloured_top(w, bits, verts, m, i, proc, cap, exact, np.zeros(m), si[0], si[1], si[2], local, off)
        assert got >= best - 1e-9
        if got == -np.inf:
            assert exact and not stars


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("seed", range(30))
def test_h_branch_places_only_vertices_whose_cliques_stay_below_the_target(exact, seed):
    """`_h_branch` on random half-sum values: every clique of the allowed size among the placed vertices has a
    total of h at most the target and at most the returned bound (the half-sum bound's own argument)."""
    rng = np.random.default_rng(900 + seed)
    m, r = int(rng.integers(3, 11)), int(rng.integers(1, 5))
    _, mask = random_graph(m, float(rng.uniform(0.3, 0.95)), rng)
    hv = rng.normal(5, 4, size=m)
    if exact:
        hv[rng.uniform(size=m) < 0.15] = -np.inf  # vertices in no clique of the size
    removed = (rng.uniform(size=m) < 0.15).astype(np.uint8)
    bits = kernel.adjacency_bits(mask.astype(np.uint8))
    verts = np.arange(m, dtype=np.int64)
    live = [j for j in range(m) if removed[j] == 0]
    cliques = [q for q in _cliques(mask, live) if q and (len(q) == r if exact else len(q) <= r)]
    totals = {q: hv[list(q)].sum() for q in cliques}
    finite = [t for t in totals.values() if t > -np.inf]
    for target in (np.inf, float(np.median(finite)) if finite else 0.0, -np.inf):
        limit = m + 1
        out, si = np.zeros(m + 1, dtype=np.int64), np.zeros((8, m + 1), dtype=np.int64)
        nb, bound = kernel._h_branch(bits, verts, m, r, exact, removed, hv, target, limit, out, si, np.zeros(m + 1))
        if nb >= limit:
            continue
        branched = set(out[:nb].tolist())
        for q, t in totals.items():
            if not branched & set(q):
                assert t <= target + 1e-9 and t <= bound + 1e-9


def test_a_pls_start_on_a_large_complete_graph_keeps_the_time_limit():
    """The pls start's CSR copy of a complete graph (n^2 entries) is skipped when the limit leaves no room for it:
    pls answers with ehgp's peel on the matrix, and bnb from that start still returns a clique within its limit."""
    from mewcp.solvers.local_search import PLS_CSR_SECONDS

    rng = np.random.default_rng(4)
    n = 1200
    w = rng.uniform(0, 10, size=(n, n))
    w = np.triu(w, 1) + np.triu(w, 1).T
    limit = 0.5 * PLS_CSR_SECONDS * n * (n - 1)  # about 0.07 s: too short for the copy
    sol = mewcp.solve(w, 20, "pls", time_limit=limit, seed=0)
    assert sol.status is mewcp.Status.FEASIBLE and len(sol.nodes) == 20
    assert "no room for pls's CSR copy of a complete graph with n=1200" in sol.message
    mewcp.solve(w[:100, :100], 20, "bnb", time_limit=0.5, seed=0)  # loads the cached kernels
    sol = mewcp.solve(w, 20, "bnb", time_limit=0.5, seed=0)
    assert sol.status is mewcp.Status.FEASIBLE and len(sol.nodes) == 20 and sol.bound >= sol.weight
    assert sol.runtime < 0.5 + 2.0  # generous: the machine may be shared
