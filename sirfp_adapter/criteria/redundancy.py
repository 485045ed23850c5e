"""SIRFP's criteria: channels ranked by EHGP on a redundancy graph collected in training.

* ``sirfp`` — :class:`SIRFP`, the recommended configuration (see docs "What makes SIRFP
  work"): EHGP on the Jensen–Shannon graph chooses *which* channels go, a measured
  budget (`Sensitivity`: the output distortion of removing them) decides *how many*
  per group, the EMA is a running mean until its horizon, and maps too small to carry
  spatial information are ranked by a documented fallback; every ingredient is an
  option (``budget=None`` is the paper's calibrated threshold on redundancy itself);
* ``sirfp-paper`` — :class:`PaperSIRFP`, the paper as written: Jensen–Shannon between
  softmax-normalised full-resolution maps, EMA decay 0.99, scores calibrated by the
  group's mean edge weight (Wu et al., AAAI 2025, Eqs. 2-4, appendix D);
* ``sirfp-released`` — :class:`ReleasedSIRFP`, what the released code scores: the Gram
  of L1-normalised signed BatchNorm outputs, EMA decay 0.999 from zero, raw EHGP scores,
  plus an additive prior ``0.4 * EMA(|dL/dgamma|)`` that the paper does not mention
  (`../shared/sirfp-notes.md`).

Notes
-----
A map with too few positions carries no spatial information: the softmax over a 1×1
map is 1 for every channel, so every pair looks identical and the graph says nothing.
Groups whose measured maps have fewer than ``min_positions`` positions (the image-pool
branch of an ASPP, say) are ranked by the ``fallback`` criterion instead (default: the
filters' L1 norm), with a warning naming them — never cut blindly.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from sirfp_adapter.collector import RedundancyCollector
from sirfp_adapter.criteria.base import Criterion
from sirfp_adapter.criteria.importance import L1
from sirfp_adapter.groups import ChannelGroup
from sirfp_adapter.measures import get_measure
from sirfp_adapter.plan import CALIBRATIONS, Ranking, group_matrix, rank_redundancy

__all__ = ["DEFAULT_EVERY", "DEFAULT_MAX_SAMPLES", "DEFAULT_POSITIONS", "PaperSIRFP", "ReleasedSIRFP", "SIRFP"]

#: The default collection budget during training: one measured pass in ``DEFAULT_EVERY``, its first
#: ``DEFAULT_MAX_SAMPLES`` sample(s), ``DEFAULT_POSITIONS`` sampled positions per map (js): meant to keep
#: the collector within 1.3x a plain training step of torchvision's deeplabv3_resnet50 at 2x3x256x256 on
#: a 2-core CPU (measured: benchmarks/collector_overhead.py); the paper's exact collection is
#: ``every=1, max_samples=None, positions=None`` (`PaperSIRFP`).
DEFAULT_EVERY = 8
DEFAULT_MAX_SAMPLES: int | None = 1
DEFAULT_POSITIONS = 256


class SIRFP(Criterion):
    """Spatial-aware information redundancy (Wu et al., AAAI 2025), configurable.

    Parameters
    ----------
    measure : str
        Redundancy measure (`sirfp_adapter.measures.MEASURES`): ``"js"`` (the paper),
        ``"gram"`` (the released code), ``"hellinger"``, ``"kl"``, ``"dice"``.
    decay : float
        EMA decay of the collected graphs, in [0, 1).
    every : int
        Measure on every ``every``-th training forward pass (a one-shot collection,
        `sirfp_adapter.prune_once`, measures every batch it is given).
    max_samples : int, optional
        Measure at most this many samples of each batch (``None``: all).
    positions : int, None or "auto"
        For a measure that can estimate from sampled positions (one whose function
        takes ``positions``: ``js``): that many positions per sample, an unbiased
        estimate (`sirfp_adapter.measures.js`); ``None``: every position, exact;
        ``"auto"``: `DEFAULT_POSITIONS` for such a measure, exact for the others
        (one matrix product each, cheap already). An int with another measure is
        an error.
    calibration : {"mean", "range", "none"}
        How removal scores compare across groups (`sirfp_adapter.plan.rank_redundancy`).
    start : {"mean", "first", "zero"}
        How the EMA starts (`sirfp_adapter.collector`).
    min_positions : int
        Groups whose maps have fewer positions are ranked by ``fallback``.
    fallback : Criterion, optional
        Ranks those groups (default: a fresh ``L1()``).
    budget : Criterion, str or None
        Decides how many channels each group loses, while redundancy decides which
        (a criterion, or a registry name built with its defaults; default
        ``"sensitivity"``, which measured best, docs "What makes SIRFP work"):
        the group's removal order stays EHGP's, and its ``t``-th removal gets the score
        ``budget.budget_scores`` gives it: ``Sensitivity()`` measures the output
        distortion of removing EHGP's first ``t`` channels; an importance criterion
        (e.g. ``Taylor()``) gives its own ``t``-th smallest calibrated score, so every
        group loses as many channels as that criterion alone would remove. ``None``:
        redundancy's own scores.
    **measure_options
        Passed to the measure (e.g. ``normalize="relu_l1"``, ``downsample=32``).
    """

    name = "sirfp"
    watches_activations = True

    def __init__(
        self,
        measure: str = "js",
        *,
        decay: float = 0.99,
        every: int = DEFAULT_EVERY,
        max_samples: int | None = DEFAULT_MAX_SAMPLES,
        positions: int | None | str = "auto",
        calibration: str = "mean",
        start: str = "mean",
        min_positions: int = 4,
        fallback: Criterion | None = None,
        budget: Criterion | str | None = "sensitivity",
        **measure_options: Any,
    ) -> None:
        samples_positions = "positions" in inspect.signature(get_measure(measure)).parameters  # raises on a bad name
        if isinstance(positions, str):
            if positions != "auto":
                raise ValueError(f"positions must be a positive int, None or 'auto', got {positions!r}")
            positions = DEFAULT_POSITIONS if samples_positions else None
        if samples_positions:
            measure_options["positions"] = positions
        elif positions is not None:
            raise ValueError(f"positions applies to measures that sample positions (js); measure {measure!r} "
                             f"computes on every position in one matrix product; leave positions at its default")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
        if isinstance(min_positions, bool) or not isinstance(min_positions, int) or min_positions < 1:
            raise ValueError(f"min_positions must be a positive integer, got {min_positions!r}")
        if fallback is not None and (not isinstance(fallback, Criterion) or fallback.watches_activations):
            raise ValueError(f"fallback must be a Criterion that does not watch activations, got {fallback!r}")
        self.measure = measure
        self.calibration = calibration
        self.min_positions = min_positions
        if isinstance(budget, str):
            from sirfp_adapter.criteria import CRITERIA, get_criterion  # the registry imports this module

            if CRITERIA.get(budget) is None or issubclass(CRITERIA[budget], SIRFP):
                names = tuple(n for n, c in CRITERIA.items() if not issubclass(c, SIRFP))
                raise ValueError(f"budget must be a Criterion, None or one of {names}, got {budget!r}")
            budget = get_criterion(budget)
        if budget is not None and (not isinstance(budget, Criterion) or isinstance(budget, SIRFP)):
            raise ValueError(f"budget must be a Criterion other than SIRFP, got {budget!r}")
        self.fallback = fallback if fallback is not None else L1()
        self.budget = budget
        self.needs_gradients = self.fallback.needs_gradients or (budget is not None and budget.needs_gradients)
        self.collector_options: dict[str, Any] = {"decay": decay, "every": every, "max_samples": max_samples,
                                                  "start": start, **measure_options}
        # validate every collector option now, on a throwaway module
        RedundancyCollector(torch.nn.BatchNorm2d(1), [""], measure=measure, **self.collector_options)
        self.collector: RedundancyCollector | None = None
        self.fallback_groups: list[str] = []

    # ------------------------------------------------------------------ binding
    def _helpers(self) -> list[Criterion]:
        return [self.fallback] + ([self.budget] if self.budget is not None else [])

    def _attach(self, training_only: bool) -> None:
        if not len(self.groups):
            raise ValueError(f"{self.name}: the model has no prunable channel group to rank: every layer that "
                             f"could be pruned is an output layer, ignored or left out "
                             f"(ignored: {list(self.groups.ignored)})")
        for helper in self._helpers():
            helper.attach(self.model, self.groups, training_only=training_only)
        # a one-shot collection (eval-mode passes too) measures every batch it is given
        options = self.collector_options if training_only else {**self.collector_options, "every": 1}
        self.collector = RedundancyCollector(self.model, self.groups.feature_layers(), measure=self.measure,
                                             training_only=training_only, **options)
        self.collector.open()

    def observe(self) -> None:
        for helper in self._helpers():
            helper.observe()

    def check_ready(self) -> None:
        assert self.collector is not None
        if not self.collector.matrices():
            skipped = max(self.collector.skipped().values(), default=0)
            if skipped:
                raise RuntimeError(f"{self.name}: no redundancy statistics: all {skipped} measured batches had "
                                   f"non-finite activations (NaN or inf) and were skipped; check the inputs "
                                   f"and the weights")
            what = ("training iterations before pruning (eval-mode passes are not collected)"
                    if self.collector.training_only else "forward passes before pruning")
            raise RuntimeError(f"{self.name}: no redundancy statistics yet: run {what}")
        if self.budget is not None:
            self.budget.check_ready()

    # ------------------------------------------------------------------ decision
    def rank(self, group: ChannelGroup, active: np.ndarray | None = None) -> Ranking:
        ranking = self._choice(group, active)
        if self.budget is None:
            return ranking
        with self._collector().paused():  # a measuring budget's forward passes are not training data
            shares = self.budget.budget_scores(group, ranking.order, active)
        scores = np.where(np.isfinite(ranking.scores), shares, np.inf)
        return Ranking(ranking.order, np.maximum.accumulate(scores), ranking.matrix)

    def _choice(self, group: ChannelGroup, active: np.ndarray | None) -> Ranking:
        """The group's removal order (with redundancy's own scores)."""
        collector = self._collector()
        if self._small_maps(group, collector.positions()):
            if group.name not in self.fallback_groups:
                self._warn_small_maps()
            return self.fallback.rank(group, active)
        matrix = group_matrix(group, collector.matrices(group.feature_layers))
        return self._rank_matrix(group, matrix, active)

    def _small_maps(self, group: ChannelGroup, positions: Mapping[str, int]) -> bool:
        """Whether the group's maps were seen with fewer than ``min_positions`` positions."""
        return min((positions.get(n, 0) for n in group.feature_layers), default=0) < self.min_positions \
            and any(n in positions for n in group.feature_layers)

    def _warn_small_maps(self) -> None:
        """One warning naming every group not yet named whose maps are too small (they use the fallback)."""
        positions = self._collector().positions()
        new = [g.name for g in self.groups if g.name not in self.fallback_groups and self._small_maps(g, positions)]
        self.fallback_groups.extend(new)
        warnings.warn(f"{self.name}: {len(new)} group{'s' if len(new) > 1 else ''} with maps of fewer than "
                      f"{self.min_positions} positions, which carry no spatial information, ranked by "
                      f"{self.fallback!r}: {', '.join(map(repr, new))}", stacklevel=3)

    def _rank_matrix(self, group: ChannelGroup, matrix: np.ndarray, active: np.ndarray | None) -> Ranking:
        return rank_redundancy(matrix, active, self.calibration)

    def _collector(self) -> RedundancyCollector:
        if self.collector is None:
            raise RuntimeError(f"{self!r} is not attached to a model: call attach(model, groups) first")
        return self.collector

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        state = {"collector": self._collector().state_dict(), "fallback": self.fallback.state_dict()}
        if self.budget is not None:
            state["budget"] = self.budget.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or not {"collector", "fallback"} <= set(state):
            raise ValueError(f"{self.name}: state must be a mapping with keys 'collector' and 'fallback' "
                             f"(from state_dict())")
        if (self.budget is None) != ("budget" not in state):
            raise ValueError(f"{self.name}: the state was saved with{'out' if 'budget' not in state else ''} "
                             f"a budget criterion, this criterion has{' none' if self.budget is None else ' one'}")
        self._collector().load_state_dict(state["collector"])
        self.fallback.load_state_dict(state["fallback"])
        if self.budget is not None:
            self.budget.load_state_dict(state["budget"])

    def close(self) -> None:
        if self.collector is not None:
            self.collector.close()
        for helper in self._helpers():
            helper.close()

    def _options(self) -> dict[str, Any]:
        extra = {"budget": self.budget} if self.budget is not None else {}
        return {"measure": self.measure, **self.collector_options, "calibration": self.calibration, **extra}


