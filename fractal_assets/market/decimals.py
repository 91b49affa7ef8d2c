"""Decimal numbers that reach us as float64: finding the scale that makes them exact integers.

Trade prices and sizes are decimals (9663.07, 0.013). A column whose every
value is ``u / 10**s`` for an integer ``u`` can be handled as those integers,
exactly: the cold tier stores them as Parquet DECIMAL, and Roll's spread
computes price changes in them.
"""

from __future__ import annotations

import numpy as np

MAX_SCALE = 12
MAX_UNSCALED = 2**53
"""Larger integers are not exact doubles, so their division would round twice."""


SAMPLE = 4096
"""Values a scale is first looked for in; the whole column is then checked from that scale on."""


def exact_scale(values: np.ndarray) -> int | None:
    """The smallest scale ``s`` at which every value is ``u / 10**s`` for an integer
    ``|u| <= 2**53``, or None when there is none (e.g. 1/3, NaN).

    A sample's smallest scale is never more than the column's, so the column
    is checked from there: one pass over it where the sample tells the truth.
    """
    if not np.all(np.isfinite(values)):
        return None
    start = _smallest_scale(values[:: max(1, len(values) // SAMPLE)], 0)
    return None if start is None else _smallest_scale(values, start)


def _smallest_scale(values: np.ndarray, first: int) -> int | None:
    for scale in range(first, MAX_SCALE + 1):
        power = 10.0**scale
        unscaled = np.rint(values * power)
        if np.abs(unscaled).max(initial=0) > MAX_UNSCALED:
            return None
        if np.array_equal(unscaled / power, values):
            return scale
    return None


def unscaled(values: np.ndarray, scale: int) -> np.ndarray:
    """The integers ``u`` of values exact at ``scale`` (see :func:`exact_scale`)."""
    return np.rint(np.asarray(values, dtype=np.float64) * 10.0**scale).astype(np.int64)
