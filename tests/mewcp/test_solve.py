"""The front door: input validation (every message), dispatch, certificates, brute force."""

from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import mewcp
from tests.mewcp.helpers import best_clique_reference, random_graph, random_symmetric

W3 = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0.0]])


# --------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("data", "exc", "match"),
    [
        (np.ones((2, 3)), ValueError, r"data must be a square matrix; got shape \(2, 3\)"),
        (np.ones(4), ValueError, r"data must be a square matrix; got shape \(4,\)"),
        (np.zeros((0, 0)), ValueError, "data must have at least one vertex; got an empty graph"),
        (nx.Graph(), ValueError, "data must have at least one vertex"),
        (np.array([[0, np.nan], [np.nan, 0]]), ValueError, r"data must have finite weights; entry \(0, 1\) is nan"),
        (np.array([[0, np.inf], [np.inf, 0]]), ValueError, r"data must have finite weights; entry \(0, 1\) is inf"),
        (np.array([[0, 1], [2, 0.0]]), ValueError, r"data must be a symmetric matrix; W\[0, 1\] = 1.0 but W\[1, 0\] = 2.0 \(pass \(W \+ W.T\) / 2"),
        (sp.csr_array(np.array([[0, 1], [0, 0.0]])), ValueError, r"entry \(0, 1\) is stored but \(1, 0\) is not"),
        (sp.csr_array(np.array([[0, 1], [3, 0.0]])), ValueError, r"A\[0, 1\] = 1.0 but A\[1, 0\] = 3.0"),
        (sp.csr_array(np.array([[0, np.nan], [np.nan, 0.0]])), ValueError, r"finite weights; entry \(0, 1\) is nan"),
        (nx.DiGraph([(0, 1)]), TypeError, "data must be an undirected networkx.Graph; got a directed graph"),
        (nx.MultiGraph([(0, 1)]), TypeError, "data must be a networkx.Graph, not a multigraph"),
        ("graph.txt", TypeError, "data must be a networkx.Graph, a scipy sparse matrix, a square array-like or a mewcp.Problem; got str"),
        (None, TypeError, "got NoneType"),
        ([[0, "a"], ["a", 0]], TypeError, "data must be a square array of real numbers"),
        (np.zeros((2, 2), dtype=complex), TypeError,
         r"data must be a square array of real numbers \(bool, integer or float\); got dtype complex128"),
        (np.array([[0, 1], [1, 0]], dtype=object), TypeError,
         "data must be a square array of real numbers \\(bool, integer or float\\); got dtype object"),
        ([[0, "1"], ["1", 0]], TypeError, "got dtype <U21"),
        (sp.csr_array(np.array([[0, 1j], [1j, 0]])), TypeError, "got dtype complex128"),
        (np.array([[0, 1e308], [1e308, 0]]), ValueError,
         r"data has weights too large to add up safely in float64: max \|w\| = 1e\+308 over 1 edges; max "
         r"\|w\| times the number of edges must be at most 1e\+300 \(divide the weights by a constant\)"),
        (sp.csr_array(np.array([[0, -1e300, 0], [-1e300, 0, 1], [0, 1, 0]])), ValueError,
         r"max \|w\| = 1e\+300 over 2 edges"),
    ],
)
def test_bad_data_is_refused_with_a_message(data, exc, match):
    with pytest.raises(exc, match=match):
        mewcp.solve(data, 1)


def _corrupt(fmt, array, position, value):
    """A scipy matrix whose index array was changed after it was built (scipy does not check again)."""
    mat = getattr(sp, f"{fmt}_array")(W3)
    getattr(mat, array)[position] = value
    return mat


_CORRUPT = "data must be a valid scipy sparse matrix; its index arrays are corrupt"


