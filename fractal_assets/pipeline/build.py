"""The tick pipeline's work for a batch of UTC dates and every symbol with data on them:
archive each symbol-day, build its bars, check them, build its indicators.

Dagster calls this once per run (``defs.assets.pipeline``), and ``bench/orchestration.py``
calls it directly to measure what the work itself costs. Each symbol-day is read once:
archiving yields the day's whole table in memory, which feeds every bar timeframe and the
microstructure metrics. Symbols are processed one after another, their dates in ascending
order, so only one symbol's hot records and one day's ticks are held at a time, and the
fractals and Hurst exponents of a date see the bars of the dates before it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from fractal_assets.cold.archive import HotSlice, stored_dates, stored_symbols, trim
from fractal_assets.cold.parquet import read_quotes, read_ticks
from fractal_assets.cold.store import ColdStore
from fractal_assets.hot.store import HotStore
from fractal_assets.market.bars import TIMEFRAMES, compute_bars
from fractal_assets.market.calendar import SymbolDay
from fractal_assets.market.ticks import QUOTE_DTYPE, TICK_DTYPE
from fractal_assets.pipeline import checks
from fractal_assets.pipeline.indicators import (
    INDICATORS,
    build_fractals,
    build_hurst,
    build_microstructure,
    build_snapshot,
)
from fractal_assets.warm.bars import read_bars, replace_bars

BASE = "1m"
BLOCKING_CHECKS = ("ohlc_consistent", "volume_split", "tick_count_matches_raw", "unique_keys")
ROLLUP_CHECK = f"equals_{BASE}_rollup"
"""Warns only: a higher timeframe that differs from the 1m roll-up is suspect, not wrong."""


@dataclass(frozen=True)
class Selection:
    """What a run builds: Dagster runs a subset of the assets when asked to."""

    archive: bool = True
    timeframes: tuple[str, ...] = tuple(TIMEFRAMES)
    indicators: tuple[str, ...] = INDICATORS


@dataclass
class DayReport:
    """What the run did for one symbol-day."""

    symbol: str
    date: str
    ticks: int
    quotes: int
    from_hot: int = 0
    already_archived: int = 0
    duplicates: int = 0
    """Hot ticks already in the cold tier (archived before their watermark moved): not stored twice."""
    ts_range: tuple[int, int] | None = None
    """The day's first and last tick times (epoch ms), None without ticks."""
    bars: dict[str, int] = field(default_factory=dict)
    checks: dict[tuple[str, str], tuple[bool, dict]] = field(default_factory=dict)
    """(timeframe, check name) -> (passed, details)."""
    indicators: dict[str, int] = field(default_factory=dict)
    """Indicator -> rows written; empty when the day's bars failed a blocking check."""
    vpin_bucket_volume: float | None = None
    """The volume of the VPIN buckets the day opened (average daily volume / 50)."""
    vpin_unchained: list[str] = field(default_factory=list)
    """Earlier days with trades whose VPIN buckets the day's chain misses (not yet built)."""

    @property
    def blocked(self) -> bool:
        """A blocking check failed: the day's indicators were not built."""
        return any(not ok for (_, name), (ok, _) in self.checks.items() if name in BLOCKING_CHECKS)


@dataclass
class RunReport:
    """Every symbol-day a run built, and the hot-tier entries it trimmed."""

    days: list[DayReport] = field(default_factory=list)
    trimmed_entries: int = 0

    @property
    def ticks(self) -> int:
        return sum(d.ticks for d in self.days)

    @property
    def bars(self) -> int:
        return sum(sum(d.bars.values()) for d in self.days)

    @property
    def failed(self) -> list[DayReport]:
        return [d for d in self.days if d.blocked]


def structured(table: pa.Table, dtype: np.dtype) -> np.ndarray:
    """Columns of a table as a numpy structured array of the given dtype."""
    out = np.empty(table.num_rows, dtype=dtype)
    for name in dtype.names:
        out[name] = table.column(name).to_numpy()
    return out


def duplicate_keys(conn: sqlite3.Connection, day: SymbolDay, timeframe: str) -> int:
    """(symbol, timeframe, timestamp) keys stored more than once in the day."""
    return conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM fractal_bars WHERE symbol = ? AND timeframe = ? "
        "AND timestamp >= ? AND timestamp < ? GROUP BY timestamp HAVING COUNT(*) > 1)",
        (day.symbol, timeframe, day.start, day.end),
    ).fetchone()[0]


def check_bars(conn: sqlite3.Connection, day: SymbolDay, timeframe: str, end: int,
               raw_rows: int) -> dict[str, tuple[bool, dict]]:
    """The checks of a timeframe's stored bars of [day start, end), by check name."""
    stored = read_bars(conn, day.symbol, timeframe, day.start, end)
    outcomes = {
        "ohlc_consistent": checks.ohlc_consistent(stored),
        "volume_split": checks.volume_split(stored),
        "tick_count_matches_raw": checks.tick_count_matches(stored, raw_rows),
        "unique_keys": checks.unique_keys(duplicate_keys(conn, day, timeframe)),
    }
    if timeframe != BASE:
        base = read_bars(conn, day.symbol, BASE, day.start, end)
        outcomes[ROLLUP_CHECK] = checks.matches_rollup(stored, base, timeframe)
    return outcomes


def final_until(day: SymbolDay, ts: np.ndarray, tolerance_ms: int, now_ms: int) -> int:
    """The time up to which the day's buckets can take no more ticks: the day's end once the
    wall clock is past it by the tolerance; within the open day, the newest archived tick less
    the tolerance (ingest rejects older ticks), the rule the live bars of ``ingest.live_bars``
    follow, so that the two writers agree on every bucket either of them writes."""
    if now_ms >= day.end + tolerance_ms:
        return day.end
    return int(ts[-1]) - tolerance_ms if len(ts) else day.start


