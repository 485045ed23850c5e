"""local_search, tabu, memetic and pls: certificates, agreement with brute force, limits, seeds."""

from __future__ import annotations

import itertools
import time
from fractions import Fraction
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import mewcp
from mewcp.solvers import local_search as ls
from mewcp.solvers.brute import brute_subset_count
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


def test_memetic_pool_larger_than_the_search_can_fill_ends_by_patience():
    """A pool the instance cannot fill with distinct sets (every start finds the optimum):
    the filling ends after ``patience`` improved starts in a row without improvement
    instead of trying 3 x pop_size starts (which hung at large sizes)."""
    rng = np.random.default_rng(7)
    w = random_symmetric(9, rng)
    best = mewcp.solve(w, 3, "brute")
    sol = mewcp.solve(w, 3, "memetic", seed=0, pop_size=ls.MAX_POP_SIZE, max_stall=20, patience=5)
    assert sol.weight == pytest.approx(best.weight, abs=1e-9)
    assert sol.n_iter < 3 * ls.MAX_POP_SIZE * 20  # far fewer starts than the cap on attempts allows
    assert "in a row without improvement" in sol.message


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
    with pytest.raises(ValueError, match=r"^start must be vertex indices, ints in \[0, 8\); got float 1\.0$"):
        mewcp.solve(w, 3, "tabu", start=[0, 1.0, 2])
    g = _sparse(w, np.array([[i != j and (i + j) % 3 != 0 for j in range(8)] for i in range(8)]))
    with pytest.raises(ValueError, match="start must be a clique: some of its vertices are not adjacent"):
        mewcp.solve(g, 2, "local_search", start=[1, 2])
    with pytest.raises(ValueError, match="strategy must be 'best' or 'first'; got 'worst'"):
        mewcp.solve(w, 3, "local_search", strategy="worst")
    with pytest.raises(ValueError, match="tenure must be a positive integer or None; got 0"):
        mewcp.solve(w, 3, "tabu", tenure=0)
    for bad in (1, None, 2.5, True, ls.MAX_POP_SIZE + 1, 10**12):
        with pytest.raises(ValueError, match=f"pop_size must be an integer from 2 to {ls.MAX_POP_SIZE}; got {bad!r}"):
            mewcp.solve(w, 3, "memetic", pop_size=bad)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=f"opposition_every must be a positive integer or None; got {bad!r}"):
            mewcp.solve(w, 3, "memetic", opposition_every=bad)
    with pytest.raises(TypeError, match="target must be a finite number or None; got str"):
        mewcp.solve(w, 3, "tabu", target="high")
    for name in ("tenure", "max_stall", "strength"):  # before: numba's "OverflowError: int too big to convert"
        with pytest.raises(ValueError, match=f"^{name} must be a positive integer of at most 2,147,483,647 or None; "
                                             f"got {2**63}$"):
            mewcp.solve(w, 3, "tabu", **{name: 2**63})
    with pytest.raises(ValueError, match="^tenure must be a positive integer of at most 2,147,483,647 or None"):
        mewcp.solve(w, 3, "memetic", tenure=10**30)
    assert mewcp.solve(w, 3, "tabu", tenure=2**31 - 1, max_stall=2**31 - 1, seed=0, max_iters=200).found
    for method in ("local_search", "tabu", "memetic", "pls"):  # before: "unsupported format string passed to Fraction"
        sol = mewcp.solve(w, 3, method, target=Fraction(1, 3), seed=0)
        assert sol.message == "reached the target value 0.3333333333", method
    sol = mewcp.solve(w, 3, "tabu", start=[5, 6, 7], max_iters=1)
    assert sol.trace[0][1] == pytest.approx(mewcp.objective(w, [5, 6, 7]))
    assert mewcp.solve(w, 3, "local_search", start="brute").weight == mewcp.solve(w, 3, "brute").weight


def test_k_equal_n_and_k_one():
    w = np.random.default_rng(1).uniform(size=(6, 6))
    w = np.triu(w, 1) + np.triu(w, 1).T
    for method in METAHEURISTICS:
        every = mewcp.solve(w, 6, method)
        assert every.size == 6 and every.status is mewcp.Status.OPTIMAL  # the only set of 6 vertices
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


def _pool_admit_reference(pool, child, value, capacity, beta=0.6):
    """OBMA's pool update as `_pool_admit` states it, with distances from Python sets."""
    child = np.sort(child)
    if any(np.array_equal(m, child) for m, _ in pool):
        return False
    if len(pool) < capacity:
        pool.append((child, value))
        return True
    cand = pool + [(child, value)]
    sets = [set(m.tolist()) for m, _ in cand]
    dist = np.array([min(len(a ^ b) for j, b in enumerate(sets) if j != i) for i, a in enumerate(sets)], float)
    vals = np.array([v for _, v in cand])
    def norm(x):
        return (x - x.min()) / (x.max() - x.min() + 1.0)

    worst = int(np.argmin(beta * norm(vals) + (1 - beta) * norm(dist)))
    if worst == len(pool):
        return False
    pool[worst] = (child, value)
    return True


