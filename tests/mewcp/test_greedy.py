"""EHGP: equal to the plain-Python Algorithm 1, certified cliques, the peeling order."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import mewcp
from mewcp import kernels
from tests.mewcp.helpers import ehgp_reference, random_graph, random_symmetric


@pytest.mark.parametrize("n", [1, 2, 3, 7, 40, 129])
@pytest.mark.parametrize("negative", [False, True])
def test_order_equals_reference_on_random_matrices(n, negative):
    rng = np.random.default_rng(n)
    w = random_symmetric(n, rng, negative=negative)
    order, scores = ehgp_reference(w.tolist())
    p = mewcp.ehgp_order(w)
    assert p.order.tolist() == order
    assert p.scores.tolist() == scores  # bit-identical: same additions in the same order
    assert p.clique_size == n


def test_order_equals_reference_with_ties():
    # integer weights in a tiny range: many ties, broken by the lowest index
    rng = np.random.default_rng(5)
    w = np.triu(rng.integers(0, 3, size=(30, 30)).astype(float), 1)
    w = w + w.T
    order, scores = ehgp_reference(w.tolist())
    assert mewcp.ehgp_order(w).order.tolist() == order
    assert mewcp.ehgp_order(np.zeros((5, 5))).order.tolist() == [0, 1, 2, 3, 4]


def test_scores_sum_to_suffix_weights():
    rng = np.random.default_rng(1)
    w = random_symmetric(25, rng)
    p = mewcp.ehgp_order(w)
    for j in (1, 2, 10, 25):
        kept = p.order[-j:]
        assert p.scores[-j:].sum() == pytest.approx(mewcp.objective(w, kept), rel=1e-12)


def test_solve_keeps_the_last_k_of_the_order():
    rng = np.random.default_rng(2)
    w = random_symmetric(60, rng)
    p = mewcp.ehgp_order(w)
    for k in (1, 5, 30, 60):
        sol = mewcp.solve(w, k)
        assert sol.indices.tolist() == sorted(p.order[-k:].tolist())
        assert sol.status is mewcp.Status.FEASIBLE
        assert sol.weight == pytest.approx(mewcp.objective(w, sol.nodes))


def test_sparse_storage_of_a_complete_graph_gives_the_same_order():
    rng = np.random.default_rng(3)
    w = random_symmetric(30, rng)
    g = nx.Graph()
    g.add_nodes_from(range(30))
    sparse = sp.csr_array(w)
    # the sparse kernel on a complete graph (forced by building its CSR by hand)
    order, scores, cs = kernels.peel_sparse(sparse.indptr.astype(np.int64), sparse.indices.astype(np.int64), sparse.data)
    ref_order, ref_scores = ehgp_reference(w.tolist())
    assert order.tolist() == ref_order
    assert cs == 30
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-12, atol=1e-9)


def sparse_reference(w: np.ndarray, mask: np.ndarray, scores: list[float] | None = None) -> tuple[list[int], int]:
    """Peel by (degree in remainder, score in remainder, index), scores kept incrementally.

    Returns the order and the size of the first remainder that is a clique; appends
    each vertex's score at its removal to ``scores`` when given.
    """
    n = w.shape[0]
    deg = [int(mask[v].sum()) for v in range(n)]
    score = []
    for v in range(n):
        acc = 0.0
        for u in range(n):
            if mask[v, u]:
                acc += w[v, u]
        score.append(acc)
    remaining = set(range(n))
    order, clique_size = [], 0
    while remaining:
        v = min(remaining, key=lambda x: (deg[x], score[x], x))
        if clique_size == 0 and deg[v] == len(remaining) - 1:
            clique_size = len(remaining)
        if scores is not None:
            scores.append(score[v] if len(remaining) > 1 else 0.0)
        order.append(v)
        remaining.remove(v)
        for u in remaining:
            if mask[v, u]:
                deg[u] -= 1
                score[u] -= w[v, u]
    return order, clique_size


@pytest.mark.parametrize("seed", range(6))
def test_sparse_peel_matches_reference_and_ends_in_cliques(seed):
    rng = np.random.default_rng(seed)
    w, mask = random_graph(35, 0.6, rng)
    p = mewcp.ehgp_order(_sparse(w, mask))
    order, clique_size = sparse_reference(w, mask)
    assert p.order.tolist() == order
    assert p.clique_size == clique_size
    for j in range(1, clique_size + 1):
        assert mewcp.is_clique(_sparse(w, mask), p.order[-j:])
    assert not mewcp.is_clique(_sparse(w, mask), p.order[-clique_size - 1 :])


@pytest.mark.parametrize("density", [0.01, 0.05, 0.3])
@pytest.mark.parametrize("ties", [False, True])
def test_bucket_peel_is_bit_identical_to_the_reference(density, ties):
    # sparse graphs with isolated vertices and many degree levels; integer weights tie scores
    rng = np.random.default_rng(int(density * 100) + ties)
    n = 150
    w, mask = random_graph(n, density, rng, negative=not ties)
    if ties:
        w = np.round(w * 2) * mask
    ref_scores: list[float] = []
    order, clique_size = sparse_reference(w, mask, ref_scores)
    a = _sparse(w, mask)
    indptr, indices = a.indptr.astype(np.int64), a.indices.astype(np.int64)
    got_order, got_scores, got_size = kernels.peel_sparse(indptr, indices, a.data)
    assert got_order.tolist() == order and got_size == clique_size
    assert got_scores.tolist() == ref_scores  # same subtractions in the same order
    from mewcp.kernels.peel import peel_sparse_init, peel_sparse_steps

    state = peel_sparse_init(indptr, indices, a.data)  # in pieces of 7 units of work: the same run
    calls = 1
    while not peel_sparse_steps(indptr, indices, a.data, *state, 7):
        calls += 1
    assert calls > 10 and state[7].tolist() == order and state[9][1] == clique_size


def _sparse(w: np.ndarray, mask: np.ndarray) -> sp.csr_array:
    rows, cols = np.nonzero(mask)
    return sp.csr_array((w[rows, cols], (rows, cols)), shape=w.shape)


def test_exact_size_beyond_the_peeled_clique_is_no_solution():
    g = nx.path_graph(6)  # largest clique: 2
    sol = mewcp.solve(g, 3)
    assert sol.status is mewcp.Status.NO_SOLUTION
    assert sol.nodes == () and np.isnan(sol.weight)
    assert "clique of only 2 vertices" in sol.message
    assert mewcp.solve(g, 2).size == 2
    assert mewcp.solve(g, 3, size="at_most").size == 2


def test_at_most_picks_the_heaviest_suffix_with_negative_weights():
    # vertex 2 is repelled by everyone: keeping {0, 1} beats any 3-set
    w = np.array([[0, 5, -9, -9], [5, 0, -9, -9], [-9, -9, 0, 1], [-9, -9, 1, 0.0]])
    sol = mewcp.solve(w, 3, size="at_most")
    assert sol.nodes == (0, 1) and sol.weight == 5.0
    exact = mewcp.solve(w, 3)
    assert exact.size == 3


def test_labels_are_reported_for_networkx_graphs():
    g = nx.complete_graph(["a", "b", "c", "d"])
    for (u, v), wt in zip(g.edges, [1, 2, 3, 4, 5, 6]):
        g[u][v]["weight"] = wt
    p = mewcp.ehgp_order(g)
    assert set(p.nodes) == {"a", "b", "c", "d"}
    sol = mewcp.solve(g, 2)
    assert set(sol.nodes) <= {"a", "b", "c", "d"}
    assert sol.weight == mewcp.objective(g, sol.nodes)


def grow_reference(w: np.ndarray, mask: np.ndarray, u: int, v: int, k: int, positive_only: bool) -> tuple[list[int], float]:
    """Plain-Python greedy growth from the edge (u, v): the candidate of greatest gain enters."""
    clique, weight = [u, v], w[u, v]
    cand = [x for x in range(len(w)) if mask[u, x] and mask[v, x]]
    while len(clique) < k and cand:
        gains = [sum(w[x, c] for c in clique) for x in cand]
        i = int(np.argmax(gains))  # first maximum, as the kernel
        if positive_only and gains[i] <= 0:
            break
        c = cand[i]
        clique.append(c)
        weight += gains[i]
        cand = [x for x in cand if x != c and mask[x, c]]
    return clique, weight


@pytest.mark.parametrize("seed", range(4))
def test_growth_from_edges_matches_reference(seed):
    from mewcp.kernels.construct import grow_from_edges

    rng = np.random.default_rng(seed)
    w, mask = random_graph(40, 0.5, rng, negative=seed % 2 == 1)
    a = sp.csr_array(_sparse(w, mask))
    rows, cols = np.nonzero(np.triu(mask, 1))
    pick = rng.choice(rows.size, 5, replace=False)
    for positive_only in (False, True):
        k = 6
        best, size, weight, _, _ = grow_from_edges(a.indptr.astype(np.int64), a.indices.astype(np.int64), a.data,
                                                   rows[pick].astype(np.int64), cols[pick].astype(np.int64),
                                                   k, positive_only)
        ref = [grow_reference(w, mask, int(rows[p]), int(cols[p]), k, positive_only) for p in pick]
        best_ref = max(ref, key=lambda r: r[1])
        assert weight == pytest.approx(best_ref[1])
        assert sorted(best[:size].tolist()) == sorted(best_ref[0])


@pytest.mark.parametrize("seed", range(3))
def test_top_edges_matches_a_sort_with_ties_to_the_lowest_pair(seed):
    from mewcp.kernels.construct import top_edges

    rng = np.random.default_rng(seed)
    w, mask = random_graph(50, 0.3, rng)
    w = np.round(w * 3) * mask  # few distinct weights: ties at every cut
    a = sp.csr_array(_sparse(w, mask))
    edges = sorted(((-w[u, v], u, v) for u, v in zip(*np.nonzero(np.triu(mask, 1)))))
    for count in (1, 7, 64, len(edges) + 5):
        u, v = top_edges(a.indptr.astype(np.int64), a.indices.astype(np.int64), a.data, count)
        assert list(zip(u.tolist(), v.tolist())) == [(int(x), int(y)) for _, x, y in edges[:count]]


def _random_sparse_with_planted_clique(n: int, m: int, size: int, heavy: float, seed: int) -> tuple[sp.csr_array, list[int]]:
    rng = np.random.default_rng(seed)
    r, c = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = r != c
    a = sp.coo_array((rng.uniform(0, 1, keep.sum()), (r[keep], c[keep])), shape=(n, n)).tocsr()
    a = sp.csr_array(sp.triu(a, 1))
    planted = sorted(rng.choice(n, size, replace=False).tolist())
    a = a.tolil()
    for i, x in enumerate(planted):
        for y in planted[i + 1:]:
            a[x, y] = heavy
    a = sp.csr_array(a)
    return sp.csr_array(a + a.T), planted


def test_general_graph_answer_never_below_the_heaviest_edge():
    # a sparse random graph: the peel alone ends on an arbitrary edge
    a, planted = _random_sparse_with_planted_clique(20_000, 100_000, 6, 2.0, 0)
    p = mewcp.as_problem(a)
    heaviest = float(p.data.max())
    sol = mewcp.solve(p, 20, "ehgp", size="at_most")
    assert sol.found and mewcp.is_clique(p, sol.indices)
    assert sol.weight >= heaviest
    assert sorted(sol.indices.tolist()) == planted and sol.weight == pytest.approx(15 * 2.0)
    exact = mewcp.solve(p, 6, "ehgp")
    assert exact.found and sorted(exact.indices.tolist()) == planted
    b, _ = _random_sparse_with_planted_clique(20_000, 100_000, 2, 1.5, 1)  # no heavy clique beyond an edge
    q = mewcp.as_problem(b)
    assert mewcp.solve(q, 20, "ehgp", size="at_most").weight >= float(q.data.max())


def test_peel_interrupted_by_the_time_limit_returns_the_grown_clique(monkeypatch):
    from mewcp.solvers import greedy

    a, planted = _random_sparse_with_planted_clique(50_000, 250_000, 5, 2.0, 2)
    p = mewcp.as_problem(a)
    monkeypatch.setattr(greedy, "PEEL_CHUNK", 1000)  # many short peel calls, like a huge graph's
    sol = mewcp.solve(p, 5, "ehgp", size="at_most", time_limit=1e-3)
    assert sol.message == "time limit reached while peeling: the clique grown from the heaviest edges"
    assert sorted(sol.indices.tolist()) == planted and sol.weight >= float(p.data.max())
