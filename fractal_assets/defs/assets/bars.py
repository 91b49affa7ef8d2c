"""``bars_1m`` ... ``bars_1d``: OHLCV bars of each symbol-day in ``fractal_bars``, with checks.

Every timeframe is computed from the archived ticks themselves; the
higher ones are then checked against a roll-up of ``bars_1m``.
"""

import sqlite3

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from fractal_assets.cold.parquet import read_ticks
from fractal_assets.defs import bar_checks
from fractal_assets.defs.assets.ticks import raw_ticks
from fractal_assets.defs.metadata import markdown_table, png_markdown, time_range
from fractal_assets.defs.partitions import symbol_day, tick_partitions
from fractal_assets.defs.plots import candlestick_png
from fractal_assets.defs.resources import ColdTierResource, WarmTierResource
from fractal_assets.market.bars import TIMEFRAMES, compute_bars
from fractal_assets.market.calendar import SymbolDay
from fractal_assets.warm.bars import read_bars, replace_bars

WARM_POOL = "warm_sqlite"
"""SQLite takes one writer at a time: its writers share this Dagster pool."""

BASE = "1m"


def _duplicates(conn: sqlite3.Connection, symbol: str, timeframe: str) -> int:
    return conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM fractal_bars WHERE symbol = ? AND timeframe = ? "
        "GROUP BY symbol, timeframe, timestamp HAVING COUNT(*) > 1)",
        (symbol, timeframe),
    ).fetchone()[0]


def _check(name: str, outcome: tuple[bool, dict], blocking: bool) -> AssetCheckResult:
    passed, details = outcome
    return AssetCheckResult(
        check_name=name, passed=passed, metadata=details,
        severity=AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN,
    )


def _check_results(conn: sqlite3.Connection, day: SymbolDay, timeframe: str, stored: pd.DataFrame, raw_rows: int) -> list[AssetCheckResult]:
    results = [
        _check("ohlc_consistent", bar_checks.ohlc_consistent(stored), blocking=True),
        _check("volume_split", bar_checks.volume_split(stored), blocking=True),
        _check("tick_count_matches_raw", bar_checks.tick_count_matches(stored, raw_rows), blocking=True),
        _check("unique_keys", bar_checks.unique_keys(_duplicates(conn, day.symbol, timeframe)), blocking=True),
    ]
    if timeframe != BASE:
        base = read_bars(conn, day.symbol, BASE, day.start, day.end)
        results.append(_check(f"equals_{BASE}_rollup", bar_checks.matches_rollup(stored, base, timeframe), blocking=False))
    return results


def _check_specs(name: str, timeframe: str) -> list[AssetCheckSpec]:
    names = ["ohlc_consistent", "volume_split", "tick_count_matches_raw", "unique_keys"]
    specs = [AssetCheckSpec(n, asset=name, blocking=True) for n in names]
    if timeframe != BASE:
        specs.append(AssetCheckSpec(f"equals_{BASE}_rollup", asset=name, additional_deps=[f"bars_{BASE}"]))
    return specs


def build_bars_asset(timeframe: str) -> AssetsDefinition:
    """The bars asset of one timeframe."""
    name = f"bars_{timeframe}"

    @asset(
        name=name,
        partitions_def=tick_partitions,
        deps=[raw_ticks] if timeframe == BASE else [raw_ticks, f"bars_{BASE}"],
        group_name="bars",
        kinds={"sqlite"},
        pool=WARM_POOL,
        check_specs=_check_specs(name, timeframe),
        description=f"{timeframe} OHLCV bars (buy/sell volume, tick count, VWAP) in fractal_bars, "
        "buckets aligned to the UTC epoch.",
    )
    def _bars(context: AssetExecutionContext, warm: WarmTierResource, cold: ColdTierResource) -> MaterializeResult:
        day = symbol_day(context)
        ticks = read_ticks(cold.store(), day.symbol, day.date)
        bars = compute_bars(*(ticks.column(c).to_numpy() for c in ("ts", "price", "volume", "side")), timeframe)
        with warm.connection() as conn:
            written = replace_bars(conn, day.symbol, timeframe, day.start, day.end, bars)
            stored = read_bars(conn, day.symbol, timeframe, day.start, day.end)
            checks = _check_results(conn, day, timeframe, stored, ticks.num_rows)
        metadata = {
            "rows": MetadataValue.int(written),
            "ticks": MetadataValue.int(ticks.num_rows),
            **time_range(stored["timestamp"].to_numpy()),
            "preview": markdown_table(stored),
        }
        if len(stored):
            metadata["candles"] = png_markdown(candlestick_png(stored, f"{day.symbol} {timeframe} {day.date}"), "candles")
        return MaterializeResult(metadata=metadata, check_results=checks)

    return _bars


BAR_ASSETS = [build_bars_asset(tf) for tf in TIMEFRAMES]
