"""``sirfp check``: a dry run of ``sirfp prune`` that takes seconds.

:func:`dry_run` builds and checks everything ``sirfp prune`` would (options, network,
weights, data), traces the channel groups, and reports what a run would do: the groups,
what is prunable and what is left out and why, parameters and FLOPs, the widths each
group would keep at the target, and what the criterion's statistics cost per training
iteration.

Notes
-----
The predicted widths come from one pruning step planned on the statistics of **one**
training batch (the criterion's own: redundancy graphs for SIRFP, weights for ``l1``,
gradients for ``taylor``), on the untrained or ``--weights`` network: a run's widths
follow from many batches of the trained network, so read them as the shape of the
allocation, not a promise. The FLOPs and parameters after pruning are the cost model's
for that plan (`sirfp_adapter.cost`).

Collector cost: one training iteration (forward, cross-entropy, backward; no optimizer
step) is timed without and with the criterion attached, on one batch of
``--batch-size`` images at ``--input-size``, after one plain warm-up pass (a measuring
pass is timed once: on a large network it alone can take minutes). The criterion measures
on every ``every``-th pass, so its cost per iteration is
``(t_measuring + (every - 1) * t_other) / every``, with ``t_measuring`` the first pass
(it measures) and ``t_other`` the mean of the next passes (which do not); both are
timed. The ratio to the plain iteration is what the statistics add to training.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from sirfp_adapter.cost import count_flops, count_params
from sirfp_adapter.demo.experiment import Config, segmentation_loss
from sirfp_adapter.schedule import SIRFPPruner

__all__ = ["DryRun", "dry_run"]


@dataclass
class DryRun:
    """What :func:`dry_run` found (``asdict`` for JSON)."""

    model: str
    input_size: tuple[int, int]
    n_classes: int
    params: int
    flops: int  # one image
    criterion: str
    target: float
    groups: list[dict[str, Any]]  # {"name", "channels", "keep", "layers"} per prunable group
    ignored: dict[str, str]  # layer or group -> why it is not pruned
    predicted: dict[str, float]  # {"flops_reduction", "params_reduction"} of the plan
    timing: dict[str, float]  # {"plain_s", "collector_s", "ratio", "every", "measuring_s", "other_s"}
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The human-readable report."""
        h, w = self.input_size
        t = self.timing
        lines = [
            f"model {self.model}, input 3x{h}x{w}, {self.n_classes} classes: {self.params / 1e6:.4g} M parameters, "
            f"{self.flops / 1e9:.4g} GFLOPs per image (torch.utils.flop_counter)",
            f"{len(self.groups)} prunable channel groups ({sum(g['channels'] for g in self.groups)} channels); "
            f"{len(self.ignored)} left out:",
        ]
        lines += [f"  {name}: {why}" for name, why in self.ignored.items()]
        lines += ["", f"predicted at the target (FLOPs -{self.target:.0%}, criterion {self.criterion}, one batch of "
                      f"statistics): FLOPs -{self.predicted['flops_reduction']:.2%}, "
                      f"params -{self.predicted['params_reduction']:.2%}", "",
                  "| group | channels | kept | layers |", "|:---|---:|---:|---:|"]
        lines += [f"| {g['name']} | {g['channels']} | {g['keep']} | {g['layers']} |" for g in self.groups]
        lines += ["", f"statistics cost per training iteration (batch of {t['batch']} at {h}x{w}, "
                      f"{t['threads']} threads): plain {t['plain_s'] * 1e3:.1f} ms, with {self.criterion} "
                      f"{t['collector_s'] * 1e3:.1f} ms ({t['ratio']:.2f}x; measuring every {t['every']} pass"
                      f"{'es' if t['every'] != 1 else ''}: a measuring pass {t['measuring_s'] * 1e3:.1f} ms"
                      + (f", the others {t['other_s'] * 1e3:.1f} ms" if t['every'] > 1 else "") + ")"]
        lines += self.notes
        return "\n".join(lines)

    def record(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _iteration(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pruner: SIRFPPruner | None) -> float:
    started = time.perf_counter()
    model.zero_grad(set_to_none=True)
    segmentation_loss(model(x), y).backward()
    if pruner is not None:
        pruner.criterion.observe()
    return time.perf_counter() - started


def dry_run(cfg: Config, network: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> DryRun:
    """Trace, plan one step on one batch and time the statistics (see the module Notes).

    Parameters
    ----------
    cfg : Config
        Checked options (`Config.check`).
    network : torch.nn.Module
        The checked network (`check_model`); a copy is used.
    batch : (images, labels)
        One training batch.
    """
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    model = copy.deepcopy(network)
    x, y = batch
    model.train()
    one = x[:1]
    flops = count_flops(model, one)
    params = count_params(model)
    _iteration(model, x, y, None)  # warm-up
    plain = min(_iteration(model, x, y, None) for _ in range(2))
    criterion = cfg.make_criterion()
    every = int(getattr(criterion, "collector_options", {}).get("every", 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruner = SIRFPPruner(model, x[:2], criterion=criterion, flops_reduction=cfg.flops_reduction, steps=1,
                             interval=1, plan=cfg.plan_options())
        try:
            groups = pruner.groups
            measuring = _iteration(model, x, y, pruner)  # the first pass measures
            others = [_iteration(model, x, y, pruner) for _ in range(min(every - 1, 2))]
            plan = pruner.prune_step()
        finally:
            pruner.close()
    other = sum(others) / len(others) if others else measuring
    collector = (measuring + (every - 1) * other) / every
    ignored: dict[str, str] = {}
    for name in groups.ignored:
        ignored[name] = groups.left_out.get(name, "an output layer: its channels are the network's outputs")
    notes = sorted({str(w.message).splitlines()[0] for w in caught if "fewer than" in str(w.message)})
    return DryRun(
        model=cfg.model or "built-in DeepLabLite",
        input_size=tuple(cfg.size),  # type: ignore[arg-type]
        n_classes=cfg.n_classes,
        params=params,
        flops=flops,
        criterion=cfg.criterion,
        target=cfg.flops_reduction,
        groups=[{"name": g.name, "channels": g.size, "keep": int(plan.keep[g.name]),
                 "layers": len(g.producers) + len(g.consumers)} for g in groups],
        ignored=ignored,
        predicted={"flops_reduction": plan.flops_reduction, "params_reduction": plan.params_reduction},
        timing={"plain_s": plain, "collector_s": collector, "ratio": collector / plain, "every": every,
                "measuring_s": measuring, "other_s": other, "batch": int(x.shape[0]),
                "threads": torch.get_num_threads()},
        notes=[f"note: {n}" for n in notes],
    )
