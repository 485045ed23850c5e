"""Local search, iterated tabu search and a memetic algorithm.

Notes
-----
Two engines run every method here, chosen from the graph:

* complete graphs (when ``size="exact"``, or when no weight is negative, so that
  the best set has exactly k vertices) use swap moves only, with the gain vector
  ``g(v) = sum_{u in S} w_uv`` and no adjacency checks (`mewcp.kernels.swap`);
* every other graph uses clique-preserving ADD, SWAP and DROP moves on the CSR
  structure, with candidates drawn from the members' neighbourhoods, so no n^2
  memory (`mewcp.kernels.clique`).

`local_search` applies improving moves (best or first improvement) until none is
left. `tabu` is iterated tabu search: tabu search by best admissible swaps, found
in the constrained swap neighbourhood (Wu & Hao 2013), or on the multi-neighbourhood
of ADD/SWAP/DROP moves (Wu, Hao & Glover 2012), restarted when it stalls: on complete graphs from a backbone
child of two sets of an elite archive (see `solve_tabu`), otherwise from a random
vertex (Palubeckis 2007 perturbs the best set; measured, that stagnates at n = 2000).
`memetic` keeps a population improved by that tabu search; each
generation breeds a child that keeps both parents' common vertices (Wu & Hao 2013)
and an opposition-based child built from the vertices both parents left out
(Zhou, Hao & Duval 2017), and admits them by quality and distance to the pool.

Every method checks the time limit between bounded kernel calls (a few
milliseconds each), is reproducible for a given seed, and records each
improvement of its best value in ``trace``.

References
----------
.. [1] G. Palubeckis, "Iterated tabu search for the maximum diversity problem",
   Applied Mathematics and Computation 189 (2007).
.. [2] Q. Wu, J.-K. Hao, "A hybrid metaheuristic method for the maximum diversity
   problem", European Journal of Operational Research 231 (2013).
.. [3] Y. Zhou, J.-K. Hao, B. Duval, "Opposition-based memetic search for the
   maximum diversity problem", IEEE Trans. Evolutionary Computation 21 (2017).
.. [4] Q. Wu, J.-K. Hao, F. Glover, "Multi-neighborhood tabu search for the
   maximum weight clique problem", Annals of Operations Research 196 (2012).
"""

from __future__ import annotations

import math
import numbers
import time
from typing import Any

import numpy as np

from mewcp.kernels import clique as ck
from mewcp.solvers.greedy import solve_ehgp
from mewcp.kernels import pls as pk
from mewcp.kernels import rand
from mewcp.kernels import swap as sk
from mewcp.kernels.gains import set_gains
from mewcp.problem import Problem
from mewcp.solution import Status
from mewcp.solvers.base import Deadline, SolverOutput
from mewcp.solvers.brute import BRUTE_MAX_N, BRUTE_MAX_SUBSETS, brute_subset_count, solve_brute

__all__ = ["solve_local_search", "solve_memetic", "solve_pls", "solve_tabu"]

#: Wall-clock length a kernel call aims at, so the time limit is checked often.
CHUNK_SECONDS = 0.004


#: `memetic` breeds an opposition-based child every this many generations on complete
#: graphs by default (OBMA breeds one every generation). Such a child starts far from every
#: local optimum, so its tabu search costs about 2.4x a backbone child's moves, and on the
#: generated n = 2000 instance it joined the pool in 10-40% of generations. Measured
#: (benchmarks/memetic_tuning.py: moves to the reference, 20 seeds on three generated
#: instances, n = 1500-2000), every third generation took 0.69-0.81x the mean moves of every
#: generation and missed the reference within 10 s in 3 runs of 60 against 9; never breeding
#: one missed in 14 (the pool loses its diversity).
OPPOSITION_EVERY = 3


class _Chunks:
    """Iteration counts for kernel calls that each take about ``CHUNK_SECONDS``."""

    def __init__(self, first: int = 64) -> None:
        self.size = first
        self.t0 = 0.0

    def start(self) -> int:
        self.t0 = time.perf_counter()
        return self.size

    def done(self, iterations: int) -> None:
        spent = time.perf_counter() - self.t0
        if iterations >= self.size:  # only full chunks say how fast iterations are
            scale = CHUNK_SECONDS / max(spent, 1e-6)
            self.size = int(min(max(self.size * min(max(scale, 0.25), 4.0), 1), 1 << 22))


