"""The main job end to end at toy size: ``sirfp prune`` trains, prunes, fine-tunes,
reports and saves a model that loads back."""

from __future__ import annotations

import json

import pytest
import torch

from sirfp_adapter.apply import load_pruned
from sirfp_adapter.demo.cli import main
from sirfp_adapter.cost import count_flops
from sirfp_adapter.demo.models import DeepLabLite

TOY = ["--input-size", "32", "32", "--widths", "4", "8", "8", "8", "--aspp-channels", "4", "--train-iters", "3",
       "--prune-steps", "2", "--prune-interval", "2", "--finetune-iters", "2", "--val-samples", "4",
       "--batch-size", "2", "--latency-repeats", "1", "--latency-time", "0.01", "--no-progress", "--no-onnx"]


@pytest.mark.parametrize("criterion", ["sirfp", "taylor"])
def test_prune_command_writes_a_report_and_a_loadable_model(tmp_path, capsys, criterion):
    out = tmp_path / "run"
    assert main(["prune", *TOY, "--criterion", criterion, "--flops-reduction", "0.5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| mIoU (%) |" in printed and "| GFLOPs (1 image) |" in printed
    for name in ("report.md", "result.json", "pruned.pt", "loss.png", "widths.png"):
        assert (out / name).is_file(), name
    result = json.loads((out / "result.json").read_text())
    assert 0.49 <= 1 - result["after"]["flops"] / result["before"]["flops"] <= 0.5 + 1e-9
    assert len(result["plans"]) == 2 and result["plans"][0]["target"] == pytest.approx(0.25)
    model = DeepLabLite(5, (4, 8, 8, 8), aspp_channels=4)
    metadata = load_pruned(model, out / "pruned.pt")
    assert json.loads(metadata["after"])["flops"] == count_flops(model, torch.randn(1, 3, 32, 32))
    # accuracy is compared with the unpruned model trained on for the same iterations
    reference = result["reference"]
    assert set(reference) == {"miou", "pixel_accuracy"}
    assert f"| mIoU (%) | {100 * reference['miou']:.2f} | {100 * result['after']['miou']:.2f} |" in printed
    assert "Both models trained the same iterations" in printed
    # the criterion's statistics time, per iteration of the pruning phase (SIRFPPruner.stats())
    assert 0 < result["times"]["statistics"] <= result["times"]["prune"]
    # wall and CPU seconds per phase (the CPU of every thread can exceed the wall time)
    assert {"train", "prune", "finetune", "reference", "latency", "total"} <= set(result["cpu_times"])
    assert all(v >= 0 for v in result["cpu_times"].values())
    assert result["cpu_times"]["total"] >= result["cpu_times"]["prune"]
    assert "prune" in (out / "report.md").read_text().split("Time (wall; CPU of all threads in brackets): ")[1]
    per = result["times"]["statistics"] / 4
    shown = f"{1e3 * per:.1f} ms" if per < 1 else f"{per:.2f} s"
    assert (f"The criterion's statistics took {shown} per training iteration of the pruning phase"
            in (out / "report.md").read_text())


def test_prune_command_without_the_reference_says_what_it_compares(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["prune", *TOY, "--criterion", "l1", "--no-reference", "--out", str(out)]) == 0
    assert json.loads((out / "result.json").read_text())["reference"] is None
    assert "iterations more than the unpruned one" in capsys.readouterr().out


def test_prune_command_refuses_a_bad_target(capsys):
    assert main(["prune", *TOY, "--flops-reduction", "1.5"]) == 2
    assert "--flops-reduction must be a number in (0, 1); got 1.5" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "message"), [
    (["--measure", "cosine"], "argument --measure: invalid choice: 'cosine'"),
    (["--method", "greedy"], "argument --method: invalid choice: 'greedy'"),
    (["--mode", "layerwise"], "argument --mode: invalid choice: 'layerwise' (choose from 'global', 'uniform')"),
    (["--round-to", "0"], "--round-to must be an int >= 1; got 0"),
])
def test_prune_command_checks_options_before_training(capsys, option, message):
    try:
        rc = main(["prune", *TOY, *option])
    except SystemExit as exc:  # argparse refuses a bad choice itself
        rc = exc.code
    assert rc == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow  # two ONNX exports: ~30 s on a loaded 2-core machine
def test_report_has_the_curves_the_onnx_file_and_the_latency_table(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "run"
    argv = [a for a in TOY if a != "--no-onnx"]
    assert main(["prune", *argv, "--criterion", "l1", "--no-reference", "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    # validation: a few points per phase and one after each pruning step, in iteration order
    points = result["validation"]
    total = sum(result["phases"].values())
    assert [p["iteration"] for p in points] == sorted(p["iteration"] for p in points)
    assert {p["phase"] for p in points} == {"train", "prune", "fine-tune"}
    assert sum(p["phase"] == "prune" for p in points) == 2 and points[-1]["iteration"] == total
    assert all(p["loss"] > 0 and 0 <= p["miou"] <= 1 for p in points)
    # the accuracy-vs-FLOPs path: unpruned, each step (masked), fine-tuned; FLOPs fall step by step
    path = result["steps"]
    assert [p["label"] for p in path] == ["unpruned", "step 1", "step 2", "fine-tuned"]
    assert path[0]["flops"] > path[1]["flops"] > path[2]["flops"]
    assert path[-1]["flops"] == result["after"]["flops"]
    # the ONNX file is the pruned model, smaller than the dense export, and matched torch
    onnx = result["deploy"]["onnx"]
    assert onnx["bytes"] == (out / "pruned.onnx").stat().st_size < onnx["dense_bytes"]
    assert onnx["max_abs_diff"] <= 1e-3 and result["files"]["pruned.onnx"]
    assert [r["batch"] for r in result["deploy"]["latency"]] == [1, 2, 4]
    report = (out / "report.md").read_text()
    assert "## Deployment" in report and "| batch | threads | device | dense (ms) |" in report
    for name in ("loss.png", "accuracy.png"):
        assert f"![{name}]({name})" in report and (out / name).stat().st_size > 0
    # a rerun without ONNX leaves no stale file of the earlier run
    assert main(["prune", *TOY, "--criterion", "l1", "--no-reference", "--out", str(out)]) == 0
    assert not (out / "pruned.onnx").exists()
    assert "ONNX: no export (not asked for (--no-onnx))." in (out / "report.md").read_text()
