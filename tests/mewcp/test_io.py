"""Tests for mewcp.io: the shipped instances, detection, round trips, hostile files."""

from __future__ import annotations

import csv
import io
import random
import re
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mewcp import as_problem, read, write
from mewcp.io import FORMATS

INSTANCES = Path(__file__).resolve().parents[2] / "instances"
MDPLIB_NAME = re.compile(r"(?P<family>[A-Z]+-[abc])_\d+_n(?P<n>\d+)_m(?P<m>\d+)\.txt")


def _csv_rows() -> list[dict[str, str]]:
    with open(INSTANCES / "best_known.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _readme_table(header_start: str) -> list[list[str]]:
    lines = (INSTANCES / "README.md").read_text(encoding="utf-8").splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[i + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


ROWS = _csv_rows()
MDP_ROWS = [r for r in ROWS if r["file"].startswith("mdplib/")]
DIMACS_ROWS = [r for r in ROWS if r["file"].startswith("dimacs/")]
DIMACS_EDGES = {f: int(e) for f, _, e, *_ in _readme_table("| file | n | edges |")}


@pytest.fixture(scope="module")
def mdplib_problems() -> dict[str, object]:
    return {r["file"]: read(INSTANCES / r["file"]) for r in MDP_ROWS}


def _put(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# --- the shipped instances ---------------------------------------------------------


def test_best_known_csv_matches_files_and_readme() -> None:
    assert list(ROWS[0]) == ["file", "family", "n", "k", "best_known", "source", "reference_ts"]
    on_disk = sorted(
        str(p.relative_to(INSTANCES)) for p in INSTANCES.rglob("*") if p.suffix in (".txt", ".wclq")
    )
    assert sorted(r["file"] for r in ROWS) == on_disk
    assert len(MDP_ROWS) == 57 and len(DIMACS_ROWS) == 20
    readme = {f"mdplib/{f}": (n, m, bkv, ts) for f, n, m, bkv, _, ts in _readme_table("| file | n | b=m |")}
    readme.update({f: (n, k, opt, "") for f, n, _, opt, k, _ in _readme_table("| file | n | edges |")})
    for r in ROWS:
        n, k, bkv, ts = readme[r["file"]]
        assert (r["n"], r["k"], r["reference_ts"]) == (n, k, ts)
        assert r["best_known"] == ("" if bkv == "—" else bkv)
        assert r["source"]
        if r["best_known"]:
            float(r["best_known"])
        if r["file"].startswith("mdplib/"):
            m = MDPLIB_NAME.fullmatch(Path(r["file"]).name)
            assert m and (m["family"], m["n"], m["m"]) == (r["family"], r["n"], r["k"])
            float(r["reference_ts"])


@pytest.mark.parametrize("row", MDP_ROWS, ids=lambda r: Path(r["file"]).stem)
def test_shipped_mdplib(row: dict[str, str], mdplib_problems: dict[str, object]) -> None:
    p = mdplib_problems[row["file"]]
    n = int(row["n"])
    assert (p.n, p.default_k, p.is_complete, p.labels) == (n, int(row["k"]), True, None)
    assert p.name == Path(row["file"]).stem
    w = p.dense
    assert np.isfinite(w).all() and (w >= 0).all() and np.array_equal(w, w.T)
    assert not np.diag(w).any()
    raw_lines = (INSTANCES / row["file"]).read_bytes().splitlines()
    assert len(raw_lines) == 1 + n * (n - 1) // 2
    for line in (raw_lines[1], raw_lines[len(raw_lines) // 2], raw_lines[-1]):
        i, j, d = line.split()
        assert w[int(i), int(j)] == w[int(j), int(i)] == float(d)


def test_mdplib_crlf_files_ship_and_parse(mdplib_problems: dict[str, object]) -> None:
    crlf = [r["file"] for r in MDP_ROWS if b"\r\n" in (INSTANCES / r["file"]).read_bytes()[:100]]
    assert {Path(f).parent.name for f in crlf} == {"MDG-b", "SOM-a"}
    for f in crlf:
        assert mdplib_problems[f].n == int(next(r["n"] for r in MDP_ROWS if r["file"] == f))


@pytest.mark.parametrize("row", DIMACS_ROWS, ids=lambda r: Path(r["file"]).stem)
def test_shipped_dimacs(row: dict[str, str]) -> None:
    p = read(INSTANCES / row["file"])
    assert (p.n, p.n_edges, p.labels, p.default_k) == (int(row["n"]), DIMACS_EDGES[row["file"]], None, None)
    assert not p.is_complete
    rows = np.repeat(np.arange(p.n), np.diff(p.indptr))
    assert np.array_equal(p.data, ((rows + 1) + (p.indices + 1)) % 200 + 1)
    p200 = read(INSTANCES / row["file"], weighting="mod200")
    assert np.array_equal(p200.data, p.data)


# --- DIMACS specifics ----------------------------------------------------------------


def test_dimacs_unweighted_and_mod200(tmp_path: Path) -> None:
    path = _put(tmp_path, "g.clq", "c tiny\nc graph\np edge 4 4\ne 1 2\ne 2 3\ne 3 1\ne 4 3\n")
    plain = read(path)
    assert plain.n == 4 and plain.n_edges == 4 and plain.name == "g"
    assert plain.to_dense()[0, 1] == 1.0 and plain.to_dense()[0, 3] == 0.0
    w = read(path, weighting="mod200").to_dense()
    for u, v in [(1, 2), (2, 3), (3, 1), (4, 3)]:
        assert w[u - 1, v - 1] == w[v - 1, u - 1] == (u + v) % 200 + 1
    col = _put(tmp_path, "h.col", "p col 3 1\ne 3 1 2.5\nn 2 0\n")
    assert read(col).to_dense()[0, 2] == 2.5
    big = _put(tmp_path, "big.clq", "p edge 300 1\ne 150 249\n")
    assert read(big, weighting="mod200").to_dense()[149, 248] == 200.0


def test_argument_errors(tmp_path: Path) -> None:
    path = INSTANCES / "mdplib/GKD-a/GKD-a_25_n10_m8.txt"
    with pytest.raises(ValueError, match="format must be None or one of 'mdplib', 'dimacs'"):
        read(path, format="csv")
    with pytest.raises(ValueError, match="weighting must be None or 'mod200'"):
        read(path, weighting="pullan")
    with pytest.raises(ValueError, match="weighting='mod200' applies only to DIMACS"):
        read(path, weighting="mod200")
    with pytest.raises(ValueError, match="applies only to format='dimacs'"):
        read(path, format="mdplib", weighting="mod200")
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "missing.txt")
    for bad in (None, 3, b"instances/x.txt"):
        with pytest.raises(TypeError, match=f"^path must be a str or os.PathLike naming a file; got {type(bad).__name__}$"):
            read(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^format must be None or one of .*; got array\(\['npy', 'x'\]"):
        read(path, format=np.array(["npy", "x"]))  # not numpy's "truth value of an array is ambiguous"


# --- detection ----------------------------------------------------------------------


def test_detection_uses_content_not_suffix(tmp_path: Path) -> None:
    w = np.array([[0, 1.5, 2], [1.5, 0, 3], [2, 3, 0]])
    cases = {
        "mdplib": "3 2\n0 1 1.5\n0 2 2\n1 2 3\n",
        "dimacs": "p edge 3 3\ne 1 2 1.5\ne 1 3 2\ne 2 3 3\n",
        "dimacs-comment": "\nc made by hand\np edge 3 3\ne 1 2 1.5\ne 1 3 2\ne 2 3 3\n",
        "edgelist": "# a comment\n0 1 1.5\n0 2 2  # trailing\n\n1 2 3\n",
    }
    for key, text in cases.items():
        p = read(_put(tmp_path, f"{key}.npy", text))  # misleading suffix on purpose
        assert np.array_equal(p.to_dense(), w), key
        assert p.default_k == (2 if key == "mdplib" else None)
    with open(tmp_path / "m.txt", "wb") as fh:
        np.save(fh, w)
    assert np.array_equal(read(tmp_path / "m.txt").to_dense(), w)
    two_ints = read(_put(tmp_path, "e.txt", "0 1\n1 2\n"))  # next line has 2 tokens: edge list
    assert two_ints.n == 3 and two_ints.n_edges == 2



@pytest.mark.parametrize("text", ["5 2\n", "7 3", "\n\n3 2\r\n\n"])
def test_a_lone_line_of_two_numbers_is_refused_as_ambiguous(tmp_path: Path, text: str) -> None:
    """An MDPLIB file cut after its header is not read as an edge list of one edge."""
    path = _put(tmp_path, "h.txt", text)
    line = " ".join(text.split())
    with pytest.raises(ValueError, match=re.escape(
            f"{path}: the file's only line, '{line}', is an MDPLIB header 'n m' without its pairs or an edge list "
            "of one edge; say which: format='mdplib' or 'edgelist' (--format on the command line)")):
        read(path)
    with pytest.raises(ValueError, match="pair lines"):
        read(path, format="mdplib")
    assert read(path, format="edgelist").n_edges == 1


def test_a_one_vertex_mdplib_file_reads_back(tmp_path: Path) -> None:
    """``1 m`` alone is a whole MDPLIB file (no pairs), not the ambiguous lone header."""
    write(np.zeros((1, 1)), tmp_path / "one.txt", k=1)
    problem = read(tmp_path / "one.txt")
    assert (problem.n, problem.default_k) == (1, 1)


def test_crlf_and_blank_lines(tmp_path: Path) -> None:
    text = "3 2\n0 1 1.5\n2 0 2\n1 2 3\n"
    lf = read(_put(tmp_path, "lf.txt", text))
    crlf = read(_put(tmp_path, "crlf.txt", text.replace("\n", "\r\n")))
    padded = read(_put(tmp_path, "pad.txt", "\n" + text.replace("\n", "\r\n\r\n")))
    assert np.array_equal(lf.dense, crlf.dense) and np.array_equal(lf.dense, padded.dense)
    el = read(_put(tmp_path, "e.edges", "a b 1\r\nb c 2\r\n"))
    assert el.labels == ("a", "b", "c")


def test_edgelist_labels(tmp_path: Path) -> None:
    ints = read(_put(tmp_path, "i.edges", "10 -2\n3 10\n"))
    assert ints.labels == (-2, 3, 10) and ints.to_dense()[1, 2] == 1.0
    plain = read(_put(tmp_path, "p.edges", "1 0 4\n2 1 5\n"))
    assert plain.labels is None and plain.to_dense()[0, 1] == 4.0
    strs = read(_put(tmp_path, "s.edges", "b 10 1\na b 2\n"))
    assert strs.labels == ("10", "a", "b")


# --- round trips --------------------------------------------------------------------


def _random_dense(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.random((n, n)) * 10.0 ** rng.integers(-3, 6, (n, n))
    w = np.triu(w, 1)
    return w + w.T


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_complete(tmp_path: Path, fmt: str) -> None:
    w = _random_dense(17, 1)
    w[2, 5] = w[5, 2] = 0.0
    w[3, 4] = w[4, 3] = -1.0 / 3.0
    problem = as_problem(w, default_k=6)
    suffix = {"mdplib": ".txt", "dimacs": ".wclq", "edgelist": ".edges", "npy": ".npy"}[fmt]
    path = tmp_path / f"x{suffix}"
    write(problem, path)
    back = read(path)
    assert back.is_complete and np.array_equal(back.to_dense(), w)
    assert back.default_k == (6 if fmt == "mdplib" else None)
    write(problem, tmp_path / "y.dat", format=fmt)
    assert np.array_equal(read(tmp_path / "y.dat", format=fmt).to_dense(), w)


@pytest.mark.parametrize("fmt", ["dimacs", "edgelist", "npy"])
def test_round_trip_sparse(tmp_path: Path, fmt: str) -> None:
    g = nx.gnp_random_graph(40, 0.2, seed=3)
    g.remove_nodes_from([v for v in list(g) if g.degree(v) == 0])
    g = nx.convert_node_labels_to_integers(g)
    rng = random.Random(4)
    for u, v in g.edges:
        g[u][v]["weight"] = rng.choice([rng.random() * 1e4, 0.1, 7.0, -2.5e-7])
    problem = as_problem(g)
    path = tmp_path / "g.out"
    write(problem, path, format=fmt)
    back = read(path)
    assert np.array_equal(back.to_dense(), problem.to_dense())
    assert back.n_edges == problem.n_edges or fmt == "npy"


def test_round_trip_edgelist_labels(tmp_path: Path) -> None:
    g = nx.Graph()
    g.add_weighted_edges_from([("ant", "bee", 0.1), ("bee", "cat", 2.0), ("ant", "cat", 1e-300)])
    g2 = nx.Graph()
    g2.add_weighted_edges_from([(3, 10, 1.25), (10, 42, 3.0)])
    for graph in (g, g2):
        problem = as_problem(graph)
        write(problem, tmp_path / "l.edgelist")
        back = read(tmp_path / "l.edgelist")
        assert back.labels == tuple(sorted(graph.nodes))
        assert np.array_equal(back.to_dense(), problem.to_dense())


def test_write_errors(tmp_path: Path) -> None:
    w = _random_dense(4, 2)
    with pytest.raises(ValueError, match=r"format cannot be inferred from the suffix '\.dat'"):
        write(w, tmp_path / "x.dat")
    with pytest.raises(ValueError, match="format must be None or one of"):
        write(w, tmp_path / "x.txt", format="json")
    with pytest.raises(ValueError, match="k is required for format='mdplib'"):
        write(w, tmp_path / "x.txt")
    with pytest.raises(ValueError, match="k must be an integer between 1 and n = 4"):
        write(w, tmp_path / "x.txt", k=5)
    with pytest.raises(ValueError, match="k is only written by format='mdplib'"):
        write(w, tmp_path / "x.npy", k=2)
    path_graph = nx.path_graph(3)
    with pytest.raises(ValueError, match="needs a complete graph"):
        write(path_graph, tmp_path / "x.txt", k=2)
    g = nx.Graph([(0, 1)])
    g.add_node(2)
    with pytest.raises(ValueError, match="vertex 2 has no edge"):
        write(g, tmp_path / "x.edges")
    with pytest.raises(ValueError, match="without whitespace"):
        write(nx.Graph([("a b", "c")]), tmp_path / "x.edges")
    write(w, tmp_path / "x.txt", k=3)
    assert read(tmp_path / "x.txt").default_k == 3
    # the user's path named, not the temporary file beside it; nothing written
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"the folder to write into does not exist: '{tmp_path / 'nope'}'")):
        write(w, tmp_path / "nope" / "x.txt", k=2)
    (tmp_path / "out.txt").mkdir()
    with pytest.raises(IsADirectoryError, match=re.escape(
            f"is a folder; give the path of a file to write: '{tmp_path / 'out.txt'}'")):
        write(w, tmp_path / "out.txt", k=2)
    with pytest.raises(TypeError, match="^path must be a str or os.PathLike naming a file; got int$"):
        write(w, 5, format="npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "x.txt"]


# --- hostile files ------------------------------------------------------------------

MDP_OK = "3 2\n0 1 1\n0 2 2\n1 2 3\n"

HOSTILE = [
    # (name, content, format, message regex)
    ("weight.txt", "3 2\n0 1 1\n0 2 abc\n1 2 3\n", None, r"line 3: weight 'abc' is not a number"),
    ("index.txt", "3 2\n0 1 1\n0 x 2\n1 2 3\n", None, r"line 3: vertex index 'x' is not an integer"),
    ("int64.txt", "3 2\n0 1 1\n0 99999999999999999999 2\n1 2 3\n", None,
     r"line 3: vertex index '99999999999999999999' is too large"),
    ("float_index.txt", "3 2\n0 1 1\n0 2.0 2\n1 2 3\n", None,
     r"line 3: vertex index '2.0' is not an integer"),
    ("tokens.txt", "3 2\n0 1 1\n0 2\n1 2 3\n", "mdplib", r"line 3: expected 'i j d' \(3 tokens\); got 2"),
    ("range.txt", "3 2\n0 1 1\n0 3 2\n1 2 3\n", None, r"line 3: vertex index 3 is outside 0\.\.2"),
    ("negative.txt", "3 2\n0 1 1\n-1 2 2\n1 2 3\n", None, r"line 3: vertex index -1 is outside 0\.\.2"),
    ("loop.txt", "3 2\n0 1 1\n2 2 2\n1 2 3\n", None, r"line 3: pair \(2, 2\) is a self-loop"),
    ("twice.txt", "3 2\n0 1 1\n\n1 0 2\n1 2 3\n", None,
     r"line 4: pair \(1, 0\) repeats the pair given on line 2"),
    ("fewer.txt", "3 2\n0 1 1.0000000\n0 2 2.0000000\n", None,
     r"line 1: the header 'n m' announces n = 3, so n\(n-1\)/2 = 3 pair lines, but 2"),
    ("short.txt", "3 2\n0 1 1\n0 2 2\n", None,  # refused from the file size, before reading on
     r"line 1: the header 'n m' announces n = 3, so n\(n-1\)/2 = 3 pair lines \(at least 17 bytes\), "
     r"but the file has 16 bytes"),
    ("more.txt", MDP_OK + "0 1 1\n", None, r"line 5: more pair lines than the n\(n-1\)/2 = 3"),
    ("nan.txt", "3 2\n0 1 1\n0 2 nan\n1 2 3\n", None, r"line 3: weight 'nan' is not finite"),
    ("inf.txt", "3 2\n0 1 1\n0 2 1e400\n1 2 3\n", None, r"line 3: weight '1e400' is not finite"),
    ("noheader.txt", "0 1 1\n0 2 2\n1 2 3\n", "mdplib", r"line 1: the header must be 'n m'"),
    ("badheader.txt", "3 x\n0 1 1\n0 2 2\n1 2 3\n", "mdplib",
     r"line 1: m in the header 'n m' must be an integer; got 'x'"),
    ("bigm.txt", "3 4\n0 1 1\n0 2 2\n1 2 3\n", None,
     r"line 1: the header 'n m' needs 1 <= m <= n; got n = 3, m = 4"),
    ("crlf.txt", "3 2\r\n0 1 1\r\n0 2 2\r\n1 2 q\r\n", None, r"line 4: weight 'q' is not a number"),
    # DIMACS
    ("d_noheader.clq", "c hi\ne 1 2\n", None,
     r"line 2: expected the header 'p edge N M' before any other line"),
    ("d_header.clq", "p edge 3\ne 1 2\n", None, r"line 1: the header must be 'p edge N M'"),
    ("d_header_int.clq", "p edge 3 one\ne 1 2\n", None,
     r"line 1: M in the header 'p edge N M' must be an integer"),
    ("d_hugeN.clq", "p edge 60000000 1\ne 1 2\n", None,
     r"line 1: the header 'p edge N M' needs 1 <= N <= 50,000,000"),
    ("d_tokens.clq", "p edge 3 2\ne 1 2\ne 2\n", None,
     r"line 3: expected an edge line 'e u v \[w\]'; got 2 tokens"),
    ("d_mixed.clq", "p edge 3 2\ne 1 2 5\ne 2 3\n", None,
     r"line 3: has 3 tokens but the first edge line has 4"),
    ("d_kind.clq", "p edge 3 2\ne 1 2\nx 2 3\n", None,
     r"line 3: expected an edge line 'e u v \[w\]'; got 3 tokens starting with 'x'"),
    ("d_second_p.clq", "p edge 3 1\np edge 3 1\ne 1 2\n", None, r"line 2: a second 'p' header line"),
    ("d_id.clq", "p edge 3 2\ne 1 2\ne 2 three\n", None, r"line 3: vertex id 'three' is not an integer"),
    ("d_range.clq", "c x\nc y\np edge 3 2\ne 1 2\ne 2 4\n", None, r"line 5: vertex id 4 is outside 1\.\.3"),
    ("d_zero.clq", "p edge 3 2\ne 0 2\ne 2 3\n", None, r"line 2: vertex id 0 is outside 1\.\.3"),
    ("d_loop.clq", "p edge 3 2\ne 1 2\ne 3 3\n", None, r"line 3: edge \(3, 3\) is a self-loop"),
    ("d_twice.clq", "p edge 3 2\ne 1 2\ne 2 1\n", None,
     r"line 3: edge \(2, 1\) repeats the pair given on line 2"),
    ("d_count.clq", "p edge 3 3\ne 1 2\ne 2 3\n", None,
     r"line 1: the header announces M = 3 edges but the file has 2 'e' lines"),
    ("d_inf.clq", "p edge 3 2\ne 1 2 1\ne 2 3 -inf\n", None, r"line 3: weight '-inf' is not finite"),
    ("d_weight.clq", "p edge 3 2\ne 1 2 1\ne 2 3 heavy\n", None, r"line 3: weight 'heavy' is not a number"),
    ("d_vertex.clq", "p edge 3 1\ne 1 2\nn 2 5\n", None, r"line 3: vertex weight '5' is not 0"),
    ("d_comments.clq", "c only\nc comments\n", None, r"no 'p edge N M' header"),
    # edge lists
    ("e_tokens.edges", "a b 1\nb c\n", None, r"line 2: has 2 tokens but line 1 has 3"),
    ("e_four.edges", "a b 1 2\n", None, r"line 1: expected 'u v' or 'u v w'; got 4 tokens"),
    ("e_weight.edges", "# c\na b 1\nb c x\n", None, r"line 3: weight 'x' is not a number"),
    ("e_loop.edges", "a b 1\nb b 2\n", None, r"line 2: edge \('b', 'b'\) is a self-loop"),
    ("e_twice.edges", "1 2 1\n3 1 1\n2 1 5\n", None,
     r"line 3: edge \('2', '1'\) repeats the pair given on line 1"),
    ("e_nan.edges", "a b NaN\n", None, r"line 1: weight 'NaN' is not finite"),
    ("e_comments.edges", "# nothing\n\n# here\n", None, r"no edges"),
    ("e_utf8.edges", b"a \xff 1\n", None, r"line 1: label '\\xff' is not valid UTF-8"),
    # byte-order marks (Notepad, PowerShell's '>'): refused by name, not misread as an edge list
    ("bom8.txt", b"\xef\xbb\xbf3 2\n0 1 1\n0 2 5\n1 2 4\n", None,
     r": the file starts with a UTF-8 byte-order mark; instance files are plain ASCII text \(save it "
     r"again without the mark, e.g. as UTF-8 without BOM\)$"),
    ("bom16.txt", "3 2\n0 1 1\n0 2 5\n1 2 4\n".encode("utf-16"), None,
     r": the file starts with a UTF-16 byte-order mark"),
    ("bom16be.clq", "p edge 2 1\ne 1 2\n".encode("utf-16-be").join([b"\xfe\xff", b""]), "dimacs",
     r"the file starts with a UTF-16 byte-order mark"),
    # empty
    ("empty.txt", "", None, r"the file is empty"),
    ("blank.txt", " \n\r\n\t\n", "dimacs", r"the file is empty"),
]


@pytest.mark.parametrize(("name", "content", "fmt", "pattern"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_file(tmp_path: Path, name: str, content: str | bytes, fmt: str | None, pattern: str) -> None:
    path = _put(tmp_path, name, content)
    with pytest.raises(ValueError, match=re.escape(name) + ".*" + pattern):
        read(path, format=fmt)


def test_huge_header_refused_before_allocation(tmp_path: Path) -> None:
    path = _put(tmp_path, "huge.txt", "100000000 5\n0 1 1\n0 2 2\n1 2 3\n")
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"huge\.txt, line 1: .*n = 100000000"):
        read(path)
    assert time.perf_counter() - start < 0.5
    dimacs = _put(tmp_path, "huge.clq", "p edge 50000000 99999999999\ne 1 2\n")
    with pytest.raises(ValueError, match=r"line 1: the header announces M = 99999999999"):
        read(dimacs)


def test_hostile_npy(tmp_path: Path) -> None:
    def save(name: str, arr: np.ndarray, **kw: object) -> Path:
        with open(tmp_path / name, "wb") as fh:
            np.save(fh, arr, **kw)
        return tmp_path / name

    with pytest.raises(ValueError, match=r"rect\.npy: the array must be a square matrix; got shape \(2, 3\)"):
        read(save("rect.npy", np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"cplx\.npy.*real numbers"):
        read(save("cplx.npy", np.zeros((2, 2), dtype=complex)))
    with pytest.raises(ValueError, match=r"obj\.npy.*real numbers"):
        read(save("obj.npy", np.array([[None, 1], [1, None]], dtype=object), allow_pickle=True))
    with pytest.raises(ValueError, match=r"asym\.npy: data must be a symmetric matrix"):
        read(save("asym.npy", np.array([[0.0, 1.0], [2.0, 0.0]])))
    buf = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (900000, 900000)}
    np.lib.format.write_array_header_1_0(buf, header)
    fake = _put(tmp_path, "fake.npy", buf.getvalue() + bytes(72))  # claims 6.5 TB, holds 72 bytes
    with pytest.raises(ValueError, match=r"fake\.npy: not a readable \.npy array: the header announces"):
        read(fake)
    raw = save("ok.npy", np.zeros((3, 3))).read_bytes()
    with pytest.raises(ValueError, match=r"cut\.npy: not a readable \.npy array"):
        read(_put(tmp_path, "cut.npy", raw[:-8]))


def test_mutated_files_raise_only_value_error(tmp_path: Path) -> None:
    rng = random.Random(7)
    seeds = [
        MDP_OK.encode(),
        b"c x\np edge 4 3\ne 1 2 5\ne 2 3 1.5\ne 3 4 2\nn 1 0\n",
        b"# el\na b 1\nb c 2\nc a 3\n",
    ]
    alphabet = b"0123456789 \n\r\t-.epcn#xE+"
    for trial in range(600):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op, pos = rng.random(), rng.randrange(len(data) + 1)
            if op < 0.4:
                data[pos:pos] = bytes([rng.choice(alphabet)])
            elif op < 0.8 and data:
                del data[min(pos, len(data) - 1)]
            elif data:
                data[min(pos, len(data) - 1)] = rng.randrange(256)
        path = _put(tmp_path, f"m{trial}.dat", bytes(data))
        try:
            p = read(path)
        except ValueError as exc:
            assert path.name in str(exc)
        else:
            assert np.isfinite(p.to_dense()).all()


# --- strict syntax, accurate messages, bounded memory ---------------------------------

STRICT = [
    ("sep_index.txt", "3 2\n0 1 1\n0 1_0 2\n1 2 3\n", None, r"line 3: vertex index '1_0' is not an integer"),
    ("sep_weight.txt", "3 2\n0 1 1\n0 2 1_0\n1 2 3\n", None, r"line 3: weight '1_0' is not a number"),
    ("sep_header.txt", "3 1_0\n0 1 1\n0 2 2\n1 2 3\n", None,
     r"line 1: m in the header 'n m' must be an integer; got '1_0'"),
    ("float_header.txt", "3.5 2\n0 1 1\n0 2 2\n1 2 3\n", None,
     r"line 1: n in the header 'n m' must be an integer; got '3.5'"),
    ("d_sep.clq", "p edge 3 1\ne 1 2_0\n", None, r"line 2: vertex id '2_0' is not an integer"),
    ("d_sep_header.clq", "p edge 1_0 1\ne 1 2\n", None,
     r"line 1: N in the header 'p edge N M' must be an integer; got '1_0'"),
    ("d_e_first.clq", "e 1 2\np edge 3 1\n", None,
     r"line 1: expected the header 'p edge N M' before any other line; got 'e'"),
    ("d_more.clq", "p edge 3 1\ne 1 2\ne 2 3\n", None,
     r"line 3: more 'e' lines than the M = 1 edges the header announces"),
    ("d_pairs.clq", "p edge 3 4\ne 1 2\ne 2 3\ne 1 3\ne 1 3\n", None,
     r"line 1: the header announces M = 4 edges but N = 3 vertices have at most N\(N-1\)/2 = 3 pairs"),
    ("d_short.clq", "p edge 9 5\ne 1 2\n", None,
     r"line 1: the header announces M = 5 edges \(at least 29 bytes\) but the file has 17 bytes"),
    ("e_sep.edges", "a b 1_5\n", None, r"line 1: weight '1_5' is not a number"),
]


@pytest.mark.parametrize(("name", "content", "fmt", "pattern"), STRICT, ids=[h[0] for h in STRICT])
def test_strict_syntax_and_accurate_messages(tmp_path: Path, name: str, content: str, fmt: str | None,
                                             pattern: str) -> None:
    with pytest.raises(ValueError, match=re.escape(name) + ", " + pattern + "$"):
        read(_put(tmp_path, name, content), format=fmt)


def test_digit_separators_make_edge_list_labels_strings(tmp_path: Path) -> None:
    assert read(_put(tmp_path, "l.edges", "1_0 2\n2 3\n")).labels == ("1_0", "2", "3")


def test_dev_zero_and_directories_fail_at_once(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"^/dev/zero, line 1: longer than 1,048,576 bytes \(not a text instance "
                                         r"file\)$"):
        read("/dev/zero")
    assert time.perf_counter() - start < 5  # one block read, not memory until MemoryError
    with pytest.raises(IsADirectoryError):
        read(tmp_path)


def test_garbage_costs_one_block(tmp_path: Path) -> None:
    import tracemalloc

    rng = np.random.default_rng(0)
    path = tmp_path / "garbage.txt"
    path.write_bytes(b"3 2\n" + rng.integers(33, 127, 40 << 20, dtype=np.uint8).tobytes())  # 40 MB, one line
    dimacs = tmp_path / "garbage.clq"
    dimacs.write_bytes(b"p edge 5 3\n" + b"e 1 2 x\n" * (5 << 20))  # 40 MB of bad edge lines
    for bad in (path, dimacs):
        tracemalloc.start()
        with pytest.raises(ValueError, match=r", line 2: "):
            read(bad)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 50 << 20, bad  # the first blocks only (CHUNK_BYTES each), not the whole 40 MB


def test_a_huge_edgeless_dimacs_graph_is_cheap(tmp_path: Path) -> None:
    import mewcp

    start = time.perf_counter()  # a 19-byte file: no O(N) work (it took 11 s and 1 GB before)
    p = read(_put(tmp_path, "empty.clq", "p edge 50000000 0\n"))
    sol, none = mewcp.solve(p, 1), mewcp.solve(p, 2, "tabu")
    assert time.perf_counter() - start < 1.0
    assert (p.n, p.n_edges, p.is_complete) == (50_000_000, 0, False)
    assert sol.status is mewcp.Status.OPTIMAL and sol.nodes == (0,)
    assert none.status is mewcp.Status.INFEASIBLE


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_reading_in_small_blocks_gives_the_same_problem_and_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   chunk: int) -> None:
    import mewcp.io

    texts = {
        "a.txt": "\n3 2\r\n0 1 1.5\n\n2 0 2\n1 2 3",
        "a.clq": "c first\nc second\np edge 4 3\ne 1 2 5\nc between\ne 2 3 1.5\nn 1 0\ne 3 4 2\n",
        "a.edges": "# c\nx y 1\ny z 2 # t\n\nz x 3\n",
    }
    whole = {name: read(_put(tmp_path, name, text)) for name, text in texts.items()}
    bad = {"b.txt": "3 2\n0 1 1\n0 2 2\n\n1 2 x\n", "b.clq": "c\np edge 3 2\ne 1 2\nc\ne 2 q\n",
           "b.edges": "a b 1\nb c 2\n\n\nc d y\n"}
    monkeypatch.setattr(mewcp.io, "CHUNK_BYTES", chunk)
    for name, text in texts.items():
        again = read(tmp_path / name)
        assert np.array_equal(again.to_dense(), whole[name].to_dense()) and again.labels == whole[name].labels
    for name, text in bad.items():
        with pytest.raises(ValueError, match=r", line 5: "):
            read(_put(tmp_path, name, text))


def test_fortran_order_npy(tmp_path: Path) -> None:
    w = np.asfortranarray(np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0.0]]))
    np.save(tmp_path / "f.npy", w)
    assert np.array_equal(read(tmp_path / "f.npy").dense, w)


def test_write_is_atomic_and_keeps_the_usual_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    w = np.array([[0, 1.0], [1.0, 0]])
    path = tmp_path / "w.txt"
    write(w, path, k=1)
    before = path.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write(np.array([[0, 5.0], [5.0, 0]]), path, k=1)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["w.txt"]


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


_FUZZ = [b"3 2\n0 1 1\n0 2 2\n1 2 3\n", b"c x\np edge 4 3\ne 1 2 5\ne 2 3 1.5\ne 3 4 2\n", b"a b 1\nb c 2\n",
         b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }"]


@settings(max_examples=150)
@given(seed=st.sampled_from(_FUZZ), cut=st.integers(0, 200), junk=st.binary(max_size=40),
       fmt=st.sampled_from([None, "mdplib", "dimacs", "edgelist", "npy"]))
def test_fuzzed_files_give_a_problem_or_one_value_error(tmp_path_factory: pytest.TempPathFactory, seed: bytes,
                                                         cut: int, junk: bytes, fmt: str | None) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.dat"
    path.write_bytes(seed[:cut] + junk + seed[cut:])
    start = time.perf_counter()
    try:
        p = read(path, format=fmt)
    except ValueError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
    else:
        assert p.n >= 1 and np.isfinite(p.to_dense()).all()
    assert time.perf_counter() - start < 5


def test_mdplib_fast_path_reads_every_shipped_file_as_numpy_parses_it() -> None:
    """The reader's fast path (`mewcp.kernels.parse`) gives the matrix np.loadtxt's numbers give."""
    for r in MDP_ROWS:
        path = INSTANCES / r["file"]
        rows = np.loadtxt(path, skiprows=1, ndmin=2)
        n = int(r["n"])
        w = np.zeros((n, n))
        i, j = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
        w[i, j] = w[j, i] = rows[:, 2]
        assert np.array_equal(read(path).to_dense(), w), r["file"]


def test_parse_triples_agrees_with_python_or_gives_up() -> None:
    """Plain decimal numbers convert exactly as ``float`` does; anything else gives up (-1)."""
    from mewcp.kernels.parse import parse_triples

    def parse(text: bytes) -> tuple[int, np.ndarray, np.ndarray]:
        ij, d = np.zeros((text.count(b"\n") + 1, 2), dtype=np.int64), np.zeros(text.count(b"\n") + 1)
        return parse_triples(np.frombuffer(text, dtype=np.uint8), ij, d), ij, d

    rng = random.Random(0)
    tokens = [b"-0", b"0", b"0.1", b"-1.5e-3", b"123456789012345", b"9.99999999999999e22", b"1e-22", b"2E+5",
              b".5", b"5.", b"-.25", b"+7", b"0.000000000000000000001", b"3.14159265358979"]
    tokens += [f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 8)}f}".encode() for _ in range(300)]
    for tok in tokens:
        got, ij, d = parse(b"3\t14 " + tok + b"\r\n")
        assert got == 1 and ij[0].tolist() == [3, 14], tok
        assert d[0] == float(tok) and np.signbit(d[0]) == np.signbit(float(tok)), tok
    for bad in [b"0 1 1_0\n", b"0 1 inf\n", b"0 1 nan\n", b"+0 1 2\n", b"0 1 2 3\n", b"0 1\n", b"\n", b"0 1 2",
                b"0 1 1.0000000000000001\n", b"0 1 3.141592653589793\n", b"0 1 1e23\n", b"0 1 1e\n", b"0 1 .\n", b"0 1 2\x0b\n", b"0 1 -\n"]:
        assert parse(bad)[0] == -1, bad
