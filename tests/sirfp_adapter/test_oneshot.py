"""One-shot pruning (`prune_once`) and SIRFP inside Torch-Pruning's MetaPruner."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tp = pytest.importorskip("torch_pruning")

from sirfp_adapter.cost import count_flops  # noqa: E402
from sirfp_adapter.criteria import SIRFP  # noqa: E402
from sirfp_adapter.criteria.interop import SIRFPImportance  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402
from sirfp_adapter.oneshot import prune_once  # noqa: E402
from tests.sirfp_adapter.pruning_helpers import inputs, lite, resnet  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def bn_stats(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("criterion", ["sirfp", "l1", "taylor", "sirfp-released"])
def test_prune_once_meets_the_target_and_leaves_batchnorm_statistics_alone(criterion):
    model, x = resnet(), inputs()
    model.train()
    stats = bn_stats(model)
    base = count_flops(model, x)
    batches = [(inputs(10 + i), torch.zeros(2, dtype=torch.long)) for i in range(3)]

    def loss_fn(out, y):
        return out.square().mean()

    plan = prune_once(model, x, batches, criterion=criterion, flops_reduction=0.5, loss_fn=loss_fn)
    achieved = 1 - count_flops(model, x) / base
    assert achieved == pytest.approx(plan.flops_reduction, abs=1e-12)
    assert 0.49 <= achieved <= 0.5 + 1e-9
    assert model.training  # mode restored
    assert not any(m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    after = bn_stats(model)
    for k, v in after.items():  # surviving channels keep their running statistics
        if v.dim() == 0:
            assert torch.equal(v, stats[k])
    assert torch.isfinite(model(x)).all()


def test_prune_once_refuses_gradient_criteria_without_a_loss_and_needs_batches_for_sirfp():
    model, x = lite(), inputs()
    with pytest.raises(ValueError, match=re.escape("criterion 'taylor' reads gradients: give loss_fn=")):
        prune_once(model, x, [x], criterion="taylor", flops_reduction=0.5)
    with pytest.raises(RuntimeError, match="sirfp: no redundancy statistics yet: run forward passes before pruning"):
        prune_once(model, x, [], criterion=SIRFP("js", budget=None), flops_reduction=0.5)
    assert not any(m._forward_hooks for m in model.modules())
    plan = prune_once(model, x, [], criterion="l1", flops_reduction=0.3)  # weights only: no batches needed
    assert 0.29 <= plan.flops_reduction <= 0.3


@pytest.mark.parametrize(("changes", "message"), [
    ({"batches": None}, "batches must be an iterable of input tensors or (inputs, targets) pairs, got NoneType"),
    ({"batches": inputs(1, batch=4)},
     "batches must be an iterable of batches (a list or a DataLoader), not one tensor, whose iteration yields "
     "single samples: pass [inputs] for one batch"),
    ({"log": "print"}, "log must be a callable (called with one str per line of progress) "
                       "or None, got str 'print'"),
    ({"loss_fn": 3, "criterion": "taylor"}, "loss_fn must be a callable (loss_fn(outputs, targets) -> loss) or "
                                            "None, got int 3"),
])
def test_prune_once_refuses_bad_batches_log_and_loss_fn_before_touching_the_model(changes, message):
    """A non-callable ``log`` used to raise after the channels were removed, losing the plan."""
    model, x = lite(), inputs()
    before = copy.deepcopy(model.state_dict())
    kwargs = {"batches": [x], "criterion": "l1", "flops_reduction": 0.3, **changes}
    with pytest.raises(TypeError) as info:
        prune_once(model, x, **kwargs)
    assert str(info.value) == message
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


def test_prune_once_on_only_non_finite_batches_says_so():
    """It used to say "run forward passes before pruning" after two forward passes."""
    model, x = lite(), inputs()
    nan = torch.full_like(x, float("nan"))
    with pytest.warns(RuntimeWarning, match="skipped batches with non-finite activations"), \
            pytest.raises(RuntimeError) as info:
        prune_once(model, x, [nan, nan], criterion=SIRFP("js", budget=None), flops_reduction=0.5)
    assert str(info.value) == ("sirfp: no redundancy statistics: all 2 measured batches had non-finite "
                               "activations (NaN or inf) and were skipped; check the inputs and the weights")
    assert not any(m._forward_hooks for m in model.modules())



def test_a_batch_the_model_refuses_is_named_and_the_model_left_clean():
    model, x = lite(), inputs()
    before = copy.deepcopy(model.state_dict())
    bad = inputs()[:, :2]  # two channels where the model takes three
    with pytest.raises(RuntimeError) as info:
        prune_once(model, x, [x, bad], flops_reduction=0.5)
    assert info.value.__notes__ == [
        "(raised on batch 2 of batches, a torch.float32 tensor of shape (2, 2, 32, 32) on cpu: each batch must be "
        "inputs the model accepts, or (inputs, targets) when the criterion reads gradients)"]
    assert not any(m._forward_hooks for m in model.modules()) and model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_model_with_no_prunable_group_says_so():
    """Every prunable layer ignored: SIRFP used to say "the model has no BatchNorm2d layer;
    name the layers to watch" (it has, and prune_once takes no layers), and a baseline's
    plan blamed min_keep and round_to."""
    from tests.sirfp_adapter.pruning_helpers import depthwise

    model, x = depthwise(), inputs()
    with pytest.raises(ValueError) as info:
        prune_once(model, x, [x], flops_reduction=0.5, ignored_layers=["stem", "pw"])
    assert str(info.value) == ("sirfp: the model has no prunable channel group to rank: every layer that could be "
                               "pruned is an output layer, ignored or left out (ignored: ['classifier', 'pw', "
                               "'stem'])")
    assert not any(m._forward_hooks for m in model.modules())
    plan = prune_once(model, x, [], criterion="l1", flops_reduction=0.5, ignored_layers=["stem", "pw"])
    assert plan.remove == {} and plan.notes == (
        "target not reached: 0.00% < 50.0% — the model has no prunable channel group (every layer that could be "
        "pruned is an output layer, ignored or left out)",)


def test_sirfp_importance_drives_metapruner_and_chooses_the_projects_channels():
    model, x = lite(), inputs()
    model.eval()
    imp = SIRFPImportance(model, x, SIRFP("js", budget=None), training_only=False)
    with torch.no_grad():
        for i in range(3):
            model(inputs(20 + i))
    imp.close()  # statistics stay; MetaPruner's own tracing pass must not be collected
    groups = imp.groups
    ours = {g.name: imp.criterion.rank(g) for g in groups}
    names = {m: n for n, m in model.named_modules()}
    ignored = [dict(model.named_modules())[n] for n in groups.ignored]
    pruner = tp.pruner.MetaPruner(model, x, importance=imp, pruning_ratio=0.4, global_pruning=True,
                                  ignored_layers=ignored)
    removed = {}
    for group in pruner.step(interactive=True):
        removed[names[group[0].dep.target.module]] = sorted(int(i) for i in group[0].idxs)
        group.prune()
    assert removed, "MetaPruner removed nothing"
    for name, channels in removed.items():
        expected = sorted(int(c) for c in ours[name].order[: len(channels)])
        assert channels == expected, name
    assert not any(m._forward_hooks for m in model.modules())
    assert torch.isfinite(model(x)).all()
    assert count_flops(model, x) < count_flops(lite(), x)


def test_prune_once_reports_progress_to_the_log_callback():
    model, x = resnet(), inputs()
    lines: list[str] = []
    plan = prune_once(model, x, [inputs(10 + i) for i in range(3)], criterion=SIRFP("gram", budget=None),
                      flops_reduction=0.4, log=lines.append)
    assert lines[:3] == [f"prune_once: batch {i} collected (sirfp)" for i in (1, 2, 3)]
    assert lines[3:] == [f"prune_once: {plan.summary().splitlines()[0]}"]
    assert len(lines) == 4 and "achieved" in lines[3]


def test_a_long_ranking_reports_its_progress_to_the_log(monkeypatch):
    """A measured budget on a large network ranks for minutes: the log hears of it."""
    monkeypatch.setattr("sirfp_adapter.schedule.RANK_LOG_SECONDS", 0.0)  # every group counts as slow
    model, x = resnet(), inputs()
    lines: list[str] = []
    prune_once(model, x, [inputs(10 + i) for i in range(2)], criterion=SIRFP("gram", budget=None),
               flops_reduction=0.4, log=lines.append)
    n = len(ChannelGroups.build(resnet(), x))
    ranked = [line for line in lines if "groups ranked" in line]
    assert [re.sub(r" \(\d+ s\)$", "", line) for line in ranked] == \
        [f"prune_once: {i} of {n} groups ranked" for i in range(1, n + 1)]
    assert lines.index(ranked[0]) == 2 and lines.index(ranked[-1]) == len(lines) - 2  # after collection, before the plan
