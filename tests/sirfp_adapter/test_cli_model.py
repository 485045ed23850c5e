"""``sirfp prune --model SPEC --weights FILE``: the user's own network from the command
line (issue 13, item 4). A tiny network in a module of the current folder stands in for
torchvision / smp ones (tested in test_integration.py); every bad model or weights file
is refused before any training with one line naming the option."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from sirfp_adapter.apply import load_pruned  # noqa: E402
from sirfp_adapter.cost import count_flops  # noqa: E402
from sirfp_adapter.demo import experiment  # noqa: E402
from sirfp_adapter.demo.cli import main  # noqa: E402
from sirfp_adapter.zoo import build_model  # noqa: E402

TOY = ["--input-size", "16", "16", "--train-iters", "2", "--prune-steps", "1", "--prune-interval", "2",
       "--finetune-iters", "1", "--val-samples", "2", "--train-samples", "4", "--batch-size", "2",
       "--latency-repeats", "1", "--latency-time", "0.01", "--no-progress", "--no-onnx", "--threads", "1"]

NET = textwrap.dedent("""
    import torch
    from torch import nn

    class TinySeg(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.head = nn.Conv2d(8, num_classes, 1)

        def forward(self, x):
            return {"out": self.head(self.body(x))}  # torchvision's convention

    def net(num_classes):
        return TinySeg(num_classes)

    def broken(num_classes):
        raise RuntimeError("no GPU here")
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``tiny_seg_user.py`` in the current folder, importable as the CLI makes it."""
    (tmp_path / "tiny_seg_user.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])  # as the CLI makes it (it adds the current
    monkeypatch.delitem(sys.modules, "tiny_seg_user", raising=False)
    return tmp_path


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(experiment, "train", refuse)


def error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0].removeprefix("sirfp prune: error: ")


def test_prune_command_prunes_the_users_network_from_its_weights(user_module, capsys):
    torch.manual_seed(1)
    torch.save(build_model("tiny_seg_user:net", num_classes=5).state_dict(), user_module / "w.pt")
    out = user_module / "run"
    assert main(["prune", *TOY, "--model", "tiny_seg_user:net", "--weights", "w.pt", "--flops-reduction", "0.5",
                 "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["model"] == "tiny_seg_user:net" and result["config"]["weights"] == "w.pt"
    assert 0.45 <= 1 - result["after"]["flops"] / result["before"]["flops"] <= 0.5 + 1e-9
    model = build_model("tiny_seg_user:net", num_classes=5)
    load_pruned(model, out / "pruned.pt")
    assert count_flops(model, torch.randn(1, 3, 16, 16)) == result["after"]["flops"]
    assert "model = build_model('tiny_seg_user:net', num_classes=5)" in (out / "report.md").read_text()


def test_the_weights_are_loaded_before_training(user_module):
    torch.manual_seed(1)
    saved = build_model("tiny_seg_user:net", num_classes=5).state_dict()
    torch.save({"state_dict": saved, "epoch": 3}, user_module / "ckpt.pt")  # a checkpoint holding one
    cfg = experiment.Config(model="tiny_seg_user:net", weights="ckpt.pt", size=(16, 16))
    model = experiment.check_model(cfg)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0)


def _weights(kind: str, path) -> None:
    good = build_model("tiny_seg_user:net", num_classes=5).state_dict()
    if kind == "extra key":
        torch.save({**good, "aux.weight": torch.zeros(1)}, path)
    elif kind == "missing key":
        torch.save({k: v for k, v in good.items() if k != "head.bias"}, path)
    elif kind == "DataParallel":
        torch.save({"module." + k: v for k, v in good.items()}, path)
    elif kind == "shapes":
        torch.save(build_model("tiny_seg_user:net", num_classes=3).state_dict(), path)
    elif kind == "no state dict":
        torch.save([1, 2, 3], path)
    elif kind == "not torch":
        path.write_text("weights")


WEIGHTS = [
    ("extra key", "--weights does not fit the model: w.pt: 1 unexpected key(s) (first: 'aux.weight')"),
    ("missing key", "--weights does not fit the model: w.pt: 1 of the model's keys missing (first: 'head.bias')"),
    ("DataParallel", "--weights does not fit the model: w.pt: 16 of the model's keys missing (first: "
                     "'body.0.weight'), 16 unexpected key(s) (first: 'module.body.0.weight') (saved from "
                     "DataParallel? the file's keys start with 'module.')"),
    ("shapes", "--weights does not fit the model: w.pt: 'head.weight' has shape (3, 8, 1, 1) in the file and "
               "(5, 8, 1, 1) in the model (2 tensors differ); check --num-classes"),
    ("no state dict", "--weights holds no state dict: w.pt must hold a mapping of parameter names to tensors (or a "
                      "checkpoint with one under 'state_dict' or 'model'); got list"),
    ("not torch", "--weights is unreadable with torch.load(weights_only=True): w.pt: UnpicklingError: "),
]


@pytest.mark.parametrize(("kind", "message"), WEIGHTS, ids=[k for k, _ in WEIGHTS])
def test_bad_weights_are_refused_before_training(user_module, capsys, no_training, kind, message):
    _weights(kind, user_module / "w.pt")
    assert main(["prune", *TOY, "--model", "tiny_seg_user:net", "--weights", "w.pt", "--out", "run"]) == 2
    line = error(capsys)
    assert line.startswith(message) if message.endswith(": ") else line == message
    assert not any((user_module / "run").iterdir())


MODELS = [
    (["--model", "deeplab"], "--model must be SOURCE:NAME (torchvision:NAME, smp:ARCH[:ENCODER], timm:NAME, "
                             "package.module:factory) or None (the built-in model); got deeplab"),
    (["--model", "no_such_pkg_x:net"], "--model is unusable: cannot import module 'no_such_pkg_x' of "
                                       "'no_such_pkg_x:net' (ModuleNotFoundError: No module named 'no_such_pkg_x'); "
                                       "it must be importable from the current folder or the Python path"),
    (["--model", "tiny_seg_user:nothing"], "--model is unusable: module 'tiny_seg_user' has no callable 'nothing'"),
    (["--model", "tiny_seg_user:broken"], "--model could not be built: tiny_seg_user:broken: RuntimeError: "
                                          "no GPU here"),
    (["--model", "torch.nn:Identity"], "--model must return segmentation logits (B, 5, h, w) (--num-classes 5); "
                                       "torch.nn:Identity returns (2, 3, 16, 16) for a batch of 2x3x16x16"),
    (["--model", "torch.nn:Flatten"], "--model must return segmentation logits (B, 5, h, w) (--num-classes 5); "
                                      "torch.nn:Flatten returns (2, 768) for a batch of 2x3x16x16"),
    (["--model", "torch.nn:Softmax2d"], "--model could not be built: torch.nn:Softmax2d: TypeError: "
                                        "Softmax2d.__init__() got an unexpected keyword argument 'num_classes'"),
    (["--model", "tiny_seg_user:net", "--widths", "8", "8", "8", "8"],
     "--widths applies to the built-in model only, not to model tiny_seg_user:net"),
    (["--model", "tiny_seg_user:net", "--input-size", "0", "16"],
     "--input-size must be two ints H W from 1 to 4096; got 0 16"),
]


@pytest.mark.parametrize(("option", "message"), MODELS, ids=[" ".join(o) for o, _ in MODELS])
def test_bad_models_are_refused_before_training(user_module, capsys, no_training, option, message):
    assert main(["prune", *TOY, *option, "--out", "run"]) == 2
    assert error(capsys) == message
