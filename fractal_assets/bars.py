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

TIMEFRAMES: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "1d": 86_400_000,
}
"""Timeframe label -> bucket length in ms."""

BAR_COLUMNS = (
    "timestamp", "open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "tick_count", "vwap",
)


def compute_bars(ts: np.ndarray, price: np.ndarray, volume: np.ndarray, side: np.ndarray, timeframe: str) -> pd.DataFrame:
    """One row per non-empty bucket; vwap is NaN for a bucket whose ticks all have zero volume."""
    if len(ts) == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c in ("timestamp", "tick_count") else "float64")
                             for c in BAR_COLUMNS})
    width = TIMEFRAMES[timeframe]
    bucket = ts - ts % width
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.append(starts[1:], len(ts))
    vol = np.add.reduceat(volume, starts)
    buy = np.add.reduceat(np.where(side > 0, volume, 0.0), starts)
    notional = np.add.reduceat(price * volume, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(vol > 0, notional / vol, np.nan)
    return pd.DataFrame({
        "timestamp": bucket[starts],
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
