"""as_problem on dense input: one checking pass, no copy of a clean float64 matrix, exact errors."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import mewcp
from mewcp.kernels.checks import dense_scan
from tests.mewcp.helpers import random_symmetric


@pytest.mark.parametrize("n", [1, 2, 5, 63, 64, 65, 130])
def test_dense_scan_matches_numpy(n):
    rng = np.random.default_rng(n)
    w = rng.normal(size=(n, n))
    finite, hi, lo, amax, zero_diag, diff, i, j = dense_scan(w)
    off = ~np.eye(n, dtype=bool)
    assert finite and zero_diag == (not np.diagonal(w).any())
    if n > 1:
        assert hi == w[off].max() and lo == w[off].min() and amax == np.abs(w[off]).max()
        d = np.abs(np.triu(w - w.T, 1))
        assert diff == d.max() and d[i, j] == diff and i < j
    w[n // 2, n - 1] = np.nan
    assert not dense_scan(w)[0]


def test_clean_float64_matrix_is_not_copied():
    w = random_symmetric(300, np.random.default_rng(0))
    mewcp.as_problem(w.copy())  # load the kernel first: only the call itself is traced
    tracemalloc.start()
    p = mewcp.as_problem(w)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.shares_memory(p.dense, w) and not p.dense.flags.writeable and w.flags.writeable
    assert peak < w.nbytes / 10
    sol = mewcp.solve(w, 150)  # solve on the raw array: still no copy
    assert sol.weight == pytest.approx(mewcp.objective(p, sol.indices))


def test_other_dense_inputs_are_copied_and_normalised():
    w = random_symmetric(50, np.random.default_rng(1))
    d = w.copy()
    np.fill_diagonal(d, 7.0)  # the diagonal takes no part: zeroed in a copy, the input untouched
    p = mewcp.as_problem(d)
    assert not np.shares_memory(p.dense, d) and np.all(np.diagonal(p.dense) == 0) and d[0, 0] == 7.0
    near = w.copy()
    near[3, 4] += 1e-12  # within tolerance: symmetrised
    q = mewcp.as_problem(near)
    assert q.dense[3, 4] == q.dense[4, 3] == pytest.approx(w[3, 4])
    assert mewcp.as_problem(w.astype(np.float32)).dense.dtype == np.float64
    assert np.array_equal(mewcp.as_problem(np.asfortranarray(w)).dense, w)


def test_dense_errors_name_the_entry():
    w = random_symmetric(6, np.random.default_rng(2))
    bad = w.copy()
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match=r"data must have finite weights; entry \(1, 2\) is inf"):
        mewcp.as_problem(bad)
    asym = w.copy()
    asym[2, 4] += 1.0
    with pytest.raises(ValueError, match=r"data must be a symmetric matrix; W\[2, 4\] = "):
        mewcp.as_problem(asym)


def _csr_reference(a) -> bool:
    import scipy.sparse as sp

    a = sp.csr_array(a)
    return (not a.diagonal().any() and a.nnz == sp.triu(a, 1).nnz * 2 and np.isfinite(a.data).all()
            and (a != a.T).nnz == 0 and not (a.tocoo().row == a.tocoo().col).any())


@pytest.mark.parametrize("shift", [0, 2, 5, 11])
@pytest.mark.parametrize("seed", range(12))
def test_csr_scan_blocks_agree_with_the_reference_and_the_direct_scan(seed, shift):
    """The bucketed scan (any block size) against scipy's answer and the in-place one."""
    import scipy.sparse as sp

    from mewcp.kernels.checks import csr_scan, csr_scan_direct

    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 90))
    w = np.triu(rng.uniform(-1, 1, (n, n)).round(1) * (rng.random((n, n)) < 0.15), 1)
    a = w + w.T
    kind = seed % 6
    i, j = (int(x) for x in rng.integers(0, n, 2))
    if kind == 1 and i != j:  # a value asymmetry, or a pattern one where (i, j) was a non-edge
        a[i, j] = a[j, i] + 0.5 if a[j, i] else 0.25
    elif kind == 2 and i != j and a[i, j]:  # an edge moved: the same counts, the wrong partner
        k = next((k for k in range(n) if k not in (i, j) and not a[i, k]), None)
        if k is not None:
            a[i, k], a[i, j] = a[i, j], 0.0
    elif kind == 3:
        a[i, i] = 1.0
    elif kind == 4 and i != j:
        a[i, j] = a[j, i] = np.nan
    csr = sp.csr_array(a)
    csr.eliminate_zeros()
    args = (csr.indptr.astype(np.int64), csr.indices.astype(np.int64), csr.data)
    clean, amax = csr_scan(*args, shift)
    assert clean == _csr_reference(csr) == csr_scan_direct(*args)[0]
    if clean and csr.nnz:
        assert amax == np.abs(csr.data).max()


