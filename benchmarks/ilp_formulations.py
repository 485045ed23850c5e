"""How fast does mewcp's `ilp` method prove optima, and how much does the strong formulation buy?

Every solve is ``mewcp.solve(problem, k, "ilp", size="exact", time_limit=CAP, seed=0,
backend=B, formulation=F, start=S)``: the time measured is the `Solution`'s ``runtime``
(validation, the tabu warm start when ``start="tabu"``, model building and the MILP
solve, all inside the same time limit).

Part 1 (``mdp`` and ``dimacs``). For each instance and k, the grid

    formulation in {strong, plain} x backend in {highs, cbc, scipy}, start="tabu",
    plus formulation="strong", backend="highs", start="random" (no warm start),

each with a per-run cap (``--cap``, default 60 s). A run that stops at the cap is a
lower bound on its time to prove optimality ("≥ cap").

* ``mdp``: every shipped GKD-b and SOM-a instance with n <= 50 and m <= 7, plus
  GKD-a_25_n10_m8; k = m; the published optima (exhaustive enumeration) are checked.
* ``dimacs``: hamming6-4, johnson8-2-4 and MANN_a9 always get the whole grid at
  k = k* (the size of the published optimal clique: the optimum must equal the
  published value), k* - 1 and k* // 2 (no published values). The other candidate
  graphs (``DIMACS_TRY``) are first *screened* at k = k* with the strong formulation
  on all three backends (and plain on highs); a graph that some strong run proves gets
  the whole grid at the three k, the others are reported from the screen alone.

Each (instance, k) also records the tabu warm start on its own (the same call the
`ilp` method makes: same seed and patience, so the same clique and time) and, where
`brute` accepts the instance, exhaustive enumeration as an independent oracle
(``--oracle-limit`` seconds).

Part 3 (``long``). The n = 50, m = 15 GKD-b instances (no published optimum): one run
each of the strong formulation, ``start="tabu"``, on the best backend of part 1 among
those that report a dual bound through mewcp (highs, scipy; CBC's bound is not
passed back), for ``--long-cap`` seconds (default 600).

Fairness: one solve at a time, in one worker process (restarted if a solve overruns
its cap by far). HiGHS (PuLP/highspy and scipy) runs with its default ``threads``
option (mewcp exposes no knob for it); CBC runs single-threaded (PuLP passes no
``threads``). Every run records CPU seconds (process + children) next to wall time,
so any parallelism shows as CPU / wall > 1.

Run from the repository root::

    .venv/bin/python benchmarks/ilp_formulations.py                 # everything (~2-3 h; long part ~40 min)
    .venv/bin/python benchmarks/ilp_formulations.py --skip-long     # parts 1 only
    .venv/bin/python benchmarks/ilp_formulations.py --only-long     # part 3 only
    .venv/bin/python benchmarks/ilp_formulations.py --render-only   # Markdown from the JSON there is
    .venv/bin/python benchmarks/ilp_formulations.py --quick --out /tmp/ex   # smoke run, ~3 minutes

Results go to ``--out`` (default ``benchmarks/results/``): ``ilp_formulations.json`` holds one
entry per part under ``"parts"``, rewritten (under a lock on the folder) after every
solve; ``ilp_formulations.md`` is rendered from whatever parts the JSON holds, after every solve
too, so a part can run in the background while another is rendered.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import fcntl
import json
import math
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make the local package importable
    sys.path.insert(0, str(REPO))

from benchmarks import common  # noqa: E402

INSTANCES = REPO / "instances"
DEFAULT_OUT = REPO / "benchmarks" / "results"
JSON_NAME = "ilp_formulations.json"
MD_NAME = "ilp_formulations.md"

#: (formulation, backend, start) of every run of the grid, in table order.
GRID: tuple[tuple[str, str, str], ...] = (
    ("strong", "highs", "tabu"),
    ("strong", "cbc", "tabu"),
    ("strong", "scipy", "tabu"),
    ("plain", "highs", "tabu"),
    ("plain", "cbc", "tabu"),
    ("plain", "scipy", "tabu"),
    ("strong", "highs", "random"),
)
BACKENDS = ("highs", "cbc", "scipy")
#: Backends whose dual bound mewcp passes back when a time limit stops them.
BOUND_BACKENDS = ("highs", "scipy")
SCREEN: tuple[tuple[str, str, str], ...] = GRID[:4]  # strong x 3 backends, plain highs
SEED = 0
REL_TOL = 1e-6  # |value - published| <= REL_TOL * max(1, published) counts as equal

DIMACS_CORE = ("hamming6-4", "johnson8-2-4", "MANN_a9")
DIMACS_TRY = ("johnson8-4-4", "hamming6-2", "c-fat200-1", "c-fat200-2", "c-fat500-1", "p_hat300-1",
              "keller4", "C125.9", "brock200_2")
LONG_NAMES = ("GKD-b_16_n50_m15", "GKD-b_17_n50_m15", "GKD-b_19_n50_m15", "GKD-b_20_n50_m15")

QUICK_MDP = ("GKD-a_25_n10_m8", "GKD-b_1_n25_m2")
QUICK_DIMACS_CORE = ("johnson8-2-4",)
QUICK_LONG = ("GKD-b_16_n50_m15",)

#: Targets.
TARGET_A_S = 60.0  # (a) every GKD-b / SOM-a instance with n <= 50, m <= 7 proven within this
TARGET_B_X = 5.0  # (b) strong at least this many times faster than plain (geometric mean)
MEWCAT_S = 8.0  # (c) MEWCat: every shipped DIMACS optimum proven within 8 s


# ---------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------


def load_catalogue() -> dict[str, dict[str, Any]]:
    """``instances/best_known.csv`` keyed by instance name (file stem)."""
    out: dict[str, dict[str, Any]] = {}
    with open(INSTANCES / "best_known.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            name = Path(row["file"]).stem
            out[name] = {
                "name": name,
                "file": row["file"],
                "family": row["family"],
                "n": int(row["n"]),
                "k_star": int(row["k"]),
                "published": float(row["best_known"]) if row["best_known"] else None,
                "source": row["source"],
                "reference_ts": float(row["reference_ts"]) if row["reference_ts"] else None,
            }
    return out


def mdp_set(cat: dict[str, dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    if quick:
        return [cat[name] for name in QUICK_MDP]
    chosen = [r for r in cat.values()
              if r["family"] in ("GKD-b", "SOM-a") and r["n"] <= 50 and r["k_star"] <= 7]
    chosen.sort(key=lambda r: (r["family"], r["n"], r["k_star"], r["name"]))
    return chosen + [cat["GKD-a_25_n10_m8"]]


def in_target_set(inst: dict[str, Any]) -> bool:
    """The set of targets (a) and (b): GKD-b and SOM-a with n <= 50 and m <= 7."""
    return inst["family"] in ("GKD-b", "SOM-a") and inst["n"] <= 50 and inst["k_star"] <= 7


def dimacs_ks(k_star: int) -> list[tuple[str, int]]:
    ks = [("k*", k_star), ("k*-1", k_star - 1), ("k*//2", k_star // 2)]
    seen: set[int] = set()
    out = []
    for label, k in ks:
        if k >= 2 and k not in seen:
            seen.add(k)
            out.append((label, k))
    return out


# ---------------------------------------------------------------------------
# The worker: one process that runs every solve, one at a time
# ---------------------------------------------------------------------------


def _cpu_seconds() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)  # CBC runs as a child process
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _num(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _versions() -> dict[str, Any]:
    import importlib.metadata as md

    import numba
    import numpy as np
    import scipy

    import mewcp

    info: dict[str, Any] = {"numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
                            "mewcp": getattr(mewcp, "__version__", "?")}
    for dist in ("PuLP", "highspy", "cbcbox"):
        try:
            info[dist.lower()] = md.version(dist)
        except md.PackageNotFoundError:
            info[dist.lower()] = None
    try:
        import highspy

        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        info["highs_threads_option"] = h.getOptionValue("threads")[1]
        info["highs"] = h.version()
    except Exception as exc:  # noqa: BLE001
        info["highs"] = f"unavailable: {exc}"
    try:
        import cbcbox

        path = cbcbox.cbc_bin_path()
        text = subprocess.run([path, "-quit"], capture_output=True, text=True, timeout=20).stdout
        info["cbc"] = text.splitlines()[0].strip() if text else "?"
    except Exception as exc:  # noqa: BLE001
        info["cbc"] = f"unavailable: {exc}"
    return info


def _execute(task: dict[str, Any], cache: dict[str, Any]) -> dict[str, Any]:
    import mewcp
    from mewcp.solvers.local_search import DEFAULT_PATIENCE

    if task["kind"] == "info":
        return _versions()
    if task["file"] not in cache:
        cache.clear()  # keep one instance in memory
        cache[task["file"]] = mewcp.read(INSTANCES / task["file"])
    problem = cache[task["file"]]
    k, cap = task["k"], task["cap"]
    t0, c0 = time.perf_counter(), _cpu_seconds()
    if task["kind"] == "ilp":
        sol = mewcp.solve(problem, k, "ilp", size="exact", time_limit=cap, seed=SEED,
                          backend=task["backend"], formulation=task["formulation"], start=task["start"])
    elif task["kind"] == "tabu":  # what the ilp method's start="tabu" computes
        sol = mewcp.solve(problem, k, "tabu", size="exact", time_limit=cap, seed=SEED, patience=DEFAULT_PATIENCE)
    elif task["kind"] == "brute":
        try:
            sol = mewcp.solve(problem, k, "brute", size="exact", time_limit=cap)
        except ValueError as exc:
            return {"refused": str(exc)}
    else:
        raise ValueError(task["kind"])
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return {
        "status": sol.status.value,
        "value": _num(sol.weight),
        "bound": _num(sol.bound),
        "gap": _num(sol.gap),
        "runtime": sol.runtime,
        "wall": wall,
        "cpu": cpu,
        "message": sol.message,
        "clique": [int(i) for i in sol.indices],
        "n": problem.n,
        "edges": int(problem.n_edges),
    }


def _worker_main(conn: Any) -> None:
    """Serve tasks from the pipe until told to stop (None) or the parent goes away."""
    import numpy as np

    import mewcp

    w = np.random.default_rng(0).random((12, 12))
    w = np.triu(w, 1) + np.triu(w, 1).T
    mewcp.solve(w, 5, "tabu", seed=0)  # compile / load numba's cache outside every timing
    mewcp.solve(w, 5, "ehgp")
    cache: dict[str, Any] = {}
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            result = _execute(task, cache)
        except Exception as exc:  # noqa: BLE001
            result = {"error": f"{type(exc).__name__}: {exc}"}
        conn.send(result)


class Worker:
    """A spawned process running the solves; killed and restarted when one overruns."""

    def __init__(self) -> None:
        self.ctx = mp.get_context("spawn")
        self.proc: Any = None
        self.conn: Any = None

    def _start(self) -> None:
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(10)
        self.proc = self.conn = None

    def run(self, task: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send(task)
        if self.conn.poll(timeout + 120.0):  # + time for a fresh worker's imports and warm-up
            try:
                return self.conn.recv()
            except (EOFError, OSError):
                self._kill()
                return {"error": "the worker process died during the solve"}
        self._kill()
        return {"error": f"no answer within {timeout + 120:.0f} s: worker killed"}

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(10)
            except (OSError, BrokenPipeError):
                pass
        if self.proc is not None and self.proc.is_alive():
            self._kill()


# ---------------------------------------------------------------------------
# Results file: one JSON with a part per key, merged under a lock on the folder
# ---------------------------------------------------------------------------


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_results(folder: Path) -> dict[str, Any]:
    path = folder / JSON_NAME
    if not path.exists():
        return {"parts": {}}
    return json.loads(path.read_text())


def save_part(folder: Path, name: str, part: dict[str, Any], machine: dict[str, Any]) -> None:
    """Merge one part into the JSON and re-render the Markdown, atomically, under the lock."""
    with locked(folder):
        data = read_results(folder)
        data.setdefault("parts", {})[name] = part
        data["machine"] = machine
        data["updated"] = now()
        common.write_atomic(folder / JSON_NAME, json.dumps(data, indent=1, allow_nan=False) + "\n")
        common.write_atomic(folder / MD_NAME, render_markdown(data))


def now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def machine_info(versions: dict[str, Any]) -> dict[str, Any]:
    return {**common.machine_info(), **versions}


# ---------------------------------------------------------------------------
# Running a part
# ---------------------------------------------------------------------------


def run_key(kind: str, inst: str, k: int, cap: float, formulation: str = "", backend: str = "",
            start: str = "") -> str:
    return f"{kind}|{inst}|{k}|{formulation}|{backend}|{start}|{cap:g}"


class Part:
    """One part's records, saved after every solve; reuses earlier records with --resume."""

    def __init__(self, name: str, args: argparse.Namespace, worker: Worker, machine: dict[str, Any]) -> None:
        self.name, self.args, self.worker, self.machine = name, args, worker, machine
        self.previous: dict[str, dict[str, Any]] = {}
        if args.resume:
            old = read_results(args.out)["parts"].get(name)
            if old and old.get("quick") == args.quick:
                self.previous = {r["key"]: r for r in old["records"] if "error" not in r}
        self.data: dict[str, Any] = {
            "part": name, "quick": args.quick, "cap": args.long_cap if name == "long" else args.cap,
            "oracle_limit": args.oracle_limit, "one_core": args.one_core, "cpus": args.affinity, "started": now(), "finished": None, "complete": False,
            "instances": {}, "records": [], "notes": [],
        }

    def instance(self, inst: dict[str, Any]) -> None:
        self.data["instances"][inst["name"]] = inst
        self.save()

    def solve(self, kind: str, inst: dict[str, Any], k: int, k_label: str, cap: float, formulation: str = "",
              backend: str = "", start: str = "") -> dict[str, Any]:
        key = run_key(kind, inst["name"], k, cap, formulation, backend, start)
        rec = self.previous.get(key)
        if rec is None:
            task = {"kind": kind, "file": inst["file"], "k": k, "cap": cap, "formulation": formulation,
                    "backend": backend, "start": start}
            t0 = time.perf_counter()
            result = self.worker.run(task, timeout=cap * 1.25 + 60)
            rec = {"key": key, "kind": kind, "instance": inst["name"], "k": k, "k_label": k_label, "cap": cap,
                   "formulation": formulation, "backend": backend, "start": start,
                   "outer_wall": time.perf_counter() - t0, "at": now(), **result}
        self.data["records"].append(rec)
        inst_meta = self.data["instances"].get(inst["name"])
        if inst_meta is not None and "edges" in rec:
            inst_meta["edges"] = rec["edges"]
        what = f"{kind} {formulation} {backend} {start}".replace("  ", " ").strip()
        if "error" in rec:
            line = f"ERROR {rec['error']}"
        elif "refused" in rec:
            line = "refused (too big for brute)"
        else:
            line = (f"{rec['status']:<11} value={rec['value']} bound={rec['bound']} "
                    f"t={rec['runtime']:.2f}s cpu/wall={rec['cpu'] / max(rec['wall'], 1e-9):.2f}")
        print(f"[{self.name}] {inst['name']} k={k} ({k_label}) {what}: {line}", flush=True)
        self.save()
        return rec

    def save(self) -> None:
        save_part(self.args.out, self.name, self.data, self.machine)

    def finish(self) -> None:
        self.data["finished"] = now()
        self.data["complete"] = True
        self.save()


