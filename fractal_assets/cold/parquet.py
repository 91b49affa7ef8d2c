"""Atomic, idempotent Parquet partitions of the cold tier.

A partition directory holds one ``part-0.parquet``. It is written to a
hidden temporary file in the same directory and renamed over the old one,
so a reader (or a crash) never sees a half-written partition, and a
re-run replaces the partition instead of adding to it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fractal_assets.validation import normalize_symbol

PART = "part-0.parquet"
ZSTD_LEVEL = 3

TICK_SCHEMA = pa.schema([
    ("ts", pa.int64()),
    ("price", pa.float64()),
    ("volume", pa.float64()),
    ("side", pa.int8()),
    ("seq", pa.int64()),
])
"""Archived ticks; ``seq`` is the symbol's arrival number (negative for imported history)."""

QUOTE_SCHEMA = pa.schema([
    ("ts", pa.int64()),
    ("bid", pa.float64()),
    ("ask", pa.float64()),
    ("bid_size", pa.float64()),
    ("ask_size", pa.float64()),
])
"""Top of the book at each order-book snapshot."""

TICK_ENCODINGS = {
    "ts": "DELTA_BINARY_PACKED",
    "seq": "DELTA_BINARY_PACKED",
    "price": "BYTE_STREAM_SPLIT",
    "volume": "BYTE_STREAM_SPLIT",
}


def tick_partition(cold_dir: Path, symbol: str, date: str, dataset: str = "ticks") -> Path:
    """``{cold_dir}/{dataset}/symbol=SYM/date=YYYY-MM-DD``; symbol and date are validated first."""
    return cold_dir / dataset / f"symbol={normalize_symbol(symbol)}" / f"date={np.datetime64(date, 'D')}"


def write_atomic(directory: Path, table: pa.Table, encodings: dict[str, str] | None = None) -> Path:
    """Replace the partition at ``directory`` with ``table``."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".tmp-{uuid.uuid4().hex}"
    try:
        pq.write_table(
            table, tmp, compression="zstd", compression_level=ZSTD_LEVEL,
            use_dictionary=False if encodings else True, column_encoding=encodings,
            write_statistics=True,
        )
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, directory / PART)
    finally:
        tmp.unlink(missing_ok=True)
    return directory / PART


def read_partition(directory: Path, schema: pa.Schema) -> pa.Table:
    """All parts of a partition (empty table when there is none)."""
    parts = sorted(directory.glob("part-*.parquet"))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables([pq.read_table(p, schema=schema) for p in parts])


def write_ticks(cold_dir: Path, symbol: str, date: str, table: pa.Table) -> Path:
    """Write one symbol-day of ticks, sorted by (ts, seq)."""
    ordered = table.select(TICK_SCHEMA.names).cast(TICK_SCHEMA).sort_by([("ts", "ascending"), ("seq", "ascending")])
    return write_atomic(tick_partition(cold_dir, symbol, date), ordered, TICK_ENCODINGS)


def read_ticks(cold_dir: Path, symbol: str, date: str) -> pa.Table:
    """One symbol-day of archived ticks."""
    return read_partition(tick_partition(cold_dir, symbol, date), TICK_SCHEMA)


def write_quotes(cold_dir: Path, symbol: str, date: str, table: pa.Table) -> Path:
    """Write one symbol-day of top-of-book quotes, sorted by ts."""
    ordered = table.select(QUOTE_SCHEMA.names).cast(QUOTE_SCHEMA).sort_by("ts")
    return write_atomic(tick_partition(cold_dir, symbol, date, "quotes"), ordered)


def read_quotes(cold_dir: Path, symbol: str, date: str) -> pa.Table:
    """One symbol-day of archived top-of-book quotes (empty when the feed had none)."""
    return read_partition(tick_partition(cold_dir, symbol, date, "quotes"), QUOTE_SCHEMA)
