"""Segmentation metrics: a hand-computed example, a numpy reference, ignore_index, evaluate()."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from sirfp_adapter.demo.metrics import ConfusionMatrix, evaluate  # noqa: E402


def reference(targets: list[np.ndarray], preds: list[np.ndarray], k: int, ignore: int | None) -> dict:
    """Loop-based float64 reference of the module's definitions."""
    m = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(targets, preds, strict=True):
        for a, b in zip(t.ravel(), p.ravel(), strict=True):
            if ignore is not None and a == ignore:
                continue
            m[a, b] += 1
    iou = []
    for c in range(k):
        tp, fp, fn = m[c, c], m[:, c].sum() - m[c, c], m[c, :].sum() - m[c, c]
        iou.append(tp / (tp + fp + fn) if tp + fp + fn else math.nan)
    present = [v for v in iou if not math.isnan(v)]
    return {"confusion": m, "iou": iou, "miou": sum(present) / len(present) if present else math.nan,
            "pixel_accuracy": np.trace(m) / m.sum() if m.sum() else math.nan}


def one_hot_logits(pred: torch.Tensor, k: int) -> torch.Tensor:
    """Logits (B, K, ...) whose argmax is ``pred``, with noise below the margin."""
    g = torch.Generator().manual_seed(0)
    logits = torch.rand((pred.shape[0], k, *pred.shape[1:]), generator=g)
    return logits + 2.0 * nn.functional.one_hot(pred, k).movedim(-1, 1)


def test_hand_computed_example():
    target = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
    pred = torch.tensor([[[0, 1, 1], [1, 2, 0]]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    np.testing.assert_array_equal(cm.numpy(), [[1, 1, 0], [0, 2, 0], [0, 0, 1]])
    np.testing.assert_allclose(cm.iou(), [1 / 2, 2 / 3, 1.0])
    assert cm.miou() == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 5)
    assert cm.pixels() == 5
    res = cm.results()
    assert set(res) == {"miou", "pixel_accuracy", "iou", "pixels", "confusion"}
    assert res["miou"] == pytest.approx(cm.miou()) and res["iou"] == pytest.approx(cm.iou().tolist())


def test_absent_classes_are_excluded_and_predicted_only_classes_count_zero():
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 0, 1, 3]])                # class 2: nowhere; class 3: predicted, never labelled
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    iou = cm.iou()
    assert math.isnan(iou[2]) and iou[3] == 0.0
    np.testing.assert_allclose(iou[:2], [1.0, 1 / 2])
    assert cm.miou() == pytest.approx((1.0 + 0.5 + 0.0) / 3)


def test_logits_and_predictions_agree():
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 5, (3, 7, 9), generator=g)
    pred = torch.randint(0, 5, (3, 7, 9), generator=g)
    a, b = ConfusionMatrix(5), ConfusionMatrix(5)
    a.update(pred, target)
    b.update(one_hot_logits(pred, 5), target)
    assert torch.equal(a.matrix, b.matrix)
    assert a.matrix.dtype == torch.int64 and a.matrix.shape == (5, 5)


@pytest.mark.parametrize("ignore", [255, None, -1])
def test_against_numpy_reference_over_several_batches(ignore):
    k = 6
    rng = np.random.default_rng(0)
    cm = ConfusionMatrix(k, ignore_index=ignore)
    targets, preds = [], []
    for shape in [(2, 8, 8), (1, 5, 11), (3, 4, 4)]:
        t = rng.integers(0, k - 1, shape)          # class k-1 is never labelled
        p = np.where(rng.random(shape) < 0.6, t, rng.integers(0, k, shape))
        if ignore is not None:
            t = np.where(rng.random(shape) < 0.2, ignore, t)
        targets.append(t)
        preds.append(p)
        cm.update(torch.from_numpy(p), torch.from_numpy(t))
    ref = reference(targets, preds, k, ignore)
    np.testing.assert_array_equal(cm.numpy(), ref["confusion"])
    np.testing.assert_allclose(cm.iou(), ref["iou"])
    assert cm.miou() == pytest.approx(ref["miou"])
    assert cm.pixel_accuracy() == pytest.approx(ref["pixel_accuracy"])


def test_higher_dimensional_and_flat_inputs():
    g = torch.Generator().manual_seed(2)
    target = torch.randint(0, 4, (2, 3, 4, 5), generator=g)
    pred = torch.randint(0, 4, (2, 3, 4, 5), generator=g)
    vol, flat = ConfusionMatrix(4), ConfusionMatrix(4)
    vol.update(one_hot_logits(pred, 4), target)        # logits (B, K, D, H, W)
    flat.update(pred.flatten(), target.flatten())      # predictions (N,)
    assert torch.equal(vol.matrix, flat.matrix) and vol.pixels() == target.numel()


def test_reset_empty_and_all_ignored():
    cm = ConfusionMatrix(3)
    assert math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy()) and cm.pixels() == 0
    assert np.isnan(cm.iou()).all()
    cm.update(torch.tensor([[1, 2]]), torch.tensor([[255, 255]]))
    assert cm.pixels() == 0 and math.isnan(cm.miou())
    cm.update(torch.tensor([[1, 2]]), torch.tensor([[1, 1]]))
    assert cm.pixels() == 2
    cm.reset()
    assert cm.pixels() == 0
    cm.all_reduce()                                    # no process group: a no-op
    assert cm.pixels() == 0


