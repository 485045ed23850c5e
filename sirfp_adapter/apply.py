"""Applying a plan: soft masks, physical removal, saving and loading pruned models.

* :class:`ChannelMasks` zeroes removed channels at the output of every layer that
  produces them (the convolution and the norm after it, every block of a residual
  stream), with forward hooks; nothing is stored on the modules and the optimizer's
  parameters are untouched, so training goes on with the same optimizer, and a masked
  channel is exactly zero whatever the optimizer does to its weights.
* :func:`prune_channels` removes channels physically through Torch-Pruning: a smaller
  model that runs forward and trains (build a new optimizer afterwards).
* :func:`save_pruned` / :func:`load_pruned` store a pruned model as its ``state_dict``
  plus the shape attributes of every resized module, and rebuild it from a freshly
  constructed unpruned model; the file is read with ``torch.load(weights_only=True)``,
  so it can never run code.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from sirfp_adapter.groups import ChannelGroups

__all__ = ["ChannelMasks", "load_pruned", "prune_channels", "save_pruned"]

FORMAT = "sirfp-pruned-model/1"

# constructor attributes that determine a module's shapes, by module type
_SHAPE_ATTRS: dict[type, tuple[str, ...]] = {
    nn.modules.conv._ConvNd: ("in_channels", "out_channels", "groups"),
    nn.Linear: ("in_features", "out_features"),
    nn.modules.batchnorm._BatchNorm: ("num_features",),
    nn.modules.instancenorm._InstanceNorm: ("num_features",),
    nn.GroupNorm: ("num_groups", "num_channels"),
    nn.LayerNorm: ("normalized_shape",),
    nn.PReLU: ("num_parameters",),
}


class ChannelMasks:
    """Soft pruning: removed channels are zero at the output of every producer.

    Parameters
    ----------
    model : torch.nn.Module
    groups : ChannelGroups
        The model's groups; the masks refer to their channel numbering.

    Notes
    -----
    A masked channel's output is multiplied by 0 after each producing layer (the
    convolution, its norm, every block on a residual stream), so the channel is exactly
    zero downstream — the network computes what the physically pruned network computes.
    The hooks stay until :meth:`remove`; :attr:`active` (one boolean vector per group)
    is the whole state (``state_dict``).
    """

    def __init__(self, model: nn.Module, groups: ChannelGroups) -> None:
        self.model = model
        self.groups = groups
        self.active = {g.name: np.ones(g.size, dtype=bool) for g in groups}
        self._handles: list[Any] = []
        self._masks: dict[str, torch.Tensor] = {}
        modules = dict(model.named_modules())
        self._producers: dict[str, list[tuple[str, np.ndarray]]] = {}
        for g in groups:
            for member in g.producers:
                self._producers.setdefault(member.name, []).append((g.name, member.index))
        for name in self._producers:
            self._handles.append(modules[name].register_forward_hook(self._hook(name)))

    def _hook(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
            mask = self._masks.get(name)
            if mask is None:
                return None
            if mask.device != output.device or mask.dtype != output.dtype:
                mask = self._masks[name] = mask.to(device=output.device, dtype=output.dtype)
            shape = [1] * output.dim()
            shape[1 if output.dim() > 2 else -1] = -1
            return output * mask.view(shape)

        return hook

    def _rebuild(self) -> None:
        modules = dict(self.model.named_modules())
        self._masks.clear()
        for name, entries in self._producers.items():
            module = modules[name]
            width = _out_width(module)
            keep = np.ones(width, dtype=bool)
            for group_name, index in entries:
                dead = index[(~self.active[group_name]) & (index >= 0)]
                keep[dead] = False
            if not keep.all():
                self._masks[name] = torch.as_tensor(keep, dtype=torch.float32)

    def remove_channels(self, remove: Mapping[str, Iterable[int]]) -> None:
        """Mask the given group-local channels (on top of those already masked)."""
        for name, channels in remove.items():
            if name not in self.active:
                raise KeyError(f"no prunable group has root layer {name!r}")
            idx = np.asarray(list(channels), dtype=np.int64)
            active = self.active[name].copy()
            active[idx] = False
            if not active.any():
                raise ValueError(f"cannot mask every channel of group {name!r}")
            self.active[name] = active
        self._rebuild()

    def removed(self) -> np.ndarray:
        """Masked channels per group, in group order."""
        return np.array([np.count_nonzero(~self.active[g.name]) for g in self.groups], dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        return {"active": {k: torch.as_tensor(v) for k, v in self.active.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        active = state["active"]
        if set(active) != set(self.active):
            raise ValueError("the saved masks belong to other groups")
        for k, v in active.items():
            v = np.asarray(torch.as_tensor(v).cpu(), dtype=bool)
            if v.shape != self.active[k].shape:
                raise ValueError(f"mask of group {k!r} has {v.size} channels, the group {self.active[k].size}")
            self.active[k] = v
        self._rebuild()

    def remove(self) -> None:
        """Remove the hooks (the masked channels are live again)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def prune(self) -> None:
        """Remove every masked channel physically, then the hooks."""
        self.remove()
        prune_channels(self.groups, {k: np.flatnonzero(~v) for k, v in self.active.items()})


