"""Redundancy collection's cost per training step (issue 13, item 2), on the CPU or a GPU.

torchvision's ``deeplabv3_resnet50`` (untrained, 21 classes, no auxiliary head) at
2×3×256×256: a plain training step (forward, cross-entropy, backward, SGD step) against
the same step with a `RedundancyCollector` hooked on every feature layer that SIRFP
measures and measuring on that pass, for several per-pass settings (measure,
``max_samples``: samples of each batch measured, ``downsample``: maps pooled first,
``positions``: an unbiased estimate from that many sampled positions per sample).
The settings are timed in interleaved rounds, so load on the shared machine hits them
alike; each round's step is divided by the same round's plain step, and a setting's
ratio is the median of its rounds' ratios (robust to load that drifts between rounds).
The settings that cost several times a plain step (exact full-resolution js on every
sample, and on one; js pooled to 16×16 on every sample) are timed in the first
``--expensive-rounds`` rounds only.

``every=N`` measures one pass in N; the other N - 1 passes only count calls in the hook
(microseconds), so a budget's ratio to a plain step is

    1 + (t_measured - t_plain) / (N * t_plain)

with ``t_measured`` the step that measures. The budget table is that formula on the
measured per-pass figures; ``--verify SETTING:N`` also times whole cycles of N steps of
one budget (the recommended one), measured, not derived, and reports both.

Writes ``benchmarks/results/collector_overhead.{md,json}`` (``--device cuda``:
``collector_overhead_gpu.{md,json}``, the wall clock after ``torch.cuda.synchronize()``;
``benchmarks/gpu_check.sh`` runs it). Rerun from the repository root:
``.venv/bin/python benchmarks/collector_overhead.py [--rounds N] [--threads T] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import Report, machine_info, write_atomic  # noqa: E402
from sirfp_adapter.collector import RedundancyCollector  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402
from sirfp_adapter.zoo import build_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

#: settings timed only in the first --expensive-rounds rounds
EXPENSIVE = ("js (the paper: every sample, full resolution)", "js, max_samples=1", "js, downsample=16")
#: per-pass setting -> collector options (None: no collector, the plain step)
SETTINGS: dict[str, dict[str, Any] | None] = {
    "plain step": None,
    "js (the paper: every sample, full resolution)": {"measure": "js"},
    "js, max_samples=1": {"measure": "js", "max_samples": 1},
    "js, downsample=16": {"measure": "js", "downsample": 16},
    "js, max_samples=1, downsample=16": {"measure": "js", "max_samples": 1, "downsample": 16},
    "js, max_samples=1, positions=256": {"measure": "js", "max_samples": 1, "positions": 256},
    "js, max_samples=1, positions=64": {"measure": "js", "max_samples": 1, "positions": 64},
    "gram": {"measure": "gram"},
}
EVERY = (1, 2, 4, 8, 16, 32)
TARGET = 1.3


def derived(t_measured: float, t_plain: float, every: int) -> float:
    """A budget's step time over a plain step's (see the module docstring)."""
    return 1.0 + (t_measured - t_plain) / (every * t_plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (one step per setting each)")
    parser.add_argument("--expensive-rounds", type=int, default=1, help=f"rounds that also time {EXPENSIVE}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="torch device of the model and the batch (cpu, cuda)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the results")
    parser.add_argument("--verify", default="js, max_samples=1, positions=256:8",
                        help="SETTING:N, a budget also timed as whole cycles of N steps ('' for none)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: elapsed seconds; cpu: this process's CPU seconds over all its threads "
                             "(what a step costs, not inflated by other jobs on a shared machine)")
    parser.add_argument("--settings", nargs="+", default=None, choices=list(SETTINGS),
                        help="time only these settings (the plain step always)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and args.clock == "cpu":
        parser.error("--clock cpu times the host's threads only; with --device cuda use --clock wall")
    host_clock = time.process_time if args.clock == "cpu" else time.perf_counter

    def clock() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return host_clock()

    stem = "collector_overhead" + ("_gpu" if device.type == "cuda" else "")
    if args.settings is not None:
        for name in [n for n in SETTINGS if n != "plain step" and n not in args.settings]:
            del SETTINGS[name]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("torchvision:deeplabv3_resnet50", num_classes=21).to(device)
    x = torch.randn(2, 3, args.size, args.size).to(device)
    y = torch.randint(0, 21, (2, args.size, args.size)).to(device)
    layers = ChannelGroups.build(model, x).feature_layers()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        loss = F.cross_entropy(model(x)["out"], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def timed_steps(options: dict[str, Any] | None, steps: int) -> float:
        collector = RedundancyCollector(model, layers, **options) if options is not None else None
        if collector is not None:
            collector.open()
        try:
            started = clock()
            for _ in range(steps):
                step()
            return (clock() - started) / steps
        finally:
            if collector is not None:
                collector.close()

    step()  # warm-up
    verify_name, _, verify_every = args.verify.rpartition(":")
    if args.verify and verify_name not in SETTINGS:
        parser.error(f"--verify: {verify_name!r} is not one of {list(SETTINGS)}")
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    cycles: list[float] = []

    def write(done: int) -> None:
        """The results of the first ``done`` rounds (written after every round)."""
        timed = [name for name in SETTINGS if times[name]]  # --expensive-rounds 0 leaves two out
        per_pass = {name: statistics.median(times[name]) for name in timed}
        ratio = {name: statistics.median(ratios[name]) for name in timed}
        budgets = {name: {n: derived(q, 1.0, n) for n in EVERY} for name, q in ratio.items() if name != "plain step"}
        record: dict[str, Any] = {
            "size": args.size, "threads": args.threads, "device": str(device), "clock": args.clock, "rounds": done, "expensive_rounds": args.expensive_rounds,
            "layers": len(layers), "per_pass_s": times, "median_s": per_pass, "round_ratios": ratios,
            "median_ratio": ratio, "derived_ratio": budgets,
            "machine": machine_info("torch", "torchvision"),
        }
        if args.verify:
            record["verify"] = {"setting": verify_name, "every": int(verify_every), "cycle_ratios": cycles,
                                "ratio": statistics.median(cycles),
                                "derived_ratio": derived(ratio[verify_name], 1.0, int(verify_every))}
        if device.type == "cuda":
            record["gpu"] = torch.cuda.get_device_name(device)
        write_atomic(args.out / f"{stem}.json", json.dumps(record, indent=2) + "\n")
        r = Report("Redundancy collection's cost per training step")
        r.generated_by("benchmarks/collector_overhead.py",
                       command=f".venv/bin/python benchmarks/collector_overhead.py --rounds {args.rounds} "
                               f"--expensive-rounds {args.expensive_rounds} --threads {args.threads} --size {args.size} "
                               f"--verify '{args.verify}' --clock {args.clock} --device {args.device}"
                               + ("" if args.settings is None else " --settings " + " ".join(f"'{n}'" for n in args.settings)))
        r.machine(record["machine"])
        r.para(f"torchvision deeplabv3_resnet50 (21 classes, no auxiliary head), one training step (forward, "
               f"cross-entropy, backward, SGD) on 2×3×{args.size}×{args.size}, {args.threads} threads, "
               f"{len(layers)} hooked layers, on {record.get('gpu', 'the CPU')}; {done} interleaved round(s), one step per setting per round "
               f"(the {len(EXPENSIVE)} costliest settings in the first {args.expensive_rounds}), each divided by its round's plain "
               f"step; the median ratio. Clock: {'CPU seconds of this process (all its threads)' if args.clock == 'cpu' else 'wall seconds'}. The machine may be shared with other jobs: read the ratios, not the seconds.")
        r.heading("A step that measures")
        r.table(["per-pass setting", "rounds", "s / step (median)", "× plain step (median of rounds)", "rounds' ratios"],
                [[name, len(times[name]), f"{per_pass[name]:.3f}", f"{ratio[name]:.2f}",
                  " ".join(f"{q:.2f}" for q in ratios[name])] for name in timed], align="lrrrl")
        if len(timed) < len(SETTINGS):
            r.para("Not timed in this run (--expensive-rounds 0): "
                   + ", ".join(f"`{n}`" for n in SETTINGS if n not in timed) + ".")
        r.heading("Budgets: measuring one pass in N")
        r.para("Derived: 1 + (ratio − 1) / N; a pass that does not measure only counts "
               "a call in the hook. Bold: within the target of ≤ 1.3× a plain step.")
        r.table(["per-pass setting", *[f"every={n}" for n in EVERY]],
                [[name, *[f"**{v:.2f}**" if v <= TARGET else f"{v:.2f}" for v in row.values()]]
                 for name, row in budgets.items()], align="l" + "r" * len(EVERY))
        if args.verify:
            v = record["verify"]
            r.para(f"Check of the formula: `{verify_name}, every={v['every']}` timed as whole cycles of "
                   f"{v['every']} steps: {v['ratio']:.2f}× a plain step measured (median of the rounds: "
                   f"{' '.join(f'{q:.2f}' for q in cycles)}), {v['derived_ratio']:.2f}× derived.")
        paper = budgets.get("js (the paper: every sample, full resolution)")
        r.target("js as in the paper (every pass, every sample, full resolution) ≤ 1.3×",
                 None if paper is None else paper[1] <= TARGET, None if paper is None else f"{paper[1]:.2f}×")
        cheapest = {name: min((n for n in EVERY if row[n] <= TARGET), default=None) for name, row in budgets.items()}
        r.bullets([f"{name}: every={n} is the most frequent measurement within 1.3×" if n is not None
                   else f"{name}: no every ≤ {EVERY[-1]} within 1.3×" for name, n in cheapest.items()])
        r.write(args.out / f"{stem}.md")
        print(r.text())

    ratios: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for r in range(args.rounds):
        for name, options in SETTINGS.items():
            if name in EXPENSIVE and r >= args.expensive_rounds:
                continue
            times[name].append(timed_steps(options, 1))
            ratios[name].append(times[name][-1] / times["plain step"][-1])
            print(f"round {r + 1}: {name}: {times[name][-1]:.3f} s/step", flush=True)
        if args.verify:
            n = int(verify_every)
            cycles.append(timed_steps({**SETTINGS[verify_name], "every": n}, n) / times["plain step"][-1])
            print(f"round {r + 1}: {verify_name}, every={n} (cycle of {n} steps): {cycles[-1]:.2f}x the round's "
                  f"plain step", flush=True)
        write(r + 1)


if __name__ == "__main__":
    main()