@pytest.mark.parametrize(
    ("data", "match"),
    [  # before: a segmentation fault, heap corruption ("free(): invalid next size") or scipy's own error
        (_corrupt("csr", "indices", 0, 99), rf"^{_CORRUPT} \(every index in indices must be in \[0, 3\)\)$"),
        (_corrupt("csr", "indices", 0, -1), rf"^{_CORRUPT} \(every index in indices must be in \[0, 3\)\)$"),
        (_corrupt("csc", "indices", 1, 3), rf"^{_CORRUPT} \(every index in indices must be in \[0, 3\)\)$"),
        (_corrupt("csr", "indptr", 1, 50), rf"^{_CORRUPT} \(indptr must rise from 0 to at most the 6 stored entries\)$"),
        (_corrupt("csr", "indptr", 0, 1), rf"^{_CORRUPT} \(indptr must rise from 0"),
        (_corrupt("coo", "row", 0, 9), rf"^{_CORRUPT} \(every row and column index must be in \[0, 3\)\)$"),
        (_corrupt("coo", "col", 2, -9), rf"^{_CORRUPT} \(every row and column index must be in \[0, 3\)\)$"),
        (sp.csr_array((np.ones(2), np.array([1, -3]), np.array([0, 1, 2, 2])), shape=(3, 3)),
         rf"^{_CORRUPT} \(every index in indices must be in \[0, 3\)\)$"),
        (sp.csr_array((np.ones(2), np.array([1, 0]), np.array([0, 1, 5, 2])), shape=(3, 3)),
         rf"^{_CORRUPT} \(indptr must rise from 0 to at most the 2 stored entries\)$"),
    ],
)
def test_corrupt_sparse_index_arrays_are_refused_before_scipy_or_numba_reads_them(data, match):
    with pytest.raises(ValueError, match=match):
        mewcp.as_problem(data)


def test_valid_sparse_formats_pass_the_structure_check():
    w = random_symmetric(7, np.random.default_rng(3))
    want = mewcp.solve(w, 3, "brute").weight
    for fmt in ("csr", "csc", "coo", "bsr", "lil", "dok", "dia"):
        assert mewcp.solve(getattr(sp, f"{fmt}_array")(w), 3, "brute").weight == want, fmt
    assert mewcp.solve(sp.bsr_array(np.kron(W3, np.ones((2, 2))) * (1 - np.eye(6)), blocksize=(2, 2)), 2,
                       "brute").found