def grid_for(part: Part, inst: dict[str, Any], k: int, k_label: str, cap: float,
             skip: set[tuple[str, str, str]] | None = None) -> None:
    """Warm start alone, the brute oracle, then every run of the grid."""
    part.solve("tabu", inst, k, k_label, cap)
    part.solve("brute", inst, k, k_label, part.args.oracle_limit)
    for f, b, s in GRID:
        if skip and (f, b, s) in skip:
            continue
        part.solve("ilp", inst, k, k_label, cap, f, b, s)


def run_mdp(args: argparse.Namespace, worker: Worker, machine: dict[str, Any], cat: dict[str, Any]) -> None:
    part = Part("mdp", args, worker, machine)
    for inst in mdp_set(cat, args.quick):
        part.instance(dict(inst))
        grid_for(part, inst, inst["k_star"], "m", args.cap)
    part.finish()


def run_dimacs(args: argparse.Namespace, worker: Worker, machine: dict[str, Any], cat: dict[str, Any]) -> None:
    part = Part("dimacs", args, worker, machine)
    core = QUICK_DIMACS_CORE if args.quick else DIMACS_CORE
    tried = () if args.quick else DIMACS_TRY
    for name in core:
        inst = dict(cat[name], role="core")
        part.instance(inst)
        for label, k in dimacs_ks(inst["k_star"]):
            grid_for(part, inst, k, label, args.cap)
    for name in tried:
        inst = dict(cat[name], role="try")
        part.instance(inst)
        k = inst["k_star"]
        part.solve("tabu", inst, k, "k*", args.cap)
        proven = False
        for f, b, s in SCREEN[:3]:
            rec = part.solve("ilp", inst, k, "k*", args.cap, f, b, s)
            proven |= rec.get("status") == "optimal"
        part.data["instances"][name]["qualified"] = proven
        if not proven:  # reported from the screen alone, plus plain on highs for comparison
            part.solve("ilp", inst, k, "k*", args.cap, *SCREEN[3])
            continue
        part.solve("brute", inst, k, "k*", args.oracle_limit)
        for f, b, s in GRID[3:]:
            part.solve("ilp", inst, k, "k*", args.cap, f, b, s)
        for label, kk in dimacs_ks(k)[1:]:
            grid_for(part, inst, kk, label, args.cap)
    part.finish()


