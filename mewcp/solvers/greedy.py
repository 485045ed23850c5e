"""EHGP: Efficient Heuristic Greedy Pruning (the SIRFP paper's Algorithm 1).

Notes
-----
EHGP deletes, one at a time, the vertex whose summed weight to the remaining
vertices, ``s_i = sum_{j in R, j != i} w_ij``, is least, and subtracts its column
from the others' sums; it stops when ``k`` vertices remain. This is Glover's D2
deletion rule for the Maximum Diversity Problem, rediscovered for channel pruning
by Wu et al. (AAAI 2025). Incremental: O(n^2) time, O(n) extra memory.

Ties are broken by the lowest vertex index (Algorithm 1's strict ``s_q > s_i``
scan from the first vertex).

On a graph that is not complete, the remaining set must become a clique, so the
peeling key is lexicographic: first the fewest neighbours among the remaining
vertices (i.e. the most non-edges into the remainder), then the least score
``s_i`` over remaining neighbours, then the lowest index. On a complete graph every
degree is equal and the order is exactly Algorithm 1's. Once the remainder is a
clique, every later remainder is one too; ``clique_size`` is the size at which that
first happens.

On a general graph the peel alone can end far below the obvious (on a sparse
random graph it ends on an arbitrary edge), so `solve_ehgp` also grows a clique
greedily from each of the ``HEAVY_SEEDS`` heaviest edges (`mewcp.kernels.construct`)
and returns the better answer: never less than the heaviest edge (for ``k >= 2``).
The peel runs in bounded pieces between time-limit checks; when the limit
expires first, the grown clique is the answer. ``size="exact"`` ends in
NO_SOLUTION only when neither found a clique of k vertices.

References
----------
.. [1] D. Wu, D. Guo, Y. Yu, N. Sang, C. Gao. "Structural Pruning via
   Spatial-aware Information Redundancy for Semantic Segmentation", AAAI 2025.
.. [2] F. Glover, C.-C. Kuo, K. S. Dhir. "Heuristic algorithms for the maximum
   diversity problem", J. Information and Optimization Sciences 19 (1998).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mewcp import kernels
from mewcp.kernels.construct import grow_from_edges, top_edges
from mewcp.kernels.peel import peel_sparse_init, peel_sparse_steps
from mewcp.problem import Problem, as_problem
from mewcp.solution import Status
from mewcp.solvers.base import Deadline, SolverOutput

__all__ = ["PeelingOrder", "ehgp_order", "heavy_edge_clique", "peel", "solve_ehgp"]

#: Seed edges (the heaviest) of the greedy construction on general graphs.
HEAVY_SEEDS = 64
#: Removals plus edge updates per peel call between time-limit checks.
PEEL_CHUNK = 1 << 20


@dataclass(frozen=True)
class PeelingOrder:
    """The full EHGP removal order of a graph.

    Attributes
    ----------
    order : ndarray of int64, shape (n,)
        Vertex indices in the order they are removed; the last one survives alone.
        Keeping ``k`` vertices keeps ``order[-k:]``.
    scores : ndarray of float64, shape (n,)
        ``scores[t]``: the score of ``order[t]`` at its removal, the sum of its
        weights to the vertices still present (the paper's ``s_k``, appendix D).
        The last score is 0 (nothing remains). ``scores[-j:].sum()`` is the weight
        of the last ``j`` vertices.
    clique_size : int
        The largest ``j`` such that ``order[-j:]`` is a clique (``n`` on complete
        graphs).
    labels : tuple or None
        The problem's vertex labels, for `nodes`.
    """

    order: np.ndarray
    scores: np.ndarray
    clique_size: int
    labels: tuple[Hashable, ...] | None = None

    @property
    def nodes(self) -> tuple[Hashable, ...]:
        """The removal order as vertex labels."""
        if self.labels is None:
            return tuple(int(i) for i in self.order)
        return tuple(self.labels[int(i)] for i in self.order)

    def kept(self, k: int) -> np.ndarray:
        """Sorted indices of the ``k`` vertices EHGP keeps."""
        return np.sort(self.order[self.order.size - k :])


def peel(problem: Problem, n_remove: int) -> tuple[np.ndarray, np.ndarray, int]:
    """EHGP's removals on a built `Problem`: the one call `solve` and `ehgp_order` make.

    Parameters
    ----------
    problem : Problem
        From `mewcp.as_problem` (no further checks here).
    n_remove : int
        Dense problems: how many vertices to remove, ``0 <= n_remove < n`` (0 runs only
        the first phase, the initial gains, and finds the first vertex to go). Sparse
        problems always peel to the end.

    Returns
    -------
    order, scores : ndarray
        The removed vertices in order and each one's score at removal.
    clique_size : int
        As `PeelingOrder.clique_size` (``n`` for a dense problem).

    Notes
    -----
    No time limit and no answer certification: this is the bare O(n^2) peel, public so
    that ``benchmarks/ehgp_speed.py`` can time it without reaching into `mewcp.kernels`.

    Examples
    --------
    >>> import numpy as np, mewcp
    >>> from mewcp.solvers.greedy import peel
    >>> order, scores, _ = peel(mewcp.as_problem(np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0.]])), 1)
    >>> order.tolist(), scores.tolist()
    ([1], [5.0])
    """
    if problem.dense is not None:
        order, scores = kernels.peel_dense(problem.dense, n_remove)
        return order, scores, problem.n
    order, scores, clique_size = kernels.peel_sparse(problem.indptr, problem.indices, problem.data)
    return order, scores, clique_size


def ehgp_order(data: Any, *, weight: str | None = "weight") -> PeelingOrder:
    """Run EHGP to the end and return the whole removal order with its scores.

    Parameters
    ----------
    data : Problem, networkx.Graph, scipy sparse matrix or array-like
        As for `mewcp.solve`.
    weight : str or None
        networkx edge attribute holding the weight.

    Returns
    -------
    PeelingOrder

    Notes
    -----
    Global pruning (SIRFP appendix D) ranks channels across layers by the score
    ``s_k`` recorded when each is removed; this gives all of them in one O(n^2) pass.
    See `mewcp.solvers.greedy` for the rule and its tie-break.

    Examples
    --------
    >>> import numpy as np, mewcp
    >>> w = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0.]])
    >>> p = mewcp.ehgp_order(w)
    >>> p.order.tolist(), p.scores.tolist()
    ([1, 0, 2], [5.0, 5.0, 0.0])
    """
    problem = as_problem(data, weight=weight)
    n = problem.n
    order, scores, clique_size = peel(problem, n - 1)
    if order.size < n:  # dense peel stops before the survivor
        survivor = np.setdiff1d(np.arange(n), order, assume_unique=True)
        order = np.concatenate([order, survivor])
        scores = np.concatenate([scores, [0.0]])
    order.flags.writeable = False
    scores.flags.writeable = False
    return PeelingOrder(order=order, scores=scores, clique_size=clique_size, labels=problem.labels)


def heavy_edge_clique(problem: Problem, k: int, exact: bool, seeds: int = HEAVY_SEEDS) -> tuple[np.ndarray, float] | None:
    """The heaviest clique grown greedily from the ``seeds`` heaviest edges of a sparse problem.

    With ``exact`` only cliques of k vertices count; None when there is none (or
    no edge, or ``k < 2``). One pass over the edges finds the seeds (`top_edges`:
    heaviest first, ties to the lowest pair), then O(degrees) per seed.
    """
    assert problem.indptr is not None and problem.data is not None and problem.indices is not None
    if k < 2 or problem.data.size == 0:
        return None
    u, v = top_edges(problem.indptr, problem.indices, problem.data, seeds)
    best, size, weight, best_k, weight_k = grow_from_edges(
        problem.indptr, problem.indices, problem.data, u, v, k, not exact)
    if exact:
        return (np.sort(best_k), float(weight_k)) if np.isfinite(weight_k) else None
    return np.sort(best[:size]), float(weight)


def _peel_sparse_limited(problem: Problem, deadline: Deadline) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The full sparse peel in bounded pieces; None when the time limit expires first."""
    state = peel_sparse_init(problem.indptr, problem.indices, problem.data)
    while not peel_sparse_steps(problem.indptr, problem.indices, problem.data, *state, PEEL_CHUNK):
        if deadline.expired():
            return None
    order, scores, counters = state[7], state[8], state[9]
    return order, scores, int(counters[1])


