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
  constructed unpruned model; the file is written atomically and read with
  ``torch.load(weights_only=True)``, so it can never run code; loading checks the whole
  file against the model before it changes anything.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from mewcp.atomic import atomic_write
from sirfp_adapter.checks import check_module
from sirfp_adapter.groups import ChannelGroups, channel_dim, channel_indices

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
            shape[channel_dim(module, output)] = -1
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
        """Mask the given group-local channels (on top of those already masked).

        Every entry is checked before any mask changes: a group name of this model,
        integer channel indices in ``[0, size)`` (`sirfp_adapter.groups.channel_indices`),
        and at least one channel left active.
        """
        updated: dict[str, np.ndarray] = {}
        for name, channels in remove.items():
            if name not in self.active:
                raise KeyError(f"no prunable group has root layer {name!r}")
            idx = channel_indices(channels, self.groups[self.groups.index(name)])
            active = self.active[name].copy()
            active[idx] = False
            if not active.any():
                raise ValueError(f"cannot mask every channel of group {name!r}")
            updated[name] = active
        self.active.update(updated)
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

    @property
    def attached(self) -> bool:
        """Whether the hooks are in place (not yet removed or pruned)."""
        return bool(self._handles)

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
    shape = getattr(module, "normalized_shape", None)  # LayerNorm over its channels
    if isinstance(shape, tuple) and len(shape) == 1:
        return int(shape[0])
    raise TypeError(f"cannot mask the output of a {type(module).__name__}")


def prune_channels(groups: ChannelGroups, remove: Mapping[str, Iterable[int]]) -> None:
    """Physically remove group-local channels, group by group (Torch-Pruning).

    ``groups`` is stale afterwards: build new groups for any further planning. Every
    entry is checked (`sirfp_adapter.groups.channel_indices`) before any channel is
    removed.
    """
    checked = [(groups.index(name), channel_indices(channels, groups[groups.index(name)]))
               for name, channels in remove.items()]
    for index, channels in checked:
        if channels.size >= groups[index].size:
            raise ValueError(f"cannot remove all {groups[index].size} channels of group {groups[index].name!r}")
    for index, channels in checked:
        if channels.size:
            groups.prune(index, channels)


# ---------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------


def _shape_attrs(module: nn.Module) -> dict[str, Any] | None:
    attrs = _documented_attrs(module)
    if attrs is None:
        return None
    values = {}
    for a in attrs:
        v = getattr(module, a)
        values[a] = list(v) if isinstance(v, tuple) else v
    return values


def _documented_attrs(module: nn.Module) -> tuple[str, ...] | None:
    for cls, attrs in _SHAPE_ATTRS.items():
        if isinstance(module, cls):
            return attrs
    return None


def save_pruned(model: nn.Module, path: str | os.PathLike[str], *, metadata: Mapping[str, Any] | None = None) -> None:
    """Save a (pruned) model: its ``state_dict`` and each module's shape attributes.

    ``metadata`` (plain values: numbers, strings, lists, dicts) is stored alongside,
    e.g. the FLOPs report. The file is written atomically (a temporary file beside
    ``path``, then ``os.replace``): an interrupted save leaves the previous file.

    Raises
    ------
    TypeError
        ``model`` is not a module, ``path`` not a path, ``metadata`` not a mapping of
        plain values.
    ValueError
        ``path`` is a folder, or its folder does not exist (nothing is written).
    """
    check_module(model)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike file name, got {type(path).__name__}")
    if os.path.isdir(path):
        raise ValueError(f"path must name a file; {os.fspath(path)!r} is a folder")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"path must name a file in an existing folder; {folder!r} is not a folder "
                         f"(create it first)")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping of str to plain values, or None; got {type(metadata).__name__}")
    metadata = dict(metadata or {})
    _check_plain(metadata, "metadata")
    modules = {name: attrs for name, m in model.named_modules() if (attrs := _shape_attrs(m)) is not None}
    blob = {"format": FORMAT, "modules": modules, "state_dict": model.state_dict(), "metadata": metadata}
    atomic_write(path, lambda f: torch.save(blob, f))


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


def _read(path: str | os.PathLike[str], map_location: Any) -> Any:
    """``torch.load(weights_only=True)``; every failure but a missing file as ``ValueError``."""
    refusal = f"{os.fspath(path)!r} is not a model saved by sirfp_adapter.save_pruned"
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as exc:
        # torch's message advises retrying without weights_only: wrong advice for a file that
        # asks to run code, so it is not passed on
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = (f"it references the Python object {found.group(1)}, which a model file never holds"
                if found else "its pickle data is damaged or holds objects other than tensors and plain values")
        raise ValueError(f"{refusal}: {what}; refused without running any of it") from None
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, EOFError, KeyError, ... on damage
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ValueError(f"{refusal} ({type(exc).__name__}: {first})") from None


