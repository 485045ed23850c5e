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
first happens, and ``size="exact"`` with ``k > clique_size`` ends in NO_SOLUTION.

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
from mewcp.problem import Problem, as_problem
from mewcp.solution import Status
from mewcp.solvers.base import Deadline, SolverOutput

__all__ = ["PeelingOrder", "ehgp_order", "solve_ehgp"]


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


def _peel(problem: Problem, n_remove: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Removal order, scores and clique size; on dense graphs only ``n_remove`` steps."""
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
    order, scores, clique_size = _peel(problem, n - 1)
    if order.size < n:  # dense peel stops before the survivor
        survivor = np.setdiff1d(np.arange(n), order, assume_unique=True)
        order = np.concatenate([order, survivor])
        scores = np.concatenate([scores, [0.0]])
    order.flags.writeable = False
    scores.flags.writeable = False
    return PeelingOrder(order=order, scores=scores, clique_size=clique_size, labels=problem.labels)


def solve_ehgp(problem: Problem, k: int, *, exact: bool, deadline: Deadline, seed: int | None) -> SolverOutput:
    """The `ehgp` method: peel to ``k`` vertices (``size="at_most"``: the best suffix of size <= k)."""
    n = problem.n
    if exact and problem.dense is not None:
        order, _scores, _ = _peel(problem, n - k)
        kept = np.setdiff1d(np.arange(n), order, assume_unique=True)
        return SolverOutput(kept, Status.FEASIBLE, n_iter=n - k)
    order, scores, clique_size = _peel(problem, n - 1)
    if order.size < n:
        order = np.concatenate([order, np.setdiff1d(np.arange(n), order, assume_unique=True)])
        scores = np.concatenate([scores, [0.0]])
    if exact:
        if k > clique_size:
            return SolverOutput(
                None,
                Status.NO_SOLUTION,
                n_iter=n,
                message=f"peeling reached a clique of only {clique_size} vertices; k={k}",
            )
        return SolverOutput(np.sort(order[n - k :]), Status.FEASIBLE, n_iter=n - k)
    # at_most: the heaviest suffix of size j <= min(k, clique_size); ties -> larger j.
    top = min(k, clique_size)
    suffix = np.cumsum(scores[::-1])[:top]  # suffix[j-1] = weight of the last j vertices
    best_j = top - int(np.argmax(suffix[::-1]))
    return SolverOutput(np.sort(order[n - best_j :]), Status.FEASIBLE, n_iter=n - best_j)