@pytest.mark.parametrize("seed", range(8))
def test_csr_scan_matches_reference_and_the_general_path(seed):
    import scipy.sparse as sp

    from mewcp.kernels.checks import csr_scan

    rng = np.random.default_rng(seed)
    n = 60
    w = np.triu(rng.uniform(-1, 1, (n, n)) * (rng.random((n, n)) < 0.2), 1)
    a = w + w.T
    if seed % 4 == 1:
        a[3, 7] = a[7, 3] + 0.5 if a[7, 3] else 0.25  # a value or a pattern asymmetry
    elif seed % 4 == 2:
        a[5, 5] = 1.0  # a diagonal entry
    elif seed % 4 == 3:
        a[2, 9] = a[9, 2] = np.nan
    csr = sp.csr_array(a)
    clean, amax = csr_scan(csr.indptr.astype(np.int64), csr.indices.astype(np.int64), csr.data)
    assert clean == (seed % 4 == 0) == _csr_reference(csr)
    if clean:
        fast = mewcp.as_problem(csr)
        slow = mewcp.as_problem(csr.tocoo())  # the general path
        assert amax == np.abs(csr.data).max()
        for name in ("indptr", "indices", "data"):
            assert np.array_equal(getattr(fast, name), getattr(slow, name))
            assert getattr(fast, name).dtype == getattr(slow, name).dtype
            assert not getattr(fast, name).flags.writeable
        # float64 data is shared (no copy); int32 index arrays are converted, int64 ones shared too
        assert np.shares_memory(fast.data, csr.data) and csr.data.flags.writeable
        assert not np.shares_memory(fast.indices, csr.indices) and csr.indices.dtype == np.int32
        wide = sp.csr_array((csr.data, csr.indices.astype(np.int64), csr.indptr.astype(np.int64)), shape=csr.shape)
        shared = mewcp.as_problem(wide)
        assert all(np.shares_memory(getattr(shared, x), getattr(wide, x)) for x in ("indptr", "indices", "data"))
    elif seed % 4 == 3:
        with pytest.raises(ValueError, match="data must have finite weights"):
            mewcp.as_problem(csr)
    elif seed % 4 == 2:
        assert mewcp.as_problem(csr).n_edges == mewcp.as_problem(csr.tocoo()).n_edges


def test_weight_range_is_the_least_and_greatest_edge_weight():
    import scipy.sparse as sp

    rng = np.random.default_rng(3)
    w = np.triu(rng.uniform(-2, 5, (9, 9)), 1)
    w = w + w.T
    off = w[~np.eye(9, dtype=bool)]
    kept = mewcp.as_problem(w)  # exactly symmetric: the scan's extremes are cached
    assert kept.weight_range() == (off.min(), off.max())
    nudged = w.copy()
    nudged[0, 1] += 1e-12  # symmetrised: computed from the stored matrix
    sym = mewcp.as_problem(nudged)
    assert sym.weight_range() == (sym.dense[~np.eye(9, dtype=bool)].min(), sym.dense[~np.eye(9, dtype=bool)].max())
    sparse = mewcp.as_problem(sp.csr_array(w * (np.abs(w) > 3)))
    assert sparse.weight_range() == (sparse.data.min(), sparse.data.max())
    assert mewcp.as_problem(np.zeros((1, 1))).weight_range() == (0.0, 0.0)
    assert mewcp.as_problem(sp.csr_array((4, 4))).weight_range() == (0.0, 0.0)
