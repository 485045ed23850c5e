"""The problem instance and the one function that turns user data into it.

`as_problem` is the only place in `mewcp` that knows networkx, scipy.sparse and
numpy array-likes; every solver sees a `Problem`.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from mewcp import kernels

__all__ = ["Problem", "as_problem", "MAX_TOTAL_WEIGHT", "SYMMETRY_RTOL"]

#: Largest accepted ``|W - W.T|`` relative to ``max(1, max|W|)`` for dense input.
SYMMETRY_RTOL = 1e-8
#: Largest accepted ``max|w| * (number of edges)``: every sum a solver forms (a clique's
#: weight, a gain, a peeling score, their differences) then stays far from float64 overflow.
MAX_TOTAL_WEIGHT = 1e300


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Problem:
    """An undirected, edge-weighted graph on which a clique is sought.

    Build one with `as_problem` (or `mewcp.read`); do not call the constructor on
    unchecked data.

    Attributes
    ----------
    n : int
        Number of vertices, indexed ``0 .. n-1``.
    dense : ndarray of float64, shape (n, n), or None
        For a complete graph: the symmetric weight matrix with a zero diagonal.
    indptr, indices, data : ndarray or None
        For any other graph: a symmetric CSR structure (both directions stored,
        column indices sorted within each row, no self-loops).
    labels : tuple or None
        The user's vertex labels (networkx nodes, file labels); ``None`` means the
        labels are the indices themselves.
    default_k : int or None
        The subset size that came with the data (MDPLIB's ``m``), used when `solve`
        is called without ``k``.
    name : str or None
        A short name for reports (a file stem).

    Notes
    -----
    A complete graph is stored dense (``n * n * 8`` bytes); every other graph is
    stored as CSR (``O(n + m)``), so a 100,000-vertex sparse graph never allocates
    an ``n * n`` array. All arrays are read-only.
    """

    n: int
    dense: np.ndarray | None = None
    indptr: np.ndarray | None = None
    indices: np.ndarray | None = None
    data: np.ndarray | None = None
    labels: tuple[Hashable, ...] | None = None
    default_k: int | None = None
    name: str | None = None

    @property
    def is_complete(self) -> bool:
        """True when every pair of vertices is an edge (dense storage)."""
        return self.dense is not None

    @property
    def n_edges(self) -> int:
        """Number of undirected edges."""
        if self.dense is not None:
            return self.n * (self.n - 1) // 2
        assert self.indptr is not None
        return int(self.indptr[-1]) // 2

    def label_of(self, indices: Iterable[int]) -> tuple[Hashable, ...]:
        """The labels of the given vertex indices."""
        if self.labels is None:
            return tuple(int(i) for i in indices)
        return tuple(self.labels[int(i)] for i in indices)

    def index_of(self, nodes: Iterable[Hashable], *, name: str = "nodes") -> np.ndarray:
        """Vertex indices (int64) of the given labels; raises on unknown or repeated ones."""
        nodes = list(nodes)
        if self.labels is None:
            out = []
            for v in nodes:
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                    raise ValueError(f"{name} must be vertex indices, ints in [0, {self.n}); got "
                                     f"{type(v).__name__} {v!r}")
                if not 0 <= v < self.n:
                    raise ValueError(f"{name} must be vertex indices in [0, {self.n}); got {v!r}")
                out.append(int(v))
        else:
            lookup = self._lookup()
            out = []
            for v in nodes:
                try:
                    out.append(lookup[v])
                except (KeyError, TypeError):
                    raise ValueError(f"{name} contains {v!r}, which is not a vertex of the graph") from None
        idx = np.asarray(out, dtype=np.int64)
        if np.unique(idx).size != idx.size:
            raise ValueError(f"{name} must not repeat a vertex")
        return idx

    def _lookup(self) -> dict[Hashable, int]:
        cached = self.__dict__.get("_lookup_cache")
        if cached is None:
            assert self.labels is not None
            cached = {v: i for i, v in enumerate(self.labels)}
            object.__setattr__(self, "_lookup_cache", cached)
        return cached

    def weight_range(self) -> tuple[float, float]:
        """``(least, greatest)`` weight over the edges, ``(0.0, 0.0)`` without edges; computed once.

        For a complete graph the off-diagonal entries (known from `as_problem`'s scan
        when the matrix was kept as given), else the stored values.
        """
        cached = self.__dict__.get("_range_cache")
        if cached is None:
            if self.n_edges == 0:
                cached = (0.0, 0.0)
            elif self.dense is not None:
                _, hi, lo, *_ = kernels.dense_scan(self.dense)
                cached = (float(lo), float(hi))
            else:
                assert self.data is not None
                cached = (float(self.data.min()), float(self.data.max()))
            object.__setattr__(self, "_range_cache", cached)
        return cached

    def to_dense(self) -> np.ndarray:
        """The weight matrix as a dense array (zero for non-edges); allocates n*n."""
        if self.dense is not None:
            return self.dense
        return sp.csr_array((self.data, self.indices, self.indptr), shape=(self.n, self.n)).toarray()

    def adjacency(self) -> np.ndarray:
        """Boolean n*n adjacency matrix (no self-loops); allocates n*n."""
        if self.dense is not None:
            adj = np.ones((self.n, self.n), dtype=bool)
        else:
            adj = np.zeros((self.n, self.n), dtype=bool)
            rows = np.repeat(np.arange(self.n), np.diff(self.indptr))
            adj[rows, self.indices] = True
        np.fill_diagonal(adj, False)
        return adj

    def __repr__(self) -> str:
        kind = "complete" if self.is_complete else "sparse"
        name = f"{self.name!r}, " if self.name else ""
        k = f", default_k={self.default_k}" if self.default_k is not None else ""
        return f"Problem({name}n={self.n}, edges={self.n_edges}, {kind}{k})"


def as_problem(
    data: Any,
    *,
    weight: str | None = "weight",
    default_k: int | None = None,
    name: str | None = None,
) -> Problem:
    """Validate and normalise graph data into a `Problem`.

    Parameters
    ----------
    data : Problem, networkx.Graph, scipy sparse array/matrix, or array-like
        * `networkx.Graph`: its edges are the edges; self-loops are ignored.
        * scipy sparse (square): every stored off-diagonal entry is an edge (explicit
          zeros included); the structure and values must be symmetric.
        * dense array-like (square): a complete graph, every off-diagonal pair an
          edge (zeros included); must be symmetric up to ``SYMMETRY_RTOL``.
        * `Problem`: returned unchanged.
    weight : str or None
        The networkx edge attribute holding the weight. ``None`` gives every edge
        weight 1; so does a graph where *no* edge has the default ``"weight"``
        attribute (networkx's convention). A graph where only some edges have it is
        refused, and so is another name that no edge has (a typo would otherwise
        give unit weights). Networkx graphs only: with other data it is refused.
    default_k, name : optional
        Stored on the result (see `Problem`).

    Returns
    -------
    Problem

    Raises
    ------
    TypeError
        For unsupported types, directed graphs and multigraphs.
    ValueError
        For non-square, empty, non-finite or asymmetric weights, masked entries, corrupt
        scipy index arrays, or a ``default_k`` outside ``[1, n]``.

    Notes
    -----
    Diagonal entries (self-loops) take no part in the objective, which sums
    ``w_ij`` over pairs ``i < j`` only; they are ignored. A dense matrix that is
    symmetric within tolerance but not exactly is stored as ``(W + W.T) / 2``.
    """
    if not _is_default_weight(weight) and not _is_networkx_graph(data):
        raise ValueError(f"weight names a networkx edge attribute; it does not apply to data of type "
                         f"{type(data).__name__}, whose values are the weights (got weight={weight!r})")
    if isinstance(data, Problem):
        return data
    if default_k is not None and (isinstance(default_k, bool) or not isinstance(default_k, numbers.Integral)
                                  or default_k < 1):
        raise ValueError(f"default_k must be a positive integer or None; got {default_k!r}")
    problem = _build(data, weight=weight, default_k=None if default_k is None else int(default_k), name=name)
    if default_k is not None and default_k > problem.n:
        raise ValueError(f"default_k must be at most the number of vertices, n = {problem.n}; got {default_k!r}")
    return problem


def _build(data: Any, *, weight: str | None, default_k: int | None, name: str | None) -> Problem:
    """`as_problem` for anything but a `Problem`, ``default_k`` already checked."""
    if _is_networkx_graph(data):
        return _from_networkx(data, weight=weight, default_k=default_k, name=name)
    if sp.issparse(data):
        return _from_sparse(data, labels=None, default_k=default_k, name=name)
    if isinstance(data, np.ma.MaskedArray) and np.ma.is_masked(data):
        raise ValueError(
            "data must not have masked entries: the values under the mask would be used as weights "
            "(fill them first, e.g. data.filled(0), or pass a sparse matrix of the edges you mean)"
        )
    if isinstance(data, (str, bytes)) or data is None or np.isscalar(data):
        raise TypeError(
            "data must be a networkx.Graph, a scipy sparse matrix, a square array-like "
            f"or a mewcp.Problem; got {type(data).__name__}"
        )
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"data must be a square array of real numbers; converting it failed: {exc}"
        ) from None
    _check_real_dtype(arr.dtype)
    return _from_dense(arr.astype(np.float64, copy=False), default_k=default_k, name=name)


def _is_networkx_graph(data: Any) -> bool:
    try:
        import networkx as nx
    except ImportError:  # pragma: no cover - networkx is a core dependency
        return False
    return isinstance(data, nx.Graph)


def _check_n(n: int) -> None:
    if n == 0:
        raise ValueError("data must have at least one vertex; got an empty graph")


def _check_real_dtype(dtype: np.dtype) -> None:
    """Refuse complex, object, string and other non-real dtypes (never cast silently)."""
    if dtype.kind not in "biuf":
        raise TypeError(
            f"data must be a square array of real numbers (bool, integer or float); got dtype {dtype}"
        )


def _check_total(amax: float, n_edges: int) -> None:
    if amax * max(n_edges, 1) > MAX_TOTAL_WEIGHT:
        raise ValueError(
            f"data has weights too large to add up safely in float64: max |w| = {amax!r} over "
            f"{n_edges} edges; max |w| times the number of edges must be at most "
            f"{MAX_TOTAL_WEIGHT:g} (divide the weights by a constant)"
        )


def _check_finite(values: np.ndarray, what: str) -> None:
    if not np.isfinite(values).all():
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(
            f"data must have finite weights; {what} {tuple(int(b) for b in bad)} is "
            f"{float(values[tuple(bad)])!r}"
        )


def _from_dense(arr: np.ndarray, *, default_k: int | None, name: str | None) -> Problem:
    """A complete graph from a square array, checked in one tiled pass (`kernels.dense_scan`).

    A float64 C-contiguous array that is exactly symmetric with a zero diagonal is
    kept as it is (a read-only view: the `Problem` shares its memory, so the
    array must not be modified while the problem is in use); any other array is
    copied once, its diagonal zeroed and, within ``SYMMETRY_RTOL``, symmetrised.
    """
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"data must be a square matrix; got shape {arr.shape}")
    n = arr.shape[0]
    _check_n(n)
    src = arr if arr.dtype == np.float64 and arr.flags.c_contiguous else np.ascontiguousarray(arr, dtype=np.float64)
    finite, hi, lo, amax, zero_diag, diff, i, j = kernels.dense_scan(src)
    if not finite:
        _check_finite(src, "entry")
    if n > 1:
        _check_total(max(hi, 0.0, -lo), n * (n - 1) // 2)
    if diff > 0.0 and diff > SYMMETRY_RTOL * max(1.0, amax):
        raise ValueError(
            f"data must be a symmetric matrix; W[{i}, {j}] = {float(src[i, j])!r} but "
            f"W[{j}, {i}] = {float(src[j, i])!r} (pass (W + W.T) / 2 to symmetrise)"
        )
    if zero_diag and diff == 0.0:
        problem = Problem(n=n, dense=_read_only(src.view()), default_k=default_k, name=name)
        if n > 1:  # the scan's off-diagonal extremes are this matrix's
            object.__setattr__(problem, "_range_cache", (float(lo), float(hi)))
        return problem
    w = np.array(src, dtype=np.float64, order="C", copy=src is arr)
    np.fill_diagonal(w, 0.0)
    if diff > 0.0:
        w += w.T
        w *= 0.5
    return Problem(n=n, dense=_read_only(w), default_k=default_k, name=name)


def _check_structure(mat: Any) -> None:
    """Refuse index arrays that break scipy's own invariants, before any scipy or numba code reads them.

    scipy checks them only when a matrix is built (and not all of them even then), so a
    matrix whose ``indices``, ``indptr`` or ``coords`` were set or changed later would make
    its C++ conversions (and the CSR scan) read or write out of bounds. Costs one pass
    over the index arrays, no copy.
    """
    if mat.format in ("csr", "csc", "bsr"):
        rows, cols = mat.blocksize if mat.format == "bsr" else (1, 1)
        major, minor = mat.shape[0] // rows, mat.shape[1] // cols
        if mat.format == "csc":
            major, minor = minor, major
        indptr, indices = np.asarray(mat.indptr), np.asarray(mat.indices)
        stored = min(indices.size, len(mat.data))
        if indptr.ndim != 1 or indptr.size != major + 1 or indptr.dtype.kind not in "iu" or indices.ndim != 1 \
                or indices.dtype.kind not in "iu":
            why = f"indptr must be a 1-D integer array of {major + 1} entries and indices a 1-D integer array"
        elif indptr[0] != 0 or (indptr[1:] < indptr[:-1]).any() or indptr[-1] > stored:
            why = f"indptr must rise from 0 to at most the {stored} stored entries"
        elif indptr[-1] and (indices[:indptr[-1]].min() < 0 or indices[:indptr[-1]].max() >= minor):
            why = f"every index in indices must be in [0, {minor})"
        else:
            return
    elif mat.format == "coo":
        coords = [np.asarray(c) for c in mat.coords]
        if any(c.ndim != 1 or c.size != len(mat.data) or c.dtype.kind not in "iu" for c in coords):
            why = f"coords must be 1-D integer arrays of {len(mat.data)} entries, one per stored value"
        elif any(c.size and (c.min() < 0 or c.max() >= dim) for c, dim in zip(coords, mat.shape)):
            why = f"every row and column index must be in [0, {mat.shape[0]})"
        else:
            return
    else:
        return
    raise ValueError(f"data must be a valid scipy sparse matrix; its index arrays are corrupt ({why})")


def _from_sparse(
    mat: Any,
    *,
    labels: tuple[Hashable, ...] | None,
    default_k: int | None,
    name: str | None,
) -> Problem:
    """A general graph from a scipy sparse matrix.

    A canonical float64 CSR that is already a clean undirected graph (checked in
    one pass, `kernels.csr_scan`) is kept without a copy: its arrays are shared
    as read-only views (index arrays narrower than int64 are converted), so the
    matrix must not be modified while the problem is in use, as for dense input.
    Any other matrix is converted to canonical CSR, its diagonal dropped and its
    symmetry checked (values within ``SYMMETRY_RTOL``, then averaged).
    """
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"data must be a square matrix; got shape {mat.shape}")
    n = mat.shape[0]
    _check_n(n)
    _check_real_dtype(mat.dtype)
    _check_structure(mat)
    if (mat.format == "csr" and mat.dtype == np.float64 and mat.has_canonical_format
            and mat.nnz != n * (n - 1)):
        indptr, indices, data = mat.indptr, mat.indices, mat.data
        clean, amax = kernels.csr_scan(indptr, indices, data)
        if clean:  # the common case, checked in one pass without temporaries
            if data.size:
                _check_total(amax, data.size // 2)
            return Problem(  # int64 index arrays are shared (read-only views), narrower ones converted
                n=n,
                indptr=_read_only(np.asarray(indptr, dtype=np.int64).view()),
                indices=_read_only(np.asarray(indices, dtype=np.int64).view()),
                data=_read_only(data.view()),
                labels=labels,
                default_k=default_k,
                name=name,
            )
    # Canonical CSR (sorted, duplicates summed as scipy defines them); explicit zeros stay.
    csr = sp.csr_array(mat, dtype=np.float64, copy=True)
    csr.sum_duplicates()
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(csr.indptr))
    off = rows != csr.indices
    if not off.all():  # drop the diagonal: it takes no part in the objective
        rows = rows[off]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        csr = sp.csr_array((csr.data[off], csr.indices[off], indptr), shape=(n, n))
    if not np.isfinite(csr.data).all():
        p = int(np.flatnonzero(~np.isfinite(csr.data))[0])
        raise ValueError(
            f"data must have finite weights; entry ({rows[p]}, {csr.indices[p]}) is {float(csr.data[p])!r}"
        )
    csrt = sp.csr_array(csr.T)  # a linear-time conversion that keeps explicit zeros
    csrt.sort_indices()
    if not (np.array_equal(csr.indptr, csrt.indptr) and np.array_equal(csr.indices, csrt.indices)):
        pattern = sp.csr_array((np.ones(csr.nnz), csr.indices, csr.indptr), shape=(n, n))
        asym = (pattern - sp.csr_array(pattern.T)).tocoo()
        asym.eliminate_zeros()
        r, c = int(asym.row[0]), int(asym.col[0])
        if asym.data[0] < 0:
            r, c = c, r
        raise ValueError(
            f"data must be a symmetric matrix; entry ({r}, {c}) is stored but ({c}, {r}) "
            "is not (pass (A + A.T) / 2 to symmetrise)"
        )
    diff = np.abs(csr.data - csrt.data)
    if diff.size and diff.max() > 0.0:
        scale = max(1.0, float(np.abs(csr.data).max()))
        if diff.max() > SYMMETRY_RTOL * scale:
            p = int(np.argmax(diff))
            r, c = int(rows[p]), int(csr.indices[p])
            raise ValueError(
                f"data must be a symmetric matrix; A[{r}, {c}] = {float(csr.data[p])!r} but "
                f"A[{c}, {r}] = {float(csrt.data[p])!r} (pass (A + A.T) / 2 to symmetrise)"
            )
        csr = sp.csr_array(((csr.data + csrt.data) / 2.0, csr.indices, csr.indptr), shape=(n, n))
    if csr.nnz:
        _check_total(max(float(csr.data.max()), -float(csr.data.min())), csr.nnz // 2)
    if csr.nnz == n * (n - 1):
        return Problem(
            n=n, dense=_read_only(csr.toarray()), labels=labels, default_k=default_k, name=name
        )
    return Problem(
        n=n,
        indptr=_read_only(np.asarray(csr.indptr, dtype=np.int64)),
        indices=_read_only(np.asarray(csr.indices, dtype=np.int64)),
        data=_read_only(np.asarray(csr.data, dtype=np.float64)),
        labels=labels,
        default_k=default_k,
        name=name,
    )


def _fits_float(x: numbers.Real) -> bool:
    try:
        float(x)
    except OverflowError:
        return False
    return True


def _is_default_weight(weight: object) -> bool:
    """Whether ``weight`` is `as_problem`'s default attribute name (compared safely: any object)."""
    return isinstance(weight, str) and weight == "weight"


def _from_networkx(
    graph: Any, *, weight: str | None, default_k: int | None, name: str | None
) -> Problem:
    if graph.is_directed():
        raise TypeError(
            "data must be an undirected networkx.Graph; got a directed graph "
            "(use G.to_undirected() and decide how to combine the two directions)"
        )
    if graph.is_multigraph():
        raise TypeError(
            "data must be a networkx.Graph, not a multigraph (combine parallel edges "
            "into one weight first)"
        )
    if weight is not None and not isinstance(weight, Hashable):
        raise TypeError(f"weight must be an edge attribute name (a str) or None; got {type(weight).__name__}")
    labels: tuple[Hashable, ...] = tuple(graph.nodes)
    n = len(labels)
    _check_n(n)
    index = {v: i for i, v in enumerate(labels)}
    edges = [(u, v, d) for u, v, d in graph.edges(data=True) if u != v]
    if weight is None:
        vals = np.ones(len(edges))
    else:
        have = [weight in d for _, _, d in edges]
        if any(have) and not all(have):
            u, v, _ = edges[have.index(False)]
            raise ValueError(
                f"weight: edge ({u!r}, {v!r}) has no {weight!r} attribute while others do; "
                "set it on every edge, or pass weight=None for unit weights"
            )
        if any(have):
            for u, v, d in edges:
                x = d[weight]
                if not isinstance(x, numbers.Real):
                    raise ValueError(f"weight: every edge's {weight!r} attribute must be a real number; "
                                     f"edge ({u!r}, {v!r}) has {x!r}")
            try:
                vals = np.array([d[weight] for _, _, d in edges], dtype=np.float64)
            except OverflowError:  # a Python int beyond float64
                u, v, x = next((u, v, d[weight]) for u, v, d in edges if not _fits_float(d[weight]))
                raise ValueError(f"data must have finite weights; edge ({u!r}, {v!r}) has an integer weight "
                                 f"of {len(str(abs(x)))} digits, beyond float64") from None
        elif not _is_default_weight(weight) and edges:  # a name the user gave, on no edge: most likely a typo
            carried = sorted({repr(key) for _, _, d in edges for key in d})
            raise ValueError(f"weight: no edge has the attribute {weight!r} (the edges carry "
                             f"{', '.join(carried) if carried else 'no attribute'}); name the attribute that "
                             f"holds the weights, or pass weight=None for unit weights")
        else:
            vals = np.ones(len(edges))
    if not np.isfinite(vals).all():
        u, v, _ = edges[int(np.flatnonzero(~np.isfinite(vals))[0])]
        raise ValueError(f"data must have finite weights; edge ({u!r}, {v!r}) has weight {graph[u][v][weight]!r}")
    r = np.fromiter((index[u] for u, _, _ in edges), dtype=np.int64, count=len(edges))
    c = np.fromiter((index[v] for _, v, _ in edges), dtype=np.int64, count=len(edges))
    mat = sp.coo_array(
        (np.concatenate([vals, vals]), (np.concatenate([r, c]), np.concatenate([c, r]))),
        shape=(n, n),
    )
    plain = labels == tuple(range(n))
    return _from_sparse(mat, labels=None if plain else labels, default_k=default_k, name=name)


def edges_to_problem(
    n: int,
    rows: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
    *,
    labels: Sequence[Hashable] | None = None,
    default_k: int | None = None,
    name: str | None = None,
) -> Problem:
    """A `Problem` from an undirected edge list given once per edge (used by readers).

    Raises ``ValueError`` on self-loops or repeated pairs, which a file must not have.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    vals = np.asarray(vals, dtype=np.float64)
    if rows.size == 0 and n > 1:  # no edges: an all-zero indptr, which np.zeros leaves untouched (lazy pages)
        _check_n(n)
        return Problem(n=n, indptr=_read_only(np.zeros(n + 1, dtype=np.int64)),
                       indices=_read_only(np.empty(0, dtype=np.int64)), data=_read_only(np.empty(0)),
                       labels=None if labels is None else tuple(labels), default_k=default_k, name=name)
    loops = np.flatnonzero(rows == cols)
    if loops.size:
        raise ValueError(f"edge {int(loops[0])} is a self-loop on vertex {int(rows[loops[0]])}")
    key = np.minimum(rows, cols) * n + np.maximum(rows, cols)
    uniq, first = np.unique(key, return_index=True)
    if uniq.size != key.size:
        dup = np.setdiff1d(np.arange(key.size), first)[0]
        raise ValueError(
            f"edge {int(dup)} ({int(rows[dup])}, {int(cols[dup])}) repeats an earlier edge"
        )
    mat = sp.coo_array(
        (np.concatenate([vals, vals]), (np.concatenate([rows, cols]), np.concatenate([cols, rows]))),
        shape=(n, n),
    )
    return _from_sparse(
        mat, labels=None if labels is None else tuple(labels), default_k=default_k, name=name
    )
