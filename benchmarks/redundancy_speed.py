"""How fast and how lean are the redundancy measures, and what does collecting them cost a training step?

Part 1 (the measures alone, CPU). For C in {64, 256, 512} and H x W in {32 x 32, 64 x 128},
batch 2, seeded standard-normal activations: time and extra peak memory of

* ``sirfp_adapter.measures.js`` (the paper's Eq. 3, exact, blocked; default ``chunk``),
* a naive broadcast JS written here (per sample it materialises ``C x C x HW`` float32
  tensors: ``M = (P + Q) / 2``, ``P / M``, ``xlogy(P, P / M)``, ...), skipped where its
  estimated live temporaries exceed ``--naive-limit-gib`` (default 6 GiB),
* ``gram``, ``hellinger`` and ``dice`` (one batched matrix product each).

Times are best of R, repeats interleaved across the functions. Extra peak memory is
measured in a fresh subprocess per (function, size): the Linux peak-RSS counter
(``VmHWM``) is reset through ``/proc/self/clear_refs`` right before the call, and
``VmHWM`` after the call minus ``VmRSS`` before it is reported. torch's CPU tensors
are plain ``malloc``/``posix_memalign`` memory that torch does not cache, so the number
covers every tensor the call creates (and touches), its output included; it cannot
see the Python-level allocator, which ``tracemalloc`` would see but torch's would not.
The naive and the blocked JS must agree (max abs diff reported).

Part 2 (collector overhead). A small ResNet-style segmentation network defined here
(about 1.5 M parameters, output stride 8, an ASPP-like head, 19 classes), input
2 x 3 x 128 x 256, cross-entropy, SGD. One training step (forward, loss, backward,
optimizer step) is timed without a collector and with
``RedundancyCollector(model, measure=..., every=...)`` watching all its BatchNorm layers,
for ``js``/``gram`` x ``every`` in {1, 10}: per round and configuration, a fresh
collector, warm-up steps, then the mean over the timed steps; configurations are
interleaved (order rotated every round); best (minimum) of the rounds' means. A
per-layer profile of the measures on the network's own activations follows; if a
target fails, alternative settings are timed the same way.

Part 3 (GPU). With ``--device cuda`` (or ``auto`` when CUDA is present), on seeded
``(2, C, 128, 256)`` float32 maps generated on the GPU, C in {256, 512, 1024, 2048}: ``js``
through the torch path (``backend="torch"``, its default device chunk) and through the
Triton kernel (``backend="triton"``), one sample and the batch of 2, plus ``gram`` and
``hellinger``; CUDA events around each call (best of R; the Triton kernel's first call per
shape, which compiles it, timed apart), extra peak memory from
``torch.cuda.max_memory_allocated``; the max abs error of both ``js`` paths against the
float64 torch path; at the largest C, the Triton kernel alone for several tile shapes.
Target: one sample at C = 2048, 128 x 256, under 50 ms (Triton). It writes its own
``redundancy_speed_gpu.md`` / ``.json`` (after each C, so a run cut short keeps what it
measured) and never the CPU files; ``--parts 3 --device cuda`` runs it alone, as
``benchmarks/gpu_check.sh`` does. Skipped, and said so, without CUDA.

Everything runs with ``torch.set_num_threads(1)`` (the machine is shared), so the
numbers are single-core numbers; only ratios measured in the same run are meaningful.

Run from the repository root::

    .venv/bin/python benchmarks/redundancy_speed.py            # full run, ~10-15 minutes
    .venv/bin/python benchmarks/redundancy_speed.py --quick    # smoke run, about a minute

Results go to ``--out`` (default ``benchmarks/results/``): ``redundancy_speed.md`` and
``redundancy_speed.json`` (every repeat's raw time) for parts 1-2, ``redundancy_speed_gpu.md``
and ``redundancy_speed_gpu.json`` for part 3.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make the local package importable
    sys.path.insert(0, str(REPO))

import sirfp_adapter  # noqa: E402
from sirfp_adapter import measures  # noqa: E402
from sirfp_adapter.collector import RedundancyCollector  # noqa: E402
from sirfp_adapter.demo.models import BasicBlock, conv_bn_relu  # noqa: E402

from benchmarks import common  # noqa: E402

THREADS = 1
BATCH = 2
LOG2 = math.log(2.0)

#: Part 1 targets, checked at this size.
TARGET_C = 256
TARGET_HW = (64, 128)
TARGET_JS_SPEEDUP = 10.0  # naive time / js time must be >= this
TARGET_JS_MEM_FACTOR = 2.0  # js extra peak / (output + one chunk) must be <= this
#: Part 2 target: step time with collector / without, for gram every=1 and js every=10.
TARGET_COLLECTOR_RATIO = 1.3
#: Part 3 target: per-sample js time on the GPU at the largest C.
TARGET_GPU_MS = 50.0

MEASURE_FUNCS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}  # filled below


# ---------------------------------------------------------------------------
# Part 1: the naive broadcast JS
# ---------------------------------------------------------------------------


def naive_js(x: torch.Tensor) -> torch.Tensor:
    """Eq. 3 by brute force: per sample, full ``C x C x N`` float32 tensors.

    ``P = p[:, None, :]``, ``Q = p[None, :, :]`` (views), ``M = (P + Q) / 2`` and the two
    KL terms ``sum xlogy(P, P / M)``, ``sum xlogy(Q, Q / M)``; ``r = log 2 - JS``,
    averaged over the batch. Up to three ``C x C x N`` tensors are alive at once (``M``,
    ``P / M`` and ``xlogy(P, P / M)``), see `naive_temporaries_bytes`.
    """
    with torch.no_grad():
        x = x.detach().to(torch.float32)
        n_batch, n_channels = x.shape[:2]
        total = torch.zeros(n_channels, n_channels, dtype=torch.float32)
        for b in range(n_batch):
            p = torch.softmax(x[b].flatten(1), dim=-1)  # (C, N)
            pp = p[:, None, :]
            qq = p[None, :, :]
            m = (pp + qq) / 2
            kl_pm = torch.xlogy(pp, pp / m).sum(dim=-1)
            kl_qm = torch.xlogy(qq, qq / m).sum(dim=-1)
            del m
            total += LOG2 - 0.5 * (kl_pm + kl_qm)
        return total / n_batch


def naive_temporaries_bytes(c: int, n: int) -> int:
    """Peak live ``C x C x N`` float32 temporaries of `naive_js` (three of them)."""
    return 3 * c * c * n * 4


MEASURE_FUNCS.update(
    {
        "js": lambda x: measures.js(x),
        "naive_js": naive_js,
        "gram": lambda x: measures.gram(x),
        "hellinger": lambda x: measures.hellinger(x),
        "dice": lambda x: measures.dice(x),
    }
)
#: A cache-sized chunk for `measures.js`, timed alongside the default (see `--small-chunk`).
SMALL_CHUNK = 2**18
MEASURE_FUNCS["js_small_chunk"] = lambda x: measures.js(x, chunk=SMALL_CHUNK)
FUNC_ORDER = ("js", "js_small_chunk", "naive_js", "gram", "hellinger", "dice")


def js_chunk_elements() -> int:
    return int(measures.DEFAULT_CHUNK)


def js_buffer_elements(c: int, n: int, chunk: int) -> int | None:
    """Elements of the one ``(side, side, n)`` buffer `measures.js` allocates (None if unknown).

    Reads the module's private block-shape rule when present; the benchmark's targets use
    the nominal ``chunk`` instead, this is only reported alongside.
    """
    block_shape = getattr(measures, "_block_shape", None)
    if block_shape is None:
        return None
    side, npos = block_shape(c, n, chunk)
    return side * side * npos


def make_input(b: int, c: int, h: int, w: int, seed: int, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=g).to(device)


# ---------------------------------------------------------------------------
# Timing and memory helpers
# ---------------------------------------------------------------------------


timed = common.timed


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def memory_child(func: str, c: int, h: int, w: int, seed: int) -> dict[str, Any]:
    """Run in a fresh process: extra peak RSS of one call of ``func`` on a (BATCH, c, h, w) input."""
    torch.set_num_threads(THREADS)
    fn = MEASURE_FUNCS[func]
    x = make_input(BATCH, c, h, w, seed)
    fn(make_input(BATCH, min(c, 8), 4, 4, seed + 1))  # load lazily initialised kernels
    gc.collect()
    gc.disable()
    if _reset_peak_rss():
        method = "VmHWM reset via /proc/self/clear_refs"
        base_kib = _status_kib("VmRSS")
        out = fn(x)
        peak_kib = _status_kib("VmHWM")
    else:  # fallback: the process high-water mark (can only under-report the call's extra)
        method = "ru_maxrss (no reset available)"
        base_kib = max(_status_kib("VmRSS") or 0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        out = fn(x)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gc.enable()
    assert out.shape == (c, c)
    return {
        "method": method,
        "base_rss_bytes": base_kib * 1024,
        "peak_rss_bytes": peak_kib * 1024,
        "extra_peak_bytes": max(0, (peak_kib - base_kib) * 1024),
    }


def measure_memory(func: str, c: int, h: int, w: int, seed: int) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_memory-child", func, str(c), str(h), str(w),
           str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), check=False)
    if proc.returncode != 0:
        return {"error": f"child exited {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# Part 1
# ---------------------------------------------------------------------------


def repeats_for(c: int, n: int, args: argparse.Namespace) -> int:
    work = c * c * n
    if work <= 2**28:
        return args.repeats
    if work <= 2**29:
        return max(1, min(args.repeats, 3))
    return max(1, min(args.repeats, 2))


def bench_measures_size(c: int, hw: tuple[int, int], args: argparse.Namespace, seed: int) -> dict[str, Any]:
    h, w = hw
    n = h * w
    x = make_input(BATCH, c, h, w, seed)
    naive_bytes = naive_temporaries_bytes(c, n)
    naive_ok = naive_bytes <= args.naive_limit_gib * 2**30
    funcs = [f for f in FUNC_ORDER if f != "naive_js" or naive_ok]
    repeats = repeats_for(c, n, args)
    times: dict[str, list[float]] = {f: [] for f in funcs}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(repeats):
        for f in funcs:
            t, outputs[f] = timed(lambda f=f: MEASURE_FUNCS[f](x))
            times[f].append(t)
    rec: dict[str, Any] = {
        "C": c,
        "H": h,
        "W": w,
        "N": n,
        "batch": BATCH,
        "repeats": repeats,
        "times_s": times,
        "best_s": {f: min(ts) for f, ts in times.items()},
        "naive_ran": naive_ok,
        "naive_temporaries_bytes": naive_bytes,
        "output_bytes": c * c * 4,
        "js_chunk_elements": js_chunk_elements(),
        "js_buffer_elements": js_buffer_elements(c, n, js_chunk_elements()),
    }
    if naive_ok:
        rec["naive_vs_js_max_abs_diff"] = float((outputs["naive_js"] - outputs["js"]).abs().max())
        rec["naive_over_js"] = rec["best_s"]["naive_js"] / rec["best_s"]["js"]
    rec["js_small_chunk_max_abs_diff"] = float((outputs["js_small_chunk"] - outputs["js"]).abs().max())
    del outputs, x
    gc.collect()
    if not args.no_memory:
        rec["memory"] = {f: measure_memory(f, c, h, w, seed) for f in funcs}
    return rec


# ---------------------------------------------------------------------------
# Part 2: a small segmentation network and the collector overhead
# ---------------------------------------------------------------------------


class ASPPHead(nn.Module):
    """1x1 branch, three dilated 3x3 branches, an image-pool branch; concatenated, 1x1 classifier."""

    def __init__(self, cin: int, cmid: int, n_classes: int, rates: tuple[int, int, int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, cmid, 1)] + [conv_bn_relu(cin, cmid, 3, dilation=r) for r in rates]
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(cin, cmid, 1))
        self.classifier = nn.Conv2d(5 * cmid, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(self.pool(x).expand(-1, -1, x.shape[2], x.shape[3]))
        return self.classifier(torch.cat(outs, dim=1))


class SmallSegNet(nn.Module):
    """Stem (stride 2), four stages of two basic blocks (strides 2, 2, 1, 1; dilations 1, 1, 2, 4),
    ASPP-like head; output stride 8, logits upsampled to the input size."""

    def __init__(self, n_classes: int = 19, widths: tuple[int, int, int, int] = (32, 64, 128, 128)) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 32, 3, stride=2)
        strides, dilations = (2, 2, 1, 1), (1, 1, 2, 4)
        stages, cin = [], 32
        for cout, s, d in zip(widths, strides, dilations, strict=True):
            stages.append(nn.Sequential(BasicBlock(cin, cout, s, d), BasicBlock(cout, cout, 1, d)))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = ASPPHead(cin, 64, n_classes, rates=(2, 4, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.stages(self.stem(x)))
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)


class Trainer:
    """Model, optimizer and a fixed batch; `step()` is one full training step."""

    def __init__(self, hw: tuple[int, int], seed: int) -> None:
        torch.manual_seed(seed)
        self.model = SmallSegNet().train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(BATCH, 3, *hw, generator=g)
        self.y = torch.randint(0, 19, (BATCH, *hw), generator=g)

    def step(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def collector_configs(extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    base: list[dict[str, Any]] = [{"name": "none"}]
    for m in ("gram", "js"):
        for every in (1, 10):
            base.append({"name": f"{m} every={every}", "measure": m, "every": every, "options": {}})
    return base + (extra or [])


def run_collector_rounds(trainer: Trainer, configs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Per round, every configuration in a rotated order; per config the mean step time."""
    means: dict[str, list[float]] = {c["name"]: [] for c in configs}
    steps_raw: dict[str, list[list[float]]] = {c["name"]: [] for c in configs}
    for r in range(args.rounds):
        order = configs[r % len(configs):] + configs[: r % len(configs)]
        for cfg in order:
            if cfg["name"] == "none":
                collector = None
            else:
                collector = RedundancyCollector(
                    trainer.model, measure=cfg["measure"], every=cfg["every"],
                    max_samples=cfg.get("max_samples"), **cfg.get("options", {}),
                )
                collector.open()
            try:
                for _ in range(args.warmup):
                    trainer.step()
                ts = []
                gc.collect()
                gc.disable()
                try:
                    for _ in range(args.steps):
                        t0 = time.perf_counter()
                        trainer.step()
                        ts.append(time.perf_counter() - t0)
                finally:
                    gc.enable()
            finally:
                if collector is not None:
                    collector.close()
            if collector is not None:
                ups = collector.updates()
                expected = -(-(args.warmup + args.steps) // cfg["every"])
                assert all(v == expected for v in ups.values()), (cfg["name"], ups, expected)
                cfg["measured_timed_steps"] = sum(
                    1 for k in range(args.warmup + 1, args.warmup + args.steps + 1) if (k - 1) % cfg["every"] == 0
                )
            means[cfg["name"]].append(float(np.mean(ts)))
            steps_raw[cfg["name"]].append(ts)
    best = {k: min(v) for k, v in means.items()}
    return {
        "configs": configs,
        "round_means_s": means,
        "step_times_s": steps_raw,
        "best_mean_s": best,
        "ratio": {k: best[k] / best["none"] for k in best},
    }


def capture_bn_outputs(trainer: Trainer) -> dict[str, torch.Tensor]:
    acts: dict[str, torch.Tensor] = {}
    handles = []
    for name, m in trainer.model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            handles.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: acts.__setitem__(name, out.detach().clone())))
    try:
        with torch.no_grad():
            trainer.model(trainer.x)
    finally:
        for h in handles:
            h.remove()
    return acts


