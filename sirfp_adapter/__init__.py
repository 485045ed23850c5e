"""sirfp_adapter: SIRFP channel pruning for torch segmentation models (in progress).

The measures, collector, planner and pruner land in later releases; see
``docs/`` for the plan. This package never imports torch at import time.
"""

__version__ = "0.1.0"
