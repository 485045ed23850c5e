"""Replaying the unchanged beginning of a forward pass instead of recomputing it.

A measurement that masks some layers' outputs and runs the network again (the
`Sensitivity` budget: a group loses channels, the output is compared with the dense
one) recomputes, each time, everything that runs *before* the first masked layer —
identical to the previous pass. :class:`PrefixReplay` records once which module calls a
forward pass makes, in which order; for a set of layers about to be masked it finds the
outermost calls that finish before the first of them starts (:meth:`PrefixReplay.prefix`),
stores their outputs on one pass (:meth:`PrefixReplay.capturing`) and hands them back on
the next passes without running them (:meth:`PrefixReplay.replaying`).

Notes
-----
Exactness. Everything a forward pass computes before the first masked layer is called
is what the dense pass computes (same inputs, eval mode, no randomness), so a call that
has finished by then returns the same value whatever is masked later. What is stored is
the call's own return value, before its forward hooks (a hook registered first), and the
hooks still run on the replayed value, so masks and other hooks act as they did. Stored
values are cloned when stored and when handed back, so an in-place operation later in the
pass (``out += identity``, ``ReLU(inplace=True)``) changes neither the store nor the next
replay. A replaying pass checks that it handed back every stored call exactly once (the
same sequence of calls as recorded); the caller falls back to a full pass otherwise.

Only calls whose outputs are tensors or containers of tensors and plain values (tuples,
lists, dicts) are stored. The stores are capped at ``max_bytes`` together (1 GiB by
default): past it, the calls that took the most time per byte of output in the recorded
pass are kept.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves, tree_map

__all__ = ["Call", "PrefixReplay"]

#: Default cap on the stored outputs of one group's prefix (bytes).
MAX_BYTES = 1 << 30

_PLAIN = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.Size)


@dataclass(frozen=True)
class Call:
    """One module call of the recorded pass: the module's name, which of its calls in the
    pass (``k``, from 0), when it started and ended (positions in the sequence of call
    events), the seconds it took and its output's size in bytes (``None``: not storable)."""

    name: str
    k: int
    start: int
    end: int
    seconds: float
    nbytes: int | None


def _storable_bytes(output: Any) -> int | None:
    leaves = tree_leaves(output)
    if not all(isinstance(leaf, (torch.Tensor, *_PLAIN)) for leaf in leaves):
        return None
    return sum(leaf.numel() * leaf.element_size() for leaf in leaves if isinstance(leaf, torch.Tensor))


def _clone(output: Any) -> Any:
    return tree_map(lambda leaf: leaf.clone() if isinstance(leaf, torch.Tensor) else leaf, output)


