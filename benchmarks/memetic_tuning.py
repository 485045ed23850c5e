"""How often `memetic` should breed an opposition-based child: moves to a reference value.

Generated complete graphs (``default_rng(seed)``, ``round(uniform(0, 10), 2)`` for
i < j), `memetic` with ``opposition_every`` = 1 (every generation, as OBMA does), 2,
3 and never (``NEVER`` generations), ``--seeds`` seeds each, ``time_limit`` 10 s, stopping
at the instance's reference value. The measure is the number of tabu moves to the
reference (`Solution.n_iter`; independent of the machine's load, so configurations may
run side by side), plus the CPU seconds for orientation. A run that misses the
reference within the time limit counts with the moves it made (a lower bound), so the
mean moves of a configuration with misses is a lower bound too.

The instances are not those of the solver's other benchmarks except the first (the
issue 16 instance); the references are the best values of `tabu` and `memetic`, 2 seeds
each, at 20 s (the first: the best-known value, reached by every run in
``heuristics.py``). The question is not tuned on the MDPLIB instances, whose 5/5 hits
``solver_quality.py`` checks separately.

Run::

    .venv/bin/python benchmarks/memetic_tuning.py --jobs 2     # about 7 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import mewcp  # noqa: E402
from benchmarks import common  # noqa: E402

#: (name, generator seed, n, m, reference value).
INSTANCES = (
    ("gen2000-2000", 2000, 2000, 200, 112_962.14),
    ("gen1-2000", 1, 2000, 200, 112_947.81),
    ("gen3-1500", 3, 1500, 300, 244_495.91),
)
#: ``opposition_every`` values compared; NEVER stands for "no opposition-based child".
NEVER = 10**9
SETTINGS = (1, 2, 3, NEVER)
TIME_LIMIT = 10.0


def _cell(job: tuple[str, int, int, int, float, int, int]) -> dict[str, Any]:
    name, gen_seed, n, m, ref, every, seeds = job
    problem = mewcp.as_problem(common.uniform_diversity_matrix(gen_seed, n))
    w = np.triu(np.random.default_rng(0).random((60, 60)), 1)
    mewcp.solve(w + w.T, 10, "memetic", seed=0, max_stall=10, patience=8)  # compiled before timing
    runs = []
    for s in range(seeds):
        c0 = time.process_time()
        sol = mewcp.solve(problem, m, "memetic", seed=s, time_limit=TIME_LIMIT, target=ref - 1e-3,
                          opposition_every=every)
        runs.append({"seed": s, "hit": bool(sol.weight >= ref - 1e-3), "moves": int(sol.n_iter),
                     "cpu": time.process_time() - c0, "weight": float(sol.weight)})
    print(name, every, sum(r["hit"] for r in runs), "hits", flush=True)
    return {"instance": name, "n": n, "m": m, "reference": ref, "opposition_every": every, "runs": runs}


def _label(every: int) -> str:
    return "never" if every >= NEVER else str(every)


def report(res: dict[str, Any]) -> str:
    rep = common.Report("memetic: how often to breed an opposition-based child")
    rep.generated_by("benchmarks/memetic_tuning.py", date=res["date"], note=(
        f"; {res['seeds']} seeds per cell, time limit {TIME_LIMIT:g} s, {res['cpu_count']} cores, "
        f"load average {res['load']} at the end."))
    rows = []
    for cell in res["cells"]:
        runs = cell["runs"]
        moves = np.array([r["moves"] for r in runs], float)
        hits = sum(r["hit"] for r in runs)
        base = next(c for c in res["cells"] if c["instance"] == cell["instance"] and c["opposition_every"] == 1)
        ratio = moves.mean() / np.mean([r["moves"] for r in base["runs"]])
        rows.append([cell["instance"], f"{cell['n']} / {cell['m']}", _label(cell["opposition_every"]),
                     f"{hits}/{len(runs)}", f"{np.median(moves) / 1e3:,.0f}" if hits > len(runs) / 2 else "—",
                     f"{moves.mean() / 1e3:,.0f}{'+' if hits < len(runs) else ''}", f"{ratio:.2f}",
                     f"{np.median([r['cpu'] for r in runs]):.2f}"])
    rep.table(["instance", "n / m", "opposition_every", "hits", "median kmoves", "mean kmoves",
               "mean / every generation", "median CPU s (all runs)"], rows, align="lllrrrrr")
    rep.para("kmoves: thousands of tabu moves to the reference. A '+' marks a mean that counts the misses with the "
             "moves they made within the time limit (a lower bound). CPU seconds are inflated when cells run side "
             "by side (--jobs) and include the misses' full 10 s; compare moves.")
    return rep.text()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=1, help="cells run side by side (moves do not depend on load)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    jobs = [(*inst, every, args.seeds) for inst in INSTANCES for every in SETTINGS]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        cells = list(pool.map(_cell, jobs))
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seeds": args.seeds,
           "cpu_count": os.cpu_count(), "load": " ".join(f"{x:.1f}" for x in os.getloadavg()), "cells": cells}
    args.out.mkdir(parents=True, exist_ok=True)
    common.write_atomic(args.out / "memetic_tuning.json", json.dumps(res, indent=1))
    text = report(res)
    common.write_atomic(args.out / "memetic_tuning.md", text)
    print(text)


if __name__ == "__main__":
    main()
