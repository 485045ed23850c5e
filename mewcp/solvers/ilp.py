"""The `ilp` method: an integer program solved by HiGHS (highspy), SciPy or CBC (PuLP).

Notes
-----
Variables: ``x_i`` in {0, 1} (vertex i chosen) and, per edge ``ij``, ``y_ij`` in
[0, 1] standing for ``x_i x_j``. Maximise ``sum_ij w_ij y_ij`` subject to

* ``sum_i x_i == k`` (``size="exact"``) or ``1 <= sum_i x_i <= k`` (``"at_most"``);
* ``x_i + x_j <= 1`` for every non-edge (the set is a clique);
* ``y_ij <= x_i`` and ``y_ij <= x_j`` where ``w_ij > 0`` (every edge with the strong
  formulation and ``size="exact"``), ``y_ij >= x_i + x_j - 1`` only where
  ``w_ij < 0``: the objective pushes each ``y`` to its bound from the right side;
* ``formulation="strong"`` adds, for every vertex, ``sum_{j in N(i)} y_ij = (k - 1) x_i``
  (exact) or ``<= (k - 1) x_i`` (at most): a chosen vertex has exactly / at most
  ``k - 1`` chosen neighbours. With the equality, every ``y`` is the product of its
  ends in any integer solution and non-edges are implied, so they are left out of
  the strong exact model;
* ``formulation="strong"`` on a graph that is not complete also adds, for the colour
  classes ``I`` of a greedy colouring (independent sets), ``sum_{i in I} x_i <= 1``
  and, for every vertex i, ``sum_{j in N(i) ∩ I} y_ij <= x_i`` (a chosen vertex has
  at most one chosen neighbour per independent set): the rows that make the LP
  bound of a dense graph useful (measured: MANN_a9 at k = 10 is proven in under a
  second with them, not in 15 s without).

The strengthening is the clique-degree equality of the quadric knapsack literature
(see Hosseinian, Fontes, Butenko, Nardi 2017, the maximum edge weight clique
problem: formulations and solution approaches); measured here it cuts the solve
time of the shipped small instances many times over (``benchmarks/exact_solvers.py``).

Building and time limit. The model is built as sparse arrays (numpy, no per-row
Python) and handed whole to highspy (``backend="highs"``) or ``scipy.optimize.milp``;
PuLP, for CBC, is fed row by row with the clock checked between rows. The solver
gets what is left of the time limit after the start heuristic and the build. As
neither HiGHS (whose root cut separation does not look at the clock) nor CBC (a
separate program) holds a limit by itself, a limited run is done in a forked child
process, killed `KILL_GRACE` seconds past the deadline; HiGHS streams its improving
solutions and dual bounds to the parent, so a killed run still returns them. If the
limit runs out before the solver starts, the start is returned, FEASIBLE, with no
bound. The answer is never worse than the start (a short `tabu` run by default).

Status comes from what the backend proves: OPTIMAL only when optimality is proven
(PuLP's ``prob.sol_status``, not ``prob.status``, which says "Optimal" after a time
limit too), FEASIBLE when stopped with a solution, INFEASIBLE when no clique of the
size exists, NO_SOLUTION otherwise. HiGHS (both backends) reports a dual bound, so
``bound`` and ``gap`` are filled even when a time limit stops it.
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import os
import signal
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mewcp.problem import Problem
from mewcp.solution import Status
from mewcp.solvers.base import Deadline, SolverOutput
from mewcp.solvers.highs import dual_bound, new_highs, set_start

__all__ = ["BACKENDS", "FORMULATIONS", "ILP_MAX_ENTRIES", "build_model", "solve_ilp"]

BACKENDS = ("highs", "cbc", "scipy")
#: A time limit beyond this many seconds (about 32 years) runs unguarded, as no limit does: the pipe's
#: poll() takes at most about 9.2e9 s, and larger waits raise OverflowError.
UNBOUNDED_SECONDS = 1e9
FORMULATIONS = ("strong", "plain")
#: Largest model (variables + rows) `ilp` builds; beyond it the method refuses.
ILP_MAX_ENTRIES = 3_000_000
#: Seconds past the deadline after which a backend that has not answered is killed.
KILL_GRACE = 0.25


#: What a backend returns: chosen vertices, status, dual bound, message.
Answer = tuple[np.ndarray | None, Status, float | None, str]


@dataclass(frozen=True)
class Model:
    """A maximisation MILP ``max c.x  s.t.  lo <= A x <= hi,  0 <= x <= 1``.

    The first ``n`` columns are the binary ``x``; then one ``y`` per entry of
    ``edges`` (rows of ``(i, j)`` with ``i < j``).
    """

    c: np.ndarray
    a: sp.csr_array
    lo: np.ndarray
    hi: np.ndarray
    n: int
    edges: np.ndarray
    scale: float = 1.0  # the weights are ``scale * c`` (a power of two: exact); bounds are scaled back


#: Largest weight handed to a solver as it is: HiGHS treats costs of 1e20 and more as
#: infinite (a 3-vertex path with weights 1e20 was left unproven), so heavier weights are
#: divided by a power of two that brings the largest to [0.5, 1).
OBJECTIVE_MAX = 2.0**30


def _edge_list(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """Every edge once (i < j) and its weight."""
    if problem.dense is not None:
        i, j = np.triu_indices(problem.n, 1)
        return np.stack([i, j], 1), problem.dense[i, j]
    rows = np.repeat(np.arange(problem.n), np.diff(problem.indptr))
    keep = problem.indices > rows
    return np.stack([rows[keep], problem.indices[keep]], 1), problem.data[keep]


def _non_edges(problem: Problem) -> np.ndarray:
    """Every non-adjacent pair once (i < j); none on a complete graph."""
    if problem.dense is not None:
        return np.empty((0, 2), dtype=np.int64)
    adj = problem.adjacency()
    i, j = np.nonzero(np.triu(~adj, 1))
    return np.stack([i, j], 1)


def _greedy_colouring(problem: Problem) -> np.ndarray:
    """Colour classes (independent sets) by greedy sequential colouring, highest degree first."""
    n = problem.n
    colour = np.full(n, -1, dtype=np.int64)
    indptr, indices = problem.indptr, problem.indices
    for v in np.argsort(-np.diff(indptr), kind="stable"):
        used = colour[indices[indptr[v]:indptr[v + 1]]]
        taken = np.zeros(used.size + 2, dtype=bool)
        taken[used[(used >= 0) & (used < taken.size)]] = True
        colour[v] = int(np.argmin(taken))
    return colour


def build_model(problem: Problem, k: int, exact: bool, formulation: str) -> Model:
    """The MILP of the module notes as sparse arrays (shared by every backend)."""
    n = problem.n
    edges, w = _edge_list(problem)
    strong = formulation == "strong"
    if not (strong and exact):  # y is needed only where it can change the objective
        keep = w != 0
        edges, w = edges[keep], w[keep]
    with_non_edges = not (strong and exact)
    n_non_edges = n * (n - 1) // 2 - problem.n_edges if with_non_edges else 0
    size = n + len(edges) + 2 * len(edges) + n_non_edges + n  # checked before the non-edges are listed (n^2)
    if size > ILP_MAX_ENTRIES:
        raise ValueError(
            f"method='ilp' would build a model of about {size:,} rows and columns for n={n}, "
            f"{problem.n_edges:,} edges; its limit is {ILP_MAX_ENTRIES:,} (use a heuristic)"
        )
    non_edges = _non_edges(problem) if with_non_edges else np.empty((0, 2), dtype=np.int64)
    m = len(edges)
    y = n + np.arange(m)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    lo: list[np.ndarray] = []
    hi: list[np.ndarray] = []
    r = 0

    def add(rr: np.ndarray, cc: np.ndarray, vv: np.ndarray, low: np.ndarray, high: np.ndarray, count: int) -> None:
        nonlocal r
        rows.append(rr + r)
        cols.append(cc)
        vals.append(vv)
        lo.append(low)
        hi.append(high)
        r += count

    # cardinality
    add(np.zeros(n, dtype=np.int64), np.arange(n), np.ones(n), np.array([k if exact else 1.0]),
        np.array([float(k)]), 1)
    # y <= x_i, y <= x_j where the objective pushes y up (every edge in the strong exact model)
    up = np.flatnonzero(w > 0) if not (strong and exact) else np.arange(m)
    for end in (0, 1):
        t = np.arange(len(up))
        add(np.concatenate([t, t]), np.concatenate([y[up], edges[up, end]]),
            np.concatenate([np.ones(len(up)), -np.ones(len(up))]), np.full(len(up), -np.inf),
            np.zeros(len(up)), len(up))
    # y >= x_i + x_j - 1 where the objective pushes y down
    down = np.flatnonzero(w < 0)
    t = np.arange(len(down))
    add(np.concatenate([t, t, t]), np.concatenate([y[down], edges[down, 0], edges[down, 1]]),
        np.concatenate([np.ones(len(down)), -np.ones(len(down)), -np.ones(len(down))]),
        np.full(len(down), -1.0), np.full(len(down), np.inf), len(down))
    # non-edges
    t = np.arange(len(non_edges))
    add(np.concatenate([t, t]), non_edges.T.ravel(), np.ones(2 * len(non_edges)),
        np.full(len(non_edges), -np.inf), np.ones(len(non_edges)), len(non_edges))
    if strong:  # sum_{j in N(i)} y_ij - (k - 1) x_i  (= 0 exact, <= 0 at most)
        inc = np.concatenate([edges[:, 0], edges[:, 1]])
        add(np.concatenate([inc, np.arange(n)]), np.concatenate([y, y, np.arange(n)]),
            np.concatenate([np.ones(2 * m), np.full(n, -(k - 1.0))]),
            np.zeros(n) if exact else np.full(n, -np.inf), np.zeros(n), n)
    if strong and problem.dense is None:
        colour = _greedy_colouring(problem)
        q = int(colour.max()) + 1
        # a clique takes at most one vertex of each colour class: sum_{i in I} x_i <= 1
        big = np.flatnonzero(np.bincount(colour, minlength=q) >= 2)
        members = np.flatnonzero(np.isin(colour, big))
        add(np.searchsorted(big, colour[members]), members, np.ones(members.size),
            np.full(big.size, -np.inf), np.ones(big.size), big.size)
        # ... and a chosen vertex at most one chosen neighbour in each: sum_{j in N(i) ∩ I} y_ij <= x_i
        ends = np.concatenate([edges[:, 0], edges[:, 1]])
        other = np.concatenate([edges[:, 1], edges[:, 0]])
        key = ends * q + colour[other]
        uniq, group, count = np.unique(key, return_inverse=True, return_counts=True)
        keep = count[group] >= 2
        rows_id = np.unique(group[keep], return_inverse=True)[1]
        nrow = int(rows_id.max()) + 1 if rows_id.size else 0
        owner = np.zeros(nrow, dtype=np.int64)
        owner[rows_id] = ends[keep]
        add(np.concatenate([rows_id, np.arange(nrow)]),
            np.concatenate([np.concatenate([y, y])[keep], owner]),
            np.concatenate([np.ones(rows_id.size), -np.ones(nrow)]), np.full(nrow, -np.inf), np.zeros(nrow), nrow)
    a = sp.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, n + m))
    peak = float(np.abs(w).max()) if w.size else 0.0
    scale = 2.0 ** math.frexp(peak)[1] if peak > OBJECTIVE_MAX else 1.0
    c = np.concatenate([np.zeros(n), w / scale])
    return Model(c=c, a=a, lo=np.concatenate(lo), hi=np.concatenate(hi), n=n, edges=edges, scale=scale)


def _start_vector(model: Model, start: np.ndarray | None) -> np.ndarray | None:
    if start is None:
        return None
    x = np.zeros(model.n)
    x[start] = 1.0
    return np.concatenate([x, x[model.edges[:, 0]] * x[model.edges[:, 1]]])


def _chosen(values: np.ndarray | None, n: int) -> np.ndarray | None:
    if values is None:
        return None
    return np.flatnonzero(np.asarray(values[:n]) > 0.5)


def _solve_scipy(model: Model, time_limit: float | None) -> tuple[np.ndarray | None, Status, float | None, str]:
    from scipy.optimize import Bounds, LinearConstraint, milp

    integrality = np.concatenate([np.ones(model.n), np.zeros(len(model.c) - model.n)])
    options = {"disp": False} | ({"time_limit": time_limit} if time_limit is not None else {})
    res = milp(-model.c, integrality=integrality, bounds=Bounds(0, 1),
               constraints=LinearConstraint(model.a, model.lo, model.hi), options=options)
    bound = getattr(res, "mip_dual_bound", None)
    bound = None if bound is None or not np.isfinite(bound) else -float(bound)
    if res.status == 0:
        return _chosen(res.x, model.n), Status.OPTIMAL, bound, "optimal (scipy milp / HiGHS)"
    if res.status == 2:
        return None, Status.INFEASIBLE, None, "infeasible: no clique of that size (scipy milp / HiGHS)"
    if res.x is not None:
        return _chosen(res.x, model.n), Status.FEASIBLE, bound, f"stopped: {res.message}"
    return None, Status.NO_SOLUTION, bound, f"stopped without a solution: {res.message}"


def _pulp_solver(time_limit: float | None, warm: np.ndarray | None):  # noqa: ANN202
    """PuLP's CBC: the binary of the ``ilp`` extra (cbcbox), else the one PuLP bundles."""
    import pulp

    options = {"msg": False, "timeLimit": time_limit, "warmStart": warm is not None}
    if importlib.util.find_spec("cbcbox") is not None:  # the CBC binary of the `ilp` extra
        import cbcbox

        return pulp.COIN_CMD(path=cbcbox.cbc_bin_path(), **options)
    if "PULP_CBC_CMD" in pulp.listSolvers(onlyAvailable=True):  # PuLP 3.x's bundled CBC
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return pulp.PULP_CBC_CMD(**options)
    raise ImportError('backend=\'cbc\' needs the CBC binary; install it with pip install "mewcp[ilp]" (cbcbox)')


