"""The paper's Table 1 in miniature, and its Table 6 question, on the built-in data.

For each seed, one DeepLabLite is trained on the built-in synthetic set; every
criterion then prunes a copy of that same trained model to each FLOPs target with the
same mechanics (progressive masks, global threshold, physical removal) and the same
training budget (collection/pruning iterations + fine-tuning iterations), and is
evaluated on the same validation images:

* unpruned, random, L1, BN scale, FPGM, Taylor, SIRFP (`js`) and SIRFP (`gram`),
  at 60% and 80% FLOPs reduction; mIoU mean ± std over seeds, params, FLOPs;
* Table 6: SIRFP (`js`, 60%) with EHGP, tabu and memetic as the per-group MEWCP
  solver: the summed clique weight of the kept channels, planning time, and mIoU.

Writes ``benchmarks/results/pruning.{md,json}`` and ``pruning.png`` (mIoU against
FLOPs). Rerun from the repository root::

    .venv/bin/python benchmarks/pruning.py            # the full grid (about an hour on 2 cores)
    .venv/bin/python benchmarks/pruning.py --quick    # a smoke run (minutes), results not written
    .venv/bin/python benchmarks/pruning.py --render-only   # pruning.md again from pruning.json

Partial results are saved after every run, and a rerun resumes from them
(``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import Report, machine_info, met, write_atomic  # noqa: E402
from sirfp_adapter.demo.experiment import Config, run  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = Path("/tmp/sirfp_pruning_cache")  # trained unpruned models per seed, so a rerun resumes quickly


def _digest(cfg: Config) -> str:
    return hashlib.sha1(repr(sorted(cfg.__dict__.items())).encode()).hexdigest()[:10]

SAME_BUDGET = "unpruned, trained on"  # the reference: the trained model given the pruned runs' extra iterations
METHODS: list[tuple[str, dict[str, Any]]] = [
    ("random", {"criterion": "random"}),
    ("L1", {"criterion": "l1"}),
    ("BN scale", {"criterion": "bn_scale"}),
    ("FPGM", {"criterion": "fpgm"}),
    ("Taylor", {"criterion": "taylor"}),
    ("SIRFP (gram)", {"criterion": "sirfp", "measure": "gram"}),
    ("SIRFP (js, ReLU+L1)", {"criterion": "sirfp", "measure": "js", "normalize": "relu_l1"}),
    ("SIRFP (js, range-normalised)", {"criterion": "sirfp", "measure": "js", "calibration": "range"}),
    ("SIRFP (js)", {"criterion": "sirfp", "measure": "js"}),
]
SOLVERS = ["ehgp", "tabu", "memetic"]
# the same criteria with one pruning ratio for every group: separates how a criterion
# chooses channels within a group from how the global threshold shares the budget
UNIFORM: list[tuple[str, dict[str, Any]]] = [
    ("L1, uniform", {"criterion": "l1", "mode": "uniform"}),
    ("SIRFP (gram), uniform", {"criterion": "sirfp", "measure": "gram", "mode": "uniform"}),
    ("SIRFP (js), uniform", {"criterion": "sirfp", "measure": "js", "mode": "uniform"}),
]


def base_config(args: argparse.Namespace) -> Config:
    if args.quick:
        return Config(train_iters=60, prune_steps=2, prune_interval=10, finetune_iters=20, val_samples=32,
                      size=(64, 64), latency_repeats=3)
    return Config(train_iters=args.train_iters, prune_steps=4, prune_interval=args.interval,
                  finetune_iters=args.finetune_iters, val_samples=256, latency_repeats=10)


def key(seed: int, target: float, name: str, solver: str) -> str:
    return f"{seed}|{target}|{name}|{solver}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--targets", type=float, nargs="+", default=[0.6, 0.8])
    parser.add_argument("--train-iters", type=int, default=1500)
    parser.add_argument("--interval", type=int, default=40)
    parser.add_argument("--finetune-iters", type=int, default=400)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    path = Path("/tmp/sirfp_pruning_quick.json") if args.quick else RESULTS / "pruning.json"
    data: dict[str, Any] = {"runs": {}, "unpruned": {}}
    if path.exists() and not args.fresh:
        data = json.loads(path.read_text())
    if not args.render_only:
        cfg0 = base_config(args)
        data["config"] = {k: v for k, v in cfg0.__dict__.items()}
        data["machine"] = machine_info("torch", "torch_pruning")
        for seed in args.seeds:
            cache = CACHE / f"pretrained_{'quick' if args.quick else 'full'}_{seed}_{_digest(cfg0)}.pt"
            pretrained = torch.load(cache, weights_only=True) if cache.exists() and not args.fresh else None
            jobs = [(0.0, SAME_BUDGET, {}, "ehgp")]
            jobs += [(t, name, opts, "ehgp") for t in args.targets for name, opts in METHODS]
            jobs += [(args.targets[0], "SIRFP (js)", dict(METHODS[-1][1]), s) for s in SOLVERS[1:]]
            jobs += [(args.targets[0], name, opts, "ehgp") for name, opts in UNIFORM]
            for target, name, opts, solver in jobs:
                k = key(seed, target, name, solver)
                if k in data["runs"]:
                    continue
                cfg = replace(cfg0, seed=seed, flops_reduction=target or 0.5, method=solver, **opts)
                if pretrained is None:
                    print(f"seed {seed}: training the unpruned model", flush=True)
                t0 = time.perf_counter()
                fresh = pretrained is None
                result, _, pretrained = run(cfg, progress=False, pretrained=pretrained, log=None,
                                            prune=name != SAME_BUDGET, reference=False)
                if fresh:
                    CACHE.mkdir(parents=True, exist_ok=True)
                    torch.save(pretrained, cache)
                data["unpruned"][str(seed)] = result.before
                data["runs"][k] = {"after": result.after, "plans": result.plans, "times": result.times,
                                   "wall": time.perf_counter() - t0}
                print(f"seed {seed} target {target:.0%} {name} [{solver}]: mIoU {100 * result.after['miou']:.2f} "
                      f"(unpruned {100 * result.before['miou']:.2f}), FLOPs -{1 - result.after['flops'] / result.before['flops']:.2%}, "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
                write_atomic(path, json.dumps(data, indent=1))
    report = render(data)
    print(report)
    if not args.quick:
        write_atomic(RESULTS / "pruning.md", report)
        _plot(data)


def _ms(values: list[float]) -> str:
    if not values:
        return "—"
    v = 100 * np.asarray(values)
    return f"{v.mean():.2f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.2f}"


def _summary(data: dict[str, Any]) -> tuple[list[str], list[float], dict[str, dict[float, list[float]]]]:
    """Seeds, FLOPs targets and, per method and target, the pruned models' mIoU over seeds."""
    runs, unpruned = data["runs"], data["unpruned"]
    seeds = sorted(unpruned, key=int)
    targets = sorted({float(k.split("|")[1]) for k in runs} - {0.0})
    summary = {name: {t: [runs[k]["after"]["miou"] for s in seeds if (k := key(int(s), t, name, "ehgp")) in runs]
                      for t in targets} for name, _ in METHODS}
    return seeds, targets, summary


