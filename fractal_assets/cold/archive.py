"""Moving a symbol-day of ticks from the hot tier into the cold tier."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fractal_assets.cold.compaction import remove_merged
from fractal_assets.cold.parquet import (
    QUOTE_SCHEMA,
    TICK_SCHEMA,
    part_files,
    part_number,
    read_quotes,
    read_ticks,
    tick_partition,
    unique_ticks,
    write_quotes,
    write_ticks,
)
from fractal_assets.cold.store import ColdStore
from fractal_assets.hot.store import HotStore
from fractal_assets.market.arrays import arrow
from fractal_assets.market.calendar import SymbolDay


@dataclass(frozen=True)
class ArchiveResult:
    rows: int
    from_hot: int
    already_archived: int
    trimmed_entries: int
    quotes: int
    path: str


def hot_table(records: np.ndarray, seq: np.ndarray, schema: pa.Schema = TICK_SCHEMA) -> pa.Table:
    """Records as a table of a cold-tier schema (the records' fields plus ``seq``)."""
    return columns_table({name: records[name] for name in records.dtype.names}, seq, schema)


def columns_table(columns: Mapping[str, np.ndarray], seq: np.ndarray, schema: pa.Schema = TICK_SCHEMA) -> pa.Table:
    """Columns as a table of a cold-tier schema (plus ``seq``); a column of fixed-size arrays (a
    book's levels) becomes a fixed-size list column."""
    arrays = {**columns, "seq": seq}
    return pa.Table.from_arrays([arrow(arrays[name].astype(field.type.to_pandas_dtype(), copy=False))
                                 if not pa.types.is_fixed_size_list(field.type) else arrow(arrays[name])
                                 for name, field in zip(schema.names, schema)], schema=schema)


def merge_by_seq(existing: pa.Table, new: pa.Table) -> pa.Table:
    """Union of two tables of records, each arrival number (seq) once, sorted by (ts, seq)."""
    return unique_ticks(pa.concat_tables([existing, new]))


@dataclass(frozen=True)
class StreamArchive:
    rows: int
    from_hot: int
    already_archived: int
    trimmed_entries: int
    path: str | None


def _archive_stream(store: HotStore, cold: ColdStore, day: SymbolDay, stream: str, keep_ms: int) -> StreamArchive:
    """Merge the day's records of a hot stream into its partition, then trim what is durable.

    The stream is read once up to its current last entry; that entry id is
    recorded as archived only after the Parquet file is in place. The merge
    is written as part-0 and the other parts it holds (an import's) are
    then deleted, as compaction does.
    """
    schema, read, write = DATASETS[stream]
    hot = store.read_stream(day.symbol, stream)
    in_day = (hot.records["ts"] >= day.start) & (hot.records["ts"] < day.end)
    directory = tick_partition(cold, day.symbol, day.date, stream)
    parts = {part_number(p) for p in part_files(cold, directory)}
    existing = read(cold, day.symbol, day.date)
    merged = merge_by_seq(existing, hot_table(hot.records[in_day], hot.seq[in_day], schema))
    path = write(cold, day.symbol, day.date, merged) if merged.num_rows or stream == "ticks" else None
    if path is not None and parts - {0}:
        cold.sync(directory)
        remove_merged(cold, directory, parts)
        cold.sync(directory)
    trimmed = 0
    if hot.last_entry is not None:
        store.mark_archived(day.symbol, day.date, hot.last_entry, stream)
        trimmed = store.trim_archived(day.symbol, keep_ms, stream)
    return StreamArchive(merged.num_rows, int(in_day.sum()), existing.num_rows, trimmed, path)


def archive_day(store: HotStore, cold: ColdStore, day: SymbolDay, keep_ms: int) -> ArchiveResult:
    """Write the day's ticks and quotes (already archived ones plus the hot tier's) to
    Parquet, then let the hot tier drop what is now durable and outside its window."""
    ticks = _archive_stream(store, cold, day, "ticks", keep_ms)
    quotes = _archive_stream(store, cold, day, "quotes", keep_ms)
    return ArchiveResult(ticks.rows, ticks.from_hot, ticks.already_archived, ticks.trimmed_entries, quotes.rows, ticks.path)


DATASETS = {
    "ticks": (TICK_SCHEMA, read_ticks, write_ticks),
    "quotes": (QUOTE_SCHEMA, read_quotes, write_quotes),
}