def test_pool_admit_matches_the_set_reference():
    # sets of one size (complete graphs) and of many (cliques), values with ties
    from mewcp.solvers.local_search import _pool_admit

    rng = np.random.default_rng(0)
    for trial in range(60):
        n, capacity = int(rng.integers(5, 40)), int(rng.integers(2, 8))
        pool: list = []
        ref: list = []
        for _ in range(30):
            k = int(rng.integers(1, n)) if trial % 2 else min(5, n - 1)
            child, value = rng.choice(n, k, replace=False), float(rng.integers(0, 5))
            assert _pool_admit(pool, child.copy(), value, capacity) == _pool_admit_reference(ref, child, value, capacity)
            assert [(m.tolist(), v) for m, v in pool] == [(m.tolist(), v) for m, v in ref]


def test_tabu_brings_random_sets_when_its_archive_has_converged(monkeypatch):
    # a small instance: every restart ends on a set the archive holds, so after ELITE_SIZE
    # refusals in a row a random set restarts the search (no endless backbone children)
    calls = []
    original = ls._SwapEngine.random_start
    monkeypatch.setattr(ls._SwapEngine, "random_start", lambda self: calls.append(1) or original(self))
    w = random_symmetric(14, np.random.default_rng(3))
    sol = mewcp.solve(w, 4, "tabu", seed=0, start="random", max_stall=20, patience=3 * ls.ELITE_SIZE)
    assert sol.weight == pytest.approx(mewcp.solve(w, 4, "brute").weight)
    assert len(calls) > 1 + ls.ELITE_SEEDS + 1


# ------------------------------------------------------------- certificates: no run hangs on a tiny graph

CERTIFYING = ["tabu", "memetic", "pls"]
W3 = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0.0]])
#: Complete, 4 vertices: the 3 heaviest weights sum to 8, the best triangle ({0, 1, 2}) weighs 6.
W4 = np.array([[0, 3, 2, 1], [3, 0, 1, 1], [2, 1, 0, 3], [1, 1, 3, 0.0]])
#: One triangle (weight 4) and a heavy pendant edge: the bound (12) is not tight, and the memetic
#: pool can hold only one set of 3 vertices.
PENDANT = sp.csr_array(np.array([[0, 1, 2, 0], [1, 0, 1, 0], [2, 1, 0, 9], [0, 0, 9, 0.0]]))


def _planted_clique() -> nx.Graph:
    g = nx.gnp_random_graph(40, 0.2, seed=1)
    g.add_edges_from(itertools.combinations(range(6), 2))
    return g


def _timed(data, k, method, **kwargs):
    mewcp.solve(data, k, method, seed=0, max_iters=50, size=kwargs.get("size", "exact"))  # compile outside
    t0 = time.perf_counter()
    sol = mewcp.solve(data, k, method, seed=0, **kwargs)
    return sol, time.perf_counter() - t0


@pytest.mark.parametrize("size", ["exact", "at_most"])
@pytest.mark.parametrize("method", CERTIFYING)
def test_a_huge_time_limit_ends_at_the_upper_bound(method, size):
    for data, k in ((W3, 2), (_planted_clique(), 6)):  # the heaviest edge; a unit-weight k-clique
        best = mewcp.solve(data, k, "brute", size=size)
        sol, elapsed = _timed(data, k, method, size=size, time_limit=1e300)
        assert elapsed < 30
        assert sol.status is mewcp.Status.OPTIMAL and sol.weight == pytest.approx(best.weight)
        assert sol.message == f"reached the upper bound {best.weight:.10g} on any clique's weight: optimal"
        assert (sol.bound, sol.gap) == (sol.weight, 0.0)


@pytest.mark.parametrize("size", ["exact", "at_most"])
@pytest.mark.parametrize("method", CERTIFYING)
def test_a_huge_time_limit_on_a_tiny_graph_ends_by_enumeration(method, size):
    exact = size == "exact"
    for data in (W4, PENDANT):
        best = mewcp.solve(data, 3, "brute", size=size)
        for limits in ({"time_limit": 1e9}, {"max_iters": 10**15}):  # no patience either way
            sol, elapsed = _timed(data, 3, method, size=size, **limits)
            assert elapsed < 30
            assert sol.status is mewcp.Status.OPTIMAL and sol.weight == pytest.approx(best.weight)
            assert sol.message == "certified optimal by enumerating every clique"
            assert sol.n_iter >= brute_subset_count(4, 3, exact)  # it searched before it enumerated
            assert (sol.bound, sol.gap) == (sol.weight, 0.0)
    none, elapsed = _timed(nx.cycle_graph(5), 3, method, time_limit=1e9)
    assert elapsed < 30 and none.status is mewcp.Status.INFEASIBLE
    assert none.message == "certified by enumerating every clique: the graph has no clique of size 3"


@pytest.mark.parametrize("method", CERTIFYING)
def test_a_tiny_graph_without_a_time_limit_is_solved_by_the_search_itself(method):
    # the default patience ends the run first: the comparisons with brute force test the heuristic
    sol = mewcp.solve(W4, 3, method, seed=0)
    assert sol.status is mewcp.Status.FEASIBLE and sol.weight == 6.0
    assert "without improvement" in sol.message


