"""Deployment outputs of a pruned network: an ONNX file checked in onnxruntime, and dense
versus pruned latency measured side by side.

* :func:`export_onnx` writes the model as ONNX (torch's ``torch.export``-based exporter,
  static input shape), atomically, then runs the file in onnxruntime on the example
  input and compares every output with torch's; a mismatch is an error. Needs the
  ``onnx`` extra (onnx, onnxruntime, onnxscript).
* :func:`compare_latency` times the dense and the pruned model with
  ``torch.utils.benchmark`` (warm-up runs first, a fixed thread count, a few batch sizes,
  the two models alternated per batch size so that load on the machine hits both alike)
  and reports the medians and their ratio.

Notes
-----
Latency is the wall time of one eval-mode forward pass under ``torch.no_grad`` on random
input of the given shape; on CUDA ``torch.utils.benchmark`` synchronises the device
around each run. The ratio dense / pruned is the number to read: FLOPs fall faster than
latency on a CPU, where small layers are bound by memory traffic and per-operator
overhead rather than arithmetic.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mewcp.atomic import atomic_write
from sirfp_adapter.checks import check_module

__all__ = ["LatencyRow", "OnnxExport", "compare_latency", "export_onnx", "latency_table"]


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote and checked.

    Attributes
    ----------
    path : Path
    size_bytes : int
        Size of the file.
    outputs : int
        Number of output tensors compared.
    max_abs_diff : float
        Largest ``|onnxruntime - torch|`` over every output element.
    """

    path: Path
    size_bytes: int
    outputs: int
    max_abs_diff: float


