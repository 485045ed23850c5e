"""Baseline criteria that score each channel of a coupled group (higher = keep).

* ``random`` — uniform random scores (seeded);
* ``l1`` — L1 norm of each channel's filters, summed over the group's producing
  convolutions / linear layers (Li et al., "Pruning Filters for Efficient ConvNets",
  ICLR 2017);
* ``bn_scale`` — mean ``|gamma|`` over the group's norms (Liu et al., "Learning Efficient
  Convolutional Networks through Network Slimming", ICCV 2017); equal to Torch-Pruning's
  ``BNScaleImportance`` (tested);
* ``fpgm`` — each filter's summed Euclidean distance to the layer's other filters:
  filters near the geometric median are replaceable (He et al., "Filter Pruning via
  Geometric Median", CVPR 2019), summed over producing layers;
* ``taylor`` — first-order Taylor estimate of the loss change from removing a channel,
  ``(gamma * dL/dgamma + beta * dL/dbeta)^2`` at each norm, summed over training steps
  (Molchanov et al., "Importance Estimation for Neural Network Pruning", CVPR 2019);
* ``dcfp`` — a gradient importance accumulated by an EMA during training,
  ``EMA(|gamma * dL/dgamma|)`` at each norm (after Wang et al., "Distribution Calibrated
  Filter Pruning for Semantic Segmentation", TCSVT 2024, whose released code SIRFP forks;
  their class-equalised gradients need the loss's internals, which a criterion does not
  see, so this is the plain gradient version);
* ``group_norm`` — DepGraph's group-level L2 norm over every parameter coupled with the
  channel (Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023), computed
  by Torch-Pruning's own ``GroupMagnitudeImportance(p=2)``.

Why the project keeps its own L1, FPGM and Taylor: Torch-Pruning's ``MagnitudeImportance``
and ``FPGMImportance`` reduce over *every* member of a group (consumers' input channels
and norms included), which is DepGraph's group criterion, not the per-filter criteria
of the papers above; its ``TaylorImportance`` scores ``|w * dL/dw|`` of a single
backward pass, where Molchanov et al. accumulate the squared norm-layer estimate over
steps. The paper-faithful versions are kept here; DepGraph's is ``group_norm``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from sirfp_adapter.criteria.base import ImportanceCriterion
from sirfp_adapter.groups import ChannelGroup

__all__ = ["BNScale", "DCFP", "FPGM", "GroupNorm", "L1", "Random", "Taylor"]

_MIXING = (nn.modules.conv._ConvNd, nn.Linear)


def _filters(module: nn.Module, index: np.ndarray) -> torch.Tensor:
    """Output-channel filters of ``module`` for the group channels, shape (C, -1), float64."""
    weight = module.weight.detach()
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        weight = weight.transpose(0, 1)
    return weight[torch.as_tensor(index, device=weight.device)].reshape(len(index), -1).double().cpu()


def _check_decay(decay: object) -> float:
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be a number in [0, 1), got {decay!r}")
    return float(decay)


class Random(ImportanceCriterion):
    """Uniform random scores, reproducible for ``seed``."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def importance(self, group: ChannelGroup) -> np.ndarray:
        return self._rng.random(group.size)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or "rng" not in state:
            raise ValueError("random: state must be a mapping with key 'rng' (from state_dict())")
        self._rng.bit_generator.state = state["rng"]

    def _options(self) -> dict[str, Any]:
        return {"seed": self.seed}