class PrefixReplay:
    """The module calls of one forward pass of ``model``, and the replay of its prefix.

    Parameters
    ----------
    model : torch.nn.Module
    max_bytes : int
        Cap on the outputs stored for one prefix (see the module Notes).
    """

    def __init__(self, model: nn.Module, max_bytes: int = MAX_BYTES) -> None:
        self.model = model
        self.max_bytes = max_bytes
        self.calls: list[Call] | None = None
        self._modules = dict(model.named_modules())

    # ------------------------------------------------------------------ recording
    def record(self, *args: Any) -> Any:
        """Run ``model(*args)`` once, recording its module calls; returns the output."""
        events = [0]
        open_calls: dict[str, list[tuple[int, int, float]]] = {}
        counts: dict[str, int] = {}
        calls: list[Call] = []
        handles = []

        def pre(name: str):  # noqa: ANN202
            def hook(module: nn.Module, inputs: Any) -> None:
                k = counts.get(name, 0)
                counts[name] = k + 1
                open_calls.setdefault(name, []).append((k, events[0], time.perf_counter()))
                events[0] += 1
            return hook

        def post(name: str):  # noqa: ANN202
            def hook(module: nn.Module, inputs: Any, output: Any) -> None:
                k, start, began = open_calls[name].pop()
                calls.append(Call(name, k, start, events[0], time.perf_counter() - began, _storable_bytes(output)))
                events[0] += 1
            return hook

        try:
            for name, module in self._modules.items():
                handles.append(module.register_forward_pre_hook(pre(name), prepend=True))
                handles.append(module.register_forward_hook(post(name), prepend=True))
            output = self.model(*args)
        finally:
            for handle in handles:
                handle.remove()
        self.calls = sorted(calls, key=lambda c: c.start)
        return output

    def first(self, layers: Collection[str]) -> int | None:
        """When the first call of any of ``layers`` starts (``None``: none is called)."""
        return min((c.start for c in self.calls or [] if c.name in layers), default=None)

    def ends_before(self, calls: list[Call], layers: Collection[str]) -> bool:
        """Whether every one of ``calls`` ends before any of ``layers`` is first called."""
        first = self.first(layers)
        return first is not None and all(c.end < first for c in calls)

    def prefix(self, layers: Collection[str], copies: int = 1) -> list[Call]:
        """The outermost storable calls that end before any of ``layers`` is first called
        (in call order), their outputs within ``max_bytes`` when stored ``copies`` times
        (once per batch, say); empty before :meth:`record`."""
        first = self.first(layers)
        if self.calls is None or first is None:
            return []
        # outermost among the storable calls that end in time (a call that is not storable
        # leaves its storable calls inside eligible); the model itself is never one
        chosen = self._outermost([c for c in self.calls if c.end < first and c.nbytes is not None and c.name != ""])
        if copies * sum(c.nbytes or 0 for c in chosen) > self.max_bytes:
            budget, kept = self.max_bytes // max(copies, 1), []
            for c in sorted(chosen, key=lambda c: c.seconds / max(c.nbytes or 1, 1), reverse=True):
                if (c.nbytes or 0) <= budget:
                    kept.append(c)
                    budget -= c.nbytes or 0
            chosen = sorted(kept, key=lambda c: c.start)
        return chosen

    @staticmethod
    def _outermost(calls: list[Call]) -> list[Call]:
        """The calls not nested in another of them (``calls`` sorted by start)."""
        chosen: list[Call] = []
        for c in calls:
            if chosen and c.end < chosen[-1].end:
                continue
            chosen.append(c)
        return chosen

    # ------------------------------------------------------------------ replaying
    @contextlib.contextmanager
    def capturing(self, calls: list[Call]) -> Iterator[dict[tuple[str, int], Any]]:
        """Within the block, forward passes store the outputs of ``calls`` (cloned) in the
        yielded dict, keyed ``(name, k)``; the last pass's values stay."""
        store: dict[tuple[str, int], Any] = {}
        wanted = {(c.name, c.k) for c in calls}
        counts: dict[str, int] = {}
        handles = []

        def pass_start(module: nn.Module, inputs: Any) -> None:
            counts.clear()

        def keep(name: str):  # noqa: ANN202
            def hook(module: nn.Module, inputs: Any, output: Any) -> None:
                k = counts.get(name, 0)
                counts[name] = k + 1
                if (name, k) in wanted:
                    store[(name, k)] = _clone(output)
            return hook

        try:
            handles.append(self.model.register_forward_pre_hook(pass_start, prepend=True))
            for name in {c.name for c in calls}:
                handles.append(self._modules[name].register_forward_hook(keep(name), prepend=True))
            yield store
        finally:
            for handle in handles:
                handle.remove()

    @contextlib.contextmanager
    def replaying(self, store: dict[tuple[str, int], Any]) -> Iterator[list[int]]:
        """Within the block, forward passes hand back the stored outputs instead of
        running those calls. Yields a one-element list: the number of stored values the
        last pass did *not* hand back exactly once (0 when it followed the recorded
        sequence of calls)."""
        names = {name for name, _ in store}
        counts: dict[str, int] = {}
        pending: dict[str, int] = {}  # the call number of a module's call in progress (through __call__)
        used: dict[tuple[str, int], int] = {}
        missed = [0]
        saved: dict[str, Any] = {}

        def pass_start(module: nn.Module, inputs: Any) -> None:
            counts.clear()
            used.clear()

        def pass_end(module: nn.Module, inputs: Any, output: Any) -> None:
            missed[0] = sum(1 for key in store if used.get(key, 0) != 1)

        def count(name: str):  # noqa: ANN202
            def hook(module: nn.Module, inputs: Any) -> None:  # calls counted as record() counts them
                k = counts.get(name, 0)
                counts[name] = k + 1
                pending[name] = k
            return hook

        def replay(name: str, original: Any):  # noqa: ANN202
            def forward(*args: Any, **kwargs: Any) -> Any:
                key = (name, pending.pop(name, -1))  # -1: forward() called directly, not a recorded call
                if key in store:
                    used[key] = used.get(key, 0) + 1
                    return _clone(store[key])
                return original(*args, **kwargs)
            return forward

        handles = [self.model.register_forward_pre_hook(pass_start, prepend=True),
                   self.model.register_forward_hook(pass_end)]
        try:
            for name in names:
                module = self._modules[name]
                handles.append(module.register_forward_pre_hook(count(name)))
                if "forward" in module.__dict__:
                    saved[name] = module.__dict__["forward"]
                module.forward = replay(name, module.forward)  # type: ignore[method-assign]
            yield missed
        finally:
            for handle in handles:
                handle.remove()
            for name in names:
                module = self._modules[name]
                if name in saved:
                    module.forward = saved[name]  # type: ignore[method-assign]
                else:
                    module.__dict__.pop("forward", None)