def _time_left(deadline: Deadline) -> float | None:
    """The solver's time limit: what is left of the solve's own (model building included)."""
    remaining = deadline.remaining()
    return None if remaining > UNBOUNDED_SECONDS else max(remaining, 0.01)


def _solve_highs(model: Model, deadline: Deadline, warm: np.ndarray | None,
                 report: Callable[[np.ndarray | None, float | None], None] | None = None) -> Answer:
    """The model's arrays handed to highspy as one column-wise matrix (no per-row Python).

    ``report(chosen, bound)`` is called with each improving solution and each new dual
    bound, so a run that must be stopped still has them.
    """
    import highspy

    h = new_highs()
    remaining = deadline.remaining()
    if np.isfinite(remaining):
        h.setOptionValue("time_limit", max(remaining, 0.01))
    csc = sp.csc_array(model.a)
    ncol = len(model.c)
    integrality = np.zeros(ncol, dtype=np.int32)
    integrality[: model.n] = int(highspy.HighsVarType.kInteger)
    h.passModel(ncol, csc.shape[0], csc.nnz, int(highspy.MatrixFormat.kColwise), int(highspy.ObjSense.kMaximize),
                0.0, np.asarray(model.c, dtype=np.float64), np.zeros(ncol), np.ones(ncol),
                np.asarray(model.lo, dtype=np.float64), np.asarray(model.hi, dtype=np.float64),
                csc.indptr.astype(np.int32), csc.indices.astype(np.int32), csc.data.astype(np.float64), integrality)
    if warm is not None:
        set_start(h, warm)
    if report is not None:
        last = [np.inf]

        def on_solution(event) -> None:  # noqa: ANN001
            report(_chosen(np.asarray(event.data_out.mip_solution), model.n), None)

        def on_progress(event) -> None:  # noqa: ANN001
            dual = float(event.data_out.mip_dual_bound)
            if np.isfinite(dual) and dual < last[0]:
                last[0] = dual
                report(None, dual)

        h.cbMipImprovingSolution.subscribe(on_solution)
        h.cbMipInterrupt.subscribe(on_progress)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    bound = dual_bound(info)
    has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
    values = np.asarray(h.getSolution().col_value) if has_sol else None
    name = h.modelStatusToString(status)
    if status == highspy.HighsModelStatus.kOptimal:
        return _chosen(values, model.n), Status.OPTIMAL, bound, "optimal (highspy)"
    if status == highspy.HighsModelStatus.kInfeasible:
        return None, Status.INFEASIBLE, None, "infeasible: no clique of that size (highspy)"
    if values is not None:
        return _chosen(values, model.n), Status.FEASIBLE, bound, f"stopped with a solution: {name} (highspy)"
    return None, Status.NO_SOLUTION, bound, f"stopped without a solution: {name} (highspy)"


