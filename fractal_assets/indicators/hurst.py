"""Hurst exponent of a price series' log returns by rescaled range (R/S) or DFA-1."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

MIN_WINDOW_FLOOR = 4
"""Smallest window allowed: a line fitted through fewer points leaves almost no residual."""

SIZES_PER_OCTAVE = 4
"""Window sizes are spaced by a factor of about 2 ** (1/4) between min_window and max_window."""

ALP_GAMMA_LIMIT = 340
"""Above this n the Anis-Lloyd gamma ratio is replaced by 1 / sqrt(n pi / 2), as in Peters (1994)."""


def log_returns(closes: np.ndarray) -> np.ndarray:
    """log(close_t / close_{t-1}); ValueError when a close is not positive and finite."""
    closes = np.asarray(closes, dtype=np.float64)
    if not np.all(np.isfinite(closes) & (closes > 0)):
        raise ValueError("closes must be positive and finite to take log returns")
    return np.diff(np.log(closes))


def window_sizes(n_returns: int, min_window: int = 8, max_window: int | None = None) -> np.ndarray:
    """Distinct integer window sizes, log-spaced from min_window to max_window (default n_returns // 2).

    Both ends are included, so there are always at least two sizes to fit a
    slope through. ValueError when min_window < 4, when there are fewer than
    2 * min_window returns, or unless min_window < max_window <= n_returns
    (with the default, 2 * min_window or 2 * min_window + 1 returns fail here).
    """
    if min_window < MIN_WINDOW_FLOOR:
        raise ValueError(f"min_window must be at least {MIN_WINDOW_FLOOR}, got {min_window}")
    if n_returns < 2 * min_window:
        raise ValueError(f"need at least 2 * min_window = {2 * min_window} returns, got {n_returns}")
    top = n_returns // 2 if max_window is None else max_window
    if not min_window < top <= n_returns:
        default = " (the default, half the returns: more data is needed)" if max_window is None else ""
        raise ValueError(f"max_window must be in ({min_window}, {n_returns}], got {top}{default}")
    count = int(SIZES_PER_OCTAVE * math.log2(top / min_window)) + 1
    return np.unique(np.round(np.geomspace(min_window, top, max(count, 2))).astype(np.int64))


def _windows(values: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping windows of ``size`` from the start, as rows; the incomplete tail is dropped."""
    count = len(values) // size
    return values[:count * size].reshape(count, size)


def _rescaled_range(returns: np.ndarray, size: int) -> float:
    """Mean R/S over the windows of ``size``: range of cumulated deviations over the ddof=0 std.

    Flat windows (zero range or std) are left out; NaN when all are flat.
    """
    windows = _windows(returns, size)
    deviations = windows - windows.mean(axis=1, keepdims=True)
    walk = np.cumsum(deviations, axis=1)
    spread = walk.max(axis=1) - walk.min(axis=1)
    std = windows.std(axis=1)
    keep = (spread > 0) & (std > 0)
    return float(np.mean(spread[keep] / std[keep])) if keep.any() else math.nan


def expected_rescaled_range(size: int) -> float:
    """Anis-Lloyd-Peters E[R/S]_n of white noise: Anis & Lloyd (1976) with Peters' (n - 1/2) / n factor."""
    i = np.arange(1, size)
    if size <= ALP_GAMMA_LIMIT:
        gamma_ratio = math.exp(math.lgamma((size - 1) / 2) - math.lgamma(size / 2)) / math.sqrt(math.pi)
    else:
        gamma_ratio = 1 / math.sqrt(size * math.pi / 2)
    return (size - 0.5) / size * gamma_ratio * float(np.sum(np.sqrt((size - i) / i)))


def _dfa_fluctuation(profile: np.ndarray, size: int) -> float:
    """F(n): root mean square of the residuals of a least-squares line per window of the profile."""
    windows = _windows(profile, size)
    t = np.arange(size) - (size - 1) / 2
    slopes = windows @ t / np.dot(t, t)
    residuals = windows - windows.mean(axis=1, keepdims=True) - slopes[:, None] * t
    return float(np.sqrt(np.mean(residuals * residuals)))


def _log_log_slope(sizes: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of log(values) on log(sizes), over the finite positive values; NaN if < 2."""
    keep = np.isfinite(values) & (values > 0)
    if np.count_nonzero(keep) < 2:
        return math.nan
    return float(np.polyfit(np.log(sizes[keep]), np.log(values[keep]), 1)[0])


def hurst_rs(returns: np.ndarray, sizes: np.ndarray, corrected: bool = False) -> float:
    """Slope of log E[R/S]_n on log n; corrected: 0.5 + slope of log(E[R/S]_n / ALP E[R/S]_n)."""
    rs = np.array([_rescaled_range(returns, int(n)) for n in sizes])
    if not corrected:
        return _log_log_slope(sizes, rs)
    expected = np.array([expected_rescaled_range(int(n)) for n in sizes])
    return 0.5 + _log_log_slope(sizes, rs / expected)


def hurst_dfa(returns: np.ndarray, sizes: np.ndarray) -> float:
    """DFA-1 exponent: slope of log F(n) on log n for the profile of the demeaned returns."""
    profile = np.cumsum(returns - returns.mean())
    fluctuation = np.array([_dfa_fluctuation(profile, int(n)) for n in sizes])
    return _log_log_slope(sizes, fluctuation)


def hurst_exponent(
    closes: np.ndarray,
    method: Literal["rs", "dfa"] = "rs",
    min_window: int = 8,
    max_window: int | None = None,
    corrected: bool = False,
) -> float:
    """Hurst exponent of the log returns of ``closes``: about 0.5 for a random walk.

    ``rs``: classic rescaled range (Hurst 1951; Mandelbrot & Wallis 1969)
    without small-sample correction unless ``corrected`` (Anis-Lloyd-Peters;
    the classic estimator is biased upwards on short windows). ``dfa``:
    detrended fluctuation analysis of order 1 (Peng et al. 1994), which on
    increments estimates H directly; ``corrected`` is a ValueError with it.
    Windows: see ``window_sizes``. NaN when prices are flat.
    """
    if method not in ("rs", "dfa") or (method == "dfa" and corrected):
        raise ValueError(f"method must be 'rs' (optionally corrected) or 'dfa', got {method!r}, corrected={corrected}")
    returns = log_returns(closes)
    sizes = window_sizes(len(returns), min_window, max_window)
    return hurst_rs(returns, sizes, corrected) if method == "rs" else hurst_dfa(returns, sizes)
