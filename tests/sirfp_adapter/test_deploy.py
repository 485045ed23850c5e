"""sirfp_adapter.deploy: ONNX export checked in onnxruntime, dense vs pruned latency."""

from __future__ import annotations

import copy
import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from sirfp_adapter.deploy import compare_latency, export_onnx, latency_table  # noqa: E402
from sirfp_adapter.schedule import SIRFPPruner  # noqa: E402
from tests.sirfp_adapter.pruning_helpers import inputs, lite  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _pruned(dense):
    model = copy.deepcopy(dense)
    pruner = SIRFPPruner(model, inputs(), flops_reduction=0.5, interval=1, criterion="l1")
    pruner.step()
    return pruner.finalize()


@pytest.mark.slow
def test_pruned_onnx_file_runs_in_onnxruntime_matches_torch_and_is_smaller(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    dense = lite()
    pruned = _pruned(dense)
    x = inputs(seed=1, batch=1)
    a = export_onnx(dense, x, tmp_path / "dense.onnx")
    b = export_onnx(pruned, x, tmp_path / "pruned.onnx")
    assert b.path.stat().st_size == b.size_bytes < a.size_bytes == a.path.stat().st_size
    assert a.outputs == b.outputs == 1 and b.max_abs_diff <= 1e-4
    assert pruned.training  # the mode is restored
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense.onnx", "pruned.onnx"]  # no temporary left


def test_export_onnx_checks_its_arguments(tmp_path):
    with pytest.raises(TypeError, match="^model must be a torch.nn.Module, got str$"):
        export_onnx("model", inputs(), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="^example_inputs must be a tensor or a tuple of tensors, got list$"):
        export_onnx(lite(), [inputs()], tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=re.escape(f"path: folder {str(tmp_path / 'no')!r} does not exist")):
        export_onnx(lite(), inputs(), tmp_path / "no" / "m.onnx")
    with pytest.raises(ValueError, match="^atol must be a non-negative number, got -1$"):
        export_onnx(lite(), inputs(), tmp_path / "m.onnx", atol=-1)


def test_compare_latency_times_both_models_at_each_batch_size():
    dense = lite()
    pruned = _pruned(dense)
    rows = compare_latency(dense, pruned, (3, 32, 32), batch_sizes=(1, 2), threads=1, min_run_time=0.02, warmup=1)
    assert [(r.batch, r.threads, r.device) for r in rows] == [(1, 1, "cpu"), (2, 1, "cpu")]
    assert all(r.dense_s > 0 and r.pruned_s > 0 and r.speedup == r.dense_s / r.pruned_s for r in rows)
    table = latency_table(rows)
    assert table.splitlines()[0] == "| batch | threads | device | dense (ms) | pruned (ms) | speed-up |"
    assert len(table.splitlines()) == 4
    assert dense.training and pruned.training


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input_shape": (3, 0)}, "input_shape must be positive integers (one sample's shape), got (3, 0)"),
    ({"batch_sizes": ()}, "batch_sizes must be positive integers, got ()"),
    ({"threads": 0}, "threads must be a positive integer, got 0"),
    ({"min_run_time": float("nan")}, "min_run_time must be a positive number of seconds, got nan"),
    ({"warmup": -1}, "warmup must be a non-negative integer, got -1"),
])
def test_compare_latency_checks_its_arguments(kwargs, message):
    options = {"input_shape": (3, 8, 8), **kwargs}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        compare_latency(lite(), lite(), **options)