def _solve_pulp(model: Model, backend: str, deadline: Deadline,
                warm: np.ndarray | None) -> tuple[np.ndarray | None, Status, float | None, str]:
    import pulp

    prob = pulp.LpProblem("mewcp", pulp.LpMaximize)
    xs = [prob.add_variable(f"x{i}", 0, 1, pulp.LpBinary) for i in range(model.n)]
    ys = [prob.add_variable(f"y{e}", 0, 1, pulp.LpContinuous) for e in range(len(model.edges))]
    var = xs + ys
    prob += pulp.LpAffineExpression([(var[j], float(v)) for j, v in enumerate(model.c) if v != 0])
    a = model.a
    for r in range(a.shape[0]):
        if r % 2048 == 0 and deadline.expired():
            return None, Status.NO_SOLUTION, None, f"time limit reached while building the PuLP model ({backend})"
        expr = pulp.LpAffineExpression(
            [(var[j], float(v)) for j, v in zip(a.indices[a.indptr[r]:a.indptr[r + 1]], a.data[a.indptr[r]:a.indptr[r + 1]])]
        )
        lo, hi = model.lo[r], model.hi[r]
        if lo == hi:
            prob += expr == float(lo)
        else:
            if np.isfinite(lo):
                prob += expr >= float(lo)
            if np.isfinite(hi):
                prob += expr <= float(hi)
    if warm is not None:
        for v, value in zip(var, warm):
            v.setInitialValue(float(value))
    solver = _pulp_solver(_time_left(deadline), warm)
    prob.solve(solver)
    values = np.array([v.varValue if v.varValue is not None else np.nan for v in var])
    bound = None  # CBC through PuLP reports no dual bound
    code = prob.sol_status
    found = not np.isnan(values[: model.n]).any()
    if code == pulp.LpSolutionOptimal:
        return _chosen(values, model.n), Status.OPTIMAL, bound, f"optimal (PuLP / {backend})"
    # CBC proves infeasibility through `status` and leaves sol_status at "no solution found"
    if code == pulp.LpSolutionInfeasible or (prob.status == pulp.LpStatusInfeasible
                                             and code != pulp.LpSolutionIntegerFeasible):
        return None, Status.INFEASIBLE, None, f"infeasible: no clique of that size (PuLP / {backend})"
    if code == pulp.LpSolutionIntegerFeasible and found:
        return _chosen(values, model.n), Status.FEASIBLE, bound, f"stopped with a solution (PuLP / {backend})"
    return None, Status.NO_SOLUTION, bound, f"stopped without a solution (PuLP / {backend})"