def profile_layers(trainer: Trainer, variants: dict[str, Callable[[torch.Tensor], Any]], repeats: int) -> list[dict]:
    """Best-of-``repeats`` time of each measure variant on each BatchNorm layer's real activation."""
    acts = capture_bn_outputs(trainer)
    rows = []
    for name, a in acts.items():
        row: dict[str, Any] = {"layer": name, "shape": list(a.shape), "times_s": {}}
        for vname, fn in variants.items():
            row["times_s"][vname] = min(timed(lambda fn=fn, a=a: fn(a))[0] for _ in range(repeats))
        rows.append(row)
    return rows


def bench_collector(args: argparse.Namespace) -> dict[str, Any]:
    trainer = Trainer(args.train_hw, args.seed)
    for _ in range(2):  # first steps allocate and initialise; not part of any config
        trainer.step()
    main = run_collector_rounds(trainer, collector_configs(), args)
    r = main["ratio"]
    fails = {
        "gram": r["gram every=1"] > TARGET_COLLECTOR_RATIO,
        "js": r["js every=10"] > TARGET_COLLECTOR_RATIO,
    }

    ds = tuple(args.suggest_downsample)
    variants: dict[str, Callable[[torch.Tensor], Any]] = {
        "js": lambda a: measures.js(a),
        f"js chunk=2^{int(math.log2(SMALL_CHUNK))}": lambda a: measures.js(a, chunk=SMALL_CHUNK),
        "js max_samples=1": lambda a: measures.js(a[:1]),
        f"js downsample={ds}": lambda a: measures.js(a, downsample=ds),
        "gram": lambda a: measures.gram(a),
        "gram max_samples=1": lambda a: measures.gram(a[:1]),
        "hellinger": lambda a: measures.hellinger(a),
    }
    layers = profile_layers(trainer, variants, args.profile_repeats)
    totals = {v: sum(row["times_s"][v] for row in layers) for v in variants}
    step = main["best_mean_s"]["none"]
    predicted = {v: {"every=1": 1 + t / step, "every=10": 1 + t / (10 * step)} for v, t in totals.items()}

    extra_cfgs: list[dict[str, Any]] = []
    if fails["gram"]:
        extra_cfgs += [
            {"name": "gram every=1 max_samples=1", "measure": "gram", "every": 1, "max_samples": 1, "options": {}},
            {"name": "gram every=2", "measure": "gram", "every": 2, "options": {}},
        ]
    if fails["js"]:
        sc = {"chunk": SMALL_CHUNK}
        k = int(math.log2(SMALL_CHUNK))
        extra_cfgs += [
            {"name": "js every=10 max_samples=1", "measure": "js", "every": 10, "max_samples": 1, "options": {}},
            {"name": f"js every=10 chunk=2^{k}", "measure": "js", "every": 10, "options": sc},
            {"name": f"js every=10 max_samples=1 chunk=2^{k}", "measure": "js", "every": 10, "max_samples": 1,
             "options": sc},
            {"name": f"js every=10 downsample={ds}", "measure": "js", "every": 10,
             "options": {"downsample": ds}},
            {"name": "js every=20 max_samples=1", "measure": "js", "every": 20, "max_samples": 1, "options": {}},
        ]
    extra = None
    if extra_cfgs:
        extra = run_collector_rounds(trainer, [{"name": "none"}] + extra_cfgs, args)
    return {
        "input": [BATCH, 3, *args.train_hw],
        "n_params": trainer.n_params(),
        "n_bn_layers": len(layers),
        "main": main,
        "target_failed": fails,
        "layers": layers,
        "measure_totals_s": totals,
        "predicted_ratio": predicted,
        "suggestion_downsample": list(ds),
        "extra": extra,
    }


