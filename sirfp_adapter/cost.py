"""FLOPs and parameter counts: measured with ``torch.utils.flop_counter``, predicted for
any number of removed channels per group by a cached bilinear model.

The model is what lets the global threshold search (``plan.py``) try thousands of
candidate thresholds in milliseconds: a convolution with ``c_in`` inputs and ``c_out``
outputs costs ``2 · positions · k_h · k_w · c_out · c_in / groups`` FLOPs (the count
``torch.utils.flop_counter`` uses), and removing ``p_g`` channels of group ``g`` lowers
``c_out`` of its producers and ``c_in`` of its consumers by ``p_g``. The spatial sizes are
recorded once from a forward pass; everything the model does not predict (other matmuls,
layers outside every group) is a constant measured alongside. Where a layer carries only
part of a group (a branch of a concatenation that feeds a depthwise convolution), the
count model assumes the removed channels fall evenly; :meth:`CostModel.for_channels` counts
them, and the plan checks its final choice with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sirfp_adapter.checks import check_module
from sirfp_adapter.groups import ChannelGroups

__all__ = ["CostModel", "count_flops", "count_params"]

_CONV = nn.modules.conv._ConvNd
_NORM_AFFINE = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def _call(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def count_flops(model: nn.Module, example_inputs: Any) -> int:
    """FLOPs of one forward pass on ``example_inputs`` as ``torch.utils.flop_counter``
    counts them (2 per multiply-add of convolutions and matrix products), in eval mode."""
    check_module(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            _call(model, example_inputs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def count_params(model: nn.Module) -> int:
    """Number of parameters (elements of ``model.parameters()``)."""
    check_module(model)
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class _Layer:
    name: str
    coef: float  # FLOPs per (output channel × input channel per group); 0 when never called
    weight_per_pair: int  # kernel elements per (output, input-per-group) pair
    c_in: int
    c_out: int
    groups: int
    depthwise: bool
    bias: bool


class CostModel:
    """Predicted FLOPs and parameters of a model as a function of the number of channels
    removed from each group.

    Parameters
    ----------
    model : torch.nn.Module
    example_inputs : Tensor or tuple
        The input the FLOPs refer to (batch included).
    groups : ChannelGroups
        The model's prunable groups.
    """

    def __init__(self, model: nn.Module, example_inputs: Any, groups: ChannelGroups) -> None:
        layers, positions = _trace_layers(model, example_inputs)
        n_groups = len(groups)
        index = {layer.name: i for i, layer in enumerate(layers)}
        self._layers = layers
        self._coef = np.array([layer.coef for layer in layers])
        self._pairs = np.array([layer.weight_per_pair for layer in layers], dtype=np.float64)
        self._c_in = np.array([layer.c_in for layer in layers], dtype=np.float64)
        self._c_out = np.array([layer.c_out for layer in layers], dtype=np.float64)
        self._groups_per_layer = np.array([layer.groups for layer in layers], dtype=np.float64)
        self._depthwise = np.array([layer.depthwise for layer in layers])
        self._bias = np.array([layer.bias for layer in layers], dtype=np.float64)
        self._in = np.zeros((len(layers), n_groups))  # channels lost at the input per removed group channel
        self._out = np.zeros((len(layers), n_groups))
        norm_rows: list[np.ndarray] = []
        modules = dict(model.named_modules())
        # members carrying only part of a group (a concatenation's branches): the count
        # model assumes an even share; `for_channels` counts the removed channels they carry
        # (kind, layer row, group, carried, share, input features per channel)
        self._partial: list[tuple[str, int, int, np.ndarray, float, int]] = []
        for g, group in enumerate(groups):
            norm_row = np.zeros(n_groups)
            for member in group.producers:
                carried = member.index >= 0
                share = np.count_nonzero(carried) / group.size
                if member.name in index:
                    self._out[index[member.name], g] = share
                    if share < 1:
                        self._partial.append(("out", index[member.name], g, carried, share, 1))
                module = modules[member.name]
                if isinstance(module, _NORM_AFFINE) and getattr(module, "weight", None) is not None:
                    norm_row[g] += 2 * share
                    if share < 1:
                        self._partial.append(("norm", -1, g, carried, share, 1))
            for member in group.consumers:
                if member.name in index:
                    carried = member.index >= 0
                    share = np.count_nonzero(carried) / group.size
                    self._in[index[member.name], g] += share * member.fan
                    if share < 1:
                        self._partial.append(("in", index[member.name], g, carried, share, member.fan))
            norm_rows.append(norm_row)
        self._norm_params = np.sum(norm_rows, axis=0) if norm_rows else np.zeros(0)
        self.sizes = np.array([g.size for g in groups], dtype=np.int64)
        self.flops_measured = count_flops(model, example_inputs)
        self.params_measured = count_params(model)
        self._flops_rest = self._params_rest = 0.0
        flops0, params0 = self._from_counts(np.zeros(n_groups))
        self._flops_rest = self.flops_measured - float(flops0)
        self._params_rest = self.params_measured - float(params0)
        self.positions = positions

    @property
    def flops_base(self) -> float:
        """FLOPs of the model as built (nothing removed)."""
        return float(self.flops_measured)

    @property
    def params_base(self) -> float:
        """Parameters of the model as built."""
        return float(self.params_measured)

    def _costs(self, c_out: np.ndarray, c_in: np.ndarray, norm_lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FLOPs and parameters from every layer's remaining output / input channels
        (arrays (..., layers)) and the norm parameters lost (...)."""
        # depthwise: Torch-Pruning shrinks in, out and groups together, one input per group stays
        in_per_group = np.where(self._depthwise, self._c_in / self._groups_per_layer, c_in / self._groups_per_layer)
        flops = self._flops_rest + (c_out * in_per_group) @ self._coef
        params = self._params_rest + (c_out * in_per_group) @ self._pairs + c_out @ self._bias - norm_lost
        return flops, params

    def _from_counts(self, removed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        removed = np.asarray(removed, dtype=np.float64)
        return self._costs(self._c_out - removed @ self._out.T, self._c_in - removed @ self._in.T,
                           removed @ self._norm_params)

    def _removed(self, removed: np.ndarray | Any) -> np.ndarray:
        removed = np.asarray(removed, dtype=np.float64)
        if removed.shape != self.sizes.shape:
            raise ValueError(f"removed must hold one count per group ({self.sizes.size}), got shape {removed.shape}")
        bad = np.flatnonzero(~((removed >= 0) & (removed <= self.sizes)))  # NaN included
        if bad.size:
            g = int(bad[0])
            raise ValueError(f"removed[{g}] must be a count from 0 to the group's {int(self.sizes[g])} channels, "
                             f"got {removed[g]:g}")
        return removed

    def flops(self, removed: np.ndarray | Any) -> float:
        """Predicted FLOPs after removing ``removed[g]`` channels from each group ``g``."""
        return float(self._from_counts(self._removed(removed))[0])

    def params(self, removed: np.ndarray | Any) -> float:
        """Predicted parameter count after removing ``removed[g]`` channels per group."""
        return float(self._from_counts(self._removed(removed))[1])

    def flops_many(self, removed: np.ndarray) -> np.ndarray:
        """:meth:`flops` for a batch of candidate ``removed`` vectors, shape (n, groups)."""
        return self._from_counts(removed)[0]

    def params_many(self, removed: np.ndarray) -> np.ndarray:
        """:meth:`params` for a batch of candidate ``removed`` vectors, shape (n, groups)."""
        return self._from_counts(removed)[1]

    @property
    def counts_determine_cost(self) -> bool:
        """Whether channel counts alone determine the cost (no partial members)."""
        return not self._partial

    def for_channels(self, removed: Sequence[np.ndarray]) -> tuple[float, float]:
        """FLOPs and parameters after removing the given group-local channels of each
        group — also where a member carries only part of a group."""
        if len(removed) != self.sizes.size:
            raise ValueError(f"removed must hold one channel array per group ({self.sizes.size}), got {len(removed)}")
        sets = [np.asarray(r, dtype=np.int64) for r in removed]
        counts = np.array([s.size for s in sets], dtype=np.float64)
        c_out = self._c_out - self._out @ counts
        c_in = self._c_in - self._in @ counts
        norm = float(self._norm_params @ counts)
        for kind, row, g, carried, share, fan in self._partial:
            error = np.count_nonzero(carried[sets[g]]) - share * counts[g]
            if kind == "out":
                c_out[row] -= error
            elif kind == "in":
                c_in[row] -= error * fan
            else:
                norm += 2 * error
        flops, params = self._costs(c_out, c_in, np.float64(norm))
        return float(flops), float(params)


def _trace_layers(model: nn.Module, example_inputs: Any) -> tuple[list[_Layer], dict[str, int]]:
    """Every convolution and linear layer with its output positions on ``example_inputs``."""
    positions: dict[str, int] = {}
    handles = []

    def recorder(name: str):  # noqa: ANN202
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            channels = output.shape[1] if isinstance(module, _CONV) else output.shape[-1]
            positions[name] = positions.get(name, 0) + output.numel() // max(channels, 1)

        return hook

    mixing = [(n, m) for n, m in model.named_modules() if isinstance(m, (_CONV, nn.Linear))]
    for name, module in mixing:
        handles.append(module.register_forward_hook(recorder(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _call(model, example_inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    layers = []
    for name, module in mixing:
        pos = positions.get(name, 0)
        if isinstance(module, _CONV):
            kernel = int(np.prod(module.kernel_size))
            groups = module.groups
            depthwise = groups > 1 and groups == module.in_channels == module.out_channels
            layers.append(_Layer(name, 2.0 * pos * kernel, kernel, module.in_channels, module.out_channels,
                                 groups, depthwise, module.bias is not None))
        else:
            layers.append(_Layer(name, 2.0 * pos, 1, module.in_features, module.out_features, 1, False,
                                 module.bias is not None))
    return layers, positions
