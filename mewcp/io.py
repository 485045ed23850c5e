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
``p``, or a ``p edge`` / ``p col`` line appears among the first lines; MDPLIB if the
first non-blank line holds exactly two numbers and the next one three tokens; an
edge list otherwise. A file whose only line is two numbers is refused as ambiguous (an
MDPLIB file cut after its header, or an edge list of one edge): pass ``format``; except
``1 m``, a whole MDPLIB file of one vertex (as an edge list it would be a self-loop).

Numbers follow a strict syntax: integers are ASCII digits with an optional sign;
weights are decimal or scientific notation (``1.5``, ``-2e-3``; ``nan`` and ``inf``
are refused as not finite). Python's digit separators (``1_0``) are refused, and so
is a file that starts with a byte-order mark (UTF-8, UTF-16, UTF-32).

Malformed files raise ``ValueError`` naming the file and, where a line is at
fault, ``line N`` (1-based). Reading streams the file in blocks of
`CHUNK_BYTES` (each parsed vectorised) and stops at the first block with a bad
line, so a large file of garbage costs one block; a line longer than
`MAX_LINE_BYTES` is refused (``/dev/zero`` fails at once). The counts a header
announces are checked against the file's size before anything is allocated for
them, and the ``n * n`` matrix of an MDPLIB file only after every pair line has
been read. A DIMACS graph without edges is built without touching ``O(N)`` memory.
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from mewcp.atomic import atomic_write, check_writable
from mewcp.kernels.parse import parse_triples
from mewcp.problem import Problem, as_problem, edges_to_problem

__all__ = ["CHUNK_BYTES", "FORMATS", "MAX_DIMACS_N", "MAX_LINE_BYTES", "read", "write"]

#: The accepted ``format=`` values.
FORMATS = ("mdplib", "dimacs", "edgelist", "npy")
#: Largest ``N`` accepted in a DIMACS header.
MAX_DIMACS_N = 50_000_000
#: Bytes read and parsed at a time.
CHUNK_BYTES = 1 << 20
#: Longest accepted line of a text file.
MAX_LINE_BYTES = 1 << 20
#: Fewest bytes an MDPLIB pair line ``i j d`` or a DIMACS edge line ``e u v`` takes,
#: its line end included (the last line may lack one).
_MIN_LINE = 6

_ONE_OF = "None or one of " + ", ".join(map(repr, FORMATS))
_SUFFIXES = {".txt": "mdplib", ".clq": "dimacs", ".wclq": "dimacs", ".npy": "npy", ".edges": "edgelist",
             ".edgelist": "edgelist"}
