"""Exact solvers side by side: mewcp's `bnb` and `ilp`, and the public MEWCat C++ solver.

For every shipped DIMACS graph (``instances/dimacs``) at k = k* (the size of the
published optimal clique; the optimum must equal the published value), k* - 1 and
ceil(k*/2) (no published values: the first certified table below k*), and for every
shipped MDPLIB instance with n <= 100 at k = m, one run each of

* ``mewcp.solve(p, k, "bnb", time_limit=CAP_BNB, seed=0)`` (its `tabu` start inside),
* ``mewcp.solve(p, k, "ilp", time_limit=CAP_ILP, seed=0)`` (HiGHS, strong formulation),
* MEWCat (Liu, Xiao & Zhou, AAAI-24; github.com/afkbrb/MEWCat), built from its public
  source in a scratch folder outside the repository (``--mewcat``), on the DIMACS
  graphs at k = k* only: it has no cardinality bound, so k* is where the two solve
  the same problem. Its "total" is its PLS start plus its search, as it prints them.

Times are wall-clock seconds of single runs, one run at a time, on whatever machine
runs the script (recorded in the results); the ratio bnb / MEWCat is measured in the
same run, instance by instance. Run from the repository root::

    .venv/bin/python benchmarks/exact_solvers.py                      # everything
    .venv/bin/python benchmarks/exact_solvers.py --only brock200_2 keller4 --ks star
    .venv/bin/python benchmarks/exact_solvers.py --time-limits 0.5 2   # every proving method vs its limit
    .venv/bin/python benchmarks/exact_solvers.py --render-only

Results: ``benchmarks/results/exact_solvers.json`` (rewritten atomically after every
run, so an interrupted run keeps what it measured; runs already there are skipped
unless ``--fresh``) and ``exact_solvers.md`` rendered from it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make the local package importable
    sys.path.insert(0, str(REPO))

import mewcp  # noqa: E402
from benchmarks import common  # noqa: E402

INSTANCES = REPO / "instances"
OUT = REPO / "benchmarks" / "results"
NAME = "exact_solvers"
MEWCAT = Path("/work/scratch/mewcat/mewcat")
#: Targets of issue 15.
TARGET_STAR_S = 10.0  # every DIMACS optimum at k = k* proven by bnb within this
TARGET_BELOW_S = 60.0  # every DIMACS graph at k*-1 and ceil(k*/2) proven within this
REL_TOL = 1e-6


def catalogue() -> list[dict[str, Any]]:
    """Shipped instances from ``instances/best_known.csv``: DIMACS, and MDPLIB with n <= 100."""
    out = []
    with open(INSTANCES / "best_known.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            n = int(row["n"])
            if row["family"] != "dimacs" and (n > 100 or not row["best_known"]):
                continue
            out.append({"name": Path(row["file"]).stem, "file": row["file"], "dimacs": row["family"] == "dimacs",
                        "n": n, "k_star": int(row["k"]),
                        "published": float(row["best_known"]) if row["best_known"] else None})
    return out


def ks_of(inst: dict[str, Any], labels: list[str]) -> list[tuple[str, int]]:
    """(label, k) pairs: k*, k*-1, ceil(k*/2) for DIMACS (deduplicated), m for MDPLIB."""
    ks = inst["k_star"]
    if not inst["dimacs"]:
        return [("m", ks)] if "star" in labels else []
    pairs = {"star": ("k*", ks), "minus": ("k*-1", ks - 1), "half": ("⌈k*/2⌉", math.ceil(ks / 2))}
    out: list[tuple[str, int]] = []
    for lab in labels:
        label, k = pairs[lab]
        if k >= 1 and k not in [x[1] for x in out]:
            out.append((label, k))
    return out


def run_mewcp(problem: mewcp.Problem, k: int, method: str, cap: float) -> dict[str, Any]:
    cpu = time.process_time()
    sol = mewcp.solve(problem, k, method, time_limit=cap, seed=0)
    cpu = time.process_time() - cpu
    start = sol.trace[0][1] if sol.trace else None
    return {"status": sol.status.value, "value": None if not sol.found else sol.weight, "bound": sol.bound,
            "time": sol.runtime, "cpu": cpu, "nodes": sol.n_iter, "size": sol.size, "start": start,
            "message": sol.message}


def run_mewcat(path: Path, file: Path, cap: float) -> dict[str, Any]:
    wall = time.perf_counter()
    try:
        proc = subprocess.run([str(path), str(file)], capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "time": cap}
    wall = time.perf_counter() - wall
    text = proc.stdout

    def grab(key: str) -> float | None:
        m = re.search(rf"^{key}:\s*([-0-9.]+)", text, re.M)
        return float(m.group(1)) if m else None

    return {"status": "optimal" if proc.returncode == 0 and grab("opt") is not None else f"rc {proc.returncode}",
            "value": grab("opt"), "pls": grab("PLS time"), "search": grab("search time"),
            "time": grab("total time"), "nodes": grab("node explored"), "wall": wall}


def time_limit_graphs() -> dict[str, tuple[Any, int]]:
    """The issue's two 500-vertex graphs: complete (uniform weights, k = 50), G(500, 0.5) (k = 10)."""
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    w = rng.uniform(0, 10, size=(500, 500))
    w = np.triu(w, 1) + np.triu(w, 1).T
    upper = np.triu(rng.uniform(size=(500, 500)) < 0.5, 1)
    g = sp.csr_array(np.where(upper | upper.T, np.floor(w * 20) + 1, 0.0))
    return {"complete n=500, k=50": (w, 50), "G(500, 0.5), k=10": (g, 10)}