def test_masked_entries_are_refused_not_unmasked():
    masked = np.ma.masked_array(W3, mask=[[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match=r"^data must not have masked entries: the values under the mask would be "
                                         r"used as weights \(fill them first, e.g. data.filled\(0\)"):
        mewcp.solve(masked, 2)
    assert mewcp.solve(np.ma.masked_array(W3), 2).weight == 5.0  # nothing masked: an ordinary matrix


def test_size_that_is_an_array_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^size must be 'exact' or 'at_most'; got array\("):
        mewcp.solve(W3, 2, size=np.array(["exact", "at_most"]))


def test_large_weights_that_sum_safely_are_accepted():
    w = np.full((4, 4), 1e299)
    np.fill_diagonal(w, 0.0)
    for method in ("brute", "ehgp", "tabu"):
        sol = mewcp.solve(w, 3, method, seed=0)
        assert math.isfinite(sol.weight) and sol.weight == pytest.approx(3e299)


def test_solution_json_is_strict():
    sol = mewcp.solve(W3, 2, "tabu", seed=0, max_iters=5)
    text = json.dumps(sol.to_dict(), allow_nan=False)  # raises on nan / inf anywhere
    assert json.loads(text)["weight"] == 5.0
    empty = mewcp.solve(nx.path_graph(4), 3, "tabu", seed=0, max_iters=50)
    assert json.loads(json.dumps(empty.to_dict(), allow_nan=False))["weight"] is None


def test_symmetric_within_tolerance_is_accepted_and_averaged():
    w = W3.copy()
    w[0, 1] += 1e-12
    p = mewcp.as_problem(w)
    assert np.array_equal(p.dense, p.dense.T)
    assert p.dense[0, 1] == pytest.approx(1.0)



def test_a_weight_name_no_edge_has_is_refused_not_read_as_unit_weights():
    g = nx.Graph()
    g.add_edge(0, 1, weight=10.0, colour="red")
    g.add_edge(2, 3, weight=100.0)
    with pytest.raises(ValueError, match=r"^weight: no edge has the attribute 'wieght' \(the edges carry 'colour', "
                                         r"'weight'\); name the attribute that holds the weights, or pass "
                                         r"weight=None for unit weights$"):
        mewcp.solve(g, 2, weight="wieght")
    assert mewcp.solve(nx.path_graph(3), 2).weight == 1.0  # the default name on no edge: unit weights


@pytest.mark.parametrize("data", [np.ones((3, 3)) - np.eye(3), sp.csr_array(np.ones((3, 3)) - np.eye(3))])
@pytest.mark.parametrize("weight", ["w", None])
def test_weight_is_refused_where_it_would_be_ignored(data, weight):
    with pytest.raises(ValueError, match=rf"^weight names a networkx edge attribute; it does not apply to data of "
                                         rf"type {type(data).__name__}, whose values are the weights "
                                         rf"\(got weight={weight!r}\)$"):
        mewcp.solve(data, 2, weight=weight)


def test_networkx_weights():
    g = nx.Graph()
    g.add_edge(0, 1, weight=2.0)
    g.add_edge(1, 2)
    with pytest.raises(ValueError, match=r"weight: edge \(1, 2\) has no 'weight' attribute while others do"):
        mewcp.solve(g, 2)
    assert mewcp.solve(g, 2, weight=None).weight == 1.0
    g[0][1]["weight"] = float("nan")
    g[1][2]["weight"] = 1.0
    with pytest.raises(ValueError, match=r"finite weights; edge \(0, 1\) has weight nan"):
        mewcp.solve(g, 2)
    g[0][1]["weight"] = "heavy"
    with pytest.raises(ValueError, match="weight: every edge's 'weight' attribute must be a real number"):
        mewcp.solve(g, 2)
    g[0][1]["weight"] = "1.5"  # a string is not silently parsed
    with pytest.raises(ValueError, match=r"must be a real number; edge \(0, 1\) has '1.5'"):
        mewcp.solve(g, 2)
    g[0][1]["weight"] = 1 + 0j
    with pytest.raises(ValueError, match=r"must be a real number; edge \(0, 1\) has \(1\+0j\)"):
        mewcp.solve(g, 2)
    g[0][1]["weight"] = 10**400  # a Python int beyond float64: before, numpy's OverflowError
    with pytest.raises(ValueError, match=r"^data must have finite weights; edge \(0, 1\) has an integer weight "
                                         r"of 401 digits, beyond float64$"):
        mewcp.solve(g, 2)
    g[0][1]["weight"] = 2**1023  # fits float64 (then refused by the overflow rule, not by float())
    with pytest.raises(ValueError, match="too large to add up safely"):
        mewcp.solve(g, 2)
    with pytest.raises(TypeError, match="^weight must be an edge attribute name \\(a str\\) or None; got list$"):
        mewcp.solve(g, 2, weight=[])  # before: "unhashable type: 'list'"
    unweighted = nx.complete_graph(4)
    assert mewcp.solve(unweighted, 3).weight == 3.0  # networkx convention: weight 1


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"k": 0}, ValueError, r"k must be in \[1, n\] = \[1, 3\]; got 0"),
        ({"k": 4}, ValueError, r"k must be in \[1, n\] = \[1, 3\]; got 4"),
        ({"k": 2.0}, TypeError, "k must be an integer; got float"),
        ({"k": True}, TypeError, "k must be an integer; got bool"),
        ({"k": None}, ValueError, "k is required: the data carries no default subset size"),
        ({"k": 2, "method": "magic"}, ValueError, "method must be one of 'ehgp', 'local_search', 'tabu', 'memetic', 'pls', 'ilp', 'bnb', 'cutting_plane', 'brute'; got 'magic'"),
        ({"k": 2, "size": "exactly"}, ValueError, "size must be 'exact' or 'at_most'; got 'exactly'"),
        ({"k": 2, "time_limit": 0}, ValueError, "time_limit must be a positive, finite number of seconds; got 0"),
        ({"k": 2, "time_limit": -1.0}, ValueError, "time_limit must be a positive, finite number of seconds; got -1.0"),
        ({"k": 2, "time_limit": float("nan")}, ValueError, "time_limit must be a positive, finite number"),
        ({"k": 2, "time_limit": "10"}, TypeError, "time_limit must be a number of seconds or None; got str"),
        ({"k": 2, "seed": -3}, ValueError, "seed must be a non-negative integer or None; got -3"),
        ({"k": 2, "seed": 1.5}, TypeError, "seed must be a non-negative integer or None; got float"),
        ({"k": 2, "tenure": 5}, TypeError, "unknown option 'tenure' for method 'ehgp'; its options are: none"),
        ({"k": 2, "time_limit": float("inf")}, ValueError,
         "time_limit must be a positive, finite number of seconds; got inf"),
        *[({"k": 2, "method": m, "target": t}, ValueError, f"target must be a finite number or None; got {t!r}")
          for m in ("local_search", "tabu", "memetic") for t in (float("nan"), float("inf"), -float("inf"))],
        *[({"k": 2, "method": m, "target": "10"}, TypeError, "target must be a finite number or None; got str")
          for m in ("local_search", "tabu", "memetic")],
    ],
)
def test_bad_arguments_are_refused_with_a_message(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mewcp.solve(W3, **kwargs)


def test_default_k_comes_from_the_problem():
    p = mewcp.as_problem(W3, default_k=2)
    assert mewcp.solve(p).size == 2
    for bad, why in ((7, "must be at most the number of vertices, n = 3; got 7"),
                     (0, "must be a positive integer or None; got 0"), ("2", "must be a positive integer or None; got '2'"),
                     (True, "must be a positive integer or None; got True")):
        with pytest.raises(ValueError, match=f"^default_k {why}$"):  # before: refused later, by solve(), as k
            mewcp.as_problem(W3, default_k=bad)
    assert mewcp.as_problem(W3, default_k=np.int64(3)).default_k == 3


def test_objective_and_is_clique_validate_nodes():
    assert mewcp.objective(W3, [0, 1, 2]) == 10.0
    assert mewcp.objective(W3, []) == 0.0
    with pytest.raises(ValueError, match="nodes must not repeat a vertex"):
        mewcp.objective(W3, [0, 0])
    with pytest.raises(ValueError, match=r"nodes must be vertex indices in \[0, 3\); got 3"):
        mewcp.objective(W3, [3])
    with pytest.raises(TypeError, match="nodes must be an iterable of vertices; got int"):
        mewcp.objective(W3, 2)
    g = nx.Graph([("a", "b"), ("b", "c")])
    with pytest.raises(ValueError, match="nodes contains 'z', which is not a vertex of the graph"):
        mewcp.objective(g, ["z"])
    assert mewcp.objective(g, ["a", "b", "c"], weight=None) == 2.0  # any set, clique or not
    assert not mewcp.is_clique(g, ["a", "b", "c"])
    assert mewcp.is_clique(g, ["a", "b"])


def test_diagonal_and_self_loops_take_no_part():
    w = W3 + np.diag([100.0, 100.0, 100.0])
    assert mewcp.objective(w, [0, 1, 2]) == 10.0
    g = nx.Graph([(0, 0, {"weight": 50}), (0, 1, {"weight": 2})])
    assert mewcp.solve(g, 2).weight == 2.0


# --------------------------------------------------------------------- registry


def test_methods_lists_the_registry():
    listed = {m.name: m for m in mewcp.methods()}
    assert {"ehgp", "local_search", "tabu", "memetic", "brute"} <= set(listed)
    assert listed["ehgp"].available and listed["ehgp"].kind == "heuristic"
    assert listed["brute"].kind == "proven"


# --------------------------------------------------------------------- brute force


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("size", ["exact", "at_most"])
def test_brute_agrees_with_enumeration(seed, size):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 10))
    k = int(rng.integers(1, n + 1))
    density = [1.0, 0.7, 0.4][seed % 3]
    w, mask = random_graph(n, density, rng, negative=seed % 2 == 0)
    data = w if density == 1.0 else sp.csr_array((w[mask], np.nonzero(mask)), shape=w.shape)
    ref = best_clique_reference(w, None if density == 1.0 else mask, k, size == "exact")
    sol = mewcp.solve(data, k, "brute", size=size)
    if ref == -np.inf:
        assert sol.status is mewcp.Status.INFEASIBLE
        assert sol.nodes == () and math.isnan(sol.weight)
    else:
        assert sol.status is mewcp.Status.OPTIMAL
        assert sol.weight == pytest.approx(ref, abs=1e-9)
        assert sol.bound == sol.weight and sol.gap == 0.0
        assert mewcp.is_clique(data, sol.nodes)
        assert sol.size == k if size == "exact" else 1 <= sol.size <= k