_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True  # exactly the bytes that bytes.split() splits on
_DIMACS_COMMENT = re.compile(rb"(?m)^[ \t\r\f\v]*c(?:[ \t\r\f\v][^\n]*)?$")
_DIMACS_HEADER = re.compile(rb"(?m)^[ \t\f\v]*p[ \t\f\v]+(?:edge|col)[ \t\f\v]+\S+[ \t\f\v]+\S+[ \t\r\f\v]*$")
_HASH_COMMENT = re.compile(rb"#[^\n]*")
_NUMBERISH = re.compile(rb"[+-]?[0-9.][0-9_.eE+-]*")  # for detection only: '3.5 2' is a bad MDPLIB header
_NPY_MAGIC = b"\x93NUMPY"
#: Byte-order marks of the encodings that editors and shells write (PowerShell's ``>`` writes UTF-16).
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xef\xbb\xbf", "UTF-8"),
         (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def _show(tok: bytes) -> str:
    s = tok.decode("utf-8", "backslashreplace")
    return "'" + (s if len(s) <= 30 else s[:27] + "...") + "'"


def _strict_int(tok: bytes) -> int:
    """``int`` without Python's extras (digit separators): ``[+-]?[0-9]+``."""
    if b"_" in tok:
        raise ValueError(tok)
    return int(tok)


def _strict_float(tok: bytes) -> float:
    """``float`` without Python's extras (digit separators)."""
    if b"_" in tok:
        raise ValueError(tok)
    return float(tok)


class _Tokens:
    """The whitespace tokens of a block of whole lines, and the 1-based line number of each."""

    def __init__(self, raw: bytes, where: str, first_line: int = 1) -> None:
        words = raw.split()
        b = np.frombuffer(raw, dtype=np.uint8)
        ws = _WS[b]
        starts = np.flatnonzero(~ws & np.concatenate(([True], ws[:-1])))
        assert starts.size == len(words)
        tok_line = np.searchsorted(np.flatnonzero(b == 10), starts, side="right") + first_line
        self.where = where
        self.separators = b"_" in raw  # digit separators anywhere: numbers() checks each token
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
        """``cells`` (rows of tokens) as int64 (``kind=int``) or finite float64, strict syntax."""
        flat = cells.ravel()
        dtype = np.int64 if kind is int else np.float64
        convert = _strict_int if kind is int else _strict_float
        try:
            if self.separators and b"_" in b" ".join(flat):
                raise ValueError("digit separator")
            out = np.fromiter(map(kind, flat), dtype, flat.size).reshape(cells.shape)
        except (ValueError, OverflowError):  # rescan to name the offending token
            for p, tok in enumerate(flat):
                try:
                    np.array(convert(tok), dtype=dtype)
                except (ValueError, OverflowError) as exc:
                    noun = "an integer" if kind is int else "a number"
                    why = "is too large" if isinstance(exc, OverflowError) else f"is not {noun}"
                    raise self.error(lines[p // cells.shape[1]], f"{what} {_show(tok)} {why}") from None
            raise AssertionError("unreachable") from None  # pragma: no cover
        bad = ~np.isfinite(out) if kind is float else np.zeros(out.shape, dtype=bool)
        self.check(bad.any(axis=1), lines, lambda r: f"{what} {_show(cells[r][bad[r]][0])} is not finite")
        return out


def _chunks(fh: IO[bytes], where: str, prefix: bytes = b"") -> Iterator[tuple[int, bytes]]:
    """Blocks of whole lines, each with the number of its first line; bounded memory."""
    line, rest = 1, prefix
    while True:
        block = fh.read(CHUNK_BYTES)
        if not block:
            if rest:
                yield line, rest
            return
        buf = rest + block
        cut = buf.rfind(b"\n") + 1
        chunk, rest = buf[:cut], buf[cut:]
        if len(rest) > MAX_LINE_BYTES:
            at = line + chunk.count(b"\n")
            raise ValueError(f"{where}, line {at}: longer than "
                             f"{MAX_LINE_BYTES:,} bytes (not a text instance file)")
        if chunk:
            yield line, chunk
            line += chunk.count(b"\n")


def _header_int(t: _Tokens, tok: bytes, line: int, what: str) -> int:
    try:
        return _strict_int(tok)
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


def _cat(parts: list[np.ndarray], dtype: Any, width: int | None = None) -> np.ndarray:
    if parts:
        return np.concatenate(parts)
    return np.empty((0,) if width is None else (0, width), dtype=dtype)


def _header_split(chunk: bytes) -> int:
    """Bytes of ``chunk`` up to the end of its first non-blank line (all of it if none ends)."""
    b = np.frombuffer(chunk, dtype=np.uint8)
    text = np.flatnonzero(~_WS[b])
    if text.size == 0:
        return len(chunk)
    end = chunk.find(b"\n", int(text[0]))
    return len(chunk) if end < 0 else end + 1


def _read_mdplib(chunks: Iterator[tuple[int, bytes]], where: str, name: str, size: int | None) -> Problem:
    n = m = pairs = -1
    t = _Tokens(b"", where)
    hl, seen = 0, 0
    ij_parts: list[np.ndarray] = []
    d_parts: list[np.ndarray] = []
    line_parts: list[np.ndarray] = []
    for first_line, block in chunks:
        if pairs < 0:  # the header line apart, so that the pair lines after it take the fast path
            cut = _header_split(block)
            pieces = [(first_line, block[:cut]), (first_line + block.count(b"\n", 0, cut), block[cut:])]
        else:
            pieces = [(first_line, block)]
        for first_line, chunk in pieces:
            if pairs >= 0 and chunk:  # the fast path: plain 'i j d' lines, every index in range
                ij = np.empty((chunk.count(b"\n") + 1, 2), dtype=np.int64)
                d = np.empty(ij.shape[0])
                got = parse_triples(np.frombuffer(chunk, dtype=np.uint8), ij, d)
                if 0 <= got <= pairs - seen and (got == 0 or ij[:got].max() < n):
                    ij_parts.append(ij[:got])
                    d_parts.append(d[:got])
                    line_parts.append(np.arange(first_line, first_line + got))
                    seen += got
                    continue
            t = _Tokens(chunk, where, first_line)  # the strict parser, which names what is wrong
            if t.lines.size == 0:
                continue
            start = 0
            if pairs < 0:
                hl, start = int(t.lines[0]), 1
                if t.counts[0] != 2:
                    raise t.error(hl, f"the header must be 'n m' (two integers); got {t.counts[0]} tokens")
                head = t.block(np.array([0]), 2)[0]
                n = _header_int(t, head[0], hl, "n in the header 'n m'")
                m = _header_int(t, head[1], hl, "m in the header 'n m'")
                if n < 1 or not 1 <= m <= n:
                    raise t.error(hl, f"the header 'n m' needs 1 <= m <= n; got n = {n}, m = {m}")
                pairs = n * (n - 1) // 2
                if size is not None and size < _MIN_LINE * pairs - 1:
                    raise t.error(hl, f"the header 'n m' announces n = {n}, so n(n-1)/2 = {pairs:,} pair lines "
                                      f"(at least {_MIN_LINE * pairs - 1:,} bytes), but the file has {size:,} bytes")
            stop = min(t.lines.size, start + pairs - seen)  # lines beyond the announced count: refused below
            lines = t.lines[start:stop]
            t.check(t.counts[start:stop] != 3, lines,
                    lambda r: f"expected 'i j d' (3 tokens); got {t.counts[r + start]}")
            cells = t.block(np.arange(start, stop), 3)
            ij = t.numbers(cells[:, :2], lines, int, "vertex index")
            bad = (ij < 0) | (ij >= n)
            t.check(bad.any(axis=1), lines, lambda r: f"vertex index {ij[r][bad[r]][0]} is outside 0..{n - 1}")
            ij_parts.append(ij)
            d_parts.append(t.numbers(cells[:, 2:], lines, float, "weight")[:, 0])
            line_parts.append(lines)
            seen += lines.size
            if stop < t.lines.size:
                raise t.error(t.lines[stop], f"more pair lines than the n(n-1)/2 = {pairs} the header announces")
    if pairs < 0:
        raise ValueError(f"{where}: the file is empty")
    if seen < pairs:  # before the n*n allocation below
        raise t.error(hl, f"the header 'n m' announces n = {n}, so n(n-1)/2 = {pairs} pair lines, "
                          f"but {seen} follow")
    ij, d, lines = _cat(ij_parts, np.int64, 2), _cat(d_parts, np.float64), _cat(line_parts, np.int64)
    _check_pairs(t, ij[:, 0], ij[:, 1], lines, lambda r: f"pair ({ij[r, 0]}, {ij[r, 1]})")
    w = np.zeros((n, n))
    w[ij[:, 0], ij[:, 1]] = d
    w[ij[:, 1], ij[:, 0]] = d
    return as_problem(w, default_k=m, name=name)


class _DimacsHeader:
    """``p edge N M``: the first line of a DIMACS file after the comments."""

    def __init__(self, t: _Tokens, size: int | None) -> None:
        hl = self.line = int(t.lines[0])
        head = t.block(np.array([0]), min(4, int(t.counts[0])))[0]
        if head[0] != b"p":
            raise t.error(hl, f"expected the header 'p edge N M' before any other line; got {_show(head[0])}")
        if t.counts[0] != 4 or head[1] not in (b"edge", b"col"):
            raise t.error(hl, "the header must be 'p edge N M' (or 'p col N M')")
        self.n = n = _header_int(t, head[2], hl, "N in the header 'p edge N M'")
        self.m = m = _header_int(t, head[3], hl, "M in the header 'p edge N M'")
        if not 1 <= n <= MAX_DIMACS_N or m < 0:
            raise t.error(hl, f"the header 'p edge N M' needs 1 <= N <= {MAX_DIMACS_N:,} and M >= 0; "
                              f"got N = {n}, M = {m}")
        if m > n * (n - 1) // 2:
            raise t.error(hl, f"the header announces M = {m} edges but N = {n} vertices have at most "
                              f"N(N-1)/2 = {n * (n - 1) // 2} pairs")
        if size is not None and size < _MIN_LINE * m - 1:
            raise t.error(hl, f"the header announces M = {m} edges (at least {_MIN_LINE * m - 1:,} bytes) "
                              f"but the file has {size:,} bytes")


def _read_dimacs(chunks: Iterator[tuple[int, bytes]], where: str, name: str, weighting: str | None,
                 size: int | None) -> Problem:
    head: _DimacsHeader | None = None
    t = _Tokens(b"", where)
    width, seen = 0, 0
    uv_parts: list[np.ndarray] = []
    w_parts: list[np.ndarray] = []
    line_parts: list[np.ndarray] = []
    for first_line, chunk in chunks:
        t = _Tokens(_DIMACS_COMMENT.sub(b"", chunk), where, first_line)
        if t.lines.size == 0:
            continue
        start = 0
        if head is None:
            head, start = _DimacsHeader(t, size), 1
        n = head.n
        lines, counts, lead = t.lines[start:], t.counts[start:], t.words[t.first[start:]]
        is_e, is_n = lead == b"e", lead == b"n"
        if not width and is_e.any():
            width = int(counts[is_e][0])
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
        erows = np.flatnonzero(is_e)
        excess = erows[head.m - seen:]  # refused once the lines before them are checked
        erows = erows[: head.m - seen]
        vrows = np.flatnonzero(is_n)
        vcells, vlines = t.block(vrows + start, 3), lines[vrows]
        vid = t.numbers(vcells[:, 1:2], vlines, int, "vertex id")[:, 0]
        t.check((vid < 1) | (vid > n), vlines, lambda r: f"vertex id {vid[r]} is outside 1..{n}")
        vw = t.numbers(vcells[:, 2:], vlines, float, "vertex weight")[:, 0]
        t.check(vw != 0, vlines, lambda r: f"vertex weight {_show(vcells[r, 2])} is not 0 (unsupported)")
        cells, elines = t.block(erows + start, max(width, 3)), lines[erows]
        uv = t.numbers(cells[:, 1:3], elines, int, "vertex id")
        out = (uv < 1) | (uv > n)
        t.check(out.any(axis=1), elines, lambda r: f"vertex id {uv[r][out[r]][0]} is outside 1..{n}")
        if width == 4:  # checked even when weighting replaces it
            w_parts.append(t.numbers(cells[:, 3:], elines, float, "weight")[:, 0])
        uv_parts.append(uv)
        line_parts.append(elines)
        seen += erows.size
        if excess.size:
            raise t.error(lines[excess[0]], f"more 'e' lines than the M = {head.m} edges the header announces")
    if head is None:
        raise ValueError(f"{where}: no 'p edge N M' header (the file holds only comments)")
    if seen != head.m:
        raise t.error(head.line, f"the header announces M = {head.m} edges but the file has {seen} 'e' lines")
    if seen == 0:  # no edges: nothing to sort or check, and no O(N) work
        return edges_to_problem(head.n, np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), name=name)
    uv, lines = _cat(uv_parts, np.int64, 2), _cat(line_parts, np.int64)
    w = _cat(w_parts, np.float64) if width == 4 else np.ones(len(uv))
    if weighting == "mod200":
        w = ((uv[:, 0] + uv[:, 1]) % 200 + 1).astype(np.float64)
    _check_pairs(t, uv[:, 0], uv[:, 1], lines, lambda r: f"edge ({uv[r, 0]}, {uv[r, 1]})")
    return edges_to_problem(head.n, uv[:, 0] - 1, uv[:, 1] - 1, w, name=name)


def _read_edgelist(chunks: Iterator[tuple[int, bytes]], where: str, name: str) -> Problem:
    t = _Tokens(b"", where)
    width, first_line = 0, 0
    end_parts: list[np.ndarray] = []
    w_parts: list[np.ndarray] = []
    line_parts: list[np.ndarray] = []
    for start_line, chunk in chunks:
        t = _Tokens(_HASH_COMMENT.sub(b"", chunk), where, start_line)
        if t.lines.size == 0:
            continue
        lines = t.lines
        if not width:
            width, first_line = int(t.counts[0]), int(lines[0])
            if width not in (2, 3):
                raise t.error(lines[0], f"expected 'u v' or 'u v w'; got {width} tokens")
        t.check(t.counts != width, lines, lambda r: f"has {t.counts[r]} tokens but line {first_line} has {width}")
        cells = t.block(np.arange(lines.size), width)
        if width == 3:
            w_parts.append(t.numbers(cells[:, 2:], lines, float, "weight")[:, 0])
        end_parts.append(cells[:, :2])
        line_parts.append(lines)
    if not width:
        raise ValueError(f"{where}: no edges (only comments or blank lines)")
    cells, lines = _cat(end_parts, object, 2), _cat(line_parts, np.int64)
    ends = cells.ravel()
    try:
        if b"_" in b" ".join(ends):
            raise ValueError("digit separator")
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
    w = _cat(w_parts, np.float64) if width == 3 else np.ones(len(inv))
    _check_pairs(t, inv[:, 0], inv[:, 1], lines,
                 lambda r: f"edge ({_show(cells[r, 0])}, {_show(cells[r, 1])})")
    plain = labels == list(range(len(labels)))
    return edges_to_problem(len(labels), inv[:, 0], inv[:, 1], w, labels=None if plain else labels, name=name)


class _Prefixed:
    """A binary stream with bytes already read put back in front (for numpy's header reader)."""

    def __init__(self, prefix: bytes, fh: IO[bytes]) -> None:
        self.prefix, self.fh, self.pos = prefix, fh, 0

    def read(self, n: int = -1) -> bytes:
        head, self.prefix = (self.prefix, b"") if n < 0 else (self.prefix[:n], self.prefix[n:])
        rest = self.fh.read(-1 if n < 0 else n - len(head)) if n < 0 or len(head) < n else b""
        self.pos += len(head) + len(rest)
        return head + rest

    def tell(self) -> int:
        return self.pos


def _read_npy(fh: _Prefixed, where: str, name: str, size: int | None) -> Problem:
    fmt = np.lib.format
    try:
        major, _ = fmt.read_magic(fh)
        if major not in (1, 2, 3):
            raise ValueError(f"unsupported .npy format version {major}")
        read_header = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        if dtype.kind not in "biuf" or dtype.hasobject:
            raise ValueError(f"the array must hold real numbers; got dtype {dtype}")
        count = math.prod(shape)
        need = fh.tell() + count * dtype.itemsize
        if size is not None and need != size:  # before numpy allocates what the header announces
            raise ValueError(f"the header announces shape {shape} ({need} bytes); the file has {size}")
        data = fh.read(count * dtype.itemsize + 1)
        if len(data) != count * dtype.itemsize:
            raise ValueError(f"the header announces shape {shape} ({need} bytes); the file has "
                             f"{fh.tell() if size is None else size}")
        arr = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    except Exception as exc:  # numpy's header parser raises many kinds (SyntaxError, TokenError, ...)
        raise ValueError(f"{where}: not a readable .npy array: {exc}") from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{where}: the array must be a square matrix; got shape {arr.shape}")
    try:
        return as_problem(arr, name=name)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _detect(head: bytes) -> str:
    """The format of a text file from its first block of lines (which holds a token)."""
    found: list[list[bytes]] = []
    pos = 0
    while len(found) < 2 and pos < len(head):
        end = head.find(b"\n", pos)
        end = len(head) if end < 0 else end
        if words := head[pos:end].split():
            found.append(words)
        pos = end + 1
    if found[0][0] in (b"c", b"p") or _DIMACS_HEADER.search(head, 0, 1 << 16):
        return "dimacs"
    two_numbers = len(found[0]) == 2 and all(_NUMBERISH.fullmatch(w) for w in found[0])
    return "mdplib" if two_numbers and len(found) > 1 and len(found[1]) == 3 else "edgelist"


def _lone_header(head: bytes, taken: list[tuple[int, bytes]]) -> bool:
    """True when the whole file is one line of two numbers: ambiguous between an MDPLIB file
    cut after its header and an edge list of one edge (`_text_start` read it all)."""
    words = head.split()
    return (len(taken) <= 64 and not _has_two_lines(head) and len(words) == 2
            and all(_NUMBERISH.fullmatch(w) for w in words))


def _has_two_lines(text: bytes) -> bool:
    """True when ``text`` has at least two lines holding a token (looks at no more than it must)."""
    found, pos = 0, 0
    while pos < len(text):
        end = text.find(b"\n", pos)
        end = len(text) if end < 0 else end
        if text[pos:end].strip():
            found += 1
            if found == 2:
                return True
        pos = end + 1
    return False


def _text_start(chunks: Iterator[tuple[int, bytes]]) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The first blocks up to two non-blank lines (for detection), and the blocks read so far."""
    taken: list[tuple[int, bytes]] = []
    head = b""
    for item in chunks:
        taken.append(item)
        if item[1].strip():
            head += item[1]
            if _has_two_lines(head) or len(taken) > 64:
                break
    return head, taken


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
    FileNotFoundError, OSError
        If the file does not exist or cannot be read (a directory, a permission).
    ValueError
        For bad arguments and empty or malformed files; the message names the
        file and, where a line is at fault, ``line N``.
    """
    if format is not None and (not isinstance(format, str) or format not in FORMATS):
        raise ValueError(f"format must be {_ONE_OF}; got {format!r}")
    if weighting is not None and (not isinstance(weighting, str) or weighting != "mod200"):
        raise ValueError(f"weighting must be None or 'mod200'; got {weighting!r}")
    if weighting is not None and format not in (None, "dimacs"):
        raise ValueError(f"weighting='mod200' applies only to format='dimacs'; got format={format!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike naming a file; got {type(path).__name__}")
    path = Path(path)
    where = str(path)
    with open(path, "rb") as fh:
        info = os.fstat(fh.fileno())
        size = info.st_size if stat.S_ISREG(info.st_mode) else None  # unknown for devices and pipes
        magic = fh.read(len(_NPY_MAGIC))
        if format == "npy" or (format is None and magic == _NPY_MAGIC):
            if weighting is not None:
                raise ValueError(f"weighting='mod200' applies only to DIMACS files; {where} reads as 'npy'")
            return _read_npy(_Prefixed(magic, fh), where, path.stem, size)
        for bom, encoding in _BOMS:
            if magic.startswith(bom):
                raise ValueError(f"{where}: the file starts with a {encoding} byte-order mark; instance files "
                                 "are plain ASCII text (save it again without the mark, e.g. as UTF-8 without BOM)")
        blocks = _chunks(fh, where, magic)
        head, taken = _text_start(blocks)
        if not head:
            raise ValueError(f"{where}: the file is empty")
        fmt = format or _detect(head)
        if format is None and _lone_header(head, taken):
            words = head.split()
            if words[0] not in (b"1", b"+1"):  # `1 m`: a whole one-vertex MDPLIB file, not a self-loop
                line = b" ".join(words).decode("ascii", "replace")
                raise ValueError(f"{where}: the file's only line, {line!r}, is an MDPLIB header 'n m' "
                                 "without its pairs or an edge list of one edge; say which: format='mdplib' "
                                 "or 'edgelist' (--format on the command line)")
            fmt = "mdplib"
        chunks = itertools.chain(taken, blocks)
        if weighting is not None and fmt != "dimacs":
            raise ValueError(f"weighting='mod200' applies only to DIMACS files; {where} reads as {fmt!r}")
        if fmt == "mdplib":
            return _read_mdplib(chunks, where, path.stem, size)
        if fmt == "dimacs":
            return _read_dimacs(chunks, where, path.stem, weighting, size)
        return _read_edgelist(chunks, where, path.stem)


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
        Replaced atomically if it exists (written to a temporary file beside it first).
    format : {"mdplib", "dimacs", "edgelist", "npy"} or None
        None infers it from the suffix: ``.txt`` MDPLIB, ``.clq``/``.wclq`` DIMACS,
        ``.npy``, ``.edges``/``.edgelist`` edge list.
    k : int or None
        MDPLIB only: the ``m`` of the header (default ``problem.default_k``).

    Raises
    ------
    TypeError
        If ``path`` is not a str or path-like.
    IsADirectoryError, FileNotFoundError
        If ``path`` is a folder, or its folder does not exist (nothing is written).
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
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike naming a file; got {type(path).__name__}")
    path = check_writable(path)
    if format is not None and (not isinstance(format, str) or format not in FORMATS):
        raise ValueError(f"format must be {_ONE_OF}; got {format!r}")
    fmt = format or _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"format cannot be inferred from the suffix {path.suffix!r} of {path}; "
                         f"pass format= (one of {', '.join(map(repr, FORMATS))})")
    if k is not None and fmt != "mdplib":
        raise ValueError(f"k is only written by format='mdplib'; got k={k!r} with format={fmt!r}")
    problem = as_problem(data)
    if fmt == "npy":
        atomic_write(path, lambda fh: np.save(fh, np.asarray(problem.to_dense(), dtype=np.float64),
                                               allow_pickle=False))
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
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))

