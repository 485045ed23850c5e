"""Progressive pruning inside the user's own training loop (the paper's Algorithm 2).

:class:`SIRFPPruner` owns a criterion (`sirfp_adapter.criteria`: what ranks the
channels, and the statistics it gathers), the groups, the cost model and the masks. The loop calls
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

import operator
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from torch import nn

from sirfp_adapter.apply import ChannelMasks
from sirfp_adapter.checks import check_callable
from sirfp_adapter.cost import CostModel, count_flops, count_params
from sirfp_adapter.criteria import Criterion, get_criterion
from sirfp_adapter.groups import ChannelGroups
from sirfp_adapter.plan import PlanOptions, PruningPlan, Ranking, make_plan

__all__ = ["SIRFPPruner", "check_callable", "check_reduction", "rank_groups"]


def check_reduction(flops_reduction: object, params_reduction: object) -> tuple[Literal["flops", "params"], float]:
    """The metric and target of exactly one of the two reduction arguments."""
    if (flops_reduction is None) == (params_reduction is None):
        raise ValueError("give exactly one of flops_reduction and params_reduction")
    metric: Literal["flops", "params"] = "flops" if flops_reduction is not None else "params"
    target = flops_reduction if flops_reduction is not None else params_reduction
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 < float(target) < 1.0:
        raise ValueError(f"{metric}_reduction must be a number in (0, 1), got {target!r}")
    return metric, float(target)


#: The keys of `SIRFPPruner.state_dict`.
STATE_KEYS = ("iteration", "completed", "masks", "criterion", "statistics")


def _counter(value: object, key: str, most: int | None) -> int:
    """``state[key]`` as an int from 0 to ``most`` (no bound when None), or ValueError."""
    bound = "" if most is None else f" to steps={most}"
    try:
        number = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        number = None
    if number is None or number < 0 or (most is not None and number > most):
        raise ValueError(f"state[{key!r}] must be an int from 0{bound}, got {value!r}")
    return number


#: While ranking takes long, ``log`` hears of its progress at most this often (seconds).
RANK_LOG_SECONDS = 2.0


def rank_groups(criterion: Criterion, groups: ChannelGroups, active: Mapping[str, np.ndarray] | None = None,
                log: Callable[[str], None] | None = None, what: str = "ranking") -> list[Ranking]:
    """Every group's ranking under ``criterion`` (its active channels only; all when
    ``active`` is None).

    With ``log``, a ranking that runs longer than `RANK_LOG_SECONDS` (a measured budget's
    forward passes on a large network) reports at most one line that often, e.g.
    ``"ranking: 12 of 57 groups ranked (4 s)"``, and the last group.
    """
    criterion.check_ready()
    started = last = time.monotonic()
    rankings = []
    for i, g in enumerate(groups, 1):
        rankings.append(criterion.rank(g, None if active is None else active[g.name]))
        now = time.monotonic()
        if log is not None and (now - last >= RANK_LOG_SECONDS or (i == len(groups) and last > started)):
            log(f"{what}: {i} of {len(groups)} groups ranked ({now - started:.0f} s)")
            last = now
    return rankings


#: Each model's SIRFPPruner (weak both ways); one whose masks are still hooked in is open.
_OPEN: weakref.WeakKeyDictionary[nn.Module, weakref.ref[SIRFPPruner]] = weakref.WeakKeyDictionary()


class SIRFPPruner:
    """Progressive structured pruning to a FLOPs (or parameter) reduction target.

    Parameters
    ----------
    model : torch.nn.Module
    example_inputs : Tensor or tuple
        A batch the model accepts, for tracing the groups and counting FLOPs.
    criterion : str or Criterion
        What ranks the channels: a name from `sirfp_adapter.criteria.CRITERIA`
        (``"sirfp"``, ``"sirfp-paper"``, ``"sirfp-released"``, ``"random"``, ``"l1"``,
        ``"bn_scale"``, ``"fpgm"``, ``"taylor"``, ``"dcfp"``, ``"group_norm"``) with its
        default options, or an instance (``SIRFP("gram", decay=0.9)``).
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
    plan : PlanOptions, optional
        Allocation mode, per-group floor and rounding, per-group MEWCP solver.
    ignored_layers : sequence of modules or names
        Layers never pruned, besides the output layers.
    log : callable, optional
        Called with one line per pruning step (e.g. ``print``, ``logging.info``), and
        while a step's ranking runs long, with its progress at most every 2 s
        (`rank_groups`).
    """

    def __init__(
        self,
        model: nn.Module,
        example_inputs: Any,
        *,
        criterion: str | Criterion = "sirfp",
        flops_reduction: float | None = None,
        params_reduction: float | None = None,
        steps: int = 1,
        interval: int = 100,
        plan: PlanOptions | None = None,
        ignored_layers: Sequence[nn.Module | str] = (),
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.metric, self.target = check_reduction(flops_reduction, params_reduction)
        for name, value in (("steps", steps), ("interval", interval)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if plan is not None and not isinstance(plan, PlanOptions):
            raise TypeError(f"plan must be a PlanOptions or None, got {type(plan).__name__}")
        check_callable(log, "log", "called with one str per line of progress")
        ref = _OPEN.get(model) if isinstance(model, nn.Module) else None
        if ref is not None and (other := ref()) is not None and other.masks.attached:
            raise ValueError("model already has an open SIRFPPruner: two would stack their hooks and masks; "
                             "close() or finalize() that one first")
        self.criterion = get_criterion(criterion)
        self.model = model
        self.example_inputs = example_inputs
        self.steps = steps
        self.interval = interval
        self.options = plan if plan is not None else PlanOptions()
        self.log = log
        self.groups = ChannelGroups.build(model, example_inputs, ignored_layers=ignored_layers)
        if self.criterion.watches_activations:  # groups without (B, C, H, W) maps: left out, warned
            self.groups = self.groups.measurable()
        self.cost = CostModel(model, example_inputs, self.groups)
        # hooks last: nothing above can leave one behind when it raises
        self.masks = ChannelMasks(model, self.groups)
        try:
            self.criterion.attach(model, self.groups)
        except BaseException:
            self.masks.remove()
            raise
        _OPEN[model] = weakref.ref(self)
        self.iteration = 0
        self.completed = 0
        self.history: list[PruningPlan] = []
        self.planning_time = 0.0
        self.observe_time = 0.0

    # ------------------------------------------------------------------ loop
    @property
    def done(self) -> bool:
        """Whether every pruning step has been taken."""
        return self.completed >= self.steps

    def step(self) -> PruningPlan | None:
        """Advance one training iteration; prune when a step is due (returns its plan)."""
        if self.done:
            return None
        started = time.perf_counter()
        self.criterion.observe()
        self.observe_time += time.perf_counter() - started
        self.iteration += 1
        if self.iteration % self.interval:
            return None
        plan = self.prune_step()
        if self.done:
            self.criterion.close()
        return plan

    def prune_step(self) -> PruningPlan:
        """Take the next pruning step now (``step`` calls this on schedule)."""
        if self.done:
            raise RuntimeError(f"all {self.steps} pruning steps have been taken")
        target = self.target * (self.completed + 1) / self.steps
        started = time.perf_counter()
        plan = make_plan(self.groups, self.cost, self.rankings(), target, metric=self.metric,
                         removed=self.masks.removed(), options=self.options)
        self.masks.remove_channels(plan.remove)
        plan = replace(plan, planning_time=time.perf_counter() - started)
        self.planning_time += plan.planning_time
        self.history.append(plan)
        self.completed += 1
        if self.log is not None:
            self.log(f"step {self.completed}/{self.steps} at iteration {self.iteration}: {plan.summary()}")
        return plan

    def rankings(self) -> list[Ranking]:
        """Each group's current ranking under the criterion (active channels only)."""
        return rank_groups(self.criterion, self.groups, self.masks.active, log=self.log,
                           what=f"step {self.completed + 1}/{self.steps}")

    # ------------------------------------------------------------------ results
    def stats(self) -> dict[str, float]:
        """What collecting the statistics has cost so far.

        Returns
        -------
        dict
            ``iterations`` (steps taken), ``collector_s`` (time measuring feature maps in
            the forward hooks, `RedundancyCollector.seconds`; 0 for criteria without
            one), ``observe_s`` (time in the criterion's ``observe`` after each backward
            pass: gradient statistics), ``statistics_s`` (their sum),
            ``statistics_s_per_iteration`` and ``planning_s`` (the pruning steps'
            planning).
        """
        collector = getattr(self.criterion, "collector", None)
        measured = float(collector.seconds) if collector is not None else 0.0
        total = measured + self.observe_time
        return {"iterations": float(self.iteration), "collector_s": measured, "observe_s": self.observe_time,
                "statistics_s": total, "statistics_s_per_iteration": total / max(self.iteration, 1),
                "planning_s": self.planning_time}

    def predicted(self) -> dict[str, float]:
        """Cost-model FLOPs and parameters now (masked channels count as removed)."""
        removed = self.masks.removed()
        return {"flops": self.cost.flops(removed), "params": self.cost.params(removed),
                "flops_base": self.cost.flops_base, "params_base": self.cost.params_base}

    def finalize(self) -> nn.Module:
        """Stop collecting and remove the masked channels physically; returns the model.

        Parameters change: build a new optimizer before training further.
        """
        self.criterion.close()
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
            "criterion": self.criterion.name,
            "statistics": self.criterion.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict` (same model, criterion and settings).

        Raises
        ------
        TypeError
            ``state`` is not a mapping.
        ValueError
            A key is missing, the criterion differs, or a counter is not an integer in its
            range (``iteration >= 0``, ``0 <= completed <= steps``); nothing is loaded then.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping from SIRFPPruner.state_dict(), got {type(state).__name__}")
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"state must be a mapping from SIRFPPruner.state_dict(); it lacks {missing}")
        if state["criterion"] != self.criterion.name:
            raise ValueError(f"the state was saved by a pruner with criterion {state['criterion']!r}, "
                             f"this one uses {self.criterion.name!r}")
        iteration = _counter(state["iteration"], "iteration", None)
        completed = _counter(state["completed"], "completed", self.steps)
        before = self.masks.state_dict()
        self.masks.load_state_dict(state["masks"])
        try:
            self.criterion.load_state_dict(state["statistics"])
        except BaseException:
            self.masks.load_state_dict(before)  # nothing loaded
            raise
        self.iteration = iteration
        self.completed = completed
        if self.done:
            self.criterion.close()

    def close(self) -> None:
        """Remove every hook (criterion and masks) without pruning."""
        self.criterion.close()
        self.masks.remove()

    def report(self) -> dict[str, float]:
        """Measured FLOPs (``torch.utils.flop_counter``) and parameters of the model now.

        Masked channels are still present physically, so before :meth:`finalize` this
        measures the unpruned cost; use :meth:`predicted` for the masked model.
        """
        return {"flops": float(count_flops(self.model, self.example_inputs)), "params": float(count_params(self.model))}
