"""The main job end to end: train a segmentation network, prune it with SIRFP (or a
baseline) to a FLOPs target, fine-tune, and measure before and after.

The network is the built-in `DeepLabLite` or, with ``Config.model``, any network
`sirfp_adapter.zoo.build_model` names (``torchvision:NAME``, ``smp:ARCH:ENCODER``,
``timm:NAME``, ``package.module:factory``), optionally initialised from
``Config.weights`` (`load_weights`); `check_model` builds it and runs one batch through
it before any training.

:func:`run` is what ``sirfp prune`` and ``benchmarks/pruning.py`` call. Phases:

1. **train** the unpruned model (``train_iters`` iterations, AdamW, cosine schedule);
2. **prune** progressively (the paper's Algorithm 2): ``prune_steps`` steps
   ``prune_interval`` iterations apart, training on while the redundancy collector (or
   the baseline's statistics) runs, masks between steps;
3. **remove** the masked channels physically and **fine-tune** (``finetune_iters``);
4. **measure** both models: mIoU, pixel accuracy, parameters, FLOPs
   (``torch.utils.flop_counter``, one image) and CPU latency (batch 1, median, the two
   models timed interleaved); with an output folder also the deployment outputs: the
   pruned model as ONNX checked in onnxruntime (`sirfp_adapter.deploy.export_onnx`,
   the ``onnx`` extra) and dense vs pruned latency at batch 1, 2 and 4
   (`sirfp_adapter.deploy.compare_latency`).

With an output folder the validation loss and mIoU are also measured during training
(a few points per phase) and after every pruning step (the masked model), for the
report's loss and accuracy-vs-FLOPs plots.

Every phase shows a progress bar (``progress=True``); the default configuration
finishes in a few minutes on two CPU cores.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hashlib
import inspect
import json
import math
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import mewcp
from mewcp.atomic import staged
from sirfp_adapter.apply import save_pruned
from sirfp_adapter.cost import count_flops, count_params
from sirfp_adapter.criteria import CRITERIA, SIRFP, Criterion, Sensitivity
from sirfp_adapter.criteria.sensitivity import ALLOCATIONS
from sirfp_adapter.demo.data import FolderSegmentation, SyntheticSegmentation, make_loaders
from sirfp_adapter.demo.metrics import ConfusionMatrix, evaluate, logits_of
from sirfp_adapter.demo.models import DeepLabLite
from sirfp_adapter.measures import MEASURES, get_measure
from sirfp_adapter.plan import PlanOptions
from sirfp_adapter.schedule import SIRFPPruner

__all__ = ["Config", "OptionError", "TrainingError", "check_data", "check_model", "check_out", "load_weights", "run",
           "validate", "write_report"]

#: Largest image side, model width and batch size ``Config.check`` accepts (a demo on CPUs:
#: beyond these the run would exhaust memory rather than finish).
MAX_SIDE = 4096
MAX_WIDTH = 4096
MAX_BATCH = 4096
#: Most shapes per synthetic image.
MAX_OBJECTS = 256
#: The files ``write_report`` writes; a run replaces all of them (or removes stale ones).
OUTPUTS = ("pruned.pt", "pruned.onnx", "report.md", "result.json", "loss.png", "accuracy.png", "widths.png")
#: Validation points per training phase for the report's curves (besides every pruning step).
CURVE_POINTS = 4
#: Batch sizes of the deployment latency table.
LATENCY_BATCHES = (1, 2, 4)
#: The automatic cap of the sensitivity budget (`Config.budget_cap`), in single-image forward
#: passes per training image of one pruning interval: a training image costs about 3 passes
#: (forward and backward), so the budget's measuring passes of a step cost at most about 4x the
#: training between steps. The library's 16 samples x 8 points fit under it for the built-in
#: model (19 groups: 2432 passes against 12 x 40 x 8 = 3840 at the defaults), so its runs are
#: unchanged; a 44-group deeplabv3_resnet50 pruned every 2 iterations of 2 images measures
#: 2 points on 1 sample (`sirfp_adapter.criteria.sensitivity.fitted_sizes`).
BUDGET_PASSES_PER_IMAGE = 12


class OptionError(ValueError):
    """A bad option or input: ``option`` is the `Config` field (or ``"out"``), ``message``
    what is wrong; ``str()`` is ``"<option> <message>"``."""

    def __init__(self, option: str, message: str, requirement: str | None = None, value: object = None) -> None:
        super().__init__(f"{option} {message}")
        self.option = option
        self.message = message
        self.requirement = requirement  # set with value when the message is "must be <requirement>; got <value>"
        self.value = value


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, an empty data loader)."""


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _require(ok: bool, option: str, requirement: str, value: object) -> None:
    if not ok:
        raise OptionError(option, f"must be {requirement}; got {value!r}", requirement, value)


def _int_in(v: object, lo: int, hi: int | None = None) -> bool:
    return _is_int(v) and v >= lo and (hi is None or v <= hi)


def _pair(v: object, ok: Callable[[object], bool]) -> bool:
    return isinstance(v, tuple | list) and len(v) == 2 and all(ok(x) for x in v)


def budget_choices() -> tuple[str, ...]:
    """``--budget``: a criterion that is not SIRFP, or ``none`` (redundancy's own scores)."""
    return tuple(n for n, c in CRITERIA.items() if not issubclass(c, SIRFP)) + ("none",)


