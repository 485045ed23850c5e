"""Accumulate channel-redundancy graphs during training (SIRFP Eq. 4).

Notes
-----
For every watched layer l with C channels the collector keeps a C x C matrix
``a`` updated, on the layer's forward pass, as an exponential moving average

    a <- decay * a + (1 - decay) * (1 - r)

where ``r`` is the batch's redundancy from `sirfp_adapter.measures` (large when two
channels' maps are alike), so ``a_ij`` is large for channels that carry distinct
information: the edge weights of the paper's maximum edge weight clique problem
(Wu et al., AAAI 2025, Eq. 4; the paper uses decay 0.99). How the average starts
(``start``): ``"mean"`` weighs the ``n``-th observation by
``max(1 - decay, 1 / n)`` — a plain running mean until the EMA's horizon
``1 / (1 - decay)`` is reached, so a short collection is not dominated by its first
batch; ``"first"`` (default) initialises ``a`` with the first observation (then the first of
``n`` batches keeps weight ``decay ** (n - 1)``); ``"zero"`` starts from zero, as the
released code does (scaled by ``1 - decay ** n``).

Everything stays on the activation's device: one measure evaluation and one
in-place update per layer and step, no host transfer until `matrices()`. Under
``torch.distributed`` each step's ``r`` is all-reduced (mean over ranks) before the
update, so every rank holds the same matrices. Hooks are removed when the context
exits, even on an exception; nothing is stored on the modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from sirfp_adapter.measures import get_measure

__all__ = ["STARTS", "RedundancyCollector", "default_layers"]

STARTS = ("mean", "first", "zero")

_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


def default_layers(model: nn.Module) -> list[str]:
    """Names of the model's 2-D batch-norm layers (their outputs are what SIRFP measures)."""
    return [name for name, m in model.named_modules() if isinstance(m, _NORMS)]


