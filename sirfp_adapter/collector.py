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
(``start``): ``"mean"`` (default) weighs the ``n``-th observation by
``max(1 - decay, 1 / n)`` — a plain running mean until the EMA's horizon
``1 / (1 - decay)`` is reached, so a short collection is not dominated by its first
batch; ``"first"`` initialises ``a`` with the first observation (then the first of
``n`` batches keeps weight ``decay ** (n - 1)``); ``"zero"`` starts from zero, as the
released code does (scaled by ``1 - decay ** n``).

Everything stays on the activation's device: one measure evaluation and one
in-place update per layer and step, no host transfer until `matrices()`. Under
``torch.distributed`` each step's ``r`` is all-reduced (mean over ranks) before the
update, so every rank holds the same matrices. Hooks are removed when the context
exits, even on an exception; nothing is stored on the modules.

Non-finite activations. A batch whose measure is not finite (NaN or inf in the
activations, e.g. a diverging step or a float16 overflow) is **skipped and counted**:
the layer's EMA keeps its value, `skipped()` counts the batch, and `matrices()` warns
(``RuntimeWarning``) naming each layer with new skips, how many of its measured batches
were skipped and the number of the first one (the k-th batch measured for that layer;
with ``every=N`` in training mode, roughly forward pass ``N (k - 1) + 1``). The test runs on the device (no host
synchronisation); under ``torch.distributed`` the all-reduced matrix is non-finite on
every rank when it is on one, so all ranks skip the same batches. A layer whose every
batch was skipped has no matrix. An EMA is never poisoned by one bad batch.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from sirfp_adapter.measures import check_options, get_measure

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
        Passed to the measure (e.g. ``normalize="relu_l1"``, ``downsample=32``,
        ``positions=256``); checked against the measure's signature here. With
        ``positions``, the draws come from a private generator seeded with 0 unless
        ``generator=`` is given, so runs repeat and the training's random stream is
        not touched.

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
        start: str = "mean",
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
            raise ValueError("layers: the model has no BatchNorm2d layer; name the layers to watch" if layers is None
                             else "layers must name at least one module of the model to watch, got none")
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
        check_options(measure, **measure_options)  # bad options fail here, not at the first training step
        if measure_options.get("positions") is not None and measure_options.get("generator") is None:
            # sampled positions: a private, seeded stream (reproducible, and the training's RNG is untouched)
            measure_options = {**measure_options, "generator": torch.Generator().manual_seed(0)}
        self._generator: torch.Generator | None = measure_options.get("generator")
        self.measure_options = measure_options
        self.decay = float(decay)
        self.every = every
        self.max_samples = max_samples
        self.training_only = training_only
        self._paused = False
        self._modules = {n: modules[n] for n in names}
        self._ema: dict[str, torch.Tensor] = {}
        self._calls: dict[str, int] = {n: 0 for n in names}
        # per layer, on the EMA's device (no host synchronisation in update): batches folded in,
        # batches skipped as non-finite, number of the first skipped batch (1-based; -1: none)
        self._updates: dict[str, torch.Tensor | int] = {n: 0 for n in names}
        self._skipped: dict[str, torch.Tensor | int] = {n: 0 for n in names}
        self._first_skip: dict[str, torch.Tensor | int] = {n: -1 for n in names}
        self._warned: dict[str, int] = {n: 0 for n in names}
        self._positions: dict[str, int] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._seconds = 0.0

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

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Forward passes inside this block are not collected (nor counted for ``every``)."""
        was, self._paused = self._paused, True
        try:
            yield
        finally:
            self._paused = was

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _hook(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if self._paused or (self.training_only and not module.training):
                return
            self._calls[name] += 1
            if (self._calls[name] - 1) % self.every:
                return
            started = time.perf_counter()
            self.update(name, output)
            self._seconds += time.perf_counter() - started

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
        ok = torch.isfinite(fresh).all()  # a device scalar: no host synchronisation
        self._positions[name] = int(x[0, 0].numel()) if x.dim() > 2 else 1
        ema = self._ema.get(name)
        if ema is None or ema.shape != fresh.shape:  # first batch (or the layer changed width)
            ema = self._ema[name] = torch.zeros_like(fresh)
            self._updates[name] = torch.zeros((), dtype=torch.int64, device=fresh.device)
            self._skipped[name] = torch.zeros((), dtype=torch.int64, device=fresh.device)
            self._first_skip[name] = torch.full((), -1, dtype=torch.int64, device=fresh.device)
        updates = self._as_device_count(name, self._updates, ema)
        skipped = self._as_device_count(name, self._skipped, ema)
        first = self._as_device_count(name, self._first_skip, ema)
        first.copy_(torch.where(~ok & (first < 0), updates + skipped + 1, first))  # 1-based batch number
        if self.start == "zero":
            blended = ema * self.decay + fresh * (1.0 - self.decay)
        else:
            # the n-th finite batch's weight: 1 for the first, then 1 - decay ("first") or
            # max(1 - decay, 1 / n) ("mean")
            n = (updates + 1).to(fresh.dtype)
            rate = torch.clamp(1.0 / n, min=1.0 - self.decay) if self.start == "mean" \
                else torch.where(updates > 0, 1.0 - self.decay, 1.0).to(fresh.dtype)
            blended = ema * (1.0 - rate) + fresh * rate
        ema.copy_(torch.where(ok, blended, ema))
        updates += ok
        skipped += ~ok

    def _as_device_count(self, name: str, counts: dict[str, torch.Tensor | int], like: torch.Tensor) -> torch.Tensor:
        value = counts[name]
        if not isinstance(value, torch.Tensor) or value.device != like.device:
            value = counts[name] = torch.as_tensor(value, dtype=torch.int64).to(like.device)
        return value

    def matrices(self, layers: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Each layer's current edge-weight matrix as float64 numpy (layers with at least one
        finite batch; only ``layers`` when given); warns about batches skipped since the
        last call (see the module Notes)."""
        names = list(self._modules) if layers is None else [n for n in layers if n in self._modules]
        updates, skipped = self.updates(), self.skipped()
        fresh = [n for n in names if skipped[n] > self._warned[n]]
        if fresh:
            parts = [f"{n!r}: {skipped[n]} of {skipped[n] + updates[n]} batches "
                     f"(first: batch {int(self._first_skip[n])})" for n in fresh]
            warnings.warn("RedundancyCollector skipped batches with non-finite activations (NaN or inf), "
                          "which the statistics ignore: " + "; ".join(parts), RuntimeWarning, stacklevel=2)
            for n in fresh:
                self._warned[n] = skipped[n]
        return {n: self._ema[n].double().cpu().numpy() for n in names if n in self._ema and updates[n] > 0}

    @property
    def seconds(self) -> float:
        """Wall time spent measuring in the hooks so far. On CUDA the kernels run
        asynchronously and the hooks never synchronise, so this is launch time there, a
        lower bound; on the CPU it is the measuring time itself."""
        return self._seconds

    def positions(self) -> dict[str, int]:
        """Spatial positions (``H * W``) of each layer's last measured maps."""
        return dict(self._positions)

    def updates(self) -> dict[str, int]:
        """How many batches each layer's EMA has absorbed (skipped batches excluded)."""
        return {n: int(v) for n, v in self._updates.items()}

    def skipped(self) -> dict[str, int]:
        """How many batches of each layer were skipped because their measure was not finite."""
        return {n: int(v) for n, v in self._skipped.items()}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume collection (tensors on their devices)."""
        updates = self.updates()
        return {
            "measure": self.measure_name,
            "decay": self.decay,
            "ema": {n: t.clone() for n, t in self._ema.items() if updates[n] > 0},
            "calls": dict(self._calls),
            "updates": updates,
            "skipped": self.skipped(),
            "positions": dict(self._positions),
            **({"generator": self._generator.get_state()} if self._generator is not None else {}),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from `state_dict()`; the measure and layers must match.

        Everything is checked before anything changes: the keys; the layer names (those
        this collector watches, no other); each matrix ``C x C`` for its layer's ``C``
        channels, floating and finite; each count a non-negative int, and a matrix
        exactly for the layers with ``updates >= 1``. Raises ``ValueError`` naming the key.
        """
        where = "state"
        if not isinstance(state, Mapping):
            raise ValueError(f"{where} must be a dict from RedundancyCollector.state_dict(); "
                             f"got {type(state).__name__}")
        missing = [k for k in ("measure", "decay", "ema", "calls", "updates") if k not in state]
        if missing:
            raise ValueError(f"{where} lacks the key {missing[0]!r} (not a RedundancyCollector.state_dict())")
        unknown = sorted(set(state) - {"measure", "decay", "ema", "calls", "updates", "skipped", "positions",
                                       "generator"}, key=str)
        if unknown:
            raise ValueError(f"{where} holds the unknown key {unknown[0]!r}")
        if state["measure"] != self.measure_name:
            raise ValueError(f"state was collected with measure {state['measure']!r}, "
                             f"this collector uses {self.measure_name!r}")
        decay = state["decay"]
        if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0.0 <= decay < 1.0:
            raise ValueError(f"state['decay'] must be a number in [0, 1); got {decay!r}")
        counts = {key: self._check_counts(state, key) for key in ("calls", "updates", "skipped")
                  if key in state}
        positions = state.get("positions", {})
        if not isinstance(positions, Mapping):
            raise ValueError(f"state['positions'] must be a dict of layer name to int; got {type(positions).__name__}")
        for n, v in positions.items():
            if n not in self._modules:
                raise ValueError(f"state['positions'] holds layer {n!r}, which this collector does not watch")
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"state['positions'][{n!r}] must be an int >= 1; got {v!r}")
        generator = state.get("generator")
        if generator is not None and not (isinstance(generator, torch.Tensor) and generator.dtype == torch.uint8):
            raise ValueError(f"state['generator'] must be a uint8 tensor from torch.Generator.get_state(); "
                             f"got {type(generator).__name__}")
        ema = state["ema"]
        if not isinstance(ema, Mapping):
            raise ValueError(f"state['ema'] must be a dict of layer name to tensor; got {type(ema).__name__}")
        for n in ema:
            if n not in self._modules:
                raise ValueError(f"state['ema'] holds layer {n!r}, which this collector does not watch")
        loaded: dict[str, torch.Tensor] = {}
        for n in self._modules:
            seen = counts["updates"][n] > 0
            if n not in ema:
                if seen:
                    raise ValueError(f"state['ema'] lacks layer {n!r}, whose state['updates'] is "
                                     f"{counts['updates'][n]}")
                continue
            t = ema[n]
            key = f"state['ema'][{n!r}]"
            if not seen:
                raise ValueError(f"{key} is given but state['updates'][{n!r}] is 0")
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise ValueError(f"{key} must be a floating torch.Tensor; got "
                                 f"{t.dtype if isinstance(t, torch.Tensor) else type(t).__name__}")
            width = _channels(self._modules[n])
            c = t.shape[0] if t.dim() == 2 else None
            if t.dim() != 2 or t.shape[0] != t.shape[1] or (width is not None and c != width):
                shape = "x".join(map(str, t.shape)) or "a scalar"
                need = f"{width}x{width} (layer {n!r} has {width} channels)" if width is not None else "square"
                raise ValueError(f"{key} is {shape}; it must be {need}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{key} holds non-finite values (NaN or inf)")
            device = next(self._modules[n].parameters(), t).device
            loaded[n] = t.detach().clone().to(device=device, dtype=torch.float32)
        if generator is not None and self._generator is not None:  # the sampled positions continue as they were
            self._generator.set_state(generator.cpu())
        self._ema = loaded
        self._positions.update({n: int(v) for n, v in positions.items()})
        self._calls.update(counts["calls"])
        for n in self._modules:
            device = loaded[n].device if n in loaded else torch.device("cpu")
            self._updates[n] = torch.tensor(counts["updates"][n], dtype=torch.int64, device=device)
            skipped = counts["skipped"][n] if "skipped" in counts else 0
            self._skipped[n] = torch.tensor(skipped, dtype=torch.int64, device=device)
            self._first_skip[n] = torch.tensor(-1, dtype=torch.int64, device=device)
            self._warned[n] = skipped

    def _check_counts(self, state: Mapping[str, Any], key: str) -> dict[str, int]:
        value = state[key]
        if not isinstance(value, Mapping):
            raise ValueError(f"state[{key!r}] must be a dict of layer name to count; got {type(value).__name__}")
        extra = sorted(set(value) - set(self._modules), key=str)
        if extra:
            raise ValueError(f"state[{key!r}] holds layer {extra[0]!r}, which this collector does not watch")
        for n in self._modules:
            if n not in value:
                raise ValueError(f"state[{key!r}] lacks layer {n!r}")
            v = value[n]
            if isinstance(v, torch.Tensor) and v.dim() == 0 and not v.is_floating_point():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise ValueError(f"state[{key!r}][{n!r}] must be an int >= 0; got {v!r}")
        return {n: int(value[n]) for n in self._modules}

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __repr__(self) -> str:
        return (f"RedundancyCollector(layers={len(self._modules)}, measure={self.measure_name!r}, "
                f"decay={self.decay}, every={self.every}, open={bool(self._handles)})")


def _channels(module: nn.Module) -> int | None:
    """The channel count of a layer's output, when its type says (norms, convolutions, linear)."""
    for attr in ("num_features", "out_channels", "num_channels", "out_features"):
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
