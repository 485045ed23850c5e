"""The main job end to end: train a segmentation network, prune it with SIRFP (or a
baseline) to a FLOPs target, fine-tune, and measure before and after.

:func:`run` is what ``sirfp prune`` and ``benchmarks/pruning.py`` call. Phases:

1. **train** the unpruned model (``train_iters`` iterations, AdamW, cosine schedule);
2. **prune** progressively (the paper's Algorithm 2): ``prune_steps`` steps
   ``prune_interval`` iterations apart, training on while the redundancy collector (or
   the baseline's statistics) runs, masks between steps;
3. **remove** the masked channels physically and **fine-tune** (``finetune_iters``);
4. **measure** both models: mIoU, pixel accuracy, parameters, FLOPs
   (``torch.utils.flop_counter``, one image) and CPU latency (batch 1, median, the two
   models timed interleaved).

Every phase shows a progress bar (``progress=True``); the default configuration
finishes in a few minutes on two CPU cores.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sirfp_adapter.apply import save_pruned
from sirfp_adapter.cost import count_flops, count_params
from sirfp_adapter.demo.data import FolderSegmentation, SyntheticSegmentation, make_loaders
from sirfp_adapter.measures import MEASURES
from sirfp_adapter.demo.metrics import evaluate
from sirfp_adapter.demo.models import DeepLabLite
from sirfp_adapter.criteria import CRITERIA, Criterion
from sirfp_adapter.measures import get_measure
from sirfp_adapter.plan import PlanOptions
from sirfp_adapter.schedule import SIRFPPruner

__all__ = ["Config", "run", "write_report"]


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
    decay: float = 0.99
    seed: int = 0
    threads: int | None = None
    latency_repeats: int = 20

    def check(self) -> None:
        if not 0.0 < self.flops_reduction < 1.0:
            raise ValueError(f"flops_reduction must be in (0, 1), got {self.flops_reduction!r}")
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {tuple(CRITERIA)}, got {self.criterion!r}")
        for name in ("train_samples", "val_samples", "batch_size", "prune_steps", "prune_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("train_iters", "finetune_iters"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.measure not in MEASURES:
            raise ValueError(f"measure must be one of {tuple(MEASURES)}, got {self.measure!r}")
        if self.calibration not in ("mean", "range", "none"):
            raise ValueError(f"calibration must be 'mean', 'range' or 'none', got {self.calibration!r}")
        if self.normalize not in ("softmax", "relu_l1"):
            raise ValueError(f"normalize must be 'softmax' or 'relu_l1', got {self.normalize!r}")
        self.plan_options()
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every!r}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {self.max_samples!r}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {self.decay!r}")

    def plan_options(self) -> PlanOptions:
        """The planning options (validated)."""
        return PlanOptions(mode=self.mode, min_keep=self.min_keep, round_to=self.round_to,  # type: ignore[arg-type]
                           method=self.method, method_options={"seed": self.seed} if self.method != "ehgp" else None)

    def make_criterion(self) -> Criterion:
        """The criterion with those of this config's options that its constructor takes."""
        cls = CRITERIA[self.criterion]
        offered: dict[str, Any] = {"measure": self.measure, "decay": self.decay, "every": self.every,
                                   "max_samples": self.max_samples, "calibration": self.calibration,
                                   "seed": self.seed}
        accepted = inspect.signature(cls).parameters
        options = {k: v for k, v in offered.items() if k in accepted}
        if "measure" in accepted and "normalize" in inspect.signature(get_measure(self.measure)).parameters:
            options["normalize"] = self.normalize
        return cls(**options)


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
    times: dict[str, float] = field(default_factory=dict)

    def caveat(self) -> str:
        """What the comparison does not control for."""
        extra = self.phases["prune"] + self.phases["finetune"]
        return (f"The pruned model trained {extra} iterations more than the unpruned one (pruning steps and "
                "fine-tuning); benchmarks/pruning.py compares with an unpruned model trained equally long.")

    def table(self) -> str:
        """The before/after table as Markdown."""
        b, a = self.before, self.after
        rows = [
            ("mIoU (%)", f"{100 * b['miou']:.2f}", f"{100 * a['miou']:.2f}", f"{100 * (a['miou'] - b['miou']):+.2f}"),
            ("pixel accuracy (%)", f"{100 * b['pixel_accuracy']:.2f}", f"{100 * a['pixel_accuracy']:.2f}",
             f"{100 * (a['pixel_accuracy'] - b['pixel_accuracy']):+.2f}"),
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
    while True:
        yield from loader


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
    rate from the optimizer's to 5% of it; ``after_step`` runs after each backward pass."""
    losses = [] if losses is None else losses
    base = [g["lr"] for g in optimizer.param_groups]
    bar = _progress(iters, desc, progress)
    model.train()
    for i in range(iters):
        scale = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / max(iters, 1)))
        for g, lr in zip(optimizer.param_groups, base, strict=True):
            g["lr"] = lr * scale
        x, y = next(batches)
        loss = F.cross_entropy(model(x), y, ignore_index=255)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        losses.append(loss.item())
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
) -> tuple[Result, nn.Module, dict[str, Any]]:
    """Train, prune, fine-tune and measure; write the report when ``out_dir`` is given.

    Returns the result, the pruned model, and the trained unpruned model's record
    (``pretrained`` for further runs).

    Parameters
    ----------
    cfg : Config
    out_dir : path, optional
        Where to save ``pruned.pt``, ``report.md``, ``result.json`` and the plots.
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
    """
    cfg.check()
    say = log or (lambda _msg: None)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    train_set, val_set = build_datasets(cfg)
    train_loader, val_loader = make_loaders(train_set, val_set, batch_size=cfg.batch_size, seed=cfg.seed)
    batches = _batches(train_loader)
    model = DeepLabLite(cfg.n_classes, cfg.widths, aspp_channels=cfg.aspp_channels)
    times: dict[str, float] = {}
    started = time.perf_counter()
    if pretrained is None:
        losses: list[float] = []
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        train(model, batches, cfg.train_iters, optimizer, losses=losses, desc="train (unpruned)", progress=progress)
        times["train"] = time.perf_counter() - started
        before = measure(model, val_loader, cfg)
        state = copy.deepcopy(model.state_dict())
    else:
        model.load_state_dict(pretrained["state_dict"])
        losses = list(pretrained["losses"])
        before = dict(pretrained["before"])
        state = pretrained["state_dict"]
    say(f"unpruned: mIoU {100 * before['miou']:.2f}%, {before['params'] / 1e6:.3f} M params, "
        f"{before['flops'] / 1e9:.3f} GFLOPs")
    widths_before = _widths(model)
    n_train = len(losses)

    # phase 2: progressive pruning with masks, training on
    t0 = time.perf_counter()
    example = next(batches)[0][:2]
    pruner = None
    if prune:
        pruner = SIRFPPruner(model, example, criterion=cfg.make_criterion(), flops_reduction=cfg.flops_reduction,
                             steps=cfg.prune_steps, interval=cfg.prune_interval, plan=cfg.plan_options())
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.finetune_lr, weight_decay=cfg.weight_decay)
    train(model, batches, cfg.prune_steps * cfg.prune_interval, optimizer,
          after_step=pruner.step if pruner is not None else None, losses=losses,
          desc=f"prune ({cfg.criterion})" if prune else "train on", progress=progress)
    history = pruner.history if pruner is not None else []
    for plan in history:
        say("  " + plan.summary().splitlines()[0])
    times["prune"] = time.perf_counter() - t0
    times["planning"] = pruner.planning_time if pruner is not None else 0.0

    # phase 3: physical removal, fine-tuning
    if pruner is not None:
        pruner.finalize()
    t0 = time.perf_counter()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.finetune_lr, weight_decay=cfg.weight_decay)
    train(model, batches, cfg.finetune_iters, optimizer, losses=losses,
          desc="fine-tune (pruned)" if prune else "train on", progress=progress)
    times["finetune"] = time.perf_counter() - t0
    after = measure(model, val_loader, cfg)
    unpruned = DeepLabLite(cfg.n_classes, cfg.widths, aspp_channels=cfg.aspp_channels)
    unpruned.load_state_dict(state)
    before = dict(before)
    before["latency_ms"], after["latency_ms"] = latency_ms([unpruned, model], cfg.size, cfg.latency_repeats)
    times["total"] = time.perf_counter() - started
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
    )
    if out_dir is not None:
        write_report(result, model, Path(out_dir))
    return result, model, {"state_dict": state, "before": before, "losses": losses[:n_train]}