def render(data: dict[str, Any]) -> str:
    runs, unpruned = data["runs"], data["unpruned"]
    seeds, targets, summary = _summary(data)
    cfg = data.get("config", {})
    machine = data.get("machine", {})
    rep = Report("Pruning on the built-in data: the paper's Table 1 and Table 6 in miniature")
    rep.generated_by("benchmarks/pruning.py", note=" (rerun: `.venv/bin/python benchmarks/pruning.py`).")
    rep.para(
        f"Setup: DeepLabLite {tuple(cfg.get('widths', ()))} (ASPP {cfg.get('aspp_channels')}), built-in synthetic set "
        f"{tuple(cfg.get('size', ()))} with {cfg.get('n_classes')} classes, {cfg.get('val_samples')} validation images; "
        f"per seed one model trained {cfg.get('train_iters')} iterations (AdamW, batch {cfg.get('batch_size')}), then "
        f"every criterion prunes that same model: {cfg.get('prune_steps')} steps {cfg.get('prune_interval')} iterations "
        f"apart (masks, statistics collected meanwhile), physical removal, {cfg.get('finetune_iters')} fine-tuning "
        f"iterations — the same budget for all. Global threshold, min_keep {cfg.get('min_keep')}. Seeds: {', '.join(seeds)}. "
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} cores.")
    rep.heading("Table 1 in miniature: mIoU (%) mean ± std over seeds")
    base = [unpruned[s]["miou"] for s in seeds]
    b0 = unpruned[seeds[0]]
    size = [f"{b0['params'] / 1e6:.3f}", f"{b0['flops'] / 1e9:.3f}"]
    same_keys = {s: key(int(s), 0.0, SAME_BUDGET, "ehgp") for s in seeds}
    ref = {s: runs[k]["after"]["miou"] for s, k in same_keys.items() if k in runs}
    same = list(ref.values())
    rows = [["unpruned", *[c for _ in targets for c in (_ms(base), *size)]],
            [f"{SAME_BUDGET} (same iterations as the pruned runs)", *[c for _ in targets for c in (_ms(same), *size)]]]
    for name, _ in METHODS:
        cells: list[str] = []
        for t in targets:
            rs = [runs[k] for s in seeds if (k := key(int(s), t, name, "ehgp")) in runs]
            cells += ([_ms(summary[name][t]), f"{np.mean([r['after']['params'] for r in rs]) / 1e6:.3f}",
                       f"{np.mean([r['after']['flops'] for r in rs]) / 1e9:.3f}"] if rs else ["—", "—", "—"])
        rows.append([name, *cells])
    rep.table(["method", *[h for t in targets for h in (f"mIoU @ {t:.0%}", "params (M)", "GFLOPs")]], rows,
              align="l" + "r" * 3 * len(targets))
    # paired by seed: every pruned model against the same seed's unpruned model trained on equally
    if ref:
        rep.para(f"mIoU change against the same seed's {SAME_BUDGET!r} model (points, mean ± std over seeds; "
                 "pairing by seed removes the spread between the trained models themselves):")
        rep.table(["method", *(f"Δ mIoU @ {t:.0%}" for t in targets)],
                  [[name, *(_ms([runs[k]["after"]["miou"] - ref[s] for s in ref
                                 if (k := key(int(s), t, name, "ehgp")) in runs]) for t in targets)]
                   for name, _ in METHODS], align="l" + "r" * len(targets))
    rep.para("Achieved FLOPs reduction (measured with `torch.utils.flop_counter` on the pruned model): ",
             ", ".join(f"{t:.0%} → " + ", ".join(
                 f"{1 - runs[k]['after']['flops'] / unpruned[k.split('|')[0]]['flops']:.2%}"
                 for k in sorted(runs) if float(k.split("|")[1]) == t and k.split("|")[2:] == ["SIRFP (js)", "ehgp"])
                 for t in targets), " (SIRFP js, per seed).")
    _render_targets(rep, runs, seeds, targets, summary, base, same)
    _render_uniform_and_solvers(rep, runs, seeds, targets, ref)
    return rep.text()