@dataclass
class Config:
    """Everything :func:`run` needs; every field is a ``sirfp prune`` option."""

    flops_reduction: float = 0.6
    criterion: str = "sirfp"
    measure: str = "js"
    normalize: str = "softmax"
    method: str = "ehgp"
    mode: str = "global"
    calibration: str = "mean"
    budget: str = "sensitivity"
    budget_samples: int | None = None  # Sensitivity: recorded inputs the distortion is measured on (None: auto)
    budget_points: int | None = None  # Sensitivity: removal counts measured per group (None: auto)
    budget_passes: int | None = None  # Sensitivity: most image passes per pruning step (None: auto, `budget_cap`)
    budget_allocation: str = "per_flop"  # Sensitivity: distortion per FLOP saved, or the same level per group
    model: str | None = None  # a sirfp_adapter.zoo.build_model spec; None: the built-in DeepLabLite
    weights: str | None = None  # a state-dict file (torch.load(weights_only=True)) for the model
    min_keep: float = 0.1
    round_to: int = 1
    data: str | None = None  # folder with images/ and labels/ (train/ and val/ inside); None: built-in
    size: tuple[int, int] = (96, 96)
    n_classes: int = 5
    objects: tuple[int, int] = (2, 4)
    scale: tuple[float, float] = (0.2, 0.4)
    train_samples: int = 50000
    val_samples: int = 256
    widths: tuple[int, int, int, int] = (32, 64, 128, 128)
    aspp_channels: int = 64
    batch_size: int = 8
    train_iters: int = 2000
    prune_steps: int = 4
    prune_interval: int = 40
    finetune_iters: int = 500
    lr: float = 3e-3
    finetune_lr: float = 1e-3
    weight_decay: float = 1e-4
    every: int = 2
    max_samples: int | None = 4
    positions: int | None = None
    decay: float = 0.99
    seed: int = 0
    threads: int | None = None
    latency_repeats: int = 20
    latency_time: float = 0.5

    def check(self) -> None:
        """Validate every field (types, ranges, names); raises `OptionError` naming the field.

        Cheap and complete: run it before any work. The data folder and the output folder
        are checked by `check_data` and `check_out`.
        """
        r = _require
        r(_is_number(self.flops_reduction) and 0.0 < self.flops_reduction < 1.0, "flops_reduction",
          "a number in (0, 1)", self.flops_reduction)
        for name, choices in (("criterion", tuple(CRITERIA)), ("measure", tuple(MEASURES)),
                              ("normalize", ("softmax", "relu_l1", "relu_softmax")),
                              ("mode", ("global", "uniform")),
                              ("calibration", ("mean", "range", "none")), ("budget", budget_choices()),
                              ("budget_allocation", ALLOCATIONS),
                              ("method", tuple(m.name for m in mewcp.methods()))):
            value = getattr(self, name)
            r(isinstance(value, str) and value in choices, name, f"one of {', '.join(choices)}", value)
        r(isinstance(self.min_keep, int | float) and not isinstance(self.min_keep, bool)
          and ((isinstance(self.min_keep, float) and 0.0 <= self.min_keep <= 1.0)
               or (_is_int(self.min_keep) and self.min_keep >= 1)),
          "min_keep", "a fraction in [0, 1] or a channel count >= 1", self.min_keep)
        r(_int_in(self.round_to, 1), "round_to", "an int >= 1", self.round_to)
        r(self.data is None or (isinstance(self.data, str | os.PathLike) and os.fspath(self.data) != ""), "data",
          "a folder path or None (built-in data)", self.data)
        r(self.model is None or (isinstance(self.model, str) and ":" in self.model), "model",
          "SOURCE:NAME (torchvision:NAME, smp:ARCH[:ENCODER], timm:NAME, package.module:factory) or None "
          "(the built-in model)", self.model)
        r(self.weights is None or (isinstance(self.weights, str | os.PathLike) and os.fspath(self.weights) != ""),
          "weights", "a file path or None", self.weights)
        self._check_criterion_options()
        if self.model is not None:
            for name in ("widths", "aspp_channels"):
                default = Config.__dataclass_fields__[name].default
                value = getattr(self, name)
                if (tuple(value) if isinstance(value, list) else value) != default:
                    raise OptionError(name, f"applies to the built-in model only, not to model {self.model}")
        r(_pair(self.size, lambda v: _int_in(v, 1, MAX_SIDE)), "size", f"two ints H W from 1 to {MAX_SIDE}",
          self.size)
        top = 255 if self.data is not None else 16
        r(_int_in(self.n_classes, 2, top), "n_classes", f"an int from 2 to {top}"
          + (" (255 is the ignore index)" if self.data is not None else " (the built-in data's classes)"),
          self.n_classes)
        r(_pair(self.objects, lambda v: _int_in(v, 1, MAX_OBJECTS)) and self.objects[0] <= self.objects[1],
          "objects", f"two ints low high with 1 <= low <= high <= {MAX_OBJECTS}", self.objects)
        r(_pair(self.scale, _is_number) and 0.0 < self.scale[0] <= self.scale[1] <= 1.0, "scale",
          "two numbers low high with 0 < low <= high <= 1", self.scale)
        r(_int_in(self.batch_size, 2, MAX_BATCH), "batch_size",
          f"an int from 2 to {MAX_BATCH} (BatchNorm needs two samples per training batch)", self.batch_size)
        r(_int_in(self.train_samples, 1), "train_samples", "an int >= 1", self.train_samples)
        if self.data is None:
            r(self.train_samples >= self.batch_size, "train_samples",
              f"at least the batch size, {self.batch_size} (one full batch)", self.train_samples)
        r(_int_in(self.val_samples, 1), "val_samples", "an int >= 1", self.val_samples)
        r(isinstance(self.widths, tuple | list) and len(self.widths) == 4
          and all(_int_in(w, 1, MAX_WIDTH) for w in self.widths),
          "widths", f"four ints from 1 to {MAX_WIDTH}", self.widths)
        r(_int_in(self.aspp_channels, 1, MAX_WIDTH), "aspp_channels", f"an int from 1 to {MAX_WIDTH}",
          self.aspp_channels)
        for name in ("train_iters", "finetune_iters"):
            r(_int_in(getattr(self, name), 0), name, "an int >= 0", getattr(self, name))
        for name in ("prune_steps", "prune_interval", "every", "latency_repeats"):
            r(_int_in(getattr(self, name), 1), name, "an int >= 1", getattr(self, name))
        for name in ("budget_samples", "budget_points", "budget_passes"):
            value = getattr(self, name)
            r(value is None or _int_in(value, 1), name, "an int >= 1, or None for auto", value)
        r(_is_number(self.latency_time) and 0.0 < self.latency_time <= 60.0, "latency_time",
          "a number of seconds in (0, 60]", self.latency_time)
        for name in ("lr", "finetune_lr"):
            value = getattr(self, name)
            r(_is_number(value) and value > 0, name, "a finite number > 0", value)
        r(_is_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a finite number >= 0",
          self.weight_decay)
        r(self.max_samples is None or _int_in(self.max_samples, 1), "max_samples", "an int >= 1, or None for all",
          self.max_samples)
        r(self.positions is None or _int_in(self.positions, 1), "positions", "an int >= 1, or None for every position",
          self.positions)
        r(_is_number(self.decay) and 0.0 <= self.decay < 1.0, "decay", "a number in [0, 1)", self.decay)
        r(_int_in(self.seed, 0, 2**63 - 1), "seed", "an int from 0 to 2**63 - 1", self.seed)
        cores = os.cpu_count() or 1
        r(self.threads is None or _int_in(self.threads, 1, cores), "threads",
          f"an int from 1 to {cores} (this machine's CPUs), or None for torch's choice", self.threads)
        if self.method == "brute" and self.model is None:
            from mewcp.solvers.brute import BRUTE_MAX_SUBSETS, brute_subset_count

            widest = max(*self.widths, self.aspp_channels)
            largest = max(n for n in range(1, 64) if brute_subset_count(n, n // 2, True) <= BRUTE_MAX_SUBSETS)
            if widest > largest:  # a group of n channels may be asked for any size: C(n, n/2) sets
                raise OptionError("method", f"must not be brute for this model: its widest layer has {widest} "
                                            f"channels, and brute enumerates every subset (at most "
                                            f"{BRUTE_MAX_SUBSETS:,}: {largest} channels); choose another method")
        for build, option in ((self.plan_options, "mode"), (self.make_criterion, "criterion")):
            try:  # what the library checks beyond the above, still before any work
                built = build()
            except (TypeError, ValueError) as exc:
                raise _as_option_error(exc, option) from None
            if isinstance(built, Criterion):
                built.close()

    def plan_options(self) -> PlanOptions:
        """The planning options (validated)."""
        return PlanOptions(mode=self.mode, min_keep=self.min_keep, round_to=self.round_to,  # type: ignore[arg-type]
                           method=self.method, method_options={"seed": self.seed} if self.method != "ehgp" else None)

    def _check_criterion_options(self) -> None:
        """Refuse a criterion option changed from its default that the chosen criterion does
        not take (`make_criterion` would drop it without a word)."""
        def measure_takes_normalize(measure: str) -> bool:
            return "normalize" in inspect.signature(get_measure(measure)).parameters

        def takes(name: str, criterion: str) -> bool:
            accepted = inspect.signature(CRITERIA[criterion]).parameters
            if name == "normalize":
                return "measure" in accepted and measure_takes_normalize(self.measure)
            return name in accepted

        def changed(name: str) -> bool:
            return getattr(self, name) != Config.__dataclass_fields__[name].default

        if (changed("normalize") and takes("measure", self.criterion)
                and not measure_takes_normalize(self.measure)):
            takers = [m for m in MEASURES if measure_takes_normalize(m)]
            raise OptionError("normalize", f"does not apply to measure {self.measure} (it applies to "
                              f"{', '.join(takers)})")
        for name in ("measure", "normalize", "decay", "every", "max_samples", "positions", "calibration",
                     "budget"):
            if changed(name) and not takes(name, self.criterion):
                takers = [c for c in CRITERIA if takes(name, c)]
                raise OptionError(name, f"does not apply to criterion {self.criterion}"
                                  + (f" (it applies to {', '.join(takers)})" if takers else ""))

    def make_criterion(self) -> Criterion:
        """The criterion with those of this config's options that its constructor takes."""
        cls = CRITERIA[self.criterion]
        sensitivity = self.sensitivity_options()
        budget: Criterion | str | None = None if self.budget == "none" else self.budget
        if budget == "sensitivity":
            budget = Sensitivity(**sensitivity)
        offered: dict[str, Any] = {"measure": self.measure, "decay": self.decay, "every": self.every,
                                   "max_samples": self.max_samples, "positions": self.positions,
                                   "calibration": self.calibration,
                                   "budget": budget, "seed": self.seed}
        if cls is Sensitivity:
            offered.update(sensitivity)
        accepted = inspect.signature(cls).parameters
        options = {k: v for k, v in offered.items() if k in accepted}
        if "measure" in accepted and "normalize" in inspect.signature(get_measure(self.measure)).parameters:
            options["normalize"] = self.normalize
        return cls(**options)

    def budget_cap(self) -> int | None:
        """The sensitivity budget's most single-image forward passes per pruning step:
        ``budget_passes`` when given; otherwise, when neither ``budget_samples`` nor
        ``budget_points`` is given, ``BUDGET_PASSES_PER_IMAGE * prune_interval * batch_size``
        (see `BUDGET_PASSES_PER_IMAGE`); else None (the given sizes, uncapped)."""
        if self.budget_passes is not None:
            return self.budget_passes
        if self.budget_samples is None and self.budget_points is None:
            return BUDGET_PASSES_PER_IMAGE * self.prune_interval * self.batch_size
        return None

    def sensitivity_options(self) -> dict[str, Any]:
        """``Sensitivity``'s ``samples``, ``points`` (those given), ``max_passes``
        (`budget_cap`) and ``allocation``; what is not given is the library's default
        (16 samples, 8 points)."""
        given = (("samples", self.budget_samples), ("points", self.budget_points), ("max_passes", self.budget_cap()))
        return {**{k: v for k, v in given if v is not None}, "allocation": self.budget_allocation}


def _as_option_error(exc: Exception, option: str) -> OptionError:
    """A library's "<field> must be ..." message as an `OptionError` for that field."""
    first, _, rest = str(exc).partition(" ")
    names = {f.name for f in dataclasses.fields(Config)}
    if first in names:
        return OptionError(first, rest)
    return OptionError(option, f"does not work with these options: {exc}")


def check_out(out_dir: str | os.PathLike[str]) -> Path:
    """Create the output folder if needed and prove it writable (a probe file is written
    and removed); raises `OptionError` (option ``"out"``) otherwise."""
    if not str(out_dir).strip():  # an unset variable: Path("") is the working folder
        raise OptionError("out", "must name a folder; got an empty string (use '.' for the working folder)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OptionError("out", f"must be a folder; {out} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".sirfp-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OptionError("out", f"must be a writable folder; {out}: {exc.strerror or exc}") from None
    return out


def check_data(cfg: Config) -> tuple[Any, Any]:
    """Build and fully check the training and validation sets (`build_datasets`): for a
    folder every file is read once (`FolderSegmentation.validate`), and the training set
    must fill one batch. Raises `OptionError` (option ``"data"``) naming the file."""
    try:
        train_set, val_set = build_datasets(cfg)
        for ds in (train_set, val_set):
            if isinstance(ds, FolderSegmentation):
                ds.validate()
    except (FileNotFoundError, ValueError) as exc:
        text = str(exc)
        raise OptionError("data", f"is unusable: {text.removeprefix('root: ')}") from None
    if len(train_set) < cfg.batch_size:
        where = f"{Path(cfg.data) / 'train'} holds" if cfg.data is not None else "the training set has"
        raise OptionError("data", f"is too small: {where} {len(train_set)} sample(s), fewer than "
                                  f"the batch size, {cfg.batch_size} (incomplete batches are dropped)")
    return train_set, val_set


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a state dict from ``path`` into ``model``, strictly; raises `OptionError`
    (option ``"weights"``) naming the file and what does not fit.

    Notes
    -----
    The file is read with ``torch.load(weights_only=True)``: tensors and plain
    containers only, no code runs. It holds a state dict (parameter name -> tensor), or
    a checkpoint mapping with one under ``"state_dict"`` or ``"model"``. Every key of the
    model must be in it with the model's shape and no other key: nothing is renamed,
    dropped or reshaped (a ``module.`` prefix from ``DataParallel`` is named in the error,
    not stripped).
    """
    file = Path(path)
    if not file.is_file():
        raise OptionError("weights", f"must be a file; {file} {'is a folder' if file.is_dir() else 'does not exist'}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors of every kind: one line
        raise OptionError("weights", f"is unreadable with torch.load(weights_only=True): {file}: "
                                     f"{_first_line(exc)}") from None

    def tensors(value: object) -> bool:
        return isinstance(value, Mapping) and bool(value) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())

    if not tensors(state) and isinstance(state, Mapping):
        state = next((state[k] for k in ("state_dict", "model") if tensors(state.get(k))), state)
    if not tensors(state):
        raise OptionError("weights", f"holds no state dict: {file} must hold a mapping of parameter names to tensors "
                                     f"(or a checkpoint with one under 'state_dict' or 'model'); got "
                                     f"{type(state).__name__}")
    assert isinstance(state, Mapping)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of the model's keys missing (first: {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (first: {unexpected[0]!r})")
        hint = (" (saved from DataParallel? the file's keys start with 'module.')"
                if unexpected and all(k.startswith("module.") for k in unexpected) else "")
        raise OptionError("weights", f"does not fit the model: {file}: {', '.join(parts)}{hint}")
    wrong = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        more = f" ({len(wrong)} tensors differ)" if len(wrong) > 1 else ""
        raise OptionError("weights", f"does not fit the model: {file}: {k!r} has shape {tuple(state[k].shape)} in the "
                                     f"file and {tuple(own[k].shape)} in the model{more}; check --num-classes")
    model.load_state_dict(state)


def build_network(cfg: Config) -> nn.Module:
    """The untrained network of ``cfg`` (`DeepLabLite`, or ``cfg.model`` via
    `sirfp_adapter.zoo.build_model`), initialised under ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    if cfg.model is None:
        return DeepLabLite(cfg.n_classes, cfg.widths, aspp_channels=cfg.aspp_channels)
    from sirfp_adapter.zoo import build_model

    return build_model(cfg.model, num_classes=cfg.n_classes)


def check_model(cfg: Config) -> nn.Module:
    """Build the network (`build_network`), load ``cfg.weights`` (`load_weights`) and run
    one eval-mode batch of two ``cfg.size`` images through it: the logits (a tensor, or
    ``"out"`` of a mapping) must be ``(2, n_classes, h, w)``. Returns the network; raises
    `OptionError` (option ``"model"`` or ``"weights"``) otherwise."""
    try:
        model = build_network(cfg)
    except (ImportError, ValueError) as exc:
        raise OptionError("model", f"is unusable: {str(exc).removeprefix('spec: ')}") from None
    except Exception as exc:  # noqa: BLE001 - the user's factory may raise anything
        raise OptionError("model", f"could not be built: {cfg.model}: {_first_line(exc)}") from None
    if cfg.weights is not None:
        load_weights(model, cfg.weights)
    h, w = cfg.size
    name = cfg.model or "the built-in model"
    model.eval()
    try:
        with torch.no_grad():
            output = model(torch.randn(2, 3, h, w))
    except Exception as exc:  # noqa: BLE001 - a model that cannot take the input size: one line
        raise OptionError("model", f"fails on a batch of 2x3x{h}x{w} (--input-size {h} {w}): {name}: "
                                   f"{_first_line(exc)}") from None
    finally:
        model.train()
    try:
        logits = logits_of(output)
    except TypeError as exc:
        raise OptionError("model", f"is unusable: {name}: {exc}") from None
    if logits.dim() != 4 or tuple(logits.shape[:2]) != (2, cfg.n_classes):
        raise OptionError("model", f"must return segmentation logits (B, {cfg.n_classes}, h, w) "
                                   f"(--num-classes {cfg.n_classes}); {name} returns "
                                   f"{tuple(logits.shape)} for a batch of 2x3x{h}x{w}")
    return model


def segmentation_loss(output: Any, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a model's output (`logits_of`) against ``labels``, label 255
    ignored; logits of another spatial size are resized to the labels' first (bilinear)."""
    logits = logits_of(output)
    if tuple(logits.shape[-2:]) != tuple(labels.shape[-2:]):
        logits = F.interpolate(logits, size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, labels, ignore_index=255)


@torch.no_grad()
def validate(model: nn.Module, loader: Any, n_classes: int) -> dict[str, float]:
    """Validation loss (`segmentation_loss`, mean over pixels) and mIoU in one pass
    (eval mode, mode restored)."""
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(n_classes, ignore_index=255)
    total, weight = 0.0, 0
    try:
        for images, labels in loader:
            output = model(images)
            pixels = int((labels != 255).sum())
            if pixels:
                total += float(segmentation_loss(output, labels)) * pixels
                weight += pixels
            logits = logits_of(output)
            if tuple(logits.shape[-2:]) != tuple(labels.shape[-2:]):
                logits = F.interpolate(logits, size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=False)
            cm.update(logits, labels)
    finally:
        model.train(was_training)
    return {"loss": total / weight if weight else float("nan"), "miou": float(cm.results()["miou"])}


@dataclass
class Result:
    """What :func:`run` measured."""

    config: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]
    plans: list[dict[str, Any]]
    losses: list[float]
    phases: dict[str, int]
    widths: dict[str, tuple[int, int]]
    times: dict[str, float] = field(default_factory=dict)  # wall seconds per phase
    cpu_times: dict[str, float] = field(default_factory=dict)  # CPU seconds (all threads) per phase
    run: str = ""  # the run's id (`new_run_id`), stamped on every output file
    reference: dict[str, Any] | None = None  # the unpruned model trained on for the same iterations
    # validation during the run (with an output folder): {"iteration", "phase", "loss", "miou"} ...
    validation: list[dict[str, Any]] = field(default_factory=list)
    # ... and the accuracy-vs-FLOPs path: {"label", "flops", "miou"} per stage (unpruned, each step, fine-tuned)
    steps: list[dict[str, Any]] = field(default_factory=list)
    # deployment outputs: {"latency": [LatencyRow fields], "onnx": {...}} (with an output folder)
    deploy: dict[str, Any] | None = None

    def caveat(self) -> str:
        """What the comparison controls for, and what it does not."""
        extra = self.phases["prune"] + self.phases["finetune"]
        if self.reference is not None:
            return (f"Both models trained the same iterations: the unpruned one trained on for the {extra} "
                    "iterations the pruned one spent pruning and fine-tuning (same schedule), so the change is "
                    "what pruning cost; one seed, so differences of a point or two are within seed noise.")
        return (f"The pruned model trained {extra} iterations more than the unpruned one (pruning steps and "
                "fine-tuning); benchmarks/pruning.py compares with an unpruned model trained equally long.")

    def table(self) -> str:
        """The before/after table as Markdown."""
        b, a = self.before, self.after
        q = self.reference if self.reference is not None else b  # accuracy compared at equal training
        rows = [
            ("mIoU (%)", f"{100 * q['miou']:.2f}", f"{100 * a['miou']:.2f}", f"{100 * (a['miou'] - q['miou']):+.2f}"),
            ("pixel accuracy (%)", f"{100 * q['pixel_accuracy']:.2f}", f"{100 * a['pixel_accuracy']:.2f}",
             f"{100 * (a['pixel_accuracy'] - q['pixel_accuracy']):+.2f}"),
            ("parameters (M)", f"{b['params'] / 1e6:.3f}", f"{a['params'] / 1e6:.3f}",
             f"{-100 * (1 - a['params'] / b['params']):+.1f}%"),
            ("GFLOPs (1 image)", f"{b['flops'] / 1e9:.3f}", f"{a['flops'] / 1e9:.3f}",
             f"{-100 * (1 - a['flops'] / b['flops']):+.1f}%"),
            ("CPU latency (ms, batch 1, interleaved)", f"{b['latency_ms']:.1f}", f"{a['latency_ms']:.1f}",
             f"{a['latency_ms'] / b['latency_ms']:.2f}x"),
        ]
        lines = ["| | unpruned | pruned | change |", "|:---|---:|---:|---:|"]
        lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
        return "\n".join(lines)


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="it", dynamic_ncols=True, leave=True)


def build_datasets(cfg: Config) -> tuple[Any, Any]:
    """Train and validation sets: the built-in synthetic set or a user folder."""
    if cfg.data is None:
        options = {"size": cfg.size, "n_classes": cfg.n_classes, "objects": cfg.objects, "scale": cfg.scale}
        train = SyntheticSegmentation(cfg.train_samples, split="train", seed=cfg.seed, **options)
        val = SyntheticSegmentation(cfg.val_samples, split="val", seed=0, **options)
        return train, val
    root = Path(cfg.data)
    return (FolderSegmentation(root / "train", size=cfg.size, n_classes=cfg.n_classes),
            FolderSegmentation(root / "val", size=cfg.size, n_classes=cfg.n_classes))


def _batches(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches, epoch after epoch; an epoch without a batch is an error, not a hang."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise TrainingError("the training loader yields no batch (fewer samples than one batch)")


def train(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    iters: int,
    optimizer: torch.optim.Optimizer,
    *,
    after_step: Callable[[], Any] | None = None,
    losses: list[float] | None = None,
    desc: str = "train",
    progress: bool = True,
) -> list[float]:
    """``iters`` training iterations (cross-entropy, ignore index 255), cosine learning
    rate from the optimizer's to 5% of it; ``after_step`` runs after each backward pass.

    Raises `TrainingError` on a non-finite loss, before the step that it would poison.
    """
    losses = [] if losses is None else losses
    base = [g["lr"] for g in optimizer.param_groups]
    bar = _progress(iters, desc, progress)
    model.train()
    for i in range(iters):
        scale = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / max(iters, 1)))
        for g, lr in zip(optimizer.param_groups, base, strict=True):
            g["lr"] = lr * scale
        x, y = next(batches)
        loss = segmentation_loss(model(x), y)
        value = loss.item()
        if not math.isfinite(value):
            if bar is not None:
                bar.close()
            raise TrainingError(f"{desc}: the training loss is {value} at iteration {i + 1} of {iters}; "
                                "training stopped (lower the learning rate)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        losses.append(value)
        if bar is not None:
            bar.update()
            if i % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    for g, lr in zip(optimizer.param_groups, base, strict=True):
        g["lr"] = lr
    if bar is not None:
        bar.close()
    return losses


@torch.no_grad()
def latency_ms(models: list[nn.Module], size: tuple[int, int], repeats: int = 20) -> list[float]:
    """Median CPU forward time of one image per model, in milliseconds (eval mode).

    The models run interleaved (one call of each per round), so they see the same
    machine conditions and their ratio is meaningful on a noisy machine.
    """
    modes = [m.training for m in models]
    x = torch.randn(1, 3, *size)
    for m in models:
        m.eval()
        for _ in range(3):
            m(x)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for m, t in zip(models, times, strict=True):
            start = time.perf_counter()
            m(x)
            t.append(time.perf_counter() - start)
    for m, mode in zip(models, modes, strict=True):
        m.train(mode)
    return [1000 * float(np.median(t)) for t in times]


def measure(model: nn.Module, val_loader: Any, cfg: Config) -> dict[str, Any]:
    """mIoU, pixel accuracy, parameters and FLOPs of one image (latency: `latency_ms`)."""
    metrics = evaluate(model, val_loader, cfg.n_classes)
    one = torch.randn(1, 3, *cfg.size)
    return {
        "miou": float(metrics["miou"]),
        "pixel_accuracy": float(metrics["pixel_accuracy"]),
        "params": count_params(model),
        "flops": count_flops(model, one),
    }


def _widths(model: nn.Module) -> dict[str, int]:
    return {name: m.num_features for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


def run(
    cfg: Config,
    *,
    out_dir: str | Path | None = None,
    progress: bool = True,
    pretrained: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
    prune: bool = True,
    reference: bool = True,
    datasets: tuple[Any, Any] | None = None,
    run_id: str | None = None,
    network: nn.Module | None = None,
    onnx: bool = True,
) -> tuple[Result, nn.Module, dict[str, Any]]:
    """Train, prune, fine-tune and measure; write the report when ``out_dir`` is given.

    Returns the result, the pruned model, and the trained unpruned model's record
    (``pretrained`` for further runs).

    Parameters
    ----------
    cfg : Config
    out_dir : path, optional
        Where to save ``pruned.pt``, ``pruned.onnx``, ``report.md``, ``result.json`` and
        the plots; with it the run also measures the validation curves and the
        deployment outputs.
    progress : bool
        Show progress bars.
    pretrained : dict, optional
        ``{"state_dict": ..., "before": ..., "losses": [...]}`` of an already trained
        unpruned model (the third value ``run`` returns): skips phase 1. The
        benchmark prunes one trained model per seed with every criterion.
    log : callable or None
        Receives progress messages (``None``: silent).
    prune : bool
        ``False`` trains the unpruned model on through the same phases and budget
        without pruning (the reference a pruned model should be compared with).
    reference : bool
        Also train the unpruned model on for the same iterations as the pruned one (a
        separate copy, the same schedule) and compare accuracy with it in the report.
    datasets : (train, val), optional
        Already checked data sets (`check_data`'s result); default: `check_data(cfg)`.
    run_id : str, optional
        The id stamped on the outputs (default: `new_run_id`).
    network : torch.nn.Module, optional
        The already checked network (`check_model`'s result, not modified: the run
        trains a copy); default: `check_model(cfg)`.
    onnx : bool
        Export the pruned model to ONNX (with ``out_dir`` and the ``onnx`` extra).

    Notes
    -----
    Every input is checked before any training: the options (`Config.check`), the
    output folder (`check_out`), the network (`check_model`) and the data
    (`check_data`), each raising `OptionError`. Training raises `TrainingError` on a
    non-finite loss. Outputs are written only at the end, atomically (`write_report`); a
    failed or interrupted run leaves ``out_dir`` as it was.
    """
    cfg.check()
    out = check_out(out_dir) if out_dir is not None else None
    initial = network if network is not None else check_model(cfg)
    train_set, val_set = datasets if datasets is not None else check_data(cfg)
    run_id = run_id or new_run_id()
    say = log or (lambda _msg: None)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    train_loader, val_loader = make_loaders(train_set, val_set, batch_size=cfg.batch_size, seed=cfg.seed)
    batches = _batches(train_loader)
    model = copy.deepcopy(initial)
    curves = out is not None
    validation: list[dict[str, Any]] = []

    def checkpoint(phase: str, iteration: int) -> dict[str, Any]:
        point = {"iteration": iteration, "phase": phase, **validate(model, val_loader, cfg.n_classes)}
        validation.append(point)
        return point

    def curve(phase: str, iters: int, then: Callable[[], Any] | None = None) -> Callable[[], Any] | None:
        """An ``after_step`` that validates at CURVE_POINTS evenly spaced iterations of the phase."""
        if not curves:
            return then
        at = {max(1, round(iters * j / CURVE_POINTS)) for j in range(1, CURVE_POINTS + 1)} if iters else set()
        first = len(losses)
        done = [0]

        def after() -> Any:
            value = then() if then is not None else None
            done[0] += 1
            if done[0] in at:
                checkpoint(phase, first + done[0])
            return value

        return after

    times: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds of this process (all its threads) per phase
    started, started_cpu = time.perf_counter(), time.process_time()

    def timed(name: str, t0: float, c0: float) -> None:
        times[name], cpu[name] = time.perf_counter() - t0, time.process_time() - c0

    if pretrained is None:
        losses: list[float] = []
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        train(model, batches, cfg.train_iters, optimizer, losses=losses, desc="train (unpruned)", progress=progress,
              after_step=curve("train", cfg.train_iters))
        timed("train", started, started_cpu)
        before = measure(model, val_loader, cfg)
        state = copy.deepcopy(model.state_dict())
    else:
        model.load_state_dict(pretrained["state_dict"])
        losses = list(pretrained["losses"])
        before = dict(pretrained["before"])
        state = pretrained["state_dict"]
    if curves and not any(p["iteration"] == len(losses) for p in validation):
        checkpoint("train", len(losses))
    say(f"unpruned: mIoU {100 * before['miou']:.2f}%, {before['params'] / 1e6:.3f} M params, "
        f"{before['flops'] / 1e9:.3f} GFLOPs")
    widths_before = _widths(model)
    n_train = len(losses)
    steps: list[dict[str, Any]] = [{"label": "unpruned", "flops": before["flops"], "miou": before["miou"]}]

    # phase 2: progressive pruning with masks, training on
    t0, c0 = time.perf_counter(), time.process_time()
    example = next(batches)[0][:2]
    pruner = None
    if prune:
        pruner = SIRFPPruner(model, example, criterion=cfg.make_criterion(), flops_reduction=cfg.flops_reduction,
                             steps=cfg.prune_steps, interval=cfg.prune_interval, plan=cfg.plan_options())
        budget = pruner.criterion if isinstance(pruner.criterion, Sensitivity) else getattr(pruner.criterion,
                                                                                             "budget", None)
        if isinstance(budget, Sensitivity):
            samples, points = budget.sizes
            say(f"sensitivity budget: {points} removal counts x {samples} recorded sample(s) per group, "
                f"{len(pruner.groups)} groups: at most {points * samples * len(pruner.groups)} image passes per "
                f"pruning step" + (f" (cap {budget.max_passes})" if budget.max_passes is not None else ""))

    def prune_and_validate() -> None:
        assert pruner is not None
        plan = pruner.step()
        if plan is not None and curves:  # the masked model after this step
            point = checkpoint("prune", len(losses) + 1)
            steps.append({"label": f"step {pruner.completed}", "miou": point["miou"],
                          "flops": before["flops"] * (1 - plan.flops_reduction)})

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.finetune_lr, weight_decay=cfg.weight_decay)
    train(model, batches, cfg.prune_steps * cfg.prune_interval, optimizer,
          after_step=prune_and_validate if pruner is not None else curve("train on", cfg.prune_steps
                                                                         * cfg.prune_interval),
          losses=losses, desc=f"prune ({cfg.criterion})" if prune else "train on", progress=progress)
    history = pruner.history if pruner is not None else []
    for plan in history:
        say("  " + plan.summary().splitlines()[0])
    timed("prune", t0, c0)
    times["planning"] = pruner.planning_time if pruner is not None else 0.0
    if pruner is not None:
        stats = pruner.stats()
        times["statistics"] = stats["statistics_s"]
        per = _duration(stats["statistics_s_per_iteration"])
        say(f"statistics ({cfg.criterion}): {per} per training iteration over {int(stats['iterations'])} "
            f"iterations (feature maps {stats['collector_s']:.2f} s, gradients {stats['observe_s']:.2f} s)")

    # phase 3: physical removal, fine-tuning
    if pruner is not None:
        pruner.finalize()
    t0, c0 = time.perf_counter(), time.process_time()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.finetune_lr, weight_decay=cfg.weight_decay)
    train(model, batches, cfg.finetune_iters, optimizer, losses=losses,
          desc="fine-tune (pruned)" if prune else "train on", progress=progress,
          after_step=curve("fine-tune" if prune else "train on", cfg.finetune_iters))
    timed("finetune", t0, c0)
    after = measure(model, val_loader, cfg)
    steps.append({"label": "fine-tuned" if prune else "trained on", "flops": after["flops"], "miou": after["miou"]})
    unpruned = copy.deepcopy(initial)
    unpruned.load_state_dict(state)
    same_budget = None
    if prune and reference:
        t0, c0 = time.perf_counter(), time.process_time()
        twin = copy.deepcopy(initial)
        twin.load_state_dict(state)
        stream = _batches(make_loaders(train_set, val_set, batch_size=cfg.batch_size, seed=cfg.seed + 1)[0])
        for iters, desc in ((cfg.prune_steps * cfg.prune_interval, "train on (reference)"),
                            (cfg.finetune_iters, "train on (reference)")):
            optimizer = torch.optim.AdamW(twin.parameters(), lr=cfg.finetune_lr, weight_decay=cfg.weight_decay)
            train(twin, stream, iters, optimizer, desc=desc, progress=progress)
        same_budget = {k: v for k, v in measure(twin, val_loader, cfg).items() if k in ("miou", "pixel_accuracy")}
        timed("reference", t0, c0)
        say(f"unpruned, trained on the same iterations: mIoU {100 * same_budget['miou']:.2f}%")
    before = dict(before)
    t0, c0 = time.perf_counter(), time.process_time()
    before["latency_ms"], after["latency_ms"] = latency_ms([unpruned, model], cfg.size, cfg.latency_repeats)
    timed("latency", t0, c0)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".sirfp-deploy-")) if out is not None else None
    try:
        deploy = None
        if stage is not None:
            t0, c0 = time.perf_counter(), time.process_time()
            deploy = _deploy(unpruned, model, cfg, stage if onnx else None, say)
            timed("deploy", t0, c0)
        timed("total", started, started_cpu)
        widths_after = _widths(model)
        result = Result(
            config=asdict(cfg),
            before=before,
            after=after,
            plans=[{"target": p.target, "flops_reduction": p.flops_reduction, "params_reduction": p.params_reduction,
                    "threshold": p.threshold, "planning_time": p.planning_time, "notes": list(p.notes),
                    "clique_weight": float(sum(p.clique_weights.values()))}
                   for p in history],
            losses=losses,
            phases={"train": n_train, "prune": cfg.prune_steps * cfg.prune_interval, "finetune": cfg.finetune_iters},
            widths={k: (widths_before[k], widths_after[k]) for k in widths_before},
            times=times,
            cpu_times=cpu,
            run=run_id,
            reference=same_budget,
            validation=validation,
            steps=steps,
            deploy=deploy,
        )
        if out is not None:
            assert stage is not None
            onnx_file = stage / "pruned.onnx"
            write_report(result, model, out, onnx_file=onnx_file if onnx_file.is_file() else None)
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
    return result, model, {"state_dict": state, "before": before, "losses": losses[:n_train]}


