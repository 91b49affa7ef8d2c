"""Reading and writing ``fractal_bars``."""

from __future__ import annotations

import sqlite3
from itertools import repeat

import pandas as pd

from fractal_assets.market.bars import BAR_COLUMNS
from fractal_assets.warm.db import write_transaction

_INSERT = (
    f"INSERT INTO fractal_bars (symbol, timeframe, {', '.join(BAR_COLUMNS)}) "
    f"VALUES (?, ?, {', '.join('?' * len(BAR_COLUMNS))})"
)


def replace_bars(conn: sqlite3.Connection, symbol: str, timeframe: str, start: int, end: int, bars: pd.DataFrame) -> int:
    """Replace the bars of [start, end) with ``bars`` in one transaction: re-runs leave identical rows.

    A NaN vwap (a bucket of zero-volume ticks) is stored as NULL by SQLite itself.
    """
    columns = [bars[c].tolist() for c in BAR_COLUMNS]
    records = list(zip(repeat(symbol), repeat(timeframe), *columns))
    with write_transaction(conn):
        conn.execute(
            "DELETE FROM fractal_bars WHERE symbol = ? AND timeframe = ? AND timestamp >= ? AND timestamp < ?",
            (symbol, timeframe, start, end),
        )
        conn.executemany(_INSERT, records)
    return len(records)


_UPSERT = (
    _INSERT + " ON CONFLICT (symbol, timeframe, timestamp) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in BAR_COLUMNS if c != "timestamp")
    + " WHERE excluded.tick_count >= fractal_bars.tick_count"
)


def upsert_bars(conn: sqlite3.Connection, rows: list[tuple[str, str, pd.DataFrame]]) -> int:
    """Insert or update bars of several (symbol, timeframe) in one transaction; a stored bar
    is only replaced by one counting at least as many ticks, so a bar never loses ticks to a
    build from fewer of them (an archive that is behind the live bars)."""
    records = [
        record for symbol, timeframe, bars in rows
        for record in zip(repeat(symbol), repeat(timeframe), *(bars[c].tolist() for c in BAR_COLUMNS))
    ]
    if not records:
        return 0
    with write_transaction(conn):
        conn.executemany(_UPSERT, records)
    return len(records)


def read_bars(conn: sqlite3.Connection, symbol: str, timeframe: str, start: int, end: int) -> pd.DataFrame:
    """Bars of [start, end), oldest first."""
    return pd.read_sql_query(
        f"SELECT {', '.join(BAR_COLUMNS)} FROM fractal_bars "
        "WHERE symbol = ? AND timeframe = ? AND timestamp >= ? AND timestamp < ? ORDER BY timestamp",
        conn, params=(symbol, timeframe, start, end),
    )
