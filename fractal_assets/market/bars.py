"""OHLCV bars from ticks, vectorized.

Ticks must be sorted by (ts, arrival sequence). Buckets are aligned to the
UTC epoch, so a bar of timeframe T starts at a multiple of T and ``1d`` is
the UTC calendar day. Open is the first tick of the bucket in that order and
close the last, so equal timestamps are ordered by arrival; empty buckets
produce no bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fractal_assets.market import schema

TIMEFRAMES: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "1d": 86_400_000,
}
"""Timeframe label -> bucket length in ms."""

BAR_COLUMNS = schema.BAR.names


def _bucket_starts(ts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of each non-empty bucket's first tick, and the bucket's start time.

    Sorted ticks let a binary search per bucket edge replace a division per
    tick; sparse data (far more buckets than ticks) takes the per-tick path.
    """
    first = ts[0] - ts[0] % width
    buckets = (ts[-1] - first) // width + 1
    if buckets <= len(ts):
        edges = first + width * np.arange(buckets + 1, dtype=np.int64)
        index = np.searchsorted(ts, edges)
        nonempty = index[:-1] < index[1:]
        return index[:-1][nonempty], edges[:-1][nonempty]
    bucket = ts - ts % width
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    return starts, bucket[starts]


def compute_bars(ts: np.ndarray, price: np.ndarray, volume: np.ndarray, side: np.ndarray, timeframe: str) -> pd.DataFrame:
    """One row per non-empty bucket; vwap is NaN for a bucket whose ticks all have zero volume."""
    if len(ts) == 0:
        return schema.BAR.empty_frame()
    width = TIMEFRAMES[timeframe]
    starts, buckets = _bucket_starts(ts, width)
    ends = np.append(starts[1:], len(ts))
    vol = np.add.reduceat(volume, starts)
    buy = np.add.reduceat(volume * (side > 0), starts)
    notional = np.add.reduceat(price * volume, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(vol > 0, notional / vol, np.nan)
    return pd.DataFrame({
        "timestamp": buckets,
        "open": price[starts],
        "high": np.maximum.reduceat(price, starts),
        "low": np.minimum.reduceat(price, starts),
        "close": price[ends - 1],
        "volume": vol,
        "buy_volume": buy,
        "sell_volume": vol - buy,
        "tick_count": ends - starts,
        "vwap": vwap,
    })


def roll_up(bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Bars of a coarser ``timeframe`` from finer ones sorted by timestamp: prices, volumes and
    tick counts of every tick, the volume sums (and so the VWAP) to float rounding."""
    if bars.empty:
        return schema.BAR.empty_frame()
    ts = bars["timestamp"].to_numpy()
    starts, buckets = _bucket_starts(ts, TIMEFRAMES[timeframe])
    ends = np.append(starts[1:], len(ts))
    volume = bars["volume"].to_numpy()
    notional = np.add.reduceat(np.nan_to_num(bars["vwap"].to_numpy()) * volume, starts)
    vol = np.add.reduceat(volume, starts)
    buy = np.add.reduceat(bars["buy_volume"].to_numpy(), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(vol > 0, notional / vol, np.nan)
    return pd.DataFrame({
        "timestamp": buckets,
        "open": bars["open"].to_numpy()[starts],
        "high": np.maximum.reduceat(bars["high"].to_numpy(), starts),
        "low": np.minimum.reduceat(bars["low"].to_numpy(), starts),
        "close": bars["close"].to_numpy()[ends - 1],
        "volume": vol,
        "buy_volume": buy,
        "sell_volume": vol - buy,
        "tick_count": np.add.reduceat(bars["tick_count"].to_numpy(), starts),
        "vwap": vwap,
    })
