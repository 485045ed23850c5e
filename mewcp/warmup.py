"""Compile every numba kernel once, so that no user call pays for compilation.

``python -m mewcp.warmup`` (run by ``make venv``, and worth running after any install)
solves tiny graphs of every storage kind with every available method, both sizes, so
numba compiles each kernel for the argument types `mewcp.solve` passes and writes it to
its on-disk cache (``__pycache__`` beside the kernels, or ``NUMBA_CACHE_DIR``). A later
process loads the machine code instead of compiling it.

Notes
-----
Compilation of the whole kernel set takes about 10-20 CPU seconds; loading it from the
cache takes a fraction of a second. Without the warm-up the first call of a method in a
fresh environment compiles inside `solve`, before its clock can be checked, and so
overruns a short ``time_limit`` by those seconds. With it, a first call returns within
``time_limit`` plus the cache loading (well under a second; see ``docs/solver.md``).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mewcp.io import read
from mewcp.solve import Method, methods, objective, solve
from mewcp.solvers.greedy import ehgp_order

__all__ = ["kernel_dispatchers", "uncompiled", "warm_up", "main"]


def kernel_dispatchers() -> dict[str, Any]:
    """Every numba dispatcher defined in `mewcp.kernels`, by ``module.name``."""
    import mewcp.kernels as package
    from numba.core.registry import CPUDispatcher

    found: dict[str, Any] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == module.__name__:
                found[f"{info.name}.{name}"] = obj
    return found


def _called_from_python() -> set[str]:
    """Names of the kernels that code outside `mewcp.kernels` calls (the others are only
    called by kernels, which compile them into their own machine code)."""
    import mewcp

    root = Path(mewcp.__file__).parent
    text = "\n".join(p.read_text(encoding="utf-8") for p in root.rglob("*.py") if "kernels" not in p.parts)
    return {name for name in kernel_dispatchers() if re.search(rf"\b{name.split('.')[1]}\(", text)}


def uncompiled() -> list[str]:
    """The kernels called from Python that have no compiled (or cache-loaded) signature yet."""
    outer = _called_from_python()
    return sorted(name for name, d in kernel_dispatchers().items() if name in outer and not d.signatures)


def _graphs() -> list[Any]:
    """Small graphs of each storage kind the solvers distinguish."""
    rng = np.random.default_rng(0)
    points = rng.random((7, 2))
    euclid = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))  # complete, >= 0
    signed = euclid - euclid.mean()  # complete with negative weights (the clique engine for at_most)
    np.fill_diagonal(signed, 0.0)
    mask = np.triu(rng.random((7, 7)) < 0.7, 1)
    mask |= mask.T
    sparse = sp.csr_array(np.where(mask, signed + 0.5, 0.0))  # incomplete, mixed signs
    return [euclid, signed, sparse]


def _run(data: Any, k: int, method: Method, **options: Any) -> None:
    for size in ("exact", "at_most"):
        for limit in (None, 1e-9):
            try:
                solve(data, k, method.name, size=size, seed=0, time_limit=limit,
                      **{name: value for name, value in options.items() if name in method.options})
            except ValueError:  # a method refusing this graph (e.g. non-Euclidean weights)
                pass


def warm_up() -> list[str]:
    """Run every available method on small graphs; returns the kernels still uncompiled.

    Each method runs to its end (an iteration cap where it has one) and once more with a
    time limit that expires at once, so the code paths of a stopped search compile too;
    the heuristics also run on a 40-vertex graph with distinct local optima, so that the
    memetic search breeds.
    """
    available = [m for m in methods() if m.available]
    with tempfile.TemporaryDirectory() as folder:  # the MDPLIB reader's fast path
        path = Path(folder) / "warm.txt"
        path.write_bytes(b"3 2\n0 1 1.5\n0 2 2\n1 2 -0.25e1\n")
        read(path)
    for data in _graphs():
        ehgp_order(data)
        objective(data, [0, 1, 2])
        for m in available:
            _run(data, 3, m, max_iters=700, max_stall=10)
    rng = np.random.default_rng(0)
    w = np.triu(rng.random((40, 40)), 1)
    for m in available:
        if m.kind == "heuristic":
            _run(w + w.T, 10, m, max_stall=10, pop_size=3, patience=3)
    return uncompiled()


def main(argv: Sequence[str] | None = None) -> int:
    """Warm the cache and say what was compiled; exit 1 if a kernel was not reached."""
    del argv
    start = time.perf_counter()
    missing = warm_up()
    count = len(_called_from_python())
    print(f"mewcp: {count - len(missing)} of {count} numba kernels called by the solvers compiled or loaded "
          f"from the cache in {time.perf_counter() - start:.1f} s")
    if missing:
        print(f"mewcp: not reached by the warm-up: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
