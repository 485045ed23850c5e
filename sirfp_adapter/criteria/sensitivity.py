"""A measured budget: how far the network's output moves when a group loses channels.

``Sensitivity`` answers *how many* channels each group may lose, never *which*: another
criterion gives the order (SIRFP's EHGP order with ``SIRFP(budget=Sensitivity())``, or
``Sensitivity(order=L1())`` on its own), and the ``t``-th removal of a group is scored by
the output distortion measured when the group loses its first ``t`` channels in that
order. Each removal is priced by the distortion it adds per FLOP it saves, and one global
threshold on these prices buys the FLOPs target where it is cheapest in distortion:
layers that matter keep their channels, whatever the scale of the criterion that orders
them, and a layer that saves many FLOPs per channel pays for them first
(``allocation="level"``: every group is pruned until its own distortion reaches the same
level, Li et al.'s rule, which measured worse).

Notes
-----
For a group with ``a`` active channels in removal order ``c_1, ..., c_a``, the distortion
of removing the first ``t`` is

.. math:: D(t) = \\frac{1}{|X|} \\sum_{x \\in X} \\operatorname{mean}_{p}
   \\mathrm{KL}\\big(\\sigma(f(x))_p \\,\\|\\, \\sigma(f_{-\\{c_1..c_t\\}}(x))_p\\big),

the Kullback–Leibler divergence between the dense and the masked network's class
distributions (softmax over dimension 1 of the output logits) averaged over output
positions ``p`` and the recorded inputs ``X`` (the most recent training inputs, at most
``samples`` of them), with the model in eval mode. ``D`` is measured at ``points`` counts
spread evenly over ``1..a`` and interpolated linearly in between (from ``D(0) = 0``), then
made non-decreasing. This is sensitivity analysis in the sense of Li et al. ("Pruning
Filters for Efficient ConvNets", ICLR 2017, Sec. 3.3: prune each layer alone and measure),
made label-free and automatic: no labels, no per-layer ratios chosen by hand.

With ``allocation="per_flop"`` (the default) the ``t``-th removal is priced at the slope
of the lower convex hull of the points ``(S(t_j), D(t_j))``, where ``S(t)`` is the FLOPs
that removing ``t`` channels of this group alone saves (the cost model, on one recorded
input) and ``t_j`` are the measured counts (`hull_rates`). A global threshold ``λ`` on
these slopes removes, in every group, the channels whose marginal distortion per FLOP is
at most ``λ``: the greedy solution of minimising ``Σ_g D_g(t_g)`` subject to
``Σ_g S_g(t_g) ≥`` the target, exact for the convex hull of each ``D_g`` (a separable
convex knapsack), and treating the groups' distortions as additive.

Cost: ``points`` forward passes over ``samples`` inputs per group and pruning step
(``allocation="per_flop"`` adds, once, the cost model's trace: two passes of one input). With
``replay=True`` (the default) only the first of them runs the module calls that finish
before the group's first layer is called; the others replay their stored outputs
(`sirfp_adapter.replay`: exact, checked once against a full pass), and a group whose
prefix starts after the previous group's replays that group's store, so the prefixes of
all groups together cost about one forward pass per step. A group deep in the network is
measured for little more than the layers after it.

Sizing by the model's cost: with ``max_passes=M`` the measuring work of one pruning step,
counted in single-image forward passes (an upper bound: the replay makes each cheaper), is
``groups * points * samples``; when that exceeds ``M`` the sizes are lowered when the
criterion is attached (`fitted_sizes`): ``points = floor(points0 * sqrt(q))`` with
``q = M / (groups * points0 * samples0)``, at least 2 (the curve keeps a midpoint), then
``samples = floor(M / (groups * points))`` between 1 and ``samples0``, then
``points = floor(M / (groups * samples))`` between 2 and ``points0``: neither can grow
by one and still fit. Both fall by about ``sqrt(q)``, so their ratio is kept; with very
many groups the floor (2 points, 1 sample) can exceed ``M``. Without ``max_passes`` (the
default) the sizes are as given.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sirfp_adapter.apply import ChannelMasks
from sirfp_adapter.cost import CostModel
from sirfp_adapter.criteria.base import Criterion
from sirfp_adapter.criteria.importance import L1
from sirfp_adapter.groups import ChannelGroup
from sirfp_adapter.plan import Ranking
from sirfp_adapter.replay import PrefixReplay

__all__ = ["ALLOCATIONS", "Sensitivity", "fitted_sizes", "hull_rates", "output_logits"]

Allocation = Literal["per_flop", "level"]
#: how the budget prices a removal: distortion per FLOP saved (default), or distortion itself
ALLOCATIONS: tuple[Allocation, ...] = ("per_flop", "level")


def output_logits(output: Any) -> torch.Tensor:
    """The logits in a model's output: the tensor itself, a dict's ``"out"`` (torchvision
    segmentation models), or the first tensor of a tuple or list."""
    if isinstance(output, Mapping):
        output = output["out"] if "out" in output else next(iter(output.values()))
    elif isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor) or output.dim() < 2:
        raise ValueError("sensitivity: the model's output must hold logits of shape (B, classes, ...), got "
                         f"{type(output).__name__}{'' if not isinstance(output, torch.Tensor) else tuple(output.shape)}")
    return output


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


#: Fewest removal counts `fitted_sizes` measures per group: the curve keeps a midpoint.
MIN_POINTS = 2


def fitted_sizes(samples: int, points: int, groups: int, max_passes: int | None) -> tuple[int, int]:
    """``(samples, points)`` lowered so that ``groups * points * samples <= max_passes``
    where the floor allows (see the module Notes); unchanged when they fit or
    ``max_passes`` is None."""
    if max_passes is None or groups * points * samples <= max_passes:
        return samples, points
    share = max_passes / max(groups, 1)  # points * samples per group
    fitted_points = min(points, max(MIN_POINTS, math.floor(points * math.sqrt(share / (points * samples)))))
    fitted_samples = min(samples, max(1, math.floor(share / fitted_points)))
    fitted_points = min(points, max(MIN_POINTS, math.floor(share / fitted_samples)))
    return fitted_samples, fitted_points


class Sensitivity(Criterion):
    """Budget from measured output distortion; channel order from another criterion.

    Parameters
    ----------
    order : Criterion, optional
        Orders each group's channels when this criterion ranks on its own (default
        ``L1()``); as SIRFP's ``budget=`` the order is SIRFP's.
    samples : int
        Inputs to measure on: the most recent ones seen in forward passes.
    points : int
        Removal counts measured per group (linear interpolation in between).
    replay : bool
        Replay the unchanged module calls before each group instead of recomputing them
        (the same scores; ``False``: every measuring pass in full).
    allocation : {"per_flop", "level"}
        ``"per_flop"``: the ``t``-th removal is scored by the distortion it adds per FLOP
        it saves (slopes of the lower convex hull of ``(FLOPs saved, D)``), so one
        threshold equalises the marginal price of a FLOP across groups (measured best).
        ``"level"``: it is scored by ``D(t)``, so one threshold prunes every group to the
        same distortion. ``"per_flop"`` prices FLOPs also when the plan's target is
        parameters.
    max_passes : int, optional
        At most this many single-image forward passes per pruning step
        (``groups * points * samples``): larger sizes are lowered to fit when the
        criterion is attached (`fitted_sizes`; ``sizes`` then holds the ones used).
        ``None`` (default): ``samples`` and ``points`` as given.

    Examples
    --------
    >>> from sirfp_adapter.criteria import SIRFP, Sensitivity
    >>> SIRFP(budget=Sensitivity(samples=8))  # doctest: +ELLIPSIS
    SIRFP(measure='js', ..., budget=Sensitivity(order=L1(), samples=8, points=8, replay=True))
    """

    name = "sensitivity"
    watches_activations = True  # it records the model's inputs

    def __init__(self, order: Criterion | None = None, *, samples: int = 16, points: int = 8,
                 replay: bool = True, allocation: Allocation = "per_flop",
                 max_passes: int | None = None) -> None:
        if order is not None and (not isinstance(order, Criterion) or isinstance(order, Sensitivity)):
            raise ValueError(f"order must be a Criterion other than Sensitivity, got {order!r}")
        self.order = order if order is not None else L1()
        self.samples = _positive_int(samples, "samples")
        self.points = _positive_int(points, "points")
        self.max_passes = None if max_passes is None else _positive_int(max_passes, "max_passes")
        self.sizes = (self.samples, self.points)  # (samples, points) measured: fitted to max_passes at attach
        if allocation not in ALLOCATIONS:
            raise ValueError(f"allocation must be 'per_flop' or 'level', got {allocation!r}")
        self.allocation: Allocation = allocation
        self._cost: CostModel | None = None
        self.needs_gradients = self.order.needs_gradients
        self._inputs: list[tuple[Any, ...]] = []
        self._reference: list[torch.Tensor] | None = None
        self._measuring = False
        self._handle: Any = None
        self.replay = replay
        self._replay: PrefixReplay | None = None
        self._carry: tuple[list[Any], list[dict[tuple[str, int], Any] | None]] | None = None
        self._verified = False

    # ------------------------------------------------------------------ binding
    def _attach(self, training_only: bool) -> None:
        self.order.attach(self.model, self.groups, training_only=training_only)
        self.sizes = fitted_sizes(self.samples, self.points, len(self.groups), self.max_passes)
        self._replay = PrefixReplay(self.model)
        self._cost = None

        def record(module: nn.Module, args: tuple[Any, ...]) -> None:
            if self._measuring or (training_only and not module.training):
                return
            self._record(args)

        self._handle = self.model.register_forward_pre_hook(record)

    def _record(self, args: tuple[Any, ...]) -> None:
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if first is None or first.dim() == 0:
            return
        rows = min(int(first.shape[0]), self.sizes[0])
        batch = tuple(a[:rows].detach().clone() if isinstance(a, torch.Tensor) and a.dim() > 0 else a
                      for a in args)
        self._inputs.append(batch)
        while sum(_rows(b) for b in self._inputs) - _rows(self._inputs[0]) >= self.sizes[0]:
            self._inputs.pop(0)
        self._reference = None  # the weights may have changed since the last measurement

    def observe(self) -> None:
        self.order.observe()

    def check_ready(self) -> None:
        if not self._inputs:
            raise RuntimeError(f"{self.name}: no inputs recorded yet: run forward passes before pruning")
        self.order.check_ready()

    # ------------------------------------------------------------------ decision
    def rank(self, group: ChannelGroup, active: np.ndarray | None = None) -> Ranking:
        ranking = self.order.rank(group, active)
        scores = self.budget_scores(group, ranking.order, active)
        return Ranking(ranking.order, np.where(np.isfinite(ranking.scores), scores, np.inf), ranking.matrix)

    def budget_scores(self, group: ChannelGroup, order: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        a = int(order.size)
        if a == 0:
            return np.zeros(0)
        most = min(a, group.size - 1)  # a group is never emptied (the plan's floor keeps one at least)
        counts = np.unique(np.linspace(0, most, self.sizes[1] + 1).round().astype(np.int64)[1:])
        counts = counts[counts > 0]
        if counts.size == 0:  # a one-channel group: nothing may go
            return np.full(a, np.inf)
        measured = self._mean_over_ranks(self._distortions(group, order, counts))
        if self.allocation == "per_flop":
            return self._per_flop(group, a, counts, np.maximum.accumulate(measured))
        return np.maximum.accumulate(np.interp(np.arange(1, a + 1), np.r_[0, counts], np.r_[0.0, measured]))

    def _mean_over_ranks(self, measured: list[float]) -> np.ndarray:
        """``measured`` as an array; under ``torch.distributed``, its mean over the ranks.

        Each rank measures the distortion on its own recorded training inputs, so without
        this the ranks' budgets, and so their plans, would differ. Every rank plans the same
        groups in the same order (the collector's graphs are all-reduced), so each call is
        matched by the same call on every other rank.
        """
        values = np.asarray(measured, dtype=np.float64)
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return values
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))  # where the backend reduces
        total = torch.as_tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
        return (total / torch.distributed.get_world_size()).cpu().numpy()

    def _per_flop(self, group: ChannelGroup, a: int, counts: np.ndarray, measured: np.ndarray) -> np.ndarray:
        cost = self._cost_model()
        g = self.groups.index(group.name)
        removed = np.zeros((a + 1, len(self.groups)))
        removed[:, g] = np.arange(a + 1)
        return hull_rates(cost.flops_base - cost.flops_many(removed), counts, measured)

    def _cost_model(self) -> CostModel:
        if self._cost is None:
            first = self._inputs[0]
            example = tuple(a[:1] if isinstance(a, torch.Tensor) and a.dim() > 0 else a for a in first)
            self._measuring = True
            try:
                self._cost = CostModel(self.model, example, self.groups)
            finally:
                self._measuring = False
        return self._cost

    @torch.no_grad()
    def _distortions(self, group: ChannelGroup, order: np.ndarray, counts: np.ndarray) -> list[float]:
        """The distortion of removing ``order[:t]`` for each ``t`` in ``counts`` (increasing):
        one set of masks, each prefix masked on top of the previous one; the module calls
        that finish before the group's first layer runs are computed on the first count
        only and replayed on the others (`sirfp_adapter.replay`)."""
        was_training = self.model.training
        self._measuring = True
        masks = ChannelMasks(self.model, self.groups)
        try:
            self.model.eval()
            reference = self._references()
            replay, layers = self._replayer(), {m.name for m in group.producers}
            # stored once per recorded batch, beside the previous group's stores
            calls = replay.prefix(layers, copies=2 * len(self._inputs)) if self.replay else []
            carry = self._carry[1] if calls and self._carry is not None \
                and replay.ends_before(self._carry[0], layers) else None
            stores: list[dict[tuple[str, int], Any] | None] = [None] * len(self._inputs)
            measured, done = [], 0
            for t in counts:
                masks.remove_channels({group.name: order[done:t]})
                done = int(t)
                total = 0.0
                for j, (batch, ref) in enumerate(zip(self._inputs, reference, strict=True)):
                    output, stores[j] = self._forward(batch, calls, stores[j], carry[j] if carry else None)
                    logp = F.log_softmax(output_logits(output).float(), dim=1)
                    total += float((ref.exp() * (ref - logp)).sum(dim=1).mean()) * _rows(batch)
                measured.append(total / sum(_rows(b) for b in self._inputs))
            if calls and all(s is not None for s in stores):
                self._carry = (calls, stores)
            return measured
        finally:
            masks.remove()
            self.model.train(was_training)
            self._measuring = False

    def _forward(self, batch: tuple[Any, ...], calls: list[Any], store: dict[tuple[str, int], Any] | None,
                 carry: dict[tuple[str, int], Any] | None) -> tuple[Any, dict[tuple[str, int], Any] | None]:
        """``model(*batch)``: with ``calls`` (a prefix) and no ``store`` yet, storing the
        prefix's outputs (replaying ``carry``, an earlier prefix's store, meanwhile);
        with a ``store``, replaying it — checked against a full pass the first time after
        each new recording, and a full pass whenever the replay did not follow the recorded
        calls (then replay is switched off)."""
        replay = self._replayer()
        if not calls or not self.replay:
            return self.model(*batch), None
        if store is None:
            with contextlib.ExitStack() as stack:
                missed = stack.enter_context(replay.replaying(carry)) if carry else [0]
                store = stack.enter_context(replay.capturing(calls))
                output = self.model(*batch)
            if missed[0] or len(store) != len(calls):
                self._replay_failed("the pass did not make the recorded sequence of calls")
                return self.model(*batch), None
            return output, store
        with replay.replaying(store) as missed:
            output = self.model(*batch)
        if missed[0]:
            self._replay_failed("the pass did not make the recorded sequence of calls")
            return self.model(*batch), None
        if not self._verified:
            full = output_logits(self.model(*batch)).float()
            got = output_logits(output).float()
            if not torch.allclose(got, full, rtol=1e-4, atol=1e-6 * max(1.0, float(full.abs().max()))):
                self._replay_failed(f"replayed logits differ from a full pass by {float((got - full).abs().max()):.3g}")
                return self.model(*batch), None
            self._verified = True
        return output, store

    def _replayer(self) -> PrefixReplay:
        if self._replay is None:
            raise RuntimeError(f"{self!r} is not attached to a model: call attach(model, groups) first")
        return self._replay

    def _replay_failed(self, why: str) -> None:
        warnings.warn(f"{self.name}: replaying the unchanged calls is switched off for this model ({why}); "
                      "every measuring pass now runs in full", RuntimeWarning, stacklevel=4)
        self.replay = False
        self._carry = None

    def _references(self) -> list[torch.Tensor]:
        """The unmasked model's log-probabilities on the recorded inputs (cached until new
        inputs; the first pass also records the model's calls for the replay)."""
        if self._reference is None:
            self._carry = None
            self._verified = False
            outputs = [self._replayer().record(*b) if i == 0 and self.replay else self.model(*b)
                       for i, b in enumerate(self._inputs)]
            reference = [F.log_softmax(output_logits(o).float(), dim=1) for o in outputs]
            bad = [j + 1 for j, r in enumerate(reference) if not bool(torch.isfinite(r).all())]
            if bad:  # every distortion would be NaN, and the plan would remove nothing without saying why
                raise RuntimeError(f"{self.name}: the unpruned model's output is not finite (NaN or inf) on recorded "
                                   f"input batch(es) {bad} of {len(reference)}: the distortion of a removal cannot "
                                   f"be measured; check the weights and the inputs")
            self._reference = reference
        return self._reference

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order.state_dict(), "inputs": [list(b) for b in self._inputs]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or set(state) != {"order", "inputs"}:
            raise ValueError(f"{self.name}: state must be a mapping with keys 'inputs' and 'order' (from state_dict())")
        inputs = state["inputs"]
        if not isinstance(inputs, (list, tuple)) or not all(isinstance(b, (list, tuple)) for b in inputs):
            raise ValueError(f"{self.name}: state['inputs'] must be a list of argument lists")
        self.order.load_state_dict(state["order"])
        self._inputs = [tuple(b) for b in inputs]
        self._reference = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.order.close()

    def _options(self) -> dict[str, Any]:
        options = {"order": self.order, "samples": self.samples, "points": self.points, "replay": self.replay}
        if self.allocation != "per_flop":
            options["allocation"] = self.allocation
        if self.max_passes is not None:
            options["max_passes"] = self.max_passes
        return options


