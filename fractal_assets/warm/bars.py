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


def read_bars(conn: sqlite3.Connection, symbol: str, timeframe: str, start: int, end: int) -> pd.DataFrame:
    """Bars of [start, end), oldest first."""
    return pd.read_sql_query(
        f"SELECT {', '.join(BAR_COLUMNS)} FROM fractal_bars "
        "WHERE symbol = ? AND timeframe = ? AND timestamp >= ? AND timestamp < ? ORDER BY timestamp",
        conn, params=(symbol, timeframe, start, end),
    )
