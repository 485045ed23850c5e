"""``sirfp``: the command line of sirfp_adapter.

``sirfp prune`` trains the built-in DeepLab-style model on the built-in synthetic data
(or a folder of image / label-PNG pairs), prunes it with SIRFP or a baseline to a FLOPs
reduction target, fine-tunes, prints a before/after table and writes the pruned model
and a report into ``--out``. Exit status 0 on success, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields

from sirfp_adapter.demo.experiment import Config

_HELP = {
    "flops_reduction": "fraction of the FLOPs to remove (0.6 keeps 40%%)",
    "criterion": "channel criterion: sirfp (recommended), sirfp-paper, sirfp-released, or a baseline "
                 "(random, l1, bn_scale, fpgm, taylor, dcfp, group_norm)",
    "measure": "redundancy measure of sirfp: js (the paper), gram (the released code), hellinger, dice",
    "normalize": "how js / hellinger turn a channel map into a distribution: softmax over positions or relu_l1",
    "method": "mewcp method choosing each group's kept channels (ehgp: the paper; tabu, memetic, ...)",
    "mode": "global: one threshold across layers (the paper); uniform: the same ratio in every layer",
    "calibration": "how sirfp scores compare across layers: mean (divide by the layer's mean weight), range, "
                   "or none (raw EHGP scores)",
    "min_keep": "per-layer floor, a fraction of the layer's width",
    "round_to": "keep a multiple of this many channels per layer",
    "data": "folder with train/ and val/, each holding images/ and labels/ (default: built-in synthetic data)",
    "size": "image size H W",
    "n_classes": "number of classes (background included)",
    "objects": "built-in data: fewest and most shapes per image",
    "scale": "built-in data: smallest and largest shape size, as a fraction of the image side",
    "train_samples": "synthetic training images (generated on the fly)",
    "val_samples": "synthetic validation images",
    "widths": "channels of the model's four stages",
    "aspp_channels": "channels of the ASPP branches and the head",
    "batch_size": "training batch size",
    "train_iters": "training iterations of the unpruned model",
    "prune_steps": "progressive pruning steps (Algorithm 2's T_step)",
    "prune_interval": "training iterations before each pruning step (statistics are collected meanwhile)",
    "finetune_iters": "fine-tuning iterations after the channels are removed",
    "lr": "peak learning rate of the unpruned training (AdamW, cosine)",
    "finetune_lr": "learning rate while pruning and fine-tuning",
    "weight_decay": "AdamW weight decay",
    "every": "measure redundancy on every N-th forward pass",
    "max_samples": "samples per batch used by the redundancy measure (0: all)",
    "decay": "EMA decay of the redundancy statistics",
    "seed": "seed of data order, initialisation and random choices",
    "threads": "torch CPU threads (default: torch's choice)",
    "latency_repeats": "timed forward passes for the latency figure",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sirfp", description="SIRFP channel pruning for segmentation networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    prune = sub.add_parser(
        "prune",
        help="train, prune to a FLOPs target, fine-tune, report (built-in data by default)",
        description="Train the built-in DeepLab-style model, prune it progressively to a FLOPs target with "
        "SIRFP or a baseline, fine-tune, and report mIoU, pixel accuracy, parameters, FLOPs and CPU latency "
        "before and after. Defaults finish in a few minutes on two CPU cores.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = Config()
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = _HELP[f.name]
        if f.name in ("size", "objects"):
            prune.add_argument(flag, type=int, nargs=2, default=list(default), metavar=("A", "B"), help=help_text)
        elif f.name == "scale":
            prune.add_argument(flag, type=float, nargs=2, default=list(default), metavar=("A", "B"), help=help_text)
        elif f.name == "widths":
            prune.add_argument(flag, type=int, nargs=4, default=list(default), metavar="C", help=help_text)
        elif f.name in ("data",):
            prune.add_argument(flag, default=default, metavar="DIR", help=help_text)
        elif f.name in ("threads", "max_samples"):
            prune.add_argument(flag, type=int, default=default, help=help_text)
        else:
            prune.add_argument(flag, type=type(default), default=default, help=help_text)
    prune.add_argument("--out", default="runs/sirfp", help="output folder for pruned.pt, report.md, plots")
    prune.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sirfp`` command."""
    args = _parser().parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in fields(Config)}
    for name in ("size", "widths", "objects", "scale"):
        values[name] = tuple(values[name])
    if values["max_samples"] == 0:
        values["max_samples"] = None
    cfg = Config(**values)
    try:
        cfg.check()
    except ValueError as exc:
        print(f"sirfp prune: error: {exc}", file=sys.stderr)
        return 2
    from sirfp_adapter.demo.experiment import run

    result, _, _ = run(cfg, out_dir=args.out, progress=not args.no_progress)
    print()
    print(result.table())
    print(f"\n{result.caveat()}")
    print(f"\nreport: {args.out}/report.md   pruned model: {args.out}/pruned.pt")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
