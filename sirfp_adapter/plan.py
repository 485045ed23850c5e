"""From channel rankings to a pruning plan: per-group MEWCP, one global threshold.

The plan is the decision step between statistics and mechanics:

1. **Rank** every group's channels: :func:`rank_redundancy` runs EHGP (``mewcp``) on
   the group's redundancy graph and records each channel's removal order and score
   ``s_k`` (SIRFP appendix D); criteria without a graph (``importance.py``) rank by
   ascending importance.
2. **Normalise** the scores so that groups compare: a removal score is divided by the
   number of channels it was summed over and by the group's mean edge weight (for
   importances: by the group's mean importance); then made non-decreasing along the
   removal order (a running maximum), so a threshold always removes a prefix.
3. **Threshold**: one global value ``tau`` removes, in every group, the prefix whose
   scores are ``<= tau``, subject to a per-group minimum keep and an optional
   ``round_to``. :func:`make_plan` bisects over the candidate values using the cached
   cost model (``cost.py``) for the largest reduction that does not exceed the target
   (equal scores are split across groups in proportion to their width), then fills the
   remaining gap with the next channels in score order that still fit — on small
   networks one more channel of a costly layer can otherwise overshoot by more than 1%.
4. **Choose** the channels: by default EHGP's survivors; with ``method=`` any other
   ``mewcp`` method re-solves each group's MEWCP at the chosen size, started from
   EHGP's answer (never worse).

Notes
-----
Normalisation rule: with ``a`` the group's redundancy-graph weights (``1 - r``, large for
distinct channels), EHGP removes channel ``i`` when its summed weight to the ``m - 1``
channels still present, ``s_k``, is the smallest. The normalised score
``s_k / (m - 1) / mean(a)`` is the mean distinctiveness of the channel relative to its
group's average, so neither a group's width (which scales ``s_k``) nor the overall level
of its weights (which varies with map size and depth) decides which group loses
channels first; what is compared is how much less distinct a channel is than its
group's typical channel. The released code compares raw scores and so cuts small-map
layers first. A measure's additive offset is not removed (``js`` weights start at
``1 - log 2`` for identical maps), so a planted duplicate is the first channel removed
from its own group, not necessarily the first across groups.

References
----------
Wu et al., "Structural Pruning via Spatial-aware Information Redundancy for Semantic
Segmentation", AAAI 2025, Eq. 2, Algorithm 1 and appendix D.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

import mewcp
from sirfp_adapter.cost import CostModel
from sirfp_adapter.groups import ChannelGroup, ChannelGroups

__all__ = ["NORMALIZATIONS", "PruningPlan", "Ranking", "check_plan_options", "group_matrix", "make_plan", "rank_importance", "rank_redundancy"]

Mode = Literal["global", "uniform"]


@dataclass(frozen=True)
class Ranking:
    """One group's channels in removal order.

    Attributes
    ----------
    order : ndarray of int
        Active group-local channel indices, the first to remove first.
    scores : ndarray of float
        Normalised, non-decreasing removal score of each channel of ``order``
        (``inf`` for a channel that must never be removed).
    matrix : ndarray or None
        The group's redundancy-graph weights over ``order``'s channels sorted by index
        (for re-solving with another MEWCP method); ``None`` for importance criteria.
    """

    order: np.ndarray
    scores: np.ndarray
    matrix: np.ndarray | None = None


@dataclass(frozen=True)
class PruningPlan:
    """Which channels to remove, and what that is predicted to cost.

    Attributes
    ----------
    remove : dict of str to ndarray
        Group name (root layer) to the group-local channel indices to remove now
        (sorted; groups with nothing to remove are absent).
    keep : dict of str to int
        Channels each group keeps.
    flops, params : float
        Predicted FLOPs and parameters after the plan (``CostModel`` units).
    flops_reduction, params_reduction : float
        Achieved reductions relative to the cost model's base model.
    target : float
        The requested reduction (of ``metric``).
    metric : {"flops", "params"}
    threshold : float
        The global score threshold (``nan`` in uniform mode).
    planning_time : float
        Seconds spent ranking and searching.
    notes : tuple of str
        Warnings, e.g. a target the floors kept out of reach.
    clique_weights : dict of str to float
        For redundancy rankings: the MEWCP objective (summed edge weight) of each
        pruned group's kept channels — what a better per-group solver increases.
    """

    remove: dict[str, np.ndarray]
    keep: dict[str, int]
    flops: float
    params: float
    flops_reduction: float
    params_reduction: float
    target: float
    metric: str
    threshold: float
    planning_time: float = 0.0
    notes: tuple[str, ...] = field(default=())
    clique_weights: dict[str, float] = field(default_factory=dict)

    @property
    def achieved(self) -> float:
        """The achieved reduction of the target metric."""
        return self.flops_reduction if self.metric == "flops" else self.params_reduction

    def summary(self) -> str:
        lines = [
            f"target {self.metric} reduction {self.target:.1%}: achieved {self.achieved:.2%} "
            f"(FLOPs -{self.flops_reduction:.2%}, params -{self.params_reduction:.2%}), "
            f"{sum(len(v) for v in self.remove.values())} channels removed in {len(self.remove)} groups, "
            f"planned in {self.planning_time:.2f} s"
        ]
        lines += list(self.notes)
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Ranking
# ---------------------------------------------------------------------------


def group_matrix(group: ChannelGroup, matrices: Mapping[str, np.ndarray]) -> np.ndarray:
    """The group's redundancy graph from its measured members' matrices.

    Notes
    -----
    Every member carries group channels (a residual stream's blocks, a convolution and
    its BatchNorm), so a member's edge ``(i, j)`` is a group edge. Edge ``(i, j)`` is
    the mean over the members that carry both channels. A member may carry only part
    of the group — a concatenation feeding a depthwise convolution, as in DeepLabV3+'s
    decoder — so some pairs are measured by no member; they get the mean of the
    measured off-diagonal edges (neutral: neither redundant nor distinct). Members not
    in ``matrices`` are skipped; a group with none measured raises ``KeyError``.
    """
    size = group.size
    total = np.zeros((size, size))
    count = np.zeros((size, size))
    for member in group.features:
        if member.name not in matrices:
            continue
        where = np.flatnonzero(member.index >= 0)
        idx = member.index[where]
        block = np.ix_(where, where)
        total[block] += np.asarray(matrices[member.name], dtype=np.float64)[np.ix_(idx, idx)]
        count[block] += 1
    if not count.any():
        raise KeyError(f"no redundancy matrix for group {group.name!r} (measured at {list(group.feature_layers)})")
    measured = count > 0
    matrix = np.divide(total, count, out=np.zeros_like(total), where=measured)
    if not measured.all():
        off = measured & ~np.eye(size, dtype=bool)
        fill = matrix[off].mean() if off.any() else 0.0
        matrix[~measured] = fill
    return matrix


NORMALIZATIONS = ("mean", "range")


def rank_redundancy(
    matrix: np.ndarray, active: np.ndarray | None = None, normalization: str = "mean"
) -> Ranking:
    """Rank a group's channels by EHGP on its redundancy graph (the paper's criterion).

    Parameters
    ----------
    matrix : ndarray, shape (C, C)
        Edge weights ``a_ij`` (the collector's EMA of ``1 - r``).
    active : ndarray of bool, optional
        Channels still present (default all); the others are left out of the graph.
    normalization : {"mean", "range"}
        How removal scores are made comparable across groups: the mean weight to the
        remaining channels divided by the group's mean edge weight (``"mean"``), or
        placed between the group's smallest and mean edge weight (``"range"``:
        ``(w - min) / (mean - min)``, which also removes a measure's additive offset).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    size = matrix.shape[0]
    channels = np.arange(size) if active is None else np.flatnonzero(active)
    sub = matrix[np.ix_(channels, channels)]
    m = channels.size
    if m == 1:
        return Ranking(channels.copy(), np.array([np.inf]), sub)
    peel = mewcp.ehgp_order(sub)
    remaining = np.arange(m, 0, -1) - 1  # channels summed over when each is removed
    off = sub[~np.eye(m, dtype=bool)]
    mean_weight = float(off.mean())
    floor = float(off.min()) if normalization == "range" else 0.0
    scale = mean_weight - floor
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.asarray(peel.scores) / np.maximum(remaining, 1)
        if abs(scale) > 1e-12:
            scores = (weights - floor) / scale
        else:  # every edge equal: nothing tells the channels apart, score them as average
            scores = np.ones(m)
        scores = np.where(remaining > 0, scores, np.inf)
    return Ranking(channels[np.asarray(peel.order)], np.maximum.accumulate(scores), sub)


def rank_importance(importance: np.ndarray, active: np.ndarray | None = None) -> Ranking:
    """Rank a group's channels by ascending importance (baseline criteria), scores
    divided by the group's mean importance."""
    importance = np.asarray(importance, dtype=np.float64)
    channels = np.arange(importance.size) if active is None else np.flatnonzero(active)
    values = importance[channels]
    if not np.all(np.isfinite(values)):
        raise ValueError("importance must be finite")
    order = np.argsort(values, kind="stable")
    mean = float(np.mean(np.abs(values)))
    scores = values[order] / (mean if mean > 0 else 1.0)
    return Ranking(channels[order], np.maximum.accumulate(scores))


# ---------------------------------------------------------------------------
# Threshold search
# ---------------------------------------------------------------------------


def _keep_floor(size: int, min_keep: float | int) -> int:
    if isinstance(min_keep, float):
        return max(1, math.ceil(min_keep * size))
    return max(1, min(size, min_keep))


def check_plan_options(
    target: object, metric: object, mode: object, min_keep: object, round_to: object, method: object = "ehgp"
) -> None:
    """Validate :func:`make_plan`'s options (also used by ``SIRFPPruner`` up front)."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 <= float(target) < 1.0:
        raise ValueError(f"the reduction target must be a number in [0, 1), got {target!r}")
    if metric not in ("flops", "params"):
        raise ValueError(f"metric must be 'flops' or 'params', got {metric!r}")
    if mode not in ("global", "uniform"):
        raise ValueError(f"mode must be 'global' or 'uniform', got {mode!r}")
    if isinstance(min_keep, bool) or not (
        (isinstance(min_keep, float) and 0.0 <= min_keep <= 1.0) or (isinstance(min_keep, int) and min_keep >= 1)
    ):
        raise ValueError(f"min_keep must be a fraction in [0, 1] or a channel count >= 1, got {min_keep!r}")
    if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f"round_to must be an integer >= 1, got {round_to!r}")
    names = [m.name for m in mewcp.methods()]
    if method not in names:
        raise ValueError(f"method must be one of {names}, got {method!r}")


def make_plan(
    groups: ChannelGroups,
    cost: CostModel,
    rankings: Sequence[Ranking],
    target: float,
    *,
    metric: Literal["flops", "params"] = "flops",
    mode: Mode = "global",
    min_keep: float | int = 0.1,
    round_to: int = 1,
    removed: Sequence[int] | np.ndarray | None = None,
    method: str = "ehgp",
    method_options: Mapping[str, object] | None = None,
) -> PruningPlan:
    """Choose the channels to remove so the network meets a reduction target.

    Parameters
    ----------
    groups : ChannelGroups
    cost : CostModel
        Built for ``groups`` on the unpruned model: reductions are relative to it.
    rankings : sequence of Ranking
        One per group (its active channels).
    target : float
        Reduction of ``metric`` to reach, in [0, 1) (0.6 removes 60% of the FLOPs). The
        plan never exceeds it; it falls short only where ``min_keep`` or granularity
        stop it (``plan.notes`` says so).
    metric : {"flops", "params"}
    mode : {"global", "uniform"}
        One threshold across groups (the paper), or the same removal ratio in every group.
    min_keep : float or int
        Per-group floor: a fraction of the group's full width (rounded up) or a count.
    round_to : int
        Keep a multiple of ``round_to`` channels per group (rounded up, capped at the width).
    removed : sequence of int, optional
        Channels already removed per group (masks from an earlier step); the plan
        removes more on top, chosen among each ranking's channels.
    method : str
        ``mewcp`` method that picks each group's kept channels at the chosen size
        (``"ehgp"``: EHGP's own survivors). Needs rankings from :func:`rank_redundancy`.
    method_options : mapping, optional
        Extra keywords for ``mewcp.solve`` (e.g. ``time_limit``, ``seed``).
    """
    started = time.perf_counter()
    check_plan_options(target, metric, mode, min_keep, round_to, method)
    if len(rankings) != len(groups):
        raise ValueError(f"rankings must hold one Ranking per group ({len(groups)}), got {len(rankings)}")
    sizes = np.array([g.size for g in groups])
    before = np.zeros(len(groups), dtype=np.int64) if removed is None else np.asarray(removed, dtype=np.int64)
    floors = np.array([_keep_floor(int(s), min_keep) for s in sizes])
    active = sizes - before
    if np.any(active != [r.order.size for r in rankings]):
        raise ValueError("each ranking must cover exactly the channels its group still has")
    rankings = [_protect_partial_producers(g, r, min_keep) for g, r in zip(groups, rankings, strict=True)]
    # most channels each group may still lose
    room = np.maximum(active - np.maximum(floors, 0), 0)

    def rounded(n_remove: np.ndarray) -> np.ndarray:
        n_remove = np.minimum(n_remove, room)
        if round_to > 1:
            keep = active - n_remove
            keep = np.minimum(np.ceil(keep / round_to) * round_to, active).astype(np.int64)
            n_remove = active - keep
        return n_remove

    evaluate = cost.flops_many if metric == "flops" else cost.params_many
    base = cost.flops_base if metric == "flops" else cost.params_base

    def reductions(candidates: np.ndarray) -> np.ndarray:
        return 1.0 - evaluate(before[None, :] + candidates) / base

    if mode == "global":
        # every removable channel in one sequence: by score, ties spread across groups by
        # the fraction of the group already removed; per group this is its own order
        group_of = np.concatenate([np.full(int(room[g]), g) for g in range(len(groups))] + [np.zeros(0, int)])
        step = np.concatenate([np.arange(int(room[g])) for g in range(len(groups))] + [np.zeros(0, int)])
        score = np.concatenate([r.scores[: int(room[g])] for g, r in enumerate(rankings)] + [np.zeros(0)])
        finite = np.isfinite(score)
        group_of, step, score = group_of[finite], step[finite], score[finite]
        sequence = np.lexsort((group_of, (step + 1) / active[group_of], score))
        group_of, score = group_of[sequence], score[sequence]
        n_groups = len(groups)

        def counts(t: int) -> np.ndarray:
            return rounded(np.bincount(group_of[:t], minlength=n_groups))

        lo, hi = 0, group_of.size  # invariant: reduction(counts(lo)) <= target < reduction(counts(hi + 1))
        if reductions(counts(hi)[None, :])[0] <= target:
            lo = hi
        else:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if reductions(counts(mid)[None, :])[0] <= target:
                    lo = mid
                else:
                    hi = mid
        threshold = float(score[lo - 1]) if lo > 0 else float("-inf")
        # fill: the threshold's next channel overshoots; later channels of other groups
        # may still fit (a group whose next channel does not fit is closed)
        raw = np.bincount(group_of[:lo], minlength=n_groups)
        closed = np.zeros(n_groups, dtype=bool)
        current = reductions(rounded(raw)[None, :])[0]
        for g in group_of[lo:]:
            if current >= target - 1e-4 or closed.all():
                break
            if closed[g]:
                continue
            trial = raw.copy()
            trial[g] += 1
            value = reductions(rounded(trial)[None, :])[0]
            if value <= target:
                raw, current = trial, value
            else:
                closed[g] = True
        n_remove = rounded(raw)
    else:
        def at_ratio(ratio: float) -> np.ndarray:
            return rounded(np.maximum(np.floor(ratio * sizes) - before, 0).astype(np.int64))

        lo_r, hi_r = 0.0, 1.0
        for _ in range(60):
            mid_r = (lo_r + hi_r) / 2
            if reductions(at_ratio(mid_r)[None, :])[0] <= target:
                lo_r = mid_r
            else:
                hi_r = mid_r
        n_remove = at_ratio(lo_r)
        threshold = float("nan")

    plan_remove: dict[str, np.ndarray] = {}
    weights: dict[str, float] = {}
    options = dict(method_options or {})
    gone = [np.setdiff1d(np.arange(g.size), r.order) for g, r in zip(groups, rankings, strict=True)]
    while True:
        for g, (group, ranking, n) in enumerate(zip(groups, rankings, n_remove, strict=True)):
            if n == 0:
                plan_remove.pop(group.name, None)
                continue
            if method == "ehgp" or ranking.matrix is None:
                chosen = ranking.order[: int(n)]
            else:
                chosen = _resolve(ranking, int(active[g] - n), method, options)
                if np.isin(chosen, ranking.order[~np.isfinite(ranking.scores)]).any():
                    chosen = ranking.order[: int(n)]  # the solver emptied a partial producer: keep EHGP's choice
            plan_remove[group.name] = np.sort(chosen)
        flops, params = cost.exact([np.concatenate([gone[g], plan_remove.get(group.name, np.zeros(0, int))])
                                    for g, group in enumerate(groups)])
        value = flops if metric == "flops" else params
        if 1.0 - value / base <= target + 1e-12 or not n_remove.any():
            break
        # partial members took more than their even share: give a channel back to the
        # group with partial members that lost most, and check again
        partial = np.array([any(np.any(m.index < 0) for m in g.producers + g.consumers) for g in groups])
        candidates = np.where((n_remove > 0) & partial, n_remove, -1)
        if candidates.max() < 0:
            candidates = np.where(n_remove > 0, n_remove, -1)
        n_remove = n_remove.copy()
        n_remove[int(np.argmax(candidates))] -= 1
        n_remove = rounded(n_remove)
    for g, (group, ranking) in enumerate(zip(groups, rankings, strict=True)):
        if ranking.matrix is not None and group.name in plan_remove:
            kept = ~np.isin(np.sort(ranking.order), plan_remove[group.name])
            weights[group.name] = float(np.triu(ranking.matrix[np.ix_(kept, kept)], 1).sum())
    achieved = 1.0 - (flops if metric == "flops" else params) / base
    notes: list[str] = []
    if achieved < target - 0.01:
        notes.append(
            f"target not reached: {achieved:.2%} < {target:.1%} — the per-group floor (min_keep={min_keep!r}) "
            f"or round_to={round_to} stops further removal"
        )
    return PruningPlan(
        remove=plan_remove,
        keep={g.name: int(a - n) for g, a, n in zip(groups, active, n_remove, strict=True)},
        flops=flops,
        params=params,
        flops_reduction=1.0 - flops / cost.flops_base,
        params_reduction=1.0 - params / cost.params_base,
        target=float(target),
        metric=metric,
        threshold=threshold,
        planning_time=time.perf_counter() - started,
        notes=tuple(notes),
        clique_weights=weights,
    )


def _protect_partial_producers(group: ChannelGroup, ranking: Ranking, min_keep: float | int) -> Ranking:
    """Move each partial producer's last ``min_keep`` channels to the end, never removed.

    A producer carrying only part of a group (a branch of a concatenation feeding a
    depthwise convolution) would otherwise lose all its channels when the group's
    order happens to list them first, leaving a layer with no output channels.
    """
    partial = [m for m in group.producers if np.any(m.index < 0)]
    if not partial:
        return ranking
    protected = np.zeros(group.size, dtype=bool)
    position = np.full(group.size, -1)
    position[ranking.order] = np.arange(ranking.order.size)
    for member in partial:
        channels = np.flatnonzero((member.index >= 0) & (position >= 0))
        if channels.size == 0:
            continue
        floor = min(_keep_floor(int(np.count_nonzero(member.index >= 0)), min_keep), channels.size)
        protected[channels[np.argsort(position[channels])][-floor:]] = True
    if not protected[ranking.order].any():
        return ranking
    keep_last = protected[ranking.order]
    order = np.concatenate([ranking.order[~keep_last], ranking.order[keep_last]])
    scores = np.concatenate([ranking.scores[~keep_last], np.full(int(keep_last.sum()), np.inf)])
    return Ranking(order, scores, ranking.matrix)


def _resolve(ranking: Ranking, keep: int, method: str, options: Mapping[str, object]) -> np.ndarray:
    """Channels to remove when ``method`` picks the ``keep`` survivors of a group."""
    channels = np.sort(ranking.order)
    assert ranking.matrix is not None
    solution = mewcp.solve(ranking.matrix, keep, method, **options)  # type: ignore[arg-type]
    kept = np.zeros(channels.size, dtype=bool)
    kept[np.asarray(solution.indices)] = True
    return channels[~kept]
