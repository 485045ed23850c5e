"""From channel rankings to a pruning plan: per-group MEWCP, one global threshold.

The plan is the decision step between statistics and mechanics:

1. **Rank** every group's channels: :func:`rank_redundancy` runs EHGP (``mewcp``) on
   the group's redundancy graph and records each channel's removal order and score
   ``s_k`` (SIRFP appendix D); criteria without a graph (`sirfp_adapter.criteria`) rank
   by ascending importance (:func:`rank_importance`).
2. **Calibrate** the scores so that groups compare: a removal score is divided by the
   number of channels it was summed over and by the group's mean edge weight (for
   importances: by the group's mean importance); then made non-decreasing along the
   removal order (a running maximum), so a threshold always removes a prefix.
3. **Threshold**: one global value ``tau`` removes, in every group, the prefix whose
   scores are ``<= tau``, subject to a per-group minimum keep and an optional
   ``round_to``: the search over the cached cost model (``cost.py``) lives in
   `sirfp_adapter.threshold`.
4. **Choose** the channels: by default EHGP's survivors; with ``method=`` any other
   ``mewcp`` method re-solves each group's MEWCP at the chosen size, started from
   EHGP's answer (never worse). This module is the adapter's only caller of ``mewcp``.

Notes
-----
Calibration rule (``calibration="mean"``): with ``a`` the group's redundancy-graph weights (``1 - r``, large for
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

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

import mewcp
from sirfp_adapter.cost import CostModel
from sirfp_adapter.groups import ChannelGroup, ChannelGroups
from sirfp_adapter.threshold import Budget, give_back, global_counts, protect_partial_producers, uniform_counts

__all__ = ["CALIBRATIONS", "PlanOptions", "PruningPlan", "Ranking", "check_target", "group_matrix", "make_plan",
           "rank_importance", "rank_redundancy"]

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


CALIBRATIONS = ("mean", "range", "none")


def rank_redundancy(
    matrix: np.ndarray, active: np.ndarray | None = None, calibration: str = "mean"
) -> Ranking:
    """Rank a group's channels by EHGP on its redundancy graph (the paper's criterion).

    Parameters
    ----------
    matrix : ndarray, shape (C, C)
        Edge weights ``a_ij`` (the collector's EMA of ``1 - r``).
    active : ndarray of bool, optional
        Channels still present (default all); the others are left out of the graph.
    calibration : {"mean", "range", "none"}
        How removal scores are made comparable across groups: the mean weight to the
        remaining channels divided by the group's mean edge weight (``"mean"``), or
        placed between the group's smallest and mean edge weight (``"range"``:
        ``(w - min) / (mean - min)``, which also removes a measure's additive offset),
        or EHGP's raw ``s_k`` (``"none"``: the released code, not comparable across
        groups of different widths).

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([[0, .9, .8, .1], [.9, 0, .7, .2], [.8, .7, 0, .1], [.1, .2, .1, 0]])
    >>> rank_redundancy(w).order[:2]  # channel 3 is the least distinct: removed first, then 2
    array([3, 2])
    """
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"matrix must be a square (C, C) array of edge weights, got shape {matrix.shape}")
    size = matrix.shape[0]
    channels = _active_channels(active, size)
    sub = matrix[np.ix_(channels, channels)]
    m = channels.size
    if m == 1:
        return Ranking(channels.copy(), np.array([np.inf]), sub)
    peel = mewcp.ehgp_order(sub)
    remaining = np.arange(m, 0, -1) - 1  # channels summed over when each is removed
    raw = np.asarray(peel.scores, dtype=np.float64)
    if calibration == "none":
        scores = raw
    else:
        off = sub[~np.eye(m, dtype=bool)]
        floor = float(off.min()) if calibration == "range" else 0.0
        scale = float(off.mean()) - floor
        with np.errstate(divide="ignore", invalid="ignore"):
            weights = raw / np.maximum(remaining, 1)
            # every edge equal: nothing tells the channels apart, score them as average
            scores = (weights - floor) / scale if abs(scale) > 1e-12 else np.ones(m)
    scores = np.where(remaining > 0, scores, np.inf)
    return Ranking(channels[np.asarray(peel.order)], np.maximum.accumulate(scores), sub)


def _active_channels(active: np.ndarray | None, size: int) -> np.ndarray:
    """The indices of the ``True`` entries of ``active`` (all ``size`` channels when None),
    refused unless ``active`` is a bool mask of ``size`` channels with one of them set."""
    if active is None:
        return np.arange(size)
    mask = np.asarray(active)
    if mask.dtype != np.bool_ or mask.shape != (size,):
        raise ValueError(f"active must be a bool mask of the {size} channels, got {mask.dtype} of shape {mask.shape}")
    if not mask.any():
        raise ValueError("active must keep at least one channel")
    return np.flatnonzero(mask)


def rank_importance(importance: np.ndarray, active: np.ndarray | None = None) -> Ranking:
    """Rank a group's channels by ascending importance (baseline criteria), scores
    divided by the group's mean importance."""
    importance = np.asarray(importance, dtype=np.float64)
    if importance.ndim != 1:
        raise ValueError(f"importance must hold one value per channel (1-D), got shape {importance.shape}")
    channels = _active_channels(active, importance.size)
    values = importance[channels]
    if not np.all(np.isfinite(values)):
        raise ValueError("importance must be finite")
    order = np.argsort(values, kind="stable")
    mean = float(np.mean(np.abs(values)))
    scores = values[order] / (mean if mean > 0 else 1.0)
    return Ranking(channels[order], np.maximum.accumulate(scores))


