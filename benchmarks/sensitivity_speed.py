"""The measured budget's cost per pruning step: `Sensitivity` with and without the prefix replay.

`sirfp_adapter.criteria.Sensitivity` measures, for every group, the output distortion at
``points`` removal counts: ``groups x points`` forward passes over the recorded inputs
per pruning step. With ``replay=True`` (the default) the module calls that finish before
the group's first layer runs are computed once per group (and carried over from the
previous group when they end before it) and replayed on the other counts
(`sirfp_adapter.replay`). Both settings score every group of the same model on the same
recorded inputs, interleaved per round; the scores must agree exactly (asserted) and the
ratio of the times is the number to read.

Models: torchvision ``deeplabv3_resnet50`` (44 groups; 32×32 inputs, one recorded batch of
two, to keep the full-pass side affordable on a shared CPU) and the built-in
``DeepLabLite`` at the criteria benchmark's size (two recorded batches of eight).

Writes ``benchmarks/results/sensitivity_speed.{md,json}``. Rerun from the repository root:
``.venv/bin/python benchmarks/sensitivity_speed.py [--rounds N] [--threads T]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import Report, machine_info, write_atomic  # noqa: E402
from sirfp_adapter.criteria import Sensitivity  # noqa: E402
from sirfp_adapter.demo.models import DeepLabLite  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402
from sirfp_adapter.zoo import build_model, ensure_torchvision  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

#: name -> (model factory, input side, recorded batches, batch size)
MODELS: dict[str, tuple[Callable[[], torch.nn.Module], int, int, int]] = {
    "torchvision deeplabv3_resnet50": (lambda: build_model("torchvision:deeplabv3_resnet50", num_classes=5), 32, 1, 2),
    "DeepLabLite (criteria benchmark size)": (lambda: DeepLabLite(4, widths=(16, 32, 64, 64), blocks=1,
                                                                  aspp_channels=32), 48, 2, 8),
}


def timed_scores(model: torch.nn.Module, groups: ChannelGroups, batches: list[torch.Tensor],
                 replay: bool) -> tuple[float, float, list[np.ndarray]]:
    """Seconds and FLOPs executed (``torch.utils.flop_counter``) to score every group
    (order: channel number), and the scores."""
    crit = Sensitivity(replay=replay).attach(model, groups)
    try:
        state = copy.deepcopy(model.state_dict())
        model.train()
        with torch.no_grad():
            for b in batches:  # recorded as training inputs (these passes are not counted)
                model(b)
        model.load_state_dict(state)  # the same model for both settings (training passes move BatchNorm's statistics)
        with FlopCounterMode(display=False) as flops:
            started = time.perf_counter()
            scores = [crit.budget_scores(g, np.arange(g.size)) for g in groups]
            seconds = time.perf_counter() - started
        return seconds, float(flops.get_total_flops()), scores
    finally:
        crit.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ensure_torchvision()  # torchvision's CUDA build beside the CPU torch (sirfp_adapter.zoo)
    rows: dict[str, Any] = {}
    for name in args.models:
        build, side, n_batches, batch = MODELS[name]
        torch.manual_seed(0)
        model = build()
        batches = [torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(i))
                   for i in range(n_batches)]
        groups = ChannelGroups.build(model, batches[0][:2]).measurable()
        times: dict[str, list[float]] = {"full passes": [], "replay": []}
        flops: dict[str, float] = {}
        for r in range(args.rounds):
            full, flops["full passes"], want = timed_scores(model, groups, batches, replay=False)
            fast, flops["replay"], got = timed_scores(model, groups, batches, replay=True)
            worst = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(want, got, strict=True))
            assert worst == 0.0, f"{name}: the replayed scores differ by {worst}"
            times["full passes"].append(full)
            times["replay"].append(fast)
            print(f"{name}, round {r + 1}: full passes {full:.1f} s, replay {fast:.1f} s ({full / fast:.2f}x); "
                  f"FLOPs {flops['full passes'] / flops['replay']:.2f}x fewer", flush=True)
        ratios = [f / q for f, q in zip(times["full passes"], times["replay"], strict=True)]
        rows[name] = {"side": side, "batches": n_batches, "batch": batch, "groups": len(groups), "times_s": times,
                      "ratios": ratios, "ratio": statistics.median(ratios), "flops": flops,
                      "flops_ratio": flops["full passes"] / flops["replay"]}
    record = {"rounds": args.rounds, "threads": args.threads, "models": rows,
              "machine": machine_info("torch", "torchvision")}
    write_atomic(RESULTS / "sensitivity_speed.json", json.dumps(record, indent=2) + "\n")
    text = render(record)
    write_atomic(RESULTS / "sensitivity_speed.md", text)
    print(text)


def render(record: dict[str, Any]) -> str:
    """The report of a stored run."""
    r = Report("The measured budget's cost per pruning step")
    subset = "" if list(record["models"]) == list(MODELS) else " --models " + " ".join(f"'{m}'" for m in record["models"])
    r.generated_by("benchmarks/sensitivity_speed.py",
                   command=f".venv/bin/python benchmarks/sensitivity_speed.py --rounds {record['rounds']} "
                           f"--threads {record['threads']}{subset}")
    r.machine(record["machine"])
    r.para(f"`Sensitivity()` (16 samples, 8 points) scoring every measurable group of each model once, with full "
           f"forward passes (`replay=False`) and with the prefix replay (the default), on the same recorded "
           f"training inputs; {record['rounds']} interleaved round(s), {record['threads']} thread(s); the scores "
           f"agree exactly (asserted). FLOPs: what the measuring passes executed (`torch.utils.flop_counter`; "
           f"the replayed calls execute nothing), independent of the load. The machine was shared with other "
           f"jobs: read the ratios.")
    r.table(["model", "input", "recorded", "groups", "full passes (s)", "replay (s)", "speed-up (median)",
             "GFLOPs full / replay", "FLOPs ratio"],
            [[name, f"{m['side']}×{m['side']}", f"{m['batches']}×{m['batch']}", m["groups"],
              f"{statistics.median(m['times_s']['full passes']):.1f}", f"{statistics.median(m['times_s']['replay']):.1f}",
              f"{m['ratio']:.2f}×", f"{m['flops']['full passes'] / 1e9:.1f} / {m['flops']['replay'] / 1e9:.1f}",
              f"{m['flops_ratio']:.2f}×"] for name, m in record["models"].items()], align="lllrrrrrr")
    return r.text()


if __name__ == "__main__":
    main()
