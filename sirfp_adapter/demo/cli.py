"""``sirfp``: the command line of sirfp_adapter.

``sirfp check`` takes the same options, runs the same checks, and instead of training
reports in seconds what a run would do (`sirfp_adapter.demo.dryrun`).

``sirfp prune`` trains the built-in DeepLab-style model on the built-in synthetic data
(or a folder of image / label-PNG pairs), prunes it with SIRFP or a baseline to a FLOPs
reduction target, fine-tunes, prints a before/after table and writes the pruned model
and a report into ``--out``.

Every option, the output folder and the whole data folder (every file read once) are
checked before any training. Exit status: 0 on success; 2 on a bad option or input
(one line naming the option or file and what it must be); 1 when training fails (a
non-finite loss) or memory runs out; 130 on an interrupt. A run that does not finish
leaves ``--out`` as it was.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, NoReturn

from sirfp_adapter import __version__
from sirfp_adapter.demo.experiment import ALLOCATIONS, Config, OptionError, TrainingError, budget_choices

_HELP = {
    "flops_reduction": "fraction of the FLOPs to remove (0.6 keeps 40%%)",
    "criterion": "channel criterion: sirfp (recommended), sirfp-paper, sirfp-released, or a baseline",
    "measure": "redundancy measure of sirfp: js (the paper), gram (the released code), hellinger, kl, dice",
    "normalize": "how js / hellinger / kl turn a channel map into a distribution",
    "method": "mewcp method choosing each group's kept channels (ehgp: the paper)",
    "mode": "global: one threshold across layers (the paper); uniform: the same ratio in every layer",
    "calibration": "how sirfp scores compare across layers: mean (divide by the layer's mean weight), range, "
                   "or none (raw EHGP scores)",
    "budget": "what decides how many channels each layer loses under sirfp: sensitivity (measured output "
              "distortion, recommended), a baseline criterion's scores, or none (the paper's threshold on redundancy)",
    "budget_samples": "sensitivity budget: recorded training inputs its output distortion is measured on "
                      "(auto: up to 16, fitted to --budget-passes)",
    "budget_points": "sensitivity budget: removal counts measured per layer, linear in between (auto: up to 8, "
                     "fitted to --budget-passes)",
    "budget_passes": "sensitivity budget: most single-image forward passes per pruning step (layers x points x "
                     "samples); samples and points are lowered to fit (auto: 12 x --prune-interval x --batch-size, "
                     "about 4x the training between steps, unless --budget-samples or --budget-points is given)",
    "budget_allocation": "sensitivity budget: per_flop (each removal priced by the distortion it adds per FLOP it "
                         "saves, recommended) or level (every layer pruned to the same distortion)",
    "min_keep": "per-layer floor: a fraction of the layer's width (0.1) or a channel count (2)",
    "round_to": "keep a multiple of this many channels per layer",
    "model": "the network: torchvision:NAME, smp:ARCH[:ENCODER], timm:NAME or package.module:factory "
             "(called with num_classes=); untrained unless --weights",
    "weights": "state-dict file to start from (read with torch.load(weights_only=True); keys and shapes must "
               "match the model)",
    "data": "folder with train/ and val/, each holding images/ and labels/",
    "size": "input image size",
    "n_classes": "number of classes (background included)",
    "objects": "built-in data: fewest and most shapes per image",
    "scale": "built-in data: smallest and largest shape size, as a fraction of the image side",
    "train_samples": "synthetic training images (generated on the fly)",
    "val_samples": "synthetic validation images",
    "widths": "built-in model: channels of its four stages",
    "aspp_channels": "built-in model: channels of the ASPP branches and the head",
    "batch_size": "training batch size (at least 2: BatchNorm)",
    "train_iters": "training iterations of the unpruned model",
    "prune_steps": "progressive pruning steps (Algorithm 2's T_step)",
    "prune_interval": "training iterations before each pruning step (statistics are collected meanwhile)",
    "finetune_iters": "fine-tuning iterations after the channels are removed",
    "lr": "peak learning rate of the unpruned training (AdamW, cosine)",
    "finetune_lr": "learning rate while pruning and fine-tuning",
    "weight_decay": "AdamW weight decay",
    "every": "measure redundancy on every N-th forward pass",
    "max_samples": "samples per batch used by the redundancy measure (0: all)",
    "positions": "positions per map sampled by js, an unbiased estimate (0: every position, exact)",
    "decay": "EMA decay of the redundancy statistics",
    "seed": "seed of data order, initialisation and random choices",
    "threads": "torch CPU threads",
    "latency_repeats": "timed forward passes for the latency figure",
    "latency_time": "seconds each model is timed per batch size in the deployment latency table",
}
#: Command-line names of the fields whose flag is not the field's name (the old name stays an alias).
_FLAGS = {"size": ("--input-size", "--size"), "n_classes": ("--num-classes", "--n-classes")}

def _count_or_fraction(text: str) -> int | float:
    """``--min-keep``: ``3`` is a channel count, ``0.25`` a fraction."""
    try:
        return int(text)
    except ValueError:
        return float(text)


#: How a field that is not a plain scalar is read, and what its default reads as.
_SHAPES: dict[str, dict[str, Any]] = {
    "size": {"type": int, "nargs": 2, "metavar": ("H", "W")},
    "objects": {"type": int, "nargs": 2, "metavar": ("LOW", "HIGH")},
    "scale": {"type": float, "nargs": 2, "metavar": ("LOW", "HIGH")},
    "widths": {"type": int, "nargs": 4, "metavar": "C"},
    "data": {"metavar": "DIR"},
    "model": {"metavar": "SPEC"},
    "weights": {"metavar": "FILE"},
    "threads": {"type": int},
    "max_samples": {"type": int},
    "budget_samples": {"type": int},
    "budget_points": {"type": int},
    "budget_passes": {"type": int},
    "positions": {"type": int},
    "min_keep": {"type": _count_or_fraction},
}
_NONE_MEANS = {"data": "the built-in synthetic data", "threads": "torch's choice",
               "model": "the built-in DeepLabLite", "weights": "random initialisation",
               "budget_samples": "auto", "budget_points": "auto", "budget_passes": "auto"}


def _choices() -> dict[str, tuple[str, ...]]:
    import mewcp
    from sirfp_adapter.criteria import CRITERIA
    from sirfp_adapter.measures import MEASURES

    return {"criterion": tuple(CRITERIA), "measure": tuple(MEASURES),
            "normalize": ("softmax", "relu_l1", "relu_softmax"),
            "method": tuple(m.name for m in mewcp.methods()), "mode": ("global", "uniform"),
            "calibration": ("mean", "range", "none"), "budget": budget_choices(), "budget_allocation": ALLOCATIONS}


class _Parser(argparse.ArgumentParser):
    """Errors as one line (no usage block), exit status 2."""

    subcommands: dict[str, argparse.ArgumentParser]  # the top-level parser's, by name

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _shown(name: str, value: object) -> str:
    if value is None:
        return _NONE_MEANS.get(name, "all")
    if isinstance(value, tuple | list):
        return " ".join(map(str, value))
    return str(value)


def _parser() -> _Parser:
    parser = _Parser(prog="sirfp", description="SIRFP channel pruning for segmentation networks.")
    parser.add_argument("--version", action="version", version=f"sirfp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    prune = sub.add_parser(
        "prune",
        help="train, prune to a FLOPs target, fine-tune, report (built-in data by default)",
        description="Train the built-in DeepLab-style model, prune it progressively to a FLOPs target with "
        "SIRFP or a baseline, fine-tune, and report mIoU, pixel accuracy, parameters, FLOPs and CPU latency "
        "before and after. Defaults finish in a few minutes on two CPU cores. Every option and the whole "
        "data folder are checked before training starts.",
    )
    _config_options(prune)
    prune.add_argument("--out", default="runs/sirfp",
                       help="output folder for pruned.pt, report.md, result.json, plots (default: runs/sirfp)")
    prune.add_argument("--no-progress", action="store_true", help="no progress bars")
    prune.add_argument("--no-onnx", action="store_true", help="skip the ONNX export of the pruned model")
    prune.add_argument("--no-reference", action="store_true",
                       help="skip training the unpruned model on for the same iterations (the report then compares "
                            "with the unpruned model before pruning, which trained less)")
    check = sub.add_parser(
        "check",
        help="dry run in seconds: groups, what is prunable and why not, FLOPs, predicted widths, collector cost",
        description="Check everything sirfp prune would, trace the channel groups, plan one pruning step on one "
        "batch, and time one training iteration with and without the criterion's statistics. Nothing is "
        "trained or written. Takes the same options as sirfp prune.",
    )
    _config_options(check)
    check.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")
    parser.subcommands = {"prune": prune, "check": check}
    return parser


def _config_options(parser: argparse.ArgumentParser) -> None:
    """One option per `Config` field, and --version."""
    parser.add_argument("--version", action="version", version=f"sirfp {__version__}")
    defaults = Config()
    choices = _choices()
    for f in fields(Config):
        default = getattr(defaults, f.name)
        spec: dict[str, Any] = dict(_SHAPES.get(f.name, {"type": type(default)}))
        if f.name in choices:
            spec["choices"] = choices[f.name]
        parser.add_argument(*_flags(f.name), dest=f.name, default=list(default) if isinstance(default, tuple)
                            else default, help=f"{_HELP[f.name]} (default: {_shown(f.name, default)})", **spec)


def _flags(name: str) -> tuple[str, ...]:
    """A `Config` field's command-line flags, the one errors name first."""
    return _FLAGS.get(name, ("--" + name.replace("_", "-"),))


