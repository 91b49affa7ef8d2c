"""Atomic, idempotent Parquet partitions of the cold tier.

A partition directory holds one current part-0 file. A write replaces it
as a whole (how, on disk or on an object store: cold.store), so a reader
(or a crash) never sees a half-written partition, and a re-run replaces
the partition instead of adding to it. Parts beyond part-0 are merged into
it by ``cold.compaction``; readers take them in part order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fractal_assets.cold import decimals
from fractal_assets.cold.store import PART_RE, ColdStore
from fractal_assets.market import schema
from fractal_assets.market.arrays import arrow, values
from fractal_assets.market.symbols import normalize_symbol

ZSTD_LEVEL = 3
READ_ATTEMPTS = 3

TICK_SCHEMA = schema.STORED_TICK.arrow
QUOTE_SCHEMA = schema.STORED_QUOTE.arrow
BOOK_SCHEMA = schema.STORED_BOOK.arrow

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


def tick_partition(cold: ColdStore, symbol: str, date: str, dataset: str = "ticks") -> str:
    """``{cold}/{dataset}/symbol=SYM/date=YYYY-MM-DD``; symbol and date are validated first."""
    return cold.join(dataset, f"symbol={normalize_symbol(symbol)}", f"date={np.datetime64(date, 'D')}")


def to_parquet(table: pa.Table, encodings: dict[str, str] | None = None) -> bytes:
    """A whole Parquet file in memory, so that nothing is published before it is complete;
    with ``encodings`` (ticks and quotes), exact float columns are stored as decimals."""
    if encodings:
        table, encodings = decimals.encode(table, encodings)
    sink = pa.BufferOutputStream()
    pq.write_table(
        table, sink, compression="zstd", compression_level=ZSTD_LEVEL,
        use_dictionary=False if encodings else True, column_encoding=encodings,
        write_statistics=True, store_decimal_as_integer=True,
    )
    return sink.getvalue().to_pybytes()


def write_atomic(cold: ColdStore, directory: str, table: pa.Table, encodings: dict[str, str] | None = None,
                 part: int = 0) -> str:
    """Replace part ``part`` (part-0 by default) of the partition at ``directory`` with ``table``
    (see cold.store)."""
    return cold.publish(directory, part, to_parquet(table, encodings))


def part_files(cold: ColdStore, directory: str) -> list[str]:
    """The partition's current part files in part order (part-10 after part-9): on an
    object store the newest generation of each part."""
    newest: dict[int, tuple[int, str]] = {}
    for name in cold.names(directory):
        if m := PART_RE.match(name):
            part, generation = int(m[1]), int(m[2] or 0)
            if generation >= newest.get(part, (-1, ""))[0]:
                newest[part] = (generation, name)
    return [f"{directory}/{newest[part][1]}" for part in sorted(newest)]


def part_number(path: str) -> int:
    """The N of a ``part-N`` file."""
    return int(PART_RE.match(path.rsplit("/", 1)[-1])[1])


def next_part(cold: ColdStore, directory: str) -> int:
    """The number after the partition's highest part (0 for a partition with none)."""
    return max((part_number(p) + 1 for p in part_files(cold, directory)), default=0)


def read_partition(cold: ColdStore, directory: str, schema: pa.Schema) -> pa.Table:
    """All parts of a partition in part order (empty table when there is none).

    A part that vanishes between listing and reading was merged into part-0
    by a compaction (cold.compaction), so the partition is listed again.
    """
    for _ in range(READ_ATTEMPTS - 1):
        try:
            return _read_parts(cold, part_files(cold, directory), schema)
        except FileNotFoundError:
            continue
    return _read_parts(cold, part_files(cold, directory), schema)


def _read_parts(cold: ColdStore, parts: list[str], schema: pa.Schema) -> pa.Table:
    """The parts as one table; none is an empty table (made from no batches: ``empty_table``
    goes through pyarrow's pandas layer, see market.arrays)."""
    if not parts:
        return pa.Table.from_batches([], schema=schema)
    return pa.concat_tables([read_part(cold, p).select(schema.names).cast(schema) for p in parts])


def read_part(cold: ColdStore, path: str) -> pa.Table:
    """One part file with its decimal columns back as float64."""
    return decimals.decode(pq.read_table(pa.BufferReader(cold.read_bytes(path))))


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
    order = unique_order(values(table.column("ts"), np.int64), values(table.column("seq"), np.int64))
    return table if order is None else table.take(arrow(order))


def sorted_by_time(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table of records in ``schema``, sorted by (ts, seq) (each seq once) unless it already is."""
    return unique_ticks(table.select(schema.names).cast(schema))


def write_ticks(cold: ColdStore, symbol: str, date: str, table: pa.Table, part: int = 0) -> str:
    """Write one symbol-day of ticks (or one part of them), sorted by (ts, seq)."""
    return write_atomic(cold, tick_partition(cold, symbol, date), sorted_by_time(table, TICK_SCHEMA), TICK_ENCODINGS,
                        part)


def read_ticks(cold: ColdStore, symbol: str, date: str) -> pa.Table:
    """One symbol-day of archived ticks, sorted by (ts, seq), each seq once even while a
    partition has several parts."""
    return unique_ticks(read_partition(cold, tick_partition(cold, symbol, date), TICK_SCHEMA))


def write_quotes(cold: ColdStore, symbol: str, date: str, table: pa.Table, part: int = 0) -> str:
    """Write one symbol-day of quotes (or one part of them), sorted by (ts, seq)."""
    return write_atomic(cold, tick_partition(cold, symbol, date, "quotes"), sorted_by_time(table, QUOTE_SCHEMA),
                        QUOTE_ENCODINGS, part)


def read_quotes(cold: ColdStore, symbol: str, date: str) -> pa.Table:
    """One symbol-day of archived quotes (empty when the feed had none)."""
    return read_partition(cold, tick_partition(cold, symbol, date, "quotes"), QUOTE_SCHEMA)


def write_books(cold: ColdStore, symbol: str, date: str, table: pa.Table, part: int = 0) -> str:
    """Write one symbol-day of order-book snapshots (or one part of them), sorted by (ts, seq)."""
    return write_atomic(cold, tick_partition(cold, symbol, date, "books"), sorted_by_time(table, BOOK_SCHEMA),
                        None, part)


def read_books(cold: ColdStore, symbol: str, date: str) -> pa.Table:
    """One symbol-day of archived order-book snapshots (empty when there are none), each once."""
    return unique_ticks(read_partition(cold, tick_partition(cold, symbol, date, "books"), BOOK_SCHEMA))
