"""``sirfp check``: the dry run (issue 13, item 4) on the built-in DeepLabLite at toy
size: the same checks as ``sirfp prune``, the groups and what is left out, FLOPs and
parameters as counted independently, a plan at the target, the collector's cost."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from sirfp_adapter.cost import count_flops, count_params  # noqa: E402
from sirfp_adapter.demo import experiment  # noqa: E402
from sirfp_adapter.demo.cli import main  # noqa: E402
from sirfp_adapter.demo.models import DeepLabLite  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402

TOY = ["--input-size", "32", "32", "--widths", "4", "8", "8", "8", "--aspp-channels", "4", "--batch-size", "2",
       "--threads", "1"]


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    """A dry run never trains."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(experiment, "train", refuse)


def test_check_reports_groups_flops_plan_and_collector_cost(capsys):
    assert main(["check", *TOY, "--json", "--flops-reduction", "0.5", "--every", "2"]) == 0
    found = json.loads(capsys.readouterr().out)
    model = DeepLabLite(5, (4, 8, 8, 8), aspp_channels=4)
    groups = ChannelGroups.build(model, torch.randn(2, 3, 32, 32))
    assert found["flops"] == count_flops(model, torch.randn(1, 3, 32, 32))
    assert found["params"] == count_params(model)
    assert [(g["name"], g["channels"]) for g in found["groups"]] == [(g.name, g.size) for g in groups]
    assert found["ignored"] == {"classifier": "an output layer: its channels are the network's outputs"}
    assert all(1 <= g["keep"] <= g["channels"] for g in found["groups"])
    assert any(g["keep"] < g["channels"] for g in found["groups"])
    assert 0.49 <= found["predicted"]["flops_reduction"] <= 0.5 + 1e-9
    t = found["timing"]
    assert t["every"] == 2 and t["batch"] == 2 and t["threads"] == 1
    assert t["plain_s"] > 0 and t["measuring_s"] > 0 and t["other_s"] > 0
    assert t["collector_s"] == pytest.approx((t["measuring_s"] + t["other_s"]) / 2)
    assert t["ratio"] == pytest.approx(t["collector_s"] / t["plain_s"])


def test_check_text_names_the_model_and_the_left_out_layers(capsys):
    assert main(["check", *TOY, "--criterion", "l1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    model = DeepLabLite(5, (4, 8, 8, 8), aspp_channels=4)
    flops, params = count_flops(model, torch.randn(1, 3, 32, 32)), count_params(model)
    assert lines[0] == (f"model built-in DeepLabLite, input 3x32x32, 5 classes: {params / 1e6:.4g} M parameters, "
                        f"{flops / 1e9:.4g} GFLOPs per image (torch.utils.flop_counter)")
    assert lines[1] == "18 prunable channel groups (100 channels); 1 left out:"
    assert lines[2] == "  classifier: an output layer: its channels are the network's outputs"
    assert "| group | channels | kept | layers |" in lines
    assert any(line.startswith("statistics cost per training iteration (batch of 2 at 32x32, 1 threads): plain ")
               and "with l1" in line and "measuring every 1 pass:" in line for line in lines)


def test_check_refuses_bad_options_like_prune(capsys):
    assert main(["check", *TOY, "--flops-reduction", "1.5"]) == 2
    assert capsys.readouterr().err == "sirfp check: error: --flops-reduction must be a number in (0, 1); got 1.5\n"
    assert main(["check", *TOY, "--weights", "missing.pt"]) == 2
    assert capsys.readouterr().err == "sirfp check: error: --weights must be a file; missing.pt does not exist\n"
