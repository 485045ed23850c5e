"""Pieces every benchmark script shares: the machine description for report headers, a timer."""

from __future__ import annotations

import gc
import importlib
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
