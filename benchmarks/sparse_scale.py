"""as_problem + ehgp on large sparse graphs: this tree against a baseline revision, side by side.

What is measured
----------------
Graphs: ``n`` vertices, ``10 n`` random pairs from ``default_rng(1)`` (loops and
repeats removed, so about 10n edges), weights ``uniform(0, 2)``, stored as a
canonical float64 CSR with int64 indices (what scipy builds from int64
coordinates); the same generator as part C of ``benchmarks/heuristics.py``.
Each graph is written once to temporary ``.npy`` files (read back without a
second buffer, so the loading leaves no high-water mark above the graph).

For each graph and repeat, two child processes run one after the other (the
order alternates between repeats): one imports ``mewcp`` from a ``git archive``
of ``--baseline`` (default: the last commit before the bucketed ``csr_scan``), one from
this tree. Each child loads the arrays, warms numba up on a small graph, then
times ``mewcp.as_problem(csr)`` and ``mewcp.solve(problem, 20, "ehgp",
size="at_most")`` (wall and CPU seconds; the children run with one numba thread) and reports its peak resident memory above the loaded graph
(``VmHWM``, reset once the graph is loaded, minus the resident size then; the
graph itself is ``16 nnz + 8 n`` bytes). Both must return the same vertex set (asserted).

Run from the repository root::

    nice -n 10 .venv/bin/python benchmarks/sparse_scale.py            # 100k and 1M vertices
    nice -n 10 .venv/bin/python benchmarks/sparse_scale.py --quick    # 20k and 100k

Results: ``benchmarks/results/sparse_scale.{md,json}``. The machine is shared and
noisy: the before/after ratios in one run are what count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # after PYTHONPATH, so a child imports the mewcp it was given

from benchmarks import common  # noqa: E402

#: The last commit of main before the bucketed `csr_scan` (an earlier run compared the heap peel, 57e4ea9).
BASELINE = "5c2366e"
K = 20


def make_graph(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr, indices, data) of the seeded random graph (see the module notes)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    m = 10 * n
    r, c = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = r != c
    key = np.unique(np.minimum(r[keep], c[keep]) * n + np.maximum(r[keep], c[keep]))
    lo, hi = key // n, key % n
    w = rng.uniform(0, 2, lo.size)
    a = sp.csr_array((np.concatenate([w, w]), (np.concatenate([lo, hi]), np.concatenate([hi, lo]))), shape=(n, n))
    return a.indptr.astype(np.int64), a.indices.astype(np.int64), a.data


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """This process's resident high-water mark (``VmHWM``: unlike ``ru_maxrss``, not inherited over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(path: Path) -> None:
    """Time as_problem + ehgp on the saved graph with whichever mewcp is first on the path."""
    import scipy.sparse as sp

    import mewcp

    indptr, indices, data = (np.load(path / f"{name}.npy") for name in ("indptr", "indices", "data"))
    n = indptr.size - 1
    small = make_graph(2000)
    mewcp.solve(sp.csr_array(small[::-1], shape=(2000, 2000)), K, "ehgp", size="at_most")  # compile / load caches
    a = sp.csr_array((data, indices, indptr), shape=(n, n))
    base = _rss_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current size
    c0, t0 = time.process_time(), time.perf_counter()
    p = mewcp.as_problem(a)
    c1, t1 = time.process_time(), time.perf_counter()
    sol = mewcp.solve(p, K, "ehgp", size="at_most")
    c2, t2 = time.process_time(), time.perf_counter()
    peak = _peak_rss_bytes()
    print(json.dumps({"as_problem_s": t1 - t0, "ehgp_s": t2 - t1, "as_problem_cpu_s": c1 - c0, "ehgp_cpu_s": c2 - c1,
                      "weight": sol.weight,
                      "indices": sol.indices.tolist(), "extra_peak_bytes": max(peak - base, 0),
                      "mewcp": str(Path(mewcp.__file__).parent)}))


def _run_child(tree: Path, path: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(path)], env=env,
                         capture_output=True, text=True, check=True, cwd=tree)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(res["mewcp"]).parent == tree, res["mewcp"]
    return res


