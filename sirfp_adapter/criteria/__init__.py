"""Pruning criteria: one contract (`Criterion`), one read-only registry by name.

>>> from sirfp_adapter.criteria import CRITERIA, get_criterion
>>> sorted(CRITERIA)[:4]
['bn_scale', 'dcfp', 'fpgm', 'group_norm']
>>> get_criterion("random", seed=3)
Random(seed=3)

A criterion is given to `sirfp_adapter.SIRFPPruner` or `sirfp_adapter.prune_once` by
name (``criterion="l1"``) or as an instance (``criterion=SIRFP("gram", decay=0.9)``);
each validates its own options in its constructor. Writing one: subclass
`ImportanceCriterion` and implement ``importance(group)``, or `Criterion` and
implement ``rank(group, active)`` (docs/adapter.md, "A criterion of your own").
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sirfp_adapter.criteria.base import Criterion, ImportanceCriterion
from sirfp_adapter.criteria.importance import DCFP, FPGM, L1, BNScale, GroupNorm, Random, Taylor
from sirfp_adapter.criteria.redundancy import SIRFP, PaperSIRFP, ReleasedSIRFP
from sirfp_adapter.criteria.sensitivity import Sensitivity

__all__ = [
    "BNScale", "CRITERIA", "Criterion", "DCFP", "FPGM", "GroupNorm", "ImportanceCriterion", "L1",
    "PaperSIRFP", "Random", "ReleasedSIRFP", "SIRFP", "Sensitivity", "Taylor", "get_criterion",
]

#: Every criterion by name (read-only).
CRITERIA: Mapping[str, type[Criterion]] = MappingProxyType({
    cls.name: cls
    for cls in (SIRFP, PaperSIRFP, ReleasedSIRFP, Random, L1, BNScale, FPGM, Taylor, DCFP, GroupNorm, Sensitivity)
})


def get_criterion(criterion: str | Criterion, **options: Any) -> Criterion:
    """A criterion from its registry name and options, or the given instance.

    Parameters
    ----------
    criterion : str or Criterion
        A name from `CRITERIA`, or an instance (returned as is; then no options).
    **options
        The criterion's constructor options.
    """
    if isinstance(criterion, Criterion):
        if options:
            raise TypeError(f"options {sorted(options)} go to the criterion's constructor, not with an instance")
        return criterion
    if not isinstance(criterion, str) or criterion not in CRITERIA:
        raise ValueError(f"criterion must be a Criterion or one of {tuple(CRITERIA)}, got {criterion!r}")
    return CRITERIA[criterion](**options)
