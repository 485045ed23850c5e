"""Semantic-segmentation metrics: a confusion matrix, mIoU, per-class IoU, pixel accuracy.

`ConfusionMatrix` accumulates a ``(K, K)`` ``int64`` matrix ``M`` whose entry
``M[t, p]`` counts the pixels of true class ``t`` predicted as ``p`` (rows: labels,
columns: predictions), on the device of the tensors it is given, with one
``torch.bincount`` per batch. Pixels whose label equals ``ignore_index`` are skipped,
whatever is predicted there.

From ``M``, with ``TP_k = M[k, k]``, ``FP_k = sum_t M[t, k] - TP_k`` and
``FN_k = sum_p M[k, p] - TP_k``:

* per-class IoU ``IoU_k = TP_k / (TP_k + FP_k + FN_k)``; ``NaN`` for a class absent
  from both the labels and the predictions (``TP_k + FP_k + FN_k = 0``);
* **mIoU**: the mean of ``IoU_k`` over the classes present in the labels *or* the
  predictions (the non-``NaN`` ones). A class never labelled but predicted somewhere
  counts with IoU 0; a class neither labelled nor predicted is left out rather than
  counted as 0 or 1. This is the rule of the usual segmentation toolkits (``nanmean``
  of the IoUs) and makes the metric independent of how many unused classes K has;
* pixel accuracy ``sum_k TP_k / sum M``, over the non-ignored pixels.

Each is ``NaN`` when no pixel has been counted. `evaluate` runs a model over a data
loader in eval mode without autograd and returns these numbers in a dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConfusionMatrix", "evaluate", "logits_of"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class ConfusionMatrix:
    """Accumulate a ``(K, K)`` confusion matrix from logits or predicted class indices.

    Parameters
    ----------
    n_classes : int
        K, the number of classes (labels are ``0 .. K-1``).
    ignore_index : int or None
        Label value of pixels to skip (``None``: every label must be a class).
    device : torch.device or str, optional
        Where the matrix lives; default: the device of the first `update`'s tensors
        (the CPU until then).

    Attributes
    ----------
    matrix : torch.Tensor
        ``(K, K)`` int64; ``matrix[t, p]`` counts pixels of label ``t`` predicted ``p``.

    Examples
    --------
    >>> cm = ConfusionMatrix(8)
    >>> for x, y in loader:                                   # doctest: +SKIP
    ...     cm.update(model(x), y)                            # logits (B, 8, H, W), labels (B, H, W)
    >>> cm.miou(), cm.pixel_accuracy(), cm.iou()              # doctest: +SKIP
    """

    def __init__(self, n_classes: int, *, ignore_index: int | None = 255,
                 device: torch.device | str | None = None) -> None:
        if not _is_int(n_classes) or n_classes < 1:
            raise ValueError(f"n_classes must be a positive int; got {n_classes!r}")
        if ignore_index is not None and not _is_int(ignore_index):
            raise TypeError(f"ignore_index must be an int or None; got {type(ignore_index).__name__}")
        if ignore_index is not None and 0 <= ignore_index < n_classes:
            raise ValueError("ignore_index must not be a class index "
                             f"(0 <= ignore_index < n_classes={n_classes}); got {ignore_index}")
        self.n_classes = n_classes
        self.ignore_index = ignore_index
        self._device_fixed = device is not None
        self.matrix = torch.zeros(n_classes, n_classes, dtype=torch.int64,
                                  device=torch.device(device) if device is not None else None)
        self._updated = False

    def __repr__(self) -> str:
        return f"ConfusionMatrix(n_classes={self.n_classes}, pixels={self.pixels()})"

    def reset(self) -> None:
        """Zero the counts (the matrix keeps its device)."""
        self.matrix.zero_()

    # ------------------------------------------------------------------ accumulation
    def _predictions(self, output: Tensor, target: Tensor) -> Tensor:
        k = self.n_classes
        shape = tuple(target.shape)
        if output.is_floating_point() and output.dim() == target.dim() + 1 and output.dim() >= 2 \
                and output.shape[1] == k and output.shape[0] == target.shape[0] \
                and tuple(output.shape[2:]) == shape[1:]:
            return output.argmax(dim=1)
        if not output.is_floating_point() and not output.is_complex() and output.dtype != torch.bool \
                and tuple(output.shape) == shape:
            bad = (output < 0) | (output >= k)
            if bool(bad.any()):
                value = int(output[bad].flatten()[0])
                raise ValueError(f"output: predicted class {value} is out of range; "
                                 f"predictions must lie in [0, {k})")
            return output
        raise ValueError(f"output must be floating logits of shape (B, {k}, ...) matching target's (B, ...) "
                         f"or integer predictions of target's shape {shape}; got {output.dtype} of shape "
                         f"{tuple(output.shape)}")

    @torch.no_grad()
    def update(self, output: Tensor, target: Tensor) -> None:
        """Count one batch.

        Parameters
        ----------
        output : torch.Tensor
            Logits ``(B, K, *S)`` (floating; the argmax over dim 1 is the prediction) or
            predicted class indices ``(B, *S)`` (integer), on any device.
        target : torch.Tensor
            Labels ``(B, *S)`` (integer): classes ``0 .. K-1`` or ``ignore_index``.

        Raises
        ------
        ValueError
            On mismatched shapes, or a label (prediction) that is neither a class nor
            ``ignore_index`` (nor a class); this check synchronises with the device.
        """
        if not isinstance(output, Tensor):
            raise TypeError(f"output must be a torch.Tensor; got {type(output).__name__}")
        if not isinstance(target, Tensor):
            raise TypeError(f"target must be a torch.Tensor; got {type(target).__name__}")
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"target must hold integer class indices; got {target.dtype}")
        if target.dim() < 1:
            raise ValueError("target must have a batch dimension (B, ...); got a 0-d tensor")
        k = self.n_classes
        pred = self._predictions(output.detach(), target).to(target.device)
        t = target.long()
        if self.ignore_index is None:
            valid = torch.ones_like(t, dtype=torch.bool)
        else:
            valid = t != self.ignore_index
        bad = valid & ((t < 0) | (t >= k))
        if bool(bad.any()):
            value = int(t[bad].flatten()[0])
            allowed = f" or ignore_index={self.ignore_index}" if self.ignore_index is not None else ""
            raise ValueError(f"target: label {value} is not a class; labels must lie in [0, {k}){allowed}")
        index = torch.where(valid, t * k + pred.long(), torch.full_like(t, k * k))
        counts = torch.bincount(index.flatten(), minlength=k * k + 1)[: k * k].view(k, k)
        if not self._updated and not self._device_fixed:
            self.matrix = self.matrix.to(counts.device)
        self._updated = True
        self.matrix += counts.to(self.matrix.device)

    def all_reduce(self) -> None:
        """Sum the matrices of all ``torch.distributed`` ranks (a no-op without a process group).

        Call it once, after every rank has counted its shard of the data.
        """
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.matrix, op=torch.distributed.ReduceOp.SUM)

    # ------------------------------------------------------------------ metrics
    def numpy(self) -> np.ndarray:
        """The matrix as an int64 numpy array (rows: labels, columns: predictions)."""
        return self.matrix.cpu().numpy().astype(np.int64, copy=True)

    def pixels(self) -> int:
        """Pixels counted so far (ignored ones excluded)."""
        return int(self.matrix.sum())

    def iou(self) -> np.ndarray:
        """Per-class IoU, float64 ``(K,)``; NaN for classes absent from labels and predictions."""
        m = self.numpy().astype(np.float64)
        tp = np.diag(m)
        union = m.sum(axis=0) + m.sum(axis=1) - tp
        out = np.full(self.n_classes, np.nan)
        np.divide(tp, union, out=out, where=union > 0)
        return out

    def miou(self) -> float:
        """Mean IoU over the classes present in the labels or the predictions (NaN if none)."""
        iou = self.iou()
        present = ~np.isnan(iou)
        return float(iou[present].mean()) if present.any() else float("nan")

    def pixel_accuracy(self) -> float:
        """Correct pixels over counted pixels (NaN if none)."""
        m = self.numpy()
        total = int(m.sum())
        return float(np.trace(m) / total) if total else float("nan")

    def results(self) -> dict[str, Any]:
        """``{"miou", "pixel_accuracy", "iou" (list, NaN = absent), "pixels", "confusion" (numpy)}``."""
        return {
            "miou": self.miou(),
            "pixel_accuracy": self.pixel_accuracy(),
            "iou": self.iou().tolist(),
            "pixels": self.pixels(),
            "confusion": self.numpy(),
        }


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def logits_of(output: object) -> Tensor:
    """The logits of a model's output: the tensor itself, or the ``"out"`` entry of a
    mapping (torchvision's segmentation models); ``TypeError`` otherwise."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping) and isinstance(output.get("out"), Tensor):
        return output["out"]
    raise TypeError("model must return a logits tensor (B, K, H, W) or a mapping with key 'out' "
                    f"(torchvision's segmentation models); got {type(output).__name__}")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Sequence[Tensor]],
    n_classes: int,
    *,
    device: torch.device | str | None = None,
    ignore_index: int | None = 255,
    max_batches: int | None = None,
    all_reduce: bool = False,
) -> dict[str, Any]:
    """mIoU, per-class IoU and pixel accuracy of ``model`` over ``loader``.

    The model runs in eval mode under ``torch.no_grad()``; its train/eval mode is
    restored afterwards. Logits whose spatial size differs from the labels' are
    resized to it (bilinear) before the argmax.

    Parameters
    ----------
    model : nn.Module
        Maps images ``(B, 3, H, W)`` to logits ``(B, K, h, w)`` (or a mapping with key
        ``"out"``).
    loader : iterable
        Yields ``(images, labels)`` batches (e.g. a DataLoader of a dataset in
        `sirfp_adapter.demo.data`).
    n_classes : int
        K.
    device : torch.device or str, optional
        Where to run; default: the device of the model's first parameter.
    ignore_index : int or None
        Label value of pixels to skip.
    max_batches : int, optional
        Stop after this many batches.
    all_reduce : bool
        Sum the confusion matrices over ``torch.distributed`` ranks (each rank
        evaluating its own shard of the data) before computing the metrics.

    Returns
    -------
    dict
        `ConfusionMatrix.results` plus ``"batches"``: ``{"miou", "pixel_accuracy",
        "iou", "pixels", "confusion", "batches"}``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if max_batches is not None and (not _is_int(max_batches) or max_batches < 1):
        raise ValueError(f"max_batches must be a positive int or None; got {max_batches!r}")
    dev = torch.device(device) if device is not None else _model_device(model)
    cm = ConfusionMatrix(n_classes, ignore_index=ignore_index, device=dev)
    was_training = model.training
    model.eval()
    batches = 0
    try:
        for batch in loader:
            if max_batches is not None and batches >= max_batches:
                break
            if not isinstance(batch, Sequence) or len(batch) < 2:
                raise TypeError(f"loader must yield (images, labels) pairs; got {type(batch).__name__}")
            images, labels = batch[0].to(dev, non_blocking=True), batch[1].to(dev, non_blocking=True)
            logits = logits_of(model(images))
            if logits.dim() == 4 and tuple(logits.shape[-2:]) != tuple(labels.shape[-2:]):
                logits = F.interpolate(logits.float(), size=tuple(labels.shape[-2:]), mode="bilinear",
                                       align_corners=False)
            cm.update(logits, labels)
            batches += 1
    finally:
        model.train(was_training)
    if all_reduce:
        cm.all_reduce()
    return {**cm.results(), "batches": batches}
