"""Microstructure metrics over a window of ticks or quotes.

Each function takes the window's columns (``side`` is the aggressor sign,
+1 buy / -1 sell, as in ``TICK_DTYPE``) and returns plain floats or small
arrays; an empty window (or zero volume) gives NaN rather than a made-up
number. Definitions and sources are in ``docs/indicators.md``.
"""

from __future__ import annotations

import numpy as np

from fractal_assets.market.decimals import exact_scale, unscaled

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


def time_weighted_spread(ts: np.ndarray, bid: np.ndarray, ask: np.ndarray, start: int, end: int) -> tuple[float, float]:
    """(quoted, relative) spread over [start, end) with each quote weighted by how long it stood.

    A quote stands from its timestamp until the next quote, or the window's
    end; one stamped before ``start`` counts from ``start`` (the last such
    quote is the one standing when the window opens). NaN, NaN when no quote
    stands for any time inside the window.
    """
    ts = np.asarray(ts, dtype=np.int64)
    stands_from = np.maximum(ts, start)
    stands_until = np.minimum(np.append(ts[1:], end), end)
    duration = np.maximum(stands_until - stands_from, 0).astype(np.float64)
    total = float(np.sum(duration))
    if total == 0:
        return NAN, NAN
    spread = ask - bid
    return float(np.dot(duration, spread)) / total, float(np.dot(duration, spread / ((ask + bid) / 2))) / total


def roll_spread(price: np.ndarray) -> float:
    """Roll (1984) effective spread 2 * sqrt(-cov(dp_t, dp_{t-1})) from trade prices alone.

    For windows without quotes; callers must label the value as estimated.
    The covariance is the unbiased sample covariance (each series demeaned,
    divided by pairs - 1, as ``np.cov``) of consecutive price changes. It
    needs 4 prices (2 pairs); a non-negative covariance, where Roll's model
    has no solution, gives NaN rather than 0 or a signed root. Decimal prices
    are taken exactly (``lag_covariance``), so a covariance that is 0 in
    decimals is 0 here too, not a float-rounding residue.
    """
    if len(price) < 4:
        return NAN
    cov = lag_covariance(np.asarray(price, dtype=np.float64))
    return float(2.0 * np.sqrt(-cov)) if cov < 0 else NAN


def lag_covariance(price: np.ndarray) -> float:
    """Sample covariance of consecutive price changes (dp_t, dp_{t-1}), exact for decimal prices.

    Prices that are all ``u / 10**s`` (``exact_scale``) become integer changes
    du, and the covariance is (m * sum(x y) - sum(x) * sum(y)) / (m (m - 1))
    over the m pairs, in exact integers up to one correctly rounded division. Other prices, or integer sums beyond int64, use float64.
    """
    scale = exact_scale(price)
    if scale is not None:
        du = np.diff(unscaled(price, scale))
        current, previous = du[1:], du[:-1]
        m = len(current)
        if m * float(np.max(np.abs(du))) ** 2 < 2.0**63:
            numerator = m * int(np.dot(current, previous)) - int(np.sum(current)) * int(np.sum(previous))
            return numerator / (m * (m - 1) * 100**scale)
    dp = np.diff(price)
    current, previous = dp[1:], dp[:-1]
    return float(np.dot(current - current.mean(), previous - previous.mean()) / (len(current) - 1))


def kyle_lambda(
    price: np.ndarray, volume: np.ndarray, side: np.ndarray, previous_price: float | None = None,
) -> tuple[float, float]:
    """(lambda, t-stat) of dp_t = lambda * side_t * v_t + e_t, OLS through the origin (AFML 19.4.1).

    dp_t = p_t - p_{t-1} is paired with the signed volume of tick t, the
    trade that moved the price. By default each window starts fresh: its
    first tick only gives the base price. With ``previous_price`` (the last
    price before the window, as mlfinlab's feature generator carries it) the
    first tick is paired with p_0 - previous_price too. The standard error
    uses the residual variance sum e^2 / (n - 1), the degrees of freedom of a
    one-coefficient regression. NaN for fewer than 2 pairs or when all signed
    volume is 0; a perfect fit gives an infinite t-stat (NaN if the price
    never moved).
    """
    price = np.asarray(price, dtype=np.float64)
    signed = np.asarray(volume, dtype=np.float64) * side
    if previous_price is None:
        dp, x = np.diff(price), signed[1:]
    else:
        dp, x = np.diff(price, prepend=previous_price), signed
    if len(dp) < 2:
        return NAN, NAN
    sxx = float(np.dot(x, x))
    if sxx == 0:
        return NAN, NAN
    slope = float(np.dot(x, dp)) / sxx
    residual = dp - slope * x
    standard_error = np.sqrt(np.dot(residual, residual) / (len(dp) - 1) / sxx)
    with np.errstate(divide="ignore", invalid="ignore"):
        return slope, float(np.float64(slope) / standard_error)


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