def choose_long_backend(args: argparse.Namespace) -> tuple[str, str]:
    """The backend for part 3 and why."""
    if args.long_backend != "auto":
        return args.long_backend, "given on the command line (--long-backend)"
    mdp = read_results(args.out)["parts"].get("mdp")
    if not mdp:
        return "highs", "default (no part-1 results to choose from)"
    best = best_backend(mdp, "strong")
    with_bound = best_backend(mdp, "strong", BOUND_BACKENDS)
    if with_bound is None:
        return "highs", "default (part 1 has no strong runs on the target set)"
    why = (f"the fastest strong backend on the target set of part 1 (geometric mean of the time, cap as a lower "
           f"bound) among those whose dual bound mewcp reports ({', '.join(BOUND_BACKENDS)})")
    if best is not None and best[0] != with_bound[0]:
        why += f"; {best[0]} was faster overall ({best[1]:.2f} s vs {with_bound[1]:.2f} s) but reports no bound"
    return with_bound[0], why


def run_long(args: argparse.Namespace, worker: Worker, machine: dict[str, Any], cat: dict[str, Any]) -> None:
    backend, why = choose_long_backend(args)
    part = Part("long", args, worker, machine)
    part.data["backend"], part.data["backend_why"] = backend, why
    for name in QUICK_LONG if args.quick else LONG_NAMES:
        inst = dict(cat[name])
        part.instance(inst)
        part.solve("tabu", inst, inst["k_star"], "m", args.cap)
        part.solve("ilp", inst, inst["k_star"], "m", args.long_cap, "strong", backend, "tabu")
    part.finish()


