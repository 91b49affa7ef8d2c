"""Backtest results kept in ``fractal_backtest_results`` (migration 3), keyed by their parameters.

A backtest is expensive and deterministic in its parameters, so its
serialized result (any bytes: Arrow IPC, JSON, ...) is stored under a key
derived from the canonical JSON of the parameters. The table is WITHOUT
ROWID so that, in a host application's database, it adds no
``sqlite_autoindex_`` object beside the ``fractal_`` ones.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from fractal_assets.warm.db import write_transaction


@dataclass(frozen=True)
class BacktestResult:
    key: str
    params: dict[str, Any]
    created: int
    """Epoch ms when the result was stored."""
    result: bytes


def canonical_params(params: dict[str, Any]) -> str:
    """JSON with sorted keys and no whitespace: equal parameters give equal text."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def result_key(params: dict[str, Any]) -> str:
    """SHA-256 of the canonical parameters."""
    return hashlib.sha256(canonical_params(params).encode()).hexdigest()


def put_result(conn: sqlite3.Connection, params: dict[str, Any], result: bytes) -> str:
    """Store (or replace) the result of a backtest run with ``params``; returns its key."""
    key = result_key(params)
    with write_transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO fractal_backtest_results (key, params, created, result) VALUES (?, ?, ?, ?)",
            (key, canonical_params(params), int(time.time() * 1000), result),
        )
    return key


def get_result(conn: sqlite3.Connection, params: dict[str, Any]) -> BacktestResult | None:
    """The stored result of a backtest run with ``params``, or None."""
    key = result_key(params)
    row = conn.execute(
        "SELECT params, created, result FROM fractal_backtest_results WHERE key = ?", (key,)
    ).fetchone()
    if row is None:
        return None
    return BacktestResult(key, json.loads(row[0]), int(row[1]), bytes(row[2]))
