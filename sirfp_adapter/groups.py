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
  linear layer) and the layers the user ignores;
* the shape of every module's output in the trace, and from it which groups a redundancy
  measure can take (:meth:`ChannelGroups.unmeasurable`, :meth:`ChannelGroups.measurable`).

A redundancy measure compares channel *maps*: it needs the group's feature layers to
output ``(B, C, H, W)`` tensors, channels on dimension 1. Token tensors ``(B, N, C)`` (a
transformer's linear layers and LayerNorms), channels-last maps ``(B, H, W, C)`` and
anything else are not maps of those channels; the groups measured there are
*unmeasurable*. The policy (applied by the SIRFP criterion): they are left out of
pruning, with one warning that names them, their layers and the shapes seen; the
convolutional groups of the same model are still pruned. A model with no measurable
group at all is an error. Baseline criteria (L1, BN scale, ...) rank weights, not maps,
and keep every group.

A normalisation over several channels together — a ``LayerNorm`` over the channels (a
transformer's), a ``GroupNorm`` with ``num_groups < num_channels`` — cannot lose single
channels exactly: its statistics, and so every other channel's output, change with the
channels it is left with, so the masked network would not compute what the pruned one
computes. Neither can a grouped convolution other than a plain depthwise one (``groups``
above 1 and below its channels, or a depthwise one with a channel multiplier): its
channels form fixed blocks of ``channels / groups``. Groups that touch one are left out
of pruning for every criterion, with a warning (``ChannelGroups.left_out``).

Groups are numbered in the order their root layers are registered in the model. Channel ``c`` of
a group is channel ``c`` of its root layer (the layer whose output channels define it).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sirfp_adapter.checks import check_module, describe_inputs

__all__ = ["ChannelGroup", "ChannelGroups", "Member", "channel_dim", "channel_indices"]

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
    input channels for consumers); ``fan`` is how many of the module's input features one
    group channel feeds (1; H·W for a map flattened into a linear layer)."""

    name: str
    index: np.ndarray
    fan: int = 1


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

    def __init__(
        self,
        model: nn.Module,
        graph: Any,
        groups: list[ChannelGroup],
        ignored: tuple[str, ...],
        outputs: dict[str, str] | None = None,
    ) -> None:
        self.model = model
        self.graph = graph
        self._groups = groups
        self.ignored = ignored
        #: Why a traced module's output is not a (B, C, H, W) map of its channels
        #: (``"Linear output (2, 1024, 64)"``); modules whose output is one are absent.
        self.not_maps: dict[str, str] = dict(outputs or {})
        #: Groups :meth:`build` left out of pruning for every criterion, with the reason.
        self.left_out: dict[str, str] = {}
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
        check_module(model)
        names = {m: n for n, m in model.named_modules()}
        lookup = dict(model.named_modules())
        if not isinstance(example_inputs, (torch.Tensor, tuple, list, dict)):
            raise TypeError(f"example_inputs must be a batch the model accepts: a tensor, or a tuple or dict of "
                            f"its arguments; got {type(example_inputs).__name__}")
        if isinstance(ignored_layers, (str, nn.Module)):
            raise TypeError(f"ignored_layers must be a sequence of modules or module names, got one "
                            f"{type(ignored_layers).__name__}: pass [{ignored_layers!r}]")
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
        not_maps: dict[str, str] = {}
        hooks_before = {m: set(m._forward_hooks) for m in lookup.values()}
        handles = [m.register_forward_hook(_shape_hook(n, not_maps)) for n, m in lookup.items()]
        try:
            with torch.enable_grad():
                graph = tp.DependencyGraph().build_dependency(model, example_inputs, verbose=False)
        except Exception as exc:  # most often the model's own forward refusing the input: say which input
            for m, keys in hooks_before.items():  # Torch-Pruning leaves its tracing hooks when forward raises
                for key in set(m._forward_hooks) - keys:
                    del m._forward_hooks[key]
            exc.add_note(f"(raised while tracing the model on example_inputs, "
                         f"{describe_inputs(example_inputs)}: example_inputs must be a batch the model "
                         f"accepts)")
            raise
        finally:
            for handle in handles:
                handle.remove()
            model.train(was_training)
        ignored = user_ignored + _output_layers(graph)
        groups = [
            _read_group(graph, names, raw)
            for raw in graph.get_all_groups(ignored_layers=ignored, root_module_types=_MIXING_TYPES)
        ]
        position = {name: i for i, name in enumerate(lookup)}
        groups.sort(key=lambda g: position[g.name])
        left_out = {g.name: why for g in groups if (why := _not_prunable(g, lookup)) is not None}
        if left_out:
            listing = "\n".join(f"  {name}: {why}" for name, why in left_out.items())
            warnings.warn(
                f"{len(left_out)} of {len(groups)} channel groups are left out of pruning: their channels "
                f"cannot be removed exactly (a normalisation over several channels together, a grouped "
                f"convolution, or channel indices the dependency graph maps beyond a layer's width):\n{listing}\n"
                f"to silence this, pass ignored_layers={sorted(left_out)!r}",
                UserWarning, stacklevel=2,
            )
            groups = [g for g in groups if g.name not in left_out]
        ignored_names = {names[m] for m in ignored} | set(left_out)
        built = cls(model, graph, groups, tuple(sorted(ignored_names)), not_maps)
        built.left_out = left_out
        return built

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

    def unmeasurable(self) -> dict[str, str]:
        """Groups whose feature maps a redundancy measure cannot take, each with the
        reason: ``{group name: "layer: Linear output (2, 1024, 64); ..."}`` (see the
        module Notes)."""
        out = {}
        for g in self._groups:
            bad = [f"{n}: {self.not_maps[n]}" for n in g.feature_layers if n in self.not_maps]
            if bad:
                out[g.name] = "; ".join(bad)
        return out

    def measurable(self) -> ChannelGroups:
        """These groups less the :meth:`unmeasurable` ones (``self`` when none is), the
        policy of criteria that measure feature maps: the others are left out of pruning
        (their root layers join ``ignored``), with a ``UserWarning`` naming them.

        Raises
        ------
        ValueError
            When no group is measurable.
        """
        bad = self.unmeasurable()
        if not bad:
            return self
        kept = [g for g in self._groups if g.name not in bad]
        listing = "\n".join(f"  group {name}, measured at {_first(why)}" for name, why in bad.items())
        if not kept:
            raise ValueError(
                f"no group of the model has (B, C, H, W) feature maps for a redundancy measure; all "
                f"{len(bad)} were found elsewhere:\n{listing}\nrank them with a baseline criterion "
                "(criterion='l1', 'bn_scale', 'fpgm', 'taylor' or 'random') instead"
            )
        warnings.warn(
            f"{len(bad)} of {len(self._groups)} channel groups have no (B, C, H, W) feature maps for a "
            f"redundancy measure and are left out of SIRFP (not pruned); the other {len(kept)} are pruned:"
            f"\n{listing}\nto silence this, pass ignored_layers={sorted(bad)!r}",
            UserWarning, stacklevel=3,
        )
        out = ChannelGroups(self.model, self.graph, kept, tuple(sorted({*self.ignored, *bad})), self.not_maps)
        out.left_out = {**self.left_out, **bad}
        return out

    def prune(self, group: int, channels: Sequence[int] | np.ndarray) -> None:
        """Physically remove ``channels`` (group-local indices) of group ``group``.

        The Torch-Pruning group is regenerated from the dependency graph right before
        pruning, so index mappings through concatenations reflect earlier removals.
        After pruning, the other groups' channel numbering is unchanged, but this
        object's records of *this* group are stale: rebuild before planning again.
        """
        g = self._groups[group]
        idxs = channel_indices(channels, g).tolist()
        if not idxs:
            return
        if len(idxs) >= g.size:
            raise ValueError(f"cannot remove all {g.size} channels of group {g.name!r}")
        modules = dict(self.model.named_modules())
        module = modules[g.name]
        # a GroupNorm with one channel per group stays so (Torch-Pruning keeps num_groups)
        per_channel = [m for m in (modules[x.name] for x in (*g.producers, *g.consumers))
                       if isinstance(m, nn.GroupNorm) and m.num_groups == m.num_channels]
        handler = self.graph.get_pruner_of_module(module).prune_out_channels
        self.graph.get_pruning_group(module, handler, idxs).prune()
        for m in per_channel:
            m.num_groups = m.num_channels

    def __repr__(self) -> str:
        return f"ChannelGroups({len(self)} groups, {sum(g.size for g in self)} channels, ignored={list(self.ignored)})"


def _width(module: nn.Module, out: bool) -> int | None:
    attrs = ("out_channels", "out_features") if out else ("in_channels", "in_features")
    for attr in (*attrs, "num_features", "num_channels", "num_parameters"):
        if isinstance(getattr(module, attr, None), int):
            return int(getattr(module, attr))
    shape = getattr(module, "normalized_shape", None)
    return int(shape[0]) if isinstance(shape, tuple) and len(shape) == 1 else None


def channel_indices(channels: Iterable[int] | np.ndarray, group: ChannelGroup) -> np.ndarray:
    """``channels`` as sorted, distinct int64 indices of ``group``'s channels.

    Raises
    ------
    TypeError
        A value is not an integer (a float, or a bool mask instead of indices).
    ValueError
        The indices are not one-dimensional, or one lies outside ``[0, group.size)``.
    """
    raw = np.asarray(channels if isinstance(channels, np.ndarray) else list(channels))
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    if raw.dtype == np.bool_ or not np.issubdtype(raw.dtype, np.integer):
        raise TypeError(f"channels of group {group.name!r} must be integer indices, got {raw.dtype} values")
    if raw.ndim != 1:
        raise ValueError(f"channels of group {group.name!r} must be a flat sequence of indices, got shape {raw.shape}")
    idx = np.unique(raw.astype(np.int64))
    if idx[0] < 0 or idx[-1] >= group.size:
        raise ValueError(f"channels must lie in [0, {group.size}) for group {group.name!r}")
    return idx


def _not_prunable(group: ChannelGroup, modules: dict[str, nn.Module]) -> str | None:
    """Why ``group`` cannot lose single channels exactly, or None: a LayerNorm or
    GroupNorm that normalises several of them together, a grouped convolution other than
    a plain depthwise one (``groups == in_channels == out_channels``: its channels are
    split into fixed blocks, and removing single channels breaks the blocks or the
    layer), or a member whose mapped channel
    indices exceed its width (Torch-Pruning's graph through an attention reshape couples
    a query layer with its twice-as-wide key-value layer)."""
    for member, out in [*((m, True) for m in group.producers), *((m, False) for m in group.consumers)]:
        m = modules[member.name]
        width = _width(m, out)
        if width is not None and member.index.size and int(member.index.max()) >= width:
            side = "output" if out else "input"
            return (f"{member.name} is given channel {int(member.index.max())} of its {width} {side} "
                    f"channels by the dependency graph")
        if isinstance(m, nn.GroupNorm) and m.num_groups < m.num_channels:
            return f"{member.name} is GroupNorm({m.num_groups}, {m.num_channels})"
        if isinstance(m, nn.modules.conv._ConvNd) and m.groups > 1 and not m.groups == m.in_channels == m.out_channels:
            return (f"{member.name} is a grouped convolution ({m.in_channels} -> {m.out_channels} channels "
                    f"in {m.groups} groups)")
        if isinstance(m, nn.LayerNorm):
            return f"{member.name} is {type(m).__name__}({tuple(m.normalized_shape)})"
    return None


def _first(reasons: str) -> str:
    parts = reasons.split("; ")
    return parts[0] + (f" (and {len(parts) - 1} more layers of the group)" if len(parts) > 1 else "")


#: Modules whose channels lie on the *last* dimension of their output, by definition.
_CHANNELS_LAST = (nn.Linear.forward, nn.LayerNorm.forward)
#: Modules whose channels lie on dimension 1 of their output, by definition.
_CHANNELS_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.GroupNorm,
                   nn.modules.instancenorm._InstanceNorm)


def channel_dim(module: nn.Module, output: torch.Tensor) -> int:
    """The dimension of ``output`` that holds ``module``'s channels: the last for linear
    layers and LayerNorms (tokens ``(B, N, C)``, channels-last maps) and for 1-D or 2-D
    outputs, dimension 1 otherwise."""
    return -1 if output.dim() <= 2 or type(module).forward in _CHANNELS_LAST else 1


def _channels(module: nn.Module) -> int | None:
    for attr in ("out_channels", "num_features", "num_channels", "out_features"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    shape = getattr(module, "normalized_shape", None)
    return int(shape[0]) if isinstance(shape, tuple) and len(shape) == 1 else None


def _not_a_map(module: nn.Module, output: Any) -> str | None:
    """Why ``output`` is not a (B, C, H, W) map of ``module``'s channels, or None if it is."""
    kind = type(module).__name__
    if not isinstance(output, torch.Tensor):
        return f"{kind} output is a {type(output).__name__}, not a tensor"
    shape = tuple(output.shape)
    if output.dim() != 4:
        return f"{kind} output {shape} is not (B, C, H, W)"
    if type(module).forward in _CHANNELS_LAST:
        return f"{kind} output {shape} has its channels last"
    channels = _channels(module)
    if not isinstance(module, _CHANNELS_FIRST) and channels is not None and shape[1] != channels:
        return f"{kind} output {shape} does not have its {channels} channels on dimension 1"
    return None


def _shape_hook(name: str, found: dict[str, str]):  # noqa: ANN202
    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        why = _not_a_map(module, output)
        if why is not None:
            found.setdefault(name, why)

    return hook


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
    fans: dict[str, int] = {}
    for item in raw:
        module = item.dep.target.module
        if not isinstance(module, nn.Module) or module not in names:
            continue  # bare nn.Parameter items carry no channels of their own to mask
        root_idxs = np.asarray(item.root_idxs, dtype=np.int64)
        index = np.full(size, -1, dtype=np.int64)
        index[root_idxs] = np.asarray(item.idxs, dtype=np.int64)
        if graph.is_out_channel_pruning_fn(item.dep.handler) or isinstance(module, _NORM_TYPES):
            target = producers
        else:
            target = consumers
            # a flattened map: Torch-Pruning expands each channel to its H·W input features
            fan = int(np.bincount(root_idxs, minlength=size).max())
            fans[names[module]] = max(fans.get(names[module], 1), fan)
        name = names[module]
        if name in target:  # the same module reached twice: merge the mapped indices
            index = np.where(index >= 0, index, target[name])
        target[name] = index
    prod = tuple(Member(n, i) for n, i in producers.items())
    norms = tuple(m for m in prod if isinstance(graph.model.get_submodule(m.name), _NORM_TYPES))
    cons = tuple(Member(n, i, fans[n]) for n, i in consumers.items())
    return ChannelGroup(names[root], size, prod, norms, cons)
