"""Bill Williams' fractals: local extremes confirmed by n bars on each side."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _strict_center_extreme(values: np.ndarray, n: int, sign: float) -> np.ndarray:
    """True where sign * values[i] strictly exceeds sign * each of the n values before and after it."""
    marked = np.zeros(len(values), dtype=bool)
    if len(values) < 2 * n + 1:
        return marked
    windows = sign * sliding_window_view(np.asarray(values, dtype=np.float64), 2 * n + 1)
    center = windows[:, n:n + 1]
    marked[n:len(values) - n] = np.all(center > windows[:, :n], axis=1) & np.all(center > windows[:, n + 1:], axis=1)
    return marked


def williams_fractals(high: np.ndarray, low: np.ndarray, n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) boolean masks of Williams fractals, strict on both sides.

    Up at bar i when high[i] > each of the n highs before and each of the n
    highs after; down when low[i] < each of the n lows on either side. A tie
    with any neighbour means no fractal, and a NaN never compares true. The
    first n bars lack a left side and the last n are not yet confirmed (a
    fractal is only known n bars later), so they are never marked.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return _strict_center_extreme(high, n, 1.0), _strict_center_extreme(low, n, -1.0)
