"""A counter-based random number generator whose whole state is one uint64 array slot.

Passing a `numpy.random.Generator` into a numba kernel costs about 20 microseconds per
call (numba types it in Python), and creating one from a seed about as much again;
kernels called thousands of times on sub-millisecond instances use this instead.

SplitMix64 (Steele, Lea & Flood 2014): the state advances by the golden-ratio constant
and each output is a bijective mix of it; it passes BigCrush. ``below(state, n)`` takes
the top 53 bits as a fraction of ``n`` (bias below ``n / 2**53``).

References
----------
.. [1] G. L. Steele, D. Lea, C. H. Flood, "Fast splittable pseudorandom number
   generators", OOPSLA 2014.
"""

from __future__ import annotations

import secrets

import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True)
def next_u64(state):  # pragma: no cover - compiled
    """The next 64-bit output; advances ``state[0]``."""
    z = state[0] + GOLDEN
    state[0] = z
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def below(state, n):  # pragma: no cover - compiled
    """A uniform integer in ``[0, n)`` (``n >= 1``)."""
    return np.int64(np.float64(next_u64(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0) * n)


def seed_state(seed: int | None) -> np.ndarray:
    """The one-slot state for ``seed`` modulo 2**64 (None: the operating system's entropy)."""
    value = secrets.randbits(64) if seed is None else seed % (1 << 64)
    return np.array([value], dtype=np.uint64)