# ---------------------------------------------------------------------------
# Options and the plan
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanOptions:
    """How a target becomes a plan (validated on construction).

    Attributes
    ----------
    mode : {"global", "uniform"}
        One score threshold across groups (the paper), or the same removal ratio in every group.
    min_keep : float or int
        Per-group floor: a fraction of the group's full width (rounded up) or a count.
    round_to : int
        Keep a multiple of ``round_to`` channels per group (rounded up, capped at the width).
    method : str
        ``mewcp`` method that picks each group's kept channels at the chosen size
        (``"ehgp"``: EHGP's own survivors). Needs rankings with a redundancy matrix.
    method_options : mapping, optional
        Extra keywords for ``mewcp.solve`` (e.g. ``time_limit``, ``seed``).
    """

    mode: Mode = "global"
    min_keep: float | int = 0.1
    round_to: int = 1
    method: str = "ehgp"
    method_options: Mapping[str, object] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("global", "uniform"):
            raise ValueError(f"mode must be 'global' or 'uniform', got {self.mode!r}")
        min_keep = self.min_keep
        if isinstance(min_keep, bool) or not (
            (isinstance(min_keep, float) and 0.0 <= min_keep <= 1.0) or (isinstance(min_keep, int) and min_keep >= 1)
        ):
            raise ValueError(f"min_keep must be a fraction in [0, 1] or a channel count >= 1, got {min_keep!r}")
        if isinstance(self.round_to, bool) or not isinstance(self.round_to, int) or self.round_to < 1:
            raise ValueError(f"round_to must be an integer >= 1, got {self.round_to!r}")
        names = [m.name for m in mewcp.methods()]
        if self.method not in names:
            raise ValueError(f"method must be one of {names}, got {self.method!r}")
        if self.method_options is not None and not isinstance(self.method_options, Mapping):
            raise TypeError(f"method_options must be a mapping or None, got {type(self.method_options).__name__}")
        if self.method_options:
            _check_method_options(self.method, self.method_options)


#: ``mewcp.solve`` arguments the plan sets itself (the graph, the kept size, exact size).
_PLAN_SETS = ("data", "k", "method", "size", "weight")


def _check_method_options(method: str, options: Mapping[str, object]) -> None:
    """Refuse ``options`` that ``mewcp.solve`` would refuse at the first pruning step:
    checked by solving a one-vertex graph, which checks every argument and returns at
    once (no edge: nothing to search)."""
    taken = [k for k in options if k in _PLAN_SETS]
    if taken:
        raise ValueError(f"method_options must not set {taken}: the plan sets them")
    try:
        mewcp.solve(np.zeros((1, 1)), 1, method, **options)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"method_options: {exc}") from None


def check_target(target: object, metric: object) -> None:
    """Validate a reduction target and its metric."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 <= float(target) < 1.0:
        raise ValueError(f"the reduction target must be a number in [0, 1), got {target!r}")
    if metric not in ("flops", "params"):
        raise ValueError(f"metric must be 'flops' or 'params', got {metric!r}")


def make_plan(
    groups: ChannelGroups,
    cost: CostModel,
    rankings: Sequence[Ranking],
    target: float,
    *,
    metric: Literal["flops", "params"] = "flops",
    removed: Sequence[int] | np.ndarray | None = None,
    options: PlanOptions | None = None,
    **option_values: object,
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
    removed : sequence of int, optional
        Channels already removed per group (masks from an earlier step); the plan
        removes more on top, chosen among each ranking's channels.
    options : PlanOptions, optional
        Mode, floors, rounding and per-group solver; or give its fields as keywords
        (``make_plan(..., mode="uniform", min_keep=0.25)``).
    """
    started = time.perf_counter()
    check_target(target, metric)
    if options is not None and option_values:
        raise TypeError("give either options= or its fields as keywords, not both")
    opts = options if options is not None else PlanOptions(**option_values)  # type: ignore[arg-type]
    if len(rankings) != len(groups):
        raise ValueError(f"rankings must hold one Ranking per group ({len(groups)}), got {len(rankings)}")
    sizes = np.array([g.size for g in groups], dtype=np.int64)
    before = np.zeros(len(groups), dtype=np.int64) if removed is None else np.asarray(removed, dtype=np.int64)
    if np.any(sizes - before != [r.order.size for r in rankings]):
        raise ValueError("each ranking must cover exactly the channels its group still has")
    rankings = [_protected(g, r, opts.min_keep) for g, r in zip(groups, rankings, strict=True)]
    budget = Budget.of(sizes, before, opts.min_keep, opts.round_to)
    evaluate = cost.flops_many if metric == "flops" else cost.params_many
    base = cost.flops_base if metric == "flops" else cost.params_base

    def reductions(candidates: np.ndarray) -> np.ndarray:
        return 1.0 - evaluate(before[None, :] + candidates) / base

    if opts.mode == "global":
        n_remove, threshold = global_counts([r.scores for r in rankings], budget, reductions, target)
    else:
        n_remove, threshold = uniform_counts(budget, reductions, target), float("nan")
    remove, (flops, params), n_remove = _choose(groups, cost, rankings, n_remove, budget, metric, target, opts)
    achieved = 1.0 - (flops if metric == "flops" else params) / base
    notes: list[str] = []
    if achieved < target - 0.01 and not len(groups):
        notes.append(f"target not reached: {achieved:.2%} < {target:.1%} — the model has no prunable channel group "
                     f"(every layer that could be pruned is an output layer, ignored or left out)")
    elif achieved < target - 0.01:
        notes.append(
            f"target not reached: {achieved:.2%} < {target:.1%} — the per-group floor (min_keep={opts.min_keep!r}) "
            f"or round_to={opts.round_to} stops further removal"
        )
    return PruningPlan(
        remove=remove,
        keep={g.name: int(a - n) for g, a, n in zip(groups, budget.active, n_remove, strict=True)},
        flops=flops,
        params=params,
        flops_reduction=1.0 - flops / cost.flops_base,
        params_reduction=1.0 - params / cost.params_base,
        target=float(target),
        metric=metric,
        threshold=threshold,
        planning_time=time.perf_counter() - started,
        notes=tuple(notes),
        clique_weights=_clique_weights(groups, rankings, remove),
    )