def _deploy(dense: nn.Module, pruned: nn.Module, cfg: Config, stage: Path | None,
            say: Callable[[str], None]) -> dict[str, Any]:
    """The deployment outputs: dense vs pruned latency (`compare_latency`) and, with a
    ``stage`` folder, the pruned model as ``stage/pruned.onnx`` checked in onnxruntime
    (the dense model is exported beside it for its size). A failed export is recorded,
    not raised: the trained model is still saved."""
    from sirfp_adapter.deploy import compare_latency, export_onnx

    rows = compare_latency(dense, pruned, (3, *cfg.size), batch_sizes=LATENCY_BATCHES, min_run_time=cfg.latency_time)
    record: dict[str, Any] = {"latency": [{**asdict(r), "speedup": r.speedup} for r in rows]}
    if stage is None:
        record["onnx"] = {"skipped": "not asked for (--no-onnx)"}
        return record
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        record["onnx"] = {"skipped": "the onnx extra is not installed: pip install -e '.[onnx]' torch==2.13.0"}
        return record
    x = torch.randn(1, 3, *cfg.size)
    try:
        done = export_onnx(pruned, x, stage / "pruned.onnx")
        dense_done = export_onnx(dense, x, stage / "dense.onnx")
    except Exception as exc:  # noqa: BLE001 - reported in the report and on the console
        (stage / "pruned.onnx").unlink(missing_ok=True)
        say(f"ONNX export failed: {_first_line(exc)}")
        record["onnx"] = {"failed": _first_line(exc)}
        return record
    record["onnx"] = {"file": "pruned.onnx", "bytes": done.size_bytes, "dense_bytes": dense_done.size_bytes,
                      "outputs": done.outputs, "max_abs_diff": done.max_abs_diff,
                      "dense_max_abs_diff": dense_done.max_abs_diff}
    return record