def export(rev: str, dest: Path) -> Path:
    """The ``mewcp`` package of revision ``rev`` under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "baseline.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), rev, "mewcp"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest


def report(res: dict[str, Any]) -> str:
    lines = ["# Sparse scale: as_problem + ehgp, this tree vs a baseline, side by side", "",
             f"Generated by `benchmarks/sparse_scale.py` on {res['date']}; machine: {res['cpu']}, "
             f"{res['cpu_count']} cores shared with other jobs (load average {res['load']}): absolute times "
             "are inflated and noisy, the ratios measured in the same run are what count. Baseline: "
             f"`{res['baseline']}`. Medians over {res['repeats']} interleaved repeats; k = {K}, size='at_most'.",
             "Wall seconds, and CPU seconds of the process in brackets (the machine is shared: CPU time is the "
             "steadier measure).",
             "", "| n | edges | graph | step | before | after | before / after |", "|--:|--:|--:|:--|--:|--:|--:|"]
    for g in res["graphs"]:
        keys = ["as_problem_s", "ehgp_s", "total_s", "extra_peak_bytes"]
        keys += [key.replace("_s", "_cpu_s") for key in keys[:3] if key.replace("_s", "_cpu_s") in g["after"][0]]
        med = {side: {key: statistics.median(r[key] for r in g[side]) for key in keys if key in g[side][0]}
               for side in ("before", "after")}
        head = f"| {g['n']:,} | {g['edges']:,} | {common.fmt_bytes(g['graph_bytes'])} |"
        for key, name in (("as_problem_s", "as_problem"), ("ehgp_s", "ehgp"), ("total_s", "as_problem + ehgp")):
            b, a = med["before"][key], med["after"][key]
            cpu = key.replace("_s", "_cpu_s")
            if cpu in med["before"] and cpu in med["after"]:
                cb, ca = med["before"][cpu], med["after"][cpu]
                lines.append(f"{head} {name} | {b:.2f} s ({cb:.2f} s) | {a:.2f} s ({ca:.2f} s) | "
                             f"{b / a:.2f}x ({cb / ca:.2f}x) |")
            else:
                lines.append(f"{head} {name} | {b:.2f} s | {a:.2f} s | {b / a:.2f}x |")
            head = "| | | |"
        b, a = med["before"]["extra_peak_bytes"], med["after"]["extra_peak_bytes"]
        lines.append(f"{head} peak memory above the graph | {common.fmt_bytes(b)} | {common.fmt_bytes(a)} | "
                     f"{b / max(a, 1):.2f}x |")
        lines.append(f"| | | | answer (both) | {g['weight']:.4f} | {g['size']} vertices | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="n = 20,000 and 100,000")
    ap.add_argument("--sizes", type=int, nargs="*", help="vertex counts (default 100,000 and 1,000,000)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--render-only", action="store_true", help="rewrite the report from the stored JSON")
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    name = "sparse_scale_quick" if args.quick else "sparse_scale"
    if args.render_only:
        common.write_atomic(args.out / f"{name}.md", report(json.loads((args.out / f"{name}.json").read_text())))
        return
    sizes = args.sizes or ([20_000, 100_000] if args.quick else [100_000, 1_000_000])
    graphs = []
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = export(args.baseline, Path(tmp) / "before")
        for n in sizes:
            path = Path(tmp) / f"g{n}"
            path.mkdir()
            indptr, indices, data = make_graph(n)
            for part, arr in (("indptr", indptr), ("indices", indices), ("data", data)):
                np.save(path / f"{part}.npy", arr)
            rec: dict[str, Any] = {"n": n, "edges": int(indptr[-1]) // 2,
                                   "graph_bytes": indptr.nbytes + indices.nbytes + data.nbytes,
                                   "before": [], "after": []}
            del indptr, indices, data
            for rep in range(args.repeats):
                for side in (("before", "after") if rep % 2 == 0 else ("after", "before")):
                    r = _run_child(before_tree if side == "before" else REPO, path)
                    r["total_s"] = r["as_problem_s"] + r["ehgp_s"]
                    r["total_cpu_s"] = r["as_problem_cpu_s"] + r["ehgp_cpu_s"]
                    rec[side].append(r)
                    print(n, side, {k: round(v, 3) for k, v in r.items() if k.endswith("_s")},
                          common.fmt_bytes(r["extra_peak_bytes"]), flush=True)
            answers = {tuple(r["indices"]) for side in ("before", "after") for r in rec[side]}
            assert len(answers) == 1, "before and after returned different answers"
            rec["weight"], rec["size"] = rec["after"][0]["weight"], len(rec["after"][0]["indices"])
            for side in ("before", "after"):
                for r in rec[side]:
                    del r["indices"]
            graphs.append(rec)
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "cpu": common.cpu_name(),
           "cpu_count": os.cpu_count(), "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
           "baseline": args.baseline, "repeats": args.repeats, "graphs": graphs}
    print(common.write_results(args.out, name, res, report))


if __name__ == "__main__":
    main()