class _SwapEngine:
    """State of a swap search on a complete graph; the set always has k vertices."""

    #: `memetic`'s default opposition-child frequency here.
    opposition_every = OPPOSITION_EVERY

    def __init__(self, w: np.ndarray, k: int, rng: np.random.Generator, tenure: int | None,
                 max_stall: int | None, strength: int | None, weight_range: tuple[float, float]) -> None:
        n = w.shape[0]
        self.w, self.k, self.n, self.rng = w, k, n, rng
        self.w_min = weight_range[0]  # the least weight, for the tabu search's candidate windows
        self.tenure_out = tenure if tenure is not None else max(1, min(15, (n - k) // 4))
        self.tenure_in = max(1, int(0.7 * self.tenure_out)) if tenure is None else tenure
        self.tenure_in = min(self.tenure_in, max(1, k // 2))
        self.max_stall = max_stall if max_stall is not None else 2000
        self.strength = strength if strength is not None else max(2, k // 10)
        self.tabu_until = np.zeros(n, dtype=np.int64)
        self.it = 0

    def load(self, members: np.ndarray) -> None:
        """Make ``members`` the current set (filled greedily to k vertices if smaller)."""
        self.members = np.array(members, dtype=np.int64)
        if self.members.size < self.k:
            g = set_gains(self.w, self.members)
            g[self.members] = -np.inf
            extra = []
            for _ in range(self.k - self.members.size):
                v = int(np.argmax(g))
                extra.append(v)
                g += self.w[v]
                g[v] = -np.inf
            self.members = np.concatenate([self.members, np.array(extra, dtype=np.int64)])
        self.pos = np.full(self.n, -1, dtype=np.int64)
        self.pos[self.members] = np.arange(self.k)
        self.g = set_gains(self.w, self.members)
        self.value = sk.set_value(self.g, self.members)
        self.best, self.best_value, self.stall = self.members.copy(), self.value, 0
        self.tabu_until[:] = 0
        self.it = 0

    def random_start(self) -> np.ndarray:
        return sk.random_members(self.n, self.k, self.rng)

    def local(self, max_iters: int, first: bool) -> tuple[int, bool]:
        self.value, done, at_opt = sk.swap_local_search(
            self.w, self.members, self.pos, self.g, self.value, first, max_iters)
        if self.value > self.best_value:
            self.best, self.best_value = self.members.copy(), self.value
        return done, at_opt

    def tabu(self, max_iters: int) -> tuple[int, bool]:
        self.value, self.best_value, self.stall, done = sk.swap_tabu(
            self.w, self.members, self.pos, self.g, self.value, self.tabu_until, self.it, max_iters,
            self.best, self.best_value, self.stall, self.max_stall, self.tenure_out, self.tenure_in,
            self.w_min, self.rng)
        self.it += done
        return done, self.stall >= self.max_stall

    def perturb(self, members: np.ndarray) -> None:
        self.load(members)
        self.g, self.value = sk.perturb(self.w, self.members, self.pos, self.strength, self.rng)
        self.best, self.best_value = self.members.copy(), self.value

    def crossover(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return sk.backbone_crossover(self.w, a, b, self.rng)

    def opposite(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return sk.opposite_members(self.w, a, b, self.k, self.rng)


class _CliqueEngine:
    """State of an ADD/SWAP/DROP search over the cliques of a general graph."""

    #: `memetic` restarts from a random vertex every generation (its opposition-based child).
    opposition_every = 1

    def __init__(self, problem: Problem, k: int, exact: bool, rng: np.random.Generator,
                 tenure: int | None, max_stall: int | None) -> None:
        self.indptr, self.indices, self.data = _csr(problem)
        self.n, self.k, self.exact, self.rng = problem.n, k, exact, rng
        self.tenure = tenure if tenure is not None else max(3, min(30, self.n // 4))
        self.max_stall = max_stall if max_stall is not None else max(1000, 20 * k)
        self.tabu_until = np.zeros(self.n, dtype=np.int64)
        self.seen = np.zeros(self.n + 1, dtype=np.int64)
        self.it = 0

    def load(self, members: np.ndarray) -> None:
        (self.members, self.pos, self.adj, self.idsum, self.g, self.sums, self.size,
         self.value) = ck.build_state(self.indptr, self.indices, self.data,
                                      np.asarray(members, dtype=np.int64), self.k)
        self.best = np.empty(self.k, dtype=np.int64)
        self.best_size, self.best_value, self.stall = 0, -np.inf, 0
        if not self.exact or self.size == self.k:
            self.best_size, self.best_value = self.size, self.value
            self.best[: self.size] = self.members[: self.size]
        self.tabu_until[:] = 0
        self.it = 0

    def random_start(self) -> np.ndarray:
        return np.array([self.rng.integers(0, self.n)], dtype=np.int64)

    def _run(self, max_iters: int, use_tabu: bool) -> tuple[int, bool]:
        (self.size, self.value, self.best_size, self.best_value, self.stall, done,
         at_opt) = ck.clique_search(
            self.indptr, self.indices, self.data, self.members, self.pos, self.adj, self.idsum, self.g,
            self.sums, self.size, self.value, self.k, self.exact, use_tabu, not use_tabu,
            self.tabu_until, self.it, max_iters, self.best, self.best_size, self.best_value,
            self.stall, self.max_stall if use_tabu else np.iinfo(np.int64).max, self.tenure, self.seen,
            self.rng)
        self.it += done
        return done, at_opt

    def local(self, max_iters: int, first: bool) -> tuple[int, bool]:
        return self._run(max_iters, use_tabu=False)

    def tabu(self, max_iters: int) -> tuple[int, bool]:
        done, at_opt = self._run(max_iters, use_tabu=True)
        return done, at_opt or self.stall >= self.max_stall

    def perturb(self, members: np.ndarray) -> None:
        """Restart from a random vertex: cliques of a general graph sit in separate regions
        that small changes to the best clique do not reach (Wu, Hao & Glover 2012)."""
        self.load(self.random_start())

    def crossover(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        common = np.intersect1d(a, b)
        return common if common.size else self.rng.choice(np.union1d(a, b), 1)

    def opposite(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        outside = np.setdiff1d(np.arange(self.n), np.union1d(a, b), assume_unique=True)
        return self.rng.choice(outside if outside.size else np.arange(self.n), 1)

    @property
    def best_set(self) -> np.ndarray | None:
        return self.best[: self.best_size].copy() if self.best_size else None


def _csr(problem: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The graph as symmetric CSR (a complete graph is converted: n^2 memory)."""
    if problem.dense is None:
        return problem.indptr, problem.indices, problem.data
    n = problem.n
    rows, cols = np.nonzero(~np.eye(n, dtype=bool))
    indptr = np.arange(0, n * (n - 1) + 1, n - 1, dtype=np.int64)
    return indptr, cols.astype(np.int64), problem.dense[rows, cols]


def _engine(problem: Problem, k: int, exact: bool, seed: int | None, tenure: int | None = None,
            max_stall: int | None = None, strength: int | None = None) -> _SwapEngine | _CliqueEngine:
    rng = np.random.default_rng(seed)
    if problem.dense is not None and (exact or problem.weight_range()[0] >= 0.0):
        return _SwapEngine(problem.dense, k, rng, tenure, max_stall, strength, problem.weight_range())
    return _CliqueEngine(problem, k, exact, rng, tenure, max_stall)


def _best_set(engine: _SwapEngine | _CliqueEngine) -> np.ndarray | None:
    return engine.best_set if isinstance(engine, _CliqueEngine) else engine.best.copy()


#: Largest n for which the upper bound of a complete graph sorts its edge weights (`_upper_bound`):
#: that copies the n (n - 1) / 2 upper-triangle weights once, at most 16 MB (half the matrix) and
#: about 15 ms at n = 2000. Larger complete graphs take k (k - 1) / 2 times the heaviest weight,
#: with no copy (a benchmark holds the peak memory of n = 20000 to 1.1x the matrix); it is still
#: tight on constant weights.
DENSE_BOUND_MAX_N = 2000


def _upper_bound(problem: Problem, k: int, exact: bool) -> float | None:
    """An upper bound on the weight of every admissible clique, from the heaviest edge weights.

    A clique of k vertices has exactly m = k (k - 1) / 2 edges, so for ``size="exact"``
    the sum of the m heaviest weights (negative ones included when fewer are positive)
    bounds it; a clique of at most k vertices has at most m edges, so for ``"at_most"``
    the sum of the min(E, m) heaviest positive weights does (0 when none is positive: a
    single vertex weighs 0). O(E) with ``np.partition`` on a copy of the weights: the CSR
    data (each edge stored twice, so the 2m heaviest entries are summed and halved), or
    the upper triangle of a complete graph of at most ``DENSE_BOUND_MAX_N`` vertices;
    larger complete graphs take m times the heaviest weight. None when ``size="exact"``
    and the graph has fewer than m edges (no clique qualifies: nothing to bound).
    """
    m, n = k * (k - 1) // 2, problem.n
    if problem.dense is not None and n > DENSE_BOUND_MAX_N:
        hi = problem.weight_range()[1]
        return m * (hi if exact else max(hi, 0.0))
    if problem.dense is not None:
        rows = (problem.dense[i, i + 1:] for i in range(n - 1))
        vals, per_edge = np.concatenate([r if exact else r[r > 0.0] for r in rows]), 1
    else:
        data = problem.data
        vals, per_edge = data.copy() if exact else data[data > 0.0], 2
    if exact and vals.size < per_edge * m:
        return None
    top = per_edge * min(m, vals.size // per_edge)
    if top == 0:
        return 0.0
    vals.partition(vals.size - top)
    return float(vals[vals.size - top:].sum()) / per_edge


class _Incumbent:
    """The best set over a whole solve, its improvement trace and the stopping rules.

    ``bound`` (from `_upper_bound`) certifies the incumbent once it reaches it: the run
    then stops, and its output says OPTIMAL.
    """

    def __init__(self, deadline: Deadline, max_iters: int | None, target: float | None,
                 bound: float | None = None) -> None:
        self.deadline, self.max_iters, self.bound = deadline, max_iters, bound
        self.target = None if target is None else float(target)  # a Fraction, a numpy scalar: a float
        self.members: np.ndarray | None = None
        self.value = -np.inf
        self.trace: list[tuple[float, float]] = []
        self.iterations = 0

    def offer(self, members: np.ndarray | None, value: float) -> bool:
        """Keep ``members`` if it beats the incumbent; record the improvement."""
        if members is None:
            return False
        if self.members is not None and value <= self.value + 1e-12 * (1.0 + abs(self.value)):
            return False
        self.members, self.value = np.array(members), value
        self.trace.append((self.deadline.elapsed(), float(value)))
        return True

    def at_bound(self) -> str | None:
        """Says so when the incumbent reaches the upper bound (the tolerance of `offer`): optimal."""
        if self.bound is None or self.members is None:
            return None
        if self.value < self.bound - 1e-12 * (1.0 + abs(self.bound)):
            return None
        return f"reached the upper bound {self.bound:.10g} on any clique's weight: optimal"

    def stop_reason(self) -> str | None:
        if (why := self.at_bound()) is not None:
            return why
        if self.target is not None and self.value >= self.target:
            return f"reached the target value {self.target:.10g}"
        if self.deadline.expired():
            return "time limit reached"
        if self.max_iters is not None and self.iterations >= self.max_iters:
            return f"iteration cap of {self.max_iters} reached"
        return None

    def output(self, reason: str) -> SolverOutput:
        """The answer; OPTIMAL (with the bound's message) whenever the incumbent reaches the bound."""
        status = Status.FEASIBLE if self.members is not None else Status.NO_SOLUTION
        if (why := self.at_bound()) is not None:
            status, reason = Status.OPTIMAL, why
        return SolverOutput(self.members, status, n_iter=self.iterations, trace=self.trace, message=reason)


def _certify_by_enumeration(problem: Problem, k: int, exact: bool, inc: _Incumbent, idle: int,
                            patience: int | None) -> SolverOutput | None:
    """The enumeration certificate of a run without patience, on an instance small enough.

    After ``DEFAULT_PATIENCE`` restarts, generations or cycles without improvement
    (``idle``), when `brute` would visit at most as many sets as the search has already
    made iterations (certifying costs no more than the work spent) and accepts the
    instance, enumerate every clique within the remaining time. Returns the better of
    the incumbent and the enumeration's answer as OPTIMAL (INFEASIBLE when no clique
    qualifies), or None: the conditions do not hold, or the time limit came first.
    """
    n, done = problem.n, inc.iterations
    # C(n, k) first: one binomial, where the count for "at_most" sums k of them
    if (patience is not None or idle < DEFAULT_PATIENCE or n > BRUTE_MAX_N or math.comb(n, k) > done
            or brute_subset_count(n, k, exact) > min(done, BRUTE_MAX_SUBSETS)):
        return None
    out = solve_brute(problem, k, exact=exact, deadline=inc.deadline, seed=None)
    n_iter = done + out.n_iter
    if out.status is Status.INFEASIBLE:
        return SolverOutput(None, Status.INFEASIBLE, n_iter=n_iter,
                            message=f"certified by enumerating every clique: {out.message}")
    if out.status is not Status.OPTIMAL:
        return None
    message = "certified optimal by enumerating every clique"
    searched = inc.value
    if inc.offer(out.indices, float(out.bound)):
        against = f"the search's {searched:.10g}" if math.isfinite(searched) else "none found by the search"
        message += f", which found a heavier one ({inc.value:.10g} against {against})"
    return SolverOutput(inc.members, Status.OPTIMAL, n_iter=n_iter, trace=inc.trace, message=message)


def _budget(chunks: _Chunks, inc: _Incumbent) -> int:
    size = chunks.start()
    if inc.max_iters is not None:
        size = max(1, min(size, inc.max_iters - inc.iterations))
    return size


def _trivial(problem: Problem, k: int, exact: bool) -> SolverOutput | None:
    """k == n on a complete graph: the only k-set (and, without negative weights, the heaviest
    set of at most k vertices), so optimal."""
    if problem.dense is not None and k == problem.n and (exact or problem.weight_range()[0] >= 0.0):
        return SolverOutput(np.arange(problem.n), Status.OPTIMAL, message="k == n: every vertex")
    return None


#: Restarts (tabu) or generations (memetic) without improvement after which a run with
#: neither a time limit nor an iteration cap stops, unless ``patience`` says otherwise.
DEFAULT_PATIENCE = 100
#: Largest ``tenure``, ``max_stall`` and ``strength``: the kernels hold them in int64 next to iteration numbers.
MAX_KERNEL_COUNT = 2**31 - 1


def _patience(patience: int | None, max_iters: int | None, target: Any, deadline: Deadline) -> int | None:
    """Validate the shared stopping options; None patience means DEFAULT_PATIENCE only for
    runs that nothing else would stop (no time limit, no iteration cap)."""
    _check_positive(max_iters=max_iters, patience=patience)
    _check_target(target)
    if patience is None and deadline.limit is None and max_iters is None:
        return DEFAULT_PATIENCE
    return patience


def _check_target(target: Any) -> None:
    if target is None:
        return
    if isinstance(target, bool) or not isinstance(target, numbers.Real):
        raise TypeError(f"target must be a finite number or None; got {type(target).__name__}")
    if not math.isfinite(target):
        raise ValueError(f"target must be a finite number or None; got {target!r}")


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{name} must be a positive integer or None; got {value!r}")


def _check_counts(**values: Any) -> None:
    """`_check_positive` for options the kernels receive as int64 (and add iteration numbers to)."""
    _check_positive(**values)
    for name, value in values.items():
        if value is not None and value > MAX_KERNEL_COUNT:
            raise ValueError(f"{name} must be a positive integer of at most {MAX_KERNEL_COUNT:,} or None; got {value!r}")


def solve_local_search(problem: Problem, k: int, *, exact: bool, deadline: Deadline, seed: int | None,
                       start: np.ndarray | None, strategy: str = "best", max_iters: int | None = None,
                       target: float | None = None) -> SolverOutput:
    """The `local_search` method: improving moves from ``start`` until a local optimum."""
    if strategy not in ("best", "first"):
        raise ValueError(f"strategy must be 'best' or 'first'; got {strategy!r}")
    _check_positive(max_iters=max_iters)
    _check_target(target)
    if (out := _trivial(problem, k, exact)) is not None:
        return out
    engine = _engine(problem, k, exact, seed)
    inc = _Incumbent(deadline, max_iters, target, _upper_bound(problem, k, exact))
    engine.load(start if start is not None else engine.random_start())
    inc.offer(_best_set(engine), engine.best_value)
    chunks = _Chunks()
    while (reason := inc.stop_reason()) is None:
        done, at_opt = engine.local(_budget(chunks, inc), strategy == "first")
        chunks.done(done)
        inc.iterations += done
        inc.offer(_best_set(engine), engine.best_value)
        if at_opt:
            reason = "local optimum"
            break
    return inc.output(reason)


def _tabu_to_stall(engine: _SwapEngine | _CliqueEngine, inc: _Incumbent, chunks: _Chunks) -> str | None:
    """Run the engine's tabu search until it stalls; returns a stop reason, or None when stalled."""
    while (reason := inc.stop_reason()) is None:
        done, stalled = engine.tabu(_budget(chunks, inc))
        chunks.done(done)
        inc.iterations += done
        inc.offer(_best_set(engine), engine.best_value)
        if stalled:
            return None
    return reason


def solve_tabu(problem: Problem, k: int, *, exact: bool, deadline: Deadline, seed: int | None,
               start: np.ndarray | None, tenure: int | None = None, max_stall: int | None = None,
               strength: int | None = None, patience: int | None = None, max_iters: int | None = None,
               target: float | None = None) -> SolverOutput:
    """The `tabu` method: iterated tabu search (perturb the best set whenever the search stalls).

    On complete graphs the restarts are backbone children of two members of an
    elite archive of the stalled runs' best sets (kept as the memetic's pool is;
    Wu & Hao 2013), after ``ELITE_SEEDS`` random sets and whenever the archive has
    refused ``ELITE_SIZE`` results in a row (a random set then brings new
    material). Perturbing the best set, and opposition-based children, stagnate on
    large instances (n = 2000, k = 200): the tabu search falls back into the best
    set's basin, or ends a stall depth from far below it (see docs/solver.md).
    """
    _check_counts(tenure=tenure, max_stall=max_stall, strength=strength)
    patience = _patience(patience, max_iters, target, deadline)
    if (out := _trivial(problem, k, exact)) is not None:
        return out
    engine = _engine(problem, k, exact, seed, tenure, max_stall, strength)
    inc = _Incumbent(deadline, max_iters, target, _upper_bound(problem, k, exact))
    engine.load(start if start is not None else engine.random_start())
    inc.offer(_best_set(engine), engine.best_value)
    chunks, idle, restarts, unchanged = _Chunks(), 0, 0, 0
    elite: list[tuple[np.ndarray, float]] = []
    while True:
        before = inc.value
        if (reason := _tabu_to_stall(engine, inc, chunks)) is not None:
            break
        idle = 0 if inc.value > before else idle + 1
        if patience is not None and idle >= patience:
            reason = f"{patience} perturbations in a row without improvement"
            break
        if (out := _certify_by_enumeration(problem, k, exact, inc, idle, patience)) is not None:
            return out
        restarts += 1
        if isinstance(engine, _SwapEngine):
            unchanged = 0 if _pool_admit(elite, engine.best, engine.best_value, ELITE_SIZE) else unchanged + 1
            if restarts <= ELITE_SEEDS or unchanged >= ELITE_SIZE:  # diverse sets for the archive
                unchanged = 0
                engine.load(engine.random_start())
                continue
            if len(elite) >= 2:  # a backbone child of two archive members (MAMDP)
                a, b = engine.rng.choice(len(elite), 2, replace=False)
                engine.load(engine.crossover(elite[a][0], elite[b][0]))
                continue
        engine.perturb(inc.members if inc.members is not None else engine.random_start())
    return inc.output(reason)


#: Largest `memetic` pool: admitting a child compares it with every member (O(pop_size^2 n)
#: per child: 44 ms at 256 members, n = 2000, k = 200, where a child's tabu search takes about
#: 20 ms); OBMA and MAMDP keep 10.
MAX_POP_SIZE = 256
#: Size of the elite archive of `tabu`'s restarts (complete graphs).
ELITE_SIZE = 10
#: Restarts from random sets that seed the archive.
ELITE_SEEDS = 4


def _pool_admit(pool: list[tuple[np.ndarray, float]], child: np.ndarray, value: float, capacity: int,
                beta: float = 0.6) -> bool:
    """Quality-and-distance pool update (OBMA): drop the member of least goodness score.

    Distance of a member: the least number of vertices it does not share with any
    other member. Goodness: ``beta`` times its normalised value plus ``1 - beta``
    times its normalised distance. A child identical to a member is ignored; one
    arriving while the pool has fewer than ``capacity`` members joins it; a child of
    least goodness is discarded. Returns whether the child joined the pool.
    """
    child = np.sort(child)
    if any(len(m) == len(child) and np.array_equal(m, child) for m, _ in pool):
        return False
    if len(pool) < capacity:
        pool.append((child, value))
        return True
    cand = pool + [(child, value)]
    vertices = np.unique(np.concatenate([m for m, _ in cand]))
    member = np.zeros((len(cand), vertices.size))  # member[i, j]: set i holds vertices[j]
    for i, (m, _) in enumerate(cand):
        member[i, np.searchsorted(vertices, m)] = 1.0
    sizes = member.sum(axis=1)
    apart = sizes[:, None] + sizes[None, :] - 2.0 * (member @ member.T)  # |A ^ B|, exact in float64
    np.fill_diagonal(apart, np.inf)
    dist = apart.min(axis=1)
    vals = np.array([v for _, v in cand])

    def norm(x: np.ndarray) -> np.ndarray:
        return (x - x.min()) / (x.max() - x.min() + 1.0)

    worst = int(np.argmin(beta * norm(vals) + (1 - beta) * norm(dist)))
    if worst == len(pool):
        return False
    pool[worst] = (child, value)
    return True


def solve_memetic(problem: Problem, k: int, *, exact: bool, deadline: Deadline, seed: int | None,
                  start: np.ndarray | None, pop_size: int = 10, opposition_every: int | None = None,
                  tenure: int | None = None, max_stall: int | None = None, patience: int | None = None,
                  max_iters: int | None = None, target: float | None = None) -> SolverOutput:
    """The `memetic` method: a pool improved by tabu search, backbone and opposition-based children.

    Each generation breeds a backbone child of two random pool members; every
    ``opposition_every``-th generation also an opposition-based child of the same parents
    (by default every ``OPPOSITION_EVERY``-th on complete graphs and every one on
    general graphs, where that child is a restart from a vertex neither parent holds:
    the clique search's main source of new regions). ``patience`` counts generations in a
    row without improvement, and improved starts while the pool fills.
    """
    _check_positive(opposition_every=opposition_every)
    _check_counts(tenure=tenure, max_stall=max_stall)
    if (isinstance(pop_size, bool) or not isinstance(pop_size, (int, np.integer))
            or not 2 <= pop_size <= MAX_POP_SIZE):
        raise ValueError(f"pop_size must be an integer from 2 to {MAX_POP_SIZE}; got {pop_size!r}")
    patience = _patience(patience, max_iters, target, deadline)
    if (out := _trivial(problem, k, exact)) is not None:
        return out
    engine = _engine(problem, k, exact, seed, tenure, max_stall)
    every = opposition_every if opposition_every is not None else engine.opposition_every
    inc = _Incumbent(deadline, max_iters, target, _upper_bound(problem, k, exact))
    chunks = _Chunks()
    pool: list[tuple[np.ndarray, float]] = []
    reason: str | None = None

    def improve(members: np.ndarray) -> str | None:
        engine.load(members)
        inc.offer(_best_set(engine), engine.best_value)
        why = _tabu_to_stall(engine, inc, chunks)
        best = _best_set(engine)
        if best is not None:
            _pool_admit(pool, best, engine.best_value, pop_size)
        return why

    first = start if start is not None else engine.random_start()
    attempts, stale = 0, 0  # stale: improved starts in a row without improvement
    while len(pool) < pop_size and reason is None:
        if attempts >= 3 * pop_size and (len(pool) >= 2 or patience is not None):
            break  # the search keeps landing on the same sets: breed what there is
        if patience is not None and stale >= patience:
            if len(pool) < 2:
                reason = f"{patience} improved starts in a row without improvement"
            break
        if (out := _certify_by_enumeration(problem, k, exact, inc, stale, patience)) is not None:
            return out  # fewer than two distinct sets to breed from, and no patience
        before = inc.value
        seed_set = first if attempts == 0 else engine.random_start()
        reason = improve(seed_set)
        attempts += 1
        if reason is None and len(pool) < pop_size and pool:
            reason = improve(engine.opposite(pool[-1][0], pool[-1][0]))
        stale = 0 if inc.value > before else stale + 1
    idle, generation = 0, 0
    while reason is None and len(pool) >= 2:
        before = inc.value
        a, b = engine.rng.choice(len(pool), 2, replace=False)
        pa, pb = pool[a][0], pool[b][0]
        reason = improve(engine.crossover(pa, pb))
        generation += 1
        if reason is None and generation % every == 0:
            reason = improve(engine.opposite(pa, pb))
        idle = 0 if inc.value > before else idle + 1
        if reason is None and patience is not None and idle >= patience:
            reason = f"{patience} generations in a row without improvement"
        if reason is None and (out := _certify_by_enumeration(problem, k, exact, inc, idle, patience)):
            return out
    return inc.output(reason or f"every one of {attempts} improved starts gave the same set")


#: PLS iterations per cycle of its three phases; ``patience`` counts cycles.
PLS_CYCLE = int(pk.PHASE_LENGTHS.sum())
#: Density (edges over vertex pairs) from which `pls` keeps C0 and C1 as bitsets, with the
#: adjacency rows as bitsets and a weight matrix: from it they take at most 1.3x the memory
#: of the CSR arrays (8.1 n^2 bytes against 16 bytes per stored entry: about equal at 0.5, less
#: above). Measured per iteration, 1.4-4x faster than the
#: complement lists they replaced on the shipped DIMACS graphs of density 0.5-0.9
#: (san200_0.9_1 1.4x, C125.9 1.7x, DSJC500.5 4.0x).
PLS_DENSE = 0.4
#: Seconds per entry allowed for the CSR copy `pls` makes of a complete graph (n (n - 1) entries): 36 million took
#: 1.3-3.6 s on a shared 2-core machine, so 1e-7 is generous. With less time left, `pls` answers with `ehgp`.
PLS_CSR_SECONDS = 1e-7


def solve_pls(problem: Problem, k: int, *, exact: bool, deadline: Deadline, seed: int | None,
              start: np.ndarray | None, patience: int | None = None, max_iters: int | None = None,
              target: float | None = None) -> SolverOutput:
    """The `pls` method: phased local search (Pullan 2006, 2008) with the cardinality bound.

    See `mewcp.kernels.pls` for the moves, phases, penalties and perturbations; graphs of
    density at least ``PLS_DENSE`` use its dense bookkeeping (bitsets and the weight
    matrix, which then take at most 1.3x the memory of the graph's CSR arrays). ``max_iters`` counts PLS iterations (one
    maximal clique, its plateau and a perturbation); ``patience`` counts cycles of the
    three phases (200 iterations) without improvement. A complete graph is searched as
    CSR (n^2 memory); the swap methods (`tabu`, `memetic`) are the ones for complete graphs.
    """
    patience = _patience(patience, max_iters, target, deadline)
    if (out := _trivial(problem, k, exact)) is not None:
        return out
    n = problem.n
    if problem.dense is not None and deadline.remaining() < PLS_CSR_SECONDS * n * (n - 1):
        # the n^2 copy would overrun the time limit: the greedy peel works on the matrix itself
        out = solve_ehgp(problem, k, exact=exact, deadline=deadline, seed=seed)
        out.message = (f"the time limit leaves no room for pls's CSR copy of a complete graph with n={n} "
                       f"({n * (n - 1):,} entries): ehgp's answer")
        return out
    indptr, indices, data = _csr(problem)
    if problem.dense is not None:
        w, adj = problem.dense, np.full((n, (n + 63) >> 6), np.uint64(2**64 - 1))  # every pair an edge
        adj[np.arange(n), np.arange(n) >> 6] ^= np.uint64(1) << (np.arange(n) & 63).astype(np.uint64)
        if n % 64:
            adj[:, -1] &= np.uint64((1 << (n % 64)) - 1)
    elif indptr[-1] >= PLS_DENSE * n * (n - 1):  # w and the bitsets: at most 1.3x the CSR arrays
        w, adj = pk.dense_structure(indptr, indices, data)
    else:
        w, adj = np.empty((0, 0)), np.empty((0, 0), dtype=np.uint64)
    w.flags.writeable = False  # one compiled signature whatever the storage
    adj.flags.writeable = False
    rs = rand.seed_state(seed)
    first = start if start is not None else np.array([rand.below(rs, n)], dtype=np.int64)
    members, pos, cnt, ids, g, bits, ctl = pk.start_state(
        indptr, indices, data, adj, w, np.asarray(first, dtype=np.int64), k)
    size, value = int(ctl[pk.SIZE]), float(g[members[: ctl[pk.SIZE]]].sum() / 2)
    inc = _Incumbent(deadline, max_iters, target, _upper_bound(problem, k, exact))
    best = np.empty(k, dtype=np.int64)
    best_value = -np.inf
    if not exact or size == k:
        best[:size], ctl[pk.BEST_SIZE], best_value = members[:size], size, value
        inc.offer(best[:size], best_value)
    penalty = np.zeros(n, dtype=np.int64)
    plateau = np.zeros(n, dtype=np.int64)
    mark = np.zeros(n, dtype=np.int64)
    stop_at = np.inf if target is None else float(target)
    chunks, idle, since = _Chunks(first=1), 0, 0  # one PLS iteration may be long: start small
    while (reason := inc.stop_reason()) is None:
        before = best_value
        value, best_value, done = pk.pls_search(
            indptr, indices, data, adj, w, members, pos, cnt, ids, g, bits, ctl, value, k, exact,
            penalty, plateau, mark, _budget(chunks, inc), best, best_value, stop_at, rs)
        chunks.done(done)
        inc.iterations += done
        if ctl[pk.BEST_SIZE]:
            inc.offer(best[: ctl[pk.BEST_SIZE]], best_value)
        since += done
        if best_value > before:
            idle, since = 0, 0
        elif since >= PLS_CYCLE:
            idle, since = idle + since // PLS_CYCLE, since % PLS_CYCLE
        if patience is not None and idle >= patience:
            reason = f"{patience} cycles of the three phases in a row without improvement"
            break
        if (out := _certify_by_enumeration(problem, k, exact, inc, idle, patience)) is not None:
            return out
        if done == 0:
            reason = "the clique holds every vertex"
            break
    return inc.output(reason)
