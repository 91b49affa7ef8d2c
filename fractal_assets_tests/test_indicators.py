"""Indicator functions: hand-computed cases, loop-based references, known Hurst answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fractal_assets.indicators.fractals import williams_fractals
from fractal_assets.indicators.hurst import expected_rescaled_range, hurst_exponent, log_returns, window_sizes
from fractal_assets.indicators.microstructure import (
    ERF_MAX_ERROR,
    bid_ask_spread,
    bvc_buy_fraction,
    dollar_imbalance,
    erf,
    kyle_lambda,
    lag_covariance,
    normal_cdf,
    order_flow_ratio,
    roll_spread,
    tick_imbalance,
    time_weighted_spread,
    volume_imbalance,
)
from fractal_assets.indicators.vpin import vpin

SIDE = np.array([1, -1, 1, 1, -1], dtype=np.int8)
VOLUME = np.array([2.0, 3.0, 1.0, 4.0, 0.5])
PRICE = np.array([10.0, 11.0, 10.0, 12.0, 10.0])


def test_imbalances_sum_signed_ticks_volume_and_notional() -> None:
    assert tick_imbalance(SIDE) == 1  # 1 - 1 + 1 + 1 - 1
    assert volume_imbalance(VOLUME, SIDE) == 3.5  # 2 - 3 + 1 + 4 - 0.5
    assert dollar_imbalance(PRICE, VOLUME, SIDE) == 40.0  # 20 - 33 + 10 + 48 - 5
    empty = np.empty(0)
    assert math.isnan(tick_imbalance(empty.astype(np.int8)))
    assert math.isnan(volume_imbalance(empty, empty))
    assert math.isnan(dollar_imbalance(empty, empty, empty))


def test_order_flow_ratio_is_signed_over_total_volume() -> None:
    assert order_flow_ratio(VOLUME, SIDE) == pytest.approx(3.5 / 10.5)  # (7 - 3.5) / 10.5
    assert math.isnan(order_flow_ratio(np.zeros(3), np.ones(3)))
    assert math.isnan(order_flow_ratio(np.empty(0), np.empty(0)))


def test_bid_ask_spread_quoted_and_relative() -> None:
    quoted, relative = bid_ask_spread(np.array([99.0, 100.0]), np.array([101.0, 100.5]))
    assert quoted == pytest.approx(1.25)  # mean(2, 0.5)
    assert relative == pytest.approx((2 / 100 + 0.5 / 100.25) / 2)  # mids 100 and 100.25
    assert all(math.isnan(v) for v in bid_ask_spread(np.empty(0), np.empty(0)))


def test_roll_spread_by_hand_and_nan_without_negative_covariance() -> None:
    # dp = [1, -1, 0, 1, -1]; pairs (dp_t, dp_t-1): x = [-1, 0, 1, -1], y = [1, -1, 0, 1]
    # means -1/4 and 1/4; sum xy - 4 * (-1/4)(1/4) = -2 + 1/4 = -7/4; cov = -7/4 / 3 = -7/12
    assert roll_spread(np.array([10.0, 11, 10, 10, 11, 10])) == pytest.approx(2 * math.sqrt(7 / 12))
    assert math.isnan(roll_spread(np.array([1.0, 2, 3, 4, 5])))  # constant dp: cov 0
    assert math.isnan(roll_spread(np.array([0.0, 1, 3, 6, 10])))  # dp 1,2,3,4: cov +1
    assert math.isnan(roll_spread(np.array([10.0, 11, 10])))  # one pair only


def decimal_prices(ticks: list[int], scale: int) -> np.ndarray:
    """Floats parsed from decimal numbers of ``scale`` places, as a feed delivers them."""
    return np.array([float(f"{t / 10**scale:.{scale}f}") for t in ticks])


def test_roll_spread_is_nan_when_the_decimal_covariance_is_zero() -> None:
    tiny = np.array([167.40, 167.39, 167.40, 167.41])
    # in decimals dp = (-0.01, +0.01, +0.01): pairs x = (0.01, 0.01), y = (-0.01, 0.01); x is constant, cov = 0
    dp = np.diff(tiny)
    assert np.cov(dp[1:], dp[:-1])[0, 1] != 0, "float differences do not cancel: the case still tests something"
    assert lag_covariance(tiny) == 0.0
    assert math.isnan(roll_spread(tiny))


@pytest.mark.parametrize(("scale", "base"), [(0, 100), (1, 1_234), (2, 16_740), (2, 6_000_001), (4, 12_345_678),
                                             (8, 1_234), (10, 987_654_321)])
def test_roll_spread_is_exact_at_every_decimal_scale(scale: int, base: int) -> None:
    tick = 10.0**-scale
    flat = decimal_prices([base + k for k in (0, -1, 0, 1)], scale)  # changes -1, +1, +1 ticks: cov exactly 0
    assert lag_covariance(flat) == 0.0 and math.isnan(roll_spread(flat))
    bounce = decimal_prices([base + k for k in (1, 2, 1, 1, 2, 1)], scale)
    # changes in ticks (1, -1, 0, 1, -1): cov = -7/12 tick^2 (the by-hand case above, scaled)
    assert lag_covariance(bounce) == pytest.approx(-7 / 12 * tick**2, rel=1e-15)
    assert roll_spread(bounce) == pytest.approx(2 * math.sqrt(7 / 12) * tick, rel=1e-15)


def test_roll_spread_off_the_decimal_grid_and_beyond_int64_uses_floats() -> None:
    thirds = np.array([1.0, 2, 1, 1, 2, 1]) / 3  # no decimal scale holds 1/3
    assert roll_spread(thirds) == pytest.approx(2 * math.sqrt(7 / 12) / 3, rel=1e-12)
    # integers, but m * max|dp|^2 = 3 * 9e18 would overflow int64 sums: float path.
    # dp = 3e9 * (1, -1, 1, -1); pairs x = 3e9 * (-1, 1, -1), y = 3e9 * (1, -1, 1)
    # deviations x: 1e9 * (-2, 4, -2), y: 1e9 * (2, -4, 2); sum of products -24e18, / 2 = -12e18
    big = np.array([0.0, 3e9, 0.0, 3e9, 0.0])
    assert lag_covariance(big) == pytest.approx(-12e18, rel=1e-12)
    assert roll_spread(big) == pytest.approx(2 * math.sqrt(12e18), rel=1e-12)


def test_time_weighted_spread_by_hand() -> None:
    ts = np.array([500, 900, 1200, 1200, 1700, 2000])
    bid = np.array([90.0, 99, 90, 99.5, 98, 50])
    ask = np.array([110.0, 101, 110, 100.5, 101, 150])
    # window [1000, 2000): the quote of 900 stands from 1000 to 1200 (spread 2, 200 ms); the first quote
    # of 1200 is replaced in the same millisecond (0 ms); then spread 1 for 500 ms and spread 3 for
    # 300 ms; the quote of 500 was replaced before the window, the one of 2000 comes at its end
    quoted, relative = time_weighted_spread(ts, bid, ask, 1000, 2000)
    assert quoted == pytest.approx((2 * 200 + 1 * 500 + 3 * 300) / 1000)
    assert relative == pytest.approx((200 * 2 / 100 + 500 * 1 / 100 + 300 * 3 / 99.5) / 1000)
    in_window = slice(2, 5)  # the per-quote mean weighs the replaced quote like the others
    assert bid_ask_spread(bid[in_window], ask[in_window])[0] == pytest.approx((20 + 1 + 3) / 3)
    assert all(math.isnan(v) for v in time_weighted_spread(ts[5:], bid[5:], ask[5:], 1000, 2000))
    assert all(math.isnan(v) for v in time_weighted_spread(ts[:0], bid[:0], ask[:0], 1000, 2000))


def test_kyle_lambda_carried_pairing_by_hand_and_across_windows() -> None:
    price, volume = np.array([100.0, 101.0, 100.5]), np.array([2.0, 1, 3])
    side = np.array([1, -1, 1], dtype=np.int8)
    # previous price 99.5: dp = (0.5, 1, -0.5), x = (2, -1, 3); sum x^2 = 14, sum x dp = -1.5
    # lambda = -3/28; e = (5/7, 25/28, -5/28): sum e^2 = 1050/784, s^2 = 525/784, se = sqrt(525/784/14)
    slope, t_stat = kyle_lambda(price, volume, side, previous_price=99.5)
    assert slope == pytest.approx(-3 / 28, rel=1e-12)
    assert t_stat == pytest.approx(-3 / 28 / math.sqrt(525 / 784 / 14), rel=1e-12)
    fresh_slope, _ = kyle_lambda(price, volume, side)  # dp = (1, -0.5), x = (-1, 3): lambda = -2.5 / 10
    assert fresh_slope == pytest.approx(-0.25, rel=1e-12)
    rng = np.random.default_rng(5)
    p = 100 + np.cumsum(rng.normal(0, 0.1, 400))
    v, b = rng.exponential(1.0, 400), rng.choice(np.array([-1, 1], dtype=np.int8), 400)
    dp, x = np.diff(p)[199:], (v * b)[200:]  # the second window's first trade paired with the first's last price
    (coef,), _, _, _ = np.linalg.lstsq(x[:, None], dp, rcond=None)
    assert kyle_lambda(p[200:], v[200:], b[200:], previous_price=p[199])[0] == pytest.approx(coef, rel=1e-12)
    assert all(math.isnan(value) for value in kyle_lambda(p[:1], v[:1], b[:1], previous_price=p[0]))


def test_kyle_lambda_six_ticks_by_hand() -> None:
    # tick 0 only sets the base price, so its volume and side are ignored
    price = np.array([100.0, 101.0, 100.5, 102.0, 101.0, 101.0])
    volume = np.array([5.0, 2, 1, 3, 2, 1])
    side = np.array([-1, 1, -1, 1, -1, 1], dtype=np.int8)
    # dp = [1, -0.5, 1.5, -1, 0]; x = side * v = [2, -1, 3, -2, 1]
    # sum x^2 = 19, sum x dp = 2 + 0.5 + 4.5 + 2 + 0 = 9, lambda = 9/19
    # sum e^2 = sum dp^2 - lambda sum x dp = 4.5 - 81/19 = 9/38; s^2 = (9/38) / 4 = 9/152
    # se = sqrt(9/152 / 19) = 3 / sqrt(2888) = 3 / (38 sqrt 2); t = (9/19) / se = 6 sqrt 2
    slope, t_stat = kyle_lambda(price, volume, side)
    assert slope == pytest.approx(9 / 19, rel=1e-12)
    assert t_stat == pytest.approx(6 * math.sqrt(2), rel=1e-12)
    x, dp = (volume * side)[1:, None], np.diff(price)
    (coef,), (ssr,), _, _ = np.linalg.lstsq(x, dp, rcond=None)
    assert slope == pytest.approx(coef, rel=1e-12)
    assert t_stat == pytest.approx(coef / math.sqrt(ssr / (len(dp) - 1) / float(np.sum(x * x))), rel=1e-12)


def test_kyle_lambda_edge_cases() -> None:
    assert all(math.isnan(v) for v in kyle_lambda(np.array([1.0, 2]), np.ones(2), np.ones(2)))
    assert all(math.isnan(v) for v in kyle_lambda(np.array([1.0, 2, 3]), np.zeros(3), np.ones(3)))
    slope, t_stat = kyle_lambda(np.array([1.0, 3, 7]), np.array([9.0, 1, 2]), np.ones(3))  # dp = 2x exactly
    assert slope == 2 and t_stat == math.inf
    slope, t_stat = kyle_lambda(np.ones(4), np.ones(4), np.ones(4))  # flat price: t = 0 / 0
    assert slope == 0 and math.isnan(t_stat)


def vpin_reference(volume: np.ndarray, side: np.ndarray, size: float, n_buckets: int) -> tuple:
    """Fill buckets trade by trade, splitting a trade at each border: the textbook procedure."""
    imbalances, ends, room, buy = [], [], size, 0.0
    for i, (v, s) in enumerate(zip(volume, side)):
        while v > 0:
            take = min(v, room)
            room -= take
            buy += take * (1 + s) / 2
            v -= take
            if room == 0:
                imbalances.append(abs(2 * buy - size) / size)
                ends.append(i)
                room, buy = size, 0.0
    value = float(np.mean(imbalances[-n_buckets:])) if len(imbalances) >= n_buckets else math.nan
    return value, np.array(imbalances), np.array(ends)


def test_vpin_splits_trades_across_buckets_by_hand() -> None:
    volume = np.array([3.0, 4, 2, 3, 1])
    side = np.array([1, -1, 1, 1, -1])
    # V = 4, cumulative volume 3, 7, 9, 12, 13
    # bucket 1 [0, 4]:  trade 0 buys 3, trade 1 sells 1 of its 4   -> |3 - 1| / 4 = 0.5, ends in trade 1
    # bucket 2 [4, 8]:  trade 1 sells its other 3, trade 2 buys 1 -> |1 - 3| / 4 = 0.5, ends in trade 2
    # bucket 3 [8, 12]: trade 2 buys its other 1, trade 3 buys 3  -> |4 - 0| / 4 = 1.0, ends in trade 3
    # trade 4's 1 unit is an incomplete bucket and is left out
    result = vpin(volume, side, bucket_volume=4, n_buckets=3)
    assert result.bucket_imbalance.tolist() == [0.5, 0.5, 1.0]
    assert result.bucket_end_index.tolist() == [1, 2, 3]
    assert result.value == pytest.approx(2 / 3)  # (0.5 + 0.5 + 1) / 3
    assert result.bucket_volume == 4
    assert vpin(volume, side, bucket_volume=4, n_buckets=2).value == 0.75  # last two: (0.5 + 1) / 2
    assert math.isnan(vpin(volume, side, bucket_volume=4, n_buckets=4).value)  # only 3 complete


def test_vpin_matches_the_loop_reference_on_random_trades() -> None:
    rng = np.random.default_rng(7)
    side = rng.choice(np.array([-1, 1], dtype=np.int8), 3_000)
    integer_volume = rng.integers(0, 40, 3_000).astype(float)  # exact arithmetic, borders on trade ends
    result = vpin(integer_volume, side, bucket_volume=50.0, n_buckets=30)
    value, imbalances, ends = vpin_reference(integer_volume, side, 50.0, 30)
    assert result.value == value
    np.testing.assert_array_equal(result.bucket_imbalance, imbalances)
    np.testing.assert_array_equal(result.bucket_end_index, ends)
    float_volume = rng.exponential(3.0, 3_000)
    fractional_side = rng.uniform(-1, 1, 3_000)
    for s in (side, fractional_side):
        result = vpin(float_volume, s, bucket_volume=17.3, n_buckets=50)
        value, imbalances, ends = vpin_reference(float_volume, s, 17.3, 50)
        assert result.value == pytest.approx(value, rel=1e-9)
        np.testing.assert_allclose(result.bucket_imbalance, imbalances, atol=1e-9)
        np.testing.assert_array_equal(result.bucket_end_index, ends)
        assert 0 <= result.value <= 1


def test_vpin_defaults_edges_and_all_buy() -> None:
    rng = np.random.default_rng(3)
    volume = rng.exponential(2.0, 1_000)
    default = vpin(volume, rng.choice([-1, 1], 1_000))
    assert len(default.bucket_imbalance) == 50  # V = total / 50, the rounding remainder still counts
    assert default.bucket_volume == pytest.approx(volume.sum() / 50)
    assert default.value == pytest.approx(default.bucket_imbalance.mean())
    assert vpin(volume, np.ones(1_000)).value == pytest.approx(1.0, abs=1e-12)  # rounding of running sums
    for seed in range(5):  # np.sum and the running sum round differently: the last border must still fit
        many = np.random.default_rng(seed).exponential(1.0, 200_000)
        result = vpin(many, np.ones(200_000))
        assert len(result.bucket_imbalance) == 50 and result.bucket_end_index[-1] == 199_999
        assert result.value == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(vpin(np.zeros(5), np.ones(5)).value)
    assert math.isnan(vpin(np.empty(0), np.empty(0)).value)
    with pytest.raises(ValueError, match="bucket_volume"):
        vpin(volume, np.ones(1_000), bucket_volume=0)
    with pytest.raises(ValueError, match="n_buckets"):
        vpin(volume, np.ones(1_000), n_buckets=0)


def test_erf_approximation_is_within_the_documented_bound() -> None:
    grid = np.linspace(-6, 6, 120_001)
    exact = np.array([math.erf(x) for x in grid])
    assert np.max(np.abs(erf(grid) - exact)) <= ERF_MAX_ERROR
    cdf = np.array([0.5 * (1 + math.erf(x / math.sqrt(2))) for x in grid])
    assert np.max(np.abs(normal_cdf(grid) - cdf)) <= ERF_MAX_ERROR / 2
    assert erf(np.array([0.0]))[0] == 0


def test_bvc_buy_fraction_by_hand() -> None:
    # dP = [1, -2, 1], mean 0, sample std sqrt((1 + 4 + 1) / 2) = sqrt 3
    fraction = bvc_buy_fraction(np.array([100.0, 101, 99, 100]))
    assert math.isnan(fraction[0])
    expected = [0.5 * (1 + math.erf(z / math.sqrt(3) / math.sqrt(2))) for z in (1, -2, 1)]
    np.testing.assert_allclose(fraction[1:], expected, atol=ERF_MAX_ERROR)
    np.testing.assert_allclose(bvc_buy_fraction(np.array([1.0, 2]), sigma=1.0)[1:], [0.8413447], atol=1e-6)
    assert np.isnan(bvc_buy_fraction(np.full(5, 7.0))).all()
    assert np.isnan(bvc_buy_fraction(np.array([1.0, 2]))).all()  # one change: no sample std


def test_williams_fractals_by_hand_with_a_tie_and_edges() -> None:
    high = np.array([1.0, 2, 5, 3, 2, 4, 6, 6, 3, 2, 9])
    low = np.array([9.0, 4, 2, 3, 4, 1, 3, 4, 4, 5, 0])
    up, down = williams_fractals(high, low, n=2)
    # bar 2: 5 > 1, 2 and > 3, 2. Bars 6 and 7 tie at 6: neither is a fractal.
    # bar 10 has the highest high and the lowest low but is one of the last two bars: unconfirmed.
    assert np.flatnonzero(up).tolist() == [2]
    # bar 2: 2 < 9, 4 and < 3, 4; bar 5: 1 < 3, 4 and < 3, 4
    assert np.flatnonzero(down).tolist() == [2, 5]
    high[7] = 5.9  # break the tie
    assert np.flatnonzero(williams_fractals(high, low)[0]).tolist() == [2, 6]
    up, _ = williams_fractals(np.array([9.0, 1, 2, 1, 3]), np.zeros(5), n=1)
    assert up.tolist() == [False, False, True, False, False]  # first and last bars never marked
    short_up, short_down = williams_fractals(np.array([1.0, 2, 1]), np.array([1.0, 0, 1]), n=2)
    assert not short_up.any() and not short_down.any() and len(short_up) == 3
    with pytest.raises(ValueError):
        williams_fractals(high, low, n=0)


def fractals_reference(high: np.ndarray, low: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    up, down = np.zeros(len(high), dtype=bool), np.zeros(len(low), dtype=bool)
    for i in range(n, len(high) - n):
        neighbours = [j for j in range(i - n, i + n + 1) if j != i]
        up[i] = all(high[i] > high[j] for j in neighbours)
        down[i] = all(low[i] < low[j] for j in neighbours)
    return up, down


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_williams_fractals_match_the_loop_reference(n: int) -> None:
    rng = np.random.default_rng(n)
    for high in (rng.normal(size=2_000).cumsum(), rng.integers(0, 6, 2_000).astype(float)):  # ties in the 2nd
        low = high - rng.uniform(0, 1, len(high)).round(1)
        up, down = williams_fractals(high, low, n)
        ref_up, ref_down = fractals_reference(high, low, n)
        np.testing.assert_array_equal(up, ref_up)
        np.testing.assert_array_equal(down, ref_down)


def fractional_gaussian_noise(n: int, hurst: float, rng: np.random.Generator) -> np.ndarray:
    """Davies-Harte (1987): exact fGn by embedding its autocovariance in a circulant matrix.

    gamma(k) = (|k+1|^2H - 2|k|^2H + |k-1|^2H) / 2; the circulant's eigenvalues
    are the FFT of [gamma(0..n), gamma(n-1..1)] (non-negative for fGn); the
    real part of FFT(sqrt(eigenvalue / 2n) * complex normal) has covariance gamma.
    """
    k = np.arange(n + 1, dtype=float)
    gamma = 0.5 * (np.abs(k + 1) ** (2 * hurst) - 2 * k ** (2 * hurst) + np.abs(k - 1) ** (2 * hurst))
    eigenvalues = np.fft.fft(np.concatenate((gamma, gamma[-2:0:-1]))).real
    m = len(eigenvalues)
    noise = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    return np.fft.fft(np.sqrt(np.maximum(eigenvalues, 0) / m) * noise).real[:n]


def closes_from(returns: np.ndarray) -> np.ndarray:
    return 100 * np.exp(np.concatenate(([0.0], np.cumsum(returns))))


N_HURST = 2 ** 14


@pytest.fixture(scope="module")
def fgn_closes() -> dict[float, np.ndarray]:
    return {h: closes_from(1e-3 * fractional_gaussian_noise(N_HURST, h, np.random.default_rng(11))) for h in (0.3, 0.5, 0.8)}


def test_fgn_generator_has_the_theoretical_lag_one_autocorrelation() -> None:
    for h in (0.3, 0.8):
        x = fractional_gaussian_noise(N_HURST, h, np.random.default_rng(5))
        rho = np.corrcoef(x[1:], x[:-1])[0, 1]
        assert rho == pytest.approx(2 ** (2 * h - 1) - 1, abs=0.03)  # sd of the estimate ~ 1/sqrt(N) = 0.008


def test_hurst_of_white_noise_is_one_half(fgn_closes: dict[float, np.ndarray]) -> None:
    closes = fgn_closes[0.5]
    # N = 2^14, 8 <= n <= 8192: over 20 seeds DFA ranged 0.46..0.54 and corrected R/S 0.46..0.52
    assert hurst_exponent(closes, "dfa") == pytest.approx(0.5, abs=0.05)
    assert hurst_exponent(closes, "rs", corrected=True) == pytest.approx(0.5, abs=0.05)
    # the classic R/S is biased up by the Anis-Lloyd small-sample term: compare with its expected slope
    sizes = window_sizes(N_HURST)
    expected = np.polyfit(np.log(sizes), np.log([expected_rescaled_range(int(n)) for n in sizes]), 1)[0]
    assert expected == pytest.approx(0.542, abs=0.001)
    assert hurst_exponent(closes, "rs") == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("method", ["rs", "dfa"])
def test_hurst_separates_persistent_from_anti_persistent(fgn_closes: dict[float, np.ndarray], method: str) -> None:
    assert hurst_exponent(fgn_closes[0.8], method) > 0.65
    assert hurst_exponent(fgn_closes[0.3], method) < 0.4


def test_hurst_matches_nolds(fgn_closes: dict[float, np.ndarray]) -> None:
    nolds = pytest.importorskip("nolds")
    # Comparable settings: nolds gets the same log returns (it builds the DFA profile itself),
    # the same window sizes (nvals), plain least squares (fit='poly', not RANSAC), R/S with the
    # ddof=0 std (unbiased=False) and non-overlapping DFA windows (overlap=False).
    # The algorithms are then identical up to summation order and nolds' per-window np.polyfit
    # versus our closed form, so they agree to rounding error: 1e-9 absolute.
    for closes in fgn_closes.values():
        returns = log_returns(closes)
        sizes = window_sizes(len(returns))
        for corrected in (False, True):
            theirs = nolds.hurst_rs(returns, nvals=sizes, fit="poly", corrected=corrected, unbiased=False)
            assert hurst_exponent(closes, "rs", corrected=corrected) == pytest.approx(theirs, abs=1e-9)
        theirs = nolds.dfa(returns, nvals=sizes, overlap=False, fit_trend="poly", fit_exp="poly")
        assert hurst_exponent(closes, "dfa") == pytest.approx(theirs, abs=1e-9)


def test_hurst_rejects_bad_input_and_is_nan_for_flat_prices() -> None:
    with pytest.raises(ValueError, match="at least 2 \\* min_window = 16 returns, got 15"):
        hurst_exponent(np.linspace(1, 2, 16))
    with pytest.raises(ValueError, match="positive"):
        hurst_exponent(np.array([1.0, -1.0] * 20))
    with pytest.raises(ValueError, match="the default, half the returns"):
        hurst_exponent(np.linspace(1, 2, 17))  # 16 returns: the default max_window 8 equals min_window
    with pytest.raises(ValueError, match="max_window"):
        hurst_exponent(np.linspace(1, 2, 101), max_window=8)
    with pytest.raises(ValueError, match="min_window must be at least 4"):
        hurst_exponent(np.linspace(1, 2, 101), min_window=3)
    with pytest.raises(ValueError, match="method"):
        hurst_exponent(np.linspace(1, 2, 101), method="dfa", corrected=True)
    with pytest.raises(ValueError, match="method"):
        hurst_exponent(np.linspace(1, 2, 101), method="variance")
    assert math.isnan(hurst_exponent(np.full(100, 5.0), "rs"))
    assert math.isnan(hurst_exponent(np.full(100, 5.0), "dfa"))
