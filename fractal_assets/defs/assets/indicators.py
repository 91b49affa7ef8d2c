"""Indicator assets: microstructure per 5-minute window and per day, Williams fractals on
5m bars, Hurst exponents, and the daily indicator snapshot, all in the warm tier."""

import json
import sqlite3

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from fractal_assets.cold.parquet import read_quotes, read_ticks
from fractal_assets.defs.assets.bars import WARM_POOL
from fractal_assets.defs.assets.ticks import raw_ticks
from fractal_assets.defs.metadata import markdown_table, png_markdown, time_range
from fractal_assets.defs.partitions import symbol_day, tick_partitions
from fractal_assets.defs.plots import fractal_png, series_png
from fractal_assets.defs.resources import ColdTierResource, WarmTierResource
from fractal_assets.indicators.fractals import williams_fractals as find_fractals
from fractal_assets.indicators.hurst import hurst_exponent as hurst
from fractal_assets.indicators.windows import METRICS, microstructure_table
from fractal_assets.market.bars import TIMEFRAMES
from fractal_assets.market.calendar import DAY_MS, SymbolDay
from fractal_assets.market.ticks import QUOTE_DTYPE, TICK_DTYPE
from fractal_assets.warm.bars import read_bars
from fractal_assets.warm.indicators import (
    read_indicator_values,
    read_microstructure,
    replace_indicator_values,
    replace_microstructure,
)

MICRO_WINDOWS = {"5m": TIMEFRAMES["5m"], "1d": TIMEFRAMES["1d"]}
FRACTAL_DAYS = 30
FRACTAL_N = 2
HURST_DAILY_BARS = 252
HURST_ROLLING_BARS = 240
HURST_STEP_BARS = 30
GROUP = "indicators"


def _structured(table, dtype: np.dtype) -> np.ndarray:
    out = np.empty(table.num_rows, dtype=dtype)
    for name in dtype.names:
        out[name] = table.column(name).to_numpy()
    return out


@asset(
    partitions_def=tick_partitions, deps=[raw_ticks], group_name=GROUP, kinds={"sqlite"}, pool=WARM_POOL,
    description="Tick imbalance, order-flow ratio, bid-ask spread (quoted, or Roll-estimated without quotes), "
    "Kyle's lambda and VPIN per 5-minute window and per day, in fractal_microstructure.",
)
def microstructure(context: AssetExecutionContext, warm: WarmTierResource, cold: ColdTierResource) -> MaterializeResult:
    day = symbol_day(context)
    ticks = _structured(read_ticks(cold.store(), day.symbol, day.date), TICK_DTYPE)
    quotes = _structured(read_quotes(cold.store(), day.symbol, day.date), QUOTE_DTYPE)
    tables = [microstructure_table(ticks, quotes, day.start, day.end, w) for w in MICRO_WINDOWS.values()]
    rows = pd.concat(tables, ignore_index=True)
    with warm.connection() as conn:
        written = replace_microstructure(conn, day.symbol, day.start, day.end, rows)
    five = tables[0]
    metadata = {
        "rows": MetadataValue.int(written),
        "ticks": MetadataValue.int(len(ticks)),
        "quotes": MetadataValue.int(len(quotes)),
        **time_range(five["timestamp"].to_numpy()),
        "day": markdown_table(tables[1]),
        "preview": markdown_table(five),
    }
    if five["vpin"].notna().any():
        plot = series_png(five["timestamp"].to_numpy(), {"VPIN": five["vpin"].to_numpy()}, f"{day.symbol} VPIN {day.date}", "VPIN")
        metadata["vpin_plot"] = png_markdown(plot, "VPIN over the day")
    return MaterializeResult(metadata=metadata)


def fractal_rows(bars: pd.DataFrame, up: np.ndarray, down: np.ndarray) -> pd.DataFrame:
    """Rows of fractal_indicator_values: the bar's high for an up fractal, its low for a down one."""
    parts = [
        pd.DataFrame({"indicator": name, "timestamp": bars["timestamp"][mask], "value": bars[column][mask]})
        for name, mask, column in (("williams_fractal_up", up, "high"), ("williams_fractal_down", down, "low"))
    ]
    rows = pd.concat(parts, ignore_index=True)
    rows["metadata"] = [{"n": FRACTAL_N}] * len(rows)
    return rows