def _protected(group: ChannelGroup, ranking: Ranking, min_keep: float | int) -> Ranking:
    order, scores = protect_partial_producers(group, ranking.order, ranking.scores, min_keep)
    return ranking if order is ranking.order else Ranking(order, scores, ranking.matrix)


def _choose(
    groups: ChannelGroups, cost: CostModel, rankings: Sequence[Ranking], n_remove: np.ndarray, budget: Budget,
    metric: str, target: float, opts: PlanOptions,
) -> tuple[dict[str, np.ndarray], tuple[float, float], np.ndarray]:
    """The channels behind the counts, their exact cost, and the final counts.

    Counts are exact costs unless a member carries only part of a group; then the
    chosen channels may cost more than their even share, and a channel goes back to the
    group with partial members that lost most until the exact cost meets the target.
    """
    base = cost.flops_base if metric == "flops" else cost.params_base
    options = dict(opts.method_options or {})
    gone = [np.setdiff1d(np.arange(g.size), r.order) for g, r in zip(groups, rankings, strict=True)]
    partial = np.array([any(np.any(m.index < 0) for m in g.producers + g.consumers) for g in groups])
    while True:
        remove = {group.name: np.sort(_channels(ranking, int(n), opts.method, options))
                  for group, ranking, n in zip(groups, rankings, n_remove, strict=True) if n > 0}
        flops, params = cost.for_channels([np.concatenate([gone[g], remove.get(group.name, np.zeros(0, int))])
                                           for g, group in enumerate(groups)])
        value = flops if metric == "flops" else params
        if 1.0 - value / base <= target + 1e-12 or not n_remove.any():
            return remove, (flops, params), n_remove
        n_remove = give_back(n_remove, partial, budget)


def _channels(ranking: Ranking, n: int, method: str, options: Mapping[str, object]) -> np.ndarray:
    """The ``n`` channels a group loses: the ranking's first ``n``, or those left out by
    ``method``'s clique of the remaining size (never a protected channel)."""
    if method == "ehgp" or ranking.matrix is None:
        return ranking.order[:n]
    chosen = _resolve(ranking, ranking.order.size - n, method, options)
    if np.isin(chosen, ranking.order[~np.isfinite(ranking.scores)]).any():
        return ranking.order[:n]  # the solver emptied a partial producer: keep EHGP's choice
    return chosen


def _clique_weights(groups: ChannelGroups, rankings: Sequence[Ranking], remove: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The MEWCP objective of each pruned group's kept channels (redundancy rankings only)."""
    weights: dict[str, float] = {}
    for group, ranking in zip(groups, rankings, strict=True):
        if ranking.matrix is not None and group.name in remove:
            kept = ~np.isin(np.sort(ranking.order), remove[group.name])
            weights[group.name] = float(np.triu(ranking.matrix[np.ix_(kept, kept)], 1).sum())
    return weights


def _resolve(ranking: Ranking, keep: int, method: str, options: Mapping[str, object]) -> np.ndarray:
    """Channels to remove when ``method`` picks the ``keep`` survivors of a group."""
    channels = np.sort(ranking.order)
    assert ranking.matrix is not None
    solution = mewcp.solve(ranking.matrix, keep, method, **options)  # type: ignore[arg-type]
    kept = np.zeros(channels.size, dtype=bool)
    kept[np.asarray(solution.indices)] = True
    return channels[~kept]