def test_matrix_follows_the_data_device_or_the_given_one():
    cm = ConfusionMatrix(2, device="cpu")
    cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 0]]))
    assert cm.matrix.device.type == "cpu"
    if torch.cuda.is_available():
        gpu = ConfusionMatrix(2)
        gpu.update(torch.tensor([[0, 1]], device="cuda"), torch.tensor([[0, 0]], device="cuda"))
        assert gpu.matrix.device.type == "cuda"
        assert gpu.numpy().tolist() == [[1, 1], [0, 0]]


def test_update_errors():
    cm = ConfusionMatrix(3)
    target = torch.zeros(2, 4, 4, dtype=torch.int64)
    with pytest.raises(ValueError, match=re.escape(
            "target: label 3 is not a class; labels must lie in [0, 3) or ignore_index=255")):
        cm.update(torch.zeros_like(target), torch.full_like(target, 3))
    with pytest.raises(ValueError, match=re.escape(
            "target: label 255 is not a class; labels must lie in [0, 3)")):
        ConfusionMatrix(3, ignore_index=None).update(torch.zeros_like(target), torch.full_like(target, 255))
    with pytest.raises(ValueError, match=re.escape(
            "output: predicted class -1 is out of range; predictions must lie in [0, 3)")):
        cm.update(torch.full_like(target, -1), target)
    with pytest.raises(ValueError, match=re.escape(
            "output must be floating logits of shape (B, 3, ...) matching target's (B, ...) or integer "
            "predictions of target's shape (2, 4, 4); got torch.float32 of shape (2, 4, 4, 4)")):
        cm.update(torch.zeros(2, 4, 4, 4), target)
    with pytest.raises(ValueError, match=re.escape("got torch.float32 of shape (2, 4, 4)")):
        cm.update(torch.zeros(2, 4, 4), target)       # probabilities of one class, not logits
    with pytest.raises(TypeError, match=re.escape(
            "target must hold integer class indices; got torch.float32")):
        cm.update(target, target.float())
    with pytest.raises(TypeError, match=re.escape("output must be a torch.Tensor; got list")):
        cm.update([0], target)
    assert cm.pixels() == 0                            # failed updates count nothing


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"n_classes": 0}, ValueError, "n_classes must be a positive int; got 0"),
    ({"n_classes": 3, "ignore_index": 2}, ValueError,
     "ignore_index must not be a class index (0 <= ignore_index < n_classes=3); got 2"),
    ({"n_classes": 3, "ignore_index": 2.5}, TypeError, "ignore_index must be an int or None; got float"),
])
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        ConfusionMatrix(**kwargs)


# ----------------------------------------------------------------------------- evaluate


class Oracle(nn.Module):
    """Predicts ``table[image[:, 0]]`` per pixel (the first channel holds an integer code)."""

    def __init__(self, table: list[int], k: int, *, scale: int = 1, as_dict: bool = False) -> None:
        super().__init__()
        self.register_buffer("table", torch.tensor(table))
        self.k, self.scale, self.as_dict = k, scale, as_dict
        self.grad_enabled: list[bool] = []
        self.modes: list[bool] = []
        self.conv = nn.Conv2d(1, 1, 1)                 # a parameter, for the device lookup

    def forward(self, x: torch.Tensor):
        self.grad_enabled.append(torch.is_grad_enabled())
        self.modes.append(self.training)
        pred = self.table[x[:, 0].long()]
        logits = one_hot_logits(pred, self.k)
        if self.scale > 1:
            logits = logits[..., :: self.scale, :: self.scale]
        return {"out": logits, "aux": logits} if self.as_dict else logits


def batches(k: int, n: int = 3, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        code = torch.randint(0, k, (2, 1, 8, 8), generator=g)
        label = torch.randint(0, k, (2, 8, 8), generator=g)
        label[:, 0, 0] = 255
        out.append((code.float().expand(2, 3, 8, 8), label))
    return out


@pytest.mark.parametrize("as_dict", [False, True])
def test_evaluate_matches_the_confusion_matrix_and_restores_the_mode(as_dict):
    k, table = 4, [0, 2, 2, 3]
    model = Oracle(table, k, as_dict=as_dict).train()
    data = batches(k)
    res = evaluate(model, data, k)
    cm = ConfusionMatrix(k)
    for x, y in data:
        cm.update(torch.tensor(table)[x[:, 0].long()], y)
    np.testing.assert_array_equal(res["confusion"], cm.numpy())
    assert res["miou"] == pytest.approx(cm.miou())
    assert res["pixel_accuracy"] == pytest.approx(cm.pixel_accuracy())
    assert res["batches"] == 3 and res["pixels"] == 3 * 2 * (64 - 1)
    assert model.training and model.modes == [False] * 3 and model.grad_enabled == [False] * 3


def test_evaluate_resizes_small_logits_and_stops_early():
    k = 3
    model = Oracle([0, 1, 2], k, scale=2)
    res = evaluate(model, batches(k), k, max_batches=2, device="cpu")
    assert res["batches"] == 2 and res["pixels"] == 2 * 2 * 63
    assert res["confusion"].shape == (k, k)


def test_evaluate_errors():
    with pytest.raises(TypeError, match=re.escape("model must be a torch.nn.Module; got function")):
        evaluate(lambda x: x, [], 3)
    with pytest.raises(ValueError, match=re.escape("max_batches must be a positive int or None; got 0")):
        evaluate(Oracle([0], 1), [], 1, max_batches=0)
    bad = nn.Identity()
    bad.forward = lambda x: [x]                      # type: ignore[method-assign]
    with pytest.raises(TypeError, match=re.escape(
            "model must return a logits tensor (B, K, H, W) or a mapping with key 'out' "
            "(torchvision's segmentation models); got list")):
        evaluate(bad, batches(3, 1), 3)
    assert bad.training
