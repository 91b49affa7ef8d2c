"""Reading and writing ``fractal_bars``."""

from __future__ import annotations

import sqlite3

import pandas as pd

from fractal_assets.bars import BAR_COLUMNS
from fractal_assets.warm.db import write_transaction

_INSERT = (
    f"INSERT INTO fractal_bars (symbol, timeframe, {', '.join(BAR_COLUMNS)}) "
    f"VALUES (?, ?, {', '.join('?' * len(BAR_COLUMNS))})"
)


def replace_bars(conn: sqlite3.Connection, symbol: str, timeframe: str, start: int, end: int, bars: pd.DataFrame) -> int:
    """Replace the bars of [start, end) with ``bars`` in one transaction: re-runs leave identical rows."""
    rows = bars[list(BAR_COLUMNS)].astype(object).where(bars[list(BAR_COLUMNS)].notna(), None)
    records = [(symbol, timeframe, *r) for r in rows.itertuples(index=False, name=None)]
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
