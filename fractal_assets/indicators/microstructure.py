"""Microstructure metrics over a window of ticks or quotes.

Each function takes the window's columns (``side`` is the aggressor sign,
+1 buy / -1 sell, as in ``TICK_DTYPE``) and returns plain floats or small
arrays; an empty window (or zero volume) gives NaN rather than a made-up
number. Definitions and sources are in ``docs/indicators.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NAN = float("nan")


def tick_imbalance(side: np.ndarray) -> float:
    """Sum of aggressor signs, AFML section 2.3.2.1's tick imbalance theta_T = sum b_t; NaN when empty."""
    return float(np.sum(side, dtype=np.int64)) if len(side) else NAN


def volume_imbalance(volume: np.ndarray, side: np.ndarray) -> float:
    """Signed volume sum b_t * v_t, AFML section 2.3.2.2's volume imbalance; NaN when empty."""
    return float(np.dot(volume, side)) if len(volume) else NAN


def dollar_imbalance(price: np.ndarray, volume: np.ndarray, side: np.ndarray) -> float:
    """Signed notional sum b_t * p_t * v_t, AFML section 2.3.2.2's dollar imbalance; NaN when empty."""
    return float(np.dot(price * volume, side)) if len(volume) else NAN


def order_flow_ratio(volume: np.ndarray, side: np.ndarray) -> float:
    """(buy volume - sell volume) / total volume, in [-1, 1]; NaN when the total is 0."""
    total = float(np.sum(volume))
    return float(np.dot(volume, side)) / total if total > 0 else NAN


def bid_ask_spread(bid: np.ndarray, ask: np.ndarray) -> tuple[float, float]:
    """(mean quoted spread, mean relative spread (ask - bid) / mid) over the window's quotes."""
    if len(bid) == 0:
        return NAN, NAN
    spread = ask - bid
    return float(np.mean(spread)), float(np.mean(spread / ((ask + bid) / 2)))


def roll_spread(price: np.ndarray) -> float:
    """Roll (1984) effective spread 2 * sqrt(-cov(dp_t, dp_{t-1})) from trade prices alone.

    For windows without quotes; callers must label the value as estimated.
    The covariance is the unbiased sample covariance (each series demeaned,
    divided by pairs - 1, as ``np.cov``) of consecutive price changes. It
    needs 4 prices (2 pairs); a non-negative covariance, where Roll's model
    has no solution, gives NaN rather than 0 or a signed root.
    """
    dp = np.diff(np.asarray(price, dtype=np.float64))
    if len(dp) < 3:
        return NAN
    current, previous = dp[1:], dp[:-1]
    cov = np.dot(current - current.mean(), previous - previous.mean()) / (len(current) - 1)
    return float(2.0 * np.sqrt(-cov)) if cov < 0 else NAN


def kyle_lambda(price: np.ndarray, volume: np.ndarray, side: np.ndarray) -> tuple[float, float]:
    """(lambda, t-stat) of dp_t = lambda * side_t * v_t + e_t, OLS through the origin (AFML 19.4.1).

    dp_t = p_t - p_{t-1} is paired with the signed volume of tick t, the
    trade that moved the price, so the first tick only gives the base price.
    The standard error uses the residual variance sum e^2 / (n - 1), the
    degrees of freedom of a one-coefficient regression. NaN for fewer than 3
    ticks or when all signed volume is 0; a perfect fit gives an infinite
    t-stat (NaN if the price never moved).
    """
    if len(price) < 3:
        return NAN, NAN
    dp = np.diff(np.asarray(price, dtype=np.float64))
    x = (np.asarray(volume, dtype=np.float64) * side)[1:]
    sxx = float(np.dot(x, x))
    if sxx == 0:
        return NAN, NAN
    slope = float(np.dot(x, dp)) / sxx
    residual = dp - slope * x
    standard_error = np.sqrt(np.dot(residual, residual) / (len(dp) - 1) / sxx)
    with np.errstate(divide="ignore", invalid="ignore"):
        return slope, float(np.float64(slope) / standard_error)


@dataclass(frozen=True, eq=False)
class VpinResult:
    """VPIN over the last buckets, with every complete bucket's |V_B - V_S| / V.

    ``bucket_end_index[k]`` is the index of the trade in which bucket k is
    filled (a trade split across a border counts in both buckets);
    ``bucket_volume`` is V.
    """

    value: float
    bucket_imbalance: np.ndarray
    bucket_end_index: np.ndarray
    bucket_volume: float