@pytest.mark.parametrize("method", CERTIFYING)
def test_a_larger_instance_still_runs_to_its_time_limit(method):
    w = random_symmetric(60, np.random.default_rng(5))  # C(60, 10) = 7.5e10 sets: never enumerated
    sol, elapsed = _timed(w, 10, method, time_limit=0.5)
    assert sol.status is mewcp.Status.FEASIBLE and sol.message == "time limit reached"
    assert 0.5 <= elapsed < 5 and sol.bound is None and sol.gap is None


def test_the_enumeration_certificate_keeps_the_heavier_answer_and_its_conditions():
    from mewcp.solvers.base import Deadline
    from mewcp.solvers.local_search import DEFAULT_PATIENCE, _certify_by_enumeration, _Incumbent

    p = mewcp.as_problem(W4)
    inc = _Incumbent(Deadline(None), None, None)
    inc.offer(np.array([0, 1, 3]), 5.0)  # below the optimum, 6
    inc.iterations = 4  # C(4, 3): exactly the sets brute visits
    assert _certify_by_enumeration(p, 3, True, inc, DEFAULT_PATIENCE - 1, None) is None  # not idle long enough
    assert _certify_by_enumeration(p, 3, True, inc, DEFAULT_PATIENCE, 50) is None  # a run with patience
    assert _certify_by_enumeration(p, 3, False, inc, DEFAULT_PATIENCE, None) is None  # at most: 14 sets > 4
    out = _certify_by_enumeration(p, 3, True, inc, DEFAULT_PATIENCE, None)
    assert out.status is mewcp.Status.OPTIMAL and out.indices.tolist() == [0, 1, 2]
    assert out.message == "certified optimal by enumerating every clique, which found a heavier one (6 against " \
                          "the search's 5)"
    assert out.n_iter > 4 and out.trace[-1][1] == 6.0  # the search's iterations and the cliques visited
    empty = _Incumbent(Deadline(None), None, None)
    empty.iterations = 10**6
    assert _certify_by_enumeration(p, 3, True, empty, DEFAULT_PATIENCE, None).message.endswith(
        "(6 against none found by the search)")
    expired = _Incumbent(Deadline(1e-9), None, None)
    expired.iterations = 10**6
    assert _certify_by_enumeration(p, 3, True, expired, DEFAULT_PATIENCE, None) is None  # the time limit first


@settings(max_examples=100)
@given(inst=instances(max_n=9))
def test_the_upper_bound_holds_and_is_none_only_without_a_clique(inst):
    from mewcp.solvers.local_search import _upper_bound

    data, k, size = inst
    p = mewcp.as_problem(data)
    if p.n_edges == 0:
        return  # solve answers edgeless graphs itself
    bound = _upper_bound(p, k, size == "exact")
    best = mewcp.solve(p, k, "brute", size=size)
    if bound is None:
        assert size == "exact" and best.status is mewcp.Status.INFEASIBLE
    elif best.found:
        assert best.weight <= bound + 1e-9


def test_the_upper_bound_values(monkeypatch):
    assert ls._upper_bound(mewcp.as_problem(W4), 3, True) == 8.0
    assert ls._upper_bound(mewcp.as_problem(-W4), 3, True) == -3.0  # the 3 least negative
    assert ls._upper_bound(mewcp.as_problem(-W4), 3, False) == 0.0  # a single vertex
    assert ls._upper_bound(mewcp.as_problem(PENDANT), 3, True) == 12.0
    path = mewcp.as_problem(nx.path_graph(3))  # 2 edges: no triangle
    assert ls._upper_bound(path, 3, True) is None and ls._upper_bound(path, 3, False) == 2.0
    mixed = mewcp.as_problem(sp.csr_array(np.array([[0, -1, 2], [-1, 0, 0], [2, 0, 0.0]])))
    assert ls._upper_bound(mixed, 2, True) == 2.0 and ls._upper_bound(mixed, 3, False) == 2.0
    monkeypatch.setattr(ls, "DENSE_BOUND_MAX_N", 3)  # larger complete graphs: m times the heaviest weight
    assert ls._upper_bound(mewcp.as_problem(W4), 3, True) == 9.0
    assert ls._upper_bound(mewcp.as_problem(-W4), 3, True) == -3.0
    assert ls._upper_bound(mewcp.as_problem(-W4), 3, False) == 0.0


def test_kernel_calls_shrink_to_one_slow_iteration() -> None:
    """A kernel call is sized to CHUNK_SECONDS: when one iteration takes longer (PLS on a
    million vertices: tens of ms), calls shrink to a single iteration, so the time limit is
    checked after each (a floor of 8 iterations overshot a 10 s limit by 0.8-1.2 s)."""
    from mewcp.solvers.local_search import CHUNK_SECONDS, _Chunks

    chunks = _Chunks(first=8)
    for _ in range(3):
        size = chunks.start()
        time.sleep(2 * CHUNK_SECONDS * size)  # every iteration takes twice the whole chunk's aim
        chunks.done(size)
    assert chunks.start() == 1
