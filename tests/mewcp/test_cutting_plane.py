"""The `cutting_plane` method: proven optima for negative-type weights, refusals, statuses."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import mewcp
from mewcp.solvers.base import Deadline
from mewcp.solvers.cutting_plane import _lp_rounds, _Model, _Run, negative_type

pytest.importorskip("highspy")

INSTANCES = Path(__file__).resolve().parents[2] / "instances" / "mdplib"


def _points(seed: int, n: int, d: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 10, size=(n, d))


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cityblock"])
@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_brute_force(metric: str, seed: int) -> None:
    problem = mewcp.from_points(_points(seed, 11, 2 + seed), metric)
    for k in (2, 4, 6):
        for size in ("exact", "at_most"):
            truth = mewcp.solve(problem, k, "brute", size=size)
            sol = mewcp.solve(problem, k, "cutting_plane", size=size, seed=seed)
            assert sol.status is mewcp.Status.OPTIMAL, sol.message
            assert sol.weight == pytest.approx(truth.weight, rel=1e-9)
            assert sol.size == k  # no negative weight: the best set has k vertices
            assert sol.bound >= sol.weight and sol.gap <= 1e-6


def test_agrees_with_ilp_and_published_optimum() -> None:
    problem = mewcp.read(INSTANCES / "GKD-a" / "GKD-a_25_n10_m8.txt")
    sol = mewcp.solve(problem, 8, "cutting_plane", seed=0)
    ilp = mewcp.solve(problem, 8, "ilp", seed=0)
    assert sol.status is ilp.status is mewcp.Status.OPTIMAL
    assert sol.weight == pytest.approx(ilp.weight, rel=1e-9)
    assert sol.weight == pytest.approx(3612.46857, rel=1e-9)  # MDPLIB, proven by enumeration


def test_trivial_sizes_are_optimal() -> None:
    problem = mewcp.from_points(_points(3, 6, 2))
    assert mewcp.solve(problem, 1, "cutting_plane").status is mewcp.Status.OPTIMAL
    full = mewcp.solve(problem, 6, "cutting_plane")
    assert full.status is mewcp.Status.OPTIMAL and full.size == 6


def test_negative_type_check() -> None:
    euclid = mewcp.from_points(_points(4, 30, 3)).dense
    good = negative_type(euclid)
    assert good.ok and good.smallest > 0
    # Squared distances of points in 3 dimensions: B has rank 3, the rest is rounding noise.
    sq = mewcp.from_points(_points(4, 30, 3), "sqeuclidean").dense
    flat = negative_type(sq)
    assert flat.ok and abs(flat.smallest) < 1e-9 * flat.largest
    # |a - b|^3 on the line: v = (1, -2, 1) gives v^T W v = 8 > 0 with sum(v) = 0.
    cubed = np.array([[0, 1, 8], [1, 0, 1], [8, 1, 0.0]])
    assert not negative_type(cubed).ok


def test_refuses_weights_that_are_not_negative_type() -> None:
    cubed = np.abs(np.subtract.outer(np.arange(6.0), np.arange(6.0))) ** 3
    with pytest.raises(ValueError) as info:
        mewcp.solve(cubed, 3, "cutting_plane")
    text = str(info.value)
    assert "negative-type weights" in text
    assert "-1/2 J W J (J = I - 11^T/n) is positive semidefinite up to tol = 1e-06" in text
    assert "smallest eigenvalue is -" in text
    assert "method='ilp'" in text
    random = np.random.default_rng(0).uniform(0, 10, size=(12, 12))
    with pytest.raises(ValueError, match="needs negative-type weights"):
        mewcp.solve((random + random.T) / 2, 4, "cutting_plane")


def test_refuses_incomplete_graphs() -> None:
    graph = nx.path_graph(5)
    with pytest.raises(ValueError, match=r"needs a complete graph .* this graph has 4 of 10 edges"):
        mewcp.solve(graph, 2, "cutting_plane")


def test_tolerance_option() -> None:
    # A planted negative eigenvalue: W' = W + 2t (qq^T - (m1^T + 1m^T)/2), m = q*q, keeps a zero
    # diagonal and gives B' = B - t qq^T; q = B's eigenvector of its smallest eigenvalue on 1-perp.
    w = mewcp.from_points(_points(5, 12, 2)).dense
    j = np.eye(12) - 1 / 12
    eig, vec = np.linalg.eigh(-0.5 * j @ w @ j)
    order = np.argsort(np.abs(vec.sum(axis=0)))  # the ones direction last
    keep = np.sort(order[:-1])
    lam, q = eig[keep[0]], vec[:, keep[0]]
    eps = 1e-3 * eig.max()
    m = q * q
    bent = w + 2 * (lam + eps) * (np.outer(q, q) - 0.5 * (m[:, None] + m[None, :]))
    check = negative_type(bent)
    assert check.smallest == pytest.approx(-eps, rel=1e-6)
    loose = 2 * eps / check.largest
    sol = mewcp.solve(bent, 4, "cutting_plane", tol=loose)  # accepted: cuts lifted to stay valid
    truth = mewcp.solve(bent, 4, "brute")
    # The bound stays valid; the allowance 2 k eps in every cut may leave a gap of that size.
    assert sol.bound >= truth.weight >= sol.weight
    if sol.status is mewcp.Status.FEASIBLE:
        assert sol.bound - sol.weight <= 2 * 4 * eps * 1.01
        assert "allowance for negative curvature (2 k eps = " in sol.message
    with pytest.raises(ValueError, match="needs negative-type weights"):
        mewcp.solve(bent, 4, "cutting_plane", tol=loose / 4)


def test_time_limit_statuses_and_progress() -> None:
    problem = mewcp.read(INSTANCES / "GKD-c" / "GKD-c_1_n500_m50.txt")
    events: list[dict] = []
    sol = mewcp.solve(problem, 50, "cutting_plane", time_limit=3.0, seed=0, progress=events.append)
    assert sol.status is mewcp.Status.FEASIBLE  # not provable in 3 s: the published gap is open
    assert sol.runtime < 3.0 + 2.0
    assert sol.bound > sol.weight and sol.gap == pytest.approx((sol.bound - sol.weight) / sol.weight)
    assert sol.weight <= 19485.18697 * (1 + 1e-9)  # best known value
    assert "stopped: time limit" in sol.message
    bounds = [e["bound"] for e in events]
    assert bounds == sorted(bounds, reverse=True) and bounds[-1] == pytest.approx(sol.bound)
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    # The negative-type check (one eigendecomposition) cannot be interrupted; nothing after it runs late.
    t0 = time.perf_counter()
    negative_type(problem.dense)
    check = time.perf_counter() - t0
    quick = mewcp.solve(problem, 50, "cutting_plane", time_limit=1e-3)
    assert quick.status in (mewcp.Status.NO_SOLUTION, mewcp.Status.FEASIBLE)
    assert quick.runtime < 3 * check + 0.5


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"tol": -1}, ValueError, r"tol must be a number in \[0, 1\); got -1"),
        ({"gap": 2.0}, ValueError, r"gap must be a number in \[0, 1\); got 2.0"),
        ({"starts": -1}, ValueError, "starts must be an integer >= 0; got -1"),
        ({"batch": 1.5}, ValueError, "batch must be an integer >= 0; got 1.5"),
        ({"swaps": -2}, ValueError, "swaps must be an integer >= 0; got -2"),
        ({"fixing": 1}, TypeError, "fixing must be True or False; got 1"),
        ({"progress": 3}, TypeError, "progress must be a callable taking one dict, or None; got int"),
    ],
)
def test_bad_options(options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        mewcp.solve(mewcp.from_points(_points(0, 5, 2)), 2, "cutting_plane", **options)


def test_from_points() -> None:
    p = mewcp.from_points([[0, 0], [3, 4], [6, 8]], labels=["a", "b", "c"], default_k=2)
    sol = mewcp.solve(p, method="cutting_plane")
    assert sol.nodes == ("a", "c") and sol.weight == 10.0
    assert mewcp.from_points([[0, 0], [1, 1]], "cityblock").dense[0, 1] == 2.0
    with pytest.raises(ValueError, match="metric must be one of 'euclidean', 'sqeuclidean', 'cityblock', "
                                         "'chebyshev'; got 'cosine'"):
        mewcp.from_points([[0, 0]], "cosine")
    with pytest.raises(ValueError, match=r"points must be an \(n, d\) array with n >= 1 and d >= 1; got shape \(3,\)"):
        mewcp.from_points([1, 2, 3])
    with pytest.raises(ValueError, match=r"points must have finite coordinates; row 1 is \[nan, 0.0\]"):
        mewcp.from_points([[0, 0], [np.nan, 0]])
    for points, dtype in ((np.array([[0, 1j], [3, 4]]), "complex128"), ([["0", "0"], ["3", "4"]], "<U1")):
        with pytest.raises(TypeError, match=r"^points must be an \(n, d\) array of real numbers \(bool, integer or "
                                            rf"float\); got dtype {dtype}$"):
            mewcp.from_points(points)  # before: the imaginary part dropped (a warning), the strings parsed
    with pytest.raises(ValueError, match="labels must be 2 distinct vertex labels, one per point; got 2 "
                                         r"\(1 distinct\)"):
        mewcp.from_points([[0, 0], [1, 1]], labels=["a", "a"])


@pytest.mark.parametrize("options", [{"fixing": False, "swaps": 0}, {"fixing": True, "swaps": 50, "batch": 2}])
def test_options_agree_with_brute_force(options: dict) -> None:
    problem = mewcp.from_points(_points(11, 14, 3))
    truth = mewcp.solve(problem, 6, "brute")
    sol = mewcp.solve(problem, 6, "cutting_plane", seed=1, **options)
    assert sol.status is mewcp.Status.OPTIMAL, sol.message
    assert sol.weight == pytest.approx(truth.weight, rel=1e-9) and sol.bound >= truth.weight * (1 - 1e-12)
    assert ("0 of 14 vertices fixed" in sol.message) is not options["fixing"]


def test_interrupted_rounds_still_converge() -> None:
    # batch=1 interrupts every round at its first overestimated candidate; the next round
    # must run normally (HiGHS keeps the interrupt flag between runs unless it is reset).
    problem = mewcp.from_points(_points(7, 16, 2))
    truth = mewcp.solve(problem, 5, "brute")
    sol = mewcp.solve(problem, 5, "cutting_plane", batch=1, starts=0, lp_rounds=0, time_limit=60)
    assert sol.status is mewcp.Status.OPTIMAL, sol.message
    assert sol.weight == pytest.approx(truth.weight, rel=1e-9)


def test_runs_after_an_ilp_solve_in_the_same_process() -> None:
    """HiGHS fixes its thread count at the process's first run: an ilp solve first must not
    leave cutting_plane's HiGHS runs without a status."""
    pts = np.random.default_rng(4).random((14, 2))
    problem = mewcp.from_points(pts, "euclidean")
    assert mewcp.solve(problem, 4, "ilp").status is mewcp.Status.OPTIMAL
    sol = mewcp.solve(problem, 4, "cutting_plane")
    assert sol.status is mewcp.Status.OPTIMAL
    assert sol.weight == pytest.approx(mewcp.solve(problem, 4, "brute").weight)


