"""Progressive pruning inside the user's own training loop (the paper's Algorithm 2).

:class:`SIRFPPruner` owns the statistics (the redundancy collector, or the Taylor sums
of the baselines), the groups, the cost model and the masks. The loop calls
:meth:`SIRFPPruner.step` once per iteration after ``loss.backward()``; every
``interval`` iterations the pruner removes one more slice — step ``t`` of ``steps``
reaches ``t / steps`` of the target reduction — as masks, so the optimizer keeps
working; fine-tuning is simply the iterations in between and after. :meth:`finalize`
removes the masked channels physically.

Example
-------
>>> pruner = SIRFPPruner(model, example_inputs, flops_reduction=0.6, steps=4, interval=200)  # doctest: +SKIP
>>> for x, y in loader:                                                                       # doctest: +SKIP
...     loss = criterion(model(x), y)
...     optimizer.zero_grad(); loss.backward(); optimizer.step()
...     pruner.step()
>>> pruner.finalize()  # physically smaller; build a new optimizer to train further           # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import replace
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from torch import nn

from sirfp_adapter.apply import ChannelMasks
from sirfp_adapter.collector import RedundancyCollector
from sirfp_adapter.cost import CostModel, count_flops, count_params
from sirfp_adapter.groups import ChannelGroups
from sirfp_adapter.importance import BASELINES, TaylorAccumulator, group_importance
from sirfp_adapter.plan import (
    NORMALIZATIONS,
    PruningPlan,
    Ranking,
    check_plan_options,
    group_matrix,
    make_plan,
    rank_importance,
    rank_redundancy,
)

__all__ = ["CRITERIA", "SIRFPPruner"]

CRITERIA = ("sirfp", *BASELINES)


class SIRFPPruner:
    """Progressive structured pruning to a FLOPs (or parameter) reduction target.

    Parameters
    ----------
    model : torch.nn.Module
    example_inputs : Tensor or tuple
        A batch the model accepts, for tracing the groups and counting FLOPs.
    flops_reduction : float, optional
        Fraction of the FLOPs to remove (0.6 keeps 40%). Exactly one of this and
        ``params_reduction``.
    params_reduction : float, optional
        Fraction of the parameters to remove.
    steps : int
        Pruning steps (Algorithm 2's T_step); the reduction grows linearly.
    interval : int
        Training iterations between steps (the first step comes after ``interval``
        iterations of collection).
    criterion : {"sirfp", "random", "l1", "bn_scale", "fpgm", "taylor"}
        SIRFP's redundancy graphs, or a baseline with the same mechanics.
    measure : str
        Redundancy measure for ``"sirfp"`` (``"js"``: the paper; ``"gram"``: the
        released code).
    decay, every, max_samples :
        Collector settings (see :class:`RedundancyCollector`).
    method : str
        ``mewcp`` method choosing each group's survivors (``"ehgp"``: the paper).
    mode : {"global", "uniform"}
        One global threshold, or the same ratio per group.
    normalization : {"mean", "range"}
        How SIRFP scores are compared across groups (see :func:`rank_redundancy`).
    min_keep, round_to :
        Per-group floor and rounding (see :func:`make_plan`).
    ignored_layers : sequence of modules or names
        Layers never pruned, besides the output layers.
    seed : int
        Seed of the random baseline and of stochastic ``mewcp`` methods.
    measure_options, method_options : dict, optional
        Passed to the measure / to ``mewcp.solve``.
    """

    def __init__(
        self,
        model: nn.Module,
        example_inputs: Any,
        *,
        flops_reduction: float | None = None,
        params_reduction: float | None = None,
        steps: int = 1,
        interval: int = 100,
        criterion: str = "sirfp",
        measure: str = "js",
        decay: float = 0.99,
        every: int = 1,
        max_samples: int | None = None,
        method: str = "ehgp",
        mode: Literal["global", "uniform"] = "global",
        normalization: str = "mean",
        min_keep: float | int = 0.1,
        round_to: int = 1,
        ignored_layers: Sequence[nn.Module | str] = (),
        seed: int = 0,
        measure_options: dict[str, Any] | None = None,
        method_options: dict[str, Any] | None = None,
    ) -> None:
        if (flops_reduction is None) == (params_reduction is None):
            raise ValueError("give exactly one of flops_reduction and params_reduction")
        self.metric: Literal["flops", "params"] = "flops" if flops_reduction is not None else "params"
        target = flops_reduction if flops_reduction is not None else params_reduction
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 < float(target) < 1.0:
            raise ValueError(f"{self.metric}_reduction must be a number in (0, 1), got {target!r}")
        for name, value in (("steps", steps), ("interval", interval)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        self.model = model
        self.example_inputs = example_inputs
        self.target = float(target)
        self.steps = steps
        self.interval = interval
        self.criterion = criterion
        self.method = method
        self.mode = mode
        self.min_keep = min_keep
        self.round_to = round_to
        self.method_options = {"seed": seed, **(method_options or {})} if method != "ehgp" else {}
        check_plan_options(self.target, self.metric, mode, min_keep, round_to, method)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization
        self._rng = np.random.default_rng(seed)
        self.groups = ChannelGroups.build(model, example_inputs, ignored_layers=ignored_layers)
        self.cost = CostModel(model, example_inputs, self.groups)
        self.collector: RedundancyCollector | None = None
        self.taylor: TaylorAccumulator | None = None
        if criterion == "sirfp":
            self.collector = RedundancyCollector(
                model, self.groups.feature_layers(), measure=measure, decay=decay, every=every,
                max_samples=max_samples, **(measure_options or {}),
            )
        elif criterion == "taylor":
            self.taylor = TaylorAccumulator(model, self.groups)
        # hooks last: nothing above can leave one behind when it raises
        self.masks = ChannelMasks(model, self.groups)
        if self.collector is not None:
            self.collector.open()
        self.iteration = 0
        self.completed = 0
        self.history: list[PruningPlan] = []
        self.planning_time = 0.0

    # ------------------------------------------------------------------ loop
    @property
    def done(self) -> bool:
        """Whether every pruning step has been taken."""
        return self.completed >= self.steps

    def step(self) -> PruningPlan | None:
        """Advance one training iteration; prune when a step is due (returns its plan)."""
        if self.done:
            return None
        if self.taylor is not None:
            self.taylor.update()
        self.iteration += 1
        if self.iteration % self.interval:
            return None
        plan = self.prune_step()
        if self.done and self.collector is not None:
            self.collector.close()
        return plan

    def prune_step(self) -> PruningPlan:
        """Take the next pruning step now (``step`` calls this on schedule)."""
        if self.done:
            raise RuntimeError(f"all {self.steps} pruning steps have been taken")
        target = self.target * (self.completed + 1) / self.steps
        started = time.perf_counter()
        rankings = self.rankings()
        plan = make_plan(
            self.groups, self.cost, rankings, target, metric=self.metric, mode=self.mode,
            min_keep=self.min_keep, round_to=self.round_to, removed=self.masks.removed(),
            method=self.method, method_options=self.method_options,
        )
        self.masks.remove_channels(plan.remove)
        elapsed = time.perf_counter() - started
        self.planning_time += elapsed
        plan = _with_time(plan, elapsed)
        self.history.append(plan)
        self.completed += 1
        return plan

    def rankings(self) -> list[Ranking]:
        """Each group's current ranking under the criterion (active channels only)."""
        out = []
        taylor = self.taylor.values() if self.taylor is not None else None
        matrices = self.collector.matrices() if self.collector is not None else {}
        if self.collector is not None and not matrices:
            raise RuntimeError("no redundancy statistics yet: run training iterations before pruning")
        for g in self.groups:
            active = self.masks.active[g.name]
            if self.criterion == "sirfp":
                out.append(rank_redundancy(group_matrix(g, matrices), active, self.normalization))
            else:
                out.append(rank_importance(group_importance(self.criterion, self.model, g, rng=self._rng,
                                                            taylor=taylor), active))
        return out

    # ------------------------------------------------------------------ results
    def predicted(self) -> dict[str, float]:
        """Cost-model FLOPs and parameters now (masked channels count as removed)."""
        removed = self.masks.removed()
        return {"flops": self.cost.flops(removed), "params": self.cost.params(removed),
                "flops_base": self.cost.flops_base, "params_base": self.cost.params_base}

    def finalize(self) -> nn.Module:
        """Stop collecting and remove the masked channels physically; returns the model.

        Parameters change: build a new optimizer before training further.
        """
        if self.collector is not None:
            self.collector.close()
        self.masks.prune()
        self.completed = self.steps
        return self.model

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume the schedule from a checkpoint (with the model's
        own ``state_dict``): counters, masks, and the criterion's statistics."""
        return {
            "iteration": self.iteration,
            "completed": self.completed,
            "masks": self.masks.state_dict(),
            "collector": self.collector.state_dict() if self.collector is not None else None,
            "taylor": self.taylor.state_dict() if self.taylor is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` (same model, criterion and settings)."""
        if (state["collector"] is None) != (self.collector is None) or (state["taylor"] is None) != (self.taylor is None):
            raise ValueError(f"the state was saved by a pruner with another criterion than {self.criterion!r}")
        self.masks.load_state_dict(state["masks"])
        if self.collector is not None:
            self.collector.load_state_dict(state["collector"])
        if self.taylor is not None:
            self.taylor.load_state_dict(state["taylor"])
        self.iteration = int(state["iteration"])
        self.completed = int(state["completed"])
        if self.done and self.collector is not None:
            self.collector.close()

    def close(self) -> None:
        """Remove every hook (collector and masks) without pruning."""
        if self.collector is not None:
            self.collector.close()
        self.masks.remove()

    def report(self) -> dict[str, float]:
        """Measured FLOPs (``torch.utils.flop_counter``) and parameters of the model now.

        Masked channels are still present physically, so before :meth:`finalize` this
        measures the unpruned cost; use :meth:`predicted` for the masked model.
        """
        return {"flops": float(count_flops(self.model, self.example_inputs)), "params": float(count_params(self.model))}


def _with_time(plan: PruningPlan, seconds: float) -> PruningPlan:
    return replace(plan, planning_time=seconds)
