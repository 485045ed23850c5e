"""Coupled channel groups, read from Torch-Pruning's dependency graph.

A *group* is a set of channels that must be removed together: the output channels of a
convolution, the BatchNorm after it, the input channels of every layer that reads them,
and — through residual additions — the same channels of every other layer on that
stream; a concatenation maps a group onto a slice of its consumer's inputs; a depthwise
convolution carries its input channels through. Torch-Pruning's ``DependencyGraph`` is
the source of truth for all of this; this module only reads it into plain records that
the rest of the package can use without knowing Torch-Pruning:

* which modules carry the group's channels at their output (``producers``: what a mask
  zeroes), which normalisation layers do (``norms``: whose feature maps the
  redundancy collector hooks), and which modules read them (``consumers``), each with
  the module-local channel index of every group channel;
* nothing for the layers that cannot be pruned: the classifier (every layer whose
  output reaches the network's output without passing through another convolution or
  linear layer) and the layers the user ignores.

Groups are numbered in the order their root layers are registered in the model. Channel ``c`` of
a group is channel ``c`` of its root layer (the layer whose output channels define it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["ChannelGroup", "ChannelGroups", "Member"]

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
_MIXING_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


def _tp() -> Any:
    try:
        import torch_pruning
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "sirfp_adapter needs torch-pruning for channel groups: pip install 'mewcp[prune]'"
        ) from exc
    return torch_pruning


@dataclass(frozen=True)
class Member:
    """One module touched by a group: its name and, for every group channel ``c``, the
    module-local channel index ``index[c]`` (output channels for producers and norms,
    input channels for consumers)."""

    name: str
    index: np.ndarray


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that are pruned together.

    Attributes
    ----------
    name : str
        Name of the root layer (the layer whose output channels define the group).
    size : int
        Number of channels.
    producers : tuple of Member
        Modules whose output channels are the group's (convolutions, linear layers,
        norms); masking them zeroes the channel everywhere downstream.
    norms : tuple of Member
        The normalisation layers among the producers (may be empty).
    consumers : tuple of Member
        Modules that read the group's channels at their input.
    """

    name: str
    size: int
    producers: tuple[Member, ...]
    norms: tuple[Member, ...]
    consumers: tuple[Member, ...]

    @property
    def features(self) -> tuple[Member, ...]:
        """Where the group's feature maps are measured: its norms, or its root layer
        when it has none."""
        if self.norms:
            return self.norms
        return tuple(m for m in self.producers if m.name == self.name)

    @property
    def feature_layers(self) -> tuple[str, ...]:
        """Names of the modules whose outputs the redundancy collector should hook."""
        return tuple(m.name for m in self.features)


