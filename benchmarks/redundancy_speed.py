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

Part 3 (GPU). With ``--device cuda`` (or ``auto`` when CUDA is present): ``js`` on
2 x C x 128 x 256 for C up to 2048, per-sample time. Skipped, and said so, without CUDA.

Everything runs with ``torch.set_num_threads(1)`` (the machine is shared), so the
numbers are single-core numbers; only ratios measured in the same run are meaningful.

Run from the repository root::

    .venv/bin/python benchmarks/redundancy_speed.py            # full run, ~10-15 minutes
    .venv/bin/python benchmarks/redundancy_speed.py --quick    # smoke run, about a minute

Results go to ``--out`` (default ``benchmarks/results/``): ``redundancy_speed.md`` and
``redundancy_speed.json`` (every repeat's raw time).
"""

from __future__ import annotations

import argparse
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


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
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


def conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-bn, identity or 1x1 conv-bn shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x), inplace=True)


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


def bench_gpu(args: argparse.Namespace) -> dict[str, Any]:
    dev = torch.device("cuda")
    h, w = args.gpu_hw
    rows = []
    measures.js(make_input(BATCH, 16, 8, 8, 0, "cuda"))  # context and kernels
    for c in args.gpu_channels:
        x = make_input(BATCH, c, h, w, args.seed + c, "cuda")
        rec: dict[str, Any] = {"C": c, "H": h, "W": w, "times_s": {}, "extra_peak_bytes": {}}
        for name in ("js", "gram", "hellinger"):
            fn = MEASURE_FUNCS[name]
            reps = args.gpu_repeats if (name != "js" or c <= 1024) else max(1, min(args.gpu_repeats, 2))
            ts = []
            for _ in range(reps):
                torch.cuda.synchronize(dev)
                base = torch.cuda.memory_allocated(dev)
                torch.cuda.reset_peak_memory_stats(dev)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                out = fn(x)
                end.record()
                torch.cuda.synchronize(dev)
                ts.append(start.elapsed_time(end) / 1e3)
                rec["extra_peak_bytes"][name] = torch.cuda.max_memory_allocated(dev) - base
                del out
            rec["times_s"][name] = ts
        rec["js_per_sample_s"] = min(rec["times_s"]["js"]) / BATCH
        rows.append(rec)
        print(f"  gpu C={c}: js per sample {rec['js_per_sample_s'] * 1e3:.1f} ms", flush=True)
        del x
        torch.cuda.empty_cache()
    return {"device_name": torch.cuda.get_device_name(dev), "rows": rows}


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def fmt_bytes(b: float) -> str:
    if b >= 2**30:
        return f"{b / 2**30:.2f} GiB"
    if b >= 2**20:
        return f"{b / 2**20:.1f} MiB"
    return f"{b / 2**10:.0f} KiB"


def machine_info() -> dict[str, Any]:
    return {
        **common.machine_info("numpy", "torch", "sirfp_adapter"),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def pass_fail(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


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


def render_markdown(result: dict[str, Any]) -> str:  # noqa: C901 - a report, read top to bottom
    m = result["machine"]
    args = result["args"]
    cmd = ".venv/bin/python benchmarks/redundancy_speed.py" + (" --quick" if args["quick"] else "")
    o: list[str] = []
    o.append("# Redundancy measures: speed, memory and collector overhead")
    o.append("")
    if args["quick"]:
        o.append("**Quick smoke run (`--quick`): small sizes and few repeats; the targets are not meaningful.**")
        o.append("")
    o.append(f"Generated by `benchmarks/redundancy_speed.py` on {result['date']}. Rerun from the repository root:")
    o.append("")
    o.append(f"    {cmd}")
    o.append("")
    la = m["load_average_start"]
    o.append(
        f"Machine: `{m['platform']}`, {m['cpu'] or m['machine']}, `os.cpu_count()` = {m['cpu_count']}; "
        f"Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}, sirfp_adapter {m['sirfp_adapter']}. "
        f"**All CPU timings use `torch.set_num_threads({THREADS})`** (and `OMP_NUM_THREADS={THREADS}` in the "
        "memory subprocesses): the machine is shared (another long single-threaded job may occupy a core; "
        + (f"load average at start {la[0]:.2f}" if la else "load unknown")
        + "), so these are single-core numbers; compare numbers within a table (same run), not across runs. "
        f"Total benchmark wall time: {result['total_wall_s']:.0f} s."
    )
    o.append("")

    # ---- Part 1
    sizes = result["measures"]
    o.append("## Part 1: the measures alone (CPU, batch 2)")
    o.append("")
    o.append(
        "Input: seeded standard-normal `(2, C, H, W)` float32. Times in ms per call (whole batch), best of R, "
        "repeats interleaved across the functions. `js` = `sirfp_adapter.measures.js` (exact Eq. 3, "
        f"blocked, default `chunk` = {measures.DEFAULT_CHUNK:,} elements); `naive` = the broadcast JS written in "
        "the benchmark (per sample: `M = (P + Q) / 2`, `xlogy(P, P / M)`, `xlogy(Q, Q / M)` as full "
        "`C x C x HW` float32 tensors; up to three alive at once, so it needs 3 x C^2 x HW x 4 bytes and is "
        f"skipped above {args['naive_limit_gib']:g} GiB). `naive / js` = speed-up of the blocked version. "
        f"`js, chunk=2^{int(math.log2(SMALL_CHUNK))}` = the same function with a cache-sized chunk "
        f"({SMALL_CHUNK * 4 // 1024} KiB buffer) instead of the default; its result differs from the default's "
        "by rounding only (max abs diff column `small vs default`). "
        "`max |naive - js|` compares the two results (entries are in [0, log 2])."
    )
    o.append("")
    o.append(f"| C | H x W | R | `js` | `js`, chunk=2^{int(math.log2(SMALL_CHUNK))} | small vs default "
             "| `naive` | naive / js | max \\|naive - js\\| | `gram` | `hellinger` | `dice` | js / gram |")
    o.append("|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sizes:
        b = r["best_s"]
        if r["naive_ran"]:
            nv, ratio, diff = common.fmt_ms(b["naive_js"]), common.fmt_x(r["naive_over_js"]), f"{r['naive_vs_js_max_abs_diff']:.1e}"
        else:
            nv, ratio, diff = f"skipped (would need {fmt_bytes(r['naive_temporaries_bytes'])})", "-", "-"
        o.append(
            f"| {r['C']} | {r['H']}x{r['W']} | {r['repeats']} | {common.fmt_ms(b['js'])} | {common.fmt_ms(b['js_small_chunk'])} "
            f"| {r['js_small_chunk_max_abs_diff']:.1e} | {nv} | {ratio} | {diff} "
            f"| {common.fmt_ms(b['gram'])} | {common.fmt_ms(b['hellinger'])} | {common.fmt_ms(b['dice'])} "
            f"| {common.fmt_x(b['js'] / b['gram'])} |"
        )
    o.append("")
    if not args["no_memory"]:
        methods = sorted({mm.get("method", "error") for r in sizes for mm in r.get("memory", {}).values()})
        o.append("### Extra peak memory per call")
        o.append("")
        o.append(
            "Method: a fresh Python process per (function, size) builds the input, calls the function once on "
            "a tiny input (lazy kernel initialisation), then resets the kernel's peak-RSS counter (`VmHWM`, via "
            "`echo 5 > /proc/self/clear_refs`), calls the function once and reports `VmHWM` after the call "
            "minus `VmRSS` before it. torch allocates CPU tensors with plain `posix_memalign`/`free` and does not "
            "cache them, so this is the memory the call really touched, output included (input excluded); "
            "`tracemalloc` would see none of it. Resolution: pages (4 KiB); glibc may serve small "
            "temporaries from heap memory freed by the warm-up, so values under ~1 MiB are noise. "
            f"Method(s) used in this run: {', '.join(methods)}."
        )
        o.append("")
        o.append(
            "Reference for `js`: output `C^2 x 4` bytes + one chunk `chunk x 4` bytes. The code (read, "
            "`_pairwise_js_terms`) keeps exactly one pairwise temporary, `buf`, of the input's dtype (float32 "
            "here) and at most `chunk` elements; its float64 accumulators are `(block, block)` and `(C, C)` "
            "sized, not chunk sized, so **chunk x 4 bytes is assumed**. Besides `buf` the call holds "
            "`p` and `xlogy(p, p)` (`C x HW` float32 each, per sample) and two `C x C` float64 sums. "
            "`buf` column: the elements actually allocated (`side^2 x n` from the block-shape rule, <= chunk)."
        )
        o.append("")
        o.append("| C | H x W | output | `buf` (js) | `js` | `js`, small chunk | `naive` (est. 3 temporaries) "
                 "| `gram` | `hellinger` | `dice` | js / (output + chunk) |")
        o.append("|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in sizes:
            mem = r["memory"]

            def cell(f: str, mem: dict = mem) -> str:
                if f not in mem:
                    return "-"
                if "error" in mem[f]:
                    return "error"
                return fmt_bytes(mem[f]["extra_peak_bytes"])

            naive_cell = (f"{cell('naive_js')} ({fmt_bytes(r['naive_temporaries_bytes'])})" if r["naive_ran"]
                          else f"skipped (would need {fmt_bytes(r['naive_temporaries_bytes'])})")
            ref = r["output_bytes"] + r["js_chunk_elements"] * 4
            js_b = mem.get("js", {}).get("extra_peak_bytes")
            buf = r["js_buffer_elements"]
            o.append(
                f"| {r['C']} | {r['H']}x{r['W']} | {fmt_bytes(r['output_bytes'])} "
                f"| {fmt_bytes(buf * 4) if buf else '?'} | {cell('js')} | {cell('js_small_chunk')} | {naive_cell} "
                f"| {cell('gram')} "
                f"| {cell('hellinger')} | {cell('dice')} | {common.fmt_x(js_b / ref) if js_b is not None else '-'} |"
            )
        o.append("")

    o.append(f"### Targets (C = {TARGET_C}, H x W = {TARGET_HW[0]}x{TARGET_HW[1]})")
    o.append("")
    t1 = result["targets_part1"]
    if t1 is None:
        o.append("Not evaluated: this size is not part of the run.")
    else:
        if "speedup" in t1:
            o.append(f"* `js` at least {TARGET_JS_SPEEDUP:g}x faster than the naive broadcast: "
                     f"{common.fmt_x(t1['speedup'])} -> {pass_fail(t1['speedup_pass'])}")
        else:
            o.append("* speed-up: not evaluated (naive skipped)")
        if "mem_factor" in t1:
            o.append(
                f"* `js` extra peak memory within {TARGET_JS_MEM_FACTOR:g}x of output + one chunk: "
                f"{fmt_bytes(t1['js_extra_peak_bytes'])} vs {fmt_bytes(t1['reference_bytes'])} = "
                f"{common.fmt_x(t1['mem_factor'])} -> {pass_fail(t1['mem_pass'])}"
            )
        else:
            o.append("* memory: not evaluated (`--no-memory`, or the child failed)")
    o.append("")

    # ---- Part 2
    c = result["collector"]
    if c is not None:
        mn = c["main"]
        o.append("## Part 2: collector overhead on a training step (CPU)")
        o.append("")
        o.append(
            f"`SmallSegNet` (defined in the benchmark): stem conv-bn-relu (stride 2), four stages of two "
            "basic residual blocks (widths 32/64/128/128, strides 2/2/1/1, dilations 1/1/2/4, 1x1 conv-bn "
            "shortcuts where the shape changes), ASPP-like head (1x1, three dilated 3x3 (rates 2/4/6) and an "
            "image-pool conv-bn-relu branch, 64 channels each, concatenated, 1x1 classifier), bilinear "
            f"upsampling; {c['n_params']:,} parameters, {c['n_bn_layers']} BatchNorm layers (all watched, the "
            f"collector's default). Input {'x'.join(map(str, c['input']))}, 19 classes, cross-entropy, SGD "
            "(momentum 0.9). A step = zero_grad, forward, loss, backward, optimizer step. Per round and "
            f"configuration: a fresh `RedundancyCollector`, {args['warmup']} warm-up steps, then the mean of "
            f"{args['steps']} timed steps; configurations interleaved (order rotated each round); best of "
            f"{args['rounds']} rounds. The number of updates is asserted; of the {args['steps']} timed steps, "
            + ", ".join(f"{cfg['name']}: {cfg['measured_timed_steps']}" for cfg in mn["configs"]
                        if "measured_timed_steps" in cfg)
            + " run the measure on every watched layer."
        )
        o.append("")
        o.append("| configuration | step [ms] (best round mean) | round means [ms] | ratio to none |")
        o.append("|:---|---:|:---|---:|")
        for cfg in mn["configs"]:
            k = cfg["name"]
            rm = ", ".join(common.fmt_ms(v) for v in mn["round_means_s"][k])
            o.append(f"| {k} | {common.fmt_ms(mn['best_mean_s'][k])} | {rm} | {common.fmt_x(mn['ratio'][k])} |")
        o.append("")
        rg, rj = mn["ratio"]["gram every=1"], mn["ratio"]["js every=10"]
        o.append(f"* `gram`, every=1: {common.fmt_x(rg)} <= {TARGET_COLLECTOR_RATIO:g}x -> "
                 f"{pass_fail(rg <= TARGET_COLLECTOR_RATIO)}")
        o.append(f"* `js`, every=10: {common.fmt_x(rj)} <= {TARGET_COLLECTOR_RATIO:g}x -> "
                 f"{pass_fail(rj <= TARGET_COLLECTOR_RATIO)}")
        o.append("")
        o.append("### Where the time goes: the measures on the network's own activations")
        o.append("")
        o.append(
            f"Each BatchNorm output of one training-mode forward pass, each measure timed alone (best of "
            f"{args['profile_repeats']}), in ms. `predicted` = 1 + (sum over layers) / (step without "
            "collector), the ratio the collector would cost if the measure were all of its overhead. "
            "Note: `downsample` pools with `adaptive_avg_pool2d`, which *upsamples* a map smaller than the "
            "target (the image-pool branch's 1x1 map becomes the full target size), so it raises the cost "
            "of such layers; the collector applies one `downsample` to every watched layer."
        )
        o.append("")
        variants = list(c["measure_totals_s"])
        o.append("| layer | shape (B, C, H, W) | " + " | ".join(f"`{v}`" for v in variants) + " |")
        o.append("|:---|:---|" + "---:|" * len(variants))
        for row in sorted(c["layers"], key=lambda r: -r["times_s"]["js"]):
            o.append(f"| `{row['layer']}` | {tuple(row['shape'])} | "
                     + " | ".join(common.fmt_ms(row["times_s"][v]) for v in variants) + " |")
        o.append("| **sum** | | " + " | ".join(f"**{common.fmt_ms(c['measure_totals_s'][v])}**" for v in variants) + " |")
        o.append("| predicted ratio, every=1 | | "
                 + " | ".join(common.fmt_x(c["predicted_ratio"][v]["every=1"]) for v in variants) + " |")
        o.append("| predicted ratio, every=10 | | "
                 + " | ".join(common.fmt_x(c["predicted_ratio"][v]["every=10"]) for v in variants) + " |")
        o.append("")
        if c["extra"] is not None:
            ex = c["extra"]
            o.append("### Alternative settings (run because a target failed)")
            o.append("")
            o.append("Timed the same way, in a separate interleaved session with its own `none` baseline.")
            o.append("")
            o.append("| configuration | step [ms] | ratio to none | meets <= 1.3x |")
            o.append("|:---|---:|---:|:---|")
            for cfg in ex["configs"]:
                k = cfg["name"]
                o.append(f"| {k} | {common.fmt_ms(ex['best_mean_s'][k])} | {common.fmt_x(ex['ratio'][k])} "
                         f"| {'yes' if ex['ratio'][k] <= TARGET_COLLECTOR_RATIO else 'no'} |")
            o.append("")
        else:
            o.append("Both targets met; no alternative settings were timed.")
            o.append("")

    # ---- Part 3
    o.append("## Part 3: GPU")
    o.append("")
    g = result["gpu"]
    if g.get("skipped"):
        o.append(f"**Skipped: {g['skipped']}** With `--device cuda` on a CUDA machine the benchmark times `js` "
                 f"(and `gram`, `hellinger` for reference) on `(2, C, {args['gpu_hw'][0]}, {args['gpu_hw'][1]})` "
                 f"for C in {args['gpu_channels']} (CUDA events, best of {args['gpu_repeats']}, fewer for js at "
                 f"C > 1024) and checks the per-sample `js` time at the largest C against < {TARGET_GPU_MS:g} ms.")
    else:
        o.append(f"Device: {g['device_name']}. Times: CUDA events, best of R, ms per call (batch 2); "
                 "extra peak = `max_memory_allocated` minus allocated before the call.")
        o.append("")
        o.append("| C | H x W | `js` | js per sample | `gram` | `hellinger` | js extra peak |")
        o.append("|---:|:---:|---:|---:|---:|---:|---:|")
        for r in g["rows"]:
            t = {k: min(v) for k, v in r["times_s"].items()}
            o.append(f"| {r['C']} | {r['H']}x{r['W']} | {common.fmt_ms(t['js'])} | {common.fmt_ms(r['js_per_sample_s'])} "
                     f"| {common.fmt_ms(t['gram'])} | {common.fmt_ms(t['hellinger'])} | {fmt_bytes(r['extra_peak_bytes']['js'])} |")
        last = g["rows"][-1]
        ok = last["js_per_sample_s"] * 1e3 < TARGET_GPU_MS
        o.append("")
        o.append(f"* `js` per sample at C = {last['C']}: {common.fmt_ms(last['js_per_sample_s'])} ms < "
                 f"{TARGET_GPU_MS:g} ms -> {pass_fail(ok)}")
    o.append("")
    return "\n".join(o)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


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
    want_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if 3 not in args.parts:
        gpu = {"skipped": "part 3 not requested (`--parts`)."}
    elif args.device == "cpu":
        gpu = {"skipped": "`--device cpu` was given."}
    elif not want_cuda or not torch.cuda.is_available():
        gpu = {"skipped": f"CUDA is not available on this machine (torch {torch.__version__}, "
                          "`torch.cuda.is_available()` is False); no GPU numbers in this run."}
    else:
        gpu = bench_gpu(args)
    if gpu.get("skipped"):
        print(f"part 3: skipped: {gpu['skipped']}", flush=True)

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
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
        "gpu": gpu,
        "total_wall_s": time.perf_counter() - t_all,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    md, js_path = args.out / "redundancy_speed.md", args.out / "redundancy_speed.json"
    js_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    md.write_text(render_markdown(result))
    print(f"wrote {md} and {js_path} ({result['total_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
