"""Proven optima for negative-type (e.g. Euclidean) weights: a concave cutting-plane method.

Notes
-----
The problem: given a symmetric weight matrix ``W`` (zero diagonal) on a complete graph
and ``k``, maximise ``f(x) = 1/2 x^T W x = sum_{i<j} w_ij x_i x_j`` over binary ``x`` with
``sum(x) = k``.

``W`` is of *negative type* (conditionally negative definite) when ``v^T W v <= 0`` for
every ``v`` with ``sum(v) = 0``; equivalently the doubly centred matrix
``B = -1/2 J W J`` (``J = I - 11^T / n``) is positive semidefinite. Then ``f`` is concave
on the hyperplane ``sum(x) = k``, so for every point ``y`` of that hyperplane the tangent
``f(y) + (W y)^T (x - y) = (W y)^T x - f(y)`` lies above ``f`` there, and

    max f(x)  =  max theta  s.t.  theta <= (W y)^T x - f(y)  for all y,  sum(x) = k, x binary,

a MILP with ``n`` binaries and one continuous variable (outer approximation, Kelley's
method). The method solves it with HiGHS, adding tangents as it goes:

1. *Check*: the eigenvalues of ``B`` on the complement of the all-ones vector (``O(n^3)``).
   ``W`` qualifies when the smallest is ``>= -tol * largest``. Any residual negative
   curvature ``eps = max(0, -smallest)`` is paid for exactly: every tangent's right-hand
   side is lifted by ``2 k eps`` (``1/2 v^T W v <= 2 k eps`` for ``v = x - y``, ``|v|^2 <= 2k``),
   so every bound reported stays valid.
2. *Initial cuts* at several diverse heuristic solutions (one `tabu` run and
   `local_search` from random starts) and the bound ``theta <= 1/2 sum_i r_i x_i``,
   ``r_i`` the sum of row ``i``'s ``k - 1`` largest weights.
3. *Root LP cuts*: the LP relaxation is re-solved with a tangent at its (fractional)
   optimum until it stalls; the LP value is an upper bound.
4. *MILP rounds* (HiGHS 1.16 announces a lazy-constraint callback but never calls it,
   so this is "repeated outer approximation", Spiers, Bui & Loxton's ``repoa``): each
   round runs the MILP warm-started from the incumbent; a solution callback evaluates
   every candidate HiGHS finds, keeps the best true value, and interrupts the round once
   ``batch`` candidates overestimate ``f`` (``theta > f(x)``). Tangents at those are
   added and the next round starts. HiGHS's dual bound of every round (finished or not)
   is a valid upper bound; the run is optimal once the bound is within ``gap`` of the
   incumbent.

Which inputs qualify: exactly the negative-type matrices, i.e. (Schoenberg 1938) those
with ``w_ij = ||p_i - p_j||^2`` for some points ``p`` of a Euclidean space. That includes
Euclidean distances ``||a - b||`` and every power ``||a - b||^alpha`` with
``0 < alpha <= 2`` (so squared Euclidean distances *are* negative type), Manhattan
(L1) and Hamming distances, and ``L_p`` distances for ``1 <= p <= 2``. Chebyshev
distances in three or more dimensions, powers above 2, and generic weights (MDG, SOM)
are not. A negative-type matrix has no negative weight, so ``size="at_most"`` has the
optimum of ``size="exact"`` (adding a vertex never lowers the weight): it is solved
that way.

References
----------
.. [1] S. Spiers, H. T. Bui, R. Loxton, "An exact cutting plane method for the
   Euclidean max-sum diversity problem", European Journal of Operational Research 311
   (2023).
.. [2] J. E. Kelley, "The cutting-plane method for solving convex programs", Journal of
   the SIAM 8 (1960).
.. [3] I. J. Schoenberg, "Metric spaces and positive definite functions", Transactions
   of the AMS 44 (1938).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mewcp.problem import Problem
from mewcp.solution import Status
from mewcp.solvers.base import Deadline, SolverOutput
from mewcp.solvers.highs import new_highs, set_start

__all__ = ["NegativeType", "negative_type", "solve_cutting_plane"]

#: Default tolerance of the negative-type check, relative to the largest eigenvalue of B.
NEGATIVE_TYPE_RTOL = 1e-6
#: Share of the time limit the heuristic start may use.
HEURISTIC_SHARE = 0.1
#: Perturbations without improvement that end the tabu start (the cuts, not tabu, prove).
TABU_PATIENCE = 20


@dataclass(frozen=True)
class NegativeType:
    """The outcome of the negative-type check of a weight matrix.

    Attributes
    ----------
    ok : bool
        ``smallest >= -tol * max(largest, 0)``.
    smallest, largest : float
        Extreme eigenvalues of ``B = -1/2 J W J`` on the complement of the ones vector.
    tol : float
        The relative tolerance used.
    """

    ok: bool
    smallest: float
    largest: float
    tol: float

    @property
    def slack(self) -> float:
        """Curvature paid for in every cut: ``max(0, -smallest)`` plus rounding."""
        n_eps = 64 * np.finfo(float).eps * max(abs(self.largest), abs(self.smallest), 1.0)
        return max(0.0, -self.smallest) + n_eps


def negative_type(w: np.ndarray, tol: float = NEGATIVE_TYPE_RTOL) -> NegativeType:
    """Check that a symmetric, zero-diagonal ``w`` is of negative type.

    Parameters
    ----------
    w : ndarray, shape (n, n)
        Symmetric weights with a zero diagonal (``Problem.dense``).
    tol : float
        Accept eigenvalues of ``-1/2 J w J`` down to ``-tol`` times the largest one.

    Returns
    -------
    NegativeType

    Notes
    -----
    ``B = -1/2 J w J`` always has the eigenvector ``1`` with eigenvalue 0; adding
    ``(s / n) 11^T`` moves that eigenvalue to ``s`` and leaves the others, so the
    smallest eigenvalue of the shifted matrix (when below ``s``) is the smallest on
    ``1^perp``. Costs one symmetric eigendecomposition, ``O(n^3)``, on one BLAS thread.
    """
    n = w.shape[0]
    if n == 1:
        return NegativeType(True, 0.0, 0.0, tol)
    col = w.mean(axis=0)
    b = -0.5 * (w - col[None, :] - col[:, None] + col.mean())
    s = float(np.abs(b).sum(axis=1).max()) or 1.0  # >= every eigenvalue of b
    b += s / n
    with _one_blas_thread():
        eig = np.linalg.eigvalsh(b)
    # Drop the eigenvalue of the ones direction: the one closest to s (ties: any, they are equal).
    drop = int(np.argmin(np.abs(eig - s)))
    rest = np.delete(eig, drop)
    smallest, largest = float(rest[0]), float(rest[-1])
    return NegativeType(smallest >= -tol * max(largest, 0.0), smallest, largest, tol)


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """One BLAS thread for the eigendecomposition (threadpoolctl, the ``ilp`` extra).

    Threaded BLAS gains little at the sizes this method solves (0.1 s at n = 500 on one
    core) and loses 10-100x on an oversubscribed machine, where its threads spin-wait.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _proving_methods_for_any_weights() -> str:
    from mewcp.solve import methods  # late import: mewcp.solve imports this module

    names = [m.name for m in methods() if m.kind == "proven" and m.name not in ("cutting_plane", "brute")]
    return ", ".join(f"method={n!r}" for n in names) or "a method of kind 'proven'"


