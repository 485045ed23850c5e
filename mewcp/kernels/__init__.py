"""numba kernels: arrays in, arrays out; no validation, no clocks, no Python objects.

One module per concern; each is tested against a plain-Python reference in
``tests/mewcp``. Callers (the solver modules) validate inputs, bound each call's
work so time limits can be checked between calls, and convert results.
"""

from mewcp.kernels.checks import dense_set_weight, enumerate_cliques_from, max_asymmetry, sparse_set_weight
from mewcp.kernels.gains import add_gains, set_gains, swap_gains
from mewcp.kernels.peel import peel_dense, peel_sparse

__all__ = [
    "add_gains",
    "dense_set_weight",
    "enumerate_cliques_from",
    "max_asymmetry",
    "peel_dense",
    "peel_sparse",
    "set_gains",
    "sparse_set_weight",
    "swap_gains",
]