@asset(
    partitions_def=tick_partitions, deps=["bars_5m"], group_name=GROUP, kinds={"sqlite"}, pool=WARM_POOL,
    description="Bill Williams fractals (n=2, strict) on the last 30 days of 5m bars, in fractal_indicator_values "
    "(williams_fractal_up = the bar's high, williams_fractal_down = its low).",
)
def williams_fractals(context: AssetExecutionContext, warm: WarmTierResource) -> MaterializeResult:
    day = symbol_day(context)
    start = day.end - FRACTAL_DAYS * DAY_MS
    with warm.connection() as conn:
        bars = read_bars(conn, day.symbol, "5m", start, day.end)
        up, down = find_fractals(bars["high"].to_numpy(), bars["low"].to_numpy(), n=FRACTAL_N)
        rows = fractal_rows(bars, up, down)
        replace_indicator_values(conn, day.symbol, ["williams_fractal_up", "williams_fractal_down"], "5m",
                                 start, day.end, rows)
    metadata = {"bars": MetadataValue.int(len(bars)), "up_fractals": MetadataValue.int(int(up.sum())),
                "down_fractals": MetadataValue.int(int(down.sum())), "preview": markdown_table(rows)}
    if len(bars):
        plot = fractal_png(bars, up, down, f"{day.symbol} 5m fractals up to {day.date}")
        metadata["fractal_plot"] = png_markdown(plot, "5m bars with fractals")
    return MaterializeResult(metadata=metadata)


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


def _hurst_rows(conn: sqlite3.Connection, day: SymbolDay) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily-bar H over the last 252 days and intraday H over the day's 1m closes."""
    daily = read_bars(conn, day.symbol, "1d", day.end - HURST_DAILY_BARS * DAY_MS, day.end)
    minute = read_bars(conn, day.symbol, "1m", day.start, day.end)
    rows = {}
    for timeframe, bars in (("1d", daily), ("1m", minute)):
        records = []
        for method in ("rs", "dfa"):
            value, reason = hurst_or_reason(bars["close"].to_numpy(), method)
            meta = {"bars": len(bars), "method": method, **({"reason": reason} if reason else {})}
            records.append({"indicator": f"hurst_{method}", "timestamp": day.start, "value": value, "metadata": meta})
        rows[timeframe] = pd.DataFrame(records)
    return rows["1d"], rows["1m"]


@asset(
    partitions_def=tick_partitions, deps=["bars_1d", "bars_1m"], group_name=GROUP, kinds={"sqlite"}, pool=WARM_POOL,
    description="Hurst exponent (R/S and DFA on log returns) of the last 252 daily closes (timeframe 1d) and of the "
    "day's 1m closes (timeframe 1m), in fractal_indicator_values.",
)
def hurst_exponent(context: AssetExecutionContext, warm: WarmTierResource) -> MaterializeResult:
    day = symbol_day(context)
    with warm.connection() as conn:
        daily, intraday = _hurst_rows(conn, day)
        for timeframe, rows in (("1d", daily), ("1m", intraday)):
            replace_indicator_values(conn, day.symbol, ["hurst_rs", "hurst_dfa"], timeframe, day.start, day.end, rows)
        closes = read_bars(conn, day.symbol, "1m", day.start, day.end)
    metadata = {"daily": markdown_table(daily), "intraday_1m": markdown_table(intraday)}
    rolling = {m: rolling_hurst(closes["close"].to_numpy(), m) for m in ("rs", "dfa")}
    if len(rolling["rs"]):
        ends = closes["timestamp"].to_numpy()[np.arange(HURST_ROLLING_BARS, len(closes) + 1, HURST_STEP_BARS) - 1]
        plot = series_png(ends, {f"H ({m})": v for m, v in rolling.items()},
                          f"{day.symbol} rolling Hurst, {HURST_ROLLING_BARS} 1m bars", "H")
        metadata["rolling_hurst_plot"] = png_markdown(plot, "rolling Hurst")
    return MaterializeResult(metadata=metadata)


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


@asset(
    partitions_def=tick_partitions, deps=[microstructure, williams_fractals, hurst_exponent], group_name=GROUP,
    kinds={"sqlite"}, pool=WARM_POOL,
    description="One row per symbol-day (indicator 'indicator_snapshot', timeframe 1d) whose metadata JSON holds "
    "the day's closing value of every indicator; value = how many of them are defined.",
)
def indicator_snapshot(context: AssetExecutionContext, warm: WarmTierResource) -> MaterializeResult:
    day = symbol_day(context)
    with warm.connection() as conn:
        values = snapshot_values(conn, day)
        defined = sum(v is not None for v in values.values())
        row = pd.DataFrame([{"indicator": "indicator_snapshot", "timestamp": day.start, "value": defined,
                             "metadata": values}])
        replace_indicator_values(conn, day.symbol, ["indicator_snapshot"], "1d", day.start, day.end, row)
    return MaterializeResult(metadata={"defined": MetadataValue.int(defined),
                                       "values": MetadataValue.json(json.loads(json.dumps(values)))})


INDICATOR_ASSETS = [microstructure, williams_fractals, hurst_exponent, indicator_snapshot]