def _check_options(tol: Any, gap: Any, starts: Any, lp_rounds: Any, batch: Any, progress: Any) -> None:
    for name, value in (("tol", tol), ("gap", gap)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < 1):
            raise ValueError(f"{name} must be a number in [0, 1); got {value!r}")
    for name, value, low in (("starts", starts, 0), ("lp_rounds", lp_rounds, 0), ("batch", batch, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable taking one dict, or None; got {type(progress).__name__}")


class _Run:
    """The incumbent, the bound and the cut pool of one solve."""

    def __init__(self, w: np.ndarray, k: int, check: NegativeType, deadline: Deadline, gap: float,
                 progress: Callable[[dict[str, Any]], None] | None) -> None:
        self.w, self.k, self.n = w, k, w.shape[0]
        self.shift = 2.0 * max(check.smallest, 0.0)
        self.lift = 2.0 * k * check.slack
        self.deadline, self.gap, self.progress = deadline, gap, progress
        self.best: np.ndarray | None = None
        self.value = -math.inf
        self.bound = math.inf
        self.trace: list[tuple[float, float]] = []
        self.cut_keys: set[bytes] = set()
        self.rows: list[tuple[np.ndarray, float]] = []  # (gradient, rhs) not yet in the model
        self.n_cuts = 0
        self.stage = "start"

    def g(self, y: np.ndarray) -> float:
        """The concave function whose tangents are cut: ``f`` at binary points."""
        return 0.5 * float(y @ (self.w @ y)) + 0.5 * self.shift * float(y @ y - self.k)

    def f(self, x: np.ndarray) -> float:
        idx = np.flatnonzero(x > 0.5)
        return float(self.w[np.ix_(idx, idx)].sum()) / 2.0

    def offer(self, idx: np.ndarray) -> bool:
        """Record a k-set as a candidate incumbent; True when it improves."""
        idx = np.sort(np.asarray(idx, dtype=np.int64))
        value = float(self.w[np.ix_(idx, idx)].sum()) / 2.0
        if value > self.value:
            self.best, self.value = idx, value
            self.trace.append((self.deadline.elapsed(), value))
            self.report()
            return True
        return False

    def tighten(self, bound: float | None) -> None:
        if bound is not None and math.isfinite(bound) and bound < self.bound:
            self.bound = bound
            self.report()

    def scale(self) -> float:
        """``max(1, |incumbent|)``: what the relative gap is relative to."""
        return max(1.0, abs(self.value)) if self.best is not None else 1.0

    def done(self) -> bool:
        return self.best is not None and self.bound - self.value <= self.gap * self.scale()

    def report(self) -> None:
        if self.progress is not None:
            known = self.best is not None and math.isfinite(self.bound)
            gap = (self.bound - self.value) / self.scale() if known else None
            self.progress({"time": self.deadline.elapsed(), "stage": self.stage, "value": self.value,
                           "bound": self.bound, "gap": gap, "cuts": self.n_cuts})

    def cut_at(self, y: np.ndarray) -> bool:
        """Queue the tangent at a point ``y`` of the hyperplane (binary or fractional)."""
        key = np.round(y, 9).tobytes()
        if key in self.cut_keys:
            return False
        self.cut_keys.add(key)
        grad = self.w @ y + self.shift * y
        rhs = -0.5 * float(y @ (self.w @ y)) - 0.5 * self.shift * float(y @ y) - 0.5 * self.shift * self.k
        self.rows.append((grad, rhs + self.lift))
        self.n_cuts += 1
        return True


def _flush_cuts(h: Any, run: _Run) -> None:
    """Add the queued tangents ``theta - g^T x <= rhs`` to the model."""
    if not run.rows:
        return
    n = run.n
    m = len(run.rows)
    index = np.tile(np.arange(n + 1, dtype=np.int32), m)
    value = np.concatenate([np.append(-g, 1.0) for g, _ in run.rows])
    upper = np.array([rhs for _, rhs in run.rows])
    starts = np.arange(m, dtype=np.int32) * (n + 1)
    h.addRows(m, np.full(m, -np.inf), upper, index.size, starts, index, value)
    run.rows.clear()


def _heuristic_starts(problem: Problem, k: int, run: _Run, starts: int, seed: int | None) -> None:
    """Cuts at up to ``starts`` distinct heuristic solutions: tabu, then local search from random sets."""
    if starts == 0:
        return
    from mewcp.solve import solve  # late import: mewcp.solve imports this module

    budget = run.deadline.remaining() * (HEURISTIC_SHARE if run.deadline.limit is not None else 1.0)
    stop = run.deadline.elapsed() + budget
    base = 0 if seed is None else seed
    seen: set[bytes] = set()
    for i in range(4 * starts):
        left = stop - run.deadline.elapsed()
        if len(seen) >= starts or left <= 0:
            break
        limit = None if math.isinf(left) else left
        if i == 0:
            sol = solve(problem, k, "tabu", time_limit=limit, seed=base, patience=TABU_PATIENCE)
        else:
            sol = solve(problem, k, "local_search", time_limit=limit, seed=base + i, start="random")
        if not sol.found:
            continue
        key = np.asarray(sol.indices).tobytes()
        if key in seen:
            continue
        seen.add(key)
        run.offer(sol.indices)
        x = np.zeros(run.n)
        x[sol.indices] = 1.0
        run.cut_at(x)


def _build(run: _Run) -> Any:
    import highspy

    n, k, w = run.n, run.k, run.w
    h = new_highs(threads=1)  # HiGHS's MIP is serial; idle workers spin on a busy machine
    top = -np.sort(-w, axis=1)[:, : max(k - 1, 0)].sum(axis=1) if k > 1 else np.zeros(n)
    ub = 0.5 * float(np.sort(top)[::-1][:k].sum())
    h.addVars(n + 1, np.zeros(n + 1), np.append(np.ones(n), ub))
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.changeColCost(n, 1.0)
    cols = np.arange(n, dtype=np.int32)
    h.addRow(float(k), float(k), n, cols, np.ones(n))
    all_cols = np.arange(n + 1, dtype=np.int32)
    h.addRow(-np.inf, 0.0, n + 1, all_cols, np.append(-0.5 * top, 1.0))
    run.tighten(ub)
    return h


def _set_integrality(h: Any, n: int, integer: bool) -> None:
    import highspy

    kind = highspy.HighsVarType.kInteger if integer else highspy.HighsVarType.kContinuous
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.array([kind] * n))


def _time_option(h: Any, run: _Run) -> bool:
    """Hand HiGHS what is left of the time limit; False when nothing is."""
    left = run.deadline.remaining()
    if left <= 0:
        return False
    # HiGHS's clock runs on across run() calls on one object: its limit is cumulative.
    h.setOptionValue("time_limit", float(h.getRunTime() + left) if math.isfinite(left) else math.inf)
    return True


def _lp_phase(h: Any, run: _Run, rounds: int) -> None:
    """Kelley on the LP relaxation: tangents at fractional optima until the bound stalls."""
    import highspy

    _set_integrality(h, run.n, False)
    history: list[float] = []
    for _ in range(rounds):
        _flush_cuts(h, run)
        if not _time_option(h, run):
            break
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            break
        sol = np.asarray(h.getSolution().col_value)
        theta, y = float(sol[run.n]), np.clip(sol[: run.n], 0.0, 1.0)
        run.tighten(theta)
        history.append(theta)
        if theta - run.g(y) <= 0.1 * run.gap * max(1.0, abs(theta)):
            break  # the relaxation's bound is attained: no tangent helps the LP any more
        if len(history) > 5 and history[-6] - theta <= 1e-4 * max(1.0, abs(theta)):
            break  # stalled (Kelley's zigzag): leave the rest to branching
        y *= run.k / max(y.sum(), 1e-12)  # exactly on the hyperplane
        run.cut_at(y)
    _flush_cuts(h, run)
    _set_integrality(h, run.n, True)


def _milp_rounds(h: Any, run: _Run, batch: int) -> tuple[int, str]:
    """Repeated outer approximation; returns the rounds run and how the last one ended."""
    import highspy
    from highspy import cb

    n = run.n
    h.setOptionValue("mip_rel_gap", run.gap / 2)
    # MIP presolve finds nothing to reduce in dense tangent rows, yet can take seconds
    # without looking at the clock (measured: 14 s on 22 rows on a busy machine).
    h.setOptionValue("presolve", "off")
    h.setOptionValue("mip_abs_gap", 0.0)
    state: dict[str, Any] = {}

    def callback(kind: Any, message: str, out: Any, into: Any, user: Any) -> None:
        if kind == cb.HighsCallbackType.kCallbackMipSolution:
            sol = np.asarray(out.mip_solution[: n + 1])
            x = (sol[:n] > 0.5).astype(float)
            if x.sum() != run.k:
                return
            value = run.f(x)
            run.offer(np.flatnonzero(x))
            if sol[n] > value + 0.1 * run.gap * max(1.0, abs(value)) and run.cut_at(x):
                state["violated"] += 1
                if batch and state["violated"] >= batch:
                    state["stop"] = True
        elif kind == cb.HighsCallbackType.kCallbackMipInterrupt:
            # Always written: HiGHS keeps the flag from one run() to the next.
            into.user_interrupt = bool(state["stop"] or run.deadline.expired())
        elif kind == cb.HighsCallbackType.kCallbackSimplexInterrupt:
            into.user_interrupt = run.deadline.expired()  # HiGHS checks its clock too rarely in long LPs

    h.setCallback(callback, None)
    h.startCallback(cb.HighsCallbackType.kCallbackMipSolution)
    h.startCallback(cb.HighsCallbackType.kCallbackMipInterrupt)
    h.startCallback(cb.HighsCallbackType.kCallbackSimplexInterrupt)
    rounds, ended = 0, "time limit"
    while not run.done():
        _flush_cuts(h, run)
        if not _time_option(h, run):
            ended = "time limit"
            break
        if run.best is not None:  # warm start: the incumbent, with theta at its true value
            set_start(h, np.append(np.isin(np.arange(n), run.best).astype(float), run.value))
        state.update(violated=0, stop=False)
        rounds += 1
        run.stage = f"milp round {rounds}"
        h.run()
        status = h.getModelStatus()
        info = h.getInfo()
        if status == highspy.HighsModelStatus.kOptimal:
            run.tighten(float(info.mip_dual_bound))
            if state["violated"] == 0 and not run.rows:
                # HiGHS's optimum is not overestimated: its bound holds for f itself.
                ended = "optimal"
                break
            continue
        run.tighten(float(info.mip_dual_bound))
        if status == highspy.HighsModelStatus.kInterrupt:
            continue
        if status == highspy.HighsModelStatus.kTimeLimit:
            ended = "time limit"
            break
        ended = f"HiGHS stopped: {h.modelStatusToString(status)}"
        break
    else:
        ended = "optimal"
    h.stopCallback(cb.HighsCallbackType.kCallbackMipSolution)
    h.stopCallback(cb.HighsCallbackType.kCallbackMipInterrupt)
    h.stopCallback(cb.HighsCallbackType.kCallbackSimplexInterrupt)
    return rounds, ended


def solve_cutting_plane(problem: Problem, k: int, *, exact: bool, deadline: Deadline, seed: int | None,
                        tol: float = NEGATIVE_TYPE_RTOL, gap: float = 1e-6, starts: int = 8,
                        lp_rounds: int = 200, batch: int = 10,
                        progress: Callable[[dict[str, Any]], None] | None = None) -> SolverOutput:
    """The `cutting_plane` method (see the module notes).

    Options: ``tol`` (negative-type check, relative), ``gap`` (relative optimality gap),
    ``starts`` (heuristic solutions cut at first), ``lp_rounds`` (root LP tangent rounds),
    ``batch`` (overestimated candidates that end a MILP round; 0 = solve each round to
    optimality), ``progress`` (called with a dict of time, stage, value, bound, gap and
    cuts whenever the incumbent or the bound improves).
    """
    _check_options(tol, gap, starts, lp_rounds, batch, progress)
    if problem.dense is None:
        raise ValueError(
            f"method='cutting_plane' needs a complete graph (weights between every pair): the "
            f"outer approximation has no clique constraints; this graph has {problem.n_edges:,} of "
            f"{problem.n * (problem.n - 1) // 2:,} edges. Use {_proving_methods_for_any_weights()}"
        )
    w = problem.dense
    check = negative_type(w, tol)
    if not check.ok:
        raise ValueError(
            "method='cutting_plane' needs negative-type weights (Euclidean distances, or any "
            "conditionally negative definite matrix): it checked that the doubly centred matrix "
            f"-1/2 J W J (J = I - 11^T/n) is positive semidefinite up to tol = {tol:g} times its "
            f"largest eigenvalue ({check.largest:.6g}), but its smallest eigenvalue is "
            f"{check.smallest:.6g}. Use {_proving_methods_for_any_weights()}, which take any weights"
        )
    if not exact and problem.n > 1 and float(w.min()) < 0:
        raise ValueError(
            "method='cutting_plane' with size='at_most' needs non-negative weights (then the best "
            f"set has k vertices); this negative-type matrix has a weight {float(w.min()):.3g} < 0 "
            "(within the check's tolerance). Use size='exact'"
        )
    note = "" if exact else "; size='at_most' solved as size='exact' (no negative weight)"
    run = _Run(w, k, check, deadline, gap, progress)
    if k == 1 or k == problem.n:
        run.offer(np.arange(k))
        return SolverOutput(run.best, Status.OPTIMAL, bound=run.value, trace=run.trace,
                            message=f"every set of size {k} has the same weight{note}")
    if deadline.expired():
        return SolverOutput(None, Status.NO_SOLUTION, message="time limit reached during the negative-type check")
    run.stage = "heuristics"
    _heuristic_starts(problem, k, run, starts, seed)
    run.stage = "build"
    h = _build(run)
    rounds, ended = 0, "time limit"
    if not run.done() and not deadline.expired():
        run.stage = "root lp"
        _lp_phase(h, run, lp_rounds)
        if not run.done():
            rounds, ended = _milp_rounds(h, run, batch)
    if run.done():
        ended = "optimal"
    if run.best is None:
        return SolverOutput(None, Status.NO_SOLUTION, n_iter=rounds, trace=run.trace,
                            bound=run.bound if math.isfinite(run.bound) else None,
                            message=f"stopped ({ended}) before any solution{note}")
    status = Status.OPTIMAL if run.done() else Status.FEASIBLE
    if ended == "optimal" and status is Status.FEASIBLE:
        ended = (f"converged, but the cuts' allowance for negative curvature (2 k eps = {run.lift:.3g}) "
                 "keeps the gap open")
    gap_now = (run.bound - run.value) / max(1.0, abs(run.value))
    message = (f"{'optimal' if status is Status.OPTIMAL else 'stopped: ' + ended}: {run.n_cuts} tangent cuts, "
               f"{rounds} MILP rounds, bound {run.bound:.10g}, gap {gap_now:.3g}; smallest eigenvalue "
               f"of -1/2 JWJ {check.smallest:.4g}{note}")
    return SolverOutput(run.best, status, n_iter=rounds, bound=run.bound, trace=run.trace, message=message)