# ---------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------


def ilp_runs(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in part["records"] if r["kind"] == "ilp"]


def find(part: dict[str, Any], kind: str, inst: str, k: int, f: str = "", b: str = "",
         s: str = "") -> dict[str, Any] | None:
    for r in part["records"]:
        if (r["kind"] == kind and r["instance"] == inst and r["k"] == k and r["formulation"] == f
                and r["backend"] == b and r["start"] == s):
            return r
    return None


def proved(r: dict[str, Any] | None) -> bool:
    return r is not None and r.get("status") == "optimal"


def eff_time(r: dict[str, Any] | None) -> tuple[float, bool] | None:
    """(seconds, is_lower_bound): the time to a proof, or the cap when none came."""
    if r is None:
        return None
    if proved(r):
        return float(r["runtime"]), False
    if r.get("status") == "infeasible":
        return float(r["runtime"]), False
    return float(r["cap"]), True


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def target_instances(part: dict[str, Any]) -> list[str]:
    return [name for name, inst in part["instances"].items() if in_target_set(inst)]


def best_backend(part: dict[str, Any], formulation: str,
                 backends: tuple[str, ...] = BACKENDS) -> tuple[str, float] | None:
    """Backend with the smallest geometric-mean time (cap for unproven) over the target set."""
    names = target_instances(part)
    scores = []
    for b in backends:
        ts = [eff_time(find(part, "ilp", n, part["instances"][n]["k_star"], formulation, b, "tabu"))
              for n in names]
        if ts and all(t is not None for t in ts):
            scores.append((geomean([t[0] for t in ts]), b))  # type: ignore[index]
    if not scores:
        return None
    g, b = min(scores)
    return b, g


def same(a: float, b: float) -> bool:
    return abs(a - b) <= REL_TOL * max(1.0, abs(b))


NOTE = "NOTE: "  # prefix of an observation (not an inconsistency) returned by `check_group`


def real(issues: list[str]) -> list[str]:
    return [i for i in issues if not i.startswith(NOTE)]


def check_group(part: dict[str, Any], inst: dict[str, Any], k: int, k_label: str) -> list[str]:
    """Consistency of every record for one (instance, k): the anomalies found, observations prefixed NOTE."""
    recs = [r for r in part["records"] if r["instance"] == inst["name"] and r["k"] == k]
    issues: list[str] = []
    published = inst["published"] if k_label in ("k*", "m") else None
    ceiling = inst["published"] if inst["family"] == "dimacs" else None  # unconstrained optimum
    found = [r["value"] for r in recs if r.get("value") is not None]
    best_found = max(found) if found else None
    proven = [r for r in recs if r.get("status") == "optimal"]

    def who(r: dict[str, Any]) -> str:
        if r["kind"] == "ilp":
            return f"ilp {r['formulation']}/{r['backend']}/start={r['start']}"
        return r["kind"]

    for r in recs:
        if "error" in r:
            issues.append(f"{who(r)}: error: {r['error']}")
            continue
        if "refused" in r:
            continue
        v, bnd = r.get("value"), r.get("bound")
        if r["status"] == "optimal" and published is not None and not same(v, published):
            issues.append(f"{who(r)} claims optimal with {v:.5f} but the published optimum is {published:.5f}")
        if v is not None and published is not None and v > published + REL_TOL * max(1.0, published):
            issues.append(f"{who(r)} found {v:.5f}, above the published optimum {published:.5f}")
        if v is not None and ceiling is not None and v > ceiling + REL_TOL * max(1.0, ceiling):
            issues.append(f"{who(r)} found {v:.5f}, above the unconstrained optimum {ceiling:.5f}")
        if bnd is not None and best_found is not None and bnd < best_found - REL_TOL * max(1.0, best_found):
            issues.append(f"{who(r)} reports bound {bnd:.5f} below a value found ({best_found:.5f}): invalid bound")
        if r["status"] == "optimal" and best_found is not None and not same(v, best_found):
            issues.append(f"{who(r)} claims optimal with {v:.5f} but {best_found:.5f} was found")
        if r["status"] == "infeasible" and found:
            issues.append(f"{who(r)} claims infeasible but a clique of size {k} was found")
        if r["kind"] == "ilp" and r["status"] != "optimal" and r["runtime"] < 0.9 * r["cap"]:
            issues.append(f"{who(r)} stopped with status {r['status']} after {r['runtime']:.1f} s, "
                          f"well before its {r['cap']:g} s cap ({r.get('message', '')})")
        if r["kind"] == "ilp" and r["wall"] > 1.0 and r["cpu"] / r["wall"] > 1.2:
            issues.append(f"{NOTE}{who(r)} used {r['cpu'] / r['wall']:.2f} cores on average (CPU / wall over "
                          f"{r['wall']:.0f} s): HiGHS ran a second thread")
        if r["kind"] == "ilp" and r["runtime"] > r["cap"] * 1.1 + 5:
            issues.append(f"{NOTE}{who(r)} ran {r['runtime']:.1f} s on a {r['cap']:g} s cap")
    values = {round(r["value"], 6) for r in proven}
    if len(values) > 1:
        issues.append(f"optimal runs disagree: {sorted(values)}")
    return issues


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------


