"""Consistency rules for stored bars. Each returns (passed, details): the pipeline reports
them as Dagster asset checks, and tests call them directly."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fractal_assets.market.bars import TIMEFRAMES

REL_TOL = 1e-9

DESCRIPTIONS = {
    "ohlc_consistent": "Every bar has low <= open, close <= high.",
    "volume_split": "Every bar's volume equals buy_volume + sell_volume, to floating-point rounding.",
    "tick_count_matches_raw": "The bars' tick counts add up to the partition's archived ticks: each tick in "
                              "exactly one bar.",
    "unique_keys": "No (symbol, timeframe, timestamp) is stored twice in fractal_bars.",
    "equals_1m_rollup": "The bars equal the stored 1m bars rolled up to this timeframe: OHLC and tick counts "
                        "exactly, volumes and VWAP to floating-point rounding.",
}
"""Description of each bar check, by check name, for the asset check specs."""


def _close(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.isclose(a, b, rtol=REL_TOL, atol=0) | (np.isnan(a) & np.isnan(b))


def ohlc_consistent(bars: pd.DataFrame) -> tuple[bool, dict]:
    """low <= open, close <= high."""
    bad = ~((bars["low"] <= bars[["open", "close"]].min(axis=1)) & (bars[["open", "close"]].max(axis=1) <= bars["high"]))
    return not bad.any(), {"violations": int(bad.sum())}


def volume_split(bars: pd.DataFrame) -> tuple[bool, dict]:
    """volume = buy_volume + sell_volume (to floating-point rounding)."""
    bad = ~_close(bars["volume"], bars["buy_volume"] + bars["sell_volume"])
    return not bad.any(), {"violations": int(bad.sum())}


def tick_count_matches(bars: pd.DataFrame, raw_rows: int) -> tuple[bool, dict]:
    """Every archived tick of the partition is in exactly one bar."""
    total = int(bars["tick_count"].sum())
    return total == raw_rows, {"bar_ticks": total, "raw_ticks": raw_rows}


def unique_keys(duplicates: int) -> tuple[bool, dict]:
    """No (symbol, timeframe, timestamp) stored twice."""
    return duplicates == 0, {"duplicate_keys": duplicates}


def rollup(bars_1m: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """1m bars re-aggregated into a higher timeframe."""
    width = TIMEFRAMES[timeframe]
    frame = bars_1m.assign(bucket=bars_1m["timestamp"] - bars_1m["timestamp"] % width,
                           notional=bars_1m["vwap"].fillna(0) * bars_1m["volume"])
    out = frame.groupby("bucket", sort=True).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum"), buy_volume=("buy_volume", "sum"), sell_volume=("sell_volume", "sum"),
        tick_count=("tick_count", "sum"), notional=("notional", "sum"),
    )
    out["vwap"] = np.where(out["volume"] > 0, out["notional"] / out["volume"].where(out["volume"] > 0), np.nan)
    return out.drop(columns="notional").rename_axis("timestamp").reset_index()


def matches_rollup(bars: pd.DataFrame, bars_1m: pd.DataFrame, timeframe: str) -> tuple[bool, dict]:
    """Bars of a higher timeframe equal the 1m bars rolled up: OHLC and counts exactly,
    sums and vwap to floating-point rounding."""
    expected = rollup(bars_1m, timeframe)
    if len(expected) != len(bars) or not np.array_equal(expected["timestamp"], bars["timestamp"]):
        return False, {"rows": len(bars), "rolled_up_rows": len(expected)}
    exact = ["open", "high", "low", "close", "tick_count"]
    loose = ["volume", "buy_volume", "sell_volume", "vwap"]
    bad = ~np.all([np.asarray(expected[c]) == np.asarray(bars[c]) for c in exact], axis=0)
    bad |= ~np.all([_close(expected[c], bars[c]) for c in loose], axis=0)
    return not bad.any(), {"mismatched_bars": int(bad.sum()), "rows": len(bars)}
