"""The `bnb` method: exact branch and bound with the cardinality bound, on any graph.

Notes
-----
Finds a clique ``C`` maximising ``W(C) = sum_{i<j in C} w_ij`` with ``|C| == k``
(``size="exact"``) or ``1 <= |C| <= k`` (``size="at_most"``), weights of any sign,
and proves it optimal. The search and its bound are in `mewcp.kernels.bnb`: the
independent-set bound of MEWCat (Liu, Xiao & Zhou, "A fast exact solver with
theoretical analysis for the maximum edge-weighted clique problem", AAAI-24),
made to respect the cardinality limit (each vertex may count only its ``r - 1``
best earlier sets, where ``r`` is the number of slots left), inside the
branching-set scheme of WLMC (Jiang, Li & Manyà, "An exact algorithm for the
maximum weight clique problem in large graphs", AAAI-17).

Steps:

1. Reduction (``size="exact"``): the ``(k-1)``-core. A vertex of a k-clique has
   ``k - 1`` neighbours in it, so vertices of lower degree are peeled off,
   repeatedly; if fewer than ``k`` vertices are left the problem is infeasible.
   The search repeats the rule inside every node.
2. Incumbent: the ``start`` option (by default a short `pls` run, Pullan's phased
   local search, which MEWCat starts from too; `mewcp.solve` performs it within the
   time limit), so the bound prunes from the first node.
3. Search: depth first on dense arrays of the reduced graph, run by the kernel for
   a bounded number of nodes per call; the clock is checked between calls, whose
   size adapts to about `CHUNK_SECONDS`.

Statuses: OPTIMAL when the search is exhausted (optimal up to a relative
tolerance of `RTOL`, far below the weights' own precision); INFEASIBLE when it
is exhausted without a clique of size k; on a time limit FEASIBLE with ``bound``
the largest bound over the subtrees still open (or NO_SOLUTION when no clique was
found yet). ``n_iter`` counts search nodes. The run is deterministic given its
start, so a fixed ``seed`` reproduces it.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from mewcp.kernels import bnb as kernel
from mewcp.problem import Problem
from mewcp.solution import Status
from mewcp.solvers.base import Deadline, SolverOutput

__all__ = ["BNB_MAX_N", "RTOL", "core_vertices", "solve_bnb"]

#: Most vertices (after the reduction) `bnb` accepts: it stores dense n x n arrays.
BNB_MAX_N = 8_000
#: Relative optimality tolerance: a subtree is pruned when its bound is at most
#: ``best + RTOL * max(1, |best|)``.
RTOL = 1e-9
#: Work (sum of squared candidate-set sizes) spent on the bound of a stopped search.
OPEN_BOUND_WORK = 500_000
#: Target wall-clock seconds of one kernel call (the time limit's granularity).
CHUNK_SECONDS = 0.02


def core_vertices(problem: Problem, k: int) -> np.ndarray:
    """Vertices of the ``(k-1)``-core (every vertex keeps ``>= k - 1`` neighbours), sorted."""
    n = problem.n
    if problem.dense is not None or k <= 1:
        return np.arange(n) if n >= k else np.empty(0, dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    a = sp.csr_array((np.ones(problem.indices.size, dtype=np.int64), problem.indices, problem.indptr), shape=(n, n))
    deg = np.diff(problem.indptr).astype(np.int64)
    while True:
        drop = keep & (deg < k - 1)
        if not drop.any():
            break
        keep &= ~drop
        deg -= a @ drop.astype(np.int64)
    return np.flatnonzero(keep)


def _dense_sub(problem: Problem, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights and adjacency of the subgraph induced by ``keep``, as dense arrays."""
    m = keep.size
    if problem.dense is not None:
        w = np.ascontiguousarray(problem.dense[np.ix_(keep, keep)])
        adj = np.ones((m, m), dtype=np.uint8)
        np.fill_diagonal(adj, 0)
        return w, adj
    csr = sp.csr_array((problem.data, problem.indices, problem.indptr), shape=(problem.n, problem.n))
    sub = csr[keep][:, keep].tocoo()
    w = np.zeros((m, m), dtype=np.float64)
    adj = np.zeros((m, m), dtype=np.uint8)
    w[sub.row, sub.col] = sub.data
    adj[sub.row, sub.col] = 1
    return w, adj


