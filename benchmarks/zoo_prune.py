"""`prune_once` with the default criterion on third-party networks, as a user calls it.

Each network (torchvision, segmentation_models_pytorch; untrained, ``num_classes=5``,
``torch.manual_seed(0)``) is pruned in one step with
``prune_once(model, x, batches, flops_reduction=REDUCTION)``: ``x`` and the three
collection batches are random 2×3×64×64 tensors, every other argument at its default,
one CPU thread. The script records the FLOPs reduction that ``torch.utils.flop_counter``
measures afterwards, the wall seconds of the call, whether the pruned model's output has
the input's spatial size and is finite, and the warnings the call raised (groups ranked
by a fallback, groups left out). A network that fails is recorded with its error.

It checks usability, not accuracy: the networks are untrained, so which channels go says
nothing about what a criterion keeps (``benchmarks/criteria.py`` measures that).

Writes ``benchmarks/results/zoo_prune.{md,json}``. Rerun from the repository root::

    .venv/bin/python benchmarks/zoo_prune.py            # about 3 minutes on one thread
    .venv/bin/python benchmarks/zoo_prune.py --models torchvision:fcn_resnet50
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import common  # noqa: E402
from sirfp_adapter import zoo  # noqa: E402
from sirfp_adapter.cost import count_flops  # noqa: E402
from sirfp_adapter.criteria.sensitivity import output_logits  # noqa: E402
from sirfp_adapter.oneshot import prune_once  # noqa: E402

#: The networks, as `sirfp_adapter.zoo.build_model` specs.
MODELS = (
    "torchvision:lraspp_mobilenet_v3_large",
    "torchvision:deeplabv3_mobilenet_v3_large",
    "torchvision:fcn_resnet50",
    "smp:Unet:resnet18",
    "smp:DeepLabV3Plus:resnet34",
    "smp:FPN:mobilenet_v2",
    "smp:PSPNet:resnet18",
    "smp:Unet:efficientnet-b0",
    "smp:Segformer:mit_b0",
)
REDUCTION = 0.5


def run_one(spec: str) -> dict[str, Any]:
    """Prune one network; the measured row (``error`` set when the call failed)."""
    torch.manual_seed(0)
    model = zoo.build_model(spec, num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    batches = [torch.randn(2, 3, 64, 64) for _ in range(3)]
    before = count_flops(model, x)
    row: dict[str, Any] = {"model": spec}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            prune_once(model, x, batches, flops_reduction=REDUCTION)
        except Exception as exc:  # recorded, so that one failing network does not hide the others
            row["error"] = f"{type(exc).__name__}: {exc}"
            return row
        row["seconds"] = time.perf_counter() - start
    row["reduction"] = 1.0 - count_flops(model, x) / before
    with torch.no_grad():
        out = output_logits(model.eval()(x))
    row["output_ok"] = bool(tuple(out.shape[-2:]) == (64, 64) and torch.isfinite(out).all())
    row["warnings"] = [str(w.message).splitlines()[0] for w in caught]
    return row


def report(res: dict[str, Any]) -> str:
    rep = common.Report("`prune_once` with the default criterion on third-party networks")
    rep.generated_by("benchmarks/zoo_prune.py", date=res["date"], command=".venv/bin/python benchmarks/zoo_prune.py")
    rep.para(f"Untrained networks, 5 classes, random 2×3×64×64 inputs (three collection batches), "
             f"`flops_reduction={REDUCTION}`, every other argument at its default, "
             f"{res['threads']} CPU thread(s). Reduction: measured by `torch.utils.flop_counter` after the call.")
    rows = []
    for r in res["rows"]:
        if "error" in r:
            rows.append([r["model"], "failed", "-", "-", r["error"][:200]])
            continue
        notes = "; ".join(r["warnings"])[:300] or "-"
        rows.append([r["model"], f"{r['reduction']:.1%}", f"{r['seconds']:.1f}", "yes" if r["output_ok"] else "NO",
                     f"{len(r['warnings'])}: {notes}"])
    rep.table(["network", "FLOPs reduction", "seconds", "output right and finite", "warnings"], rows, align="lrrll")
    ok = [r for r in res["rows"] if "error" not in r]
    rep.target(f"every network pruned to {REDUCTION:.0%} ± 1% with a right, finite output",
               len(ok) == len(res["rows"]) and all(abs(r["reduction"] - REDUCTION) <= 0.01 and r["output_ok"]
                                                   for r in ok),
               f"{len(ok)} of {len(res['rows'])} pruned")
    rep.add("")
    rep.machine(res["machine"])
    return rep.text()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="zoo specs (default: the list above)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    zoo.ensure_torchvision()
    rows = []
    for spec in args.models:
        rows.append(run_one(spec))
        print(json.dumps(rows[-1])[:300], flush=True)
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": args.threads, "rows": rows,
           "machine": common.machine_info("torch", "torchvision", "segmentation_models_pytorch")}
    print(common.write_results(args.out, "zoo_prune", res, report))


if __name__ == "__main__":
    main()
