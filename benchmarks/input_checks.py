"""What checking hostile and careless input costs (issue 14), side by side in one run.

* ``sirfp prune``'s data-folder pass (`FolderSegmentation.validate`: every file opened and
  decoded once, in threads) against one plain epoch of reading the same folder;
* how fast hostile files are refused: a 100 MB file of garbage named ``.png``, a 60-byte
  PNG declaring 10^10 pixels (decompression bomb), a truncated PNG;
* `Config.check` (every option) in microseconds;
* transactional `load_pruned` against a bare ``torch.load`` + ``load_state_dict`` of the
  same file (the checks' overhead).

Writes ``benchmarks/results/input_checks.md`` and ``.json``. About a minute on two cores::

    .venv/bin/python benchmarks/input_checks.py [--pairs 200] [--side 256]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import Report, machine_info, write_atomic  # noqa: E402
from sirfp_adapter.apply import load_pruned, prune_channels, save_pruned  # noqa: E402
from sirfp_adapter.demo.data import FolderSegmentation  # noqa: E402
from sirfp_adapter.demo.experiment import Config  # noqa: E402
from sirfp_adapter.demo.models import DeepLabLite  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def make_folder(root: Path, pairs: int, side: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(pairs):
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(rng.integers(0, 5, (side, side), dtype=np.uint8)).save(root / "labels" / f"{i}.png")


def bomb(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00"))
                     + chunk(b"IEND", b""))


def refusal_time(root: Path, damage: str) -> tuple[float, str]:
    """Seconds until `validate` refuses a folder with one damaged image, and the message."""
    image = root / "images" / "0.png"
    good = image.read_bytes()
    if damage == "garbage":
        with image.open("wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(100):
                f.write(block)
    elif damage == "bomb":
        bomb(image, 100_000, 100_000)
    else:
        image.write_bytes(good[: len(good) // 2])
    ds = FolderSegmentation(root, n_classes=5)
    start = time.perf_counter()
    try:
        ds.validate()
        message = "(accepted)"
    except ValueError as exc:
        message = str(exc).replace(str(root), "<root>")
    elapsed = time.perf_counter() - start
    image.write_bytes(good)
    return elapsed, message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--side", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out: dict[str, object] = {"pairs": args.pairs, "side": args.side}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        make_folder(root, args.pairs, args.side)
        ds = FolderSegmentation(root, n_classes=5, size=(args.side, args.side))
        rounds = []
        for _ in range(3):  # interleaved: validation, then one epoch of reading, each round
            t0 = time.perf_counter()
            ds.validate()
            t1 = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            rounds.append((t1 - t0, time.perf_counter() - t1))
        validate_s = float(np.median([r[0] for r in rounds]))
        epoch_s = float(np.median([r[1] for r in rounds]))
        out.update(validate_s=validate_s, epoch_s=epoch_s, ratio=validate_s / epoch_s)
        refusals = {kind: refusal_time(root, kind) for kind in ("garbage", "bomb", "truncated")}
        out["refusals"] = {k: {"seconds": v[0], "message": v[1]} for k, v in refusals.items()}

        cfg = Config()
        n = 200
        t0 = time.perf_counter()
        for _ in range(n):
            cfg.check()
        out["config_check_us"] = 1e6 * (time.perf_counter() - t0) / n

        torch.manual_seed(0)
        model = DeepLabLite(5, (32, 64, 128, 128), aspp_channels=64)
        x = torch.randn(2, 3, 96, 96)
        groups = ChannelGroups.build(model, x)
        prune_channels(groups, {g.name: np.arange(g.size // 2) for g in groups})
        path = Path(tmp) / "pruned.pt"
        save_pruned(model, path)
        times = {"load_pruned": [], "bare": []}
        for _ in range(5):
            fresh = DeepLabLite(5, (32, 64, 128, 128), aspp_channels=64)
            t0 = time.perf_counter()
            load_pruned(fresh, path)
            times["load_pruned"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            blob = torch.load(path, weights_only=True)
            fresh.load_state_dict(blob["state_dict"])  # same shapes now: the bare cost of reading and copying
            times["bare"].append(time.perf_counter() - t0)
        out["load_pruned_s"] = float(np.median(times["load_pruned"]))
        out["bare_load_s"] = float(np.median(times["bare"]))

    r = Report("Input checks: what refusing bad input costs")
    r.generated_by("benchmarks/input_checks.py", date=time.strftime("%Y-%m-%d"),
                   command=f".venv/bin/python benchmarks/input_checks.py --pairs {args.pairs} --side {args.side}")
    r.machine(machine_info("torch", "PIL"))
    r.heading("Data folder: the validation pass against one epoch of reading")
    r.table(["pairs", "image side", "validate (s)", "one epoch of reads (s)", "ratio"],
            [[args.pairs, args.side, f"{validate_s:.2f}", f"{epoch_s:.2f}", f"{validate_s / epoch_s:.2f}x"]])
    r.para("`validate` decodes each image and label once, as training will, in up to 8 threads (PIL releases "
           "the GIL while decoding); the epoch reads every pair through `__getitem__` (decode, resize, "
           "normalise) in one thread. Median of 3 interleaved rounds.")
    r.heading("Hostile files: time to refusal")
    r.table(["file", "refused in (s)", "message"],
            [[k, f"{v[0]:.4f}", v[1]] for k, v in refusals.items()], align="lrl")
    r.heading("Options and model files")
    r.table(["check", "time"], [
        ["`Config.check()` (every option)", f"{out['config_check_us']:.0f} µs"],
        ["`load_pruned` (checks + resize + copy), DeepLabLite default widths halved",
         f"{1000 * out['load_pruned_s']:.1f} ms"],
        ["bare `torch.load` + `load_state_dict` of the same file", f"{1000 * out['bare_load_s']:.1f} ms"],
    ], align="lr")
    r.heading("Targets")
    r.target("folder validation at most 1.5x one epoch of reading", validate_s <= 1.5 * epoch_s,
             f"{validate_s / epoch_s:.2f}x")
    r.target("every hostile file refused within 1 s", all(v[0] < 1.0 for v in refusals.values()),
             f"{max(v[0] for v in refusals.values()):.3f} s at most")
    r.target("load_pruned at most 3x a bare load", out["load_pruned_s"] <= 3 * out["bare_load_s"],
             f"{out['load_pruned_s'] / out['bare_load_s']:.2f}x")
    text = r.write(RESULTS / "input_checks.md")
    write_atomic(RESULTS / "input_checks.json", json.dumps(out, indent=1))
    print(text)



if __name__ == "__main__":
    main()
