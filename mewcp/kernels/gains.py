"""The gain vector shared by every dense method.

For a vertex set S, ``g(v) = sum_{u in S} w_uv``. EHGP peels with it (S = the
remaining vertices, least g leaves); the swap searches keep it for S = the current
solution, where exchanging ``u in S`` for ``v not in S`` changes the value by
``g(v) - g(u) - w_uv``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def set_gains(w: np.ndarray, members: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``g[i] = sum_{u in members} w[u, i]``, accumulated in the order of ``members``.

    Rows are added four at a time (``g += w[a] + w[b] + ...`` left to right), which is
    contiguous and vectorisable and touches ``g`` once per four rows; the additions
    happen in the same order as a plain loop, so the result is bit-identical to it.
    With ``members = arange(n)`` and symmetric ``w`` this is each row's sum, left to
    right.
    """
    n = w.shape[1]
    g = np.zeros(n)
    m = members.shape[0]
    j = 0
    while j + 4 <= m:
        r0, r1, r2, r3 = w[members[j]], w[members[j + 1]], w[members[j + 2]], w[members[j + 3]]
        for i in range(n):
            g[i] = (((g[i] + r0[i]) + r1[i]) + r2[i]) + r3[i]
        j += 4
    while j < m:
        r0 = w[members[j]]
        for i in range(n):
            g[i] += r0[i]
        j += 1
    return g


@njit(cache=True)
def swap_gains(g: np.ndarray, row_in: np.ndarray, row_out: np.ndarray) -> None:  # pragma: no cover
    """Update ``g`` in place after ``v`` (row ``row_in``) enters and ``u`` (``row_out``) leaves."""
    for i in range(g.shape[0]):
        g[i] += row_in[i] - row_out[i]


@njit(cache=True)
def add_gains(g: np.ndarray, row: np.ndarray) -> None:  # pragma: no cover
    """Update ``g`` in place after the vertex with weight row ``row`` joins the set."""
    for i in range(g.shape[0]):
        g[i] += row[i]