def _expected_shapes(module: nn.Module, attrs: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes of a documented module type given its shape attributes."""
    a = {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}
    if isinstance(module, nn.modules.conv._ConvNd):
        k = tuple(module.kernel_size)
        g = a["groups"]
        if module.transposed:
            weight = (a["in_channels"], a["out_channels"] // g, *k)
        else:
            weight = (a["out_channels"], a["in_channels"] // g, *k)
        return {"weight": weight, "bias": (a["out_channels"],)}
    if isinstance(module, nn.Linear):
        return {"weight": (a["out_features"], a["in_features"]), "bias": (a["out_features"],)}
    if isinstance(module, nn.modules.batchnorm._BatchNorm | nn.modules.instancenorm._InstanceNorm):
        n = (a["num_features"],)
        return {"weight": n, "bias": n, "running_mean": n, "running_var": n, "num_batches_tracked": ()}
    if isinstance(module, nn.GroupNorm):
        return {"weight": (a["num_channels"],), "bias": (a["num_channels"],)}
    if isinstance(module, nn.LayerNorm):
        return {"weight": a["normalized_shape"], "bias": a["normalized_shape"]}
    if isinstance(module, nn.PReLU):
        return {"weight": (a["num_parameters"],)}
    raise AssertionError(type(module))  # pragma: no cover - every _SHAPE_ATTRS type is listed above


def _check_attrs(name: str, module: nn.Module, attrs: object) -> dict[str, Any]:
    """The file's shape attributes of one module, checked against the module's type and size."""
    kind = type(module).__name__
    where = f"modules[{name!r}]"
    documented = _documented_attrs(module)
    assert documented is not None
    if not isinstance(attrs, dict):
        raise ValueError(f"{where} must be a dict of shape attributes; got {type(attrs).__name__}")
    for attr in attrs:
        if attr not in documented:
            raise ValueError(f"{where}[{attr!r}] is not a shape attribute of {kind} "
                             f"(those are: {', '.join(documented)})")
    for attr in documented:
        if attr not in attrs:
            raise ValueError(f"{where} lacks {attr!r}")
        value, current = attrs[attr], getattr(module, attr)
        key = f"{where}[{attr!r}]"
        if isinstance(current, tuple):
            ok = (isinstance(value, list) and len(value) == len(current)
                  and all(type(v) is int and 1 <= v <= c for v, c in zip(value, current, strict=True)))
            if not ok:
                raise ValueError(f"{key} must be a list of {len(current)} int(s) from 1 to the model's "
                                 f"{list(current)}; got {value!r}")
        elif type(value) is not int or not 1 <= value <= current:
            raise ValueError(f"{key} must be an int from 1 to the model's {current}; got {value!r}")
    if "groups" in attrs:
        for side in ("in_channels", "out_channels"):
            if attrs[side] % attrs["groups"]:
                raise ValueError(f"{where}[{side!r}] is {attrs[side]}, not a multiple of "
                                 f"{where}['groups'] = {attrs['groups']}")
    if "num_groups" in attrs and attrs["num_channels"] % attrs["num_groups"]:
        raise ValueError(f"{where}['num_channels'] is {attrs['num_channels']}, not a multiple of "
                         f"{where}['num_groups'] = {attrs['num_groups']}")
    return attrs


def _shape_text(shape: Iterable[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(tuple(shape)) == 1 else "") + ")"


def load_pruned(model: nn.Module, path: str | os.PathLike[str], *, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a model saved by :func:`save_pruned` into ``model``, a freshly built
    instance of the same (unpruned) architecture, resizing its modules in place.

    Returns the stored metadata. The file is read with ``weights_only=True`` (it can
    never run code).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        For any other problem, naming the key: not a ``save_pruned`` file, damaged, a
        pickle that references code, another architecture, a missing or extra key, an
        attribute that is not a documented shape attribute of its module's type or
        larger than the model's, a tensor whose shape contradicts the recorded
        attributes, non-finite weights.

    Notes
    -----
    Transactional: the whole file is checked against the model first, and the model
    is changed only when every check passed; after a failure its ``state_dict`` and
    its forward are exactly as before. The checks: the file's ``modules`` name
    exactly the model's modules of the types in ``_SHAPE_ATTRS`` (convolutions,
    linear, batch / instance / group / layer norms, PReLU) and give exactly that
    type's shape attributes, positive ints no larger than the model's (pruning
    only shrinks), conv channels divisible by ``groups``; ``state_dict`` has exactly
    the model's keys, each a tensor of the model's dtype kind whose shape follows
    from its module's recorded attributes (for a module of another type: the same
    number of dims, none larger than the model's); parameters and the recorded
    modules' floating tensors are finite. Then the attributes are set, resized
    tensors replaced (tied parameters stay tied) and the others copied in place.
    """
    blob = _read(path, map_location)
    refusal = f"{os.fspath(path)!r} is not a model saved by sirfp_adapter.save_pruned"
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(refusal)
    for key in ("modules", "state_dict"):
        if not isinstance(blob.get(key), dict):
            raise ValueError(f"{refusal}: its {key!r} is not a dict")
    extra = sorted(set(blob) - {"format", "modules", "state_dict", "metadata"}, key=str)
    if extra:
        raise ValueError(f"{refusal}: unknown key {extra[0]!r}")
    metadata = blob.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"{refusal}: its 'metadata' is not a dict")

    # 1. shape attributes, module by module
    modules = dict(model.named_modules())
    recorded = {n for n, m in modules.items() if _documented_attrs(m) is not None}
    lacking = sorted(set(blob["modules"]) - set(modules), key=str)
    if lacking:
        raise ValueError(f"the saved model has modules this model lacks: {lacking[:5]}")
    for name in blob["modules"]:
        if name not in recorded:
            raise ValueError(f"modules[{name!r}] is a {type(modules[name]).__name__}, which has no shape attributes")
    absent = sorted(recorded - set(blob["modules"]))
    if absent:
        raise ValueError(f"modules lacks {absent[0]!r} (a {type(modules[absent[0]]).__name__} of this model)")
    attrs = {n: _check_attrs(n, modules[n], blob["modules"][n]) for n in sorted(recorded)}
    expected = {n: _expected_shapes(modules[n], a) for n, a in attrs.items()}

    # 2. every tensor: key, type, dtype kind, shape, finiteness; converted before anything changes
    current = model.state_dict(keep_vars=True)
    state = blob["state_dict"]
    for key in current:
        if key not in state:
            raise ValueError(f"state_dict lacks {key!r}")
    for key in state:
        if key not in current:
            raise ValueError(f"state_dict[{key!r}]: this model has no such parameter or buffer")
    parameters = {k for k, _ in model.named_parameters(remove_duplicate=False)}
    new: dict[str, torch.Tensor] = {}
    for key, old in current.items():
        saved = state[key]
        where = f"state_dict[{key!r}]"
        if not isinstance(old, torch.Tensor):
            raise ValueError(f"{where}: this model keeps extra (non-tensor) state there, "
                             "which load_pruned does not restore")
        if not isinstance(saved, torch.Tensor):
            raise ValueError(f"{where} must be a tensor; got {type(saved).__name__}")
        if saved.is_floating_point() != old.is_floating_point() or saved.is_complex() != old.is_complex() \
                or (saved.dtype == torch.bool) != (old.dtype == torch.bool):
            raise ValueError(f"{where} is {saved.dtype}; the model's is {old.dtype}")
        owner, _, local = key.rpartition(".")
        shapes = expected.get(owner)
        if shapes is not None and local in shapes:
            want = tuple(shapes[local])
            if tuple(saved.shape) != want:
                told = ", ".join(f"{k}={v}" for k, v in attrs[owner].items())
                raise ValueError(f"{where} has shape {_shape_text(saved.shape)}; modules[{owner!r}] records "
                                 f"{told}, so it must be {_shape_text(want)}")
        elif saved.dim() != old.dim() or any(s < 1 or s > o for s, o in zip(saved.shape, old.shape, strict=True)):
            raise ValueError(f"{where} has shape {_shape_text(saved.shape)}; the model's is "
                             f"{_shape_text(old.shape)} (pruning keeps the dims and never enlarges one)")
        if saved.is_floating_point() and (key in parameters or owner in recorded) \
                and not bool(torch.isfinite(saved).all()):
            raise ValueError(f"{where} holds non-finite values (NaN or inf)")
        new[key] = saved.detach().to(device=old.device, dtype=old.dtype)

    # 3. commit: nothing below can fail on checked input
    _commit(model, modules, attrs, current, new)
    return dict(metadata)


def _commit(model: nn.Module, modules: Mapping[str, nn.Module], attrs: Mapping[str, Mapping[str, Any]],
            current: Mapping[str, Any], new: Mapping[str, torch.Tensor]) -> None:
    replaced: dict[int, torch.Tensor] = {}  # id of an old tensor -> its replacement (ties kept)
    owners = []
    for key, tensor in new.items():
        old = current[key]
        if tuple(tensor.shape) != tuple(old.shape) and id(old) not in replaced:
            if isinstance(old, nn.Parameter):
                replaced[id(old)] = nn.Parameter(tensor.clone(), requires_grad=old.requires_grad)
            else:
                replaced[id(old)] = tensor.clone()
        owner, _, local = key.rpartition(".")
        owners.append((modules[owner], local, old))
    for name, values in attrs.items():
        for attr, value in values.items():
            setattr(modules[name], attr, tuple(value) if isinstance(value, list) else value)
    for module, local, old in owners:
        if id(old) in replaced:
            if local in module._parameters:
                module._parameters[local] = replaced[id(old)]
            else:
                module._buffers[local] = replaced[id(old)]
    with torch.no_grad():
        for key, tensor in new.items():
            target = current[key]
            if id(target) not in replaced:
                target.copy_(tensor)
