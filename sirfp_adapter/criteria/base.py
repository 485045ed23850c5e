"""The contract every pruning criterion implements.

A criterion answers one question — in which order should a group's channels go? —
and may watch training to answer it. Its life:

1. constructed with its own options only (validated there), no model;
2. :meth:`Criterion.attach` binds it to a model and its `ChannelGroups`, registering
   forward hooks if it watches activations;
3. :meth:`Criterion.observe` after every ``loss.backward()`` (criteria that read
   gradients; a no-op for the others);
4. :meth:`Criterion.rank` gives a group's active channels in removal order as a
   `Ranking` whose scores are calibrated so that one threshold can compare groups;
5. :meth:`Criterion.state_dict` / :meth:`Criterion.load_state_dict` for checkpoints,
   :meth:`Criterion.close` to remove hooks.

:class:`ImportanceCriterion` is the shortcut for criteria that score each channel
(higher = keep): implement :meth:`ImportanceCriterion.importance` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from torch import nn

from sirfp_adapter.groups import ChannelGroup, ChannelGroups
from sirfp_adapter.plan import Ranking, rank_importance

__all__ = ["Criterion", "ImportanceCriterion"]


class Criterion(ABC):
    """How a group's channels are ranked for removal.

    Attributes
    ----------
    name : str
        The registry name (`sirfp_adapter.criteria.CRITERIA`).
    needs_gradients : bool
        Whether :meth:`observe` reads gradients (one-shot pruning then needs a loss).
    watches_activations : bool
        Whether it registers forward hooks (one-shot pruning then runs the batches).
    """

    name: ClassVar[str] = ""
    needs_gradients: bool = False
    watches_activations: bool = False

    _model: nn.Module | None = None
    _groups: ChannelGroups | None = None

    # ------------------------------------------------------------------ binding
    def attach(self, model: nn.Module, groups: ChannelGroups, *, training_only: bool = True) -> Criterion:
        """Bind to ``model`` and its ``groups``; register hooks. Returns ``self``.

        ``training_only=False`` lets activation criteria also watch eval-mode passes
        (one-shot collection that must not touch BatchNorm statistics).
        """
        if self._model is not None:
            raise RuntimeError(f"{self!r} is already attached to a model: build a new criterion")
        self._model, self._groups = model, groups
        self._attach(training_only)
        return self

    def _attach(self, training_only: bool) -> None:
        """Set up statistics and hooks for the bound model (default: nothing)."""

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            raise RuntimeError(f"{self!r} is not attached to a model: call attach(model, groups) first")
        return self._model

    @property
    def groups(self) -> ChannelGroups:
        self.model  # noqa: B018  (raises when not attached)
        assert self._groups is not None
        return self._groups

    # ------------------------------------------------------------------ training
    def observe(self) -> None:
        """Fold this step's gradients into the statistics (after ``loss.backward()``)."""

    def check_ready(self) -> None:
        """Raise ``RuntimeError`` when there are no statistics to rank by yet."""

    # ------------------------------------------------------------------ decision
    @abstractmethod
    def rank(self, group: ChannelGroup, active: np.ndarray | None = None) -> Ranking:
        """The group's active channels (``active``: bool per channel, default all) in removal order."""

    def budget_scores(self, group: ChannelGroup, order: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """Scores for removing ``order``'s channels one after another, when this criterion
        decides *how many* channels a group loses and another one *which* (SIRFP's
        ``budget=``): non-decreasing, comparable across groups. Default: this criterion's
        own calibrated scores of as many removals (``order`` itself is not consulted)."""
        return np.sort(self.rank(group, active).scores)[: order.size]

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The statistics, for a checkpoint (empty for stateless criteria)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if not isinstance(state, Mapping):
            raise ValueError(f"{self.name}: state must be a mapping from state_dict(), got {type(state).__name__}")
        if state:
            raise ValueError(f"{self.name}: this criterion keeps no state, got keys {sorted(state)}")

    def close(self) -> None:
        """Remove hooks (idempotent)."""

    def _options(self) -> dict[str, Any]:
        """The constructor options, for ``repr``."""
        return {}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self._options().items())
        return f"{type(self).__name__}({options})"


class ImportanceCriterion(Criterion):
    """A criterion that scores each channel (higher = keep); ranks by ascending score,
    scores divided by the group's mean absolute importance (`rank_importance`)."""

    @abstractmethod
    def importance(self, group: ChannelGroup) -> np.ndarray:
        """One finite importance per channel of ``group`` (all its channels)."""

    def rank(self, group: ChannelGroup, active: np.ndarray | None = None) -> Ranking:
        importance = np.asarray(self.importance(group))
        if importance.shape != (group.size,):
            raise ValueError(f"{self.name}: importance(group) must return one value per channel of group "
                             f"{group.name!r} (shape ({group.size},)), got shape {importance.shape}")
        return rank_importance(importance, active)