def new_run_id() -> str:
    """A run's id: UTC start time and 6 random hex digits, e.g. ``20261201T102113Z-3f9a0c``."""
    return f"{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def write_report(result: Result, model: nn.Module, out: Path, *, onnx_file: Path | None = None) -> None:
    """``pruned.pt`` (load with ``load_pruned``), ``result.json``, ``report.md``, PNG
    plots (training and validation loss, accuracy vs FLOPs over the pruning steps,
    channel widths before/after) and, when given, ``onnx_file`` as ``pruned.onnx`` in
    ``out``.

    Notes
    -----
    Atomic as a set as far as a file system allows: every file is first written in
    full to a hidden temporary file in ``out`` (flushed to disk); only then are the
    previous run's ``result.json`` and ``report.md`` removed, the new files moved into
    place with ``os.replace`` (``report.md`` and, last, ``result.json``, the record of a
    finished run) and stale outputs this run did not write removed. Every file carries
    the run id (``result.run``): ``pruned.pt``'s metadata ``run``, ``report.md``'s first
    paragraph, the PNGs' ``Description``, and ``result.json``'s ``run`` with the SHA-256
    of every other file. An exception or interrupt before the moves leaves ``out`` as
    it was; one during the moves (milliseconds) leaves no ``result.json``.
    """
    cfg = result.config
    summary = {k: v for k, v in asdict(result).items() if k != "losses"}
    staged_files: dict[str, Path] = {}
    if onnx_file is not None:  # a file of the same folder's file system, moved in like the others
        staged_files["pruned.onnx"] = out / f".pruned.onnx.{result.run}.tmp"
        os.replace(onnx_file, staged_files["pruned.onnx"])
    try:
        staged_files["pruned.pt"] = out / f".pruned.pt.{result.run}.tmp"
        save_pruned(model, staged_files["pruned.pt"], metadata={
            "config": json.dumps(result.config), "after": json.dumps(result.after), "run": result.run})
        for name, data in _plots(result).items():
            with staged(out / name) as (f, tmp):
                staged_files[name] = tmp
                f.write(data)
        report = _report_text(result, cfg, out, [n for n in ("loss.png", "accuracy.png", "widths.png")
                                                  if n in staged_files])
        with staged(out / "report.md") as (f, tmp):
            staged_files["report.md"] = tmp
            f.write(report.encode())
        digests = {name: hashlib.sha256(tmp.read_bytes()).hexdigest() for name, tmp in staged_files.items()}
        record = {**summary, "finished": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H:%M:%SZ}",
                  "files": digests, "losses": result.losses}
        with staged(out / "result.json") as (f, tmp):
            staged_files["result.json"] = tmp
            f.write(json.dumps(record, indent=1, default=str).encode())
        # publish: first retire the previous run's records, then move, result.json last
        for name in ("result.json", "report.md"):
            (out / name).unlink(missing_ok=True)
        for name in ("pruned.pt", "pruned.onnx", "loss.png", "accuracy.png", "widths.png", "report.md",
                     "result.json"):
            if name in staged_files:
                os.replace(staged_files[name], out / name)
                del staged_files[name]
        for name in OUTPUTS:
            if name not in digests and name != "result.json":
                (out / name).unlink(missing_ok=True)
    finally:
        for tmp in staged_files.values():
            tmp.unlink(missing_ok=True)


