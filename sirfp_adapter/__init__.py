"""sirfp_adapter: SIRFP channel pruning for torch segmentation models.

Available now: `sirfp_adapter.measures` (spatial redundancy between channel maps:
the paper's Jensen-Shannon measure, the released code's Gram measure, Hellinger,
Dice) and `RedundancyCollector` (an EMA of the redundancy graphs, collected by forward
hooks during training, all-reduced under ``torch.distributed``). Planning, pruning and
the progressive schedule follow. Importing this package does not import torch; its
members do, on first access.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RedundancyCollector", "measures"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "RedundancyCollector":
        from sirfp_adapter.collector import RedundancyCollector

        return RedundancyCollector
    if name == "measures":
        import importlib

        return importlib.import_module("sirfp_adapter.measures")
    raise AttributeError(f"module 'sirfp_adapter' has no attribute {name!r}")
