"""Issue 16 targets for the heuristics: general graphs, n = 2000 tabu, a million vertices, dense memory.

What is measured (one process per part, one core, a shared and noisy machine)
---------------------------------------------------------------------------
Part A (shipped DIMACS, ``size="at_most"``, k = the optimal clique's size): for
each instance, the time to the published optimum of ``pls`` (``--seeds-pls``
seeds, 101 by default: the time to the optimum is heavy-tailed, and a median of 5
draws moves by 2x from one set of seeds to the next), ``tabu`` and ``memetic``
(``--seeds`` seeds) (`Solution.trace`, on the solve's clock; a
``target`` stops the run; limit ``--limit-dimacs`` s, a miss counts as infinite),
and, when ``--pls-binary`` names a build of the public PLS C++ code (Pullan 2008,
as shipped by Shimizu in MEWCat; built outside the repository, never committed),
its wall time to the same optimum in the same run, ``--seeds-pls`` seeds
(``binary FILE TARGET SEED LIMIT`` prints ``weight seconds size``; the scratch
build measures wall seconds from its search's start, the graph read excluded).
The table gives the ratio of the medians over seeds 0-4 and over all of them.

Part B (generated n = 2000, m = 200; ``default_rng(2000)``, ``round(uniform(0, 10),
2)``, i < j; checksum 9,990,770.95 asserted): ``tabu``, ``memetic`` and ``memetic``
with OBMA's schedule (``opposition_every=1``) side by side, 10 s each, target
112,962.14; wall and CPU seconds to it. The time to the target is heavy-tailed: pass
``--seeds 20`` (the committed run) for a median worth comparing; seeds 0-4 are shown apart.

Part C (a million vertices): ``default_rng(1)``, 10M random pairs (duplicates and
loops removed), weights ``uniform(0, 2)``, k = 20, ``size="at_most"``: time of
`as_problem`, of ``ehgp`` (wall and CPU seconds), the answer against the heaviest edge, then ``tabu`` with
``time_limit=10``; peak resident memory of the process (``ru_maxrss``, which
includes building the graph).

Part D (dense): a seeded symmetric float64 matrix with n = ``--dense-n`` (20000);
``as_problem`` time, and the tracemalloc peak of ``solve(W, n // 2)`` relative to
W's size (numba's own arrays are O(n) and invisible to tracemalloc).

Run from the repository root::

    .venv/bin/python benchmarks/heuristics.py --pls-binary /work/scratch/mewcat/pls_driver
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import mewcp  # noqa: E402
from benchmarks import common  # noqa: E402

GEN_REF = 112962.14


def _median(ts: list[float]) -> float:
    return statistics.median(ts)


def _fmt(t: float) -> str:
    return "miss" if not np.isfinite(t) else f"{t * 1e3:.1f} ms"


def part_a(seeds: int, seeds_pls: int, limit: float, pls_binary: str | None) -> dict[str, Any]:
    rows = [r for r in csv.DictReader((REPO / "instances" / "best_known.csv").open()) if r["family"] == "dimacs"]
    warm = mewcp.read(REPO / "instances" / "dimacs" / "johnson8-2-4.wclq")
    for m in ("pls", "tabu", "memetic"):
        mewcp.solve(warm, 4, m, size="at_most", seed=0, max_iters=50)
    out = []
    for r in rows:
        path = REPO / "instances" / r["file"]
        p = mewcp.read(path)
        k, ref = int(r["k"]), float(r["best_known"])
        rec: dict[str, Any] = {"instance": path.stem, "n": p.n, "k": k, "optimum": ref}
        for m in ("pls", "tabu", "memetic"):
            ts = []
            for s in range(seeds_pls if m == "pls" else seeds):
                sol = mewcp.solve(p, k, m, size="at_most", seed=s, time_limit=limit, target=ref)
                ts.append(next((t for t, v in sol.trace if v >= ref - 1e-9), np.inf))
            rec[m] = ts
        if pls_binary:
            ts = []
            for s in range(seeds_pls):
                res = subprocess.run([pls_binary, str(path), str(int(ref)), str(s + 1), str(limit)],
                                     capture_output=True, text=True, timeout=limit + 30, check=True)
                w, t, _ = res.stdout.split()
                ts.append(float(t) if int(w) >= ref else np.inf)
            rec["PLS C++"] = ts
        out.append(rec)
        print(path.stem, {m: _fmt(_median(rec[m])) for m in rec if isinstance(rec[m], list)}, flush=True)
    return {"rows": out, "seeds": seeds, "seeds_pls": seeds_pls}


def part_b(seeds: int) -> dict[str, Any]:
    w_gen = common.uniform_diversity_matrix(2000, 2000)
    assert abs(w_gen.sum() / 2 - 9_990_770.95) < 1e-3
    p = mewcp.as_problem(w_gen)
    w = np.triu(np.random.default_rng(0).random((60, 60)), 1)
    for m in ("tabu", "memetic"):  # compile every path (restarts, children) first
        mewcp.solve(w + w.T, 10, m, seed=0, max_stall=10, patience=8)
    out: dict[str, Any] = {}
    variants = {"tabu": ("tabu", {}), "memetic": ("memetic", {}),  # and OBMA's schedule, side by side
                "memetic, opposition_every=1": ("memetic", {"opposition_every": 1})}
    for label, (m, options) in variants.items():
        runs = []
        for s in range(seeds):
            c0 = time.process_time()
            sol = mewcp.solve(p, 200, m, seed=s, time_limit=10, target=GEN_REF - 1e-3, **options)
            cpu = time.process_time() - c0  # the solve stops at the target: CPU seconds to it
            t = next((t for t, v in sol.trace if v >= GEN_REF - 1e-3), np.inf)
            runs.append({"seed": s, "weight": sol.weight, "time": t, "cpu": cpu if np.isfinite(t) else np.inf})
            print(label, s, sol.weight, _fmt(t), f"cpu {cpu:.2f} s", flush=True)
        out[label] = runs
    return out


def part_c() -> dict[str, Any]:
    n, m = 1_000_000, 10_000_000
    rng = np.random.default_rng(1)
    r, c = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = r != c
    key = np.unique(np.minimum(r[keep], c[keep]) * n + np.maximum(r[keep], c[keep]))
    lo, hi = key // n, key % n
    del r, c, keep, key
    w = rng.uniform(0, 2, lo.size)
    a = sp.csr_array((np.concatenate([w, w]), (np.concatenate([lo, hi]), np.concatenate([hi, lo]))), shape=(n, n))
    del lo, hi
    heaviest = float(w.max())
    mewcp.solve(mewcp.as_problem(a[:2000, :2000]), 5, "tabu", size="at_most", seed=0, max_iters=20)
    c0, t0 = time.process_time(), time.perf_counter()
    p = mewcp.as_problem(a)
    c1, t1 = time.process_time(), time.perf_counter()
    sol = mewcp.solve(p, 20, "ehgp", size="at_most")
    c2, t2 = time.process_time(), time.perf_counter()
    tabu = mewcp.solve(p, 20, "tabu", size="at_most", seed=0, time_limit=10)
    t3 = time.perf_counter()
    res = {"edges": int(a.nnz // 2), "heaviest_edge": heaviest, "as_problem_s": t1 - t0, "ehgp_s": t2 - t1,
           "as_problem_cpu_s": c1 - c0, "ehgp_cpu_s": c2 - c1,
           "ehgp_weight": sol.weight, "ehgp_size": sol.size, "tabu_wall_s": t3 - t2, "tabu_weight": tabu.weight,
           "tabu_size": tabu.size, "tabu_iterations": tabu.n_iter, "tabu_message": tabu.message,
           "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    print(res, flush=True)
    return res


def part_d(n: int) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    w = rng.random((n, n))
    w = np.triu(w, 1)
    w += w.T
    mewcp.solve(w[:100, :100].copy(), 50)
    t0 = time.perf_counter()
    mewcp.as_problem(w)
    t1 = time.perf_counter()
    tracemalloc.start()
    t2 = time.perf_counter()
    sol = mewcp.solve(w, n // 2)
    t3 = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t4 = time.perf_counter()
    w.sum(axis=1)
    floor = time.perf_counter() - t4
    res = {"n": n, "bytes": w.nbytes, "as_problem_s": t1 - t0, "solve_s": t3 - t2, "row_sum_s": floor,
           "extra_peak_bytes": peak, "peak_ratio": (w.nbytes + peak) / w.nbytes, "weight": sol.weight}
    print(res, flush=True)
    return res


def _when(rep: common.Report, part: dict[str, Any]) -> None:
    if "when" in part:  # parts run separately carry their own date and load
        rep.para(f"Run {part['when']}.")


def report(res: dict[str, Any]) -> str:
    rep = common.Report("Heuristics: issue 16 targets")
    rep.generated_by("benchmarks/heuristics.py", date=res.get("date", "an unrecorded date"), note=(
        f"; machine: {res.get('cpu', common.cpu_name())}, {res['cpu_count']} cores, possibly shared with other jobs "
        f"(load average {res['load']} when the report was written; each part states its own): where it was loaded, "
        f"absolute times are inflated and noisy, and ratios in one run are what count."))
    if "A" in res:
        a = res["A"]
        has = any("PLS C++" in r for r in a["rows"])
        cols = ["pls", "tabu", "memetic"] + (["PLS C++"] if has else [])
        rep.heading(f"A. Shipped DIMACS graphs, k = k*, size='at_most' (median time to the optimum, hits; "
                    f"pls and PLS C++ {a.get('seeds_pls', res['seeds_a'])} seeds, tabu and memetic "
                    f"{a.get('seeds', res['seeds_a'])})")
        _when(rep, a)
        rows = []
        for r in a["rows"]:
            cells = [f"{_fmt(_median(r[c]))} ({sum(np.isfinite(r[c]))}/{len(r[c])})" for c in cols]
            ratio = [f"{_median(r['pls'][:5]) / max(_median(r['PLS C++'][:5]), 1e-4):.1f}x",
                     f"{_median(r['pls']) / max(_median(r['PLS C++']), 1e-4):.1f}x"] if has else []
            rows.append([r["instance"], r["n"], r["k"], *cells, *ratio])
        rep.table(["instance", "n", "k", *cols, *(["pls / PLS C++, seeds 0-4", "all seeds"] if has else [])], rows,
                  align="lrr" + "r" * len(cols) + ("rr" if has else ""))
        rep.para("PLS C++ times are wall seconds from its search's start (graph read excluded), floored at "
                 "0.1 ms for the ratio; mewcp times are wall seconds on the solve's clock.")
    if "B" in res:
        rep.heading("B. Generated n = 2000, m = 200 (10 s, target 112,962.14)")
        _when(rep, res["B"])
        rows = []
        for m, runs in res["B"].items():
            if m == "when":
                continue
            ts = [r["time"] for r in runs]
            cpu = [r.get("cpu", np.nan) for r in runs]
            rows.append([m, f"{sum(np.isfinite(ts))}/{len(ts)}", _fmt(_median(ts)), _fmt(_median(cpu)),
                         _fmt(_median(cpu[:5])), ", ".join(_fmt(t) for t in ts),
                         ", ".join(f"{r['weight']:,.2f}" for r in runs)])
        rep.table(["method", "hits", "median wall time", "median CPU time", "median CPU time, seeds 0-4",
                   "wall times", "weights"], rows, align="lrrrrll")
        rep.para("Wall time: on the solve's clock, to the first trace entry at the target; CPU time: the "
                 "process's CPU seconds for the whole solve, which stops at the target (the issue's measure; "
                 "on a loaded machine the wall time is inflated by the other jobs).")
    if "C" in res:
        c = res["C"]
        rep.heading("C. A million vertices, 10M edges, k = 20, size='at_most'")
        _when(rep, c)
        rep.bullets([
            f"edges {c['edges']:,}; heaviest edge {c['heaviest_edge']:.4f}",
            f"as_problem {c['as_problem_s']:.2f} s, ehgp {c['ehgp_s']:.2f} s wall"
            + (f" ({c['as_problem_cpu_s']:.2f} s + {c['ehgp_cpu_s']:.2f} s = "
               f"{c['as_problem_cpu_s'] + c['ehgp_cpu_s']:.2f} s CPU)" if "ehgp_cpu_s" in c else "")
            + f"; ehgp answer {c['ehgp_weight']:.4f} ({c['ehgp_size']} vertices)",
            f"tabu, time_limit=10: returned after {c['tabu_wall_s']:.2f} s wall, {c['tabu_iterations']} "
            f"iterations, {c['tabu_weight']:.4f} ({c['tabu_size']} vertices): {c['tabu_message']}",
            f"peak RSS of the process (graph generation included) {common.fmt_bytes(c['peak_rss_bytes'])}"])
    if "D" in res:
        d = res["D"]
        rep.heading(f"D. Dense n = {d['n']} ({common.fmt_bytes(d['bytes'])})")
        _when(rep, d)
        rep.bullets([f"as_problem {d['as_problem_s']:.2f} s (one `W.sum(1)`: {d['row_sum_s']:.2f} s)",
                     f"solve(W, n // 2) {d['solve_s']:.2f} s; peak memory (W + traced extra) / W = "
                     f"{d['peak_ratio']:.3f}"])
    return rep.text()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="ABCD")
    ap.add_argument("--seeds", type=int, default=5, help="seeds per method and instance (part A: tabu, memetic)")
    ap.add_argument("--seeds-pls", type=int, default=101, help="part A: seeds for pls and PLS C++")
    ap.add_argument("--limit-dimacs", type=float, default=5.0)
    ap.add_argument("--pls-binary", default=None)
    ap.add_argument("--dense-n", type=int, default=20000, help="part D: vertices of the dense graph (20000: 3.2 GB)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--render-only", action="store_true", help="rewrite heuristics.md from the JSON in --out")
    args = ap.parse_args()
    previous = args.out / "heuristics.json"
    if args.render_only:
        common.write_atomic(args.out / "heuristics.md", report(json.loads(previous.read_text())))
        return
    res: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() and args.parts != "ABCD" else {}
    res.update({"cpu_count": os.cpu_count(), "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
                "seeds_a": args.seeds, "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                "cpu": common.cpu_name()})  # a partial run keeps the other parts of the last run
    parts = {"A": lambda: part_a(args.seeds, args.seeds_pls, args.limit_dimacs, args.pls_binary), "B": lambda: part_b(args.seeds),
             "C": part_c, "D": lambda: part_d(args.dense_n)}
    for name, run in parts.items():
        if name in args.parts:
            res[name] = run()
            res[name]["when"] = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
                                 f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the part's end")
    args.out.mkdir(parents=True, exist_ok=True)
    common.write_atomic(args.out / "heuristics.json", json.dumps(res, indent=1, default=float))
    text = report(res)
    common.write_atomic(args.out / "heuristics.md", text)
    print(text)


if __name__ == "__main__":
    main()
