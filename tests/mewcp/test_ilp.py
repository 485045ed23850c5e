"""The `ilp` method: agreement with brute force, honest statuses, bounds, formulations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings

import mewcp
from tests.mewcp.test_properties import instances

pytest.importorskip("pulp")
pytest.importorskip("highspy")

BACKENDS = ["highs", "scipy", "cbc"]


@pytest.mark.parametrize("backend", ["highs", "scipy"])
@pytest.mark.parametrize("formulation", ["strong", "plain"])
@settings(max_examples=25)
@given(inst=instances(max_n=10))
def test_agrees_with_brute_force(backend, formulation, inst):
    data, k, size = inst
    best = mewcp.solve(data, k, "brute", size=size)
    sol = mewcp.solve(data, k, "ilp", size=size, backend=backend, formulation=formulation, start="random")
    if best.status is mewcp.Status.INFEASIBLE:
        assert sol.status is mewcp.Status.INFEASIBLE and sol.nodes == ()
        return
    assert sol.status is mewcp.Status.OPTIMAL
    assert sol.weight == pytest.approx(best.weight, abs=1e-6)
    assert sol.bound == sol.weight and sol.gap == 0.0
    assert mewcp.is_clique(data, sol.nodes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_proves_a_small_optimum(backend):
    w = np.random.default_rng(4).normal(size=(9, 9))
    w = np.triu(w, 1) + np.triu(w, 1).T
    for size in ("exact", "at_most"):
        best = mewcp.solve(w, 4, "brute", size=size)
        sol = mewcp.solve(w, 4, "ilp", size=size, backend=backend)
        assert sol.status is mewcp.Status.OPTIMAL
        assert sol.weight == pytest.approx(best.weight, abs=1e-6)



@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", [1e20, 1e250])
def test_weights_beyond_the_solvers_infinite_cost_are_proven(backend, scale):
    """HiGHS takes costs of 1e20 and more as infinite: the objective is scaled by a power of
    two, and the bound scaled back."""
    w = np.random.default_rng(5).normal(size=(8, 8)) * scale
    w = np.triu(w, 1) + np.triu(w, 1).T
    best = mewcp.solve(w, 3, "brute")
    sol = mewcp.solve(w, 3, "ilp", backend=backend)
    assert sol.status is mewcp.Status.OPTIMAL
    assert sol.weight == pytest.approx(best.weight, rel=1e-9) and sol.bound == sol.weight
    path = sp.csr_array(np.eye(3, k=1) + np.eye(3, k=-1)) * scale
    assert mewcp.solve(path, 3, "ilp", backend=backend).status is mewcp.Status.INFEASIBLE


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_time_limit_beyond_the_os_timers_is_no_limit(backend):
    """time_limit=1e300 is valid; before, the guard's pipe poll raised 'OverflowError: timestamp too large'."""
    w = np.abs(np.arange(6.0)[:, None] - np.arange(6.0))
    sol = mewcp.solve(w, 3, "ilp", time_limit=1e300, backend=backend)
    assert sol.status is mewcp.Status.OPTIMAL and sol.weight == mewcp.solve(w, 3, "brute").weight


@pytest.mark.parametrize("backend", BACKENDS)
def test_infeasible_when_no_clique_of_size_k(backend):
    cycle = sp.csr_array(np.roll(np.eye(7), 1, axis=1) + np.roll(np.eye(7), -1, axis=1))
    sol = mewcp.solve(cycle, 3, "ilp", backend=backend, start="random")
    assert sol.status is mewcp.Status.INFEASIBLE
    assert "infeasible" in sol.message


@pytest.mark.parametrize("backend", ["highs", "scipy"])
def test_a_time_limited_run_is_never_optimal(backend):
    p = mewcp.read("instances/mdplib/GKD-b/GKD-b_16_n50_m15.txt")
    # a given start (not a heuristic that may compile first) leaves the solver the whole second
    sol = mewcp.solve(p, method="ilp", backend=backend, formulation="plain", time_limit=1.0,
                      start=list(range(15)))
    assert sol.status is mewcp.Status.FEASIBLE
    if backend == "highs":  # its dual bound is streamed from the solver as it improves
        assert sol.bound is not None and sol.bound > sol.weight and sol.gap > 0
    else:  # scipy reports nothing until it returns; a run stopped from outside has no bound
        assert sol.bound is None or sol.bound > sol.weight
    assert sol.runtime < 1.0 + 2.0  # generous: the machine may be shared


