"""Command line: ``mewcp solve``, ``mewcp compare``, ``mewcp methods``.

Exit codes
----------
0
    A clique was found (status optimal or feasible); for ``compare``: every
    method ran.
1
    The solver ran but found no clique (status infeasible or no_solution).
2
    Invalid command line or input: bad arguments, unreadable or malformed file; or the
    output could not be written (a full disk, a closed standard output).
3
    The method needs an optional dependency that is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from mewcp import __version__
from mewcp.io import FORMATS, read
from mewcp.problem import Problem
from mewcp.solution import Solution
from mewcp.solve import methods, solve

__all__ = ["main"]

EXIT_OK, EXIT_NO_SOLUTION, EXIT_USAGE, EXIT_MISSING_DEPENDENCY = 0, 1, 2, 3


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer; got {text!r}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds; got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Errors as one line (no usage block), exit status 2; the subcommands inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mewcp",
        description="Maximum Edge Weight Clique solvers (cardinality-constrained).",
        epilog="Exit codes: 0 solved, 1 no clique found, 2 invalid input, 3 missing optional dependency.",
    )
    parser.add_argument("--version", action="version", version=f"mewcp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("file", type=Path, help="MDPLIB .txt, DIMACS .clq/.wclq, edge list or .npy")
        p.add_argument("-k", type=_positive_int, default=None, help="clique size (default: the file's own m)")
        p.add_argument("--size", choices=("exact", "at_most"), default="exact", help="|C| == k or |C| <= k")
        p.add_argument("--time-limit", type=_seconds, default=None, metavar="S", help="seconds per method")
        p.add_argument("--seed", type=_seed, default=None, help="random seed (a non-negative integer)")
        p.add_argument("--format", choices=FORMATS, default=None,
                       help="file format (default: detected from the content)")
        p.add_argument("--weighting", choices=("mod200",), default=None,
                       help="DIMACS: weight every edge ((u+v) mod 200)+1 (the standard MEWC benchmark)")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    p_solve = sub.add_parser("solve", help="solve one instance with one method")
    common(p_solve)
    p_solve.add_argument("--method", default="ehgp", choices=[m.name for m in methods()],
                         help="see `mewcp methods` (default: ehgp)")
    p_solve.add_argument("-O", "--option", action="append", default=[], metavar="NAME=VALUE",
                         help="a method option, e.g. -O patience=50 -O start=random (repeatable)")

    p_cmp = sub.add_parser("compare", help="solve one instance with every available method")
    common(p_cmp)
    p_cmp.set_defaults(time_limit=10.0)
    p_cmp.add_argument("--best-known", type=_finite, default=None, metavar="V",
                       help="best-known value: report each method's gap to it, and stop the "
                            "methods that take a target as soon as they reach it")

    p_methods = sub.add_parser("methods", help="list the solvers and whether they are available")
    p_methods.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _describe(problem: Problem, k: int | None, size: str) -> str:
    kind = "complete" if problem.is_complete else f"{problem.n_edges} edges"
    return f"{problem.name or 'instance'} (n={problem.n}, {kind}, k={k}, size={size})"


def _print_solution(problem: Problem, sol: Solution, k: int | None, size: str) -> None:
    rows = [
        ("instance", _describe(problem, k, size)),
        ("method", sol.method),
        ("status", sol.status.value),
        ("weight", "-" if math.isnan(sol.weight) else f"{sol.weight:.10g}"),
        ("size", str(sol.size)),
        ("time", f"{sol.runtime:.4f} s"),
    ]
    if sol.bound is not None:
        rows.append(("bound", f"{sol.bound:.10g} (gap {sol.gap:.3%})"))
    if sol.message:
        rows.append(("message", sol.message))
    rows.append(("nodes", " ".join(str(v) for v in sol.nodes)))
    width = max(len(r[0]) for r in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _warm_up(problem: Problem, method: str) -> None:
    """Compile a method's kernels on a tiny graph of the same storage, so timings exclude it.

    The weights (distances between points 0..3 on a line, which `cutting_plane` accepts,
    or a triangle with a heavy pendant edge) keep the heuristics' upper bound (the 3
    heaviest edges) above the best triangle, so that they search instead of stopping at
    their start.
    """
    line = np.arange(4.0)
    tiny = np.abs(line[:, None] - line) if problem.is_complete else np.array(
        [[0, 1, 2, 0], [1, 0, 1, 0], [2, 1, 0, 9], [0, 0, 9, 0.0]]
    )
    if not problem.is_complete:
        import scipy.sparse as sp

        tiny = sp.csr_array(tiny)
    solve(tiny, 3, method, **({"max_iters": 10} if "max_iters" in next(
        m for m in methods() if m.name == method).options else {}))


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` strings to keyword options; values are read as JSON when they parse."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--option must be NAME=VALUE; got {pair!r}")
        try:
            options[name] = json.loads(text)
        except json.JSONDecodeError:
            options[name] = text
    return options


def _cmd_solve(args: argparse.Namespace, problem: Problem) -> int:
    sol = solve(problem, args.k, args.method, size=args.size, time_limit=args.time_limit, seed=args.seed,
                **_parse_options(args.option))
    if args.json:
        print(json.dumps({"instance": problem.name, "n": problem.n, "k": args.k or problem.default_k,
                          "size_mode": args.size, **sol.to_dict()}, allow_nan=False))
    else:
        _print_solution(problem, sol, args.k or problem.default_k, args.size)
    return EXIT_OK if sol.found else EXIT_NO_SOLUTION


def _cmd_compare(args: argparse.Namespace, problem: Problem) -> int:
    k = args.k or problem.default_k
    if k is None:
        raise ValueError("k is required: the data carries no default subset size")
    if not 1 <= k <= problem.n:  # checked once here, not refused by every method in turn
        raise ValueError(f"k must be in [1, n] = [1, {problem.n}]; got {k}")
    results = []
    for m in methods():
        if not m.available:
            results.append({"method": m.name, "status": "unavailable", "message": f"install mewcp[{m.extra}]"})
            continue
        try:
            _warm_up(problem, m.name)
            target = {"target": args.best_known * (1 - 1e-9)} if (
                args.best_known is not None and "target" in m.options) else {}
            sol = solve(problem, args.k, m.name, size=args.size, time_limit=args.time_limit, seed=args.seed,
                        **target)
        except ValueError as exc:  # a method refusing this instance (e.g. brute on a big graph)
            results.append({"method": m.name, "status": "refused", "message": str(exc)})
            continue
        row = sol.to_dict()
        if args.best_known is not None and sol.found:
            row["gap_to_best_known"] = (args.best_known - sol.weight) / max(1.0, abs(args.best_known))
        results.append(row)
    if args.json:
        print(json.dumps({"instance": problem.name, "n": problem.n, "k": k, "size_mode": args.size,
                          "best_known": args.best_known, "results": results}, allow_nan=False))
        return EXIT_OK
    print(_describe(problem, k, args.size))
    if args.best_known is not None:
        print(f"best-known value: {args.best_known:.10g}")
    header = f"{'method':<13} {'status':<12} {'weight':>16} {'gap to best-known':>18} {'time (s)':>10}"
    print(header)
    print("-" * len(header))
    for r in results:
        if r.get("weight") is None:
            print(f"{r['method']:<13} {r['status']:<12} {'-':>16} {'-':>18} {'-':>10}  {r.get('message', '')}")
            continue
        gap = r.get("gap_to_best_known")
        gap_s = "-" if gap is None else f"{gap:.4%}"
        print(f"{r['method']:<13} {r['status']:<12} {r['weight']:>16.10g} {gap_s:>18} {r['runtime']:>10.4f}")
    return EXIT_OK


def _cmd_methods(args: argparse.Namespace) -> int:
    rows = [
        {"name": m.name, "kind": m.kind, "available": m.available, "options": dict(m.options),
         "extra": m.extra, "summary": m.summary}
        for m in methods()
    ]
    if args.json:
        print(json.dumps(rows, allow_nan=False))
        return EXIT_OK
    for r in rows:
        avail = "yes" if r["available"] else f"no (pip install \"mewcp[{r['extra']}]\")"
        opts = ", ".join(f"{k}={v!r}" for k, v in r["options"].items()) or "-"
        print(f"{r['name']:<13} {r['kind']:<10} available: {avail}")
        print(f"{'':<13} {r['summary']}")
        print(f"{'':<13} options: {opts}")
    return EXIT_OK


def _read(args: argparse.Namespace) -> Problem:
    """The input file; every way it can fail is a ValueError with one line to print."""
    try:
        return read(args.file, format=args.format, weighting=args.weighting)
    except FileNotFoundError as exc:
        raise ValueError(f"no such file: {exc.filename}") from None
    except OSError as exc:  # a directory, a permission, a device: one line, not a traceback
        raise ValueError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except MemoryError:
        raise ValueError(f"not enough memory to read {args.file}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring).

    The report is collected and written to standard output at the end, in one place, so
    that an output that cannot take it (a full disk, ``/dev/full``, a closed descriptor,
    a reader that left) ends in one line and exit code 2, not a traceback.
    """
    args = _parser().parse_args(argv)
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        code = _run(args)
    try:
        if sys.stdout is None:  # started with descriptor 1 closed: the report would vanish silently
            raise OSError("standard output is closed")
        sys.stdout.write(report.getvalue())
        sys.stdout.flush()
    except OSError as exc:
        _discard_stdout()
        if not isinstance(exc, BrokenPipeError):  # `mewcp ... | head`: the reader has what it wanted
            print(f"mewcp: error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


def _discard_stdout() -> None:
    """Point descriptor 1 at /dev/null, so that the interpreter's last flush does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # no stdout, or not a real file (pytest's capture)
        pass


def _run(args: argparse.Namespace) -> int:
    if args.command == "methods":
        return _cmd_methods(args)
    try:
        problem = _read(args)
        if args.command == "solve":
            return _cmd_solve(args, problem)
        return _cmd_compare(args, problem)
    except ImportError as exc:
        print(f"mewcp: error: {exc}", file=sys.stderr)
        return EXIT_MISSING_DEPENDENCY
    except (ValueError, TypeError) as exc:
        print(f"mewcp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