def _render_targets(rep: Report, runs: dict[str, Any], seeds: list[str], targets: list[float],
                    summary: dict[str, dict[float, list[float]]], base: list[float], same: list[float]) -> None:
    """The targets of issue 7, at 60% FLOPs reduction."""
    if not (0.6 in targets and summary.get("SIRFP (js)", {}).get(0.6)):
        return
    js60 = np.asarray(summary["SIRFP (js)"][0.6])
    rep.heading("Targets")
    items = []
    for label, reference in (("the unpruned model", base),
                             (f"the unpruned model trained on equally ({SAME_BUDGET})", same)):
        if not reference:
            continue
        drop = 100 * (np.mean(reference) - js60.mean())
        items.append(f"SIRFP (js) at 60%: mIoU {100 * js60.mean():.2f} vs {label} {100 * np.mean(reference):.2f} — "
                     f"{abs(drop):.2f} points {'below' if drop > 0 else 'above'} (target: within 2): "
                     f"{met(drop <= 2)}.")
    for other in ("random", "L1"):
        o = np.asarray(summary.get(other, {}).get(0.6, []))
        if o.size:
            spread = 100 * max(js60.std(ddof=1) if js60.size > 1 else 0, o.std(ddof=1) if o.size > 1 else 0)
            gap = 100 * (js60.mean() - o.mean())
            paired = 100 * np.asarray([runs[a]["after"]["miou"] - runs[b]["after"]["miou"] for s in seeds
                                       if (a := key(int(s), 0.6, "SIRFP (js)", "ehgp")) in runs
                                       and (b := key(int(s), 0.6, other, "ehgp")) in runs])
            items.append(f"vs {other} at 60%: {gap:+.2f} points (larger seed std {spread:.2f}): "
                         f"{'beats it by more than the seed spread' if gap > spread else 'NOT by more than the seed spread'}"
                         f"; paired by seed: {paired.mean():+.2f} ± {paired.std(ddof=1) if paired.size > 1 else 0:.2f} "
                         f"({', '.join(f'{v:+.2f}' for v in paired)}).")
    rep.bullets(items)