class _FilterCriterion(ImportanceCriterion):
    """Sums a per-filter score over the group's producing convolutions / linear layers."""

    def _score(self, filters: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def importance(self, group: ChannelGroup) -> np.ndarray:
        modules = dict(self.model.named_modules())
        total = np.zeros(group.size)
        for member in group.producers:
            module = modules[member.name]
            if isinstance(module, _MIXING) and not np.any(member.index < 0):
                total += self._score(_filters(module, member.index))
        return total


class L1(_FilterCriterion):
    """L1 norm of each channel's filters (Li et al., ICLR 2017)."""

    name = "l1"

    def _score(self, filters: torch.Tensor) -> np.ndarray:
        return filters.abs().sum(dim=1).numpy()


class FPGM(_FilterCriterion):
    """Summed distance of each filter to the others (He et al., CVPR 2019)."""

    name = "fpgm"

    def _score(self, filters: torch.Tensor) -> np.ndarray:
        return torch.cdist(filters[None], filters[None])[0].sum(dim=1).numpy()


class BNScale(ImportanceCriterion):
    """Mean ``|gamma|`` over the group's affine norms (Liu et al., ICCV 2017)."""

    name = "bn_scale"

    def importance(self, group: ChannelGroup) -> np.ndarray:
        modules = dict(self.model.named_modules())
        values = [modules[m.name].weight.detach().abs().double().cpu().numpy()[m.index]
                  for m in group.norms if getattr(modules[m.name], "weight", None) is not None]
        if not values:
            raise ValueError(f"bn_scale: group {group.name!r} has no affine normalisation layer")
        return np.mean(values, axis=0)


class _NormGradientCriterion(ImportanceCriterion):
    """Accumulates a per-channel statistic of each affine norm's gradients."""

    needs_gradients = True

    def _attach(self, training_only: bool) -> None:
        modules = dict(self.model.named_modules())
        self._norms = {m.name: modules[m.name] for g in self.groups for m in g.norms
                       if getattr(modules[m.name], "weight", None) is not None}
        self._values: dict[str, torch.Tensor] = {}
        self.steps = 0

    def _term(self, norm: nn.Module) -> torch.Tensor:
        """This step's float64 statistic of ``norm``'s channels."""
        raise NotImplementedError

    def _fold(self, name: str, term: torch.Tensor) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def observe(self) -> None:
        """Add this step's estimates (norms without gradients this step are skipped)."""
        for name, norm in self._norms.items():
            if norm.weight.grad is not None:
                self._fold(name, self._term(norm))
        self.steps += 1

    def check_ready(self) -> None:
        if not self._values:
            raise RuntimeError(f"{self.name}: no gradients observed yet: call observe() after loss.backward()")

    def importance(self, group: ChannelGroup) -> np.ndarray:
        values = [self._values[m.name].cpu().numpy()[m.index] for m in group.norms if m.name in self._values]
        if not values:
            raise ValueError(f"{self.name}: no accumulated values for group {group.name!r}")
        return np.sum(values, axis=0)

    def values(self) -> dict[str, np.ndarray]:
        """The accumulated statistic per norm layer."""
        return {name: t.cpu().numpy() for name, t in self._values.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "values": {k: v.clone() for k, v in self._values.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or not {"steps", "values"} <= set(state):
            raise ValueError(f"{self.name}: state must be a mapping with keys 'steps' and 'values' (from state_dict())")
        values = dict(state["values"])
        unknown = sorted(set(values) - set(self._norms))
        if unknown:
            raise ValueError(f"{self.name}: state holds layer {unknown[0]!r}, which this criterion does not watch")
        for name, value in values.items():
            width = self._norms[name].weight.numel()
            if tuple(torch.as_tensor(value).shape) != (width,):
                raise ValueError(f"{self.name}: state for layer {name!r} has shape "
                                 f"{tuple(torch.as_tensor(value).shape)}, expected ({width},)")
        self._values = {k: torch.as_tensor(v).clone() for k, v in values.items()}
        self.steps = int(state["steps"])


class Taylor(_NormGradientCriterion):
    """First-order Taylor importance at each norm, summed over steps (Molchanov et al., CVPR 2019)."""

    name = "taylor"

    def _term(self, norm: nn.Module) -> torch.Tensor:
        term = norm.weight * norm.weight.grad
        if getattr(norm, "bias", None) is not None and norm.bias.grad is not None:
            term = term + norm.bias * norm.bias.grad
        return term.double().square()

    def _fold(self, name: str, term: torch.Tensor) -> None:
        self._values[name] = self._values[name] + term if name in self._values else term


class DCFP(_NormGradientCriterion):
    """EMA of ``|gamma * dL/dgamma|`` at each norm (after Wang et al., TCSVT 2024).

    Parameters
    ----------
    decay : float
        EMA decay in [0, 1); the EMA is a running mean until ``1 / (1 - decay)`` steps
        (no bias towards its start).
    """

    name = "dcfp"

    def __init__(self, decay: float = 0.99) -> None:
        self.decay = _check_decay(decay)

    def _term(self, norm: nn.Module) -> torch.Tensor:
        return (norm.weight * norm.weight.grad).double().abs()

    def _fold(self, name: str, term: torch.Tensor) -> None:
        n = self.steps + 1
        rate = max(1.0 - self.decay, 1.0 / n)
        self._values[name] = (1 - rate) * self._values[name] + rate * term if name in self._values else term

    def _options(self) -> dict[str, Any]:
        return {"decay": self.decay}


class GroupNorm(ImportanceCriterion):
    """DepGraph's group L2 norm (Fang et al., CVPR 2023), by Torch-Pruning's
    ``GroupMagnitudeImportance(p=2)`` over every member of the group."""

    name = "group_norm"

    def importance(self, group: ChannelGroup) -> np.ndarray:
        import torch_pruning as tp

        scorer = tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean", normalizer=None)
        with torch.no_grad():
            values = scorer(self.groups.tp_group(self.groups.index(group.name)))
        return values.detach().double().cpu().numpy()
