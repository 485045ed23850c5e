"""Read and write problem instances.

Formats
-------
``"mdplib"``
    The Maximum Diversity Problem library format (complete graphs): line 1 is
    ``n m``, then exactly ``n(n-1)/2`` lines ``i j d``, 0-based, one per unordered
    pair (either order, each pair once). ``m`` becomes `Problem.default_k`.
``"dimacs"``
    ``.clq`` / ``.wclq``: optional ``c`` comment lines, the header ``p edge N M``
    (or ``p col N M``) first, then ``M`` lines ``e u v [w]`` with 1-based ids and
    optionally vertex lines ``n v 0`` (non-zero vertex weights are refused).
    Either every edge line has a weight or none has; a missing weight is 1, and
    ``weighting="mod200"`` sets ``w(u, v) = ((u + v) mod 200) + 1`` on the 1-based
    ids for every edge (the standard MEWC benchmark weighting). Vertex ``i`` of
    the `Problem` is DIMACS vertex ``i + 1``; ``labels`` is None.
``"edgelist"``
    Whitespace-separated lines ``u v`` or ``u v w`` (all lines alike; a missing
    weight is 1), ``#`` starts a comment. If every label parses as an integer the
    labels are those integers ascending, otherwise the strings sorted;
    ``Problem.labels`` holds them unless they are ``0 .. n-1``.
``"npy"``
    A square real matrix saved with `numpy.save`: a complete graph.

Text files may use LF or CRLF line ends and contain blank lines. With
``format=None``, `read` detects the format from the content, not the name: the
``.npy`` magic bytes; DIMACS if the first non-blank line's first token is ``c`` or
``p``; MDPLIB if that line holds exactly two integers and the next non-blank line
three tokens; an edge list otherwise.

Malformed files raise ``ValueError`` naming the file and, where a line is at
fault, ``line N`` (1-based). Parsing is vectorised; headers are checked against
the data before any ``n * n`` allocation.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mewcp.problem import Problem, as_problem, edges_to_problem

__all__ = ["FORMATS", "MAX_DIMACS_N", "read", "write"]

#: The accepted ``format=`` values.
FORMATS = ("mdplib", "dimacs", "edgelist", "npy")
#: Largest ``N`` accepted in a DIMACS header.
MAX_DIMACS_N = 50_000_000

_ONE_OF = "None or one of " + ", ".join(map(repr, FORMATS))
_SUFFIXES = {".txt": "mdplib", ".clq": "dimacs", ".wclq": "dimacs", ".npy": "npy", ".edges": "edgelist",
             ".edgelist": "edgelist"}
_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True  # exactly the bytes that bytes.split() splits on
_DIMACS_COMMENT = re.compile(rb"(?m)^[ \t\r\f\v]*c(?:[ \t\r\f\v][^\n]*)?$")
_HASH_COMMENT = re.compile(rb"#[^\n]*")


def _show(tok: bytes) -> str:
    s = tok.decode("utf-8", "backslashreplace")
    return "'" + (s if len(s) <= 30 else s[:27] + "...") + "'"


class _Tokens:
    """The whitespace tokens of a text, and the 1-based line number of each."""

    def __init__(self, raw: bytes, where: str) -> None:
        words = raw.split()
        b = np.frombuffer(raw, dtype=np.uint8)
        ws = _WS[b]
        starts = np.flatnonzero(~ws & np.concatenate(([True], ws[:-1])))
        assert starts.size == len(words)
        tok_line = np.searchsorted(np.flatnonzero(b == 10), starts, side="right") + 1
        self.where = where
        self.words = np.empty(len(words), dtype=object)
        self.words[:] = words
        self.first = np.flatnonzero(np.diff(tok_line, prepend=0))  # first token of each non-blank line
        self.lines = tok_line[self.first]  # the numbers of the non-blank lines
        self.counts = np.diff(np.append(self.first, len(words)))

    def error(self, line: int, msg: str) -> ValueError:
        return ValueError(f"{self.where}, line {int(line)}: {msg}")

    def block(self, rows: np.ndarray, width: int) -> np.ndarray:
        """The first ``width`` tokens of the given non-blank lines, one row each."""
        return self.words[self.first[rows][:, None] + np.arange(width)]

    def check(self, bad: np.ndarray, lines: np.ndarray, msg: Callable[[int], str]) -> None:
        """Raise for the first row flagged in ``bad``, with the message ``msg(row)``."""
        rows = np.flatnonzero(bad)
        if rows.size:
            raise self.error(lines[rows[0]], msg(int(rows[0])))

    def numbers(self, cells: np.ndarray, lines: np.ndarray, kind: type, what: str) -> np.ndarray:
        """``cells`` (rows of tokens) converted by ``int`` to int64 or ``float`` to finite float64."""
        flat = cells.ravel()
        dtype = np.int64 if kind is int else np.float64
        try:
            out = np.fromiter(map(kind, flat), dtype, flat.size).reshape(cells.shape)
        except (ValueError, OverflowError):  # rescan to name the offending token
            for p, tok in enumerate(flat):
                try:
                    np.array(kind(tok), dtype=dtype)
                except (ValueError, OverflowError) as exc:
                    noun = "an integer" if kind is int else "a number"
                    why = "is too large" if isinstance(exc, OverflowError) else f"is not {noun}"
                    raise self.error(lines[p // cells.shape[1]], f"{what} {_show(tok)} {why}") from None
            raise AssertionError("unreachable") from None  # pragma: no cover
        bad = ~np.isfinite(out) if kind is float else np.zeros(out.shape, dtype=bool)
        self.check(bad.any(axis=1), lines, lambda r: f"{what} {_show(cells[r][bad[r]][0])} is not finite")
        return out


def _header_int(t: _Tokens, tok: bytes, line: int, what: str) -> int:
    try:
        return int(tok)
    except ValueError:
        raise t.error(line, f"{what} must be an integer; got {_show(tok)}") from None


def _check_pairs(
    t: _Tokens, lo: np.ndarray, hi: np.ndarray, lines: np.ndarray, show: Callable[[int], str]
) -> None:
    """Refuse self-loops and pairs given twice (in either orientation)."""
    t.check(lo == hi, lines, lambda r: f"{show(r)} is a self-loop")
    a, b = np.minimum(lo, hi), np.maximum(lo, hi)
    order = np.lexsort((b, a))  # stable: equal pairs stay in file order
    same = (a[order][1:] == a[order][:-1]) & (b[order][1:] == b[order][:-1])
    if same.any():
        r = int(order[1:][same].min())
        first = int(np.flatnonzero((a == a[r]) & (b == b[r]))[0])
        raise t.error(lines[r], f"{show(r)} repeats the pair given on line {int(lines[first])}")


def _read_mdplib(raw: bytes, where: str, name: str) -> Problem:
    t = _Tokens(raw, where)
    hl = int(t.lines[0])
    if t.counts[0] != 2:
        raise t.error(hl, f"the header must be 'n m' (two integers); got {t.counts[0]} tokens")
    head = t.block(np.array([0]), 2)[0]
    n = _header_int(t, head[0], hl, "n in the header 'n m'")
    m = _header_int(t, head[1], hl, "m in the header 'n m'")
    if n < 1 or not 1 <= m <= n:
        raise t.error(hl, f"the header 'n m' needs 1 <= m <= n; got n = {n}, m = {m}")
    lines = t.lines[1:]
    t.check(t.counts[1:] != 3, lines, lambda r: f"expected 'i j d' (3 tokens); got {t.counts[r + 1]}")
    cells = t.block(np.arange(1, t.lines.size), 3)
    ij = t.numbers(cells[:, :2], lines, int, "vertex index")
    bad = (ij < 0) | (ij >= n)
    t.check(bad.any(axis=1), lines, lambda r: f"vertex index {ij[r][bad[r]][0]} is outside 0..{n - 1}")
    d = t.numbers(cells[:, 2:], lines, float, "weight")[:, 0]
    pairs = n * (n - 1) // 2
    if lines.size > pairs:
        raise t.error(lines[pairs], f"more pair lines than the n(n-1)/2 = {pairs} the header announces")
    if lines.size < pairs:  # before the n*n allocation below
        raise t.error(hl, f"the header 'n m' announces n = {n}, so n(n-1)/2 = {pairs} pair lines, "
                          f"but {lines.size} follow")
    _check_pairs(t, ij[:, 0], ij[:, 1], lines, lambda r: f"pair ({ij[r, 0]}, {ij[r, 1]})")
    w = np.zeros((n, n))
    w[ij[:, 0], ij[:, 1]] = d
    w[ij[:, 1], ij[:, 0]] = d
    return as_problem(w, default_k=m, name=name)


def _read_dimacs(raw: bytes, where: str, name: str, weighting: str | None) -> Problem:
    t = _Tokens(_DIMACS_COMMENT.sub(b"", raw), where)
    if t.lines.size == 0:
        raise ValueError(f"{where}: no 'p edge N M' header (the file holds only comments)")
    hl = int(t.lines[0])
    head = t.block(np.array([0]), min(4, int(t.counts[0])))[0]
    if head[0] != b"p":
        raise t.error(hl, f"expected the header 'p edge N M' before any other line; got {_show(head[0])}")
    if t.counts[0] != 4 or head[1] not in (b"edge", b"col"):
        raise t.error(hl, "the header must be 'p edge N M' (or 'p col N M')")
    n = _header_int(t, head[2], hl, "N in the header 'p edge N M'")
    n_edges = _header_int(t, head[3], hl, "M in the header 'p edge N M'")
    if not 1 <= n <= MAX_DIMACS_N or n_edges < 0:
        raise t.error(hl, f"the header 'p edge N M' needs 1 <= N <= {MAX_DIMACS_N:,} and M >= 0; "
                          f"got N = {n}, M = {n_edges}")
    lines, counts, lead = t.lines[1:], t.counts[1:], t.words[t.first[1:]]
    is_e, is_n = lead == b"e", lead == b"n"
    width = int(counts[is_e][0]) if is_e.any() else 4
    bad = ~(is_e | is_n) | (is_n & (counts != 3)) | (is_e & ((counts != width) | ~np.isin(counts, (3, 4))))

    def structure(r: int) -> str:
        if lead[r] == b"p":
            return "a second 'p' header line"
        if is_n[r]:
            return f"expected a vertex line 'n v w'; got {counts[r]} tokens"
        if not is_e[r] or not 3 <= counts[r] <= 4:
            return f"expected an edge line 'e u v [w]'; got {counts[r]} tokens starting with {_show(lead[r])}"
        return f"has {counts[r]} tokens but the first edge line has {width}; all must have the same"

    t.check(bad, lines, structure)
    vrows = np.flatnonzero(is_n)
    vcells, vlines = t.block(vrows + 1, 3), lines[vrows]
    vid = t.numbers(vcells[:, 1:2], vlines, int, "vertex id")[:, 0]
    t.check((vid < 1) | (vid > n), vlines, lambda r: f"vertex id {vid[r]} is outside 1..{n}")
    vw = t.numbers(vcells[:, 2:], vlines, float, "vertex weight")[:, 0]
    t.check(vw != 0, vlines, lambda r: f"vertex weight {_show(vcells[r, 2])} is not 0 (unsupported)")
    erows = np.flatnonzero(is_e)
    cells, lines = t.block(erows + 1, width), lines[erows]
    uv = t.numbers(cells[:, 1:3], lines, int, "vertex id")
    out = (uv < 1) | (uv > n)
    t.check(out.any(axis=1), lines, lambda r: f"vertex id {uv[r][out[r]][0]} is outside 1..{n}")
    w = np.ones(len(uv))
    if width == 4:  # checked even when weighting replaces it
        w = t.numbers(cells[:, 3:], lines, float, "weight")[:, 0]
    if weighting == "mod200":
        w = ((uv[:, 0] + uv[:, 1]) % 200 + 1).astype(np.float64)
    if len(uv) != n_edges:
        raise t.error(hl, f"the header announces M = {n_edges} edges but the file has {len(uv)} 'e' lines")
    _check_pairs(t, uv[:, 0], uv[:, 1], lines, lambda r: f"edge ({uv[r, 0]}, {uv[r, 1]})")
    return edges_to_problem(n, uv[:, 0] - 1, uv[:, 1] - 1, w, name=name)


def _read_edgelist(raw: bytes, where: str, name: str) -> Problem:
    t = _Tokens(_HASH_COMMENT.sub(b"", raw), where)
    if t.lines.size == 0:
        raise ValueError(f"{where}: no edges (only comments or blank lines)")
    width, lines = int(t.counts[0]), t.lines
    if width not in (2, 3):
        raise t.error(lines[0], f"expected 'u v' or 'u v w'; got {width} tokens")
    t.check(t.counts != width, lines, lambda r: f"has {t.counts[r]} tokens but line {lines[0]} has {width}")
    cells = t.block(np.arange(lines.size), width)
    ends = cells[:, :2].ravel()
    try:
        ids = np.fromiter(map(int, ends), np.int64, ends.size)
    except (ValueError, OverflowError):
        ids = ends
    uniq, inv = np.unique(ids, return_inverse=True)
    inv = inv.reshape(-1, 2)
    labels: list[Any] = []
    for p, lab in enumerate(uniq):
        try:
            labels.append(int(lab) if ids is not ends else lab.decode("utf-8"))
        except UnicodeDecodeError:
            r = int(np.flatnonzero((inv == p).any(axis=1))[0])
            raise t.error(lines[r], f"label {_show(lab)} is not valid UTF-8") from None
    w = t.numbers(cells[:, 2:], lines, float, "weight")[:, 0] if width == 3 else np.ones(len(inv))
    _check_pairs(t, inv[:, 0], inv[:, 1], lines,
                 lambda r: f"edge ({_show(cells[r, 0])}, {_show(cells[r, 1])})")
    plain = labels == list(range(len(labels)))
    return edges_to_problem(len(labels), inv[:, 0], inv[:, 1], w, labels=None if plain else labels, name=name)


def _read_npy(raw: bytes, where: str, name: str) -> Problem:
    fmt, buf = np.lib.format, io.BytesIO(raw)
    try:
        major, _ = fmt.read_magic(buf)
        if major in (1, 2):  # check the announced size before numpy allocates it
            shape, _, dtype = (fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0)(buf)
            need = buf.tell() + math.prod(shape) * dtype.itemsize
            if dtype.kind not in "biuf":
                raise ValueError(f"the array must hold real numbers; got dtype {dtype}")
            if need != len(raw):
                raise ValueError(f"the header announces shape {shape} ({need} bytes); the file has "
                                 f"{len(raw)}")
        arr = np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as exc:  # numpy's header parser raises many kinds (SyntaxError, TokenError, ...)
        raise ValueError(f"{where}: not a readable .npy array: {exc}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: the array must hold real numbers; got {getattr(arr, 'dtype', arr)!r}")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{where}: the array must be a square matrix; got shape {arr.shape}")
    try:
        return as_problem(arr, name=name)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _detect(raw: bytes) -> str:
    if raw.startswith(b"\x93NUMPY"):
        return "npy"
    found: list[list[bytes]] = []
    pos = 0
    while len(found) < 2 and pos < len(raw):
        end = raw.find(b"\n", pos)
        end = len(raw) if end < 0 else end
        if words := raw[pos:end].split():
            found.append(words)
        pos = end + 1
    if found[0][0] in (b"c", b"p"):
        return "dimacs"
    two_ints = len(found[0]) == 2 and all(re.fullmatch(rb"[+-]?\d+", w) for w in found[0])
    return "mdplib" if two_ints and len(found) > 1 and len(found[1]) == 3 else "edgelist"


def read(path: str | os.PathLike[str], *, format: str | None = None, weighting: str | None = None) -> Problem:
    """Read an instance file.

    Parameters
    ----------
    path : str or path-like
        The file; its name does not matter (see the module notes for the formats).
    format : {"mdplib", "dimacs", "edgelist", "npy"} or None
        None detects the format from the content.
    weighting : {"mod200"} or None
        DIMACS only: every edge gets ``w(u, v) = ((u + v) mod 200) + 1`` on the
        1-based ids, replacing any weight in the file.

    Returns
    -------
    Problem
        Dense for MDPLIB, ``.npy`` and complete graphs, sparse otherwise; ``name``
        is the file stem, ``default_k`` MDPLIB's ``m`` (None for the others).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For bad arguments and empty or malformed files; the message names the
        file and, where a line is at fault, ``line N``.
    """
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be {_ONE_OF}; got {format!r}")
    if weighting is not None and weighting != "mod200":
        raise ValueError(f"weighting must be None or 'mod200'; got {weighting!r}")
    if weighting is not None and format not in (None, "dimacs"):
        raise ValueError(f"weighting='mod200' applies only to format='dimacs'; got format={format!r}")
    path = Path(path)
    raw = path.read_bytes()
    where = str(path)
    if not raw.strip():
        raise ValueError(f"{where}: the file is empty")
    fmt = format or _detect(raw)
    if weighting is not None and fmt != "dimacs":
        raise ValueError(f"weighting='mod200' applies only to DIMACS files; {where} reads as {fmt!r}")
    if fmt == "mdplib":
        return _read_mdplib(raw, where, path.stem)
    if fmt == "dimacs":
        return _read_dimacs(raw, where, path.stem, weighting)
    if fmt == "edgelist":
        return _read_edgelist(raw, where, path.stem)
    return _read_npy(raw, where, path.stem)


def _edges(problem: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every edge once as ``(u, v, w)`` with ``u < v``, in row order."""
    if problem.dense is not None:
        u, v = np.triu_indices(problem.n, 1)
        return u, v, problem.dense[u, v]
    assert problem.indptr is not None and problem.indices is not None and problem.data is not None
    rows = np.repeat(np.arange(problem.n), np.diff(problem.indptr))
    keep = problem.indices > rows
    return rows[keep], problem.indices[keep], problem.data[keep]


