"""Fast path of the MDPLIB reader: lines ``i j d`` of plain decimal numbers, parsed in one pass.

`parse_triples` accepts only the common case — every line holds two unsigned decimal
integers and one decimal number (optional sign, fraction and exponent), separated by
spaces or tabs, ``\\n`` or ``\\r\\n`` line ends — and gives up on anything else (a blank
line, another byte, a number it cannot convert exactly), so the caller falls back to
its strict token parser, which then names the offending line. Numbers are converted
exactly as Python's ``float`` does: with at most 15 significant digits and a decimal
exponent within ±22, ``m * 10**e`` and ``m / 10**-e`` are single correctly rounded
operations on exact operands (Clinger 1990, the fast path of every correct
``strtod``); anything larger gives up.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Powers of ten that float64 holds exactly.
_POW10 = np.array([10.0**i for i in range(23)])


@njit(cache=True)
def _space(c):  # pragma: no cover
    return c == 32 or c == 9


@njit(cache=True)
def _unsigned(buf, p, most):  # pragma: no cover
    """The unsigned decimal integer at ``buf[p:]``: ``(value, end)``; ``end = -1`` past ``most`` digits."""
    n = buf.shape[0]
    start = p
    v = 0
    while p < n and 48 <= buf[p] <= 57:
        if p - start >= most:
            return 0, -1
        v = v * 10 + (buf[p] - 48)
        p += 1
    return v, p


@njit(cache=True)
def parse_triples(buf, ij, d):  # pragma: no cover
    """Parse ``buf`` (uint8, whole lines) into ``ij`` (int64, rows x 2) and ``d`` (float64).

    Returns the number of lines parsed, or -1 when the block is not of the simple form
    (or holds more lines than ``ij`` has rows); ``ij`` and ``d`` are then partly written.
    """
    n = buf.shape[0]
    p = 0
    row = 0
    while p < n:
        if row >= ij.shape[0]:
            return -1
        for col in range(2):  # two unsigned integers
            while p < n and _space(buf[p]):
                p += 1
            start = p
            v, p = _unsigned(buf, p, 18)
            if p <= start or p >= n or not _space(buf[p]):
                return -1
            ij[row, col] = v
        while p < n and _space(buf[p]):
            p += 1
        neg = False
        if p < n and (buf[p] == 43 or buf[p] == 45):
            neg = buf[p] == 45
            p += 1
        m = 0
        digits = 0  # significant digits kept in m
        exp10 = 0
        seen = 0  # digits before and after the point
        while p < n and 48 <= buf[p] <= 57:
            if m or buf[p] != 48:
                digits += 1
            m = m * 10 + (buf[p] - 48)
            seen += 1
            p += 1
        if p < n and buf[p] == 46:
            p += 1
            while p < n and 48 <= buf[p] <= 57:
                if m or buf[p] != 48:
                    digits += 1
                m = m * 10 + (buf[p] - 48)
                exp10 -= 1
                seen += 1
                p += 1
        if seen == 0 or digits > 15:
            return -1
        if p < n and (buf[p] == 101 or buf[p] == 69):
            p += 1
            eneg = False
            if p < n and (buf[p] == 43 or buf[p] == 45):
                eneg = buf[p] == 45
                p += 1
            start = p
            e, p = _unsigned(buf, p, 4)
            if p <= start:
                return -1
            exp10 += -e if eneg else e
        if exp10 > 22 or exp10 < -22:
            return -1
        value = m * _POW10[exp10] if exp10 >= 0 else m / _POW10[-exp10]
        d[row] = -value if neg else value
        while p < n and _space(buf[p]):
            p += 1
        if p < n and buf[p] == 13:
            p += 1
        if p >= n or buf[p] != 10:
            return -1
        p += 1
        row += 1
    return row
