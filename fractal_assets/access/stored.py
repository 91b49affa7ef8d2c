"""What users store or look back at besides ticks and bars: order-book snapshots and backtest results."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from fractal_assets.access.reads import hot_store
from fractal_assets.cold.parquet import read_books
from fractal_assets.cold.store import ColdStore
from fractal_assets.config import Config
from fractal_assets.market import schema
from fractal_assets.market.calendar import date_of
from fractal_assets.market.orderbook import book_dict
from fractal_assets.market.symbols import normalize_symbol
from fractal_assets.warm import backtest_cache
from fractal_assets.warm.backtest_cache import BacktestResult
from fractal_assets.warm.db import connect, connect_readonly, has_table
from fractal_assets.warm.schema import migrate


def epoch_ms(name: str, value: int | str | datetime) -> int:
    """Epoch milliseconds of an instant given as epoch ms, an ISO-8601 string or a datetime
    (naive means UTC); a ValueError naming the argument otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} must be epoch ms, ISO-8601 text or a datetime")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name} {value!r} is not an ISO-8601 time") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{name} {value!r} must be epoch ms, ISO-8601 text or a datetime")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)


def get_order_books(symbol: str, start: int | str | datetime, end: int | str | datetime,
                    config: Config | None = None) -> list[dict[str, Any]]:
    """Order-book snapshots of a symbol with start <= ts < end, oldest first: each
    ``{ts, bids, asks}``, levels as [price, qty] pairs, best first. Imported snapshots come
    from the cold tier (``books/``), live ones from the hot tier (the last two hours,
    ``ob:{SYM}``)."""
    symbol = normalize_symbol(symbol)
    t0, t1 = epoch_ms("start", start), epoch_ms("end", end)
    if t1 < t0:
        raise ValueError(f"end {end!r} is before start {start!r}")
    config = config or Config.from_env()
    hot = [book for book in hot_store(config).read_books(symbol) if t0 <= book["ts"] < t1]
    return sorted(cold_books(config.cold, symbol, t0, t1) + hot, key=lambda book: book["ts"])


def cold_books(cold: ColdStore, symbol: str, t0: int, t1: int) -> list[dict[str, Any]]:
    """The cold tier's snapshots of a symbol with t0 <= ts < t1, oldest first."""
    if t1 <= t0:
        return []
    first, last = date_of(t0), date_of(t1 - 1)
    dates = sorted(n.removeprefix("date=") for n in cold.names(cold.join("books", f"symbol={symbol}"))
                   if n.startswith("date=") and first <= n.removeprefix("date=") <= last)
    books = []
    for date in dates:
        table = read_books(cold, symbol, date)
        ts = table.column("ts").to_numpy()
        keep = (ts >= t0) & (ts < t1)
        levels = [_levels(table.column(name))[keep] for name in schema.BOOK.names[1:]]
        books += [book_dict(*row) for row in zip(ts[keep], *levels)]
    return books


def _levels(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size list column of book levels as an (n, BOOK_LEVELS) array."""
    values = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return values.reshape(-1, schema.BOOK_LEVELS)


def checked_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters that have a canonical JSON form (they are the result's key), or a ValueError."""
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict, not {type(params).__name__}")
    try:
        backtest_cache.canonical_params(params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"params must be JSON-serializable: {exc}") from None
    return params


def save_backtest_result(params: dict[str, Any], result: bytes, config: Config | None = None) -> str:
    """Store the serialized result of a backtest run under its parameters (replacing an earlier
    one with equal parameters) in the warm tier; returns the key, the SHA-256 of the
    canonical JSON of ``params``."""
    if not isinstance(result, (bytes, bytearray, memoryview)):
        raise ValueError(f"result must be bytes (serialize it first), not {type(result).__name__}")
    conn = connect((config or Config.from_env()).warm_db)
    try:
        migrate(conn)
        return backtest_cache.put_result(conn, checked_params(params), bytes(result))
    finally:
        conn.close()


def load_backtest_result(params: dict[str, Any], config: Config | None = None) -> BacktestResult | None:
    """The stored result of a backtest run with equal parameters, or None; never creates the
    warm database."""
    checked_params(params)
    conn = connect_readonly((config or Config.from_env()).warm_db)
    if conn is None:
        return None
    try:
        if not has_table(conn, "fractal_backtest_results"):
            return None
        return backtest_cache.get_result(conn, params)
    finally:
        conn.close()
