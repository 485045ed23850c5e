"""Diversity problems from points: the complete graph of their pairwise distances.

Notes
-----
``from_points(P, metric)`` is the documented way to hand points to any method; the
weight of the pair ``(i, j)`` is ``d(p_i, p_j)``. Euclidean, squared Euclidean and
Manhattan distances are of negative type (Schoenberg 1938; L1 embeds in the squared
Euclidean metric), so `method="cutting_plane"` proves optima for them; Chebyshev
distances in three or more dimensions are in general not, and that method checks and
refuses them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from mewcp.problem import Problem, as_problem

__all__ = ["METRICS", "from_points"]

#: Accepted ``metric`` names (scipy.spatial.distance spelling).
METRICS = ("euclidean", "sqeuclidean", "cityblock", "chebyshev")


def from_points(
    points: Any,
    metric: str = "euclidean",
    *,
    labels: Sequence[Hashable] | None = None,
    default_k: int | None = None,
    name: str | None = None,
) -> Problem:
    """The complete graph whose weights are the distances between points.

    Parameters
    ----------
    points : array-like, shape (n, d)
        One row per point, finite coordinates.
    metric : {"euclidean", "sqeuclidean", "cityblock", "chebyshev"}
        The distance.
    labels : sequence, optional
        ``n`` distinct vertex labels (default: the row indices).
    default_k, name : optional
        Stored on the result (see `mewcp.Problem`).

    Returns
    -------
    Problem

    Examples
    --------
    >>> import mewcp
    >>> p = mewcp.from_points([[0, 0], [3, 4], [6, 8]])
    >>> mewcp.solve(p, 2, "brute").weight
    10.0
    """
    from scipy.spatial.distance import pdist, squareform

    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}; got {metric!r}")
    try:
        arr = np.asarray(points)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"points must be an (n, d) array of real numbers; converting failed: {exc}") from None
    if arr.dtype.kind not in "biuf":  # never cast: numpy would drop imaginary parts and parse strings
        raise TypeError(f"points must be an (n, d) array of real numbers (bool, integer or float); "
                        f"got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"points must be an (n, d) array with n >= 1 and d >= 1; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise ValueError(f"points must have finite coordinates; row {row} is {arr[row].tolist()!r}")
    problem = as_problem(squareform(pdist(arr, metric)), default_k=default_k, name=name)
    if labels is None:
        return problem
    labels = tuple(labels)
    if len(labels) != arr.shape[0] or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be {arr.shape[0]} distinct vertex labels, one per point; "
                         f"got {len(labels)} ({len(set(labels))} distinct)")
    return dataclasses.replace(problem, labels=labels)