def fmt_s(t: float) -> str:
    if t >= 100:
        return f"{t:.0f}"
    if t >= 10:
        return f"{t:.1f}"
    return f"{t:.2f}"


def cell(r: dict[str, Any] | None) -> str:
    """A run as a table cell: its time when proven, else ≥ cap with the gap."""
    if r is None:
        return "—"
    if "error" in r:
        return "ERROR"
    st = r["status"]
    if st == "optimal":
        return fmt_s(r["runtime"])
    if st == "infeasible":
        return f"infeasible, {fmt_s(r['runtime'])}"
    gap = f"gap {100 * r['gap']:.0f}%" if r.get("gap") is not None else "no bound"
    if st == "no_solution":
        return f"≥{r['cap']:g} (no solution, {gap})"
    return f"≥{r['cap']:g} ({gap})"


def side_cells(part: dict[str, Any], name: str, k: int) -> tuple[str, str]:
    tabu, brute = find(part, "tabu", name, k), find(part, "brute", name, k)
    t_txt = "—" if tabu is None or "error" in tabu else f"{common.fmt_objective(tabu['value'])} ({fmt_s(tabu['runtime'])} s)"
    if brute is None:
        b_txt = "—"
    elif "refused" in brute:
        b_txt = "too big"
    elif "error" in brute:
        b_txt = "ERROR"
    elif brute["status"] == "optimal":
        b_txt = f"{common.fmt_objective(brute['value'])} ({fmt_s(brute['runtime'])} s)"
    else:
        b_txt = f"stopped at {brute['cap']:g} s"
    return t_txt, b_txt


def proven_value(part: dict[str, Any], name: str, k: int) -> float | None:
    for r in part["records"]:
        if r["instance"] == name and r["k"] == k and r.get("status") == "optimal" and r["kind"] != "tabu":
            return r["value"]
    return None


GRID_HEAD = ("strong highs", "strong cbc", "strong scipy", "plain highs", "plain cbc", "plain scipy",
             "strong highs, no warm start")


def render_mdp(part: dict[str, Any], rep: common.Report, flags: list[str]) -> None:
    cap = part["cap"]
    rep.heading(f"Part 1a: MDPLIB instances (complete graphs), k = m, cap {cap:g} s per run")
    rep.para("Seconds to a proof of optimality (`status == optimal`); `≥cap (gap g)` = stopped at the cap "
             "without a proof, g = (bound − value) / value from the backend's dual bound (CBC's is not "
             "passed back by mewcp: \"no bound\"). Warm start = mewcp's `tabu` (seed 0), whose time is "
             "inside each run's time. Brute = `method=\"brute\"` (exhaustive enumeration, independent oracle).")
    rows = []
    for name, inst in part["instances"].items():
        k = inst["k_star"]
        t_txt, b_txt = side_cells(part, name, k)
        cells = [cell(find(part, "ilp", name, k, f, b, s)) for f, b, s in GRID]
        issues = check_group(part, inst, k, "m")
        flags.extend(f"{name} (k={k}): {msg}" for msg in issues)
        pv = proven_value(part, name, k)
        ok = ("—" if pv is None else ("yes" if same(pv, inst["published"]) else f"NO ({common.fmt_objective(pv)})"))
        if real(issues):
            ok += " (see flags)"
        rows.append([name, inst["n"], k, common.fmt_objective(inst["published"]), t_txt, b_txt, *cells, ok])
    rep.table(["instance", "n", "k", "published optimum", "tabu start: value (s)", "brute", *GRID_HEAD,
               "proven value = published"], rows, align="lrrrrr" + "r" * len(GRID_HEAD) + "l")


