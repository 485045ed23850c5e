"""Time per move of `tabu` on complete graphs, side by side with an earlier version of mewcp.

`tabu` on a complete graph spends its time in the swap tabu search (one move: the
gains' update and the scan for the best admissible swap). The script extracts the
package at a git revision (``--against``, default the last commit before the
candidate windows from ``d0``) into a temporary folder and runs it and the working
tree's package in two worker processes, each answering timing requests through the
public API: ``mewcp.solve(p, k, "tabu", seed=s, max_iters=M)`` on generated
instances (the issue 16 instance n = 2000, m = 200, and n = 1000, 500 with k = n /
10), its CPU seconds (`time.process_time`) over its moves (`Solution.n_iter`).
Repeats alternate between the two workers, so load affects both alike; each worker
compiles its kernels before the first timed call. Reported: the median microseconds
per move and the median of the per-repeat ratios.

Run from the repository root::

    .venv/bin/python benchmarks/swap_tabu_speed.py    # about two minutes
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import common  # noqa: E402

#: The last commit whose tabu search takes its candidate windows from the greatest |w|.
BEFORE_WINDOWS = "af5adc0"
#: (generator seed, n): k = n // 10.
INSTANCES = ((2000, 2000), (1, 1000), (1, 500))

#: A worker: reads "gen_seed n k seed moves" lines, answers the CPU microseconds per move.
WORKER = r"""
import sys, time
import mewcp
from benchmarks import common
problems = {}
for line in sys.stdin:
    gen_seed, n, k, seed, moves = map(int, line.split())
    if (gen_seed, n) not in problems:
        problems[gen_seed, n] = mewcp.as_problem(common.uniform_diversity_matrix(gen_seed, n))
        mewcp.solve(problems[gen_seed, n], k, "tabu", seed=0, max_iters=100)  # compiled before timing
    c0 = time.process_time()
    sol = mewcp.solve(problems[gen_seed, n], k, "tabu", seed=seed, max_iters=moves)
    print((time.process_time() - c0) / max(sol.n_iter, 1) * 1e6, flush=True)
"""


def _extract(revision: str, into: Path) -> None:
    """The package ``mewcp`` and ``benchmarks/common.py`` at ``revision``, written under ``into``."""
    archive = subprocess.run(["git", "archive", "--format=tar", revision, "mewcp", "benchmarks/__init__.py",
                              "benchmarks/common.py"], cwd=REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


class _Worker:
    """A Python process importing mewcp from ``root``, timing on request."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], cwd=root, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)})

    def per_move(self, gen_seed: int, n: int, k: int, seed: int, moves: int) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{gen_seed} {n} {k} {seed} {moves}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the worker stopped (exit status {self.proc.wait()})")
        return float(answer)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def render(res: dict[str, Any]) -> str:
    """The Markdown report of a results dict (`main` writes both)."""
    rows = [[f"{c['n']} / {c['k']}", f"{np.median(c['times_us']['earlier']):.2f}",
             f"{np.median(c['times_us']['current']):.2f}", common.fmt_x(c["ratio"])] for c in res["cells"]]
    rep = common.Report("tabu on complete graphs: time per move against an earlier version, side by side")
    rep.generated_by("benchmarks/swap_tabu_speed.py", date=res["date"], note=".")
    rep.para(f"Earlier: mewcp at `{res['against']}`; {res['repeats']} alternating repeats of "
             f"`solve(..., \"tabu\", max_iters={res['moves']:,})` per instance, CPU seconds over moves; generated "
             "instances (`common.uniform_diversity_matrix`), k = n / 10.")
    rep.table(["n / k", "earlier µs/move", "current µs/move", "current / earlier (median of repeats)"], rows,
              align="lrrr")
    rep.machine(res["machine"])
    return rep.text()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", default=BEFORE_WINDOWS, help="git revision of the earlier version")
    ap.add_argument("--moves", type=int, default=40_000)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _extract(args.against, Path(tmp))
        workers = {"earlier": _Worker(Path(tmp)), "current": _Worker(REPO)}
        cells = []
        for gen_seed, n in INSTANCES:
            k = n // 10
            for worker in workers.values():  # compiled and the instance built, outside the timing
                worker.per_move(gen_seed, n, k, 0, 100)
            times: dict[str, list[float]] = {name: [] for name in workers}
            for rep in range(args.repeats):
                for name, worker in workers.items():
                    times[name].append(worker.per_move(gen_seed, n, k, rep, args.moves))
            ratio = float(np.median(np.array(times["current"]) / np.array(times["earlier"])))
            cells.append({"n": n, "k": k, "generator_seed": gen_seed, "times_us": times, "ratio": ratio})
            print(n, k, {name: round(float(np.median(t)), 2) for name, t in times.items()}, flush=True)
        for worker in workers.values():
            worker.close()
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "against": args.against,
           "moves": args.moves, "repeats": args.repeats, "machine": common.machine_info("numba"), "cells": cells}
    print(common.write_results(args.out, "swap_tabu_speed", res, render))


if __name__ == "__main__":
    main()