_COMPLETE_TOLERANCE = 1e-9
"""A last bucket short of V by less than this fraction of V (float rounding) counts as complete."""


def vpin(volume: np.ndarray, side: np.ndarray, bucket_volume: float | None = None, n_buckets: int = 50) -> VpinResult:
    """Volume-synchronized probability of informed trading (Easley, Lopez de Prado & O'Hara 2012).

    Trades fill equal-volume buckets of size V (default: total volume /
    ``n_buckets``) in order; a trade crossing a border is split between the
    buckets. Each trade's volume is buy volume in the fraction (1 + side) / 2,
    so +1/-1 ticks are all-buy/all-sell and a fractional side in [-1, 1]
    carries a bulk classification (``2 * bvc_buy_fraction - 1``).
    VPIN = mean over the last ``n_buckets`` complete buckets of
    |V_B - V_S| / V; the incomplete last bucket is dropped, and VPIN is NaN
    with fewer than ``n_buckets`` complete buckets or zero volume.
    """
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be at least 1, got {n_buckets}")
    volume = np.asarray(volume, dtype=np.float64)
    cum_volume = np.concatenate(([0.0], np.cumsum(volume)))
    total = float(cum_volume[-1])
    size = total / n_buckets if bucket_volume is None else float(bucket_volume)
    if not size > 0:
        if bucket_volume is not None:
            raise ValueError(f"bucket_volume must be positive, got {bucket_volume}")
        return VpinResult(NAN, np.empty(0), np.empty(0, dtype=np.int64), NAN)
    buy_fraction = (1.0 + np.asarray(side, dtype=np.float64)) / 2.0
    cum_buy = np.concatenate(([0.0], np.cumsum(volume * buy_fraction)))
    complete = int(np.floor(total / size + _COMPLETE_TOLERANCE))
    borders = np.minimum(np.arange(1, complete + 1) * size, total)
    trade = np.searchsorted(cum_volume, borders, side="left") - 1
    buy_at_border = cum_buy[trade] + (borders - cum_volume[trade]) * buy_fraction[trade]
    buy = np.diff(buy_at_border, prepend=0.0)
    imbalance = np.abs(2.0 * buy - size) / size
    value = float(np.mean(imbalance[-n_buckets:])) if complete >= n_buckets else NAN
    return VpinResult(value, imbalance, trade, size)


_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
ERF_MAX_ERROR = 1.5e-7
"""Abramowitz & Stegun 7.1.26: |erf approximation - erf| <= 1.5e-7 for every real x."""


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorized error function, Abramowitz & Stegun 7.1.26 (scipy-free), odd-extended to x < 0."""
    x = np.asarray(x, dtype=np.float64)
    z = np.abs(x)
    t = 1.0 / (1.0 + _AS_P * z)
    poly = t * (_AS_A[0] + t * (_AS_A[1] + t * (_AS_A[2] + t * (_AS_A[3] + t * _AS_A[4]))))
    return np.sign(x) * (1.0 - poly * np.exp(-z * z))


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF 0.5 * (1 + erf(x / sqrt 2)); error at most ERF_MAX_ERROR / 2."""
    return 0.5 * (1.0 + erf(np.asarray(x, dtype=np.float64) / np.sqrt(2.0)))


def bvc_buy_fraction(close_prices_1m: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """Bulk-volume-classification buy share per bar: Phi(dP / sigma_dP) (Easley et al. 2012).

    dP is the change of the bar's close from the previous bar's, and
    sigma_dP the sample standard deviation (ddof=1) of those changes unless
    ``sigma`` is given. The result is aligned with the bars: the first bar,
    without a previous close, is NaN, and so is every bar when sigma is not
    a positive finite number (fewer than 3 bars, or a flat price).
    """
    close = np.asarray(close_prices_1m, dtype=np.float64)
    out = np.full(len(close), np.nan)
    dp = np.diff(close)
    if sigma is None:
        sigma = float(np.std(dp, ddof=1)) if len(dp) > 1 else NAN
    if np.isfinite(sigma) and sigma > 0:
        out[1:] = normal_cdf(dp / sigma)
    return out
