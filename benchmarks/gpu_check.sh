#!/usr/bin/env bash
# GPU check of the Triton `js` kernel, for a CUDA machine whose plain `python3` has torch and
# triton (this repository need not be installed there; PYTHONPATH points at it):
#   1. the CUDA tests of the measures (Triton vs the torch path, special cases);
#   2. the GPU part of benchmarks/redundancy_speed.py (torch path vs Triton, gram, hellinger,
#      C = 256 ... 2048 at 128 x 256, the < 50 ms target), which writes
#      redundancy_speed_gpu.{md,json};
#   3. benchmarks/collector_overhead.py on the GPU (issue 13's collector cost per training step of
#      deeplabv3_resnet50 at 2x3x256x256), which writes collector_overhead_gpu.{md,json}.
# Logs and results go to "$OUT" when it is set, else to benchmarks/results/.
# Usage, from anywhere:  bash benchmarks/gpu_check.sh        (PYTHON=... to use another interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
DEST="${OUT:-benchmarks/results}"
mkdir -p "$DEST"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
  "$PY" -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.version.cuda, 'triton', triton.__version__, 'device', torch.cuda.get_device_name())"
} 2>&1 | tee "$DEST/gpu_env.log"

timeout 90 "$PY" -m pytest tests/sirfp_adapter/test_measures.py -q -k cuda -p no:cacheprovider -rs \
  --durations=5 2>&1 | tee "$DEST/gpu_tests.log"
tests=${PIPESTATUS[0]}

timeout 130 "$PY" benchmarks/redundancy_speed.py --parts 3 --device cuda --out "$DEST" 2>&1 \
  | tee "$DEST/gpu_bench.log"
bench=${PIPESTATUS[0]}

timeout 150 "$PY" benchmarks/collector_overhead.py --device cuda --rounds 5 --expensive-rounds 3 --out "$DEST" 2>&1 \
  | tee "$DEST/gpu_collector.log"
collector=${PIPESTATUS[0]}

echo "gpu_check: tests exit $tests, benchmark exit $bench, collector exit $collector" | tee -a "$DEST/gpu_bench.log"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ] && [ "$collector" -eq 0 ]