def render_targets_ab(part: dict[str, Any], rep: common.Report) -> None:
    names = target_instances(part)
    cap = part["cap"]
    rep.heading(f"Targets (a) and (b): the {len(names)} GKD-b / SOM-a instances with n ≤ 50, m ≤ 7", level=3)
    if not names:
        rep.para("Not evaluated: no such instance in this run.")
        return
    # (a)
    per_inst = []
    for n in names:
        k = part["instances"][n]["k_star"]
        ts = [(eff_time(find(part, "ilp", n, k, "strong", b, "tabu")), b) for b in BACKENDS]
        ok = [(t[0], b) for t, b in ts if t is not None and not t[1]]
        per_inst.append((n, min(ok) if ok else None))
    all_ok = all(x is not None and x[0] <= TARGET_A_S for _, x in per_inst)
    worst = max((x[0] for _, x in per_inst if x is not None), default=math.nan)
    solo = []
    for b in BACKENDS:
        ts = [eff_time(find(part, "ilp", n, part["instances"][n]["k_star"], "strong", b, "tabu")) for n in names]
        proven_all = all(t is not None and not t[1] and t[0] <= TARGET_A_S for t in ts)
        slowest = max((t[0] for t in ts if t is not None), default=math.nan)
        n_ok = sum(1 for t in ts if t is not None and not t[1])
        solo.append(f"{b}: {n_ok}/{len(names)} proven, slowest {fmt_s(slowest)}"
                    f"{' (lower bound)' if not proven_all else ''} s")
    verdict = "PASS" if all_ok else "FAIL"
    if cap < TARGET_A_S and not all_ok:
        verdict = f"not shown (this run's cap, {cap:g} s, is below {TARGET_A_S:g} s)"
    items = [f"**(a)** every one proven optimal within {TARGET_A_S:g} s by the best strong backend "
             f"(per instance): slowest instance {fmt_s(worst)} s -> **{verdict}**. "
             "Each backend alone (strong, warm start): " + "; ".join(solo) + "."]
    # (b)
    def ratios(bs_plain: tuple[str, ...], bs_strong: tuple[str, ...]) -> tuple[list[tuple[str, float, bool]], int]:
        rows, undetermined = [], 0
        for n in names:
            k = part["instances"][n]["k_star"]
            tp = [eff_time(find(part, "ilp", n, k, "plain", b, "tabu")) for b in bs_plain]
            tsr = [eff_time(find(part, "ilp", n, k, "strong", b, "tabu")) for b in bs_strong]
            if any(t is None for t in tp + tsr):
                continue
            p = min(tp)  # type: ignore[type-var]
            s = min(tsr)  # type: ignore[type-var]
            if s[1]:  # strong unproven: the ratio is unknown
                undetermined += 1
                continue
            rows.append((n, p[0] / s[0], p[1]))
        return rows, undetermined

    def summary(rows: list[tuple[str, float, bool]], und: int) -> tuple[str, bool | None]:
        if not rows:
            return "no data", None
        g = geomean([r for _, r, _ in rows])
        lb = any(x for _, _, x in rows)
        txt = f"{'≥ ' if lb else ''}{g:.1f}x over {len(rows)} instances"
        if und:
            txt += f" ({und} left out: strong unproven)"
        if g >= TARGET_B_X:
            return txt, True
        return txt, (None if lb else False)

    vb_rows, vb_und = ratios(BACKENDS, BACKENDS)
    vb_txt, vb_ok = summary(vb_rows, vb_und)
    verdict_b = {True: "PASS", False: "FAIL", None: f"not shown (lower bound below {TARGET_B_X:g}x)"}[vb_ok]
    per_b = []
    for b in BACKENDS:
        rows, und = ratios((b,), (b,))
        txt, ok = summary(rows, und)
        per_b.append(f"{b}: {txt} -> {({True: 'PASS', False: 'FAIL', None: 'not shown'})[ok]}")
    detail = ", ".join(f"{n}: {'≥' if lb else ''}{r:.0f}x" for n, r, lb in vb_rows)
    items.append(f"**(b)** strong at least {TARGET_B_X:g}x faster than plain (geometric mean over instances of "
                 "plain time / strong time, warm start on both; a plain run stopped at the cap counts as the cap, "
                 "so such a ratio is a lower bound, marked ≥):"
                 f"\n  * best backend of each formulation per instance: {vb_txt} -> **{verdict_b}**"
                 "\n  * per backend (plain on B / strong on B): " + "; ".join(per_b)
                 + f"\n  * per instance (best of each): {detail}")
    # warm start
    ws = []
    for n in part["instances"]:
        k = part["instances"][n]["k_star"]
        a = eff_time(find(part, "ilp", n, k, "strong", "highs", "tabu"))
        r = eff_time(find(part, "ilp", n, k, "strong", "highs", "random"))
        if a and r and not a[1] and not r[1]:
            ws.append(r[0] / a[0])
    if ws:
        items.append(f"Warm start (highs, strong), time without the tabu start / time with it: geometric mean "
                     f"{geomean(ws):.2f}x over {len(ws)} instances proven both ways (range "
                     f"{min(ws):.2f}x–{max(ws):.2f}x; below 1 = faster without; the tabu time is inside the "
                     "warm-started run's time).")
    rep.bullets(items)


def render_dimacs(part: dict[str, Any], rep: common.Report, flags: list[str]) -> None:
    cap = part["cap"]
    rep.heading(f"Part 1b: DIMACS graphs (weights (u + v) mod 200 + 1), cap {cap:g} s per run")
    rep.para("k* = size of the published optimal (unconstrained) clique: with `size=\"exact\"` and k = k* the "
             "optimum must equal the published value. For k*−1 and k*//2 no value is published: the "
             "`proven value` column is new where a run proved it (cross-checked by brute where it ran, and "
             "it must not exceed the unconstrained optimum). Cells as in part 1a.")
    screened, rows = [], []
    for name, inst in part["instances"].items():
        if inst.get("role") == "try" and not inst.get("qualified"):  # unqualified or not yet screened
            screened.append((name, inst))
            continue
        for label, k in dimacs_ks(inst["k_star"]):
            if not any(r["instance"] == name and r["k"] == k for r in part["records"]):
                continue
            t_txt, b_txt = side_cells(part, name, k)
            cells = [cell(find(part, "ilp", name, k, f, b, s)) for f, b, s in GRID]
            issues = check_group(part, inst, k, label)
            flags.extend(f"{name} (k={k}, {label}): {msg}" for msg in issues)
            pv = proven_value(part, name, k)
            if pv is None:
                pv_txt = "not proven"
            elif label == "k*":
                pv_txt = f"{common.fmt_objective(pv)} = published" if same(pv, inst["published"]) else f"{common.fmt_objective(pv)} ≠ PUBLISHED"
            else:
                pv_txt = f"**{common.fmt_objective(pv)}** (new)"
            if real(issues):
                pv_txt += " (see flags)"
            pub = common.fmt_objective(inst["published"]) if label == "k*" else "unpublished"
            rows.append([name, inst["n"], inst.get("edges", "?"), f"{label} = {k}", pub, t_txt, b_txt, *cells, pv_txt])
    rep.table(["graph", "n", "edges", "k", "published", "tabu start: value (s)", "brute", *GRID_HEAD, "proven value"],
              rows, align="lrrlrrr" + "r" * len(GRID_HEAD) + "l")
    if not screened:
        return
    rep.heading(f"Screened at k = k* only (no strong run proved the optimum within {cap:g} s)", level=3)
    rows = []
    for name, inst in screened:
        k = inst["k_star"]
        t_txt, _ = side_cells(part, name, k)
        issues = check_group(part, inst, k, "k*")
        flags.extend(f"{name} (k={k}, k*): {msg}" for msg in issues)
        cells = []
        for f, b, s in SCREEN:
            r = find(part, "ilp", name, k, f, b, s)
            if r is None or "error" in r:
                cells.append("—" if r is None else "ERROR")
                continue
            bnd = "" if r.get("bound") is None else f", bound {r['bound']:.1f}"
            cells.append(f"{cell(r)}, value {common.fmt_objective(r['value'])}{bnd}")
        rows.append([name, inst["n"], inst.get("edges", "?"), k, common.fmt_objective(inst["published"]), t_txt, *cells])
    rep.table(["graph", "n", "edges", "k*", "published", "tabu start: value (s)", "strong highs: status, bound",
               "strong cbc", "strong scipy: status, bound", "plain highs: status, bound"], rows, align="lrrrrrllll")


