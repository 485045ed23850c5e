"""Properties every method must keep, on hypothesis-drawn graphs (deterministic profile)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import mewcp
from tests.mewcp.helpers import random_graph

METHODS = ["ehgp", "brute"]


@st.composite
def instances(draw, max_n: int = 9):
    """(data, k, size): complete or sparse, possibly negative weights; no weight ties."""
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.sampled_from([1.0, 0.8, 0.5, 0.25]))
    negative = draw(st.booleans())
    k = draw(st.integers(1, n))
    size = draw(st.sampled_from(["exact", "at_most"]))
    w, mask = random_graph(n, density, np.random.default_rng(seed), negative=negative)
    if density == 1.0:
        return w, k, size
    rows, cols = np.nonzero(mask)
    return sp.csr_array((w[rows, cols], (rows, cols)), shape=(n, n)), k, size


@pytest.mark.parametrize("method", METHODS)
@given(inst=instances())
def test_feasible_and_weight_consistent(method, inst):
    data, k, size = inst
    sol = mewcp.solve(data, k, method, size=size)
    if sol.found:
        assert mewcp.is_clique(data, sol.nodes)
        assert (sol.size == k) if size == "exact" else (1 <= sol.size <= k)
        assert sol.weight == pytest.approx(mewcp.objective(data, sol.nodes), abs=1e-12)
        assert list(sol.indices) == sorted(sol.indices)
    else:
        assert sol.nodes == () and np.isnan(sol.weight)


@given(inst=instances())
def test_heuristic_never_beats_brute_and_at_most_never_below_exact(inst):
    data, k, size = inst
    best = mewcp.solve(data, k, "brute", size=size)
    sol = mewcp.solve(data, k, "ehgp", size=size)
    if sol.found:
        assert best.found and sol.weight <= best.weight + 1e-9
    if size == "exact" and best.found:
        assert mewcp.solve(data, k, "brute", size="at_most").weight >= best.weight - 1e-9


@pytest.mark.parametrize("method", METHODS)
@given(inst=instances(), perm_seed=st.integers(0, 1000))
def test_permutation_invariance(method, inst, perm_seed):
    data, k, size = inst
    dense = data.toarray() if sp.issparse(data) else data
    n = dense.shape[0]
    perm = np.random.default_rng(perm_seed).permutation(n)
    permuted = dense[np.ix_(perm, perm)]
    if sp.issparse(data):
        mask = (data != 0).toarray()[np.ix_(perm, perm)]  # random weights are never exactly 0
        rows, cols = np.nonzero(mask)
        permuted = sp.csr_array((permuted[rows, cols], (rows, cols)), shape=(n, n))
    a = mewcp.solve(data, k, method, size=size)
    b = mewcp.solve(permuted, k, method, size=size)
    assert a.status == b.status
    if a.found:
        assert b.weight == pytest.approx(a.weight, abs=1e-9)
        if a.size >= 2:  # continuous random weights: no ties beyond the weight-0 single vertices
            assert sorted(perm[b.indices].tolist()) == a.indices.tolist()


@pytest.mark.parametrize("method", METHODS)
@given(inst=instances(), scale=st.floats(0.1, 10), shift=st.floats(-5, 5))
def test_affine_invariance_of_the_exact_size_optimum(method, inst, scale, shift):
    """w -> a*w + b (a > 0, on the edges) moves every k-clique's weight by the same amount."""
    data, k, _ = inst
    if sp.issparse(data):
        t = data.copy()
        t.data = scale * t.data + shift
    else:
        t = scale * data + shift
        np.fill_diagonal(t, 0.0)
    a = mewcp.solve(data, k, method)
    b = mewcp.solve(t, k, method)
    assert a.status == b.status
    if a.found:
        assert b.weight == pytest.approx(scale * a.weight + shift * k * (k - 1) / 2, rel=1e-9, abs=1e-9)
        if method == "brute" and k >= 2:
            assert b.indices.tolist() == a.indices.tolist()


# The search methods and ilp: fewer, small examples (each solve runs a search or a MILP).
SEARCH = {"local_search": {"max_iters": 200}, "tabu": {"max_iters": 300}, "memetic": {"max_iters": 300},
          "ilp": {"start": None}}  # the MILP alone (its default start runs tabu first)
SEARCH_METHODS = [m for m in SEARCH if next(x for x in mewcp.methods() if x.name == m).available]


@pytest.mark.parametrize("method", SEARCH_METHODS)
@settings(max_examples=20)
@given(inst=instances(max_n=8), seed=st.integers(0, 2**16))
def test_search_methods_are_certified_reproducible_and_never_above_brute(method, inst, seed):
    data, k, size = inst
    best = mewcp.solve(data, k, "brute", size=size)
    sol = mewcp.solve(data, k, method, size=size, seed=seed, **SEARCH[method])
    if sol.found:
        assert mewcp.is_clique(data, sol.nodes)
        assert (sol.size == k) if size == "exact" else (1 <= sol.size <= k)
        assert sol.weight == pytest.approx(mewcp.objective(data, sol.nodes), abs=1e-12)
        assert best.found and sol.weight <= best.weight + 1e-9
    else:
        assert sol.nodes == () and np.isnan(sol.weight)
        assert sol.status is not mewcp.Status.INFEASIBLE or best.status is mewcp.Status.INFEASIBLE
    if sol.status is mewcp.Status.OPTIMAL:  # a proof must agree with brute force
        assert sol.weight == pytest.approx(best.weight, abs=1e-9)
    if method == "ilp":  # exact and small: it proves the optimum or the infeasibility
        assert sol.status is best.status
    again = mewcp.solve(data, k, method, size=size, seed=seed, **SEARCH[method])
    assert again.indices.tolist() == sol.indices.tolist() and again.status is sol.status
