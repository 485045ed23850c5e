"""How many channels each group loses: the threshold search behind `make_plan`.

Every function here works on channel *counts* per group and a cost function of those
counts (the cached `CostModel`); which channels go is the plan's business (`plan.py`).

* :class:`Budget` — each group's width, what it already lost, its floor, its rounding;
* :func:`global_counts` — one global score threshold (the paper, appendix D): bisect over
  the merged removal sequence for the largest reduction not above the target, then fill
  the remaining gap with later channels that still fit;
* :func:`uniform_counts` — the same removal ratio in every group (bisection on the ratio);
* :func:`give_back` — one channel back to the group most likely to have overshot, for
  groups whose partial members make counts an approximation of the true cost;
* :func:`protect_partial_producers` — never empty a producer that carries only part of
  a group.

Notes
-----
With ``room_g`` the channels group ``g`` may still lose and ``n_g <= room_g`` the chosen
counts, the search maximises ``reduction(n)`` subject to ``reduction(n) <= target``,
where in global mode ``n`` is restricted to prefixes of one sequence (every group's
removal order merged by score; equal scores spread by the fraction of the group already
removed), and in uniform mode to ``n_g = floor(ratio * size_g) - removed_g``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sirfp_adapter.groups import ChannelGroup

__all__ = ["Budget", "give_back", "global_counts", "keep_floor", "protect_partial_producers", "uniform_counts"]

#: reductions of a batch of count vectors, shape (n, groups) -> (n,)
Reductions = Callable[[np.ndarray], np.ndarray]


def keep_floor(size: int, min_keep: float | int) -> int:
    """Channels a group of ``size`` keeps at least: a fraction (rounded up) or a count."""
    if isinstance(min_keep, float):
        return max(1, math.ceil(min_keep * size))
    return max(1, min(size, min_keep))


@dataclass(frozen=True)
class Budget:
    """What each group may still lose.

    Attributes
    ----------
    sizes : ndarray of int
        Full widths.
    before : ndarray of int
        Channels already removed (masks of an earlier step).
    room : ndarray of int
        Channels each group may still lose above its floor.
    round_to : int
        Keep a multiple of this many channels (rounded up, capped at the width).
    """

    sizes: np.ndarray
    before: np.ndarray
    room: np.ndarray
    round_to: int

    @classmethod
    def of(cls, sizes: np.ndarray, before: np.ndarray, min_keep: float | int, round_to: int) -> Budget:
        floors = np.array([keep_floor(int(s), min_keep) for s in sizes], dtype=np.int64)
        active = sizes - before
        return cls(sizes, before, np.maximum(active - floors, 0), round_to)

    @property
    def active(self) -> np.ndarray:
        return self.sizes - self.before

    def rounded(self, n_remove: np.ndarray) -> np.ndarray:
        """``n_remove`` capped by the room and rounded so the kept count is a multiple of ``round_to``."""
        n_remove = np.minimum(n_remove, self.room)
        if self.round_to > 1:
            keep = self.active - n_remove
            keep = np.minimum(np.ceil(keep / self.round_to) * self.round_to, self.active).astype(np.int64)
            n_remove = self.active - keep
        return n_remove


def removal_sequence(scores: Sequence[np.ndarray], budget: Budget) -> tuple[np.ndarray, np.ndarray]:
    """Every removable channel in one sequence: ``(group of each, its score)``.

    Sorted by score; equal scores are spread across groups by the fraction of the group
    removed after the channel. Within a group the sequence is the group's own order;
    channels with an infinite score (never removable) are left out.
    """
    n_groups = budget.sizes.size
    room = [int(r) for r in budget.room]
    group_of = np.concatenate([np.full(room[g], g) for g in range(n_groups)] + [np.zeros(0, int)])
    step = np.concatenate([np.arange(room[g]) for g in range(n_groups)] + [np.zeros(0, int)])
    score = np.concatenate([np.asarray(s[: room[g]], dtype=np.float64) for g, s in enumerate(scores)]
                           + [np.zeros(0)])
    finite = np.isfinite(score)
    group_of, step, score = group_of[finite], step[finite], score[finite]
    order = np.lexsort((group_of, (step + 1) / budget.active[group_of], score))
    return group_of[order], score[order]


def global_counts(
    scores: Sequence[np.ndarray], budget: Budget, reductions: Reductions, target: float
) -> tuple[np.ndarray, float]:
    """Channels to remove per group under one global threshold, and the threshold.

    Parameters
    ----------
    scores : sequence of ndarray
        Each group's non-decreasing removal scores (its ranking's order).
    budget : Budget
    reductions : callable
        Reduction of the target metric for a batch of count vectors.
    target : float
    """
    group_of, score = removal_sequence(scores, budget)
    n_groups = budget.sizes.size

    def reduction(raw: np.ndarray) -> float:
        return float(reductions(budget.rounded(raw)[None, :])[0])

    def prefix(t: int) -> np.ndarray:
        return np.bincount(group_of[:t], minlength=n_groups)

    lo, hi = 0, group_of.size  # invariant: reduction(prefix(lo)) <= target < reduction(prefix(hi + 1))
    if reduction(prefix(hi)) <= target:
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if reduction(prefix(mid)) <= target:
            lo = mid
        else:
            hi = mid
    threshold = float(score[lo - 1]) if lo > 0 else float("-inf")
    raw = _fill(prefix(lo), group_of[lo:], reduction, target)
    return budget.rounded(raw), threshold


def _fill(raw: np.ndarray, rest: np.ndarray, reduction: Callable[[np.ndarray], float], target: float) -> np.ndarray:
    """Add later channels of the sequence while they fit: the threshold's next channel
    overshoots, but a cheaper channel of another group may not (a group whose next
    channel does not fit is closed)."""
    closed = np.zeros(raw.size, dtype=bool)
    current = reduction(raw)
    for g in rest:
        if current >= target - 1e-4 or closed.all():
            break
        if closed[g]:
            continue
        trial = raw.copy()
        trial[g] += 1
        value = reduction(trial)
        if value <= target:
            raw, current = trial, value
        else:
            closed[g] = True
    return raw


def uniform_counts(budget: Budget, reductions: Reductions, target: float) -> np.ndarray:
    """Channels to remove per group at the largest common ratio that meets the target."""

    def at_ratio(ratio: float) -> np.ndarray:
        return budget.rounded(np.maximum(np.floor(ratio * budget.sizes) - budget.before, 0).astype(np.int64))

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if reductions(at_ratio(mid)[None, :])[0] <= target:
            lo = mid
        else:
            hi = mid
    return at_ratio(lo)


def give_back(n_remove: np.ndarray, partial: np.ndarray, budget: Budget) -> np.ndarray:
    """Return one channel to the group that lost most among those with partial members
    (where counts only approximate the cost), or among all groups when none has."""
    candidates = np.where((n_remove > 0) & partial, n_remove, -1)
    if candidates.max() < 0:
        candidates = np.where(n_remove > 0, n_remove, -1)
    n_remove = n_remove.copy()
    n_remove[int(np.argmax(candidates))] -= 1
    return budget.rounded(n_remove)


def protect_partial_producers(group: ChannelGroup, order: np.ndarray, scores: np.ndarray,
                              min_keep: float | int) -> tuple[np.ndarray, np.ndarray]:
    """Move each partial producer's last ``min_keep`` channels to the end, never removed.

    A producer carrying only part of a group (a branch of a concatenation feeding a
    depthwise convolution) would otherwise lose all its channels when the group's order
    happens to list them first, leaving a layer with no output channels. Returns the new
    ``(order, scores)``; unchanged when the group has no partial producer.
    """
    partial = [m for m in group.producers if np.any(m.index < 0)]
    if not partial:
        return order, scores
    protected = np.zeros(group.size, dtype=bool)
    position = np.full(group.size, -1)
    position[order] = np.arange(order.size)
    for member in partial:
        channels = np.flatnonzero((member.index >= 0) & (position >= 0))
        if channels.size == 0:
            continue
        floor = min(keep_floor(int(np.count_nonzero(member.index >= 0)), min_keep), channels.size)
        protected[channels[np.argsort(position[channels])][-floor:]] = True
    keep_last = protected[order]
    if not keep_last.any():
        return order, scores
    return (np.concatenate([order[~keep_last], order[keep_last]]),
            np.concatenate([scores[~keep_last], np.full(int(keep_last.sum()), np.inf)]))