def _all_sets(w: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sets = np.array(list(itertools.combinations(range(w.shape[0]), k)))
    return sets, np.array([w[np.ix_(s, s)].sum() / 2 for s in sets])


@pytest.mark.parametrize("seed", range(4))
def test_fixing_never_removes_a_set_at_least_as_good_as_the_incumbent(seed: int) -> None:
    # Against enumeration: root LP rounds with fixing from a good incumbent (not always the
    # best), then fixing by random non-negative weights on the cuts. Every bound holds and
    # every set that weighs at least the incumbent survives the fixings.
    rng = np.random.default_rng(seed)
    metric = "euclidean" if seed < 3 else "cityblock"
    w = mewcp.from_points(_points(seed, 13, 2 + seed % 3), metric).dense
    k = 5 + seed % 2
    sets, values = _all_sets(w, k)
    order = np.argsort(-values)
    run = _Run(w, k, negative_type(w), Deadline(None), 1e-6, None)
    start = sets[order[2 * seed]]
    run.offer(start)
    y = np.zeros(13)
    y[start] = 1.0
    run.cut_at(y)
    shift = run.shift
    model = _lp_rounds(_Model(run), run, 200, True)
    assert np.any(run.fixed >= 0)  # the test exercises fixing
    assert run.shift > shift  # ... and the stronger curvature of the free vertices

    for step in range(4):
        ok = np.array([np.all(run.fixed[s] != 0) and set(np.flatnonzero(run.fixed == 1)) <= set(s) for s in sets])
        assert np.all(ok[values >= run.value]), "a set as good as the incumbent was fixed away"
        # Every cut, including those with the free vertices' (larger) curvature, holds on every set left.
        cuts = np.array([[g[t].sum() + c for g, c in zip(run.pool_g, run.pool_c)] for t in sets[ok]])
        assert np.all(cuts.min(axis=1) >= values[ok] - 1e-9 * values.max())
        assert run.bound >= values.max() * (1 - 1e-12)
        bound, _ = run.fix_by_duals(rng.exponential(size=len(run.pool_g)) * (rng.random(len(run.pool_g)) < 0.5))
        assert bound >= values.max() * (1 - 1e-12)
    assert model.cols.size == int(np.sum(run.fixed < 0))  # the model has the free vertices


def test_swap_cuts_are_tangents_at_neighbours_the_cuts_overestimate() -> None:
    w = mewcp.from_points(_points(9, 12, 2)).dense
    k = 4
    sets, values = _all_sets(w, k)
    run = _Run(w, k, negative_type(w), Deadline(None), 1e-6, None)
    best = sets[np.argmax(values)]
    run.offer(sets[np.argsort(-values)[3]])
    before = len(run.pool_g)
    added = run.swap_cuts(best, 5)
    assert 0 < added <= 5 and len(run.pool_g) == before + added
    x = np.zeros(12)
    x[best] = 1.0
    for g, c in zip(run.pool_g[before:], run.pool_c[before:]):
        # Each new cut is exact at its point: a 1-swap neighbour of `best`.
        points = [s for s, v in zip(sets, values) if abs(g[s].sum() + c - v) < 1e-7 * v + run.lift]
        assert any(len(set(s) & set(best)) == k - 1 for s in points)
    # ...and valid everywhere.
    pool = np.array([[g[s].sum() + c for g, c in zip(run.pool_g, run.pool_c)] for s in sets])
    assert np.all(pool.min(axis=1) >= values - 1e-9 * values.max())


def test_every_model_is_a_milp_over_the_free_vertices() -> None:
    # A model rebuilt after fixing must be integer from the start: solved as an LP, HiGHS
    # would report a "dual bound" of 0 and the run would claim a false optimum.
    w = mewcp.from_points(_points(2, 12, 2)).dense
    run = _Run(w, 4, negative_type(w), Deadline(None), 1e-6, None)
    run.fixed[[0, 1]] = 0
    run.fixed[2] = 1
    model = _Model(run)
    lp = model.h.getLp()
    assert list(model.cols) == list(range(3, 12)) and model.kk == 3
    kinds = [str(t) for t in lp.integrality_]
    assert len(kinds) == model.cols.size + 1 and all(t.endswith("kInteger") for t in kinds[:-1])


def test_a_time_limit_too_short_for_the_check_ends_before_it() -> None:
    # n = 2000: at least 0.16 s of eigendecomposition by the module's estimate; with 0.05 s the solve
    # would otherwise overrun its limit by the whole check (minutes at n = 20000)
    problem = mewcp.from_points(_points(0, 2000, 2), "euclidean")
    sol = mewcp.solve(problem, 10, "cutting_plane", time_limit=0.05)
    assert sol.status is mewcp.Status.NO_SOLUTION and not sol.found
    assert sol.message == ("the time limit is too short for the negative-type check: an O(n^3) eigendecomposition, "
                           "at least about 0.16 s at n = 2,000 (use time_limit=None or a longer limit, or a heuristic)")