def render_target_c(part: dict[str, Any], cat: dict[str, Any], rep: common.Report) -> None:
    rep.heading(f"Target (c): against MEWCat's \"every shipped DIMACS optimum proven within {MEWCAT_S:g} s\"", level=3)
    rep.para("MEWCat (Liu, Xiao & Zhou 2024, a dedicated branch and bound) proves the optimum of every "
             "DIMACS graph shipped here within 8 s on its authors' machine (not this one). The ILP, at k = k*, "
             "best of every configuration run:")
    shipped = [r for r in cat.values() if r["family"] == "dimacs"]
    n_proven = n_fast = 0
    rows = []
    for inst in sorted(shipped, key=lambda r: r["name"].lower()):
        name = inst["name"]
        head = [name, inst["n"], inst["k_star"], common.fmt_objective(inst["published"])]
        runs = [r for r in ilp_runs(part) if r["instance"] == name and r["k"] == inst["k_star"]]
        if not runs:
            rows.append([*head, "no", "—", "—", "—", "—"])
            continue
        ok = [r for r in runs if proved(r) and same(r["value"], inst["published"])]
        if ok:
            best = min(ok, key=lambda r: r["runtime"])
            n_proven += 1
            n_fast += best["runtime"] <= MEWCAT_S
            rows.append([*head, "yes", "yes", fmt_s(best["runtime"]),
                         f"{best['formulation']}/{best['backend']}/start={best['start']}",
                         "yes" if best["runtime"] <= MEWCAT_S else "no"])
        else:
            gaps = [r["gap"] for r in runs if r.get("gap") is not None]
            g = f" (smallest gap {100 * min(gaps):.0f}%)" if gaps else ""
            rows.append([*head, "yes", f"no{g}", f"≥{runs[0]['cap']:g}", "—", "no"])
    rep.table(["graph", "n", "k*", "published", "attempted", "proven by the ILP", "best time [s]", "configuration",
               f"within {MEWCAT_S:g} s"], rows, align="lrrrllrll")
    attempted = len({r["instance"] for r in ilp_runs(part)})
    verdict = "PASS" if n_fast == len(shipped) else "FAIL"
    rep.bullets([f"**(c)** ILP proves {n_proven} of the {attempted} attempted DIMACS graphs at k = k* within the "
                 f"cap ({n_fast} within {MEWCAT_S:g} s); {len(shipped)} are shipped, the rest not attempted "
                 f"(larger). Matching MEWCat (all {len(shipped)} within {MEWCAT_S:g} s) -> **{verdict}**."])


def render_long(part: dict[str, Any], rep: common.Report, flags: list[str]) -> None:
    rep.heading(f"Part 3: GKD-b n = 50, m = 15 (no published optimum), {part['cap']:g} s each")
    rep.para(f"Strong formulation, start = tabu, backend **{part.get('backend')}**: {part.get('backend_why')}. "
             "A proof here would be the first published optimum of these instances.")
    rows = []
    for name, inst in part["instances"].items():
        k = inst["k_star"]
        t_txt, _ = side_cells(part, name, k)
        r = find(part, "ilp", name, k, "strong", part.get("backend", "highs"), "tabu")
        issues = check_group(part, inst, k, "m")
        flags.extend(f"{name} (k={k}): {msg}" for msg in issues)
        head = [name, inst["n"], k, common.fmt_objective(inst["reference_ts"]), t_txt]
        if r is None or "error" in r:
            rows.append([*head, "(running)" if r is None else "ERROR", "", "", "", "", ""])
            continue
        rows.append([*head, common.fmt_objective(r["value"]), "—" if r.get("bound") is None else f"{r['bound']:.5f}",
                     "—" if r.get("gap") is None else f"{100 * r['gap']:.2f}%", r["status"], fmt_s(r["runtime"]),
                     "**yes (new)**" if proved(r) else "no"])
    rep.table(["instance", "n", "k", "reference TS value", "tabu start: value (s)", "ILP value", "bound", "gap",
               "status", "time [s]", "proven optimal"], rows, align="lrrrrrrrlrl")


