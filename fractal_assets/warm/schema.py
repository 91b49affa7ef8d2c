"""Versioned schema migrations of the warm tier: the one definition of its tables.

Each migration runs once, in order, inside a transaction that also records
its version in ``fractal_schema_version``. Only ``fractal_``-prefixed
objects are ever created, so the database may belong to a host application.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from fractal_assets.warm.db import write_transaction

VERSION_TABLE = "fractal_schema_version"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "OHLCV bars of every timeframe",
        (
            """CREATE TABLE fractal_bars (
                symbol TEXT NOT NULL,
                timeframe TEXT NOT NULL CHECK (timeframe IN ('1m', '5m', '15m', '1h', '1d')),
                timestamp INTEGER NOT NULL,
                open REAL NOT NULL,
                high REAL NOT NULL,
                low REAL NOT NULL,
                close REAL NOT NULL,
                volume REAL NOT NULL,
                buy_volume REAL NOT NULL,
                sell_volume REAL NOT NULL,
                tick_count INTEGER NOT NULL,
                vwap REAL,
                PRIMARY KEY (symbol, timeframe, timestamp)
            ) WITHOUT ROWID""",
            "CREATE INDEX fractal_bars_symbol_ts ON fractal_bars (symbol, timestamp)",
        ),
    ),
    Migration(
        2,
        "microstructure metrics and indicator values",
        (
            """CREATE TABLE fractal_microstructure (
                symbol TEXT NOT NULL,
                timestamp INTEGER NOT NULL,
                window_ms INTEGER NOT NULL,
                tick_imbalance REAL,
                order_flow_ratio REAL,
                bid_ask_spread REAL,
                spread_estimated INTEGER NOT NULL DEFAULT 0,
                kyle_lambda REAL,
                vpin REAL,
                tick_count INTEGER NOT NULL,
                PRIMARY KEY (symbol, timestamp, window_ms)
            ) WITHOUT ROWID""",
            """CREATE TABLE fractal_indicator_values (
                symbol TEXT NOT NULL,
                indicator TEXT NOT NULL,
                timeframe TEXT NOT NULL,
                timestamp INTEGER NOT NULL,
                value REAL,
                metadata TEXT NOT NULL DEFAULT '{}',
                PRIMARY KEY (symbol, indicator, timeframe, timestamp)
            ) WITHOUT ROWID""",
        ),
    ),
    Migration(
        3,
        "backtest results cache",
        (
            """CREATE TABLE fractal_backtest_results (
                key TEXT PRIMARY KEY,
                params TEXT NOT NULL CHECK (json_valid(params)),
                created INTEGER NOT NULL,
                result BLOB NOT NULL
            ) WITHOUT ROWID""",
        ),
    ),
    Migration(
        4,
        "time-weighted quoted spread beside the per-quote mean",
        ("ALTER TABLE fractal_microstructure ADD COLUMN time_weighted_spread REAL",),
    ),
    Migration(
        5,
        "VPIN bucket state carried from one day to the next",
        (
            """CREATE TABLE fractal_vpin_state (
                symbol TEXT NOT NULL,
                timestamp INTEGER NOT NULL,
                bucket_volume REAL,
                state TEXT NOT NULL CHECK (json_valid(state)),
                PRIMARY KEY (symbol, timestamp)
            ) WITHOUT ROWID""",
        ),
    ),
)


def current_version(conn: sqlite3.Connection) -> int:
    """Highest applied migration, 0 for a database fractal-alpha never touched."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
    ).fetchone()
    if not exists:
        return 0
    return conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply pending migrations; returns the versions applied (none when up to date)."""
    applied = []
    with write_transaction(conn):
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
            "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )
        done = current_version(conn)
        for migration in MIGRATIONS:
            if migration.version <= done:
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO {VERSION_TABLE} (version, description) VALUES (?, ?)",
                (migration.version, migration.description),
            )
            applied.append(migration.version)
    return applied