def solve_ehgp(problem: Problem, k: int, *, exact: bool, deadline: Deadline, seed: int | None) -> SolverOutput:
    """The `ehgp` method: peel to ``k`` vertices (``size="at_most"``: the best suffix of size <= k).

    On general graphs, the better of that and `heavy_edge_clique` (see the module notes).
    """
    n = problem.n
    if problem.dense is not None:
        if exact:
            order, _scores, _ = peel(problem, n - k)
            kept = np.setdiff1d(np.arange(n), order, assume_unique=True)
            return SolverOutput(kept, Status.FEASIBLE, n_iter=n - k)
        order, scores, clique_size = peel(problem, n - 1)
        order = np.concatenate([order, np.setdiff1d(np.arange(n), order, assume_unique=True)])
        scores = np.concatenate([scores, [0.0]])
        return SolverOutput(_best_suffix(order, scores, k, n), Status.FEASIBLE, n_iter=n)
    grown = heavy_edge_clique(problem, k, exact)
    peeled = _peel_sparse_limited(problem, deadline)
    if peeled is None:
        if grown is None:
            return SolverOutput(None, Status.NO_SOLUTION, n_iter=0,
                                message="time limit reached while peeling, before any clique of the size was found")
        return SolverOutput(grown[0], Status.FEASIBLE, n_iter=0,
                            message="time limit reached while peeling: the clique grown from the heaviest edges")
    order, scores, clique_size = peeled
    candidates = [] if grown is None else [grown]
    if exact and k <= clique_size:
        kept = np.sort(order[n - k:])
        candidates.append((kept, float(scores[n - k:].sum())))
    elif not exact:
        kept = _best_suffix(order, scores, min(k, clique_size), n)
        candidates.append((kept, float(scores[n - kept.size:].sum())))
    if not candidates:
        return SolverOutput(None, Status.NO_SOLUTION, n_iter=n,
                            message=f"peeling reached a clique of only {clique_size} vertices and no clique of "
                                    f"{k} vertices grew from the heaviest edges; k={k}")
    best = max(candidates, key=lambda c: c[1])
    return SolverOutput(best[0], Status.FEASIBLE, n_iter=n)


def _best_suffix(order: np.ndarray, scores: np.ndarray, top: int, n: int) -> np.ndarray:
    """The heaviest suffix of the removal order of size j <= top; ties go to the larger j."""
    suffix = np.cumsum(scores[::-1])[:top]  # suffix[j-1] = weight of the last j vertices
    best_j = top - int(np.argmax(suffix[::-1]))
    return np.sort(order[n - best_j:])