def test_brute_infeasible_when_no_clique_of_size_k():
    sol = mewcp.solve(nx.cycle_graph(7), 3, "brute")
    assert sol.status is mewcp.Status.INFEASIBLE
    assert sol.message == "the graph has no clique of size 3"


def test_brute_refuses_large_instances():
    with pytest.raises(ValueError, match=r"method='brute' would enumerate up to 1.38e\+11 sets for n=40, k=20; its limit is 1,000,000,000"):
        mewcp.solve(np.zeros((40, 40)), 20, "brute")
    with pytest.raises(ValueError, match="method='brute' is for tiny graphs: n=2001 exceeds its limit of 2000 vertices"):
        mewcp.solve(sp.csr_array(([1.0, 1.0], ([0, 1], [1, 0])), shape=(2001, 2001)), 1, "brute")


@pytest.mark.parametrize("method", [m.name for m in mewcp.methods() if m.available])
def test_a_graph_without_edges_is_answered_at_once(method):
    big = mewcp.as_problem(sp.csr_array((2_000_000, 2_000_000)))  # no edges: no O(n) search may start
    sol = mewcp.solve(big, 1, method)
    assert (sol.status, sol.nodes, sol.weight, sol.bound) == (mewcp.Status.OPTIMAL, (0,), 0.0, 0.0)
    assert sol.message == "the graph has no edges: every clique is a single vertex of weight 0"
    assert mewcp.solve(big, 5, method, size="at_most").nodes == (0,)
    none = mewcp.solve(big, 2, method)
    assert (none.status, none.nodes) == (mewcp.Status.INFEASIBLE, ())
    assert none.message == "the graph has no edges, so no clique has k = 2 vertices"
    assert mewcp.solve(np.zeros((1, 1)), 1, method).status is mewcp.Status.OPTIMAL