def _say(message: str, command: str = "prune") -> None:
    print(f"sirfp {command}: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sirfp`` command."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the subcommand, whose --help lists its options
        parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    values = {f.name: getattr(args, f.name) for f in fields(Config)}
    for name in ("size", "widths", "objects", "scale"):
        values[name] = tuple(values[name])
    for name in ("max_samples", "positions"):
        if values[name] == 0:
            values[name] = None
    cfg = Config(**values)
    from sirfp_adapter.demo.experiment import check_data, check_model, check_out, run

    if cfg.model is not None and os.getcwd() not in sys.path:  # package.module:factory from the current folder
        sys.path.insert(0, os.getcwd())
    try:
        cfg.check()
        out = check_out(args.out) if args.command == "prune" else None
        network = check_model(cfg)
        datasets = check_data(cfg)
    except OptionError as exc:
        flag = _flags(exc.option)[0]
        if exc.requirement is not None:  # the command line's words: 0 for all samples, pairs as H W
            requirement = exc.requirement.replace(", or None for all", ", or 0 for all").replace(
                ", or None for every position", ", or 0 for every position").replace(
                ", or None for torch's choice", "").replace(", or None for auto", "")
            _say(f"{flag} must be {requirement}; got {_shown('', exc.value) if exc.value is not None else 0}",
                 args.command)
        else:
            _say(f"{flag} {exc.message}", args.command)
        return 2
    if args.command == "check":
        return _check(cfg, network, datasets, as_json=args.json)
    assert out is not None
    try:
        result, _, _ = run(cfg, out_dir=out, datasets=datasets, network=network, progress=not args.no_progress,
                           reference=not args.no_reference, onnx=not args.no_onnx)
    except TrainingError as exc:
        _say(f"{exc}; nothing was written to {out}")
        return 1
    except MemoryError:
        _say(f"out of memory (try a smaller --size, --batch-size or --widths); nothing was written to {out}")
        return 1
    except KeyboardInterrupt:
        _say(f"interrupted; {out} holds no result of this run")
        return 130
    print()
    print(result.table())
    print(f"\n{result.caveat()}")
    onnx = (result.deploy or {}).get("onnx", {})
    print(f"\nrun {result.run}   report: {out}/report.md   pruned model: {out}/pruned.pt"
          + (f"   ONNX: {out}/pruned.onnx" if "file" in onnx else ""))
    return 0


def _check(cfg: Config, network: Any, datasets: tuple[Any, Any], *, as_json: bool) -> int:
    """``sirfp check`` after the checks: the dry run on the first training batch."""
    import json

    from sirfp_adapter.demo.data import make_loaders
    from sirfp_adapter.demo.dryrun import dry_run

    train_loader, _ = make_loaders(*datasets, batch_size=cfg.batch_size, seed=cfg.seed)
    try:
        found = dry_run(cfg, network, next(iter(train_loader)))
    except (ValueError, RuntimeError) as exc:  # e.g. no group a redundancy measure can take
        _say(str(exc).splitlines()[0], "check")
        return 1
    print(json.dumps(found.record(), indent=1) if as_json else found.text())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
