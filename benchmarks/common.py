"""Pieces every benchmark script shares: the machine description, a timer, formatters and
`Report`, the one builder of the Markdown reports under ``benchmarks/results/``.

A report is built top to bottom::

    r = Report("Planning time")
    r.generated_by("benchmarks/planning_speed.py", command=".venv/bin/python benchmarks/planning_speed.py")
    r.machine(machine_info("torch"))
    r.heading("Results")
    r.table(["mode", "time (s)"], [["global", "0.12"]], align="lr")
    r.target("planning under 5 s", 0.12 < 5, "0.12 s")
    r.write(RESULTS / "planning_speed.md")
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mewcp.atomic import atomic_write

T = TypeVar("T")


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo where available)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def machine_info(*packages: str) -> dict[str, Any]:
    """Platform, CPU, core count, Python, and the versions of the named packages."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    for name in packages:
        try:
            info[name] = getattr(importlib.import_module(name), "__version__", "?")
        except ImportError:
            info[name] = None
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    return info


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds with three significant digits or more."""
    ms = seconds * 1e3
    if ms >= 1000:
        return f"{ms:,.0f}"
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def fmt_objective(value: float | None) -> str:
    """An objective value: an integer as is, else 5 decimals; ``None`` as a dash."""
    if value is None:
        return "—"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.5f}"


def fmt_x(ratio: float) -> str:
    """A ratio as ``12.3x``."""
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x"


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Wall time of one call, garbage collector off during it."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t0
    finally:
        gc.enable()
    return elapsed, out


def fmt_bytes(b: float) -> str:
    """Bytes in KiB, MiB or GiB."""
    if b >= 2**30:
        return f"{b / 2**30:.2f} GiB"
    if b >= 2**20:
        return f"{b / 2**20:.1f} MiB"
    return f"{b / 2**10:.0f} KiB"


def pass_fail(ok: bool) -> str:
    """``**PASS**`` or ``**FAIL**``."""
    return "**PASS**" if ok else "**FAIL**"


def met(ok: bool) -> str:
    """``met`` or ``NOT met`` (the wording of the issues' target lists)."""
    return "met" if ok else "NOT met"


def uniform_diversity_matrix(seed: int, n: int) -> np.ndarray:
    """The generated Maximum Diversity instances of issue 16: ``default_rng(seed)``,
    ``round(uniform(0, 10, (n, n)), 2)``, entries i < j mirrored; zero diagonal."""
    u = np.triu(np.round(np.random.default_rng(seed).uniform(0, 10, (n, n)), 2), 1)
    return u + u.T


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (`mewcp.atomic.atomic_write`), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_results(out: Path, stem: str, res: dict[str, Any], render: Callable[[dict[str, Any]], str]) -> str:
    """Write ``stem.json`` (the results) and ``stem.md`` (``render(res)``) under ``out``, atomically; returns
    the Markdown."""
    write_atomic(out / f"{stem}.json", json.dumps(res, indent=1))
    text = render(res)
    write_atomic(out / f"{stem}.md", text)
    return text


def _row(cells: Sequence[Any]) -> str:
    return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"


class Report:
    """A Markdown report: title, provenance, machine, paragraphs, tables, targets."""

    def __init__(self, title: str) -> None:
        self.lines: list[str] = [f"# {title}", ""]

    def add(self, *lines: str) -> Report:
        """Raw lines, as given."""
        self.lines.extend(lines)
        return self

    def para(self, *parts: str) -> Report:
        """One paragraph (the parts joined without separators), then a blank line."""
        return self.add("".join(parts), "")

    def heading(self, text: str, level: int = 2) -> Report:
        return self.add(f"{'#' * level} {text}", "")

    def generated_by(self, script: str, *, date: str | None = None, command: str | None = None,
                     note: str = "") -> Report:
        """``Generated by `script` [on date][note].`` and, with ``command``, how to rerun it."""
        when = f" on {date}" if date else ""
        if command is None:
            return self.para(f"Generated by `{script}`{when}{note}")
        return self.para(f"Generated by `{script}`{when}{note}. Rerun from the repository root:").add(
            f"    {command}", "")

    def machine(self, info: dict[str, Any], keys: Sequence[str] | None = None) -> Report:
        """The machine as a two-column table (every key of `machine_info` unless ``keys``)."""
        rows = [[k, "-" if info.get(k) is None else str(info[k])] for k in (keys or list(info))]
        return self.table(["machine", "value"], rows, align="ll")

    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> Report:
        """A table; ``align`` has one letter per column: ``l``, ``r`` or ``c`` (default: all ``r``)."""
        align = align or "r" * len(header)
        if len(align) != len(header):
            raise ValueError(f"align must have one letter per column ({len(header)}); got {align!r}")
        rule = {"l": ":---", "r": "---:", "c": ":---:"}
        self.lines.append(_row(header))
        self.lines.append("|" + "|".join(rule[a] for a in align) + "|")
        self.lines.extend(_row(row) for row in rows)
        return self.add("")

    def bullets(self, items: Iterable[str]) -> Report:
        return self.add(*(f"* {item}" for item in items), "")

    def target(self, what: str, ok: bool | None, value: str | None = None) -> Report:
        """One pass/fail line: ``* what: value -> **PASS**`` (``ok=None``: not evaluated)."""
        verdict = "not evaluated" if ok is None else pass_fail(ok)
        return self.add(f"* {what}: {value} -> {verdict}" if value is not None else f"* {what}: {verdict}")

    def text(self) -> str:
        return "\n".join(self.lines)

    def write(self, path: Path) -> str:
        """Write the report atomically; returns its text."""
        text = self.text()
        write_atomic(path, text)
        return text
