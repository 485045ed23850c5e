"""sirfp_adapter: SIRFP channel pruning for torch segmentation networks.

Criterion → statistics → decision → mechanics:

* `criteria` — what ranks a group's channels: one `Criterion` contract and a registry
  (``sirfp``, ``sirfp-paper``, ``sirfp-released`` and the baselines random, L1, BN
  scale, FPGM, Taylor, DCFP, DepGraph's group norm); `SIRFPImportance` hands any of
  them to Torch-Pruning's ``MetaPruner``;
* `measures` — spatial redundancy between channel maps (the paper's Jensen–Shannon
  measure, the released code's Gram measure, Hellinger, Dice);
* `RedundancyCollector` — an EMA of the redundancy graphs, gathered by forward hooks
  during training, all-reduced under ``torch.distributed``;
* `ChannelGroups` — coupled channels from Torch-Pruning's dependency graph;
  `CostModel` — FLOPs / parameters for any removal;
* `make_plan`, `PlanOptions` — one MEWCP per group (``mewcp``), a global threshold
  meeting a FLOPs or parameter target (the search itself: `threshold`);
* `ChannelMasks`, `prune_channels`, `save_pruned` / `load_pruned` — soft masks,
  physical removal, safe model files;
* `SIRFPPruner` — the progressive schedule (Algorithm 2) for the user's training loop;
  `prune_once` — collect over a few batches, plan and remove in one call.

The demonstration harness (built-in data, metrics, models, the ``sirfp`` command) is
`sirfp_adapter.demo`; the library never imports it.

Importing this package does not import torch; its members do, on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_MEMBERS = {
    "RedundancyCollector": "sirfp_adapter.collector",
    "ChannelGroups": "sirfp_adapter.groups",
    "CostModel": "sirfp_adapter.cost",
    "count_flops": "sirfp_adapter.cost",
    "count_params": "sirfp_adapter.cost",
    "PruningPlan": "sirfp_adapter.plan",
    "PlanOptions": "sirfp_adapter.plan",
    "make_plan": "sirfp_adapter.plan",
    "rank_redundancy": "sirfp_adapter.plan",
    "rank_importance": "sirfp_adapter.plan",
    "group_matrix": "sirfp_adapter.plan",
    "ChannelMasks": "sirfp_adapter.apply",
    "prune_channels": "sirfp_adapter.apply",
    "save_pruned": "sirfp_adapter.apply",
    "load_pruned": "sirfp_adapter.apply",
    "SIRFPPruner": "sirfp_adapter.schedule",
    "prune_once": "sirfp_adapter.oneshot",
    "Criterion": "sirfp_adapter.criteria",
    "ImportanceCriterion": "sirfp_adapter.criteria",
    "CRITERIA": "sirfp_adapter.criteria",
    "get_criterion": "sirfp_adapter.criteria",
    "SIRFPImportance": "sirfp_adapter.criteria.interop",
}
_MODULES = ("measures", "criteria", "threshold", "demo")

__all__ = sorted([*_MEMBERS, *_MODULES])


def __getattr__(name: str) -> Any:
    if name in _MEMBERS:
        return getattr(importlib.import_module(_MEMBERS[name]), name)
    if name in _MODULES:
        return importlib.import_module(f"sirfp_adapter.{name}")
    raise AttributeError(f"module 'sirfp_adapter' has no attribute {name!r}")