def _report_text(result: Result, cfg: dict[str, Any], out: Path, plots: list[str]) -> str:
    lines = [
        "# SIRFP pruning report",
        "",
        f"Run `{result.run}`.",
        "",
        f"Criterion `{cfg['criterion']}`" + (f" (measure `{cfg['measure']}`, per-group solver `{cfg['method']}`)"
                                              if "measure" in inspect.signature(CRITERIA[cfg["criterion"]]).parameters
                                              else "")
        + f", FLOPs reduction target {cfg['flops_reduction']:.0%}, {cfg['prune_steps']} pruning step{'s' if cfg['prune_steps'] != 1 else ''} "
          f"{cfg['prune_interval']} iterations apart; data: "
        + ("built-in synthetic set" if cfg["data"] is None else f"`{cfg['data']}`")
        + f", {cfg['size'][0]}×{cfg['size'][1]}, {cfg['n_classes']} classes, seed {cfg['seed']}.",
        "",
        result.table(),
        "",
        result.caveat(),
        "",
        "Pruning steps: " + "; ".join(f"target {p['target']:.1%} → FLOPs −{p['flops_reduction']:.2%} "
                                      f"(planned in {p['planning_time']:.2f} s)" for p in result.plans),
        "",
        "Time (wall; CPU of all threads in brackets): " + ", ".join(
            f"{k} {v:.1f} s" + (f" ({result.cpu_times[k]:.1f} s)" if k in result.cpu_times else "")
            for k, v in result.times.items()),
        "",
    ]
    if "statistics" in result.times and result.phases["prune"]:
        share = result.times["statistics"] / max(result.times["prune"], 1e-12)
        lines += [f"The criterion's statistics took {_duration(result.times['statistics'] / result.phases['prune'])} "
                  f"per training iteration of the pruning phase ({share:.0%} of its time; `SIRFPPruner.stats()`).", ""]
    if result.steps[1:-1]:
        lines += ["Validation mIoU along the way (the masked model after each pruning step):", "",
                  "| stage | GFLOPs (1 image) | mIoU (%) |", "|:---|---:|---:|"]
        lines += [f"| {p['label']} | {p['flops'] / 1e9:.3f} | {100 * p['miou']:.2f} |" for p in result.steps]
        lines.append("")
    lines += [f"![{name}]({name})" for name in plots]
    lines += ["", *_deploy_text(result.deploy)]
    build = (["from sirfp_adapter.zoo import build_model",
              f"model = build_model({cfg['model']!r}, num_classes={cfg['n_classes']})"] if cfg.get("model") else
             ["from sirfp_adapter.demo.models import DeepLabLite",
              f"model = DeepLabLite({cfg['n_classes']}, {tuple(cfg['widths'])}, aspp_channels={cfg['aspp_channels']})"])
    lines += ["", "Load the pruned model with:", "", "```python", "from sirfp_adapter import load_pruned", *build,
              f"load_pruned(model, {str(out / 'pruned.pt')!r})", "```", ""]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    """``12.3 ms`` below a second, ``4.56 s`` from there."""
    return f"{1e3 * seconds:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _deploy_text(deploy: dict[str, Any] | None) -> list[str]:
    """The report's deployment section."""
    if deploy is None:
        return []
    from sirfp_adapter.deploy import LatencyRow, latency_table

    lines = ["## Deployment", ""]
    onnx = deploy["onnx"]
    if "file" in onnx:
        lines.append(f"ONNX: `pruned.onnx`, {onnx['bytes'] / 1e6:.2f} MB (the unpruned model's export: "
                     f"{onnx['dense_bytes'] / 1e6:.2f} MB, {onnx['bytes'] / onnx['dense_bytes'] - 1:+.1%}); run in "
                     f"onnxruntime on one image, its {onnx['outputs']} output(s) match torch's to "
                     f"{onnx['max_abs_diff']:.2g} (largest absolute difference).")
    else:
        lines.append(f"ONNX: no export ({onnx.get('skipped') or 'failed: ' + onnx['failed']}).")
    rows = [LatencyRow(**{k: v for k, v in r.items() if k != "speedup"}) for r in deploy["latency"]]
    lines += ["", "Latency, unpruned (dense) vs pruned: eval-mode forward passes under `torch.no_grad`, median of "
                  "`torch.utils.benchmark` runs after a warm-up, the two models alternated per batch size:", "",
              latency_table(rows).rstrip("\n")]
    return lines


