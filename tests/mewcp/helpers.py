"""Plain-Python references the numba kernels and solvers are checked against."""

from __future__ import annotations

import itertools

import numpy as np


def random_symmetric(n: int, rng: np.random.Generator, *, negative: bool = False) -> np.ndarray:
    """A dense symmetric matrix with a zero diagonal and (almost surely) no ties."""
    w = rng.normal(size=(n, n)) if negative else rng.uniform(0, 10, size=(n, n))
    w = np.triu(w, 1)
    return w + w.T


def random_graph(n: int, density: float, rng: np.random.Generator, *, negative: bool = False) -> np.ndarray:
    """A weighted adjacency matrix with zero for non-edges, plus its boolean edge mask."""
    w = random_symmetric(n, rng, negative=negative)
    mask = np.triu(rng.uniform(size=(n, n)) < density, 1)
    mask = mask | mask.T
    return w * mask, mask


def ehgp_reference(w: list[list[float]]) -> tuple[list[int], list[float]]:
    """The SIRFP paper's Algorithm 1 verbatim: sums, then repeated delete-least and update.

    Ties go to the lowest index (a strict ``s_q > s_i`` comparison scanning upward).
    """
    n = len(w)
    s = []
    for i in range(n):
        acc = 0.0
        for j in range(n):
            if j != i:
                acc += w[i][j]
        s.append(acc)
    k = 0
    for i in range(n):
        if s[k] > s[i]:
            k = i
    removed = [False] * n
    order, scores = [], []
    for _ in range(n - 1):
        order.append(k)
        scores.append(s[k])
        removed[k] = True
        q = None
        for i in range(n):
            if removed[i]:
                continue
            s[i] -= w[i][k]
            if q is None or s[q] > s[i]:
                q = i
        k = q
    order.append(k)
    scores.append(0.0)
    return order, scores


def best_clique_reference(w: np.ndarray, mask: np.ndarray | None, k: int, exact: bool) -> float:
    """Heaviest clique weight by itertools enumeration; -inf when none exists."""
    n = w.shape[0]
    best = -np.inf
    sizes = [k] if exact else range(1, k + 1)
    for size in sizes:
        for c in itertools.combinations(range(n), size):
            pairs = list(itertools.combinations(c, 2))
            if mask is not None and not all(mask[i, j] for i, j in pairs):
                continue
            best = max(best, sum(w[i, j] for i, j in pairs))
    return best