def run_time_limits(limits: list[float]) -> list[dict[str, Any]]:
    """Wall time of every proving method (kind "proven") against its limit; one unrecorded call first (compiled kernels)."""
    out = []
    for gname, (data, k) in time_limit_graphs().items():
        problem = mewcp.as_problem(data)
        for method, opts in [("bnb", {}), ("ilp", {"backend": "highs"}), ("ilp", {"backend": "scipy"}),
                             ("ilp", {"backend": "cbc"}), ("brute", {})]:
            label = method + (f" ({opts['backend']})" if opts else "")
            try:  # long enough to reach (and compile) every kernel of the method, start heuristic included
                mewcp.solve(problem, k, method, time_limit=3.0, seed=0, **opts)
            except ValueError as exc:
                out.append({"graph": gname, "method": label, "refused": str(exc)})
                continue
            for limit in limits:
                sol = mewcp.solve(problem, k, method, time_limit=limit, seed=0, **opts)
                out.append({"graph": gname, "method": label, "limit": limit, "time": sol.runtime,
                            "status": sol.status.value})
                print(f"{gname:22s} {label:12s} limit {limit:4.1f}  {sol.runtime:6.2f} s  {sol.status.value}", flush=True)
    return out


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"runs": {}}


def save(path: Path, data: dict[str, Any]) -> None:
    """The JSON, then the report rendered from it, each written atomically."""
    common.write_atomic(path, json.dumps(data, indent=1, sort_keys=True))
    common.write_atomic(path.with_suffix(".md"), render(data))


def fmt_t(r: dict[str, Any] | None) -> str:
    if r is None:
        return "—"
    if r["status"] == "optimal":
        return f"{r['time']:.2f}"
    if r["status"] == "timeout":
        return f"≥{r['time']:.0f}"
    if r["status"] == "feasible":
        gap = "" if r.get("bound") is None or not r.get("value") else f", gap {(r['bound'] - r['value']) / r['value']:.0%}"
        return f"≥{r['cap']:.0f} ({r['value']:.0f}{gap})"
    return r["status"]


