"""Warm-tier retention: bars older than the window move to Parquet, then leave SQLite.

The window is counted back from each symbol's newest bar rather than from
the wall clock, so replayed history is not pruned the moment it is built.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from fractal_assets.cold.parquet import read_partition, write_atomic
from fractal_assets.cold.store import ColdStore
from fractal_assets.market import schema
from fractal_assets.market.bars import BAR_COLUMNS
from fractal_assets.market.calendar import DAY_MS
from fractal_assets.market.symbols import normalize_symbol
from fractal_assets.warm.db import write_transaction

BAR_SCHEMA = schema.BAR.arrow


@dataclass(frozen=True)
class Pruned:
    symbol: str
    timeframe: str
    rows: int
    cutoff: int


def bar_partition(cold: ColdStore, timeframe: str, symbol: str, date: str) -> str:
    """``{cold}/bars/timeframe=TF/symbol=SYM/date=YYYY-MM-DD``."""
    return cold.join("bars", f"timeframe={timeframe}", f"symbol={normalize_symbol(symbol)}", f"date={date}")


def export_bars(cold: ColdStore, symbol: str, timeframe: str, bars: pd.DataFrame) -> None:
    """Merge bars into their Parquet day partitions (a newer row replaces an older one)."""
    dates = bars["timestamp"].to_numpy().astype("M8[ms]").astype("M8[D]").astype(str)
    for date, rows in bars.groupby(dates):
        target = bar_partition(cold, timeframe, symbol, date)
        new = pa.Table.from_pandas(rows[list(BAR_COLUMNS)], schema=BAR_SCHEMA, preserve_index=False)
        merged = pa.concat_tables([read_partition(cold, target, BAR_SCHEMA), new]).to_pandas()
        merged = merged.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
        write_atomic(cold, target, pa.Table.from_pandas(merged, schema=BAR_SCHEMA, preserve_index=False))


def prune_bars(conn: sqlite3.Connection, cold: ColdStore, keep_days: int) -> list[Pruned]:
    """Export then delete every bar older than ``keep_days`` before its symbol's newest bar.

    Reading, exporting and deleting share one write transaction, so no bar
    written meanwhile can be deleted without having been exported.
    """
    pruned = []
    newest = conn.execute("SELECT symbol, MAX(timestamp) FROM fractal_bars GROUP BY symbol").fetchall()
    for symbol, last in newest:
        cutoff = int(last) - keep_days * DAY_MS
        for (timeframe,) in conn.execute(
            "SELECT DISTINCT timeframe FROM fractal_bars WHERE symbol = ? AND timestamp < ?", (symbol, cutoff)
        ).fetchall():
            with write_transaction(conn):
                old = pd.read_sql_query(
                    f"SELECT {', '.join(BAR_COLUMNS)} FROM fractal_bars WHERE symbol = ? AND timeframe = ? "
                    "AND timestamp < ? ORDER BY timestamp", conn, params=(symbol, timeframe, cutoff),
                )
                export_bars(cold, symbol, timeframe, old)
                conn.execute(
                    "DELETE FROM fractal_bars WHERE symbol = ? AND timeframe = ? AND timestamp < ?",
                    (symbol, timeframe, cutoff),
                )
            pruned.append(Pruned(symbol, timeframe, len(old), cutoff))
    return pruned




DERIVED_TABLES = ("fractal_microstructure", "fractal_indicator_values")
"""Indicator tables: rebuilt from archived ticks and bars on demand, so pruned without export."""


def prune_derived(conn: sqlite3.Connection, keep_days: int) -> dict[str, int]:
    """Delete indicator rows older than ``keep_days`` before their symbol's newest bar."""
    deleted = {}
    with write_transaction(conn):
        for table in DERIVED_TABLES:
            cursor = conn.execute(
                f"DELETE FROM {table} WHERE timestamp < "
                f"(SELECT MAX(b.timestamp) FROM fractal_bars b WHERE b.symbol = {table}.symbol) - ?",
                (keep_days * DAY_MS,),
            )
            deleted[table] = cursor.rowcount
    return deleted
