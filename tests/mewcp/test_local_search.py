"""local_search, tabu and memetic: certificates, agreement with brute force, limits, seeds."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import mewcp
from tests.mewcp.helpers import random_graph, random_symmetric
from tests.mewcp.test_properties import instances

METAHEURISTICS = ["local_search", "tabu", "memetic", "pls"]
INSTANCES = Path(__file__).resolve().parents[2] / "instances"


def _sparse(w: np.ndarray, mask: np.ndarray) -> sp.csr_array:
    rows, cols = np.nonzero(mask)
    return sp.csr_array((w[rows, cols], (rows, cols)), shape=w.shape)


@pytest.mark.parametrize("method", METAHEURISTICS)
@given(inst=instances(max_n=10))
def test_certified_and_never_above_the_optimum(method, inst):
    data, k, size = inst
    best = mewcp.solve(data, k, "brute", size=size)
    sol = mewcp.solve(data, k, method, size=size, seed=0, max_iters=2000)
    if sol.found:
        assert best.found and sol.weight <= best.weight + 1e-9
        assert mewcp.is_clique(data, sol.nodes)
        assert sol.size == k if size == "exact" else 1 <= sol.size <= k
    elif sol.status is mewcp.Status.INFEASIBLE:  # proven (a graph without edges): brute agrees
        assert best.status is mewcp.Status.INFEASIBLE
    else:
        assert sol.status is mewcp.Status.NO_SOLUTION


@pytest.mark.parametrize("method", ["tabu", "memetic", "pls"])
@pytest.mark.parametrize("seed", range(8))
def test_finds_the_optimum_on_small_graphs(method, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 13))
    k = int(rng.integers(2, n - 1))
    size = ["exact", "at_most"][seed % 2]
    w, mask = random_graph(n, [1.0, 0.7][seed % 4 // 2], rng, negative=seed % 3 == 0)
    data = w if mask.all() or seed % 4 < 2 else _sparse(w, mask)
    best = mewcp.solve(data, k, "brute", size=size)
    sol = mewcp.solve(data, k, method, size=size, seed=seed)
    assert sol.found == best.found
    if best.found:
        assert sol.weight == pytest.approx(best.weight, abs=1e-9)


@pytest.mark.parametrize("every", [1, 2])
@pytest.mark.parametrize("seed", range(4))
def test_memetic_finds_the_optimum_at_any_opposition_frequency(every, seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(10, 15))
    k = int(rng.integers(3, n - 2))
    w = random_symmetric(n, rng)
    best = mewcp.solve(w, k, "brute")
    sol = mewcp.solve(w, k, "memetic", seed=seed, opposition_every=every, max_stall=20, patience=20)
    assert sol.weight == pytest.approx(best.weight, abs=1e-9)


@pytest.mark.parametrize("method", METAHEURISTICS)
def test_same_seed_same_answer(method):
    p = mewcp.read(INSTANCES / "mdplib" / "MDG-a" / "MDG-a_1_n500_m50.txt")
    a = mewcp.solve(p, method=method, seed=3, max_iters=3000, start="random")
    b = mewcp.solve(p, method=method, seed=3, max_iters=3000, start="random")
    assert a.indices.tolist() == b.indices.tolist() and a.weight == b.weight


@pytest.mark.parametrize("method", ["tabu", "memetic"])
def test_time_limit_returns_promptly(method):
    p = mewcp.read(INSTANCES / "mdplib" / "MDG-a" / "MDG-a_2_n500_m50.txt")
    # compile every kernel outside the timed call (a time limit cannot interrupt
    # numba's first-call compilation): short tabu runs that perturb, and a memetic run
    # whose pool holds distinct sets, so that it breeds
    w = np.random.default_rng(0).uniform(0, 10, (200, 200))
    w = np.triu(w, 1) + np.triu(w, 1).T
    mewcp.solve(w, 20, "tabu", seed=0, max_stall=5, patience=2)
    mewcp.solve(w, 20, "memetic", seed=0, max_stall=5, patience=2)
    t0 = time.perf_counter()
    sol = mewcp.solve(p, method=method, seed=0, time_limit=0.5, target=1e18)
    elapsed = time.perf_counter() - t0
    assert sol.found and sol.message == "time limit reached"
    assert 0.5 <= elapsed < 0.75
    times = [t for t, _ in sol.trace]
    values = [v for _, v in sol.trace]
    assert times == sorted(times) and values == sorted(values) and len(set(values)) == len(values)
    assert values[-1] == pytest.approx(sol.weight)


@pytest.mark.parametrize("method", METAHEURISTICS)
def test_iteration_cap_and_target(method):
    p = mewcp.read(INSTANCES / "mdplib" / "GKD-b" / "GKD-b_11_n50_m5.txt")
    capped = mewcp.solve(p, method=method, seed=1, max_iters=7, start="random")
    assert capped.n_iter <= 7 or method == "memetic"  # memetic counts whole tabu runs
    reached = mewcp.solve(p, method=method, seed=1, target=1795.20603 - 1e-4, time_limit=5)
    if method != "local_search":
        assert reached.message == "reached the target value 1795.20593"
        assert reached.weight == pytest.approx(1795.20603, abs=1e-4)


@pytest.mark.parametrize("size", ["exact", "at_most"])
@pytest.mark.parametrize("method", METAHEURISTICS)
def test_cliques_on_sparse_random_graphs(method, size):
    rng = np.random.default_rng(11)
    w, mask = random_graph(150, 0.3, rng, negative=size == "at_most")
    data = _sparse(w, mask)
    for k in (3, 6):
        sol = mewcp.solve(data, k, method, size=size, seed=2, time_limit=0.3)
        if method == "local_search" and size == "exact" and not sol.found:
            continue  # a local optimum below k vertices: local search does not restart
        assert sol.found
        assert mewcp.is_clique(data, sol.nodes)
        assert sol.size == k if size == "exact" else 1 <= sol.size <= k
        assert sol.weight == pytest.approx(mewcp.objective(data, sol.nodes))


def test_large_sparse_graph_uses_neighbourhoods():
    rng = np.random.default_rng(0)
    n, m = 50_000, 250_000
    rows, cols = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = rows != cols
    a = sp.coo_array((rng.uniform(0.1, 1, keep.sum()), (rows[keep], cols[keep])), shape=(n, n)).tocsr()
    a = a + a.T
    p = mewcp.as_problem(a)
    assert not p.is_complete
    sol = mewcp.solve(p, 4, "tabu", size="at_most", seed=0, time_limit=0.5)
    assert sol.found and mewcp.is_clique(p, sol.indices)
    assert sol.weight >= mewcp.solve(p, 4, "ehgp", size="at_most").weight - 1e-12


@given(inst=instances(max_n=12), seed=st.integers(0, 100))
def test_local_search_never_ends_below_its_start(inst, seed):
    data, k, size = inst
    start = mewcp.solve(data, k, "ehgp", size=size)
    if not start.found:
        return
    sol = mewcp.solve(data, k, "local_search", size=size, start=start.nodes, seed=seed)
    assert sol.weight >= start.weight - 1e-9


def test_local_search_improves_on_ehgp_below_the_best_known():
    p = mewcp.read(INSTANCES / "mdplib" / "MDG-a" / "MDG-a_1_n500_m50.txt")
    greedy = mewcp.solve(p)
    improved = mewcp.solve(p, method="local_search")
    assert improved.weight > greedy.weight
    assert improved.trace[0][1] == pytest.approx(greedy.weight)
    first = mewcp.solve(p, method="local_search", strategy="first")
    assert first.weight > greedy.weight


def test_start_option_validation():
    w = np.random.default_rng(0).uniform(size=(8, 8))
    w = np.triu(w, 1) + np.triu(w, 1).T
    with pytest.raises(ValueError, match="start must have k = 3 vertices for size='exact'; got 2"):
        mewcp.solve(w, 3, "tabu", start=[0, 1])
    with pytest.raises(ValueError, match="start must have between 1 and k = 3 vertices; got 4"):
        mewcp.solve(w, 3, "tabu", size="at_most", start=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="start must be 'random', a method name other than 'tabu'"):
        mewcp.solve(w, 3, "tabu", start="tabu")
    with pytest.raises(ValueError, match=r"start must be vertex indices in \[0, 8\); got 9"):
        mewcp.solve(w, 3, "tabu", start=[0, 1, 9])
    g = _sparse(w, np.array([[i != j and (i + j) % 3 != 0 for j in range(8)] for i in range(8)]))
    with pytest.raises(ValueError, match="start must be a clique: some of its vertices are not adjacent"):
        mewcp.solve(g, 2, "local_search", start=[1, 2])
    with pytest.raises(ValueError, match="strategy must be 'best' or 'first'; got 'worst'"):
        mewcp.solve(w, 3, "local_search", strategy="worst")
    with pytest.raises(ValueError, match="tenure must be a positive integer or None; got 0"):
        mewcp.solve(w, 3, "tabu", tenure=0)
    with pytest.raises(ValueError, match="pop_size must be at least 2; got 1"):
        mewcp.solve(w, 3, "memetic", pop_size=1)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=f"opposition_every must be a positive integer or None; got {bad!r}"):
            mewcp.solve(w, 3, "memetic", opposition_every=bad)
    with pytest.raises(TypeError, match="target must be a finite number or None; got str"):
        mewcp.solve(w, 3, "tabu", target="high")
    sol = mewcp.solve(w, 3, "tabu", start=[5, 6, 7], max_iters=1)
    assert sol.trace[0][1] == pytest.approx(mewcp.objective(w, [5, 6, 7]))
    assert mewcp.solve(w, 3, "local_search", start="brute").weight == mewcp.solve(w, 3, "brute").weight


def test_k_equal_n_and_k_one():
    w = np.random.default_rng(1).uniform(size=(6, 6))
    w = np.triu(w, 1) + np.triu(w, 1).T
    for method in METAHEURISTICS:
        assert mewcp.solve(w, 6, method).size == 6
        assert mewcp.solve(w, 1, method, seed=0).size == 1


def test_pool_admit_says_whether_the_set_joined():
    # tabu's restarts use this answer: 10 refusals in a row bring a random set
    from mewcp.solvers.local_search import _pool_admit

    pool: list = []
    assert _pool_admit(pool, np.array([3, 1, 2]), 5.0, 2)
    assert not _pool_admit(pool, np.array([1, 2, 3]), 5.0, 2)  # the same set, in another order
    assert _pool_admit(pool, np.array([4, 5, 6]), 6.0, 2)
    assert not _pool_admit(pool, np.array([1, 2, 4]), 1.0, 2)  # worst value and least distance
    assert len(pool) == 2 and {tuple(m) for m, _ in pool} == {(1, 2, 3), (4, 5, 6)}
    assert _pool_admit(pool, np.array([7, 8, 9]), 9.0, 2)  # best and farthest: replaces a member
    assert (7, 8, 9) in {tuple(m) for m, _ in pool}


def test_tabu_brings_random_sets_when_its_archive_has_converged(monkeypatch):
    # a small instance: every restart ends on a set the archive holds, so after ELITE_SIZE
    # refusals in a row a random set restarts the search (no endless backbone children)
    from mewcp.solvers import local_search as ls

    calls = []
    original = ls._SwapEngine.random_start
    monkeypatch.setattr(ls._SwapEngine, "random_start", lambda self: calls.append(1) or original(self))
    w = random_symmetric(14, np.random.default_rng(3))
    sol = mewcp.solve(w, 4, "tabu", seed=0, start="random", max_stall=20, patience=3 * ls.ELITE_SIZE)
    assert sol.weight == pytest.approx(mewcp.solve(w, 4, "brute").weight)
    assert len(calls) > 1 + ls.ELITE_SEEDS + 1
