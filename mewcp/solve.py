"""The front door: validate, normalise, dispatch, certify.

Notes
-----
The cardinality-constrained Maximum Edge Weight Clique Problem: given an
undirected graph ``G = (V, E)`` with edge weights ``w`` and a bound ``k``, find a
clique ``C`` (every pair in ``C`` adjacent) maximising
``W(C) = sum_{i<j in C} w_ij`` subject to ``|C| == k`` (``size="exact"``) or
``1 <= |C| <= k`` (``size="at_most"``). On a complete graph with non-negative
weights it is the Maximum Diversity Problem. See Hosseinian, Fontes, Butenko,
Nardi, "The maximum edge weight clique problem: formulations and solution
approaches" (2017), and Martí, Gallego, Duarte, Pardo, "Heuristics and
metaheuristics for the maximum diversity problem", J. Heuristics 19 (2013).
"""

from __future__ import annotations

import importlib.util
import math
import numbers
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from mewcp import kernels
from mewcp.problem import Problem, as_problem
from mewcp.solution import Solution, Status
from mewcp.solvers.base import Deadline, SolverOutput
from mewcp.solvers.bnb import solve_bnb
from mewcp.solvers.brute import solve_brute
from mewcp.solvers.cutting_plane import solve_cutting_plane
from mewcp.solvers.greedy import solve_ehgp
from mewcp.solvers.ilp import solve_ilp
from mewcp.solvers.local_search import (DEFAULT_PATIENCE, solve_local_search, solve_memetic, solve_pls,
                                       solve_tabu)

__all__ = ["Method", "methods", "objective", "is_clique", "solve"]

#: A proving method's (kind ``"proven"``) named start heuristic gets at most this share of
#: the time limit, at most this many seconds, and this patience: its answer is only the incumbent the
#: proof starts from (measured on the DIMACS graphs, a longer start costs more than it saves).
PROVEN_START_SHARE = 0.2
PROVEN_START_SECONDS = 0.1
PROVEN_START_PATIENCE = 20
#: Start methods already run in this process. The first call of a method loads its compiled kernels
#: from numba's on-disk cache (about 0.5 s for `pls`), which would use up a proving method's 0.1 s
#: start before it searched, so a proving method first runs its start for one iteration (under the
#: same time cap; the loading itself cannot be interrupted).
_LOADED_STARTS: set[str] = set()

Size = Literal["exact", "at_most"]
SIZES = ("exact", "at_most")