def test_the_warm_start_is_kept_when_not_improved():
    p = mewcp.read("instances/mdplib/GKD-b/GKD-b_16_n50_m15.txt")
    start = mewcp.solve(p, method="tabu", seed=0)
    sol = mewcp.solve(p, method="ilp", backend="scipy", formulation="plain", time_limit=0.3, start=start.nodes)
    assert sol.weight >= start.weight - 1e-9


def test_option_errors():
    w = np.ones((4, 4))
    with pytest.raises(ValueError, match="backend must be one of 'highs', 'cbc', 'scipy'; got 'gurobi'"):
        mewcp.solve(w, 2, "ilp", backend="gurobi")
    with pytest.raises(ValueError, match="formulation must be 'strong' or 'plain'; got 'tight'"):
        mewcp.solve(w, 2, "ilp", formulation="tight")


def test_listed_as_available():
    ilp = next(m for m in mewcp.methods() if m.name == "ilp")
    assert ilp.available and ilp.kind == "proven" and ilp.extra == "ilp"


@pytest.mark.parametrize("backend", ["highs", "scipy"])
def test_the_time_limit_holds_on_a_large_model(backend):
    """A 300-vertex complete graph: 45,000 y columns; building and solving stay inside the limit."""
    w = np.random.default_rng(0).uniform(0, 10, size=(300, 300))
    w = np.triu(w, 1) + np.triu(w, 1).T
    start = list(range(30))
    sol = mewcp.solve(w, 30, "ilp", backend=backend, time_limit=1.0, start=start)
    assert sol.status is mewcp.Status.FEASIBLE
    assert sol.weight >= mewcp.objective(w, start) - 1e-9  # never worse than the start
    assert sol.runtime < 1.0 + 3.0  # generous: the machine may be shared


def test_a_limit_spent_before_the_model_is_built_returns_the_start_without_a_bound():
    w = np.random.default_rng(1).uniform(0, 10, size=(40, 40))
    w = np.triu(w, 1) + np.triu(w, 1).T
    sol = mewcp.solve(w, 5, "ilp", time_limit=1e-9, start=[0, 1, 2, 3, 4])
    assert sol.status is mewcp.Status.FEASIBLE and sol.nodes == (0, 1, 2, 3, 4)
    assert sol.bound is None and "before the model was built" in sol.message


@pytest.mark.parametrize("backend", ["highs", "scipy"])
def test_a_limited_run_after_an_unlimited_one_still_proves(backend):
    """The limited run is forked; HiGHS's worker threads from the first solve must not hang it."""
    p = mewcp.read("instances/mdplib/GKD-a/GKD-a_25_n10_m8.txt")
    first = mewcp.solve(p, method="ilp", backend=backend)
    sol = mewcp.solve(p, method="ilp", backend=backend, time_limit=60)
    assert first.status is sol.status is mewcp.Status.OPTIMAL
    assert sol.weight == pytest.approx(first.weight) and sol.runtime < 30


def test_a_model_too_big_is_refused_before_its_non_edges_are_listed() -> None:
    # a 200,000-vertex path: listing its non-edges (size="at_most") took an n x n boolean matrix, 37 GiB,
    # and failed with numpy's MemoryError instead of the size refusal
    n = 200_000
    ring = sp.csr_array((np.ones(n - 1), (np.arange(n - 1), np.arange(1, n))), shape=(n, n))
    with pytest.raises(ValueError, match=r"^method='ilp' would build a model of about [\d,]+ rows and columns for "
                                         r"n=\d+, [\d,]+ edges; its limit is 3,000,000 \(use a heuristic\)$"):
        mewcp.solve(ring + ring.T, 2, "ilp", size="at_most", time_limit=5, start="random")
