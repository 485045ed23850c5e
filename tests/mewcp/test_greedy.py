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


def sparse_reference(w: np.ndarray, mask: np.ndarray) -> tuple[list[int], int]:
    """Peel by (degree in remainder, score in remainder, index), scores kept incrementally.

    Returns the order and the size of the first remainder that is a clique.
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
