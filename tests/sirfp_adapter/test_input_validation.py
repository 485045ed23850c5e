"""``sirfp prune`` on careless and hostile input (issue 14): every option and the whole
data folder checked before any training, exit 2 and one line naming the option or file;
no hang; a non-finite loss stops training; outputs written atomically and stamped."""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from sirfp_adapter.demo import experiment  # noqa: E402
from sirfp_adapter.demo.cli import main  # noqa: E402
from sirfp_adapter.demo.experiment import Config, OptionError, TrainingError, _batches, check_data  # noqa: E402

TOY = ["--size", "16", "16", "--widths", "4", "4", "4", "4", "--aspp-channels", "4", "--train-iters", "2",
       "--prune-steps", "1", "--prune-interval", "2", "--finetune-iters", "1", "--val-samples", "2",
       "--train-samples", "4", "--batch-size", "2", "--latency-repeats", "1", "--latency-time", "0.01", "--no-progress",
       "--no-onnx", "--threads", "1"]


def cli(argv: list[str], timeout: float = 120.0) -> int:
    """``main(argv)`` in a daemon thread: a hang fails the test instead of hanging it."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["rc"] = main(argv)
        except SystemExit as exc:  # argparse
            box["rc"] = exc.code
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"sirfp {' '.join(argv)} still running after {timeout} s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["rc"]  # type: ignore[return-value]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def no_training(monkeypatch):
    """Bad input must be refused before any training: training fails these tests."""

    def refuse(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(experiment, "train", refuse)


# ----------------------------------------------------------------------------- options


OPTIONS = [
    (["--size", "0", "0"], "--input-size must be two ints H W from 1 to 4096; got 0 0"),
    (["--size", "5000", "16"], "--input-size must be two ints H W from 1 to 4096; got 5000 16"),
    (["--n-classes", "0"], "--num-classes must be an int from 2 to 16 (the built-in data's classes); got 0"),
    (["--n-classes", "17"], "--num-classes must be an int from 2 to 16 (the built-in data's classes); got 17"),
    (["--widths", "0", "4", "4", "4"], "--widths must be four ints from 1 to 4096; got 0 4 4 4"),
    (["--aspp-channels", "0"], "--aspp-channels must be an int from 1 to 4096; got 0"),
    (["--lr", "nan"], "--lr must be a finite number > 0; got nan"),
    (["--lr", "-1"], "--lr must be a finite number > 0; got -1.0"),
    (["--finetune-lr", "inf"], "--finetune-lr must be a finite number > 0; got inf"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number >= 0; got nan"),
    (["--threads", "0"], "--threads must be an int from 1 to {cores} (this machine's CPUs); got 0"),
    (["--objects", "5", "2"], "--objects must be two ints low high with 1 <= low <= high <= 256; got 5 2"),
    (["--scale", "0.5", "0.1"], "--scale must be two numbers low high with 0 < low <= high <= 1; got 0.5 0.1"),
    (["--scale", "nan", "0.5"], "--scale must be two numbers low high with 0 < low <= high <= 1; got nan 0.5"),
    (["--latency-repeats", "0"], "--latency-repeats must be an int >= 1; got 0"),
    (["--budget-points", "0"], "--budget-points must be an int >= 1; got 0"),
    (["--budget-samples", "-2"], "--budget-samples must be an int >= 1; got -2"),
    (["--budget-passes", "0"], "--budget-passes must be an int >= 1; got 0"),
    (["--batch-size", "1"],
     "--batch-size must be an int from 2 to 4096 (BatchNorm needs two samples per training batch); got 1"),
    (["--train-samples", "1"], "--train-samples must be at least the batch size, 2 (one full batch); got 1"),
    (["--val-samples", "0"], "--val-samples must be an int >= 1; got 0"),
    (["--flops-reduction", "1.5"], "--flops-reduction must be a number in (0, 1); got 1.5"),
    (["--flops-reduction", "nan"], "--flops-reduction must be a number in (0, 1); got nan"),
    (["--decay", "1"], "--decay must be a number in [0, 1); got 1.0"),
    (["--every", "0"], "--every must be an int >= 1; got 0"),
    (["--max-samples", "-1"], "--max-samples must be an int >= 1, or 0 for all; got -1"),
    (["--positions", "-3"], "--positions must be an int >= 1, or 0 for every position; got -3"),
    (["--positions", "64", "--measure", "gram"],
     "--positions applies to measures that sample positions (js); measure 'gram' computes on every position in "
     "one matrix product; leave positions at its default"),
    (["--min-keep", "1.5"], "--min-keep must be a fraction in [0, 1] or a channel count >= 1; got 1.5"),
    (["--round-to", "0"], "--round-to must be an int >= 1; got 0"),
    (["--train-iters", "-1"], "--train-iters must be an int >= 0; got -1"),
    (["--prune-steps", "0"], "--prune-steps must be an int >= 1; got 0"),
    (["--seed", "-1"], "--seed must be an int from 0 to 2**63 - 1; got -1"),
    (["--method", "brute", "--widths", "4", "4", "4", "40"],
     "--method must not be brute for this model: its widest layer has 40 channels, and brute enumerates every "
     "subset (at most 1,000,000,000: 32 channels); choose another method"),
    (["--measure", "cosine"], "sirfp prune: error: argument --measure: invalid choice: 'cosine' (choose from "
                              "'js', 'gram', 'hellinger', 'kl', 'dice') (see sirfp prune --help)"),
    (["--size", "a", "b"], "sirfp prune: error: argument --input-size/--size: invalid int value: 'a' "
                           "(see sirfp prune --help)"),
    (["--latency-time", "0"], "--latency-time must be a number of seconds in (0, 60]; got 0.0"),
    (["--weights", "no-such-file.pt"], "--weights must be a file; no-such-file.pt does not exist"),
    (["--bogus", "1"], "sirfp prune: error: unrecognized arguments: --bogus 1 (see sirfp prune --help)"),
    # an option the chosen criterion does not take is refused, not dropped
    (["--criterion", "taylor", "--measure", "gram"], "--measure does not apply to criterion taylor (it applies "
                                                      "to sirfp)"),
    (["--criterion", "l1", "--decay", "0.5"], "--decay does not apply to criterion l1 (it applies to sirfp, dcfp)"),
    (["--measure", "gram", "--normalize", "relu_l1"], "--normalize does not apply to measure gram (it applies to "
                                                       "js, hellinger, kl)"),
]


@pytest.mark.parametrize(("option", "message"), OPTIONS, ids=[" ".join(o) for o, _ in OPTIONS])
def test_every_bad_option_is_one_line_and_exit_2_before_training(tmp_path, capsys, no_training, option, message):
    import os

    out = tmp_path / "out"
    assert cli(["prune", *TOY, *option, "--out", str(out)]) == 2
    expected = message.format(cores=os.cpu_count())
    line = error_line(capsys)
    assert line == (expected if expected.startswith("sirfp") else f"sirfp prune: error: {expected}")
    assert not out.exists() or not any(out.iterdir())


def test_the_sensitivity_budget_options_reach_the_criterion():
    sirfp = Config(budget_samples=3, budget_points=2).make_criterion()
    assert (sirfp.budget.samples, sirfp.budget.points, sirfp.budget.allocation) == (3, 2, "per_flop")
    alone = Config(criterion="sensitivity", budget_samples=5, budget_allocation="level").make_criterion()
    assert (alone.samples, alone.points, alone.allocation) == (5, 8, "level")
    assert Config(budget="taylor", budget_points=2).make_criterion().budget.name == "taylor"


def test_the_sensitivity_budget_sizes_itself_unless_told():
    from sirfp_adapter.demo.experiment import BUDGET_PASSES_PER_IMAGE

    auto = Config(prune_interval=3, batch_size=4).make_criterion().budget
    assert (auto.samples, auto.points, auto.max_passes) == (16, 8, BUDGET_PASSES_PER_IMAGE * 3 * 4)
    assert Config(budget_samples=16).make_criterion().budget.max_passes is None  # sizes given: as given
    assert Config(budget_points=4, budget_passes=50).make_criterion().budget.max_passes == 50
    alone = Config(criterion="sensitivity", prune_interval=5).make_criterion()
    assert alone.max_passes == BUDGET_PASSES_PER_IMAGE * 5 * 8


def test_the_automatic_budget_leaves_the_built_in_models_defaults_alone():
    from sirfp_adapter.demo.experiment import build_network
    from sirfp_adapter.groups import ChannelGroups

    cfg = Config()
    model = build_network(cfg)
    groups = ChannelGroups.build(model, torch.randn(2, 3, *cfg.size))
    budget = cfg.make_criterion().budget.attach(model, groups)
    assert budget.sizes == (16, 8)  # 19 groups x 8 x 16 = 2432 passes, under the cap of 12 x 40 x 8
    budget.close()


def test_config_check_names_the_field_for_python_callers():
    with pytest.raises(OptionError) as info:
        Config(size=(0, 4)).check()
    assert str(info.value) == "size must be two ints H W from 1 to 4096; got (0, 4)"
    assert info.value.option == "size"
    with pytest.raises(OptionError, match=r"^batch_size must be an int from 2 to 4096 .*; got True$"):
        Config(batch_size=True).check()


def test_an_unusable_out_is_refused_before_training(tmp_path, capsys, no_training):
    afile = tmp_path / "file"
    afile.write_text("x")
    assert cli(["prune", *TOY, "--out", str(afile)]) == 2
    assert error_line(capsys) == f"sirfp prune: error: --out must be a folder; {afile} is a file"
    assert cli(["prune", *TOY, "--out", str(afile / "sub")]) == 2
    assert error_line(capsys) == f"sirfp prune: error: --out must be a writable folder; {afile / 'sub'}: Not a directory"
    assert cli(["prune", *TOY, "--out", ""]) == 2  # an unset $OUT: not the working folder
    assert error_line(capsys) == ("sirfp prune: error: --out must name a folder; got an empty string "
                                  "(use '.' for the working folder)")


# ----------------------------------------------------------------------------- data folders


def png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def folder(root: Path, n_train: int = 3, n_val: int = 2, size: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            png(root / split / "images" / f"{i}.png", rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
            png(root / split / "labels" / f"{i}.png", rng.integers(0, 3, (size, size), dtype=np.uint8))
    return root


def bomb(path: Path, width: int, height: int) -> None:
    """A 60-byte PNG whose header declares width x height pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00"))
                     + chunk(b"IEND", b""))