def hull_rates(saved: np.ndarray, counts: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Price per unit saved of each removal ``t = 1..len(saved) - 1``.

    ``saved[t]`` is what ``t`` removals save (non-decreasing, ``saved[0] = 0``) and
    ``measured[j]`` the distortion measured at ``counts[j]`` removals. Removal ``t`` is
    priced at the slope of the lower convex hull of ``(0, 0)`` and ``(saved[counts[j]],
    measured[j])`` over the segment that holds ``saved[t]``: non-decreasing in ``t``, and
    a threshold on it is the greedy of the convex relaxation (the knapsack that buys
    savings at the least distortion). Where nothing is saved, or nothing was measured
    (``counts`` empty), the price is infinite.

    >>> saved = np.array([0., 1., 2., 3., 4.])
    >>> hull_rates(saved, np.array([2, 4]), np.array([1., 5.]))  # convex: each segment's own slope
    array([0.5, 0.5, 2. , 2. ])
    >>> hull_rates(saved, np.array([2, 4]), np.array([4., 5.]))  # a jump first: averaged over the hull
    array([1.25, 1.25, 1.25, 1.25])
    """
    if counts.size == 0:
        return np.full(saved.size - 1, np.inf)
    x, y = np.r_[0.0, saved[counts]], np.r_[0.0, measured]
    hull = [0]
    for j in range(1, x.size):
        while len(hull) >= 2 and (y[hull[-1]] - y[hull[-2]]) * (x[j] - x[hull[-2]]) \
                >= (y[j] - y[hull[-2]]) * (x[hull[-1]] - x[hull[-2]]):
            hull.pop()
        hull.append(j)
    hx, hy = x[hull], y[hull]
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.where(np.diff(hx) > 0, np.diff(hy) / np.diff(hx), np.inf)
    segment = np.clip(np.searchsorted(hx, saved[1:], side="left") - 1, 0, slopes.size - 1)
    return np.maximum.accumulate(slopes[segment])


def _rows(batch: tuple[Any, ...]) -> int:
    return int(next(a for a in batch if isinstance(a, torch.Tensor) and a.dim() > 0).shape[0])
