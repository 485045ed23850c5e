"""The `brute` method: exhaustive clique enumeration for tiny instances (the test oracle).

Notes
-----
`brute` visits every clique of size at most ``k`` in lexicographic order, depth
first, extending a clique only by later vertices adjacent to all of its members,
and keeps the heaviest admissible one (``|C| == k`` or ``|C| <= k``); the first of
equal weight wins. It is the test suite's oracle. It refuses instances on which
the enumeration could visit more than `BRUTE_MAX_SUBSETS` sets: the bound used is
``C(n, k)`` (``size="exact"``) or ``sum_{j<=k} C(n, j)`` (``size="at_most"``),
which is exact for complete graphs and an upper bound otherwise. It builds an
``n x n`` adjacency matrix, so it also refuses ``n > BRUTE_MAX_N``.
"""

from __future__ import annotations

import math

import numpy as np

from mewcp import kernels
from mewcp.problem import Problem
from mewcp.solution import Status
from mewcp.solvers.base import Deadline, SolverOutput

__all__ = ["BRUTE_MAX_N", "BRUTE_MAX_SUBSETS", "brute_subset_count", "solve_brute"]

#: Most candidate sets `brute` accepts to enumerate (seconds of work on one core).
BRUTE_MAX_SUBSETS = 1_000_000_000
#: Most vertices `brute` accepts (it allocates an n x n matrix).
BRUTE_MAX_N = 2_000


def brute_subset_count(n: int, k: int, exact: bool) -> int:
    """Upper bound on the sets `brute` may visit: C(n, k), or sum_{j<=k} C(n, j)."""
    if exact:
        return math.comb(n, k)
    return sum(math.comb(n, j) for j in range(1, k + 1))


def check_brute_size(n: int, k: int, exact: bool) -> None:
    """Raise ``ValueError`` when `brute` would refuse this instance."""
    if n > BRUTE_MAX_N:
        raise ValueError(
            f"method='brute' is for tiny graphs: n={n} exceeds its limit of {BRUTE_MAX_N} vertices"
        )
    count = brute_subset_count(n, k, exact)
    if count > BRUTE_MAX_SUBSETS:
        raise ValueError(
            f"method='brute' would enumerate up to {count:.3g} sets for n={n}, k={k}; "
            f"its limit is {BRUTE_MAX_SUBSETS:,} (use a heuristic, or method='ilp' when available)"
        )


def solve_brute(problem: Problem, k: int, *, exact: bool, deadline: Deadline, seed: int | None) -> SolverOutput:
    """The `brute` method; stops between first vertices when the time limit expires."""
    check_brute_size(problem.n, k, exact)
    n = problem.n
    w = np.ascontiguousarray(problem.to_dense())
    adj = problem.adjacency()
    best = np.empty(k, dtype=np.int64)
    best_weight, best_size, visited = -np.inf, 0, 0
    trace: list[tuple[float, float]] = []
    for first in range(n if not exact else n - k + 1):
        if deadline.expired():
            if best_size == 0:
                return SolverOutput(None, Status.NO_SOLUTION, n_iter=visited, message="time limit reached before any clique")
            return SolverOutput(
                np.sort(best[:best_size]),
                Status.FEASIBLE,
                n_iter=visited,
                trace=trace,
                message=f"time limit reached after first vertex {first - 1} of {n}",
            )
        new_weight, best_size, count = kernels.enumerate_cliques_from(
            w, adj, first, k, exact, best_weight, best, best_size
        )
        visited += count
        if new_weight > best_weight:
            best_weight = new_weight
            trace.append((deadline.elapsed(), float(new_weight)))
    if best_size == 0:
        return SolverOutput(None, Status.INFEASIBLE, n_iter=visited, message=f"the graph has no clique of size {k}")
    return SolverOutput(
        np.sort(best[:best_size]), Status.OPTIMAL, n_iter=visited, bound=float(best_weight), trace=trace,
        message="every clique enumerated",
    )