class RedundancyCollector:
    """Forward hooks that keep an EMA of ``1 - r`` per layer.

    Parameters
    ----------
    model : nn.Module
    layers : iterable of str, optional
        Qualified module names to watch (``model.named_modules()``); default: every
        ``BatchNorm2d``/``SyncBatchNorm``.
    measure : str
        A name from `sirfp_adapter.measures.MEASURES` (``"js"``: the paper's;
        ``"gram"``: the released code's).
    decay : float
        EMA decay in [0, 1).
    every : int
        Measure on every ``every``-th forward pass of each layer (1: each one).
    max_samples : int, optional
        Use at most this many samples of each batch.
    training_only : bool
        Ignore forward passes made in eval mode.
    start : {"mean", "first", "zero"}
        How the EMA starts (see the module notes).
    **measure_options
        Passed to the measure (e.g. ``normalize="relu_l1"``, ``downsample=32``).

    Examples
    --------
    >>> with RedundancyCollector(model, measure="js", every=10) as collector:  # doctest: +SKIP
    ...     for x, y in loader:
    ...         loss = criterion(model(x), y); loss.backward(); optimizer.step()
    >>> graphs = collector.matrices()                                          # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Iterable[str] | None = None,
        *,
        measure: str = "js",
        decay: float = 0.99,
        every: int = 1,
        max_samples: int | None = None,
        training_only: bool = True,
        start: str = "first",
        **measure_options: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        modules = dict(model.named_modules())
        names = default_layers(model) if layers is None else list(layers)
        unknown = [n for n in names if n not in modules]
        if unknown:
            raise ValueError(f"layers: {unknown[0]!r} is not a module of the model")
        if not names:
            raise ValueError("layers: the model has no BatchNorm2d layer; name the layers to watch")
        if not (isinstance(decay, (int, float)) and 0.0 <= decay < 1.0):
            raise ValueError(f"decay must be a number in [0, 1); got {decay!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer; got {every!r}")
        if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, int)
                                        or max_samples < 1):
            raise ValueError(f"max_samples must be a positive integer or None; got {max_samples!r}")
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}; got {start!r}")
        self.start = start
        self.measure_name = measure
        self._measure = get_measure(measure)
        self.measure_options = measure_options
        self.decay = float(decay)
        self.every = every
        self.max_samples = max_samples
        self.training_only = training_only
        self._modules = {n: modules[n] for n in names}
        self._ema: dict[str, torch.Tensor] = {}
        self._calls: dict[str, int] = {n: 0 for n in names}
        self._updates: dict[str, int] = {n: 0 for n in names}
        self._positions: dict[str, int] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    # ------------------------------------------------------------------ hooks
    @property
    def layers(self) -> list[str]:
        """The watched layer names."""
        return list(self._modules)

    def open(self) -> RedundancyCollector:
        """Register the hooks (idempotent); prefer ``with collector:``."""
        if not self._handles:
            for name, module in self._modules.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def close(self) -> None:
        """Remove every hook."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> RedundancyCollector:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _hook(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if self.training_only and not module.training:
                return
            self._calls[name] += 1
            if (self._calls[name] - 1) % self.every:
                return
            self.update(name, output)

        return hook

    # ------------------------------------------------------------------ statistics
    @torch.no_grad()
    def update(self, name: str, activations: torch.Tensor) -> None:
        """Fold one batch of a layer's activations (B, C, H, W) into its EMA."""
        x = activations.detach()
        if self.max_samples is not None:
            x = x[: self.max_samples]
        r = self._measure(x, **self.measure_options).float()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(r, op=torch.distributed.ReduceOp.SUM)
            r /= torch.distributed.get_world_size()
        fresh = 1.0 - r
        self._positions[name] = int(x[0, 0].numel()) if x.dim() > 2 else 1
        n = self._updates[name] + 1
        ema = self._ema.get(name)
        if ema is None or ema.shape != fresh.shape:
            ema = self._ema[name] = torch.zeros_like(fresh) if self.start == "zero" else fresh
            if self.start != "zero":
                self._updates[name] = n
                return
        rate = max(1.0 - self.decay, 1.0 / n) if self.start == "mean" else 1.0 - self.decay
        ema.mul_(1.0 - rate).add_(fresh, alpha=rate)
        self._updates[name] = n

    def matrices(self, layers: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Each layer's current edge-weight matrix as float64 numpy (layers seen so far;
        only ``layers`` when given)."""
        names = self._modules if layers is None else layers
        return {n: self._ema[n].double().cpu().numpy() for n in names if n in self._ema}

    def positions(self) -> dict[str, int]:
        """Spatial positions (``H * W``) of each layer's last measured maps."""
        return dict(self._positions)

    def updates(self) -> dict[str, int]:
        """How many batches each layer's EMA has absorbed."""
        return dict(self._updates)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume collection (tensors on their devices)."""
        return {
            "measure": self.measure_name,
            "decay": self.decay,
            "ema": {n: t.clone() for n, t in self._ema.items()},
            "calls": dict(self._calls),
            "updates": dict(self._updates),
            "positions": dict(self._positions),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from `state_dict()`; the measure and layers must match."""
        if state.get("measure") != self.measure_name:
            raise ValueError(f"state was collected with measure {state.get('measure')!r}, "
                             f"this collector uses {self.measure_name!r}")
        unknown = sorted(set(state["ema"]) - set(self._modules))
        if unknown:
            raise ValueError(f"state holds layer {unknown[0]!r}, which this collector does not watch")
        self._ema = {}
        for n, t in state["ema"].items():
            device = next(self._modules[n].parameters(), t).device
            self._ema[n] = t.detach().clone().to(device)
        self._calls.update(state["calls"])
        self._updates.update(state["updates"])
        self._positions.update(state.get("positions", {}))

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __repr__(self) -> str:
        return (f"RedundancyCollector(layers={len(self._modules)}, measure={self.measure_name!r}, "
                f"decay={self.decay}, every={self.every}, open={bool(self._handles)})")
