"""One-shot pruning: collect over a few batches, plan once, remove the channels.

Example
-------
>>> plan = prune_once(model, example_inputs, batches, flops_reduction=0.6)          # doctest: +SKIP
>>> plan = prune_once(model, x, batches, flops_reduction=0.6, criterion="taylor",    # doctest: +SKIP
...                   loss_fn=torch.nn.functional.cross_entropy)

Notes
-----
The model runs in eval mode during collection, so BatchNorm running statistics and
dropout are untouched and what is measured is what the trained model computes; its
mode is restored afterwards. Criteria that read gradients (``taylor``, ``dcfp``,
``sirfp-released``) need ``loss_fn`` and batches of ``(inputs, targets)``: each batch
runs one backward pass from cleared gradients, and the gradients are cleared again at
the end (no optimizer step is taken). Fine-tune the returned model as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from sirfp_adapter.apply import prune_channels
from sirfp_adapter.checks import check_callable, describe_inputs
from sirfp_adapter.cost import CostModel
from sirfp_adapter.criteria import Criterion, get_criterion
from sirfp_adapter.groups import ChannelGroups
from sirfp_adapter.plan import PlanOptions, PruningPlan, make_plan
from sirfp_adapter.schedule import check_reduction, rank_groups

__all__ = ["prune_once"]


def prune_once(
    model: nn.Module,
    example_inputs: Any,
    batches: Iterable[Any],
    *,
    criterion: str | Criterion = "sirfp",
    flops_reduction: float | None = None,
    params_reduction: float | None = None,
    plan: PlanOptions | None = None,
    ignored_layers: Sequence[nn.Module | str] = (),
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    log: Callable[[str], None] | None = None,
) -> PruningPlan:
    """Prune ``model`` in place to a FLOPs (or parameter) reduction in one step.

    Parameters
    ----------
    model : torch.nn.Module
    example_inputs : Tensor or tuple
        A batch the model accepts, for tracing the groups and counting FLOPs.
    batches : iterable
        Collection batches: input tensors, or ``(inputs, targets)`` pairs (needed with
        ``loss_fn``). May be empty for criteria that only read weights (``l1``, ...).
    criterion : str or Criterion
        As for `SIRFPPruner`.
    flops_reduction, params_reduction : float
        Exactly one: the fraction to remove.
    plan : PlanOptions, optional
    ignored_layers : sequence of modules or names
    loss_fn : callable, optional
        ``loss_fn(model(inputs), targets)`` for criteria that read gradients.
    log : callable, optional
        Progress, as for `SIRFPPruner`: called with one line per collection batch
        (``"prune_once: batch 3 collected (sirfp)"``), while the ranking runs long (a
        measured budget on a large network) at most one line every 2 s
        (``"prune_once: 12 of 57 groups ranked (4 s)"``), and one with the plan's summary
        (e.g. ``print``, ``logging.info``, ``tqdm.write``).

    Returns
    -------
    PruningPlan
        What was removed, and the predicted FLOPs and parameters.
    """
    metric, target = check_reduction(flops_reduction, params_reduction)
    if plan is not None and not isinstance(plan, PlanOptions):
        raise TypeError(f"plan must be a PlanOptions or None, got {type(plan).__name__}")
    if isinstance(batches, torch.Tensor):
        raise TypeError("batches must be an iterable of batches (a list or a DataLoader), not one tensor, whose "
                        "iteration yields single samples: pass [inputs] for one batch")
    if not isinstance(batches, Iterable):
        raise TypeError(f"batches must be an iterable of input tensors or (inputs, targets) pairs, "
                        f"got {type(batches).__name__}")
    check_callable(loss_fn, "loss_fn", "loss_fn(outputs, targets) -> loss")
    check_callable(log, "log", "called with one str per line of progress")
    chosen = get_criterion(criterion)
    if chosen.needs_gradients and loss_fn is None:
        raise ValueError(f"criterion {chosen.name!r} reads gradients: give loss_fn=(outputs, targets) -> loss "
                         f"and batches of (inputs, targets)")
    groups = ChannelGroups.build(model, example_inputs, ignored_layers=ignored_layers)
    if chosen.watches_activations:  # groups without (B, C, H, W) maps: left out, warned
        groups = groups.measurable()
    cost = CostModel(model, example_inputs, groups)
    was_training = model.training
    model.eval()
    chosen.attach(model, groups, training_only=False)
    try:
        for i, batch in enumerate(batches, 1):
            try:
                _observe(model, chosen, batch, loss_fn)
            except Exception as exc:  # most often the model's own forward refusing the batch: say which
                exc.add_note(f"(raised on batch {i} of batches, {describe_inputs(batch)}: each batch must "
                             "be inputs the model accepts, or (inputs, targets) when the criterion reads "
                             "gradients)")
                raise
            if log is not None:
                log(f"prune_once: batch {i} collected ({chosen.name})")
        rankings = rank_groups(chosen, groups, log=log, what="prune_once")
    finally:
        chosen.close()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    result = make_plan(groups, cost, rankings, target, metric=metric, options=plan or PlanOptions())
    prune_channels(groups, result.remove)
    if log is not None:
        log(f"prune_once: {result.summary().splitlines()[0]}")
    return result


def _observe(model: nn.Module, criterion: Criterion, batch: Any, loss_fn: Callable[[Any, Any], Any] | None) -> None:
    """One collection batch: a forward pass, and a backward pass when gradients are read."""
    inputs, targets = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) and len(batch) == 2 else (batch, None)
    if not criterion.needs_gradients:
        with torch.no_grad():
            model(inputs)
        return
    if targets is None:
        raise ValueError(f"criterion {criterion.name!r} reads gradients: batches must be (inputs, targets) pairs")
    model.zero_grad(set_to_none=True)
    assert loss_fn is not None
    loss_fn(model(inputs), targets).backward()
    criterion.observe()