def _out_width(module: nn.Module) -> int:
    for attr in ("out_channels", "out_features", "num_features", "num_channels"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    raise TypeError(f"cannot mask the output of a {type(module).__name__}")


def prune_channels(groups: ChannelGroups, remove: Mapping[str, Iterable[int]]) -> None:
    """Physically remove group-local channels, group by group (Torch-Pruning).

    ``groups`` is stale afterwards: build new groups for any further planning.
    """
    for name, channels in remove.items():
        channels = np.asarray(list(channels), dtype=np.int64)
        if channels.size:
            groups.prune(groups.index(name), channels)


# ---------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------


def _shape_attrs(module: nn.Module) -> dict[str, Any] | None:
    for cls, attrs in _SHAPE_ATTRS.items():
        if isinstance(module, cls):
            values = {}
            for a in attrs:
                v = getattr(module, a)
                values[a] = list(v) if isinstance(v, tuple) else v
            return values
    return None


def save_pruned(model: nn.Module, path: str | os.PathLike[str], *, metadata: Mapping[str, Any] | None = None) -> None:
    """Save a (pruned) model: its ``state_dict`` and each module's shape attributes.

    ``metadata`` (plain values: numbers, strings, lists, dicts) is stored alongside,
    e.g. the FLOPs report.
    """
    metadata = dict(metadata or {})
    _check_plain(metadata, "metadata")
    modules = {name: attrs for name, m in model.named_modules() if (attrs := _shape_attrs(m)) is not None}
    torch.save(
        {"format": FORMAT, "modules": modules, "state_dict": model.state_dict(), "metadata": metadata},
        path,
    )


_PLAIN = (bool, int, float, str, type(None))


def _check_plain(value: Any, where: str) -> None:
    """Refuse values ``torch.load(weights_only=True)`` would refuse (numpy scalars, objects)."""
    if type(value) in _PLAIN:
        return
    if type(value) in (list, tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if type(value) is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"{where} keys must be str, got {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where} must hold only bool, int, float, str, None, lists and dicts "
                    f"(what weights_only loading accepts), got {type(value).__name__}")


def load_pruned(model: nn.Module, path: str | os.PathLike[str], *, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a model saved by :func:`save_pruned` into ``model``, a freshly built
    instance of the same (unpruned) architecture, resizing its modules in place.

    Returns the stored metadata. The file is read with ``weights_only=True``.
    """
    refusal = f"{os.fspath(path)!r} is not a model saved by sirfp_adapter.save_pruned"
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, KeyError, ValueError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{refusal} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(refusal)
    modules = dict(model.named_modules())
    missing = sorted(set(blob["modules"]) - set(modules))
    if missing:
        raise ValueError(f"the saved model has modules this model lacks: {missing[:5]}")
    state = blob["state_dict"]
    for name, attrs in blob["modules"].items():
        module = modules[name]
        for attr, value in attrs.items():
            setattr(module, attr, tuple(value) if isinstance(value, list) else value)
        prefix = f"{name}." if name else ""
        for pname, tensor in list(module.named_parameters(recurse=False)):
            saved = state.get(prefix + pname)
            if saved is not None and saved.shape != tensor.shape:
                setattr(module, pname, nn.Parameter(torch.empty_like(saved, device=tensor.device, dtype=tensor.dtype),
                                                    requires_grad=tensor.requires_grad))
        for bname, buf in list(module.named_buffers(recurse=False)):
            saved = state.get(prefix + bname)
            if buf is not None and saved is not None and saved.shape != buf.shape:
                setattr(module, bname, torch.empty_like(saved, device=buf.device, dtype=buf.dtype))
    model.load_state_dict(state)
    return dict(blob.get("metadata", {}))
