"""How fast `mewcp.read` parses the largest shipped files, side by side with numpy's C text parser.

For the largest MDPLIB and the largest DIMACS file, rounds alternate `mewcp.read`
(format detection, strict per-token checks, pairs, the validated problem) with
``np.loadtxt`` of the same numbers (parsing alone: no validation, no matrix); the
ratio of the two medians is reported, so a loaded machine slows both sides alike.

Writes ``benchmarks/results/read_speed.{md,json}``. A few seconds::

    .venv/bin/python benchmarks/read_speed.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import Report, fmt_ms, fmt_x, machine_info, write_atomic  # noqa: E402
from mewcp import read  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
INSTANCES = ROOT / "instances"
#: Most `mewcp.read` may cost, as a multiple of ``np.loadtxt`` parsing the same numbers.
TARGET_RATIO = 5.0


def _largest(folder: str, pattern: str) -> Path:
    return max((INSTANCES / folder).rglob(pattern), key=lambda p: p.stat().st_size)


def _loadtxt_dimacs(path: Path) -> np.ndarray:
    """The numbers of the edge lines of a DIMACS file, parsed by numpy alone."""
    with open(path, encoding="ascii") as fh:
        return np.loadtxt((line[2:] for line in fh if line.startswith("e ")), ndmin=2)


def measure(path: Path, plain: object, rounds: int) -> dict[str, float | str]:
    read(path)  # numba's cached kernels loaded once
    ours, numpy_text = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        read(path)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        plain(path)  # type: ignore[operator]
        numpy_text.append(time.perf_counter() - start)
    mine, theirs = statistics.median(ours), statistics.median(numpy_text)
    return {"file": str(path.relative_to(INSTANCES)), "bytes": path.stat().st_size, "read_s": mine,
            "loadtxt_s": theirs, "ratio": mine / theirs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1; got {args.rounds}")
    rows = [measure(_largest("mdplib", "*.txt"), lambda p: np.loadtxt(p, skiprows=1), args.rounds),
            measure(_largest("dimacs", "*.wclq"), _loadtxt_dimacs, args.rounds)]
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    write_atomic(RESULTS / "read_speed.json",
                 json.dumps({"date": date, "rounds": args.rounds, "rows": rows, "machine": machine_info()}, indent=1))
    report = Report("Reading the largest shipped files: mewcp.read against np.loadtxt")
    report.generated_by("benchmarks/read_speed.py", date=date, command="python benchmarks/read_speed.py")
    report.para(f"Medians over {args.rounds} alternating rounds; `np.loadtxt` parses the numbers alone.")
    report.table(["file", "size", "mewcp.read (ms)", "np.loadtxt (ms)", "ratio"],
                 [[r["file"], f"{int(r['bytes']) / 1e6:.1f} MB", fmt_ms(float(r["read_s"])),
                   fmt_ms(float(r["loadtxt_s"])), fmt_x(float(r["ratio"]))] for r in rows], align="lrrrr")
    for r in rows:
        report.target(f"{r['file']}: mewcp.read within {TARGET_RATIO:g}x np.loadtxt", float(r["ratio"]) <= TARGET_RATIO,
                      fmt_x(float(r["ratio"])))
    report.add("").machine(machine_info())
    print(report.write(RESULTS / "read_speed.md"))


if __name__ == "__main__":
    main()
