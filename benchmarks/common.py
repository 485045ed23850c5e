"""Pieces every benchmark script shares: the machine description for report headers."""

from __future__ import annotations

import importlib
import os
import platform
from pathlib import Path
from typing import Any


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
