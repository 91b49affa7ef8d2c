"""The warm-tier indicators of one symbol-day: microstructure per 5-minute window and per day,
Williams fractals on 5m bars, Hurst exponents, and the daily snapshot of them all."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd

from fractal_assets.indicators.fractals import williams_fractals as find_fractals
from fractal_assets.indicators.hurst import hurst_exponent as hurst
from fractal_assets.indicators.windows import METRICS, microstructure_table
from fractal_assets.market.bars import TIMEFRAMES
from fractal_assets.market.calendar import DAY_MS, SymbolDay
from fractal_assets.warm.bars import read_bars
from fractal_assets.warm.indicators import (
    read_indicator_values,
    read_microstructure,
    replace_indicator_values,
    replace_microstructure,
)
from fractal_assets.warm.vpin_state import DayBuckets, continue_day

MICRO_WINDOWS = {"5m": TIMEFRAMES["5m"], "1d": TIMEFRAMES["1d"]}
FRACTAL_DAYS = 30
FRACTAL_N = 2
HURST_DAILY_BARS = 252
HURST_ROLLING_BARS = 240
HURST_STEP_BARS = 30

INDICATORS = ("microstructure", "williams_fractals", "hurst_exponent", "indicator_snapshot")
"""The indicator assets, in the order they are built (the snapshot reads the others)."""


def build_microstructure(conn: sqlite3.Connection, day: SymbolDay, ticks: np.ndarray, quotes: np.ndarray,
                         vpin_days: int) -> tuple[int, DayBuckets]:
    """The day's metrics per 5-minute window and for the whole day, VPIN continuing the
    buckets of the days before (so days are built oldest first); returns the rows written
    and the day's VPIN buckets."""
    buckets = continue_day(conn, day.symbol, day.start, ticks["volume"], ticks["side"], vpin_days)
    tables = [microstructure_table(ticks, quotes, day.start, day.end, w, buckets.span) for w in MICRO_WINDOWS.values()]
    rows = replace_microstructure(conn, day.symbol, day.start, day.end, pd.concat(tables, ignore_index=True))
    return rows, buckets


def fractal_window(conn: sqlite3.Connection, day: SymbolDay) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The 5m bars of the 30 days up to the day's end, with their up and down fractals."""
    bars = read_bars(conn, day.symbol, "5m", day.end - FRACTAL_DAYS * DAY_MS, day.end)
    up, down = find_fractals(bars["high"].to_numpy(), bars["low"].to_numpy(), n=FRACTAL_N)
    return bars, up, down


def fractal_rows(bars: pd.DataFrame, up: np.ndarray, down: np.ndarray) -> pd.DataFrame:
    """Rows of fractal_indicator_values: the bar's high for an up fractal, its low for a down one."""
    parts = [
        pd.DataFrame({"indicator": name, "timestamp": bars["timestamp"][mask], "value": bars[column][mask]})
        for name, mask, column in (("williams_fractal_up", up, "high"), ("williams_fractal_down", down, "low"))
    ]
    rows = pd.concat(parts, ignore_index=True)
    rows["metadata"] = [{"n": FRACTAL_N}] * len(rows)
    return rows


def build_fractals(conn: sqlite3.Connection, day: SymbolDay) -> int:
    """Fractals of the trailing 30 days of 5m bars; returns the rows written."""
    bars, up, down = fractal_window(conn, day)
    return replace_indicator_values(conn, day.symbol, ["williams_fractal_up", "williams_fractal_down"], "5m",
                                    day.end - FRACTAL_DAYS * DAY_MS, day.end, fractal_rows(bars, up, down))


def hurst_or_reason(closes: np.ndarray, method: str) -> tuple[float | None, str]:
    """H, or None with the reason when there is too little history."""
    try:
        return float(hurst(closes, method=method)), ""
    except ValueError as exc:
        return None, str(exc)


def rolling_hurst(closes: np.ndarray, method: str) -> np.ndarray:
    """H over trailing windows of ``HURST_ROLLING_BARS`` closes, every ``HURST_STEP_BARS`` bars."""
    ends = np.arange(HURST_ROLLING_BARS, len(closes) + 1, HURST_STEP_BARS)
    return np.array([hurst_or_reason(closes[e - HURST_ROLLING_BARS:e], method)[0] or np.nan for e in ends])


def hurst_rows(conn: sqlite3.Connection, day: SymbolDay) -> dict[str, pd.DataFrame]:
    """Timeframe -> rows: daily-bar H over the last 252 days ("1d") and intraday H over the
    day's 1m closes ("1m")."""
    bars = {"1d": read_bars(conn, day.symbol, "1d", day.end - HURST_DAILY_BARS * DAY_MS, day.end),
            "1m": read_bars(conn, day.symbol, "1m", day.start, day.end)}
    rows = {}
    for timeframe, frame in bars.items():
        records = []
        for method in ("rs", "dfa"):
            value, reason = hurst_or_reason(frame["close"].to_numpy(), method)
            meta = {"bars": len(frame), "method": method, **({"reason": reason} if reason else {})}
            records.append({"indicator": f"hurst_{method}", "timestamp": day.start, "value": value, "metadata": meta})
        rows[timeframe] = pd.DataFrame(records)
    return rows


def build_hurst(conn: sqlite3.Connection, day: SymbolDay) -> int:
    """Both Hurst estimates on daily and on 1m closes; returns the rows written."""
    return sum(replace_indicator_values(conn, day.symbol, ["hurst_rs", "hurst_dfa"], timeframe, day.start, day.end, rows)
               for timeframe, rows in hurst_rows(conn, day).items())


def snapshot_values(conn: sqlite3.Connection, day: SymbolDay) -> dict[str, float | None]:
    """The day's closing value of every indicator."""
    values: dict[str, float | None] = {}
    daily = read_microstructure(conn, day.symbol, day.start, day.end, MICRO_WINDOWS["1d"])
    for name in METRICS:
        values[name] = None if daily.empty or pd.isna(daily[name].iloc[-1]) else float(daily[name].iloc[-1])
    for indicator, timeframe in (("hurst_rs", "1d"), ("hurst_dfa", "1d"), ("hurst_rs", "1m"), ("hurst_dfa", "1m")):
        rows = read_indicator_values(conn, day.symbol, indicator, timeframe)
        rows = rows[rows["timestamp"] == day.start]
        values[f"{indicator}_{timeframe}"] = None if rows.empty or pd.isna(rows["value"].iloc[0]) else float(rows["value"].iloc[0])
    for side in ("up", "down"):
        rows = read_indicator_values(conn, day.symbol, f"williams_fractal_{side}", "5m")
        rows = rows[(rows["timestamp"] >= day.start) & (rows["timestamp"] < day.end)]
        values[f"williams_fractals_{side}"] = float(len(rows))
    return values


def build_snapshot(conn: sqlite3.Connection, day: SymbolDay) -> int:
    """One row (indicator 'indicator_snapshot', timeframe 1d) whose metadata holds every
    closing value; its value counts the defined ones. Returns the rows written."""
    values = snapshot_values(conn, day)
    row = pd.DataFrame([{"indicator": "indicator_snapshot", "timestamp": day.start,
                         "value": sum(v is not None for v in values.values()), "metadata": values}])
    return replace_indicator_values(conn, day.symbol, ["indicator_snapshot"], "1d", day.start, day.end, row)
