"""Atomic, idempotent Parquet partitions of the cold tier.

A partition directory holds one ``part-0.parquet``. It is written to a
hidden temporary file in the same directory and renamed over the old one,
so a reader (or a crash) never sees a half-written partition, and a
re-run replaces the partition instead of adding to it. Parts beyond part-0
are merged into it by ``cold.compaction``; readers take them in part order.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fractal_assets.cold import decimals
from fractal_assets.validation import normalize_symbol

PART = "part-0.parquet"
PART_RE = re.compile(r"^part-(\d+)\.parquet$")
ZSTD_LEVEL = 3
READ_ATTEMPTS = 3

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
    ("seq", pa.int64()),
])
"""Best bid/offer updates; ``seq`` is the symbol's quote arrival number."""

TICK_ENCODINGS = {
    "ts": "DELTA_BINARY_PACKED",
    "seq": "DELTA_BINARY_PACKED",
    "side": "DELTA_BINARY_PACKED",
    "price": "PLAIN",
    "volume": "PLAIN",
}
"""Float columns are stored as exact decimals where they can be (see cold.decimals); the others
as plain floats, not byte-stream-split: trade prices and sizes repeat, and zstd only finds the
repeats in whole 8-byte values (see bench/access.py)."""
QUOTE_ENCODINGS = {
    "ts": "DELTA_BINARY_PACKED",
    "seq": "DELTA_BINARY_PACKED",
    **{c: "BYTE_STREAM_SPLIT" for c in ("bid", "ask", "bid_size", "ask_size")},
}


def encodings_for(schema: pa.Schema) -> dict[str, str] | None:
    """The column encodings of a dataset's files (None: pyarrow's defaults, e.g. for bars)."""
    for known, encodings in ((TICK_SCHEMA, TICK_ENCODINGS), (QUOTE_SCHEMA, QUOTE_ENCODINGS)):
        if schema.equals(known):
            return encodings
    return None


def tick_partition(cold_dir: Path, symbol: str, date: str, dataset: str = "ticks") -> Path:
    """``{cold_dir}/{dataset}/symbol=SYM/date=YYYY-MM-DD``; symbol and date are validated first."""
    return cold_dir / dataset / f"symbol={normalize_symbol(symbol)}" / f"date={np.datetime64(date, 'D')}"


def write_atomic(directory: Path, table: pa.Table, encodings: dict[str, str] | None = None) -> Path:
    """Replace the partition at ``directory`` with ``table``; with ``encodings`` (ticks and
    quotes), exact float columns are stored as decimals."""
    directory.mkdir(parents=True, exist_ok=True)
    if encodings:
        table, encodings = decimals.encode(table, encodings)
    tmp = directory / f".tmp-{uuid.uuid4().hex}"
    try:
        pq.write_table(
            table, tmp, compression="zstd", compression_level=ZSTD_LEVEL,
            use_dictionary=False if encodings else True, column_encoding=encodings,
            write_statistics=True, store_decimal_as_integer=True,
        )
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, directory / PART)
    finally:
        tmp.unlink(missing_ok=True)
    return directory / PART


def part_files(directory: Path) -> list[Path]:
    """The partition's ``part-N.parquet`` files in N order (part-10 after part-9)."""
    try:
        numbers = sorted(int(m[1]) for e in os.scandir(directory) if (m := PART_RE.match(e.name)))
    except FileNotFoundError:
        return []
    return [directory / f"part-{n}.parquet" for n in numbers]


def read_partition(directory: Path, schema: pa.Schema) -> pa.Table:
    """All parts of a partition in part order (empty table when there is none).

    A part that vanishes between listing and reading was merged into part-0
    by a compaction (cold.compaction), so the partition is listed again.
    """
    for _ in range(READ_ATTEMPTS - 1):
        try:
            return _read_parts(part_files(directory), schema)
        except FileNotFoundError:
            continue
    return _read_parts(part_files(directory), schema)


def _read_parts(parts: list[Path], schema: pa.Schema) -> pa.Table:
    if not parts:
        return schema.empty_table()
    return pa.concat_tables([read_part(p).select(schema.names).cast(schema) for p in parts])


def read_part(path: Path) -> pa.Table:
    """One part file with its decimal columns back as float64."""
    return decimals.decode(pq.read_table(path))


def unique_order(ts: np.ndarray, seq: np.ndarray) -> np.ndarray | None:
    """Row order sorting ticks by (ts, seq) with each arrival number once, or None when
    they already are.

    A seq names one tick, so its copies (e.g. a compaction interrupted after
    part-0 was replaced) share a ts and sort next to each other.
    """
    dts = np.diff(ts)
    if np.all((dts > 0) | ((dts == 0) & (np.diff(seq) > 0))):
        return None
    order = np.lexsort((seq, ts))
    ts, seq = ts[order], seq[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (ts[1:] != ts[:-1]) | (seq[1:] != seq[:-1])
    return order[keep]


def unique_ticks(table: pa.Table) -> pa.Table:
    """Ticks sorted by (ts, seq) with each arrival number once."""
    order = unique_order(table.column("ts").to_numpy(), table.column("seq").to_numpy())
    return table if order is None else table.take(order)


def write_ticks(cold_dir: Path, symbol: str, date: str, table: pa.Table) -> Path:
    """Write one symbol-day of ticks, sorted by (ts, seq)."""
    ordered = table.select(TICK_SCHEMA.names).cast(TICK_SCHEMA).sort_by([("ts", "ascending"), ("seq", "ascending")])
    return write_atomic(tick_partition(cold_dir, symbol, date), ordered, TICK_ENCODINGS)


def read_ticks(cold_dir: Path, symbol: str, date: str) -> pa.Table:
    """One symbol-day of archived ticks, sorted by (ts, seq), each seq once even while a
    partition has several parts."""
    return unique_ticks(read_partition(tick_partition(cold_dir, symbol, date), TICK_SCHEMA))


def write_quotes(cold_dir: Path, symbol: str, date: str, table: pa.Table) -> Path:
    """Write one symbol-day of quotes, sorted by (ts, seq)."""
    ordered = table.select(QUOTE_SCHEMA.names).cast(QUOTE_SCHEMA).sort_by([("ts", "ascending"), ("seq", "ascending")])
    return write_atomic(tick_partition(cold_dir, symbol, date, "quotes"), ordered, QUOTE_ENCODINGS)


def read_quotes(cold_dir: Path, symbol: str, date: str) -> pa.Table:
    """One symbol-day of archived quotes (empty when the feed had none)."""
    return read_partition(tick_partition(cold_dir, symbol, date, "quotes"), QUOTE_SCHEMA)
