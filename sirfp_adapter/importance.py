"""Baseline channel-importance criteria, scored per coupled group.

Each function returns one importance per group channel (higher = keep); ``plan.py``
turns them into rankings with the same normalisation and global threshold as SIRFP,
so comparisons differ only in the criterion.

* ``random`` — uniform random scores (seeded);
* ``l1`` — L1 norm of each channel's filters, summed over the group's producing
  convolutions / linear layers (Li et al., "Pruning Filters for Efficient ConvNets",
  ICLR 2017);
* ``bn_scale`` — mean ``|gamma|`` over the group's BatchNorms (Liu et al., "Learning
  Efficient Convolutional Networks through Network Slimming", ICCV 2017);
* ``fpgm`` — for each filter, the summed Euclidean distance to the layer's other filters:
  filters near the geometric median are replaceable (He et al., "Filter Pruning via
  Geometric Median", CVPR 2019), summed over producing layers;
* ``taylor`` — first-order Taylor estimate of the loss change from removing a channel,
  ``(gamma * dL/dgamma + beta * dL/dbeta)^2`` at each BatchNorm, accumulated over training
  steps by :class:`TaylorAccumulator` (Molchanov et al., "Importance Estimation for
  Neural Network Pruning", CVPR 2019).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from sirfp_adapter.groups import ChannelGroup, ChannelGroups

__all__ = ["BASELINES", "TaylorAccumulator", "group_importance"]

BASELINES = ("random", "l1", "bn_scale", "fpgm", "taylor")

_MIXING = (nn.modules.conv._ConvNd, nn.Linear)


def _filters(module: nn.Module, index: np.ndarray) -> torch.Tensor:
    """Output-channel filters of ``module`` for the group channels, shape (C, -1), float64."""
    weight = module.weight.detach()
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        weight = weight.transpose(0, 1)
    return weight[torch.as_tensor(index, device=weight.device)].reshape(len(index), -1).double().cpu()


def group_importance(
    kind: str,
    model: nn.Module,
    group: ChannelGroup,
    *,
    rng: np.random.Generator | None = None,
    taylor: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Importance of each channel of ``group`` under the baseline ``kind``.

    Parameters
    ----------
    kind : {"random", "l1", "bn_scale", "fpgm", "taylor"}
    model : torch.nn.Module
    group : ChannelGroup
    rng : numpy.random.Generator, optional
        For ``random``.
    taylor : mapping of norm name to per-channel sums, optional
        :meth:`TaylorAccumulator.values`, required for ``taylor``.
    """
    modules = dict(model.named_modules())
    producers = [(modules[m.name], m.index) for m in group.producers]
    if kind == "random":
        return (rng or np.random.default_rng()).random(group.size)
    if kind in ("l1", "fpgm"):
        total = np.zeros(group.size)
        for module, index in producers:
            if not isinstance(module, _MIXING) or np.any(index < 0):
                continue
            f = _filters(module, index)
            if kind == "l1":
                total += f.abs().sum(dim=1).numpy()
            else:
                total += torch.cdist(f[None], f[None])[0].sum(dim=1).numpy()
        return total
    if kind == "bn_scale":
        values = [modules[m.name].weight.detach().abs().double().cpu().numpy()[m.index]
                  for m in group.norms if getattr(modules[m.name], "weight", None) is not None]
        if not values:
            raise ValueError(f"bn_scale: group {group.name!r} has no affine normalisation layer")
        return np.mean(values, axis=0)
    if kind == "taylor":
        if taylor is None:
            raise ValueError("taylor importance needs the accumulated values (TaylorAccumulator.values())")
        values = [np.asarray(taylor[m.name])[m.index] for m in group.norms if m.name in taylor]
        if not values:
            raise ValueError(f"taylor: no accumulated values for group {group.name!r}")
        return np.sum(values, axis=0)
    raise ValueError(f"kind must be one of {BASELINES}, got {kind!r}")


class TaylorAccumulator:
    """Sums the first-order Taylor importance of every norm layer's channels over steps.

    Call :meth:`update` after ``loss.backward()`` (before gradients are zeroed). For a
    norm layer with scale ``gamma`` and shift ``beta``, channel ``c`` gains
    ``(gamma_c * dL/dgamma_c + beta_c * dL/dbeta_c)^2`` per step.
    """

    def __init__(self, model: nn.Module, groups: ChannelGroups) -> None:
        modules = dict(model.named_modules())
        self._norms = {m.name: modules[m.name] for g in groups for m in g.norms
                       if getattr(modules[m.name], "weight", None) is not None}
        self._sums: dict[str, torch.Tensor] = {}
        self.steps = 0

    def update(self) -> None:
        """Add this step's Taylor estimates (layers without gradients are skipped)."""
        with torch.no_grad():
            for name, norm in self._norms.items():
                if norm.weight.grad is None:
                    continue
                term = norm.weight * norm.weight.grad
                if getattr(norm, "bias", None) is not None and norm.bias.grad is not None:
                    term = term + norm.bias * norm.bias.grad
                term = term.double().square()
                self._sums[name] = self._sums[name] + term if name in self._sums else term
        self.steps += 1

    def state_dict(self) -> dict[str, object]:
        return {"steps": self.steps, "sums": {k: v.clone() for k, v in self._sums.items()}}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        sums = dict(state["sums"])  # type: ignore[call-overload]
        unknown = sorted(set(sums) - set(self._norms))
        if unknown:
            raise ValueError(f"state holds layer {unknown[0]!r}, which this accumulator does not watch")
        self._sums = {k: torch.as_tensor(v).clone() for k, v in sums.items()}
        self.steps = int(state["steps"])  # type: ignore[call-overload]

    def values(self) -> dict[str, np.ndarray]:
        """Accumulated importance per norm layer, as numpy arrays."""
        return {name: t.cpu().numpy() for name, t in self._sums.items()}
