"""Two of `memetic`'s settings on complete graphs, measured in moves to a reference value.

``--question opposition``: how often to breed an opposition-based child,
``opposition_every`` = 1 (every generation, as OBMA does), 2, 3 and never (``NEVER``
generations). ``--question stall``: the tabu search's depth, ``max_stall`` (iterations
in a row without improving a run's best set before the run ends) = 500 to 3000.
``--question pool``: the pool size, ``pop_size`` = 4, 6, 10 (OBMA's and the default) and 16.

Generated complete graphs (``default_rng(seed)``, ``round(uniform(0, 10), 2)`` for
i < j), ``--seeds`` seeds per setting, ``time_limit`` 10 s, stopping at the instance's
reference value. The measure is the number of tabu moves to the
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

    .venv/bin/python benchmarks/memetic_tuning.py --jobs 2                   # about 7 minutes on 2 cores
    .venv/bin/python benchmarks/memetic_tuning.py --jobs 2 --question stall  # about 8 minutes
    .venv/bin/python benchmarks/memetic_tuning.py --jobs 2 --question pool   # about 7 minutes

The first writes ``memetic_tuning.{md,json}``, the others ``memetic_tuning_{stall,pool}.{md,json}``.
"""

from __future__ import annotations

import argparse
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
#: Stands for "no opposition-based child" as an ``opposition_every``.
NEVER = 10**9
#: question: (option, values compared, the value the others are divided by, title, results file stem).
QUESTIONS = {
    "opposition": ("opposition_every", (1, 2, 3, NEVER), 1, "how often to breed an opposition-based child",
                   "memetic_tuning"),
    "stall": ("max_stall", (500, 1000, 1500, 2000, 3000), 2000, "the tabu search's depth (max_stall)",
              "memetic_tuning_stall"),
    "pool": ("pop_size", (4, 6, 10, 16), 10, "the pool size (pop_size)", "memetic_tuning_pool"),
}
TIME_LIMIT = 10.0


def _cell(job: tuple[str, int, int, int, float, str, int, int]) -> dict[str, Any]:
    name, gen_seed, n, m, ref, option, value, seeds = job
    problem = mewcp.as_problem(common.uniform_diversity_matrix(gen_seed, n))
    w = np.triu(np.random.default_rng(0).random((60, 60)), 1)
    mewcp.solve(w + w.T, 10, "memetic", seed=0, max_stall=10, patience=8)  # compiled before timing
    runs = []
    for s in range(seeds):
        c0 = time.process_time()
        sol = mewcp.solve(problem, m, "memetic", seed=s, time_limit=TIME_LIMIT, target=ref - 1e-3,
                          **{option: value})
        runs.append({"seed": s, "hit": bool(sol.weight >= ref - 1e-3), "moves": int(sol.n_iter),
                     "cpu": time.process_time() - c0, "weight": float(sol.weight)})
    print(name, option, value, sum(r["hit"] for r in runs), "hits", flush=True)
    return {"instance": name, "n": n, "m": m, "reference": ref, option: value, "runs": runs}


def _label(value: int) -> str:
    return "never" if value >= NEVER else str(value)


def report(res: dict[str, Any]) -> str:
    option, _, base_value, title, _ = QUESTIONS[res.get("question", "opposition")]
    rep = common.Report(f"memetic: {title}")
    rep.generated_by("benchmarks/memetic_tuning.py", date=res["date"], note=(
        f"; {res['seeds']} seeds per cell, time limit {TIME_LIMIT:g} s, {res['cpu_count']} cores, "
        f"load average {res['load']} at the end."))
    rows = []
    for cell in res["cells"]:
        runs = cell["runs"]
        moves = np.array([r["moves"] for r in runs], float)
        hits = sum(r["hit"] for r in runs)
        base = next(c for c in res["cells"] if c["instance"] == cell["instance"] and c[option] == base_value)
        ratio = moves.mean() / np.mean([r["moves"] for r in base["runs"]])
        rows.append([cell["instance"], f"{cell['n']} / {cell['m']}", _label(cell[option]),
                     f"{hits}/{len(runs)}", f"{np.median(moves) / 1e3:,.0f}" if hits > len(runs) / 2 else "—",
                     f"{moves.mean() / 1e3:,.0f}{'+' if hits < len(runs) else ''}", f"{ratio:.2f}",
                     f"{np.median([r['cpu'] for r in runs]):.2f}"])
    rep.table(["instance", "n / m", option, "hits", "median kmoves", "mean kmoves",
               f"mean / {option} = {_label(base_value)}", "median CPU s (all runs)"], rows, align="lllrrrrr")
    rep.para("kmoves: thousands of tabu moves to the reference. A '+' marks a mean that counts the misses with the "
             "moves they made within the time limit (a lower bound). CPU seconds are inflated when cells run side "
             "by side (--jobs) and include the misses' full 10 s; compare moves.")
    return rep.text()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=1, help="cells run side by side (moves do not depend on load)")
    ap.add_argument("--question", choices=sorted(QUESTIONS), default="opposition")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    option, values, _, _, stem = QUESTIONS[args.question]
    jobs = [(*inst, option, value, args.seeds) for inst in INSTANCES for value in values]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        cells = list(pool.map(_cell, jobs))
    res = {"question": args.question, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seeds": args.seeds,
           "cpu_count": os.cpu_count(), "load": " ".join(f"{x:.1f}" for x in os.getloadavg()), "cells": cells}
    print(common.write_results(args.out, stem, res, report))


if __name__ == "__main__":
    main()