def test_brute_honours_the_time_limit():
    w = random_symmetric(90, np.random.default_rng(0))
    sol = mewcp.solve(w, 6, "brute", time_limit=0.05)  # C(90, 6) = 6.2e8 sets: seconds of work
    assert sol.status in (mewcp.Status.FEASIBLE, mewcp.Status.NO_SOLUTION)
    assert sol.status is not mewcp.Status.OPTIMAL
    assert sol.runtime < 5


# --------------------------------------------------------------------- solution object


def test_solution_is_frozen_and_serialisable():
    sol = mewcp.solve(W3, 2, "brute")
    with pytest.raises(AttributeError):
        sol.weight = 0  # type: ignore[misc]
    with pytest.raises(ValueError):
        sol.indices[0] = 1
    d = json.loads(json.dumps(sol.to_dict()))
    assert d["weight"] == 5.0 and d["status"] == "optimal" and d["nodes"] == [0, 2] and d["method"] == "brute"
    none = mewcp.solve(nx.path_graph(4), 3)
    assert json.loads(json.dumps(none.to_dict()))["weight"] is None


def test_sparse_explicit_zeros_are_edges_and_duplicates_sum():
    # triangle 0-1-2 where edge (1, 2) is an explicit zero: still a 3-clique
    rows, cols = np.array([0, 1, 0, 2, 1, 2]), np.array([1, 0, 2, 0, 2, 1])
    a = sp.coo_array((np.array([1.0, 1.0, 2.0, 2.0, 0.0, 0.0]), (rows, cols)), shape=(4, 4))
    p = mewcp.as_problem(a)
    assert p.n_edges == 3
    sol = mewcp.solve(a, 3, "brute")
    assert sol.nodes == (0, 1, 2) and sol.weight == 3.0
    # a duplicated coordinate is summed (scipy's meaning of duplicates)
    dup = sp.coo_array((np.array([1.0, 1.0, 2.0]), (np.array([0, 1, 1]), np.array([1, 0, 0]))), shape=(2, 2))
    with pytest.raises(ValueError, match=r"A\[0, 1\] = 1.0 but A\[1, 0\] = 3.0"):
        mewcp.as_problem(dup)