@dataclass(frozen=True)
class Method:
    """A registered solver.

    Attributes
    ----------
    name, kind, summary : str
        ``kind`` is ``"heuristic"`` (a good clique; OPTIMAL only when its answer meets a
        certificate, see `Status`) or ``"proven"`` (proves its answer optimal, with a
        bound, when it finishes; not to be confused with ``size="exact"``, the
        cardinality ``|C| == k``).
    options : Mapping[str, Any]
        The method's own keyword options and their defaults.
    requires : tuple of str
        Modules that must import for the method to run.
    extra : str or None
        The pip extra that installs them (``pip install "mewcp[extra]"``).
    """

    name: str
    kind: str
    summary: str
    func: Callable[..., SolverOutput] = field(repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    extra: str | None = None

    @property
    def available(self) -> bool:
        """True when every required module can be imported."""
        return all(importlib.util.find_spec(m) is not None for m in self.requires)


_REGISTRY: Mapping[str, Method] = MappingProxyType(
    {
        m.name: m
        for m in (
            Method(
                "ehgp",
                "heuristic",
                "greedy peeling, least summed weight first (SIRFP Algorithm 1 / Glover's D2); O(n^2)",
                solve_ehgp,
            ),
            Method(
                "local_search",
                "heuristic",
                "improving swap (and add/drop) moves from a start set until a local optimum",
                solve_local_search,
                {"start": "ehgp", "strategy": "best", "max_iters": None, "target": None},
            ),
            Method(
                "tabu",
                "heuristic",
                "iterated tabu search on the constrained swap / clique move neighbourhood (ITS, MAMDP)",
                solve_tabu,
                {"start": "ehgp", "tenure": None, "max_stall": None, "strength": None, "patience": None,
                 "max_iters": None, "target": None},
            ),
            Method(
                "memetic",
                "heuristic",
                "population + tabu search, backbone crossover, opposition-based children (MAMDP, OBMA)",
                solve_memetic,
                {"start": "ehgp", "pop_size": 10, "opposition_every": None, "tenure": None, "max_stall": None,
                 "patience": None, "max_iters": None, "target": None},
            ),
            Method(
                "pls",
                "heuristic",
                "phased local search on general graphs (Pullan): add/plateau-swap, vertex penalties, restarts",
                solve_pls,
                {"start": None, "patience": None, "max_iters": None, "target": None},
            ),
            Method(
                "ilp",
                "proven",
                "integer program (strengthened linearisation) via PuLP/HiGHS, CBC or scipy; proves optima",
                solve_ilp,
                {"start": "tabu", "backend": "highs", "formulation": "strong"},
                requires=("pulp", "highspy"),
                extra="ilp",
            ),
            Method(
                "bnb",
                "proven",
                "branch and bound with a cardinality-aware independent-set bound (MEWCat, WLMC); proves optima",
                solve_bnb,
                {"start": "pls"},
            ),
            Method(
                "cutting_plane",
                "proven",
                "concave outer approximation on HiGHS for negative-type (e.g. Euclidean) weights; proves optima",
                solve_cutting_plane,
                {"tol": 1e-6, "gap": 1e-6, "starts": 8, "lp_rounds": 200, "batch": 10, "swaps": 20, "fixing": True,
                 "progress": None},
                requires=("highspy",),
                extra="ilp",
            ),
            Method(
                "brute",
                "proven",
                "exhaustive clique enumeration for tiny instances (the test oracle)",
                solve_brute,
            ),
        )
    }
)


def methods() -> tuple[Method, ...]:
    """Every registered method, in registry order, with its availability.

    Examples
    --------
    >>> import mewcp
    >>> mewcp.methods()[0].name, mewcp.methods()[0].available
    ('ehgp', True)
    >>> "brute" in [m.name for m in mewcp.methods()]
    True
    """
    return tuple(_REGISTRY.values())


def _check_method(method: Any, options: Mapping[str, Any]) -> Method:
    if not isinstance(method, str) or method not in _REGISTRY:
        raise ValueError(f"method must be one of {', '.join(map(repr, _REGISTRY))}; got {method!r}")
    spec = _REGISTRY[method]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) if spec.options else "none"
        raise TypeError(
            f"unknown option {unknown[0]!r} for method {method!r}; its options are: {valid}"
        )
    if not spec.available:
        missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
        raise ImportError(
            f"method {method!r} needs {', '.join(missing)}; install it with "
            f"pip install \"mewcp[{spec.extra}]\""
        )
    return spec


def _check_k(k: Any, problem: Problem) -> int:
    if k is None:
        if problem.default_k is None:
            raise ValueError("k is required: the data carries no default subset size")
        k = problem.default_k
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer; got {type(k).__name__}")
    if not 1 <= k <= problem.n:
        raise ValueError(f"k must be in [1, n] = [1, {problem.n}]; got {k}")
    return int(k)


def _check_time_limit(time_limit: Any) -> float | None:
    if time_limit is None:
        return None
    if isinstance(time_limit, bool) or not isinstance(time_limit, numbers.Real):
        raise TypeError(f"time_limit must be a number of seconds or None; got {type(time_limit).__name__}")
    if not (math.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"time_limit must be a positive, finite number of seconds; got {time_limit!r}")
    return float(time_limit)


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer or None; got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None; got {seed}")
    return int(seed)


def _set_weight(problem: Problem, idx: np.ndarray) -> tuple[float, bool]:
    """Weight of the edges inside ``idx`` and whether ``idx`` is a clique."""
    if problem.dense is not None:
        return float(kernels.dense_set_weight(problem.dense, idx)), True
    total, count = kernels.sparse_set_weight(problem.indptr, problem.indices, problem.data, idx)
    return float(total), count == idx.size * (idx.size - 1) // 2