def solve_bnb(problem: Problem, k: int, *, exact: bool, deadline: Deadline, seed: int | None,
              start: np.ndarray | None = None) -> SolverOutput:
    """The `bnb` method (see the module notes)."""
    keep = core_vertices(problem, k) if exact else np.arange(problem.n)
    if keep.size < (k if exact else 1):
        return SolverOutput(None, Status.INFEASIBLE,
                            message=f"the graph has no clique of size {k} (its {k - 1}-core has {keep.size} vertices)")
    if keep.size > BNB_MAX_N:
        raise ValueError(
            f"method='bnb' stores dense arrays of the graph: n={keep.size} vertices"
            f"{' after the reduction' if keep.size < problem.n else ''} exceeds its limit of {BNB_MAX_N:,} "
            "(use a heuristic such as method='tabu')"
        )
    w, adj = _dense_sub(problem, keep)
    bits = kernel.adjacency_bits(adj)
    del adj
    s, sig, rem, bl, lv, fw, best, scratch_i, scratch_f, tops, scratch_b, wl = kernel.new_state(keep.size, k)
    trace: list[tuple[float, float]] = []
    if start is not None:
        pos = np.searchsorted(keep, start)
        fw[k + 1] = float(np.sum(w[np.ix_(pos, pos)]) / 2.0)
        best[: pos.size] = pos
        best[k] = pos.size
        trace.append((deadline.elapsed(), float(fw[k + 1])))
    nodes, budget = 0, 256
    while True:
        if deadline.expired():
            break
        t0 = time.perf_counter()
        before = fw[k + 1]
        nodes += kernel.search(w, bits, k, exact, s, sig, rem, bl, lv, fw, best, scratch_i, scratch_f, tops,
                               scratch_b, wl, budget, RTOL)
        spent = time.perf_counter() - t0
        if fw[k + 1] > before:
            trace.append((deadline.elapsed(), float(fw[k + 1])))
        if best[k + 1] < 0:
            break
        budget = int(min(max(budget * min(4.0, CHUNK_SECONDS / max(spent, 1e-6)), 64), 1 << 40))
    found = best[k] > 0
    idx = keep[np.sort(best[: best[k]])] if found else None
    if best[k + 1] < 0:
        if not found:
            return SolverOutput(None, Status.INFEASIBLE, n_iter=nodes, trace=trace,
                                message=f"search exhausted: the graph has no clique of size {k}")
        return SolverOutput(idx, Status.OPTIMAL, n_iter=nodes, bound=float(fw[k + 1]), trace=trace,
                            message=f"search exhausted after {nodes:,} nodes")
    bound = float(kernel.open_bound(w, bits, k, exact, s, sig, rem, bl, lv, fw, best, scratch_i, scratch_f, tops,
                                    scratch_b, wl, OPEN_BOUND_WORK))
    if not found:
        if bound == -np.inf:
            return SolverOutput(None, Status.INFEASIBLE, n_iter=nodes, trace=trace,
                                message=f"the graph has no clique of size {k} (every open subtree is empty)")
        return SolverOutput(None, Status.NO_SOLUTION, n_iter=nodes, bound=bound, trace=trace,
                            message=f"time limit reached after {nodes:,} nodes, before its first clique"
                                    + (f" of size {k}" if exact else ""))
    return SolverOutput(idx, Status.FEASIBLE, n_iter=nodes, bound=max(bound, float(fw[k + 1])), trace=trace,
                        message=f"time limit reached after {nodes:,} nodes")
