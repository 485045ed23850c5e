"""The command line: output, JSON, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mewcp
from mewcp.cli import main

INSTANCES = Path(__file__).resolve().parents[2] / "instances"
GKD = INSTANCES / "mdplib" / "GKD-b" / "GKD-b_1_n25_m2.txt"  # BKV 121.24863, m = 2


def test_solve_json_on_a_shipped_instance(capsys):
    assert main(["solve", str(GKD), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "feasible" and out["method"] == "ehgp" and out["k"] == 2
    assert len(out["nodes"]) == 2
    assert out["weight"] == pytest.approx(mewcp.objective(mewcp.read(GKD), out["nodes"]))
    assert out["runtime"] > 0


def test_solve_text_output(capsys):
    assert main(["solve", str(GKD), "--method", "brute"]) == 0
    out = capsys.readouterr().out
    assert "status    optimal" in out
    assert "weight    121.24863" in out
    assert "GKD-b_1_n25_m2 (n=25, complete, k=2, size=exact)" in out


def test_compare_reports_the_gap_to_the_best_known_value(capsys):
    assert main(["compare", str(GKD), "--best-known", "121.24863", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["method"]: r for r in out["results"]}
    assert rows["brute"]["gap_to_best_known"] == pytest.approx(0.0, abs=1e-9)
    assert rows["ehgp"]["gap_to_best_known"] >= -1e-9
    assert main(["compare", str(GKD), "--best-known", "121.24863"]) == 0
    assert "gap to best-known" in capsys.readouterr().out


def test_compare_shows_refusals(tmp_path, capsys):
    path = tmp_path / "big.npy"
    w = np.random.default_rng(0).uniform(size=(60, 60))
    np.save(path, (w + w.T) / 2)
    assert main(["compare", str(path), "-k", "30", "--time-limit", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "refused" in out and "method='brute' would enumerate" in out
    assert "ilp" in out


def test_no_solution_exits_1(tmp_path, capsys):
    path = tmp_path / "path.edges"
    path.write_text("0 1\n1 2\n2 3\n")
    assert main(["solve", str(path), "-k", "3", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "no_solution"


def test_bad_input_exits_2(tmp_path, capsys):
    assert main(["solve", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["solve", str(GKD), "-k", "99"]) == 2
    assert "k must be in [1, n] = [1, 25]; got 99" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["solve", str(GKD), "--method", "magic"])
    assert exc.value.code == 2
    names = ", ".join(repr(m.name) for m in mewcp.methods())
    assert f"argument --method: invalid choice: 'magic' (choose from {names})" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["solve", str(GKD), "--size", "huge"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["solve", str(GKD), "-k", "0"], "argument -k: must be a positive integer; got '0'"),
        (["solve", str(GKD), "-k", "two"], "argument -k: must be a positive integer; got 'two'"),
        (["solve", str(GKD), "--time-limit", "nan"],
         "argument --time-limit: must be a positive, finite number of seconds; got 'nan'"),
        (["compare", str(GKD), "--time-limit", "inf"],
         "argument --time-limit: must be a positive, finite number of seconds; got 'inf'"),
        (["solve", str(GKD), "--time-limit", "-1"],
         "argument --time-limit: must be a positive, finite number of seconds; got '-1'"),
        (["solve", str(GKD), "--seed", "-2"], "argument --seed: must be a non-negative integer; got '-2'"),
        (["compare", str(GKD), "--best-known", "nan"], "argument --best-known: must be a finite number; got 'nan'"),
        (["compare", str(GKD), "--best-known=-inf"],
         "argument --best-known: must be a finite number; got '-inf'"),
    ],
)
def test_bad_numbers_are_refused_by_the_parser(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    command = argv[0]
    assert capsys.readouterr().err == f"mewcp {command}: error: {message} (see mewcp {command} --help)\n"


def test_bad_values_exit_2_with_one_line(tmp_path, capsys):
    assert main(["compare", str(GKD), "-k", "26"]) == 2  # once, not refused by every method in turn
    assert capsys.readouterr().err == "mewcp: error: k must be in [1, n] = [1, 25]; got 26\n"
    assert main(["solve", str(GKD), "--method", "tabu", "-O", "target=NaN"]) == 2
    assert capsys.readouterr().err == "mewcp: error: target must be a finite number or None; got nan\n"
    assert main(["solve", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"mewcp: error: cannot read {tmp_path}: Is a directory\n"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"mewcp {mewcp.__version__}\n"


def test_help_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["solve", "--help"])
    out = capsys.readouterr().out
    assert "{" + ",".join(m.name for m in mewcp.methods()) + "}" in out
    assert "{mdplib,dimacs,edgelist,npy}" in out and "{exact,at_most}" in out


def test_methods_lists_availability(capsys):
    assert main(["methods", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["ehgp"]["available"] is True
    assert {r["kind"] for r in rows.values()} == {"heuristic", "proven"}
    assert rows["ehgp"]["kind"] == "heuristic" and rows["bnb"]["kind"] == rows["brute"]["kind"] == "proven"
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["ehgp", "heuristic"]
    assert any(line.split()[:2] == ["bnb", "proven"] for line in lines)


def test_module_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "mewcp", "solve", str(GKD), "--json"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["size"] == 2


def test_method_options_and_json_fields(capsys):
    assert main(["solve", str(GKD), "--method", "tabu", "-O", "patience=3", "-O", "start=random", "--seed", "1",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["size_mode"] == "exact" and out["size"] == 2 and out["method"] == "tabu"
    assert main(["solve", str(GKD), "--method", "tabu", "-O", "bogus=1"]) == 2
    assert "unknown option 'bogus' for method 'tabu'; its options are: start, tenure" in capsys.readouterr().err
    assert main(["solve", str(GKD), "-O", "novalue"]) == 2
    assert "--option must be NAME=VALUE; got 'novalue'" in capsys.readouterr().err


def test_compare_stops_at_the_best_known_value(capsys):
    assert main(["compare", str(GKD), "--best-known", "121.24863", "--time-limit", "30", "--json"]) == 0
    rows = {r["method"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    # k = 2: the best-known value is the heaviest edge, so reaching it also reaches the upper
    # bound, the stronger stop (checked first)
    assert rows["tabu"]["message"] == "reached the upper bound 121.24863 on any clique's weight: optimal"
    assert rows["tabu"]["status"] == "optimal" and rows["tabu"]["runtime"] < 5


def test_a_heuristic_certified_optimal_reports_its_bound_and_exits_0(tmp_path, capsys):
    path = tmp_path / "w3.npy"
    np.save(path, np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0.0]]))
    assert main(["solve", str(path), "-k", "2", "--method", "tabu", "--time-limit", "1e9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["weight"], out["bound"], out["gap"]) == ("optimal", 5.0, 5.0, 0.0)
    assert out["message"] == "reached the upper bound 5 on any clique's weight: optimal"
    assert main(["solve", str(path), "-k", "2", "--method", "pls", "--time-limit", "1e9"]) == 0
    text = capsys.readouterr().out
    assert "status    optimal" in text and "bound     5 (gap 0.000%)" in text


def test_ilp_json_output_is_clean():
    pytest.importorskip("highspy")
    done = subprocess.run(
        [sys.executable, "-m", "mewcp", "solve", str(GKD), "--method", "ilp", "--json"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)  # nothing but the JSON object on stdout (no solver banner)
    assert out["status"] == "optimal" and out["weight"] == pytest.approx(121.24863)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/dev/zero", "mewcp: error: /dev/zero, line 1: longer than 1,048,576 bytes (not a text instance file)"),
        ("DIR", "mewcp: error: cannot read DIR: Is a directory"),
        ("EMPTY", "mewcp: error: EMPTY: the file is empty"),
    ],
)
def test_hostile_files_exit_2_with_one_line_and_no_hang(tmp_path, target, message):
    (tmp_path / "empty.txt").write_bytes(b"")
    path = {"DIR": str(tmp_path), "EMPTY": str(tmp_path / "empty.txt")}.get(target, target)
    done = subprocess.run([sys.executable, "-m", "mewcp", "solve", path, "-k", "2"], capture_output=True,
                          text=True, check=False, timeout=60)  # a hang fails the test, not CI
    assert done.returncode == 2
    assert done.stderr == message.replace(target, path) + "\n" and done.stdout == ""


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60)
@given(option=st.sampled_from(["-k", "--time-limit", "--seed", "--format", "--size", "--method", "-O"]),
       value=st.sampled_from(["0", "-1", "nan", "inf", "1e400", "1_0", "", "2", "0.05", "x", "target=nan",
                              "tenure=0", "ehgp", "npy", "exact"]))
def test_any_option_value_exits_cleanly(option, value):
    """Every value ends in exit 0/1 or exit 2 with one line, never a traceback."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["solve", str(GKD), "--time-limit", "5", option, value])
        except SystemExit as exc:  # argparse
            code = exc.code
    assert code in (0, 1, 2)
    if code == 2:
        assert err.getvalue().rstrip("\n").splitlines()[-1].startswith(("mewcp: error: ", "mewcp solve: error: "))
        assert "Traceback" not in err.getvalue()


@pytest.mark.parametrize(("stdout", "message"), [
    ("/dev/full", "mewcp: error: cannot write the output: No space left on device"),
    (None, "mewcp: error: cannot write the output: standard output is closed"),
])
def test_an_output_that_cannot_be_written_exits_2_with_one_line(stdout, message):
    """Before: an OSError traceback from print() (/dev/full), or exit 0 with the report lost (closed stdout)."""
    if stdout is not None and not Path(stdout).exists():
        pytest.skip(f"{stdout} is not available here")
    with open(stdout or os.devnull, "w") as sink:
        done = subprocess.run(
            [sys.executable, "-m", "mewcp", "solve", str(GKD), "--json"], stdout=sink if stdout else None,
            stderr=subprocess.PIPE, text=True, check=False, timeout=120,
            **({} if stdout else {"preexec_fn": lambda: os.close(1)}),
        )
    assert done.returncode == 2
    assert done.stderr == message + "\n"