def _lines(a: list[Any], b: list[Any], w: np.ndarray, prefix: str = "") -> str:
    return "".join(f"{prefix}{x} {y} {z!r}\n" for x, y, z in zip(a, b, w.tolist()))


def _edgelist_text(problem: Problem, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> str:
    names = [str(i) for i in range(problem.n)]
    for i, lab in enumerate(problem.labels or ()):
        names[i] = str(int(lab)) if isinstance(lab, numbers.Integral) else str(lab)
        plain = isinstance(lab, (numbers.Integral, str)) and not isinstance(lab, bool)
        if not plain or "#" in names[i] or len(names[i].split()) != 1:
            raise ValueError("data: format='edgelist' needs int labels or strings without whitespace "
                             f"or '#'; got {lab!r}")
    if len(set(names)) != len(names):
        raise ValueError("data: format='edgelist' needs labels that stay distinct when written as text")
    isolated = np.setdiff1d(np.arange(problem.n), np.concatenate([u, v]))
    if isolated.size:
        raise ValueError(f"data: vertex {names[isolated[0]]} has no edge, which format='edgelist' "
                         "cannot represent; use 'dimacs' or 'npy'")
    return _lines([names[i] for i in u.tolist()], [names[i] for i in v.tolist()], w)


def write(
    data: Any, path: str | os.PathLike[str], *, format: str | None = None, k: int | None = None
) -> None:
    """Write an instance file that `read` gives back with identical weights.

    Parameters
    ----------
    data : anything `as_problem` accepts
    path : str or path-like
        Overwritten if it exists.
    format : {"mdplib", "dimacs", "edgelist", "npy"} or None
        None infers it from the suffix: ``.txt`` MDPLIB, ``.clq``/``.wclq`` DIMACS,
        ``.npy``, ``.edges``/``.edgelist`` edge list.
    k : int or None
        MDPLIB only: the ``m`` of the header (default ``problem.default_k``).

    Raises
    ------
    ValueError
        For an unknown format or suffix; MDPLIB of an incomplete graph or without
        ``k``/``default_k``; ``k`` with another format; an edge list of a graph
        with isolated vertices or labels that cannot be written as tokens.

    Notes
    -----
    Weights are written with ``repr`` (the shortest exact form), so round trips
    are exact. Only MDPLIB keeps ``default_k``; DIMACS and ``.npy`` drop labels.
    The edge-list reader sorts labels (and reads integer-like strings as
    integers), so the vertex order survives only for sorted labels or None.
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be {_ONE_OF}; got {format!r}")
    fmt = format or _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"format cannot be inferred from the suffix {path.suffix!r} of {path}; "
                         f"pass format= (one of {', '.join(map(repr, FORMATS))})")
    if k is not None and fmt != "mdplib":
        raise ValueError(f"k is only written by format='mdplib'; got k={k!r} with format={fmt!r}")
    problem = as_problem(data)
    if fmt == "npy":
        with open(path, "wb") as fh:
            np.save(fh, np.asarray(problem.to_dense(), dtype=np.float64), allow_pickle=False)
        return
    u, v, w = _edges(problem)
    if fmt == "mdplib":
        m = problem.default_k if k is None else k
        if not problem.is_complete:
            raise ValueError("data: format='mdplib' needs a complete graph; use 'dimacs' or 'edgelist'")
        if m is None:
            raise ValueError("k is required for format='mdplib' when the data has no default_k")
        if isinstance(m, bool) or not isinstance(m, numbers.Integral) or not 1 <= m <= problem.n:
            raise ValueError(f"k must be an integer between 1 and n = {problem.n}; got {m!r}")
        text = f"{problem.n} {int(m)}\n" + _lines(u.tolist(), v.tolist(), w)
    elif fmt == "dimacs":
        text = f"p edge {problem.n} {len(u)}\n" + _lines((u + 1).tolist(), (v + 1).tolist(), w, "e ")
    else:
        text = _edgelist_text(problem, u, v, w)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
