"""The result of `mewcp.solve`: a certified clique and how it was found."""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Solution", "Status"]


class Status(str, enum.Enum):
    """What a solver can say about its answer.

    OPTIMAL
        The clique is proven optimal: by a method of kind ``"proven"`` that finished, or
        by a heuristic whose answer met a certificate (it reached the upper bound of the
        heaviest edge weights, or a small instance was enumerated; see
        ``docs/solver.md``).
    FEASIBLE
        A valid clique, not proven optimal (heuristics, stopped proving methods).
    INFEASIBLE
        Proven: the graph has no clique of the requested size.
    NO_SOLUTION
        No valid clique was found, and none was proven not to exist (a heuristic
        that could not reach size k, or a time limit hit before any solution).
    """

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Solution:
    """A clique chosen by a solver, certified and re-weighed by `mewcp.solve`.

    Attributes
    ----------
    nodes : tuple
        The chosen vertices' labels (indices for array input), in index order.
    indices : ndarray of int64
        The chosen vertices' indices, sorted, read-only.
    weight : float
        Total weight of the edges inside the clique, recomputed from the problem in
        float64; ``nan`` when there is no solution.
    status : Status
    method : str
    bound : float or None
        A proven upper bound on the optimum (methods of kind ``"proven"``, and any
        OPTIMAL answer, where it equals ``weight``), else None.
    gap : float or None
        ``(bound - weight) / max(1, |weight|)``, when a bound is known.
    n_iter : int
        Solver iterations (vertex removals, search moves, nodes enumerated).
    runtime : float
        Wall-clock seconds spent in `solve`, validation included.
    trace : tuple of (float, float)
        ``(seconds, value)`` each time the best value improved.
    message : str
        A human-readable account of how the run ended.
    """

    nodes: tuple[Hashable, ...]
    indices: np.ndarray = field(repr=False)
    weight: float
    status: Status
    method: str
    bound: float | None = None
    gap: float | None = None
    n_iter: int = 0
    runtime: float = 0.0
    trace: tuple[tuple[float, float], ...] = field(default=(), repr=False)
    message: str = ""

    @property
    def size(self) -> int:
        """Number of vertices in the clique."""
        return len(self.nodes)

    @property
    def found(self) -> bool:
        """True when the solution holds a valid clique (OPTIMAL or FEASIBLE)."""
        return self.status in (Status.OPTIMAL, Status.FEASIBLE)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: strict JSON (``nan`` and infinities become None, everywhere)."""

        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        def plain(v: Hashable) -> Any:
            return v.item() if isinstance(v, np.generic) else v

        return {
            "weight": num(self.weight),
            "status": self.status.value,
            "method": self.method,
            "size": self.size,
            "nodes": [plain(v) for v in self.nodes],
            "indices": [int(i) for i in self.indices],
            "bound": num(self.bound),
            "gap": num(self.gap),
            "n_iter": self.n_iter,
            "runtime": num(self.runtime),
            "trace": [[num(t), num(v)] for t, v in self.trace],
            "message": self.message,
        }