def write_report(result: Result, model: nn.Module, out: Path) -> None:
    """``pruned.pt`` (load with ``load_pruned``), ``result.json``, ``report.md`` and
    PNG plots (training loss, channel widths before/after) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in asdict(result).items() if k != "losses"}
    save_pruned(model, out / "pruned.pt", metadata={"config": json.dumps(result.config),
                                                    "after": json.dumps(result.after)})
    (out / "result.json").write_text(json.dumps({**summary, "losses": result.losses}, indent=1, default=str))
    plots = _plots(result, out)
    cfg = result.config
    lines = [
        "# SIRFP pruning report",
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
        "Time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.times.items()),
        "",
    ]
    lines += [f"![{name}]({name})" for name in plots]
    lines += ["", "Load the pruned model with:", "", "```python",
              "from sirfp_adapter import load_pruned",
              "from sirfp_adapter.demo.models import DeepLabLite",
              f"model = DeepLabLite({cfg['n_classes']}, {tuple(cfg['widths'])}, aspp_channels={cfg['aspp_channels']})",
              f"load_pruned(model, {str(out / 'pruned.pt')!r})", "```", ""]
    (out / "report.md").write_text("\n".join(lines))


def _plots(result: Result, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the prune extra
        return []
    names = []
    fig, ax = plt.subplots(figsize=(7, 3.5))
    losses = np.asarray(result.losses)
    window = max(1, len(losses) // 100)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(np.arange(smooth.size) + window - 1, smooth, lw=1)
    edges = np.cumsum([result.phases["train"], result.phases["prune"]])
    for x, label in zip(edges, ("pruning starts", "channels removed"), strict=True):
        ax.axvline(x, color="grey", ls="--", lw=0.8)
        ax.text(x, ax.get_ylim()[1], f" {label}", va="top", fontsize=8)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)
    plt.close(fig)
    names.append("loss.png")
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
    fig.savefig(out / "widths.png", dpi=110)
    plt.close(fig)
    names.append("widths.png")
    return names