# ---------------------------------------------------------------------------
# Part 3: GPU
# ---------------------------------------------------------------------------


#: Part 3 runs here (a CUDA device; tests of the benchmark itself may point it elsewhere).
GPU_DEVICE = "cuda"
#: Part 3: Triton tile shapes (rows, columns, positions per chunk, warps) timed at the largest C.
GPU_SWEEP_CONFIGS = [(8, 32, 16, 1), (8, 64, 16, 1), (8, 128, 16, 2), (8, 256, 16, 4), (8, 512, 16, 4),
                     (16, 128, 16, 4), (8, 64, 8, 1), (8, 128, 32, 2)]
#: Part 3: the functions timed per C, in this order (`x1` = first sample, `x` = batch of 2).
GPU_FUNCS = ("js triton, 1 sample", "js triton, batch 2", "js torch, 1 sample", "js torch, batch 2",
             "gram, 1 sample", "gram, batch 2", "hellinger, 1 sample", "hellinger, batch 2")


def gpu_versions() -> dict[str, Any]:
    import importlib

    info: dict[str, Any] = {"torch": torch.__version__, "torch_cuda": torch.version.cuda}
    try:
        info["triton"] = importlib.import_module("triton").__version__
    except Exception as err:  # noqa: BLE001 - reported, not raised
        info["triton"] = None
        info["triton_error"] = f"{type(err).__name__}: {err}"
    return info


def cuda_timed(fn: Callable[[], Any], reps: int, dev: torch.device) -> dict[str, Any]:
    """CUDA-event times of ``reps`` calls and the extra peak memory of the last one (or the error)."""
    times: list[float] = []
    out = None
    try:
        for _ in range(reps):
            out = None
            torch.cuda.synchronize(dev)
            base = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            torch.cuda.synchronize(dev)
            times.append(start.elapsed_time(end) / 1e3)
            peak = torch.cuda.max_memory_allocated(dev) - base
    except Exception as err:  # noqa: BLE001 - one failing function must not lose the others' numbers
        torch.cuda.synchronize(dev)
        return {"error": f"{type(err).__name__}: {err}"[:2000], "times_s": times}
    return {"times_s": times, "best_s": min(times), "extra_peak_bytes": peak, "out": out}