class PaperSIRFP(SIRFP):
    """The paper as written: ``js`` on softmax maps, decay 0.99, mean calibration.

    Parameters
    ----------
    every, max_samples :
        Collection cost only (see :class:`SIRFP`).
    """

    name = "sirfp-paper"

    def __init__(self, *, every: int = 1, max_samples: int | None = None) -> None:
        super().__init__("js", decay=0.99, every=every, max_samples=max_samples, positions=None, calibration="mean",
                         start="first", min_positions=1, budget=None, normalize="softmax")


class ReleasedSIRFP(SIRFP):
    """What the released code scores: Gram of L1-normalised signed BN outputs, EMA 0.999
    from zero, raw EHGP scores, plus ``prior_weight * EMA(|dL/dgamma|)`` per channel.

    Parameters
    ----------
    prior_weight : float
        Weight of the gradient prior (0.4 in the released code; 0 drops it).
    every, max_samples :
        Collection cost only (see :class:`SIRFP`).

    Notes
    -----
    The released code's gradient EMA is also multiplied by the AMP loss scale; with
    plain float32 training there is none, so the prior is the unscaled gradient EMA.
    One global threshold on these raw scores is used here (the released code uses two,
    backbone and rest).
    """

    name = "sirfp-released"
    needs_gradients = True

    def __init__(self, prior_weight: float = 0.4, *, every: int = 1, max_samples: int | None = None) -> None:
        if isinstance(prior_weight, bool) or not isinstance(prior_weight, (int, float)) or not np.isfinite(prior_weight):
            raise ValueError(f"prior_weight must be a finite number, got {prior_weight!r}")
        super().__init__("gram", decay=0.999, every=every, max_samples=max_samples, calibration="none",
                         start="zero", min_positions=1, budget=None)
        self.needs_gradients = True
        self.prior_weight = float(prior_weight)
        self._prior: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def observe(self) -> None:
        modules = dict(self.model.named_modules())
        for name in self._collector().layers:
            weight = getattr(modules[name], "weight", None)
            if weight is None or weight.grad is None:
                continue
            g = weight.grad.detach().abs().double()
            self._prior[name] = 0.999 * self._prior[name] + 0.001 * g if name in self._prior else 0.001 * g

    def _rank_matrix(self, group: ChannelGroup, matrix: np.ndarray, active: np.ndarray | None) -> Ranking:
        ranking = rank_redundancy(matrix, active, "none")
        prior = np.zeros(group.size)
        for member in group.features:
            if member.name in self._prior:
                carried = member.index >= 0
                prior[carried] += self._prior[member.name].cpu().numpy()[member.index[carried]]
        scores = ranking.scores + self.prior_weight * prior[ranking.order]
        return Ranking(ranking.order, np.maximum.accumulate(scores), ranking.matrix)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "prior": {k: v.clone() for k, v in self._prior.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        prior = state.get("prior", {})
        unknown = sorted(set(prior) - set(self._collector().layers))
        if unknown:
            raise ValueError(f"{self.name}: state holds layer {unknown[0]!r}, which this criterion does not watch")
        self._prior = {k: torch.as_tensor(v).clone() for k, v in prior.items()}

    def _options(self) -> dict[str, Any]:
        return {"prior_weight": self.prior_weight}
