"""Reading and writing ``fractal_microstructure`` and ``fractal_indicator_values``."""

from __future__ import annotations

import json
import sqlite3
from itertools import repeat

import pandas as pd

from fractal_assets.warm.db import write_transaction

MICRO_COLUMNS = (
    "timestamp", "window_ms", "tick_imbalance", "order_flow_ratio", "bid_ask_spread", "time_weighted_spread",
    "spread_estimated", "kyle_lambda", "vpin", "tick_count",
)


def replace_microstructure(conn: sqlite3.Connection, symbol: str, start: int, end: int, rows: pd.DataFrame) -> int:
    """Replace a symbol's metrics of windows starting in [start, end), every window length."""
    records = list(zip(repeat(symbol), *(rows[c].tolist() for c in MICRO_COLUMNS)))
    with write_transaction(conn):
        conn.execute(
            "DELETE FROM fractal_microstructure WHERE symbol = ? AND timestamp >= ? AND timestamp < ?",
            (symbol, start, end),
        )
        conn.executemany(
            f"INSERT INTO fractal_microstructure (symbol, {', '.join(MICRO_COLUMNS)}) "
            f"VALUES (?, {', '.join('?' * len(MICRO_COLUMNS))})",
            records,
        )
    return len(records)


def read_microstructure(conn: sqlite3.Connection, symbol: str, start: int, end: int, window_ms: int) -> pd.DataFrame:
    return pd.read_sql_query(
        f"SELECT {', '.join(MICRO_COLUMNS)} FROM fractal_microstructure WHERE symbol = ? AND window_ms = ? "
        "AND timestamp >= ? AND timestamp < ? ORDER BY timestamp",
        conn, params=(symbol, window_ms, start, end),
    )


def replace_indicator_values(
    conn: sqlite3.Connection, symbol: str, indicators: list[str], timeframe: str, start: int, end: int,
    rows: pd.DataFrame,
) -> int:
    """Replace the given indicators' values in [start, end); ``rows`` has indicator, timestamp,
    value and metadata (a dict, stored as JSON)."""
    records = list(zip(
        repeat(symbol), rows["indicator"].tolist(), repeat(timeframe), rows["timestamp"].tolist(),
        rows["value"].tolist(), [json.dumps(m, sort_keys=True) for m in rows["metadata"]],
    ))
    marks = ", ".join("?" * len(indicators))
    with write_transaction(conn):
        conn.execute(
            f"DELETE FROM fractal_indicator_values WHERE symbol = ? AND timeframe = ? AND indicator IN ({marks}) "
            "AND timestamp >= ? AND timestamp < ?",
            (symbol, timeframe, *indicators, start, end),
        )
        conn.executemany(
            "INSERT INTO fractal_indicator_values (symbol, indicator, timeframe, timestamp, value, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            records,
        )
    return len(records)


def read_indicator_values(conn: sqlite3.Connection, symbol: str, indicator: str, timeframe: str) -> pd.DataFrame:
    return pd.read_sql_query(
        "SELECT timestamp, value, metadata FROM fractal_indicator_values "
        "WHERE symbol = ? AND indicator = ? AND timeframe = ? ORDER BY timestamp",
        conn, params=(symbol, indicator, timeframe),
    )