def max_abs_diff(a: torch.Tensor | None, b: torch.Tensor | None) -> float | None:
    if a is None or b is None:
        return None
    return float((a.double() - b.double()).abs().max())


def gpu_funcs(x: torch.Tensor, x1: torch.Tensor, c: int, repeats: int) -> dict[str, tuple[Callable[[], Any], int]]:
    """`GPU_FUNCS` as (function, repeats) on the batch ``x`` and its first sample ``x1``."""
    torch_reps = repeats if c <= 512 else 1  # about 1.5 s per sample at C = 2048
    p = functools.partial
    return {
        "js triton, 1 sample": (p(measures.js, x1, backend="triton"), repeats + 2),
        "js triton, batch 2": (p(measures.js, x, backend="triton"), repeats),
        "js torch, 1 sample": (p(measures.js, x1, backend="torch"), torch_reps),
        "js torch, batch 2": (p(measures.js, x, backend="torch"), torch_reps),
        "gram, 1 sample": (p(measures.gram, x1), repeats),
        "gram, batch 2": (p(measures.gram, x), repeats),
        "hellinger, 1 sample": (p(measures.hellinger, x1), repeats),
        "hellinger, batch 2": (p(measures.hellinger, x), repeats),
    }


def bench_gpu(args: argparse.Namespace, save: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Part 3: torch-path vs Triton `js`, `gram` and `hellinger` on CUDA; see the module docstring.

    ``save`` is called with the results so far after each C (a run cut short keeps them).
    """
    dev = torch.device(GPU_DEVICE)
    h, w = args.gpu_hw
    props = torch.cuda.get_device_properties(dev)
    triton_error = measures.triton_import_error()
    info: dict[str, Any] = {
        "device_name": torch.cuda.get_device_name(dev),
        "capability": list(torch.cuda.get_device_capability(dev)),
        "multiprocessors": props.multi_processor_count,
        "memory_bytes": props.total_memory,
        "versions": gpu_versions(),
        "triton_error": triton_error,
        "torch_chunk": int(getattr(measures, "DEFAULT_CHUNK_DEVICE", measures.DEFAULT_CHUNK)),
    }
    print(f"part 3: {info['device_name']}, torch {info['versions']['torch']}, "
          f"triton {info['versions']['triton']}", flush=True)
    small = torch.randn(BATCH, 40, 8, 8, device=dev)
    for f in (lambda: measures.js(small, backend="torch"), lambda: measures.gram(small),
              lambda: measures.hellinger(small)):
        f()  # context and kernels
    rows = []
    for c in args.gpu_channels:
        t0 = time.perf_counter()
        g = torch.Generator(device=dev).manual_seed(args.seed + c)
        x = torch.randn(BATCH, c, h, w, generator=g, device=dev)
        x1 = x[:1]
        funcs = gpu_funcs(x, x1, c, args.gpu_repeats)
        rec: dict[str, Any] = {"C": c, "H": h, "W": w, "results": {}}
        if triton_error is None:  # first call compiles the kernel for this shape: timed apart
            first = cuda_timed(funcs["js triton, 1 sample"][0], 1, dev)
            rec["triton_first_call_s"] = first.get("best_s")
            if "error" in first:
                rec["results"]["js triton, 1 sample"] = first
        outs: dict[str, torch.Tensor | None] = {}
        for name in GPU_FUNCS:
            if name.startswith("js triton") and (triton_error is not None or "error" in rec["results"].get(
                    "js triton, 1 sample", {})):
                rec["results"].setdefault(name, {"error": triton_error or "see js triton, 1 sample",
                                                 "times_s": []})
                continue
            fn, reps = funcs[name]
            res = cuda_timed(fn, reps, dev)
            outs[name] = res.pop("out", None)
            rec["results"][name] = res
        ref = cuda_timed(functools.partial(measures.js, x1.double(), backend="torch"), 1, dev)  # float64
        rec["float64_reference_s"] = ref.get("best_s")
        r64 = ref.pop("out", None)
        rec["max_abs_err"] = {
            "triton vs float64 (1 sample)": max_abs_diff(outs.get("js triton, 1 sample"), r64),
            "torch float32 vs float64 (1 sample)": max_abs_diff(outs.get("js torch, 1 sample"), r64),
            "triton vs torch (1 sample)": max_abs_diff(outs.get("js triton, 1 sample"), outs.get("js torch, 1 sample")),
            "triton vs torch (batch 2)": max_abs_diff(outs.get("js triton, batch 2"), outs.get("js torch, batch 2")),
        }
        rows.append(rec)
        best = {k: v.get("best_s") for k, v in rec["results"].items()}
        print(f"  C={c}: " + "  ".join(f"{k} {v * 1e3:.2f} ms" if v is not None else f"{k} FAILED"
                                       for k, v in best.items())
              + "  err " + "  ".join(f"{k}: {v:.1e}" for k, v in rec["max_abs_err"].items() if v is not None)
              + f"  [{time.perf_counter() - t0:.0f} s]", flush=True)
        x = x1 = outs = r64 = None
        torch.cuda.empty_cache()
        if save is not None:
            save({**info, "rows": rows, "sweep": None})
    sweep = bench_gpu_configs(args, dev) if triton_error is None else None
    return {**info, "rows": rows, "sweep": sweep}


def bench_gpu_configs(args: argparse.Namespace, dev: torch.device) -> dict[str, Any] | None:
    """The Triton kernel alone (one sample, largest C) for several tile shapes, default first."""
    c = max(args.gpu_channels)
    h, w = args.gpu_hw
    g = torch.Generator(device=dev).manual_seed(args.seed + c)
    x1 = torch.randn(1, c, h, w, generator=g, device=dev)
    p = measures.probabilities(x1[0], "softmax")
    plogp = torch.xlogy(p, p)
    default = measures.triton_default_tiles(c)
    configs = [default] + [cfg for cfg in GPU_SWEEP_CONFIGS if tuple(cfg) != default]
    rows = []
    ref = None
    for cfg in configs:
        tile = tuple(cfg)
        first = cuda_timed(lambda tile=tile: measures.triton_js_terms(p, plogp, tile), 1, dev)
        res = cuda_timed(lambda tile=tile: measures.triton_js_terms(p, plogp, tile), args.gpu_repeats, dev) \
            if "error" not in first else first
        out = res.pop("out", None)
        if ref is None:
            ref = out
        rows.append({"config": list(cfg), "default": cfg == default, **res,
                     "first_call_s": first.get("best_s"),
                     "max_abs_diff_r_vs_default": None if out is None else max_abs_diff(out / 2, ref / 2)})
        print(f"  tiles {cfg}: " + (f"{res['best_s'] * 1e3:.2f} ms" if "best_s" in res else res["error"][:200]),
              flush=True)
    return {"C": c, "H": h, "W": w, "rows": rows}


def evaluate_gpu_target(gpu: dict[str, Any]) -> dict[str, Any] | None:
    rec = next((r for r in gpu["rows"] if r["C"] == 2048 and (r["H"], r["W"]) == (128, 256)), None)
    if rec is None:
        return None
    tri = rec["results"].get("js triton, 1 sample", {})
    best = tri.get("best_s")
    return {"C": 2048, "HW": [128, 256], "backend": "triton", "best_s": best,
            "pass": best is not None and best * 1e3 < TARGET_GPU_MS}


def render_gpu_markdown(result: dict[str, Any]) -> str:
    g = result["gpu"]
    v = g["versions"]
    fmt_ms, fmt_x, fmt_bytes = common.fmt_ms, common.fmt_x, common.fmt_bytes
    r = common.Report("Redundancy measures on a GPU: torch path vs Triton kernel")
    if not result.get("complete", True):
        r.para("**Partial results: the run stopped before it finished.**")
    r.generated_by("benchmarks/redundancy_speed.py --parts 3 --device cuda", date=result["date"],
                   note=" (`benchmarks/gpu_check.sh` runs it after the CUDA tests).")
    r.para(f"Device: **{g['device_name']}** (compute capability {'.'.join(map(str, g['capability']))}, ",
           f"{g['multiprocessors']} SMs, {fmt_bytes(g['memory_bytes'])}); torch {v['torch']} (CUDA ",
           f"{v['torch_cuda']}), triton {v['triton'] or 'not importable: ' + str(v.get('triton_error'))}; ",
           f"Python {result['machine']['python']}.")
    r.para(f"Input: seeded standard-normal float32 `(2, C, {g['rows'][0]['H']}, {g['rows'][0]['W']})` on the GPU; ",
           "`1 sample` = its first sample. Times: CUDA events around one call, ms, best of R (R = ",
           f"{result['args']['gpu_repeats']}, +2 for Triton one sample; 1 for the torch path at C > 512); the ",
           "Triton kernel's first call per shape (compilation) is timed apart. `js torch` = ",
           f"`js(x, backend=\"torch\")` with its default device chunk ({g['torch_chunk']:,} elements); `js ",
           "triton` = `js(x, backend=\"triton\")`, both including the probabilities and `p log p`. Extra peak = ",
           "`torch.cuda.max_memory_allocated()` during the call minus `memory_allocated()` before it ",
           "(output included).")

    def speed_row(row: dict[str, Any]) -> list[Any]:
        res = row["results"]
        cells = [fmt_ms(res[n]["best_s"]) if "best_s" in res.get(n, {}) else "failed" for n in GPU_FUNCS]
        a, b = res.get("js torch, 1 sample", {}).get("best_s"), res.get("js triton, 1 sample", {}).get("best_s")
        return [row["C"], *cells, fmt_x(a / b) if a and b else "-"]

    r.table(["C", *(f"`{n}`" for n in GPU_FUNCS), "torch / triton (1 sample)"], map(speed_row, g["rows"]))
    r.para("Extra peak memory and accuracy (max abs error in `r`, entries in [0, log 2]; the float64 reference ",
           "is `js(x.double(), backend=\"torch\")`, computed in float64):")

    def mem(res: dict[str, Any], name: str) -> str:
        b = res.get(name, {}).get("extra_peak_bytes")
        return fmt_bytes(b) if b is not None else "-"

    def err(v: float | None) -> str:
        return f"{v:.1e}" if v is not None else "-"

    def memory_row(row: dict[str, Any]) -> list[Any]:
        res, e, first = row["results"], row["max_abs_err"], row.get("triton_first_call_s")
        return [row["C"], *(mem(res, n) for n in ("js triton, 1 sample", "js triton, batch 2", "js torch, 1 sample",
                                                  "js torch, batch 2")),
                fmt_ms(first) if first is not None else "-", err(e["triton vs float64 (1 sample)"]),
                err(e["torch float32 vs float64 (1 sample)"]),
                f"{err(e['triton vs torch (1 sample)'])} / {err(e['triton vs torch (batch 2)'])}"]

    r.table(["C", "triton 1 sample", "triton batch 2", "torch 1 sample", "torch batch 2", "triton first call [ms]",
             "triton vs float64", "torch float32 vs float64", "triton vs torch (1 / 2 samples)"],
            map(memory_row, g["rows"]))
    r.lines.pop()  # the sections below follow the table without a blank line, as before
    errors = [(row["C"], n, res["error"]) for row in g["rows"] for n, res in row["results"].items() if "error" in res]
    if errors:
        r.add("", "Failures:", "")
        r.add(*(f"* C = {c}, `{n}`: `{msg[:500]}`" for c, n, msg in errors))
    sw = g.get("sweep")
    if sw:
        r.add("")
        r.heading(f"Triton tile shapes (kernel alone, one sample, C = {sw['C']}, {sw['H']}x{sw['W']})", 3)
        r.para("`measures.triton_js_terms(p, p log p, (rows, columns, positions per chunk, warps))`"
               " on precomputed probabilities; first row = the default `measures.triton_default_tiles(C)`.")

        def sweep_row(row: dict[str, Any]) -> list[Any]:
            t = fmt_ms(row["best_s"]) if "best_s" in row else "failed: " + row.get("error", "")[:200]
            first = fmt_ms(row["first_call_s"]) if row.get("first_call_s") is not None else "-"
            return [f"{tuple(row['config'])}{' (default)' if row['default'] else ''}", t, first,
                    err(row.get("max_abs_diff_r_vs_default"))]

        r.table(["tiles (BI, BJ, BK, warps)", "ms (best)", "first call [ms]", "max abs diff in r vs default"],
                map(sweep_row, sw["rows"]), align="lrrr")
        r.lines.pop()
    r.add("")
    r.heading("Target")
    tg = result["target"]
    what = f"`js` (Triton), one sample at C = 2048, H x W = 128 x 256, under {TARGET_GPU_MS:g} ms"
    if tg is None:
        r.add("Not evaluated: C = 2048 at 128 x 256 was not in this run.")
    elif tg["best_s"] is None:
        r.add(f"* {what}: **FAIL** (the Triton backend did not run)")
    else:
        r.target(what, tg["pass"], f"{fmt_ms(tg['best_s'])} ms")
    r.add("", f"Total wall time of this part: {result['total_wall_s']:.0f} s.", "")
    return r.text()


def machine_info() -> dict[str, Any]:
    return {
        **common.machine_info("numpy", "torch", "sirfp_adapter"),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def evaluate_part1_targets(sizes: list[dict[str, Any]]) -> dict[str, Any] | None:
    rec = next((r for r in sizes if r["C"] == TARGET_C and (r["H"], r["W"]) == TARGET_HW), None)
    if rec is None:
        return None
    out: dict[str, Any] = {"C": TARGET_C, "HW": list(TARGET_HW)}
    if rec["naive_ran"]:
        out["speedup"] = rec["naive_over_js"]
        out["speedup_pass"] = rec["naive_over_js"] >= TARGET_JS_SPEEDUP
    mem = rec.get("memory", {}).get("js", {})
    if "extra_peak_bytes" in mem:
        ref = rec["output_bytes"] + rec["js_chunk_elements"] * 4
        out["js_extra_peak_bytes"] = mem["extra_peak_bytes"]
        out["reference_bytes"] = ref
        out["mem_factor"] = mem["extra_peak_bytes"] / ref
        out["mem_pass"] = out["mem_factor"] <= TARGET_JS_MEM_FACTOR
    return out


def _render_part1(r: common.Report, result: dict[str, Any]) -> None:
    fmt_ms, fmt_x, fmt_bytes = common.fmt_ms, common.fmt_x, common.fmt_bytes
    sizes, args = result["measures"], result["args"]
    small = f"chunk=2^{int(math.log2(SMALL_CHUNK))}"
    r.heading("Part 1: the measures alone (CPU, batch 2)")
    r.para(
        "Input: seeded standard-normal `(2, C, H, W)` float32. Times in ms per call (whole batch), best of R, "
        "repeats interleaved across the functions. `js` = `sirfp_adapter.measures.js` (exact Eq. 3, "
        f"blocked, default `chunk` = {measures.DEFAULT_CHUNK:,} elements); `naive` = the broadcast JS written in "
        "the benchmark (per sample: `M = (P + Q) / 2`, `xlogy(P, P / M)`, `xlogy(Q, Q / M)` as full "
        "`C x C x HW` float32 tensors; up to three alive at once, so it needs 3 x C^2 x HW x 4 bytes and is "
        f"skipped above {args['naive_limit_gib']:g} GiB). `naive / js` = speed-up of the blocked version. "
        f"`js, {small}` = the same function with a cache-sized chunk "
        f"({SMALL_CHUNK * 4 // 1024} KiB buffer) instead of the default; its result differs from the default's "
        "by rounding only (max abs diff column `small vs default`). "
        "`max |naive - js|` compares the two results (entries are in [0, log 2]).")

    def speed_row(row: dict[str, Any]) -> list[Any]:
        b = row["best_s"]
        if row["naive_ran"]:
            nv, ratio, diff = fmt_ms(b["naive_js"]), fmt_x(row["naive_over_js"]), f"{row['naive_vs_js_max_abs_diff']:.1e}"
        else:
            nv, ratio, diff = f"skipped (would need {fmt_bytes(row['naive_temporaries_bytes'])})", "-", "-"
        return [row["C"], f"{row['H']}x{row['W']}", row["repeats"], fmt_ms(b["js"]), fmt_ms(b["js_small_chunk"]),
                f"{row['js_small_chunk_max_abs_diff']:.1e}", nv, ratio, diff, fmt_ms(b["gram"]),
                fmt_ms(b["hellinger"]), fmt_ms(b["dice"]), fmt_x(b["js"] / b["gram"])]

    r.table(["C", "H x W", "R", "`js`", f"`js`, {small}", "small vs default", "`naive`", "naive / js",
             "max \\|naive - js\\|", "`gram`", "`hellinger`", "`dice`", "js / gram"], map(speed_row, sizes),
            align="rcrrrrrrrrrrr")
    if not args["no_memory"]:
        methods = sorted({mm.get("method", "error") for row in sizes for mm in row.get("memory", {}).values()})
        r.heading("Extra peak memory per call", 3)
        r.para(
            "Method: a fresh Python process per (function, size) builds the input, calls the function once on "
            "a tiny input (lazy kernel initialisation), then resets the kernel's peak-RSS counter (`VmHWM`, via "
            "`echo 5 > /proc/self/clear_refs`), calls the function once and reports `VmHWM` after the call "
            "minus `VmRSS` before it. torch allocates CPU tensors with plain `posix_memalign`/`free` and does not "
            "cache them, so this is the memory the call really touched, output included (input excluded); "
            "`tracemalloc` would see none of it. Resolution: pages (4 KiB); glibc may serve small "
            "temporaries from heap memory freed by the warm-up, so values under ~1 MiB are noise. "
            f"Method(s) used in this run: {', '.join(methods)}.")
        r.para(
            "Reference for `js`: output `C^2 x 4` bytes + one chunk `chunk x 4` bytes. The code (read, "
            "`_pairwise_js_terms`) keeps exactly one pairwise temporary, `buf`, of the input's dtype (float32 "
            "here) and at most `chunk` elements; its float64 accumulators are `(block, block)` and `(C, C)` "
            "sized, not chunk sized, so **chunk x 4 bytes is assumed**. Besides `buf` the call holds "
            "`p` and `xlogy(p, p)` (`C x HW` float32 each, per sample) and two `C x C` float64 sums. "
            "`buf` column: the elements actually allocated (`side^2 x n` from the block-shape rule, <= chunk).")

        def memory_row(row: dict[str, Any]) -> list[Any]:
            mem = row["memory"]

            def cell(f: str) -> str:
                if f not in mem:
                    return "-"
                return "error" if "error" in mem[f] else fmt_bytes(mem[f]["extra_peak_bytes"])

            naive = (f"{cell('naive_js')} ({fmt_bytes(row['naive_temporaries_bytes'])})" if row["naive_ran"]
                     else f"skipped (would need {fmt_bytes(row['naive_temporaries_bytes'])})")
            ref = row["output_bytes"] + row["js_chunk_elements"] * 4
            js_b = mem.get("js", {}).get("extra_peak_bytes")
            buf = row["js_buffer_elements"]
            return [row["C"], f"{row['H']}x{row['W']}", fmt_bytes(row["output_bytes"]),
                    fmt_bytes(buf * 4) if buf else "?", cell("js"), cell("js_small_chunk"), naive, cell("gram"),
                    cell("hellinger"), cell("dice"), fmt_x(js_b / ref) if js_b is not None else "-"]

        r.table(["C", "H x W", "output", "`buf` (js)", "`js`", "`js`, small chunk", "`naive` (est. 3 temporaries)",
                 "`gram`", "`hellinger`", "`dice`", "js / (output + chunk)"], map(memory_row, sizes),
                align="rcrrrrrrrrr")
    r.heading(f"Targets (C = {TARGET_C}, H x W = {TARGET_HW[0]}x{TARGET_HW[1]})", 3)
    t1 = result["targets_part1"]
    if t1 is None:
        r.add("Not evaluated: this size is not part of the run.")
    else:
        if "speedup" in t1:
            r.target(f"`js` at least {TARGET_JS_SPEEDUP:g}x faster than the naive broadcast", t1["speedup_pass"],
                     fmt_x(t1["speedup"]))
        else:
            r.add("* speed-up: not evaluated (naive skipped)")
        if "mem_factor" in t1:
            r.target(f"`js` extra peak memory within {TARGET_JS_MEM_FACTOR:g}x of output + one chunk", t1["mem_pass"],
                     f"{fmt_bytes(t1['js_extra_peak_bytes'])} vs {fmt_bytes(t1['reference_bytes'])} = "
                     f"{fmt_x(t1['mem_factor'])}")
        else:
            r.add("* memory: not evaluated (`--no-memory`, or the child failed)")
    r.add("")


def _render_part2(r: common.Report, result: dict[str, Any]) -> None:
    fmt_ms, fmt_x = common.fmt_ms, common.fmt_x
    c, args = result["collector"], result["args"]
    mn = c["main"]
    r.heading("Part 2: collector overhead on a training step (CPU)")
    r.para(
        f"`SmallSegNet` (defined in the benchmark): stem conv-bn-relu (stride 2), four stages of two "
        "basic residual blocks (widths 32/64/128/128, strides 2/2/1/1, dilations 1/1/2/4, 1x1 conv-bn "
        "shortcuts where the shape changes), ASPP-like head (1x1, three dilated 3x3 (rates 2/4/6) and an "
        "image-pool conv-bn-relu branch, 64 channels each, concatenated, 1x1 classifier), bilinear "
        f"upsampling; {c['n_params']:,} parameters, {c['n_bn_layers']} BatchNorm layers (all watched, the "
        f"collector's default). Input {'x'.join(map(str, c['input']))}, 19 classes, cross-entropy, SGD "
        "(momentum 0.9). A step = zero_grad, forward, loss, backward, optimizer step. Per round and "
        f"configuration: a fresh `RedundancyCollector`, {args['warmup']} warm-up steps, then the mean of "
        f"{args['steps']} timed steps; configurations interleaved (order rotated each round); best of "
        f"{args['rounds']} rounds. The number of updates is asserted; of the {args['steps']} timed steps, ",
        ", ".join(f"{cfg['name']}: {cfg['measured_timed_steps']}" for cfg in mn["configs"]
                  if "measured_timed_steps" in cfg),
        " run the measure on every watched layer.")
    r.table(["configuration", "step [ms] (best round mean)", "round means [ms]", "ratio to none"],
            ([cfg["name"], fmt_ms(mn["best_mean_s"][cfg["name"]]),
              ", ".join(fmt_ms(v) for v in mn["round_means_s"][cfg["name"]]), fmt_x(mn["ratio"][cfg["name"]])]
             for cfg in mn["configs"]), align="lrlr")
    rg, rj = mn["ratio"]["gram every=1"], mn["ratio"]["js every=10"]
    r.target("`gram`, every=1", rg <= TARGET_COLLECTOR_RATIO, f"{fmt_x(rg)} <= {TARGET_COLLECTOR_RATIO:g}x")
    r.target("`js`, every=10", rj <= TARGET_COLLECTOR_RATIO, f"{fmt_x(rj)} <= {TARGET_COLLECTOR_RATIO:g}x")
    r.add("")
    r.heading("Where the time goes: the measures on the network's own activations", 3)
    r.para(
        f"Each BatchNorm output of one training-mode forward pass, each measure timed alone (best of "
        f"{args['profile_repeats']}), in ms. `predicted` = 1 + (sum over layers) / (step without "
        "collector), the ratio the collector would cost if the measure were all of its overhead. "
        "Note: `downsample` pools with `adaptive_avg_pool2d`, which *upsamples* a map smaller than the "
        "target (the image-pool branch's 1x1 map becomes the full target size), so it raises the cost "
        "of such layers; the collector applies one `downsample` to every watched layer.")
    variants = list(c["measure_totals_s"])
    rows = [[f"`{row['layer']}`", tuple(row["shape"]), *(fmt_ms(row["times_s"][v]) for v in variants)]
            for row in sorted(c["layers"], key=lambda row: -row["times_s"]["js"])]
    rows.append(["**sum**", "", *(f"**{fmt_ms(c['measure_totals_s'][v])}**" for v in variants)])
    for every in ("every=1", "every=10"):
        rows.append([f"predicted ratio, {every}", "", *(fmt_x(c["predicted_ratio"][v][every]) for v in variants)])
    r.table(["layer", "shape (B, C, H, W)", *(f"`{v}`" for v in variants)], rows, align="ll" + "r" * len(variants))
    if c["extra"] is not None:
        ex = c["extra"]
        r.heading("Alternative settings (run because a target failed)", 3)
        r.para("Timed the same way, in a separate interleaved session with its own `none` baseline.")
        r.table(["configuration", "step [ms]", "ratio to none", "meets <= 1.3x"],
                ([cfg["name"], fmt_ms(ex["best_mean_s"][cfg["name"]]), fmt_x(ex["ratio"][cfg["name"]]),
                  "yes" if ex["ratio"][cfg["name"]] <= TARGET_COLLECTOR_RATIO else "no"] for cfg in ex["configs"]),
                align="lrrl")
    else:
        r.para("Both targets met; no alternative settings were timed.")


def render_markdown(result: dict[str, Any]) -> str:
    m, args = result["machine"], result["args"]
    cmd = ".venv/bin/python benchmarks/redundancy_speed.py" + (" --quick" if args["quick"] else "")
    r = common.Report("Redundancy measures: speed, memory and collector overhead")
    if args["quick"]:
        r.para("**Quick smoke run (`--quick`): small sizes and few repeats; the targets are not meaningful.**")
    r.generated_by("benchmarks/redundancy_speed.py", date=result["date"], command=cmd)
    la = m["load_average_start"]
    r.para(
        f"Machine: `{m['platform']}`, {m['cpu'] or m['machine']}, `os.cpu_count()` = {m['cpu_count']}; "
        f"Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}, sirfp_adapter {m['sirfp_adapter']}. "
        f"**All CPU timings use `torch.set_num_threads({THREADS})`** (and `OMP_NUM_THREADS={THREADS}` in the "
        "memory subprocesses): the machine is shared (another long single-threaded job may occupy a core; ",
        f"load average at start {la[0]:.2f}" if la else "load unknown",
        "), so these are single-core numbers; compare numbers within a table (same run), not across runs. "
        f"Total benchmark wall time: {result['total_wall_s']:.0f} s.")
    _render_part1(r, result)
    if result["collector"] is not None:
        _render_part2(r, result)
    r.heading("Part 3: GPU")
    g = result["gpu"]
    if g.get("skipped"):
        r.add(f"**Skipped: {g['skipped']}** With `--device cuda` on a CUDA machine (`benchmarks/gpu_check.sh`) "
              "the benchmark times `js` through the torch path and the Triton kernel, `gram` and `hellinger` "
              f"on `(2, C, {args['gpu_hw'][0]}, {args['gpu_hw'][1]})` for C in {args['gpu_channels']} and "
              f"checks one sample at C = 2048 against < {TARGET_GPU_MS:g} ms; it writes "
              "`redundancy_speed_gpu.md` / `.json` beside this file.")
    else:
        tg = result.get("gpu_target")
        r.add(f"Ran on {g['device_name']}: see `redundancy_speed_gpu.md`"
              + (f" (one sample at C = {2048} with Triton: {common.fmt_ms(tg['best_s'])} ms)."
                 if tg and tg.get("best_s") is not None else "."))
    r.add("")
    return r.text()


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def write_gpu_results(gpu: dict[str, Any], args: argparse.Namespace, machine: dict[str, Any], t_gpu: float,
                      *, final: bool) -> dict[str, Any] | None:
    """Write ``redundancy_speed_gpu.{md,json}`` (also partial results); return the target's evaluation."""
    target = evaluate_gpu_target(gpu)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "complete": final,
        "machine": machine,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "_memory_child"},
        "target_ms": TARGET_GPU_MS,
        "gpu": gpu,
        "target": target,
        "total_wall_s": time.perf_counter() - t_gpu,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    md, js_path = args.out / "redundancy_speed_gpu.md", args.out / "redundancy_speed_gpu.json"
    common.write_atomic(js_path, json.dumps(result, indent=1, default=str) + "\n")
    common.write_atomic(md, render_gpu_markdown(result))
    if final:
        print(f"wrote {md} and {js_path}", flush=True)
        if target is not None:
            best = target["best_s"]
            shown = "n/a" if best is None else f"{best * 1e3:.1f} ms"
            print(f"part 3 target: js triton one sample at C=2048: {shown} -> {'PASS' if target['pass'] else 'FAIL'}",
                  flush=True)
    return target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, few repeats")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="output directory")
    p.add_argument("--seed", type=int, default=20250101)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="part 3 runs on cuda (auto: when available); parts 1-2 are always CPU")
    p.add_argument("--parts", type=int, nargs="+", default=[1, 2, 3], choices=(1, 2, 3))
    p.add_argument("--channels", type=int, nargs="+", help="part 1 C values (default 64 256 512)")
    p.add_argument("--hw", type=str, nargs="+", help="part 1 sizes as HxW (default 32x32 64x128)")
    p.add_argument("--repeats", type=int, help="part 1 repeats (default 5; 3 and 2 at the largest sizes)")
    p.add_argument("--naive-limit-gib", type=float, default=6.0,
                   help="skip the naive JS where its live temporaries would exceed this")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--train-hw", type=int, nargs=2, help="part 2 input H W (default 128 256)")
    p.add_argument("--steps", type=int, help="part 2 timed steps per config and round (default 20)")
    p.add_argument("--warmup", type=int, help="part 2 warm-up steps (default 3)")
    p.add_argument("--rounds", type=int, help="part 2 rounds (default 3)")
    p.add_argument("--profile-repeats", type=int, default=3)
    p.add_argument("--suggest-downsample", type=int, nargs=2, default=[8, 16],
                   help="downsample (h, w) tried as a suggestion if the js target fails")
    p.add_argument("--gpu-channels", type=int, nargs="+", help="part 3 C values (default 256 512 1024 2048)")
    p.add_argument("--gpu-hw", type=int, nargs=2, default=[128, 256])
    p.add_argument("--gpu-repeats", type=int, default=3)
    p.add_argument("--render", action="store_true",
                   help="only rewrite the .md reports in --out from their .json results (no measuring)")
    p.add_argument("--_memory-child", nargs=5, metavar=("FUNC", "C", "H", "W", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    q = args.quick
    if args.channels is None:
        args.channels = [32, 64] if q else [64, 256, 512]
    args.hw = [tuple(int(v) for v in s.lower().split("x")) for s in (args.hw or (["16x16", "32x32"] if q
                                                                                 else ["32x32", "64x128"]))]
    if args.repeats is None:
        args.repeats = 2 if q else 5
    if args.train_hw is None:
        args.train_hw = [64, 128] if q else [128, 256]
    if args.steps is None:
        args.steps = 10 if q else 20
    if args.warmup is None:
        args.warmup = 1 if q else 3
    if args.rounds is None:
        args.rounds = 1 if q else 3
    if q:
        args.profile_repeats = 1
    if args.gpu_channels is None:
        args.gpu_channels = [256, 512] if q else [256, 512, 1024, 2048]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._memory_child is not None:
        f, c, h, w, seed = args._memory_child
        print(json.dumps(memory_child(f, int(c), int(h), int(w), int(seed))))
        return 0
    if args.render:
        for name, render in (("redundancy_speed", render_markdown), ("redundancy_speed_gpu", render_gpu_markdown)):
            if (args.out / f"{name}.json").exists():
                common.write_atomic(args.out / f"{name}.md", render(json.loads((args.out / f"{name}.json").read_text())))
                print(f"wrote {args.out / f'{name}.md'}")
        return 0

    torch.set_num_threads(THREADS)
    t_all = time.perf_counter()
    machine = machine_info()

    sizes: list[dict[str, Any]] = []
    if 1 in args.parts:
        for c in args.channels:
            for hw in args.hw:
                t0 = time.perf_counter()
                rec = bench_measures_size(c, hw, args, args.seed + c * 1000 + hw[0] * hw[1])
                sizes.append(rec)
                b = rec["best_s"]
                mem = rec.get("memory", {}).get("js", {}).get("extra_peak_bytes")
                print(
                    f"part 1: C={c:4d} {hw[0]}x{hw[1]:<4d} js {b['js'] * 1e3:9.1f} ms  "
                    + (f"naive {b['naive_js'] * 1e3:9.1f} ms ({rec['naive_over_js']:.1f}x, "
                       f"diff {rec['naive_vs_js_max_abs_diff']:.1e})  " if rec["naive_ran"] else "naive skipped  ")
                    + f"gram {b['gram'] * 1e3:.2f} ms  hell {b['hellinger'] * 1e3:.2f} ms  "
                    f"dice {b['dice'] * 1e3:.2f} ms  js chunk=2^{int(math.log2(SMALL_CHUNK))} "
                    f"{b['js_small_chunk'] * 1e3:.1f} ms"
                    + (f"  js extra peak {mem / 2**20:.1f} MiB" if mem is not None else "")
                    + f"  [{time.perf_counter() - t0:.0f} s]",
                    flush=True,
                )

    collector = None
    if 2 in args.parts:
        t0 = time.perf_counter()
        collector = bench_collector(args)
        r = collector["main"]["ratio"]
        print("part 2: " + "  ".join(f"{k} {v:.2f}x" for k, v in r.items())
              + f"  [{time.perf_counter() - t0:.0f} s]", flush=True)

    gpu: dict[str, Any]
    t_gpu = time.perf_counter()
    want_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if 3 not in args.parts:
        gpu = {"skipped": "part 3 not requested (`--parts`)."}
    elif args.device == "cpu":
        gpu = {"skipped": "`--device cpu` was given."}
    elif not want_cuda or not torch.cuda.is_available():
        gpu = {"skipped": f"CUDA is not available on this machine (torch {torch.__version__}, "
                          "`torch.cuda.is_available()` is False); no GPU numbers in this run."}
    else:
        gpu = bench_gpu(args, save=lambda partial: write_gpu_results(partial, args, machine, t_gpu, final=False))
    if gpu.get("skipped"):
        print(f"part 3: skipped: {gpu['skipped']}", flush=True)

    now = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    args.out.mkdir(parents=True, exist_ok=True)
    gpu_target = None
    if not gpu.get("skipped"):  # its own files: a GPU run never overwrites the CPU results
        gpu_target = write_gpu_results(gpu, args, machine, t_gpu, final=True)
    if not ({1, 2} & set(args.parts)):
        return 0

    result = {
        "date": now,
        "machine": machine,
        "threads": THREADS,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "_memory_child"},
        "targets": {
            "part1": {"C": TARGET_C, "HW": list(TARGET_HW), "js_speedup_min": TARGET_JS_SPEEDUP,
                      "js_mem_factor_max": TARGET_JS_MEM_FACTOR, "chunk_bytes_per_element": 4},
            "part2": {"ratio_max": TARGET_COLLECTOR_RATIO, "checked": ["gram every=1", "js every=10"]},
            "part3": {"js_per_sample_ms_max": TARGET_GPU_MS},
        },
        "measures": sizes,
        "targets_part1": evaluate_part1_targets(sizes),
        "collector": collector,
        "gpu": {"skipped": gpu["skipped"]} if gpu.get("skipped") else
               {"device_name": gpu["device_name"], "see": "redundancy_speed_gpu.json"},
        "gpu_target": gpu_target,
        "total_wall_s": time.perf_counter() - t_all,
    }
    md, js_path = args.out / "redundancy_speed.md", args.out / "redundancy_speed.json"
    common.write_atomic(js_path, json.dumps(result, indent=1, default=str) + "\n")
    common.write_atomic(md, render_markdown(result))
    print(f"wrote {md} and {js_path} ({result['total_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
