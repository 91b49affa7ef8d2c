"""Moving a symbol-day of ticks from the hot tier into the cold tier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fractal_assets.cold.parquet import QUOTE_SCHEMA, TICK_SCHEMA, read_quotes, read_ticks, write_quotes, write_ticks
from fractal_assets.hot.store import HotStore
from fractal_assets.partitions import SymbolDay


@dataclass(frozen=True)
class ArchiveResult:
    rows: int
    from_hot: int
    already_archived: int
    trimmed_entries: int
    quotes: int
    path: Path


def hot_table(ticks: np.ndarray, seq: np.ndarray) -> pa.Table:
    """Hot-tier ticks as a table of the cold-tier schema."""
    return pa.table({"ts": ticks["ts"], "price": ticks["price"], "volume": ticks["volume"],
                     "side": ticks["side"], "seq": seq}, schema=TICK_SCHEMA)


def merge_ticks(existing: pa.Table, new: pa.Table) -> pa.Table:
    """Union of two tick tables, each arrival number (seq) once."""
    merged = pa.concat_tables([existing, new])
    _, first = np.unique(merged.column("seq").to_numpy(), return_index=True)
    return merged.take(np.sort(first))


def archive_day(store: HotStore, cold_dir: Path, day: SymbolDay, keep_ms: int) -> ArchiveResult:
    """Write the day's ticks (already archived ones plus the hot tier's) to Parquet, then
    let the hot tier drop what is now durable and outside its retention window.

    The hot stream is read once up to its current last entry; that entry id
    is recorded as archived only after the Parquet file is in place.
    """
    hot = store.read_ticks(day.symbol)
    in_day = (hot.ticks["ts"] >= day.start) & (hot.ticks["ts"] < day.end)
    existing = read_ticks(cold_dir, day.symbol, day.date)
    merged = merge_ticks(existing, hot_table(hot.ticks[in_day], hot.seq[in_day]))
    path = write_ticks(cold_dir, day.symbol, day.date, merged)
    quotes = archive_quotes(store, cold_dir, day)
    trimmed = 0
    if hot.last_entry is not None:
        store.mark_archived(day.symbol, day.date, hot.last_entry)
        trimmed = store.trim_archived(day.symbol, keep_ms)
    return ArchiveResult(merged.num_rows, int(in_day.sum()), existing.num_rows, trimmed, quotes, path)


def archive_quotes(store: HotStore, cold_dir: Path, day: SymbolDay) -> int:
    """Keep the day's top of book beside its ticks, so spreads can be measured from real
    quotes after the hot tier is gone; returns the number of quotes archived."""
    tops = store.read_top_of_book(day.symbol)
    tops = tops[(tops["ts"] >= day.start) & (tops["ts"] < day.end)] if len(tops) else tops
    existing = read_quotes(cold_dir, day.symbol, day.date)
    if not len(tops) and not existing.num_rows:
        return 0
    new = pa.table({name: tops[name] for name in QUOTE_SCHEMA.names}, schema=QUOTE_SCHEMA)
    merged = pa.concat_tables([existing, new])
    _, first = np.unique(merged.column("ts").to_numpy(), return_index=True)
    write_quotes(cold_dir, day.symbol, day.date, merged.take(np.sort(first)))
    return len(first)