def render(data: dict[str, Any]) -> str:
    runs = data["runs"]
    meta = data.get("meta", {})
    machine = meta.get("machine", {})
    rep = common.Report("Proving solvers (kind `proven`): `bnb`, `ilp` and MEWCat side by side")
    rep.generated_by("benchmarks/exact_solvers.py", note=(
        f" (last update {meta.get('updated', '?')}). Machine: {machine.get('cpu', '?')}, `os.cpu_count()` = "
        f"{machine.get('cpu_count', '?')}; {meta.get('note', '')}"))
    rep.para(f"Caps: bnb {meta.get('cap_bnb')} s, ilp {meta.get('cap_ilp')} s, MEWCat {meta.get('cap_mewcat')} s. "
             "A time is seconds to a proof of optimality (`status == optimal`, the whole `solve` call: "
             "validation, the pls start, the search); `≥cap (v, gap g)` = stopped at the cap with value v and "
             "gap (bound − v) / v. MEWCat's time is its PLS start plus its search, as it prints them; "
             "it has no cardinality bound, so it runs at k = k* only. It prints CPU time (`clock()`); the script also "
             "times its process (wall). bnb / MEWCat is the ratio of the two wall-clock times measured in this "
             "run (MEWCat's includes reading the graph), CPU / CPU the ratio of bnb's CPU time "
             "(`time.process_time` around `solve`) to MEWCat's printed total.")
    for dimacs in (True, False):
        rep.heading("DIMACS graphs (general graphs, MEWC)" if dimacs else "MDPLIB, n ≤ 100 (complete graphs, MDP), k = m")
        rows = []
        for _, r in sorted(runs.items(), key=lambda kv: (kv[1]["name"].lower(), -kv[1]["k"])):
            if r["dimacs"] != dimacs:
                continue
            b, i, m = r.get("bnb"), r.get("ilp"), r.get("mewcat")
            proven = next((x["value"] for x in (b, i, m) if x and x["status"] == "optimal" and x.get("value") is not None), None)
            ratio = cpu_ratio = "—"
            if b and m and b["status"] == "optimal" and m["status"] == "optimal" and m.get("time"):
                ratio = common.fmt_x(b["time"] / max(m.get("wall", m["time"]), 0.01))
                if b.get("cpu") is not None:
                    cpu_ratio = common.fmt_x(b["cpu"] / max(m["time"], 0.01))
            rows.append([r["name"], r["n"], f"{r['label']} = {r['k']}", common.fmt_objective(proven),
                         common.fmt_objective(r["published"]) if r["label"] in ("k*", "m") else "—", fmt_t(b),
                         b["nodes"] if b else "—", fmt_t(i), fmt_t(m),
                         int(m["nodes"]) if m and m.get("nodes") is not None else "—", ratio, cpu_ratio])
        rep.table(["instance", "n", "k", "proven optimum", "published", "bnb s", "bnb nodes", "ilp s", "MEWCat s",
                   "MEWCat nodes", "bnb / MEWCat", "CPU / CPU"], rows, align="lrlrrrrrrrrr")
    tl = data.get("time_limits")
    if tl:
        rep.heading("Time limits (kernels compiled: one unrecorded call first)")
        rep.table(["graph", "method", "limit s", "returned after s", "overrun s", "status"],
                  [[r["graph"], r["method"], "—", "refused at once", "—", f"`{r['refused'][:60]}…`"] if "refused" in r
                   else [r["graph"], r["method"], f"{r['limit']:.1f}", f"{r['time']:.2f}", f"{r['time'] - r['limit']:+.2f}",
                         r["status"]] for r in tl], align="llrrrl")
        worst = max((r["time"] - r["limit"] for r in tl if "refused" not in r), default=float("nan"))
        rep.bullets([f"Every proving method returns within time_limit + 0.5 s: worst overrun {worst:+.2f} s "
                     f"({common.met(worst <= 0.5)})."])
    targets(rep, runs)
    return rep.text()


