"""Argument checks shared by the adapter's entry points, one message per contract.

A leaf module (it imports nothing from the package), so that every other module can use it.

>>> from torch import nn
>>> check_module(nn.Identity())
>>> check_module("resnet", "pruned")
Traceback (most recent call last):
...
TypeError: pruned must be a torch.nn.Module, got str
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["check_callable", "check_module", "describe_inputs"]


def check_module(value: object, name: str = "model") -> None:
    """Refuse a ``value`` that is not a ``torch.nn.Module``, naming the argument."""
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(value).__name__}")


def check_callable(value: object, name: str, role: str) -> None:
    """Refuse a ``value`` that is neither None nor callable, naming it and its ``role``."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable ({role}) or None, got {type(value).__name__} {value!r}")


def describe_inputs(inputs: Any) -> str:
    """``inputs`` in a few words: a tensor's shape, dtype and device, a container's parts."""
    if isinstance(inputs, torch.Tensor):
        return f"a {inputs.dtype} tensor of shape {tuple(inputs.shape)} on {inputs.device}"
    if isinstance(inputs, dict):
        return "{" + ", ".join(f"{k!r}: {describe_inputs(v)}" for k, v in inputs.items()) + "}"
    if isinstance(inputs, (tuple, list)):
        return f"a {type(inputs).__name__} of " + ", ".join(describe_inputs(v) for v in inputs) if inputs \
            else f"an empty {type(inputs).__name__}"
    return type(inputs).__name__