def render_markdown(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    parts = data.get("parts", {})
    cat = load_catalogue()
    quick = any(p.get("quick") for p in parts.values())
    rep = common.Report("Exact solving: mewcp's `ilp` method, strong vs plain formulation, HiGHS vs CBC vs SciPy")
    if quick:
        rep.para("**Quick smoke run (`--quick`): tiny instances and a short cap; the targets are not meaningful.**")
    rep.generated_by("benchmarks/ilp_formulations.py", note=(
        f" (last update {data.get('updated', '?')}). Rerun from the repository root: "
        "`.venv/bin/python benchmarks/ilp_formulations.py [--skip-long | --only-long | --render-only]`"
        " (see the script's docstring)."))
    if m:
        rep.para(f"Machine: `{m.get('platform')}`, {m.get('cpu')}, `os.cpu_count()` = {m.get('cpu_count')}; "
                 f"Python {m.get('python')}, mewcp {m.get('mewcp')}, PuLP {m.get('pulp')}, highspy "
                 f"{m.get('highspy')} (HiGHS {m.get('highs')}), scipy {m.get('scipy')} (its own bundled HiGHS), "
                 f"cbcbox {m.get('cbcbox')} ({m.get('cbc')}), numba {m.get('numba')}. Shared, noisy machine: "
                 "one solve at a time, times are wall-clock seconds of single runs.")
    status = []
    for name in ("mdp", "dimacs", "long"):
        p = parts.get(name)
        if p is None:
            status.append(f"{name}: not run")
        else:
            status.append(f"{name}: {'complete' if p.get('complete') else 'IN PROGRESS / incomplete'} "
                          f"(started {p.get('started')}, finished {p.get('finished') or '—'}, cap {p.get('cap'):g} s, "
                          + (f"pinned to CPU {p.get('cpus')}" if p.get("one_core") else "not pinned: any core")
                          + ")")
    rep.para("Parts: ", "; ".join(status), ".")
    runs = [r for p in parts.values() for r in p.get("records", []) if r["kind"] == "ilp" and "wall" in r]
    if runs:
        stats = []
        for b in BACKENDS:
            rs = sorted(r["cpu"] / r["wall"] for r in runs if r["backend"] == b and r["wall"] > 1.0)
            if rs:
                over = sum(1 for x in rs if x > 1.05)
                stats.append(f"{b}: median {rs[len(rs) // 2]:.2f}, max {rs[-1]:.2f}, {over} of {len(rs)} runs "
                             "above 1.05")
        rep.para("Threads: HiGHS (both the highspy and the scipy copy) runs with its default `threads` option "
                 f"({m.get('highs_threads_option', '?')} = automatic; on this 2-core machine HiGHS's log reports a "
                 "2-thread scheduler and 1 thread for the MIP sub-solver); mewcp's `ilp` has no option to set "
                 "it and the benchmark does not patch mewcp. CBC runs without a `threads` option (serial). CPU / "
                 "wall of every run over 1 s (CPU = process + child processes, so CBC's subprocess counts; the "
                 "tabu warm start is in both): ", "; ".join(stats), ". A ratio above 1 is work on a second core.")
    flags: list[str] = []
    if "mdp" in parts:
        render_mdp(parts["mdp"], rep, flags)
        render_targets_ab(parts["mdp"], rep)
    if "dimacs" in parts:
        render_dimacs(parts["dimacs"], rep, flags)
        render_target_c(parts["dimacs"], cat, rep)
    if "long" in parts:
        render_long(parts["long"], rep, flags)
    rep.heading("Flags (anything inconsistent)")
    rep.para("Checked per (instance, k): an `optimal` status must carry the published optimum (where one "
             "exists) and the best value any run found; no value may exceed the published (or, for DIMACS, "
             "the unconstrained) optimum; every reported bound must be at least every value found; proven "
             "values must agree across backends; a run stopped without a proof must have used its cap.")
    bad = [f for f in flags if NOTE not in f]
    notes = [f.replace(NOTE, "") for f in flags if NOTE in f]
    if bad:
        rep.bullets(bad)
    else:
        rep.para("None.")
    if notes:
        rep.para("Observations (not inconsistencies): runs that used more than one core, or overran their cap.")
        rep.bullets(notes)
    rep.heading("Notes")
    rep.bullets([
        "Time = `Solution.runtime`: argument checks, the tabu warm start (`start=\"tabu\"`, seed 0), "
        "building the model (through PuLP for highs and cbc: Python objects per row), and the solve. "
        "The cap is mewcp's `time_limit`, which covers all of it.",
        "The scipy backend takes no warm start (`scipy.optimize.milp` has none): with `start=\"tabu\"` the "
        "tabu clique is computed (its time counts) and only replaces the answer if the solver returns a "
        "worse one.",
        "\"no bound\" for scipy: `scipy.optimize.milp` returns no dual bound when HiGHS stops at the "
        "time limit before finding its own integer solution (no warm start there); the tabu clique is "
        "then the answer.",
        "CBC is handed the time left as `sec`, which CBC measures in CPU seconds by default; on a busy "
        "machine a CBC run can overrun its wall-clock cap a little.",
        "`≥cap`: stopped without a proof; for ratios these count as exactly the cap, so every ratio with "
        "a stopped plain run is a lower bound.",
        "The strong `size=\"exact\"` model leaves out the non-edge constraints (the degree equalities imply them), "
        "so on sparse DIMACS graphs its LP relaxation can be weaker than the plain model's there.",
    ])
    return rep.text()


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny instances, 10 s cap (long part: 10 s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for ilp_formulations.json and ilp_formulations.md")
    ap.add_argument("--cap", type=float, default=None, help="per-run time limit of part 1 [s] (default 60)")
    ap.add_argument("--long-cap", type=float, default=None, help="per-run time limit of part 3 [s] (default 600)")
    ap.add_argument("--oracle-limit", type=float, default=None, help="time limit of the brute oracle [s] (30)")
    ap.add_argument("--long-backend", choices=("auto", *BACKENDS), default="auto",
                    help="backend of part 3; auto = fastest of part 1 among those reporting a bound")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--skip-long", action="store_true", help="run part 1 only")
    group.add_argument("--only-long", action="store_true", help="run part 3 only")
    group.add_argument("--render-only", action="store_true", help="only render ilp_formulations.md from ilp_formulations.json")
    ap.add_argument("--one-core", action="store_true",
                    help="pin the solver process (and CBC's) to one CPU, so a HiGHS second thread shares it")
    ap.add_argument("--parts", default=None, help="comma-separated subset of mdp,dimacs,long to run")
    ap.add_argument("--resume", action="store_true",
                    help="reuse the records of the same part already in ilp_formulations.json (same instance, k, options, cap)")
    args = ap.parse_args(argv)
    args.cap = args.cap if args.cap is not None else (10.0 if args.quick else 60.0)
    args.long_cap = args.long_cap if args.long_cap is not None else (10.0 if args.quick else 600.0)
    args.oracle_limit = args.oracle_limit if args.oracle_limit is not None else (5.0 if args.quick else 30.0)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.render_only:
        with locked(args.out):
            data = read_results(args.out)
            common.write_atomic(args.out / MD_NAME, render_markdown(data))
        print(f"wrote {args.out / MD_NAME}")
        return 0

    if args.parts:
        todo = [p.strip() for p in args.parts.split(",") if p.strip()]
        bad = set(todo) - {"mdp", "dimacs", "long"}
        if bad:
            ap.error(f"unknown part(s): {', '.join(sorted(bad))}")
    elif args.only_long:
        todo = ["long"]
    elif args.skip_long:
        todo = ["mdp", "dimacs"]
    else:
        todo = ["mdp", "dimacs", "long"]

    if args.one_core:  # inherited by the worker and by CBC's subprocess
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    args.affinity = sorted(os.sched_getaffinity(0))
    cat = load_catalogue()
    worker = Worker()
    t0 = time.perf_counter()
    try:
        versions = worker.run({"kind": "info"}, timeout=120)
        machine = machine_info(versions if "error" not in versions else {})
        runners: dict[str, Callable[..., None]] = {"mdp": run_mdp, "dimacs": run_dimacs, "long": run_long}
        for name in todo:
            runners[name](args, worker, machine, cat)
    finally:
        worker.close()
    print(f"done in {time.perf_counter() - t0:.0f} s; results in {args.out / JSON_NAME} and {args.out / MD_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