def _damage(kind: str):
    def apply(root: Path) -> str:
        lab = root / "val" / "labels" / "1.png"
        img = root / "train" / "images" / "2.png"
        if kind == "missing label":
            (root / "train" / "labels" / "1.png").unlink()
            return f"--data is unusable: no label in {root / 'train' / 'labels'} for 1 image(s): 1.png " \
                   "(labels/<stem>.png expected)"
        if kind == "label value in val":
            png(lab, np.full((8, 8), 7, dtype=np.uint8))
            return f"--data is unusable: {lab}: holds class index 7; expected values below n_classes=5 " \
                   "or ignore_index=255"
        if kind == "size mismatch":
            png(img, np.zeros((8, 6, 3), dtype=np.uint8))
            return f"--data is unusable: {img}: 6x8 but its label 2.png is 8x8 (width x height)"
        if kind == "RGB label":
            png(lab, np.zeros((8, 8, 3), dtype=np.uint8))
            return f"--data is unusable: {lab}: mode 'RGB'; labels must be single-channel class-index PNGs " \
                   "(mode 'L', 'P', 'I' or 'I;16')"
        if kind == "corrupt PNG":
            img.write_bytes(b"not a png at all")
            return f"--data is unusable: {img}: not an image PIL can read (unknown format or a damaged header)"
        if kind == "truncated PNG":
            data = img.read_bytes()
            img.write_bytes(data[: len(data) // 2])
            return f"--data is unusable: {img}: cannot be decoded ("
        if kind == "empty folder":
            for p in (root / "val" / "images").iterdir():
                p.unlink()
            return f"--data is unusable: {root / 'val' / 'images'} holds no .png, .jpg or .jpeg image"
        if kind == "no val":
            for p in sorted((root / "val").rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
            (root / "val").rmdir()
            return f"--data is unusable: {root / 'val'} is not a folder"
        if kind == "decompression bomb":
            bomb(img, 100_000, 100_000)
            return f"--data is unusable: {img}: more than PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} " \
                   "pixels; refused as a possible decompression bomb"
        if kind == "large image":
            bomb(img, 12_000, 8_000)
            return f"--data is unusable: {img}: 12000x8000 = 96000000 pixels, more than PIL.Image.MAX_IMAGE_PIXELS " \
                   f"= {Image.MAX_IMAGE_PIXELS}; refused as a possible decompression bomb"
        assert kind == "fewer images than a batch"
        return f"--data is too small: {root / 'train'} holds 3 sample(s), fewer than the batch size, 4 " \
               "(incomplete batches are dropped)"
    return apply


DAMAGE = ["missing label", "label value in val", "size mismatch", "RGB label", "corrupt PNG", "truncated PNG",
          "empty folder", "no val", "decompression bomb", "large image", "fewer images than a batch"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_bad_data_folder_is_refused_naming_the_file_before_training(tmp_path, capsys, no_training, kind):
    root = folder(tmp_path / "data")
    expected = _damage(kind)(root)
    batch = ["--batch-size", "4"] if kind == "fewer images than a batch" else []
    assert cli(["prune", *TOY, *batch, "--data", str(root), "--out", str(tmp_path / "out")]) == 2
    line = error_line(capsys)
    assert line.startswith(f"sirfp prune: error: {expected}") if expected.endswith("(") \
        else line == f"sirfp prune: error: {expected}"


def test_a_good_folder_passes_and_every_file_is_read_once(tmp_path, monkeypatch):
    root = folder(tmp_path / "data", n_train=5, n_val=3)
    import sirfp_adapter.demo.data as data

    seen: list[str] = []
    real = data._decode

    def counting(path, convert):
        seen.append(path.name + path.parent.parent.name + path.parent.name)
        return real(path, convert)

    monkeypatch.setattr(data, "_decode", counting)
    train, val = check_data(Config(data=str(root), size=(8, 8), batch_size=2))
    assert (len(train), len(val)) == (5, 3)
    assert len(seen) == 16 and len(set(seen)) == 16  # 8 pairs, each file decoded exactly once


# ----------------------------------------------------------------------------- no hang, non-finite loss


def test_an_empty_loader_raises_instead_of_looping_forever():
    batches = _batches([])
    with pytest.raises(TrainingError, match=r"^the training loader yields no batch"):
        next(batches)


def test_a_non_finite_loss_stops_training_with_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["prune", *TOY, "--lr", "1e30", "--train-iters", "20", "--out", str(out)]) == 1
    line = error_line(capsys)
    assert line.startswith("sirfp prune: error: train (unpruned): the training loss is nan at iteration ")
    assert line.endswith(f" of 20; training stopped (lower the learning rate); nothing was written to {out}")
    assert list(out.iterdir()) == []


# ----------------------------------------------------------------------------- atomic, stamped outputs


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One toy run's result and model, for writing reports."""
    cfg = Config(size=(16, 16), widths=(4, 4, 4, 4), aspp_channels=4, train_iters=2, prune_steps=1,
                 prune_interval=2, finetune_iters=1, val_samples=2, train_samples=4, batch_size=2,
                 latency_repeats=1, threads=1)
    result, model, _ = experiment.run(cfg, progress=False, log=None, run_id="run-a")
    return result, model


def files(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_outputs_are_stamped_with_the_run_and_listed_with_their_digests(tmp_path, finished):
    result, model = finished
    experiment.write_report(result, model, tmp_path)
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["run"] == "run-a"
    on_disk = files(tmp_path)
    assert set(on_disk) == {"pruned.pt", "report.md", "result.json", "loss.png", "widths.png"}
    assert record["files"] == {k: v for k, v in on_disk.items() if k != "result.json"}
    assert "Run `run-a`." in (tmp_path / "report.md").read_text()
    blob = torch.load(tmp_path / "pruned.pt", weights_only=True)
    assert blob["metadata"]["run"] == "run-a"
    with Image.open(tmp_path / "loss.png") as im:
        assert im.info["Description"] == "sirfp prune run run-a"


@pytest.mark.parametrize("where", ["plots", "replace 1", "replace 3", "replace 5"])
def test_an_interrupted_write_leaves_nothing_that_looks_finished(tmp_path, finished, monkeypatch, where):
    import dataclasses
    import os

    result, model = finished
    experiment.write_report(result, model, tmp_path)
    before = files(tmp_path)
    second = dataclasses.replace(result, run="run-b")
    if where == "plots":
        monkeypatch.setattr(experiment, "_plots", lambda r: (_ for _ in ()).throw(KeyboardInterrupt()))
    else:
        limit, calls, real = int(where.split()[1]), [], os.replace

        def replace(src, dst):
            if Path(dst).name in experiment.OUTPUTS:  # publishing, not save_pruned's own staging
                calls.append(dst)
                if len(calls) == limit:
                    raise KeyboardInterrupt
            real(src, dst)

        monkeypatch.setattr(experiment.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        experiment.write_report(second, model, tmp_path)
    after = files(tmp_path)
    assert not [n for n in after if n.startswith(".")]  # no temporary file left behind
    if where == "plots":
        assert after == before  # interrupted before publishing: the previous run intact
    else:
        assert "result.json" not in after  # no record of a finished run
        assert "report.md" not in after or where == "replace 5"
        if "report.md" in after:  # every file is then the new run's
            assert "Run `run-b`." in (tmp_path / "report.md").read_text()
            assert torch.load(tmp_path / "pruned.pt", weights_only=True)["metadata"]["run"] == "run-b"


# ----------------------------------------------------------------------------- fuzz


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

_ANY = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                 st.text(max_size=4), st.tuples(st.integers(-3, 5000), st.integers(-3, 5000)),
                 st.lists(st.integers(-3, 9), max_size=5))
_FIELDS = [f.name for f in __import__("dataclasses").fields(Config)]


@hypothesis.settings(max_examples=150, deadline=None, derandomize=True)
@hypothesis.given(st.dictionaries(st.sampled_from(_FIELDS), _ANY, min_size=1, max_size=3))
def test_config_check_refuses_anything_out_of_range_with_an_option_error(changes):
    """Whatever the values, check() either passes or raises OptionError naming a field it was given."""
    import dataclasses

    cfg = dataclasses.replace(Config(), **changes)
    try:
        cfg.check()
    except OptionError as exc:
        assert exc.option in changes or exc.option == "train_samples" and "batch_size" in changes
        return
    for name, value in changes.items():  # accepted: every changed value has its field's type and is finite
        if isinstance(value, float):
            assert value == value and abs(value) != float("inf"), name
        assert not isinstance(value, bool) or name == "data", name