class ChannelGroups(Sequence[ChannelGroup]):
    """The prunable channel groups of a model, in forward order, and the dependency
    graph they came from (needed again for physical pruning).

    Build with :meth:`build`. The records stay valid while the model keeps its shapes;
    after physical pruning, build again.
    """

    def __init__(self, model: nn.Module, graph: Any, groups: list[ChannelGroup], ignored: tuple[str, ...]) -> None:
        self.model = model
        self.graph = graph
        self._groups = groups
        self.ignored = ignored
        self._by_name = {g.name: i for i, g in enumerate(groups)}

    @classmethod
    def build(
        cls,
        model: nn.Module,
        example_inputs: Any,
        *,
        ignored_layers: Sequence[nn.Module | str] = (),
    ) -> ChannelGroups:
        """Trace ``model`` once on ``example_inputs`` and read its coupled channel groups.

        Parameters
        ----------
        model : torch.nn.Module
            The network (any mode; its mode is restored).
        example_inputs : Tensor or tuple
            A batch the model accepts (its size does not matter; two samples suffice
            when the model has BatchNorm on 1×1 maps).
        ignored_layers : sequence of modules or module names
            Layers whose output channels must not be pruned, on top of the output
            layers found automatically.
        """
        tp = _tp()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        names = {m: n for n, m in model.named_modules()}
        lookup = dict(model.named_modules())
        user_ignored: list[nn.Module] = []
        for layer in ignored_layers:
            if isinstance(layer, str):
                if layer not in lookup:
                    raise ValueError(f"ignored_layers: {layer!r} is not a module of the model")
                user_ignored.append(lookup[layer])
            elif isinstance(layer, nn.Module) and layer in names:
                user_ignored.append(layer)
            else:
                raise ValueError(f"ignored_layers must hold modules of the model or their names, got {layer!r}")
        was_training = model.training
        try:
            with torch.enable_grad():
                graph = tp.DependencyGraph().build_dependency(model, example_inputs, verbose=False)
        finally:
            model.train(was_training)
        ignored = user_ignored + _output_layers(graph)
        groups = [
            _read_group(graph, names, raw)
            for raw in graph.get_all_groups(ignored_layers=ignored, root_module_types=_MIXING_TYPES)
        ]
        position = {name: i for i, name in enumerate(lookup)}
        groups.sort(key=lambda g: position[g.name])
        return cls(model, graph, groups, tuple(sorted({names[m] for m in ignored})))

    def __getitem__(self, i: int) -> ChannelGroup:  # type: ignore[override]
        return self._groups[i]

    def __len__(self) -> int:
        return len(self._groups)

    def __iter__(self) -> Iterator[ChannelGroup]:
        return iter(self._groups)

    def index(self, name: str) -> int:  # type: ignore[override]
        """Position of the group whose root layer is ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no prunable group has root layer {name!r}") from None

    def feature_layers(self) -> list[str]:
        """Every module the redundancy collector hooks, each once, in group order."""
        seen: dict[str, None] = {}
        for g in self._groups:
            seen.update(dict.fromkeys(g.feature_layers))
        return list(seen)

    def tp_group(self, group: int) -> Any:
        """Torch-Pruning's ``Group`` of group ``group`` over all its channels (for
        Torch-Pruning importance classes)."""
        g = self._groups[group]
        module = dict(self.model.named_modules())[g.name]
        handler = self.graph.get_pruner_of_module(module).prune_out_channels
        return self.graph.get_pruning_group(module, handler, list(range(g.size)))

    def prune(self, group: int, channels: Sequence[int] | np.ndarray) -> None:
        """Physically remove ``channels`` (group-local indices) of group ``group``.

        The Torch-Pruning group is regenerated from the dependency graph right before
        pruning, so index mappings through concatenations reflect earlier removals.
        After pruning, the other groups' channel numbering is unchanged, but this
        object's records of *this* group are stale: rebuild before planning again.
        """
        g = self._groups[group]
        idxs = sorted({int(c) for c in channels})
        if not idxs:
            return
        if idxs[0] < 0 or idxs[-1] >= g.size:
            raise ValueError(f"channels must lie in [0, {g.size}) for group {g.name!r}")
        if len(idxs) >= g.size:
            raise ValueError(f"cannot remove all {g.size} channels of group {g.name!r}")
        module = dict(self.model.named_modules())[g.name]
        handler = self.graph.get_pruner_of_module(module).prune_out_channels
        self.graph.get_pruning_group(module, handler, idxs).prune()

    def __repr__(self) -> str:
        return f"ChannelGroups({len(self)} groups, {sum(g.size for g in self)} channels, ignored={list(self.ignored)})"


def _output_layers(graph: Any) -> list[nn.Module]:
    """Convolutions / linear layers whose output reaches the network output without
    passing through another convolution or linear layer (their channels are the output's)."""
    tp = _tp()
    stop = {tp.ops.OPTYPE.CONV, tp.ops.OPTYPE.LINEAR, tp.ops.OPTYPE.DEPTHWISE_CONV}
    found = []
    for module, node in graph.module2node.items():
        if not isinstance(module, _MIXING_TYPES):
            continue
        if not node.outputs:
            found.append(module)
            continue
        stack, seen = list(node.outputs), set()
        while stack:
            nxt = stack.pop()
            if id(nxt) in seen or nxt.type in stop:
                continue
            seen.add(id(nxt))
            if nxt.type == tp.ops.OPTYPE.OUTPUT or not nxt.outputs:
                found.append(module)
                break
            stack.extend(nxt.outputs)
    return found


def _read_group(graph: Any, names: dict[nn.Module, str], raw: Any) -> ChannelGroup:
    root = raw[0].dep.target.module
    size = len(raw[0].idxs)
    producers: dict[str, np.ndarray] = {}
    consumers: dict[str, np.ndarray] = {}
    for item in raw:
        module = item.dep.target.module
        if not isinstance(module, nn.Module) or module not in names:
            continue  # bare nn.Parameter items carry no channels of their own to mask
        index = np.full(size, -1, dtype=np.int64)
        index[np.asarray(item.root_idxs, dtype=np.int64)] = np.asarray(item.idxs, dtype=np.int64)
        if graph.is_out_channel_pruning_fn(item.dep.handler) or isinstance(module, _NORM_TYPES):
            target = producers
        else:
            target = consumers
        name = names[module]
        if name in target:  # the same module reached twice: merge the mapped indices
            index = np.where(index >= 0, index, target[name])
        target[name] = index
    prod = tuple(Member(n, i) for n, i in producers.items())
    norms = tuple(m for m in prod if isinstance(graph.model.get_submodule(m.name), _NORM_TYPES))
    return ChannelGroup(names[root], size, prod, norms, tuple(Member(n, i) for n, i in consumers.items()))