def build_bars(conn: sqlite3.Connection, day: SymbolDay, ticks: pa.Table, timeframes: Iterable[str],
               final_ms: int, report: DayReport) -> None:
    """Every selected timeframe's final buckets from the day's ticks, stored and checked. The
    open day's later buckets are left to the live bars of the ingest process and to the next
    run: replacing them with bars of the ticks archived so far would take ticks away."""
    ts = ticks.column("ts").to_numpy()
    columns = [ts, *(ticks.column(c).to_numpy() for c in ("price", "volume", "side"))]
    for timeframe in timeframes:
        width = TIMEFRAMES[timeframe]
        end = day.end if final_ms >= day.end else max(day.start, final_ms - final_ms % width)
        rows = int(np.searchsorted(ts, end))
        bars = compute_bars(*(c[:rows] for c in columns), timeframe)
        report.bars[timeframe] = replace_bars(conn, day.symbol, timeframe, day.start, end, bars)
        for name, outcome in check_bars(conn, day, timeframe, end, rows).items():
            report.checks[(timeframe, name)] = outcome


def microstructure(conn: sqlite3.Connection, day: SymbolDay, ticks: pa.Table, quotes: pa.Table, vpin_days: int,
                   report: DayReport) -> int:
    """The microstructure rows of the day, its VPIN chain noted in the report."""
    rows, buckets = build_microstructure(conn, day, structured(ticks, TICK_DTYPE), structured(quotes, QUOTE_DTYPE),
                                         vpin_days)
    report.vpin_bucket_volume, report.vpin_unchained = buckets.span.bucket_volume, buckets.unchained
    return rows


def build_indicators(conn: sqlite3.Connection, day: SymbolDay, ticks: pa.Table, quotes: pa.Table,
                     names: Iterable[str], vpin_days: int, report: DayReport) -> None:
    """The selected indicators, in dependency order."""
    builders = {
        "microstructure": lambda: microstructure(conn, day, ticks, quotes, vpin_days, report),
        "williams_fractals": lambda: build_fractals(conn, day),
        "hurst_exponent": lambda: build_hurst(conn, day),
        "indicator_snapshot": lambda: build_snapshot(conn, day),
    }
    for name in INDICATORS:
        if name in names:
            report.indicators[name] = builders[name]()


@dataclass
class Sources:
    """The tiers a run reads and writes, the hot tier's retention, ingest's timestamp
    tolerance and the days sizing VPIN's buckets; ``now_ms`` (default: the wall clock) tells
    the open day from closed ones."""

    hot: HotStore | None
    cold: ColdStore
    warm: sqlite3.Connection
    keep_ms: int
    tolerance_ms: int
    vpin_days: int
    now_ms: int | None = None

    def now(self) -> int:
        return self.now_ms if self.now_ms is not None else time.time_ns() // 1_000_000

    def symbols(self) -> list[str]:
        """Every symbol with data in the hot or the cold tier."""
        return sorted(stored_symbols(self.cold) | set(self.hot.symbols() if self.hot else ()))


def build_symbol(sources: Sources, symbol: str, dates: list[str], selection: Selection) -> list[DayReport]:
    """One symbol's dates of the run that hold data, ascending: archive (or read), bars, indicators."""
    cold = sources.cold
    if selection.archive:
        ticks_hot = HotSlice.read(sources.hot, symbol, "ticks", dates)
        quotes_hot = HotSlice.read(sources.hot, symbol, "quotes", dates)
        have = stored_dates(cold, symbol) | ticks_hot.dates() | quotes_hot.dates()
    else:
        have = stored_dates(cold, symbol)
    reports = []
    for date in sorted(have.intersection(dates)):
        day = SymbolDay(symbol, date)
        if selection.archive:
            ticks, quotes = ticks_hot.archive(cold, date), quotes_hot.archive(cold, date)
            report = DayReport(symbol, date, ticks.table.num_rows, quotes.table.num_rows, ticks.from_hot,
                               ticks.already_archived, ticks.duplicates)
            tick_table, quote_table = ticks.table, quotes.table
        else:
            tick_table, quote_table = read_ticks(cold, symbol, date), read_quotes(cold, symbol, date)
            report = DayReport(symbol, date, tick_table.num_rows, quote_table.num_rows)
        ts = tick_table.column("ts").to_numpy()
        report.ts_range = (int(ts[0]), int(ts[-1])) if len(ts) else None
        final_ms = final_until(day, ts, sources.tolerance_ms, sources.now())
        build_bars(sources.warm, day, tick_table, selection.timeframes, final_ms, report)
        if not report.blocked:
            build_indicators(sources.warm, day, tick_table, quote_table, selection.indicators, sources.vpin_days, report)
        reports.append(report)
    return reports


def build_days(sources: Sources, dates: Iterable[str], selection: Selection = Selection(),
               symbols: Iterable[str] | None = None) -> RunReport:
    """Build every symbol-day of the dates (of the given symbols only, when named); the hot
    tier then drops the archived entries older than its retention."""
    dates = sorted(set(dates))
    wanted = set(symbols) if symbols is not None else None
    report = RunReport()
    for symbol in sources.symbols():
        if wanted is not None and symbol not in wanted:
            continue
        report.days.extend(build_symbol(sources, symbol, dates, selection))
        if selection.archive:
            report.trimmed_entries += trim(sources.hot, symbol, sources.keep_ms)
    report.days.sort(key=lambda d: (d.date, d.symbol))
    return report