def _inputs_tuple(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise TypeError("example_inputs must be a tensor or a tuple of tensors, got "
                        f"{type(example_inputs).__name__}")
    return inputs


def export_onnx(
    model: nn.Module,
    example_inputs: torch.Tensor | tuple[torch.Tensor, ...],
    path: str | os.PathLike[str],
    *,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> OnnxExport:
    """Export ``model`` to ONNX at ``path`` and check it in onnxruntime.

    Parameters
    ----------
    model : torch.nn.Module
        Exported in eval mode (its mode is restored).
    example_inputs : Tensor or tuple of Tensors
        The input the graph is traced with (its shape is the file's input shape) and
        checked on.
    path : path-like
        The ``.onnx`` file; its folder must exist. Written atomically.
    rtol, atol : float
        Every output must satisfy ``|ort - torch| <= atol + rtol * |torch|``.

    Returns
    -------
    OnnxExport

    Raises
    ------
    ImportError
        Without the ``onnx`` extra.
    RuntimeError
        When onnxruntime's outputs differ from torch's (the file is still written).
    """
    check_module(model)
    inputs = _inputs_tuple(example_inputs)
    target = Path(path)
    if not target.parent.is_dir():
        raise ValueError(f"path: folder {str(target.parent)!r} does not exist")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError as exc:
        raise ImportError("ONNX export needs the 'onnx' extra: pip install -e '.[onnx]' torch==2.13.0") from exc
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = [t.detach().cpu().float().numpy() for t in torch.utils._pytree.tree_leaves(model(*inputs))
                        if isinstance(t, torch.Tensor)]
            program = torch.onnx.export(model, inputs, dynamo=True, verbose=False)
    finally:
        model.train(was_training)
    data = program.model_proto.SerializeToString()
    atomic_write(target, lambda f: f.write(data))
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    feeds = {i.name: t.detach().cpu().numpy() for i, t in zip(session.get_inputs(), inputs)}
    got = session.run(None, feeds)
    if len(got) != len(expected):
        raise RuntimeError(f"onnxruntime returned {len(got)} outputs, torch {len(expected)}")
    worst = 0.0
    for i, (a, b) in enumerate(zip(got, expected)):
        if a.shape != b.shape:
            raise RuntimeError(f"output {i}: onnxruntime's shape {a.shape} differs from torch's {b.shape}")
        diff = np.abs(a.astype(np.float64) - b)
        worst = max(worst, float(diff.max(initial=0.0)))
        if not np.all(diff <= atol + rtol * np.abs(b)):
            raise RuntimeError(f"output {i}: onnxruntime differs from torch by up to {float(diff.max()):.3g} "
                               f"(allowed: {atol} + {rtol} * |torch|); the file is at {str(target)!r}")
    return OnnxExport(target, len(data), len(got), worst)


@dataclass(frozen=True)
class LatencyRow:
    """Dense and pruned latency at one batch size (seconds per forward pass, medians)."""

    batch: int
    threads: int
    device: str
    dense_s: float
    pruned_s: float

    @property
    def speedup(self) -> float:
        """``dense_s / pruned_s``."""
        return self.dense_s / self.pruned_s


def _median_time(model: nn.Module, x: torch.Tensor, threads: int, min_run_time: float, warmup: int) -> float:
    from torch.utils import benchmark

    with torch.no_grad():
        for _ in range(warmup):
            model(x)
    timer = benchmark.Timer(stmt="with torch.no_grad(): model(x)", globals={"model": model, "x": x, "torch": torch},
                            num_threads=threads)
    return float(timer.blocked_autorange(min_run_time=min_run_time).median)


def compare_latency(
    dense: nn.Module,
    pruned: nn.Module,
    input_shape: Sequence[int],
    *,
    batch_sizes: Sequence[int] = (1, 2, 4),
    threads: int | None = None,
    device: str | torch.device | None = None,
    min_run_time: float = 0.5,
    warmup: int = 3,
) -> list[LatencyRow]:
    """Time ``dense`` and ``pruned`` side by side (see the module Notes).

    Parameters
    ----------
    dense, pruned : torch.nn.Module
        Timed in eval mode on their own device unless ``device`` is given (modes restored).
    input_shape : sequence of int
        One sample's shape, e.g. ``(3, 512, 512)``.
    batch_sizes : sequence of int
    threads : int, optional
        Torch threads for the timing (default: ``torch.get_num_threads()``).
    device : str or torch.device, optional
        Where to time (the models are moved there).
    min_run_time : float
        Seconds of timed runs per model and batch size (``blocked_autorange``).
    warmup : int
        Untimed forward passes first.
    """
    check_module(dense, "dense")
    check_module(pruned, "pruned")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ValueError(f"input_shape must be positive integers (one sample's shape), got {input_shape!r}")
    batches = tuple(batch_sizes)
    if not batches or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in batches):
        raise ValueError(f"batch_sizes must be positive integers, got {batch_sizes!r}")
    threads = torch.get_num_threads() if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if isinstance(min_run_time, bool) or not isinstance(min_run_time, (int, float)) or not (
            math.isfinite(min_run_time) and min_run_time > 0):
        raise ValueError(f"min_run_time must be a positive number of seconds, got {min_run_time!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    models = [dense, pruned]
    modes = [m.training for m in models]
    if device is not None:
        models = [m.to(device) for m in models]
    where = next(models[0].parameters()).device
    rows = []
    try:
        for m in models:
            m.eval()
        for batch in batches:
            x = torch.randn(batch, *shape, device=where)
            dense_s, pruned_s = (_median_time(m, x.to(next(m.parameters()).device), threads, min_run_time, warmup)
                                 for m in models)
            rows.append(LatencyRow(batch, threads, str(where), dense_s, pruned_s))
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)
    return rows


def latency_table(rows: Sequence[LatencyRow]) -> str:
    """The rows as a Markdown table (milliseconds)."""
    out = io.StringIO()
    out.write("| batch | threads | device | dense (ms) | pruned (ms) | speed-up |\n|---:|---:|---|---:|---:|---:|\n")
    for r in rows:
        out.write(f"| {r.batch} | {r.threads} | {r.device} | {r.dense_s * 1e3:.2f} | {r.pruned_s * 1e3:.2f} | "
                  f"{r.speedup:.2f}× |\n")
    return out.getvalue()
