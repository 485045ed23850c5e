"""HiGHS (highspy) plumbing shared by the `ilp` and `cutting_plane` methods.

A silent solver object (HiGHS prints a banner from C++ straight to file descriptor 1
when constructed, around ``sys.stdout``), an optional fixed thread count, a start
solution over every column, and the MIP dual bound as a float or None. highspy is
imported only inside these functions (it is the optional ``ilp`` extra).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence file descriptor 1 (C++ code writes there directly, around ``sys.stdout``)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def new_highs(*, threads: int | None = None) -> Any:
    """A ``highspy.Highs`` with no output; with ``threads``, run on that many threads.

    The thread count is fixed by the process's first HiGHS run: a different one makes
    ``run()`` return without a status, so ``threads`` restarts the global scheduler first.
    """
    import highspy

    with quiet_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if threads is not None:
        highspy.Highs.resetGlobalScheduler(True)
        h.setOptionValue("threads", threads)
    return h


def set_start(h: Any, values: np.ndarray) -> None:
    """Hand ``h`` a starting solution: one value for every column, in column order."""
    import highspy

    sol = highspy.HighsSolution()
    sol.col_value = np.asarray(values, dtype=np.float64)
    sol.value_valid = True
    h.setSolution(sol)


def dual_bound(info: Any, sign: float = 1.0) -> float | None:
    """``sign`` times the MIP dual bound of a ``HighsInfo``; None when there is none (or it is not finite)."""
    dual = getattr(info, "mip_dual_bound", None)
    return None if dual is None or not math.isfinite(dual) else sign * float(dual)
