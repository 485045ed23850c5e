"""What every solver receives and returns; the contract behind `mewcp.solve`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mewcp.solution import Status

__all__ = ["Deadline", "SolverOutput"]


class Deadline:
    """Wall-clock budget checked in Python between bounded kernel calls."""

    def __init__(self, time_limit: float | None) -> None:
        self.start = time.perf_counter()
        self.limit = time_limit

    def elapsed(self) -> float:
        """Seconds since the solve started."""
        return time.perf_counter() - self.start

    def expired(self) -> bool:
        """True once the time limit (if any) has passed."""
        return self.limit is not None and self.elapsed() >= self.limit

    def remaining(self) -> float:
        """Seconds left (``inf`` without a limit, never negative)."""
        return float("inf") if self.limit is None else max(0.0, self.limit - self.elapsed())


@dataclass
class SolverOutput:
    """A solver's raw answer; `mewcp.solve` certifies it and builds the `Solution`.

    ``indices`` is None when the status is INFEASIBLE or NO_SOLUTION.
    """

    indices: np.ndarray | None
    status: Status
    n_iter: int = 0
    bound: float | None = None
    trace: list[tuple[float, float]] = field(default_factory=list)
    message: str = ""