def _certify(problem: Problem, out: SolverOutput, k: int, exact: bool, method: str) -> tuple[np.ndarray, float]:
    """Check the solver's clique and recompute its weight; a failure is a bug in mewcp."""
    idx = np.unique(np.asarray(out.indices, dtype=np.int64))
    problems = []
    if idx.size != len(out.indices):
        problems.append("repeated vertices")
    if idx.size and (idx[0] < 0 or idx[-1] >= problem.n):
        problems.append("indices out of range")
    elif exact and idx.size != k:
        problems.append(f"{idx.size} vertices instead of {k}")
    elif not exact and not 1 <= idx.size <= k:
        problems.append(f"{idx.size} vertices, not in [1, {k}]")
    if problems:
        raise RuntimeError(f"method {method!r} returned an invalid answer ({'; '.join(problems)}): a bug in mewcp")
    weight, clique = _set_weight(problem, idx)
    if not clique:
        raise RuntimeError(f"method {method!r} returned a set that is not a clique: a bug in mewcp")
    idx.flags.writeable = False
    return idx, weight


def solve(
    data: Any,
    k: int | None = None,
    method: str = "ehgp",
    *,
    size: Size = "exact",
    time_limit: float | None = None,
    seed: int | None = None,
    weight: str | None = "weight",
    **options: Any,
) -> Solution:
    """Find a heavy (or the heaviest) clique of a given size.

    Parameters
    ----------
    data : networkx.Graph, scipy sparse matrix, array-like or Problem
        The graph; see `mewcp.as_problem`. A dense array is a complete graph.
    k : int, optional
        The cardinality bound, ``1 <= k <= n``. Defaults to the size that came with
        the data (MDPLIB's ``m`` when read with `mewcp.read`).
    method : str
        A name from `mewcp.methods()`.
    size : {"exact", "at_most"}
        ``|C| == k`` or ``1 <= |C| <= k``.
    time_limit : float, optional
        Seconds; every method stops and reports what it has when it expires (a
        heuristic stops earlier when its answer is certified optimal).
    seed : int, optional
        Seed for randomised methods; the same seed gives the same answer.
    weight : str or None
        networkx edge attribute holding the weight (None: unit weights; see
        `as_problem`: a name no edge has is refused, and so is any other value
        than the default for data that is not a networkx graph).
    **options
        The method's own options (listed in `mewcp.methods()`).

    Returns
    -------
    Solution
        Its clique is checked (size, clique) and its weight recomputed here,
        whatever the method. Solver outcomes (no clique of size k, a time limit)
        are statuses, not exceptions.

    Raises
    ------
    TypeError, ValueError
        For invalid arguments, with a message naming the argument.
    ImportError
        When the method's optional dependencies are missing.

    Examples
    --------
    >>> import numpy as np, mewcp
    >>> w = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0.]])
    >>> sol = mewcp.solve(w, 2)
    >>> sol.nodes, sol.weight, sol.status
    ((0, 2), 5.0, <Status.FEASIBLE: 'feasible'>)
    """
    deadline = Deadline(_check_time_limit(time_limit))
    spec = _check_method(method, options)
    if not isinstance(size, str) or size not in SIZES:
        raise ValueError(f"size must be 'exact' or 'at_most'; got {size!r}")
    seed = _check_seed(seed)
    problem = as_problem(data, weight=weight)
    k = _check_k(k, problem)
    exact = size == "exact"
    if problem.n_edges == 0:  # every clique is one vertex: nothing to search (and no O(n) work)
        return _edgeless(problem, k, exact, method, deadline)
    merged = {**spec.options, **options}
    if "start" in merged:
        merged["start"] = _resolve_start(merged["start"], problem, k, size, deadline, seed, method)
    out = spec.func(problem, k, exact=exact, deadline=deadline, seed=seed, **merged)
    if out.indices is None:
        return Solution(
            nodes=(), indices=np.empty(0, dtype=np.int64), weight=math.nan, status=out.status,
            method=method, n_iter=out.n_iter, runtime=deadline.elapsed(), trace=tuple(out.trace),
            message=out.message,
        )
    idx, value = _certify(problem, out, k, exact, method)
    bound, gap = out.bound, None
    if out.status is Status.OPTIMAL:
        bound, gap = value, 0.0
    elif bound is not None:
        gap = (bound - value) / max(1.0, abs(value))
    runtime = deadline.elapsed()
    return Solution(
        nodes=problem.label_of(idx),
        indices=idx,
        weight=value,
        status=out.status,
        method=method,
        bound=bound,
        gap=gap,
        n_iter=out.n_iter,
        runtime=runtime,
        trace=tuple(out.trace) or ((runtime, value),),
        message=out.message,
    )


