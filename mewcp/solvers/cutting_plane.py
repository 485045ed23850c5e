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
3. *Root LP cuts and fixing*: the LP relaxation is re-solved with a tangent at its
   (fractional) optimum until it stalls; the LP value is an upper bound. Its duals ``mu``
   (``mu >= 0``, ``sum(mu) = 1`` after scaling) give the Lagrangian bound
   ``f(x) <= sum_j mu_j (g_j^T x + c_j) = C + a^T x`` for every k-set ``x``; maximised
   over k-sets with ``x_j`` forced to 1 (or 0) it is a sort, and a vertex whose forced
   bound falls below the incumbent is fixed to 0 (or 1): no set that weighs at least the
   incumbent is removed, and the MILP shrinks to the free vertices (reduced-cost fixing
   made permanent across rounds, valid because every cut is a valid inequality).
   The sets left agree on the fixed vertices, so later tangents use the curvature of
   the free vertices ``F`` alone: ``lam_F``, the smallest eigenvalue of
   ``-1/2 J_F W_FF J_F``, is at least ``lam`` (about twice it on GKD instances).
4. *MILP rounds* (HiGHS 1.16 announces a lazy-constraint callback but never calls it,
   so this is "repeated outer approximation", Spiers, Bui & Loxton's ``repoa``): each
   round runs the MILP over the free vertices, warm-started from the incumbent; a
   solution callback evaluates every candidate HiGHS finds, keeps the best true value,
   and interrupts the round once ``batch`` candidates overestimate ``f``
   (``theta > f(x)``). Tangents at those, and at up to ``swaps`` 1-swap neighbours of
   each of them and of the incumbent that the cuts overestimate above the incumbent's
   value, are added; LP rounds and fixing run again; the next round starts. HiGHS's dual
   bound of every round (finished or not) is a valid upper bound; the run is optimal once
   the bound is within ``gap`` of the incumbent.

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
#: Seconds per n^3 the negative-type check's eigendecomposition takes at the least: 7e-11 measured on
#: one AMD EPYC core for n = 1000-4000 (1.8 s at n = 3000), so 2e-11 is a fast machine's. A time limit
#: shorter than that estimate ends the solve before the check (n = 20000 would take minutes).
CHECK_SECONDS_PER_N3 = 2e-11
#: Share of the time limit the heuristic start may use.
HEURISTIC_SHARE = 0.1
#: Root LP rounds stall when the last STALL_ROUNDS closed less than STALL_SHARE of the LP's gap.
STALL_ROUNDS, STALL_SHARE = 5, 0.01
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


def _check_options(tol: Any, gap: Any, starts: Any, lp_rounds: Any, batch: Any, swaps: Any, fixing: Any,
                   progress: Any) -> None:
    for name, value in (("tol", tol), ("gap", gap)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < 1):
            raise ValueError(f"{name} must be a number in [0, 1); got {value!r}")
    for name, value, low in (("starts", starts, 0), ("lp_rounds", lp_rounds, 0), ("batch", batch, 0),
                             ("swaps", swaps, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    if not isinstance(fixing, (bool, np.bool_)):
        raise TypeError(f"fixing must be True or False; got {fixing!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable taking one dict, or None; got {type(progress).__name__}")


class _Run:
    """The incumbent, the bound and the cut pool of one solve."""

    def __init__(self, w: np.ndarray, k: int, check: NegativeType, deadline: Deadline, gap: float,
                 progress: Callable[[dict[str, Any]], None] | None) -> None:
        self.w, self.k, self.n = w, k, w.shape[0]
        self.shift = self.shift_all = 2.0 * max(check.smallest, 0.0)
        self.lift = 2.0 * k * check.slack
        self.deadline, self.gap, self.progress = deadline, gap, progress
        self.best: np.ndarray | None = None
        self.value = -math.inf
        self.bound = math.inf
        self.trace: list[tuple[float, float]] = []
        self.cut_keys: set[bytes] = set()
        # The cut pool, theta <= g^T x + c for every k-set x; row 0 is the row-sum bound.
        top = -np.sort(-w, axis=1)[:, : max(k - 1, 0)].sum(axis=1) if k > 1 else np.zeros(self.n)
        self.pool_g: list[np.ndarray] = [0.5 * top]
        self.pool_c: list[float] = [0.0]
        self.n_cuts = 0
        #: -1 free, 0 or 1 fixed: every k-set the fixings remove weighs less than the incumbent.
        self.fixed = np.full(self.n, -1, dtype=np.int8)
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
        """Add the tangent at a point ``y`` of the hyperplane (binary or fractional) to the pool.

        With the free vertices' curvature when ``y`` agrees with the fixings (then so does
        ``x - y`` for every set ``x`` left), with the global one otherwise.
        """
        key = np.round(y, 9).tobytes()
        if key in self.cut_keys:
            return False
        self.cut_keys.add(key)
        agrees = np.all(np.abs(y[self.fixed >= 0] - self.fixed[self.fixed >= 0]) <= 1e-12)
        shift = self.shift if agrees else self.shift_all
        grad = self.w @ y + shift * y
        rhs = -0.5 * float(y @ (self.w @ y)) - 0.5 * shift * float(y @ y) - 0.5 * shift * self.k
        self.pool_g.append(grad)
        self.pool_c.append(rhs + self.lift)
        self.n_cuts += 1
        return True

    def restrict_curvature(self) -> None:
        """Strengthen later tangents with the curvature of the free vertices alone.

        Every set left has the fixed coordinates, so ``f`` only needs to be concave along
        ``v`` supported on the free set ``F`` with ``sum(v) = 0``; there ``v^T W v <=
        -2 lam_F |v|^2`` with ``lam_F`` the smallest eigenvalue of ``-1/2 J_F W_FF J_F``,
        at least the global one (a subspace of ``1^perp``). Only ever raised, less a
        rounding allowance; the cuts' lift for a tolerated negative eigenvalue stays.
        """
        free = np.flatnonzero(self.fixed < 0)
        if free.size < 3:
            return
        sub = negative_type(self.w[np.ix_(free, free)])
        rounding = sub.slack - max(0.0, -sub.smallest)
        self.shift = max(self.shift, 2.0 * (sub.smallest - rounding))

    def swap_cuts(self, idx: np.ndarray, limit: int) -> int:
        """Tangents at the ``limit`` free 1-swap neighbours of the k-set ``idx`` that the pool overestimates most.

        Only neighbours whose pool bound exceeds the incumbent (they keep the MILP from
        proving) and exceeds their own weight (a tangent there cuts them) qualify.
        """
        inside = idx[self.fixed[idx] < 0]
        mask = np.zeros(self.n, dtype=bool)
        mask[idx] = True
        outside = np.flatnonzero(~mask & (self.fixed < 0))
        if limit <= 0 or inside.size == 0 or outside.size == 0:
            return 0
        x = mask.astype(float)
        c = self.w @ x
        # Weight of x - e_b + e_a for b inside, a outside.
        fy = 0.5 * float(x @ c) + c[outside][None, :] - c[inside][:, None] - self.w[np.ix_(inside, outside)]
        t = np.full(fy.shape, np.inf)
        for g, r in zip(self.pool_g, self.pool_c):
            np.minimum(t, float(g @ x) + r + g[outside][None, :] - g[inside][:, None], out=t)
        tol = 0.1 * self.gap * self.scale()
        t[(t <= self.value + self.gap * self.scale()) | (t <= fy + tol)] = -np.inf
        added = 0
        for flat in np.argsort(-t, axis=None)[:limit]:
            if not np.isfinite(t.flat[flat]):
                break
            b, a = divmod(int(flat), outside.size)
            y = x.copy()
            y[inside[b]], y[outside[a]] = 0.0, 1.0
            added += self.cut_at(y)
        return added

    def fix_by_duals(self, mu: np.ndarray) -> tuple[float, int]:
        """Lagrangian bound of the pool's first ``len(mu)`` cuts weighted by ``mu``, and the fixings it proves.

        For ``mu >= 0`` with ``sum(mu) = 1`` every k-set ``x`` allowed by the fixings has
        ``f(x) <= sum_j mu_j (g_j^T x + c_j) = C + a^T x``, so ``f <= C + a(F1) + (sum
        of the top k - |F1| free entries of a)``, and the same with ``x_j`` forced to 1
        (or 0) bounds every set with (without) ``j``: below the incumbent, ``j`` is fixed
        to 0 (to 1). Returns the bound (valid for the whole problem) and the new fixings.
        """
        mu = np.maximum(np.asarray(mu, dtype=float), 0.0)
        if mu.sum() <= 0:
            return math.inf, 0
        mu /= mu.sum()
        a = mu @ np.asarray(self.pool_g[: mu.size])  # mu weighs the pool's first rows
        base = float(mu @ np.asarray(self.pool_c[: mu.size])) + float(a[self.fixed == 1].sum())
        free = np.flatnonzero(self.fixed < 0)
        kk = self.k - int((self.fixed == 1).sum())
        if free.size == 0 or kk <= 0 or kk >= free.size:
            return math.inf, 0
        order = free[np.argsort(-a[free], kind="stable")]
        top = base + float(a[order[:kk]].sum())
        bound = max(top, self.value)
        # Rounding in the sums above: far below any gap that matters, kept out of the fixings.
        limit = self.value - 1e-9 * self.scale()
        without = top - a[order[:kk]] + a[order[kk]]  # x_j = 0 for j among the top kk
        with_ = top - a[order[kk - 1]] + a[order[kk:]]  # x_j = 1 for j outside them
        to_one, to_zero = order[:kk][without < limit], order[kk:][with_ < limit]
        if self.best is None:
            return bound, 0
        self.fixed[to_one], self.fixed[to_zero] = 1, 0
        return bound, int(to_one.size + to_zero.size)


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


class _Model:
    """The HiGHS MILP over the free vertices: ``max theta`` s.t. the pool's cuts, ``sum x_F = k - |F1|``."""

    def __init__(self, run: _Run) -> None:
        import highspy

        self.run = run
        self.cols = np.flatnonzero(run.fixed < 0)
        self.ones = np.flatnonzero(run.fixed == 1)
        self.kk = run.k - self.ones.size
        m = self.cols.size
        self.h = h = new_highs(threads=1)  # HiGHS's MIP is serial; idle workers spin on a busy machine
        # theta is capped at the known bound in MILP rounds only (it helps HiGHS there); in
        # the LP the cap would bind and leave the duals, which the fixing needs, at zero.
        h.addVars(m + 1, np.zeros(m + 1), np.append(np.ones(m), math.inf))
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        h.changeColCost(m, 1.0)
        h.addRow(float(self.kk), float(self.kk), m, np.arange(m, dtype=np.int32), np.ones(m))
        self.integrality(True)
        self.rows = 0  # the pool's first cuts already in the model (rows 1, 2, ...)
        self.flush()

    def flush(self) -> None:
        """Add the pool's new cuts, restricted to the free columns: ``theta - g_F^T x_F <= c + g(F1)``."""
        run, m = self.run, self.cols.size
        new = range(self.rows, len(run.pool_g))
        if not new:
            return
        g = np.asarray([run.pool_g[j] for j in new])
        upper = np.asarray([run.pool_c[j] for j in new]) + g[:, self.ones].sum(axis=1)
        value = np.hstack([-g[:, self.cols], np.ones((len(new), 1))]).ravel()
        index = np.tile(np.arange(m + 1, dtype=np.int32), len(new))
        starts = np.arange(len(new), dtype=np.int32) * (m + 1)
        self.h.addRows(len(new), np.full(len(new), -np.inf), upper, index.size, starts, index, value)
        self.rows = len(run.pool_g)

    def full(self, x_free: np.ndarray) -> np.ndarray:
        """The 0/1 vector over all vertices of a (rounded) solution over the free columns."""
        x = np.zeros(self.run.n)
        x[self.ones] = 1.0
        x[self.cols] = (np.asarray(x_free) > 0.5).astype(float)
        return x

    def warm_start(self) -> None:
        """The incumbent, with theta at its true value (skipped if the fixings exclude it)."""
        run = self.run
        if run.best is None:
            return
        x = np.zeros(run.n)
        x[run.best] = 1.0
        if np.any(x[self.ones] < 0.5) or x[self.cols].sum() != self.kk:
            return
        set_start(self.h, np.append(x[self.cols], run.value))

    def integrality(self, integer: bool) -> None:
        import highspy

        m = self.cols.size
        kind = highspy.HighsVarType.kInteger if integer else highspy.HighsVarType.kContinuous
        self.h.changeColsIntegrality(m, np.arange(m, dtype=np.int32), np.array([kind] * m))

    def time_option(self) -> bool:
        """Hand HiGHS what is left of the time limit; False when nothing is."""
        left = self.run.deadline.remaining()
        if left <= 0:
            return False
        # HiGHS's clock runs on across run() calls on one object: its limit is cumulative.
        self.h.setOptionValue("time_limit", float(self.h.getRunTime() + left) if math.isfinite(left) else math.inf)
        return True

    def lp(self) -> tuple[float, np.ndarray, np.ndarray] | None:
        """Solve the LP relaxation: (value, x over all vertices, the pool's row duals), or None."""
        import highspy

        self.flush()
        self.integrality(False)
        self.h.changeColBounds(self.cols.size, 0.0, math.inf)
        try:
            if not self.time_option():
                return None
            self.h.run()
            if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
            sol = self.h.getSolution()
            col = np.asarray(sol.col_value)
            x = np.zeros(self.run.n)
            x[self.ones] = 1.0
            x[self.cols] = np.clip(col[: self.cols.size], 0.0, 1.0)
            return float(col[self.cols.size]), x, np.abs(np.asarray(sol.row_dual)[1:])
        finally:
            self.integrality(True)


def _lp_rounds(model: _Model, run: _Run, rounds: int, fixing: bool) -> _Model:
    """Kelley on the LP relaxation, with fixing by its duals.

    Each round solves the LP (its value bounds the problem the fixings leave), fixes the
    vertices its Lagrangian bound proves (:meth:`_Run.fix_by_duals`; a smaller model when
    any are) and cuts at the fractional optimum, until the LP bound stalls (Kelley's
    zigzag), reaches its attained value, or ``rounds`` tangents were added. Returns the
    model to go on with.
    """
    history: list[float] = []
    added = 0
    while not run.done():
        got = model.lp()
        if got is None:
            break
        theta, y, mu = got
        run.tighten(max(theta, run.value))
        if fixing:
            bound, fixed = run.fix_by_duals(mu)
            run.tighten(bound)
            if fixed:
                run.restrict_curvature()
                model = _Model(run)
                if model.kk == 0 or model.kk == model.cols.size:  # one set left: the fixings decide it
                    x = model.full(np.ones(model.cols.size) if model.kk else np.zeros(model.cols.size))
                    run.offer(np.flatnonzero(x))
                    run.tighten(max(run.f(x), run.value))
                    break
                history.clear()
                continue
        history.append(theta)
        if added >= rounds or theta - run.g(y) <= 0.1 * run.gap * max(1.0, abs(theta)):
            break  # the relaxation's bound is attained: no tangent helps the LP any more
        if len(history) > STALL_ROUNDS and history[-STALL_ROUNDS - 1] - theta <= STALL_SHARE * (theta - run.value):
            break  # stalled (Kelley's zigzag): leave the rest to branching
        y *= run.k / max(y.sum(), 1e-12)  # exactly on the hyperplane
        added += run.cut_at(y)
    model.flush()
    return model


def _milp_round(model: _Model, run: _Run, batch: int) -> tuple[str, list[np.ndarray]]:
    """One MILP round: how it ended ("converged", "cuts added", "interrupted", "time limit", or
    HiGHS's status) and the overestimated candidates it met (their tangents are in the pool)."""
    import highspy
    from highspy import cb

    h, m = model.h, model.cols.size
    h.setOptionValue("mip_rel_gap", run.gap / 2)
    # MIP presolve finds nothing to reduce in dense tangent rows, yet can take seconds
    # without looking at the clock (measured: 14 s on 22 rows on a busy machine).
    h.setOptionValue("presolve", "off")
    h.setOptionValue("mip_abs_gap", 0.0)
    state: dict[str, Any] = {"violated": 0, "stop": False, "points": []}

    def callback(kind: Any, message: str, out: Any, into: Any, user: Any) -> None:
        if kind == cb.HighsCallbackType.kCallbackMipSolution:
            sol = np.asarray(out.mip_solution[: m + 1])
            x = model.full(sol[:m])
            if x.sum() != run.k:
                return
            value = run.f(x)
            idx = np.flatnonzero(x)
            run.offer(idx)
            if sol[m] <= value + 0.1 * run.gap * max(1.0, abs(value)) or not run.cut_at(x):
                return
            state["violated"] += 1
            state["points"].append(idx)
            if batch and state["violated"] >= batch:
                state["stop"] = True
        elif kind == cb.HighsCallbackType.kCallbackMipInterrupt:
            # Always written: HiGHS keeps the flag from one run() to the next.
            into.user_interrupt = bool(state["stop"] or run.deadline.expired())
        elif kind == cb.HighsCallbackType.kCallbackSimplexInterrupt:
            into.user_interrupt = run.deadline.expired()  # HiGHS checks its clock too rarely in long LPs

    model.flush()
    if not model.time_option():
        return "time limit", []
    h.changeColBounds(m, 0.0, run.bound if math.isfinite(run.bound) else math.inf)
    model.warm_start()
    h.setCallback(callback, None)
    for kind in (cb.HighsCallbackType.kCallbackMipSolution, cb.HighsCallbackType.kCallbackMipInterrupt,
                 cb.HighsCallbackType.kCallbackSimplexInterrupt):
        h.startCallback(kind)
    try:
        h.run()
    finally:
        for kind in (cb.HighsCallbackType.kCallbackMipSolution, cb.HighsCallbackType.kCallbackMipInterrupt,
                     cb.HighsCallbackType.kCallbackSimplexInterrupt):
            h.stopCallback(kind)
    status = h.getModelStatus()
    as_mip = h.getInfo().mip_node_count >= 0  # an LP solve reports a "dual bound" of 0
    if status == highspy.HighsModelStatus.kOptimal and not as_mip:
        raise RuntimeError("cutting_plane: HiGHS solved a MILP round as an LP (integrality lost)")
    dual = float(h.getInfo().mip_dual_bound)
    if as_mip and status in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kInterrupt,
                             highspy.HighsModelStatus.kTimeLimit) and math.isfinite(dual):
        run.tighten(max(dual, run.value))
    if status == highspy.HighsModelStatus.kOptimal:
        # Not overestimated at HiGHS's optimum: its bound holds for f itself.
        return ("converged" if state["violated"] == 0 else "cuts added"), state["points"]
    if status == highspy.HighsModelStatus.kInterrupt:
        return ("time limit" if run.deadline.expired() else "interrupted"), state["points"]
    if status == highspy.HighsModelStatus.kTimeLimit:
        return "time limit", state["points"]
    return f"HiGHS stopped: {h.modelStatusToString(status)}", state["points"]


def _milp_rounds(model: _Model, run: _Run, batch: int, swaps: int, lp_rounds: int,
                 fixing: bool) -> tuple[int, str]:
    """Repeated outer approximation; returns the rounds run and how the last one ended."""
    rounds, ended = 0, "time limit"
    while not run.done():
        if run.deadline.expired():
            ended = "time limit"
            break
        rounds += 1
        run.stage = f"milp round {rounds}"
        ended, points = _milp_round(model, run, batch)
        if ended == "converged" or ended == "time limit" or ended.startswith("HiGHS"):
            break
        if run.done():
            break
        for idx in [*points, run.best]:
            run.swap_cuts(idx, swaps)
        model = _lp_rounds(model, run, lp_rounds, fixing)
    if run.done():
        ended = "optimal"
    return rounds, ended


def solve_cutting_plane(problem: Problem, k: int, *, exact: bool, deadline: Deadline, seed: int | None,
                        tol: float = NEGATIVE_TYPE_RTOL, gap: float = 1e-6, starts: int = 8,
                        lp_rounds: int = 200, batch: int = 10, swaps: int = 20, fixing: bool = True,
                        progress: Callable[[dict[str, Any]], None] | None = None) -> SolverOutput:
    """The `cutting_plane` method (see the module notes).

    Options: ``tol`` (negative-type check, relative), ``gap`` (relative optimality gap),
    ``starts`` (heuristic solutions cut at first), ``lp_rounds`` (LP tangent rounds at the
    root and after each MILP round), ``batch`` (overestimated candidates that end a MILP
    round; 0 = solve each round to optimality), ``swaps`` (tangents at 1-swap neighbours
    per overestimated candidate), ``fixing`` (fix vertices by the LP's Lagrangian bound),
    ``progress`` (called with a dict of time, stage, value, bound, gap and
    cuts whenever the incumbent or the bound improves).
    """
    _check_options(tol, gap, starts, lp_rounds, batch, swaps, fixing, progress)
    if problem.dense is None:
        raise ValueError(
            f"method='cutting_plane' needs a complete graph (weights between every pair): the "
            f"outer approximation has no clique constraints; this graph has {problem.n_edges:,} of "
            f"{problem.n * (problem.n - 1) // 2:,} edges. Use {_proving_methods_for_any_weights()}"
        )
    w = problem.dense
    least = CHECK_SECONDS_PER_N3 * float(problem.n) ** 3
    if least > deadline.remaining():
        return SolverOutput(None, Status.NO_SOLUTION, message=(
            f"the time limit is too short for the negative-type check: an O(n^3) eigendecomposition, at least "
            f"about {least:.3g} s at n = {problem.n:,} (use time_limit=None or a longer limit, or a heuristic)"))
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
    top = run.pool_g[0]
    run.tighten(float(np.sort(top)[::-1][:k].sum()))
    model = _Model(run)
    rounds, ended = 0, "time limit"
    if not run.done() and not deadline.expired():
        run.stage = "root lp"
        model = _lp_rounds(model, run, lp_rounds, fixing)
        if not run.done():
            rounds, ended = _milp_rounds(model, run, batch, swaps, lp_rounds, fixing)
    if run.done():
        ended = "optimal"
    if run.best is None:
        return SolverOutput(None, Status.NO_SOLUTION, n_iter=rounds, trace=run.trace,
                            bound=run.bound if math.isfinite(run.bound) else None,
                            message=f"stopped ({ended}) before any solution{note}")
    status = Status.OPTIMAL if run.done() else Status.FEASIBLE
    if ended == "converged" and status is Status.FEASIBLE:
        ended = (f"converged, but the cuts' allowance for negative curvature (2 k eps = {run.lift:.3g}) "
                 "keeps the gap open")
    gap_now = (run.bound - run.value) / max(1.0, abs(run.value))
    n_fixed = int((run.fixed >= 0).sum())
    message = (f"{'optimal' if status is Status.OPTIMAL else 'stopped: ' + ended}: {run.n_cuts} tangent cuts, "
               f"{rounds} MILP rounds, {n_fixed} of {run.n} vertices fixed, bound {run.bound:.10g}, gap {gap_now:.3g}; smallest eigenvalue "
               f"of -1/2 JWJ {check.smallest:.4g}{note}")
    return SolverOutput(run.best, status, n_iter=rounds, bound=run.bound, trace=run.trace, message=message)