def _keep_start(start: np.ndarray | None, message: str) -> SolverOutput:
    if start is None:
        return SolverOutput(None, Status.NO_SOLUTION, message=message)
    return SolverOutput(np.sort(start), Status.FEASIBLE, message=message + "; the start set is returned")


def _bounded(solve: Callable[..., Answer], deadline: Deadline, *, reports: bool = False) -> Answer:
    """Run ``solve()`` in a forked child process killed ``KILL_GRACE`` s past the deadline.

    HiGHS does not look at its clock during root cut separation (seconds on a
    loaded machine) and CBC runs as a separate program, so a time limit passed to
    them does not hold by itself; killing the child's process group does. With
    ``reports``, ``solve(report)`` streams its improving solutions and dual bounds,
    and a killed run returns the last of them.
    """
    remaining = deadline.remaining()
    if remaining > UNBOUNDED_SECONDS or not hasattr(os, "fork"):  # beyond what the OS timers take: no limit
        return solve()
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child() -> None:
        os.setpgid(0, 0)  # its own group: CBC, started by PuLP, is killed with it
        if "highspy" in sys.modules:  # worker threads do not survive a fork: start afresh
            sys.modules["highspy"].Highs.resetGlobalScheduler(True)
        try:
            answer = solve(lambda chosen, bound: send.send(("report", (chosen, bound)))) if reports else solve()
            send.send(("ok", answer))
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, re-raised there
            send.send(("error", exc))

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    send.close()
    chosen, bound = None, None
    try:
        while receive.poll(max(0.0, deadline.remaining() + KILL_GRACE)):
            kind, value = receive.recv()
            if kind == "error":
                raise value
            if kind == "ok":
                return value
            chosen = value[0] if value[0] is not None else chosen
            bound = value[1] if value[1] is not None else bound
    except EOFError:  # the child died without answering
        pass
    finally:
        if proc.is_alive():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
        proc.join()
        receive.close()
    message = "the backend did not stop at the time limit and was stopped"
    return chosen, Status.FEASIBLE if chosen is not None else Status.NO_SOLUTION, bound, message