def _edgeless(problem: Problem, k: int, exact: bool, method: str, deadline: Deadline) -> Solution:
    """The answer on a graph without edges: vertex 0 (weight 0) when one vertex may do."""
    if exact and k > 1:
        return Solution(nodes=(), indices=np.empty(0, dtype=np.int64), weight=math.nan, status=Status.INFEASIBLE,
                        method=method, runtime=deadline.elapsed(),
                        message=f"the graph has no edges, so no clique has k = {k} vertices")
    idx = np.zeros(1, dtype=np.int64)
    idx.flags.writeable = False
    runtime = deadline.elapsed()
    return Solution(nodes=problem.label_of(idx), indices=idx, weight=0.0, status=Status.OPTIMAL, method=method,
                    bound=0.0, gap=0.0, runtime=runtime, trace=((runtime, 0.0),),
                    message="the graph has no edges: every clique is a single vertex of weight 0")


def _resolve_start(
    start: Any, problem: Problem, k: int, size: Size, deadline: Deadline, seed: int | None, method: str
) -> np.ndarray | None:
    """The ``start`` option as vertex indices: a method's answer, a given clique, or None (random)."""
    if start is None or (isinstance(start, str) and start == "random"):
        return None
    if isinstance(start, str):
        if start not in _REGISTRY or start == method:
            names = ", ".join(repr(m) for m in _REGISTRY if m != method)
            raise ValueError(f"start must be 'random', a method name other than {method!r} ({names}), "
                             f"or a set of vertices; got {start!r}")
        proving = _REGISTRY[method].kind == "proven"  # a start for a proving method: short
        if proving and start not in _LOADED_STARTS and "max_iters" in _REGISTRY[start].options:
            # loads the kernels this problem needs; capped as the start is (pls on a complete graph
            # would otherwise build its n^2 CSR copy: 0.6 s at n = 3000)
            cap = min(deadline.remaining() * PROVEN_START_SHARE, PROVEN_START_SECONDS)
            if cap > 0:
                solve(problem, k, start, size=size, seed=seed, max_iters=1, time_limit=cap)
            _LOADED_STARTS.add(start)
        remaining = deadline.remaining()
        if remaining <= 0:
            return None
        if proving:
            remaining = min(remaining * PROVEN_START_SHARE, PROVEN_START_SECONDS)
        else:  # a heuristic's start gets half of what is left, so that the search itself always runs
            remaining *= 0.5
        patience = PROVEN_START_PATIENCE if proving else DEFAULT_PATIENCE
        bounded = {"patience": patience} if "patience" in _REGISTRY[start].options else {}
        found = solve(problem, k, start, size=size, time_limit=None if math.isinf(remaining) else remaining,
                      seed=seed, **bounded)
        return np.array(found.indices) if found.found else None
    idx = _set_of(problem, start, name="start")
    if size == "exact" and idx.size != k:
        raise ValueError(f"start must have k = {k} vertices for size='exact'; got {idx.size}")
    if not 1 <= idx.size <= k:
        raise ValueError(f"start must have between 1 and k = {k} vertices; got {idx.size}")
    if not _set_weight(problem, idx)[1]:
        raise ValueError("start must be a clique: some of its vertices are not adjacent")
    return idx


def _set_of(problem: Problem, nodes: Iterable[Hashable], *, name: str = "nodes") -> np.ndarray:
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Iterable):
        raise TypeError(f"{name} must be an iterable of vertices; got {type(nodes).__name__}")
    return np.sort(problem.index_of(nodes, name=name))


def objective(data: Any, nodes: Iterable[Hashable], *, weight: str | None = "weight") -> float:
    """Total weight of the edges with both ends in ``nodes`` (any set, clique or not).

    Examples
    --------
    >>> import numpy as np, mewcp
    >>> mewcp.objective(np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0.]]), [0, 1, 2])
    10.0
    """
    problem = as_problem(data, weight=weight)
    return _set_weight(problem, _set_of(problem, nodes))[0]


def is_clique(data: Any, nodes: Iterable[Hashable], *, weight: str | None = "weight") -> bool:
    """True when every pair of ``nodes`` is an edge of the graph."""
    problem = as_problem(data, weight=weight)
    return _set_weight(problem, _set_of(problem, nodes))[1]
