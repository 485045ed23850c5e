"""The progressive pruner: targets, schedule, option errors, checkpoints."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from sirfp_adapter.cost import count_flops, count_params  # noqa: E402
from sirfp_adapter.criteria import CRITERIA, SIRFP  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402
from sirfp_adapter.plan import PlanOptions  # noqa: E402
from sirfp_adapter.schedule import SIRFPPruner  # noqa: E402
from tests.sirfp_adapter.pruning_helpers import (  # noqa: E402
    MODELS,
    inputs,
    lite,
    prune_with,
    resnet,
    train,
    train_passes,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TARGETS = [0.3, 0.6, 0.8]

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("criterion", ["sirfp", "l1"])
@pytest.mark.parametrize("name", list(MODELS))
def test_flops_target_is_met_within_one_percent(name, criterion, target):
    model, x = MODELS[name](), inputs()
    base = count_flops(model, x)
    pruner, plan = prune_with(model, target, criterion=criterion)
    pruner.finalize()
    achieved = 1 - count_flops(model, x) / base
    assert achieved == pytest.approx(plan.flops_reduction, abs=1e-12)
    assert target - 0.01 <= achieved <= target + 1e-9
    assert pruner.report() == {"flops": float(count_flops(model, x)), "params": float(count_params(model))}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(MODELS))
def test_uniform_mode_never_exceeds_the_target(name, target):
    model, x = MODELS[name](), inputs()
    base = count_flops(model, x)
    pruner, plan = prune_with(model, target, criterion="l1", mode="uniform")
    pruner.finalize()
    achieved = 1 - count_flops(model, x) / base
    assert achieved == pytest.approx(plan.flops_reduction, abs=1e-12)
    assert target - 0.05 <= achieved <= target + 1e-9


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(MODELS))
def test_params_target(name, target):
    model, x = MODELS[name](), inputs()
    base = count_params(model)
    pruner, plan = prune_with(model, target, metric="params")
    assert plan.metric == "params" and plan.achieved == plan.params_reduction
    pruner.finalize()
    achieved = 1 - count_params(model) / base
    assert achieved == pytest.approx(plan.params_reduction, abs=1e-12)
    assert target - 0.01 <= achieved <= target + 1e-9


def test_min_keep_and_round_to_reach_the_pruned_model():
    model, x = lite(), inputs()
    sizes = {g.name: g.size for g in ChannelGroups.build(model, x)}
    pruner, plan = prune_with(model, 0.8, min_keep=0.5, round_to=4)
    pruner.finalize()
    kept = {g.name: g.size for g in ChannelGroups.build(model, x)}
    assert kept == plan.keep
    for name, size in sizes.items():
        assert kept[name] >= math.ceil(0.5 * size)
        assert kept[name] % 4 == 0 or kept[name] == size


@pytest.mark.parametrize("criterion", [c for c in CRITERIA if c not in ("sirfp", "l1")])
def test_every_baseline_runs_through_the_pruner(criterion):
    model, x = resnet(), inputs()
    base = count_flops(model, x)
    pruner = SIRFPPruner(model, x, flops_reduction=0.5, interval=2, criterion=criterion)
    plans = train(model, pruner, 2)  # SGD moves the BatchNorm scales off their initial 1.0
    assert len(plans) == 1
    plan = plans[0]
    pruner.finalize()
    achieved = 1 - count_flops(model, x) / base
    assert achieved == pytest.approx(plan.flops_reduction, abs=1e-12)
    assert 0.45 <= achieved <= 0.5 + 1e-9
    assert torch.isfinite(model(x)).all()



# ---------------------------------------------------------------------------
# the progressive schedule
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_schedule_prunes_progressively_and_never_overshoots(name):
    model, x = MODELS[name](), inputs()
    base = count_flops(model, x)
    target, steps = 0.6, 3
    pruner = SIRFPPruner(model, x, flops_reduction=target, steps=steps, interval=2)
    counts = [pruner.masks.removed()]
    plans = []
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    for i in range(8):
        loss = model(inputs(50 + i)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        plan = pruner.step()
        if (i + 1) % 2 or i >= 6:
            assert plan is None
            continue
        plans.append(plan)
        t = len(plans)
        assert plan.target == pytest.approx(target * t / steps)
        assert plan.flops_reduction <= target * t / steps + 1e-9
        counts.append(pruner.masks.removed())
        assert np.all(counts[-1] >= counts[-2]) and counts[-1].sum() > counts[-2].sum()
        predicted = pruner.predicted()
        assert predicted["flops"] == plan.flops and predicted["flops_base"] == base
    assert pruner.done and len(pruner.history) == steps and pruner.iteration == 6
    assert [p.flops_reduction for p in plans] == sorted(p.flops_reduction for p in plans)
    with pytest.raises(RuntimeError, match="all 3 pruning steps have been taken"):
        pruner.prune_step()
    pruner.finalize()
    achieved = 1 - count_flops(model, x) / base
    assert achieved == pytest.approx(plans[-1].flops_reduction, abs=1e-12) and achieved <= target + 1e-9
    assert pruner.planning_time == pytest.approx(sum(p.planning_time for p in plans))


def test_pruning_before_statistics_is_refused_and_close_removes_every_hook():
    model, x = lite(), inputs()
    pruner = SIRFPPruner(model, x, flops_reduction=0.5, interval=5)
    message = "no redundancy statistics yet: run training iterations before pruning"
    with pytest.raises(RuntimeError, match=message):
        pruner.prune_step()
    pruner.close()
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("end", ["close", "finalize"])
def test_a_second_pruner_on_a_model_with_an_open_one_is_refused(end):
    model, x = lite(), inputs()
    first = SIRFPPruner(model, x, flops_reduction=0.5, criterion="l1")
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    with pytest.raises(ValueError, match=r"^model already has an open SIRFPPruner: two would stack their hooks "
                                         r"and masks; close\(\) or finalize\(\) that one first$"):
        SIRFPPruner(model, x, flops_reduction=0.5, criterion="l1")
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks  # the refused one left nothing
    getattr(first, end)()
    SIRFPPruner(model, x, flops_reduction=0.5, criterion="l1").close()  # allowed once the first has ended



# option errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "give exactly one of flops_reduction and params_reduction"),
        ({"flops_reduction": 0.5, "params_reduction": 0.5}, ValueError,
         "give exactly one of flops_reduction and params_reduction"),
        ({"flops_reduction": 1.0}, ValueError, r"flops_reduction must be a number in \(0, 1\), got 1.0"),
        ({"flops_reduction": 0.0}, ValueError, r"flops_reduction must be a number in \(0, 1\), got 0.0"),
        ({"flops_reduction": True}, ValueError, r"flops_reduction must be a number in \(0, 1\), got True"),
        ({"params_reduction": 1.5}, ValueError, r"params_reduction must be a number in \(0, 1\), got 1.5"),
        ({"flops_reduction": 0.5, "steps": 0}, ValueError, "steps must be a positive integer, got 0"),
        ({"flops_reduction": 0.5, "steps": 2.0}, ValueError, "steps must be a positive integer, got 2.0"),
        ({"flops_reduction": 0.5, "interval": 0}, ValueError, "interval must be a positive integer, got 0"),
        ({"flops_reduction": 0.5, "criterion": "hrank"}, ValueError,
         re.escape(f"criterion must be a Criterion or one of {tuple(CRITERIA)}, got 'hrank'")),
        ({"flops_reduction": 0.5, "ignored_layers": ["nope"]}, ValueError,
         "ignored_layers: 'nope' is not a module of the model"),
        ({"flops_reduction": 0.5, "log": "print"}, TypeError,  # used to raise at the first pruning step
         re.escape("log must be a callable (called with one str per line of progress) or None, got str 'print'")),
    ],
)
def test_pruner_option_errors(kwargs, error, match):
    model = lite()
    with pytest.raises(error, match=match):
        SIRFPPruner(model, inputs(), **kwargs)
    assert not any(m._forward_hooks for m in model.modules())


def test_sirfp_refuses_an_unknown_measure():
    with pytest.raises(ValueError, match="unknown measure 'cosine'"):
        SIRFP("cosine")


def test_a_refused_measure_leaves_no_hooks():
    model = lite()
    with pytest.raises(ValueError, match="unknown measure 'cosine'"):
        SIRFPPruner(model, inputs(), flops_reduction=0.5, criterion=SIRFP("cosine"))
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_keep": 0}, r"min_keep must be a fraction in \[0, 1\] or a channel count >= 1, got 0"),
        ({"min_keep": 1.5}, r"min_keep must be a fraction in \[0, 1\] or a channel count >= 1, got 1.5"),
        ({"round_to": 0}, "round_to must be an integer >= 1, got 0"),
        ({"mode": "layerwise"}, "mode must be 'global' or 'uniform', got 'layerwise'"),
        ({"method": "nope"}, "method must be one of"),
    ],
)
def test_pruner_checks_planning_options_up_front(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SIRFPPruner(lite(), inputs(), flops_reduction=0.5, criterion="l1", plan=PlanOptions(**kwargs))



def test_tied_scores_still_reach_the_target():
    model, x = resnet(), inputs()
    pruner = SIRFPPruner(model, x, flops_reduction=0.5, interval=1, criterion="bn_scale")
    plan = pruner.step()
    assert 0.49 <= plan.flops_reduction <= 0.5


@pytest.mark.parametrize("criterion", ["sirfp", "taylor"])
def test_a_pruner_resumes_from_its_state_dict(criterion, tmp_path):
    import copy

    model, x = lite(), inputs()
    first = SIRFPPruner(model, x, flops_reduction=0.6, steps=3, interval=2, criterion=criterion)
    train(model, first, 3)
    assert first.completed == 1
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "pruner": first.state_dict()}, path)
    twin = copy.deepcopy(model)
    first.close()
    saved = torch.load(path, weights_only=True)
    twin.load_state_dict(saved["model"])
    second = SIRFPPruner(twin, x, flops_reduction=0.6, steps=3, interval=2, criterion=criterion)
    second.load_state_dict(saved["pruner"])
    assert (second.iteration, second.completed) == (3, 1)
    assert all(np.array_equal(second.masks.active[k], v) for k, v in first.masks.active.items())
    if criterion == "sirfp":
        a, b = first.criterion.collector.matrices(), second.criterion.collector.matrices()
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    other = SIRFPPruner(lite(), x, flops_reduction=0.6, criterion="l1")
    with pytest.raises(ValueError, match=f"saved by a pruner with criterion '{criterion}', this one uses 'l1'"):
        other.load_state_dict(saved["pruner"])


@pytest.mark.parametrize(("change", "error", "message"), [
    (None, TypeError, "state must be a mapping from SIRFPPruner.state_dict(), got NoneType"),
    ({"masks": None, "statistics": None}, ValueError,
     "state must be a mapping from SIRFPPruner.state_dict(); it lacks ['masks', 'statistics']"),
    ({"completed": -5}, ValueError, "state['completed'] must be an int from 0 to steps=3, got -5"),
    ({"completed": 4}, ValueError, "state['completed'] must be an int from 0 to steps=3, got 4"),
    ({"completed": 1.5}, ValueError, "state['completed'] must be an int from 0 to steps=3, got 1.5"),
    ({"iteration": "abc"}, ValueError, "state['iteration'] must be an int from 0, got 'abc'"),
    ({"iteration": True}, ValueError, "state['iteration'] must be an int from 0, got True"),
    ({"statistics": {"bogus": 1}}, ValueError, None),  # the criterion's own refusal
])
def test_a_bad_pruner_state_is_refused_and_nothing_is_loaded(change, error, message):
    """A negative ``completed`` used to be taken: the next step then planned a negative target."""
    model, x = lite(), inputs()
    first = SIRFPPruner(model, x, flops_reduction=0.6, steps=3, interval=1, criterion="taylor")
    train(model, first, 1)
    state = first.state_dict()
    first.close()
    second = SIRFPPruner(lite(), x, flops_reduction=0.6, steps=3, interval=1, criterion="taylor")
    before = {k: v.copy() for k, v in second.masks.active.items()}
    bad = None if change is None else {k: v for k, v in {**state, **change}.items() if v is not None}
    with pytest.raises(error) as info:
        second.load_state_dict(bad)
    if message is not None:
        assert str(info.value) == message
    assert (second.iteration, second.completed) == (0, 0)
    assert all(np.array_equal(second.masks.active[k], v) for k, v in before.items())
    second.load_state_dict({**state, "completed": torch.tensor(1)})  # an int tensor is an int
    assert (second.iteration, second.completed) == (1, 1)


def test_stats_report_the_statistics_time_per_iteration():
    from sirfp_adapter.criteria import SIRFP
    from sirfp_adapter.schedule import SIRFPPruner
    from tests.sirfp_adapter.pruning_helpers import inputs, lite

    model, x = lite(), inputs()
    pruner = SIRFPPruner(model, x, criterion=SIRFP("js", every=2, budget=None), flops_reduction=0.3, steps=1,
                         interval=4)
    assert pruner.stats()["statistics_s"] == 0.0
    model.train()
    for i in range(3):
        model(inputs(20 + i))
        pruner.step()
    stats = pruner.stats()
    assert stats["iterations"] == 3 and stats["collector_s"] > 0 and stats["observe_s"] >= 0
    assert stats["statistics_s"] == stats["collector_s"] + stats["observe_s"]
    assert stats["statistics_s_per_iteration"] == stats["statistics_s"] / 3
    measured = stats["collector_s"]
    model.eval()
    model(inputs(30))  # eval-mode passes are not measured
    assert pruner.stats()["collector_s"] == measured


def test_the_log_hears_of_each_step_and_of_a_long_ranking(monkeypatch):
    monkeypatch.setattr("sirfp_adapter.schedule.RANK_LOG_SECONDS", 0.0)  # every group counts as slow
    model, x = lite(), inputs()
    lines: list[str] = []
    pruner = SIRFPPruner(model, x, criterion=SIRFP("gram", budget=None), flops_reduction=0.5, steps=2,
                         interval=1, log=lines.append)
    n = len(pruner.groups)
    train_passes(model, 1)
    pruner.step()
    train_passes(model, 1, seed=5)
    pruner.step()
    for step in (1, 2):
        ranked = [re.sub(r" \(\d+ s\)$", "", line) for line in lines if line.startswith(f"step {step}/2: ")]
        assert ranked == [f"step {step}/2: {i} of {n} groups ranked" for i in range(1, n + 1)]
    summaries = [line for line in lines if line.startswith(("step 1/2 at iteration 1: ", "step 2/2 at iteration 2: "))]
    assert len(summaries) == 2 and len(lines) == 2 * n + 2