def _render_uniform_and_solvers(rep: Report, runs: dict[str, Any], seeds: list[str], targets: list[float],
                                ref: dict[str, float]) -> None:
    """One ratio per group against the global threshold, and Table 6 (the per-group solver)."""
    uniform_rows = []
    for name, _ in UNIFORM:
        d = [runs[k]["after"]["miou"] - ref[s] for s in ref if (k := key(int(s), targets[0], name, "ehgp")) in runs]
        if d:
            uniform_rows.append([name, _ms(d)])
    if uniform_rows:
        rep.heading(f"Global threshold or one ratio per group ({targets[0]:.0%})")
        rep.para("The same criteria with `mode=\"uniform\"` (every group loses the same fraction): the difference to "
                 "the global rows above is how the threshold shares the budget between groups.")
        rep.table(["method", f"Δ mIoU vs {SAME_BUDGET!r} (paired)"], uniform_rows, align="lr")
    rows = []
    for solver in SOLVERS:
        rs = [r for s in seeds if (r := runs.get(key(int(s), targets[0], "SIRFP (js)", solver)))]
        if rs:
            rows.append([solver, _ms([r["after"]["miou"] for r in rs]),
                         f"{np.mean([r['plans'][-1]['clique_weight'] for r in rs]):.3f}",
                         f"{np.mean([sum(p['planning_time'] for p in r['plans']) for r in rs]):.2f}"])
    if rows:
        rep.heading(f"Table 6 question: the per-group MEWCP solver (SIRFP js, {targets[0]:.0%})")
        rep.para("Clique weight: the summed MEWCP objective of the kept channels over all pruned groups at the last "
                 "pruning step (higher = the kept channels are more distinct); planning time: all pruning steps.")
        rep.table(["solver", "mIoU (%)", "clique weight (mean)", "planning time (s)"], rows, align="lrrr")


def _plot(data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, unpruned = data["runs"], data["unpruned"]
    seeds, targets, _ = _summary(data)
    base = [unpruned[s]["miou"] for s in seeds]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    f0 = unpruned[seeds[0]]["flops"] / 1e9
    ax.errorbar([f0], [100 * np.mean(base)], yerr=[100 * np.std(base)], fmt="k*", ms=10, label="unpruned")
    same = [runs[k]["after"]["miou"] for k in runs if k.split("|")[2] == SAME_BUDGET]
    if same:
        ax.errorbar([f0], [100 * np.mean(same)], yerr=[100 * np.std(same)], fmt="kP", ms=9,
                    label="unpruned, trained on (same iterations)")
    for name, _ in METHODS:
        xs, ys, es = [], [], []
        for t in targets:
            rs = [runs[key(int(s), t, name, "ehgp")] for s in seeds if key(int(s), t, name, "ehgp") in runs]
            if rs:
                xs.append(np.mean([r["after"]["flops"] for r in rs]) / 1e9)
                v = 100 * np.asarray([r["after"]["miou"] for r in rs])
                ys.append(v.mean())
                es.append(v.std())
        if xs:
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name)
    ax.set_xlabel("GFLOPs per image")
    ax.set_ylabel("validation mIoU (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "pruning.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