def test_sparse_complete_graph_is_stored_dense_and_diagonal_dropped():
    w = random_symmetric(6, np.random.default_rng(0)) + np.eye(6)
    p = mewcp.as_problem(sp.csr_array(w))
    assert p.is_complete and np.array_equal(p.dense, w - np.eye(6))
    g = mewcp.as_problem(sp.csr_array(np.array([[5.0, 1, 0], [1, 0, 0], [0, 0, 0]])))
    assert not g.is_complete and g.n_edges == 1


# --------------------------------------------------------------------- hostile values (fuzz)

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_HOSTILE = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-320, 1e150, -1e150, 1e300, 1e308, -1e308, float("nan"),
                            float("inf"), -float("inf"), 2.5])


@settings(max_examples=80)
@given(values=st.lists(_HOSTILE, min_size=6, max_size=6), k=st.integers(1, 4),
       method=st.sampled_from(["ehgp", "tabu", "brute", "local_search"]), size=st.sampled_from(["exact", "at_most"]),
       kind=st.sampled_from(["float", "complex", "object", "sparse"]))
def test_hostile_weights_are_refused_or_solved_with_a_finite_weight(values, k, method, size, kind):
    w = np.zeros((4, 4))
    w[np.triu_indices(4, 1)] = values
    w = w + w.T
    data = {"float": w, "complex": w.astype(complex), "object": w.astype(object), "sparse": sp.csr_array(w)}[kind]
    try:
        sol = mewcp.solve(data, k, method, size=size, seed=0, **({"max_iters": 50} if method != "ehgp" and
                                                                 method != "brute" else {}))
    except (TypeError, ValueError) as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert kind in ("float", "sparse") and np.isfinite(w).all()
    assert not sol.found or math.isfinite(sol.weight)
    json.dumps(sol.to_dict(), allow_nan=False)


@settings(max_examples=60)
@given(name=st.sampled_from(["time_limit", "seed", "target", "max_iters", "tenure", "patience", "pop_size",
                                  "opposition_every"]),
       value=st.sampled_from([float("nan"), float("inf"), -float("inf"), -1, 0, 0.5, True, "3", None, 1e300]))
def test_hostile_option_values_are_refused_with_their_name_or_accepted(name, value):
    method = "memetic" if name in ("pop_size", "opposition_every") else "tabu"
    kwargs = {name: value} if name in ("time_limit", "seed") else {name: value, "max_iters": 50}
    if name == "max_iters":
        kwargs = {name: value}
    try:
        sol = mewcp.solve(W3, 2, method, **kwargs)
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith(name), str(exc)
        return
    assert sol.found