def _plots(result: Result) -> dict[str, bytes]:
    """The PNGs by file name, stamped with the run id (``Description``)."""
    import io

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the prune extra
        return {}
    names: dict[str, bytes] = {}
    stamp = {"Description": f"sirfp prune run {result.run}"}

    def png(fig: Any) -> bytes:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, metadata=stamp)
        plt.close(fig)
        return buffer.getvalue()

    names["loss.png"] = png(_loss_figure(plt, result))
    if len(result.steps) > 1 and result.validation:
        names["accuracy.png"] = png(_accuracy_figure(plt, result))
    fig, ax = plt.subplots(figsize=(9, 3.5))
    labels = list(result.widths)
    b = [result.widths[k][0] for k in labels]
    a = [result.widths[k][1] for k in labels]
    ax.bar(np.arange(len(labels)), b, color="#cccccc", label="unpruned")
    ax.bar(np.arange(len(labels)), a, color="#1f77b4", label="pruned")
    ax.set_xticks(np.arange(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_ylabel("channels (BatchNorm width)")
    ax.legend()
    fig.tight_layout()
    names["widths.png"] = png(fig)
    return names


def _loss_figure(plt: Any, result: Result) -> Any:
    """Training loss per iteration (smoothed over 1% of the run; markers for short runs)
    and validation loss at its points, phase boundaries marked."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    losses = np.asarray(result.losses, dtype=float)
    window = max(1, len(losses) // 100)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    short = smooth.size <= 60
    ax.plot(np.arange(smooth.size) + window, smooth, lw=1, marker="o" if short else None, ms=3,
            label="training" + (f" (mean of {window})" if window > 1 else ""))
    points = [p for p in result.validation if math.isfinite(p["loss"])]
    if points:
        ax.plot([p["iteration"] for p in points], [p["loss"] for p in points], color="#d62728", marker="s", ms=4,
                lw=1, label="validation")
    edges = np.cumsum([result.phases["train"], result.phases["prune"]])
    for x, label in zip(edges, ("pruning starts", "channels removed"), strict=True):
        ax.axvline(x + 0.5, color="grey", ls="--", lw=0.8)
        ax.text(x + 0.5, 0.02, f" {label}", va="bottom", fontsize=8, transform=ax.get_xaxis_transform())
    ax.set_xlim(0, max(len(losses), 1) + 1)
    values = np.concatenate([smooth, [p["loss"] for p in points]])
    if values.size and np.all(values > 0) and values.max() / values.min() > 10:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (cross-entropy)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _accuracy_figure(plt: Any, result: Result) -> Any:
    """Validation mIoU against FLOPs: the unpruned model, the masked model after each
    pruning step, the fine-tuned one."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    path = result.steps
    gflops = [p["flops"] / 1e9 for p in path]
    miou = [100 * p["miou"] for p in path]
    ax.plot(gflops[:-1], miou[:-1], marker="o", lw=1, label="pruning steps (masked, before fine-tuning)")
    ax.plot(gflops[-2:], miou[-2:], ls=":", color="grey", lw=1)
    ax.plot(gflops[-1:], miou[-1:], marker="*", ms=12, ls="", color="#2ca02c", label=path[-1]["label"])
    if result.reference is not None:
        ax.plot(gflops[:1], [100 * result.reference["miou"]], marker="D", ls="", color="#9467bd",
                label="unpruned, trained as long")
    for i, (x, y, p) in enumerate(zip(gflops, miou, path, strict=True)):
        last = i == len(path) - 1  # left of its marker, clear of the last step's label (same FLOPs)
        ax.annotate(p["label"], (x, y), textcoords="offset points", xytext=(-8, 0) if last else (4, 4),
                    ha="right" if last else "left", va="center" if last else "bottom", fontsize=7)
    ax.set_xlabel("GFLOPs (1 image)")
    ax.set_ylabel("validation mIoU (%)")
    ax.invert_xaxis()  # pruning moves right
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
