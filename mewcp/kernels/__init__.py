"""numba kernels: arrays in, arrays out; no validation, no clocks, no Python objects.

One module per concern: `gains` (the gain vector), `peel` (EHGP), `construct`
(cliques grown from the heaviest edges), `swap` (swap searches on complete graphs),
`clique` (ADD/SWAP/DROP searches on general graphs), `pls` (phased local search),
`bnb` (branch and bound), `checks` (input scans, set weights, brute-force enumeration),
`parse` (the MDPLIB reader's fast path).
Callers (the solver modules) validate inputs, bound each call's work so time limits
can be checked between calls, and convert results.

Each kernel is tested against a plain-Python reference: `gains`, `checks`, `swap` and
`clique` in ``tests/mewcp/test_kernels.py``, `peel` against the SIRFP paper's
Algorithm 1 verbatim in ``tests/mewcp/test_greedy.py``, `bnb` through its solver
against brute force in ``tests/mewcp/test_bnb.py``, `parse` against the strict token
parser in ``tests/mewcp/test_io.py``. ``python -m mewcp.warmup``
compiles them all into numba's on-disk cache.
"""

from mewcp.kernels.checks import (
    csr_scan,
    dense_scan,
    dense_set_weight,
    enumerate_cliques_from,
    max_asymmetry,
    sparse_set_weight,
)
from mewcp.kernels.gains import add_gains, set_gains, swap_gains
from mewcp.kernels.peel import peel_dense, peel_sparse

__all__ = [
    "add_gains",
    "csr_scan",
    "dense_scan",
    "dense_set_weight",
    "enumerate_cliques_from",
    "max_asymmetry",
    "peel_dense",
    "peel_sparse",
    "set_gains",
    "sparse_set_weight",
    "swap_gains",
]