def targets(rep: common.Report, runs: dict[str, Any]) -> None:
    dim = [r for r in runs.values() if r["dimacs"]]
    star = [r for r in dim if r["label"] == "k*"]
    below = [r for r in dim if r["label"] != "k*"]

    def ok(r: dict[str, Any], cap: float) -> bool:
        b = r.get("bnb")
        return bool(b) and b["status"] == "optimal" and b["time"] <= cap

    def right(r: dict[str, Any]) -> bool:
        b = r.get("bnb")
        return bool(b) and b.get("value") is not None and abs(b["value"] - r["published"]) <= REL_TOL * max(1, r["published"])

    rep.heading("Targets (issue 15)")
    n_ok = sum(ok(r, TARGET_STAR_S) and right(r) for r in star)
    worst = max((r["bnb"]["time"] for r in star if r.get("bnb")), default=float("nan"))
    items = [f"Every shipped DIMACS optimum proven by bnb at k = k* within {TARGET_STAR_S:.0f} s: "
             f"{n_ok} of {len(star)} ({common.met(bool(star) and n_ok == len(star))}; slowest {worst:.2f} s)."]
    cpu_ok = [r for r in star if r.get("bnb") and r["bnb"].get("cpu") is not None]
    if cpu_ok:
        n_cpu = sum(right(r) and r["bnb"]["status"] == "optimal" and r["bnb"]["cpu"] <= TARGET_STAR_S for r in cpu_ok)
        items.append(f"The same in CPU time (one core's work, whatever the load): {n_cpu} of {len(star)} within "
                     f"{TARGET_STAR_S:.0f} s; slowest {max(r['bnb']['cpu'] for r in cpu_ok):.2f} s.")
    ratios = [r["bnb"]["time"] / max(r["mewcat"].get("wall", r["mewcat"]["time"]), 0.01) for r in star
              if r.get("bnb") and r.get("mewcat") and r["bnb"]["status"] == "optimal" and r["mewcat"]["status"] == "optimal"]
    if ratios:
        gm = math.exp(sum(map(math.log, ratios)) / len(ratios))
        items.append(f"Stretch, within 2x MEWCat side by side (wall / wall): {sum(x <= 2 for x in ratios)} of {len(ratios)} "
                     f"within 2x; geometric mean bnb / MEWCat {gm:.2f}x, worst {max(ratios):.2f}x "
                     f"({common.met(max(ratios) <= 2)}).")
    cpu = [r["bnb"]["cpu"] / max(r["mewcat"]["time"], 0.01) for r in star
           if r.get("bnb") and r.get("mewcat") and r["bnb"].get("cpu") is not None and r["bnb"]["status"] == "optimal"
           and r["mewcat"]["status"] == "optimal"]
    if cpu:
        gm = math.exp(sum(map(math.log, cpu)) / len(cpu))
        items.append(f"The same in CPU time (CPU / CPU): {sum(x <= 2 for x in cpu)} of {len(cpu)} "
                     f"within 2x; geometric mean {gm:.2f}x, worst {max(cpu):.2f}x.")
    n_b = sum(ok(r, TARGET_BELOW_S) for r in below)
    items.append(f"Every shipped DIMACS graph proven at k*-1 and ⌈k*/2⌉ within {TARGET_BELOW_S:.0f} s: "
                 f"{n_b} of {len(below)} ({common.met(bool(below) and n_b == len(below))}).")
    rep.bullets(items)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cap-bnb", type=float, default=60.0)
    ap.add_argument("--cap-ilp", type=float, default=30.0)
    ap.add_argument("--cap-mewcat", type=float, default=60.0)
    ap.add_argument("--ks", nargs="+", default=["star", "minus", "half"], choices=["star", "minus", "half"])
    ap.add_argument("--only", nargs="+", default=None, help="instance names (file stems)")
    ap.add_argument("--no-ilp", action="store_true")
    ap.add_argument("--no-mdp", action="store_true")
    ap.add_argument("--mewcat", type=Path, default=MEWCAT, help="the MEWCat binary (built outside the repository)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--fresh", action="store_true", help="rerun runs already in the JSON")
    ap.add_argument("--note", default="", help="a line about the machine's state (e.g. shared, loaded)")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--time-limits", nargs="*", type=float, default=None,
                    help="only measure the time limits of every proving method (default limits 0.5 2)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{NAME}.json"
    data = load(path)
    if args.render_only:  # the stored runs and their meta as they are
        common.write_atomic(path.with_suffix(".md"), render(data))
        return 0
    data["meta"] = {"machine": common.machine_info("numpy", "numba", "highspy"), "cap_bnb": args.cap_bnb,
                    "cap_ilp": data.get("meta", {}).get("cap_ilp") if args.no_ilp else args.cap_ilp, "cap_mewcat": args.cap_mewcat, "note": args.note,
                    "updated": dt.datetime.now().isoformat(timespec="seconds")}
    if args.time_limits is not None:
        data["time_limits"] = run_time_limits(args.time_limits or [0.5, 2.0])
        save(path, data)
        return 0
    # compile the kernels once, outside every measured run
    warm = mewcp.read(INSTANCES / "dimacs" / "johnson8-2-4.wclq")
    for method in ("bnb", "ilp"):
        mewcp.solve(warm, 3, method, seed=0)
    have_mewcat = args.mewcat.exists()
    for inst in catalogue():
        if args.only and inst["name"] not in args.only or (args.no_mdp and not inst["dimacs"]):
            continue
        problem = mewcp.read(INSTANCES / inst["file"])
        for label, k in ks_of(inst, args.ks):
            key = f"{inst['name']}@{k}"
            entry = data["runs"].get(key)
            if entry and args.fresh:  # rerun what this run measures, keep the rest (e.g. ilp under --no-ilp)
                entry = {x: y for x, y in entry.items() if x not in ("bnb", "mewcat") and (x != "ilp" or args.no_ilp)}
            entry = entry or {"name": inst["name"], "n": inst["n"], "k": k, "label": label,
                              "dimacs": inst["dimacs"], "published": inst["published"]}
            if "bnb" not in entry:
                entry["bnb"] = run_mewcp(problem, k, "bnb", args.cap_bnb) | {"cap": args.cap_bnb}
            if not args.no_ilp and "ilp" not in entry:
                entry["ilp"] = run_mewcp(problem, k, "ilp", args.cap_ilp) | {"cap": args.cap_ilp}
            if have_mewcat and inst["dimacs"] and label == "k*" and "mewcat" not in entry:
                entry["mewcat"] = run_mewcat(args.mewcat, INSTANCES / inst["file"], args.cap_mewcat)
            data["runs"][key] = entry
            save(path, data)
            b = entry["bnb"]
            print(f"{key:28s} bnb {b['status']:9s} {b['time']:7.2f}s nodes {b['nodes']:>10}  "
                  f"ilp {entry.get('ilp', {}).get('status', '-'):9s}  mewcat {entry.get('mewcat', {}).get('time', '-')}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
