"""Redundancy collection's cost per training step (issue 13, item 2), on the CPU.

torchvision's ``deeplabv3_resnet50`` (untrained, 21 classes, no auxiliary head) at
2×3×256×256: a plain training step (forward, cross-entropy, backward, SGD step) against
the same step with a `RedundancyCollector` hooked on every feature layer that SIRFP
measures, for several measures and budgets (``every``: measure on every N-th pass;
``max_samples``: samples of each batch measured). The configurations are timed in
interleaved rounds, so load on the shared machine hits them alike; each row is the mean
step time over the rounds' steps (``every`` amortised over whole cycles) and its ratio
to the plain step. The target: ≤ 1.3× a plain step with the default budget.

Writes ``benchmarks/results/collector_overhead.{md,json}``. Rerun from the repository
root: ``.venv/bin/python benchmarks/collector_overhead.py [--rounds N] [--threads T]``.
"""

from __future__ import annotations

import argparse
import json
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

#: name -> collector options (None: no collector)
CONFIGS: dict[str, dict[str, Any] | None] = {
    "plain step": None,
    "js, every pass (the paper)": {"measure": "js"},
    "js, max_samples=1": {"measure": "js", "max_samples": 1},
    "js, every=4": {"measure": "js", "every": 4},
    "js, every=8": {"measure": "js", "every": 8},
    "gram, every pass": {"measure": "gram"},
    "hellinger, every pass": {"measure": "hellinger"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="timed cycles of 8 steps per configuration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("torchvision:deeplabv3_resnet50", num_classes=21)
    x = torch.randn(2, 3, args.size, args.size)
    y = torch.randint(0, 21, (2, args.size, args.size))
    layers = ChannelGroups.build(model, x).feature_layers()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        loss = F.cross_entropy(model(x)["out"], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    cycle = 8
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(args.rounds):
        for name, options in CONFIGS.items():
            collector = RedundancyCollector(model, layers, **options) if options is not None else None
            if collector is not None:
                collector.open()
            try:
                started = time.perf_counter()
                for _ in range(cycle):
                    step()
                times[name].append((time.perf_counter() - started) / cycle)
                print(f"{name}: {times[name][-1]:.3f} s/step", flush=True)
            finally:
                if collector is not None:
                    collector.close()
    per_step = {name: sum(t) / len(t) for name, t in times.items()}
    plain = per_step["plain step"]
    record = {"size": args.size, "threads": args.threads, "rounds": args.rounds, "cycle": cycle,
              "layers": len(layers), "per_step_s": per_step, "machine": machine_info("torch", "torchvision")}
    write_atomic(RESULTS / "collector_overhead.json", json.dumps(record, indent=2) + "\n")
    r = Report("Redundancy collection's cost per training step")
    r.generated_by("benchmarks/collector_overhead.py",
                   command=f".venv/bin/python benchmarks/collector_overhead.py --rounds {args.rounds} "
                           f"--threads {args.threads}")
    r.machine(record["machine"])
    r.para(f"torchvision deeplabv3_resnet50, 2×3×{args.size}×{args.size}, {args.threads} threads, "
           f"{len(layers)} hooked layers, {args.rounds} round(s) of {cycle} steps per configuration, interleaved.")
    r.table(["configuration", "s / step", "× plain step"],
            [[name, f"{t:.3f}", f"{t / plain:.2f}"] for name, t in per_step.items()], align="lrr")
    best = min((n for n in per_step if n != "plain step" and n.startswith("js")), key=per_step.get)
    r.target("js collection ≤ 1.3× a plain step with the paper's default budget (every pass)",
             per_step["js, every pass (the paper)"] / plain <= 1.3,
             f"{per_step['js, every pass (the paper)'] / plain:.2f}×")
    r.target(f"cheapest js budget measured ({best}) ≤ 1.3×", per_step[best] / plain <= 1.3,
             f"{per_step[best] / plain:.2f}×")
    r.write(RESULTS / "collector_overhead.md")
    print(r.text())


if __name__ == "__main__":
    main()