def solve_ilp(problem: Problem, k: int, *, exact: bool, deadline: Deadline, seed: int | None,
              start: np.ndarray | None, backend: str = "highs", formulation: str = "strong") -> SolverOutput:
    """The `ilp` method (see the module notes)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation must be 'strong' or 'plain'; got {formulation!r}")
    if backend == "highs" and importlib.util.find_spec("highspy") is None:
        raise ImportError('backend=\'highs\' needs highspy; install it with pip install "mewcp[ilp]"')
    if deadline.expired():
        return _keep_start(start, "time limit reached before the model was built")
    model = build_model(problem, k, exact, formulation)
    warm = _start_vector(model, start)
    if deadline.expired():
        chosen, status, bound, message = None, Status.NO_SOLUTION, None, "time limit reached while building the model"
    else:
        run = {
            "scipy": lambda: _solve_scipy(model, _time_left(deadline)),
            "highs": lambda report=None: _solve_highs(model, deadline, warm, report),
            "cbc": lambda: _solve_pulp(model, backend, deadline, warm),
        }[backend]
        chosen, status, bound, message = _bounded(run, deadline, reports=backend == "highs")
    if chosen is not None and chosen.size == 0:
        chosen, status = None, Status.NO_SOLUTION
    if start is not None and status in (Status.FEASIBLE, Status.NO_SOLUTION):
        if chosen is None or model.c @ _start_vector(model, chosen) < model.c @ warm:
            chosen, status = np.sort(start), Status.FEASIBLE
            message += "; the start set was not improved"
    if bound is not None:
        bound *= model.scale
    return SolverOutput(chosen, status, bound=bound, message=message)
