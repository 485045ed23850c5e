"""Any criterion of this project as a Torch-Pruning importance.

>>> import torch_pruning as tp                                                    # doctest: +SKIP
>>> imp = SIRFPImportance(model, example_inputs)            # hooks collect redundancy  # doctest: +SKIP
>>> for x, y in loader:                                     # your training loop        # doctest: +SKIP
...     loss = criterion(model(x), y); optimizer.zero_grad(); loss.backward(); optimizer.step()
...     imp.observe()                                       # gradient statistics (gradient criteria)
>>> imp.close()                     # stop collecting (MetaPruner traces the model)  # doctest: +SKIP
>>> pruner = tp.pruner.MetaPruner(model, example_inputs, importance=imp,          # doctest: +SKIP
...                               pruning_ratio=0.5, global_pruning=True, ignored_layers=[model.head])
>>> pruner.step()                                                                 # doctest: +SKIP

Notes
-----
Torch-Pruning calls the importance once per group with the group's channels and removes
the least important ones — under ``global_pruning=True`` every channel whose importance
is at most one threshold across groups. The importance returned here is each channel's
calibrated removal score from the criterion's `Ranking` (for SIRFP: EHGP's normalised
``s_k``), made strictly increasing along the removal order by a ``1e-12`` step per
position, so within a group Torch-Pruning removes exactly a prefix of the project's own
order; channels the criterion never removes get a very large finite score. What differs
from `SIRFPPruner` is only how many channels each group loses: Torch-Pruning's
threshold counts channels, the project's meets a FLOPs target.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from sirfp_adapter.criteria import Criterion, get_criterion
from sirfp_adapter.groups import ChannelGroups

__all__ = ["SIRFPImportance"]

_NEVER = 1e30


class SIRFPImportance(tp.importance.Importance):
    """A project criterion (default: SIRFP) as a ``torch_pruning.importance.Importance``.

    Parameters
    ----------
    model : torch.nn.Module
    example_inputs : Tensor or tuple
        A batch the model accepts (for tracing the groups).
    criterion : str or Criterion
        A name from `sirfp_adapter.criteria.CRITERIA` or an instance; it is attached
        to ``model`` now (hooks registered) and collects while the user trains or runs
        forward passes.
    ignored_layers : sequence of modules or names
        As for `SIRFPPruner` (output layers are found automatically).
    training_only : bool
        Collect only training-mode passes (``False`` for eval-mode collection, which
        leaves BatchNorm statistics untouched).
    """

    def __init__(self, model: nn.Module, example_inputs: Any, criterion: str | Criterion = "sirfp", *,
                 ignored_layers: Sequence[nn.Module | str] = (), training_only: bool = True) -> None:
        self.criterion = get_criterion(criterion)
        self.groups = ChannelGroups.build(model, example_inputs, ignored_layers=ignored_layers)
        self._names = {m: n for n, m in model.named_modules()}
        self.criterion.attach(model, self.groups, training_only=training_only)

    @torch.no_grad()
    def __call__(self, group: Any) -> torch.Tensor | None:
        """Importance of each channel of a Torch-Pruning group (``None``: a group this
        project does not prune, which Torch-Pruning then skips)."""
        name = self._names.get(group[0].dep.target.module)
        try:
            ours = self.groups[self.groups.index(name)] if name is not None else None
        except (KeyError, ValueError):
            ours = None
        if ours is None or len(group[0].idxs) != ours.size:
            return None
        self.criterion.check_ready()
        ranking = self.criterion.rank(ours)
        scores = np.where(np.isfinite(ranking.scores), ranking.scores, _NEVER)
        importance = np.empty(ours.size)
        importance[ranking.order] = scores + 1e-12 * np.arange(ranking.order.size)
        return torch.as_tensor(importance[np.asarray(group[0].idxs, dtype=np.int64)], dtype=torch.float64)

    def observe(self) -> None:
        """Call after ``loss.backward()`` in the training loop: criteria that read
        gradients (``taylor``, ``dcfp``, ``sirfp-released``, a SIRFP ``budget``) accumulate here."""
        self.criterion.observe()

    def close(self) -> None:
        """Stop collecting: remove the criterion's hooks (its statistics stay, so the
        importance still answers). Call it before building ``MetaPruner``, whose tracing
        pass would otherwise be collected too."""
        self.criterion.close()
