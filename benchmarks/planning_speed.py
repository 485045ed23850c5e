"""Planning time for a DeepLabV3-ResNet50-sized network (issue 6's 5-second target), and
the FLOPs targets on it and on the test model.

Builds ``DeepLabResNet()`` (the layout and size of torchvision's
``deeplabv3_resnet50``: 39.6 M parameters), collects redundancy graphs for every
prunable group with a few forward passes on random images (not timed as planning),
then times the planning itself — every per-group EHGP plus the global threshold
search — for FLOPs targets 0.3, 0.6 and 0.8, and the uniform mode. Each plan is then
applied physically to a copy and its FLOPs measured with ``torch.utils.flop_counter``.

Writes ``benchmarks/results/planning_speed.{md,json}``. Rerun from the repository
root: ``.venv/bin/python benchmarks/planning_speed.py`` (``--render`` only rewrites the
report from the stored JSON).
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import Report, machine_info, met, write_atomic  # noqa: E402
from sirfp_adapter.apply import prune_channels  # noqa: E402
from sirfp_adapter.collector import RedundancyCollector  # noqa: E402
from sirfp_adapter.cost import CostModel, count_flops  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402
from sirfp_adapter.demo.models import DeepLabLite, DeepLabResNet  # noqa: E402
from sirfp_adapter.plan import group_matrix, make_plan, rank_redundancy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


CONFIGS = [("global", 0.3), ("global", 0.6), ("global", 0.8), ("uniform", 0.3), ("uniform", 0.6), ("uniform", 0.8)]


def plan_model(model: torch.nn.Module, example: torch.Tensor, image: int) -> dict:
    """Groups, cost model, redundancy from two forward passes, then every planning config timed
    and applied physically to a copy (FLOPs measured)."""
    t0 = time.perf_counter()
    groups = ChannelGroups.build(model, example)
    t_groups = time.perf_counter() - t0
    t0 = time.perf_counter()
    cost = CostModel(model, example, groups)
    t_cost = time.perf_counter() - t0
    collector = RedundancyCollector(model, groups.feature_layers(), measure="gram")
    model.train()
    with collector, torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, image, image))
    matrices = collector.matrices()
    records = []
    for mode, target in CONFIGS:
        t0 = time.perf_counter()
        rankings = [rank_redundancy(group_matrix(g, matrices)) for g in groups]
        t_rank = time.perf_counter() - t0
        t1 = time.perf_counter()
        plan = make_plan(groups, cost, rankings, target, mode=mode)  # type: ignore[arg-type]
        t_search = time.perf_counter() - t1
        pruned = copy.deepcopy(model)
        prune_channels(ChannelGroups.build(pruned, example), plan.remove)
        measured = 1 - count_flops(pruned, example) / cost.flops_base
        records.append({"mode": mode, "target": target, "rank_s": t_rank, "search_s": t_search,
                        "planning_s": t_rank + t_search, "predicted": plan.flops_reduction, "measured": measured})
        print(records[-1], flush=True)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "groups": len(groups),
        "channels": int(sum(g.size for g in groups)),
        "widest_groups": sorted((g.size for g in groups), reverse=True)[:5],
        "build_groups_s": t_groups,
        "cost_model_s": t_cost,
        "records": records,
    }


TABLE = ["mode", "target", "per-group EHGP (s)", "threshold search (s)", "planning total (s)",
         "predicted reduction", "measured reduction"]


def table(report: Report, records: list[dict]) -> None:
    report.table(TABLE, ([r["mode"], f"{r['target']:.0%}", f"{r['rank_s']:.3f}", f"{r['search_s']:.3f}",
                          f"{r['planning_s']:.3f}", f"{r['predicted']:.2%}", f"{r['measured']:.2%}"]
                         for r in records), align="lrrrrrr")


def render(info: dict) -> str:
    """The Markdown report of one run's results (``planning_speed.json``)."""
    big, small, machine = info["DeepLabResNet(21)"], info["DeepLabLite()"], info["machine"]
    worst = max(r["planning_s"] for r in big["records"])
    within = all(abs(r["measured"] - r["target"]) <= 0.01 and r["measured"] <= r["target"] + 1e-9
                 for r in big["records"] + small["records"] if r["mode"] == "global")
    report = Report("Planning time and FLOPs targets")
    report.generated_by("benchmarks/planning_speed.py", note=" (one run; planning times are wall-clock seconds, "
                        "the first configuration includes loading numba's compiled EHGP from its cache).")
    report.heading("DeepLabV3-ResNet50-sized: `DeepLabResNet(21)`")
    report.para(
        f"{big['params'] / 1e6:.1f} M parameters (the layout of torchvision's deeplabv3_resnet50), {big['groups']} "
        f"prunable groups, {big['channels']} channels (widest: {', '.join(map(str, big['widest_groups']))}). Machine: "
        f"{machine['cpu']}, {machine['cpu_count']} cores. One-time setup (not planning): dependency "
        f"graph {big['build_groups_s']:.2f} s, cost model {big['cost_model_s']:.2f} s. Redundancy: `gram` from two "
        "forward passes on random 96×96 images (the values do not matter for timing).")
    table(report, big["records"])
    report.heading("The test model: `DeepLabLite()`")
    report.para(f"{small['params'] / 1e6:.2f} M parameters, {small['groups']} groups, {small['channels']} channels.")
    table(report, small["records"])
    report.heading("Targets")
    report.bullets([
        f"Planning a DeepLabV3-ResNet50-sized network under 5 s (issue 6 quotes 100–130 s per search step for the "
        f"released code): worst {worst:.2f} s — {met(worst < 5)}.",
        f"Achieved FLOPs reduction (measured with `torch.utils.flop_counter` on the physically pruned copy) within "
        f"1% of 30%, 60%, 80% and never above, global mode, both networks: {met(within)}. Uniform "
        "mode (one ratio for every group) is coarser on narrow networks and may fall further short; it never exceeds "
        "the target.",
    ])
    return report.text()


def main() -> None:
    torch.manual_seed(0)
    big = plan_model(DeepLabResNet(21), torch.randn(2, 3, 64, 64), 96)
    small = plan_model(DeepLabLite(), torch.randn(2, 3, 64, 64), 96)
    info = {"machine": machine_info("torch", "torch_pruning", "numba"), "DeepLabResNet(21)": big,
            "DeepLabLite()": small}
    write_atomic(RESULTS / "planning_speed.json", json.dumps(info, indent=1))
    text = render(info)
    write_atomic(RESULTS / "planning_speed.md", text)
    print(text)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    if sys.argv[1:] == ["--render"]:
        write_atomic(RESULTS / "planning_speed.md", render(json.loads((RESULTS / "planning_speed.json").read_text())))
    elif sys.argv[1:]:
        raise SystemExit("usage: planning_speed.py [--render]")
    else:
        main()
