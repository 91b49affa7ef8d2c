"""Moving a symbol's ticks and quotes from the hot tier into the cold tier, one part file per
archive run and UTC day.

Archiving appends: the records of a day that the cold partition does not hold yet (by
arrival number, ``seq``) go into a new part file, so an intraday run every few minutes writes
only what arrived since the last one; the nightly compaction merges the parts. The stream
is read once per symbol for all the days of a run, from the oldest archive watermark among
those days, and a day is marked archived through the last entry read only after its part is
in place, so an entry appended meanwhile is read by the next run and a record already
archived (e.g. by a run that died before its watermark) is dropped by its seq, counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fractal_assets.cold.parquet import (
    QUOTE_ENCODINGS,
    QUOTE_SCHEMA,
    TICK_ENCODINGS,
    TICK_SCHEMA,
    part_files,
    read_partition,
    tick_partition,
    to_parquet,
    unique_ticks,
)
from fractal_assets.cold.store import PART_RE, ColdStore
from fractal_assets.hot.store import HotRecords, HotStore
from fractal_assets.market.arrays import arrow
from fractal_assets.market.calendar import DAY_MS, SymbolDay, day_start_ms


@dataclass(frozen=True)
class DayArchive:
    """One symbol-day after archiving: every record the cold tier holds for it, in memory."""

    table: pa.Table
    """All records of the day, sorted by (ts, seq), each seq once."""
    from_hot: int
    """Records of the day read from the hot tier by this run."""
    already_archived: int
    """Records the cold partition held before this run."""
    duplicates: int
    """Hot records whose seq the partition already held (archived before their watermark moved)."""
    path: str | None
    """The part file this run wrote, or None when nothing was new."""


@dataclass(frozen=True)
class ArchiveResult:
    rows: int
    from_hot: int
    already_archived: int
    trimmed_entries: int
    quotes: int
    path: str | None


DATASETS = {
    "ticks": (TICK_SCHEMA, TICK_ENCODINGS),
    "quotes": (QUOTE_SCHEMA, QUOTE_ENCODINGS),
}


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


def next_part(cold: ColdStore, directory: str) -> int:
    """The part number after the partition's highest one (0 for an empty partition)."""
    parts = part_files(cold, directory)
    return max((int(PART_RE.match(p.rsplit("/", 1)[1])[1]) for p in parts), default=-1) + 1


def append_day(cold: ColdStore, symbol: str, date: str, stream: str, records: pa.Table) -> DayArchive:
    """Add the day's hot records the partition lacks as a new part; return the whole day."""
    schema, encodings = DATASETS[stream]
    directory = tick_partition(cold, symbol, date, stream)
    existing = read_partition(cold, directory, schema)
    fresh = np.isin(records.column("seq").to_numpy(), existing.column("seq").to_numpy(), invert=True)
    new = unique_ticks(records.filter(pa.array(fresh)))
    path = None
    if new.num_rows:
        path = cold.publish(directory, next_part(cold, directory), to_parquet(new, encodings))
    merged = merge_by_seq(existing, new)
    return DayArchive(merged, records.num_rows, existing.num_rows, records.num_rows - new.num_rows, path)


@dataclass(frozen=True)
class HotSlice:
    """A symbol's records of one hot stream that may belong to a run's dates, read once:
    the entries after the oldest archive watermark among those dates, or all entries when
    one of the dates has none."""

    store: HotStore
    symbol: str
    stream: str
    hot: HotRecords
    days: np.ndarray
    """UTC day number (epoch days) of each record."""

    @classmethod
    def read(cls, store: HotStore, symbol: str, stream: str, dates: Iterable[str]) -> "HotSlice":
        marks = store.archived(symbol, stream)
        dates = list(dates)
        if not dates or any(d not in marks for d in dates):
            hot = store.read_stream(symbol, stream)
        else:
            oldest = min((marks[d] for d in dates), key=lambda entry: tuple(map(int, entry.split(b"-"))))
            hot = store.read_stream(symbol, stream, min_id=b"(" + oldest)
        return cls(store, symbol, stream, hot, hot.records["ts"] // DAY_MS)

    def dates(self) -> set[str]:
        """The UTC dates the records fall on."""
        return {str(np.datetime64(int(d), "D")) for d in np.unique(self.days)}

    def archive(self, cold: ColdStore, date: str) -> DayArchive:
        """Append the date's new records to its cold partition, then move its watermark to the
        last entry read (only entries holding records of the date need it)."""
        in_day = self.days == day_start_ms(date) // DAY_MS
        schema, _ = DATASETS[self.stream]
        archive = append_day(cold, self.symbol, date, self.stream,
                             hot_table(self.hot.records[in_day], self.hot.seq[in_day], schema))
        if in_day.any():
            self.store.mark_archived(self.symbol, date, self.hot.last_entry, self.stream)
        return archive


def archive_day(store: HotStore, cold: ColdStore, day: SymbolDay, keep_ms: int) -> ArchiveResult:
    """Archive one symbol-day's ticks and quotes, then let the hot tier drop what is now
    durable and outside its window."""
    ticks = HotSlice.read(store, day.symbol, "ticks", [day.date]).archive(cold, day.date)
    quotes = HotSlice.read(store, day.symbol, "quotes", [day.date]).archive(cold, day.date)
    trimmed = trim(store, day.symbol, keep_ms)
    return ArchiveResult(ticks.table.num_rows, ticks.from_hot, ticks.already_archived, trimmed,
                         quotes.table.num_rows, ticks.path)


def trim(store: HotStore, symbol: str, keep_ms: int) -> int:
    """Drop the symbol's archived tick and quote entries older than the retention; returns
    how many tick entries went."""
    trimmed = store.trim_archived(symbol, keep_ms)
    store.trim_archived(symbol, keep_ms, "quotes")
    return trimmed


def stored_symbols(cold: ColdStore, dataset: str = "ticks") -> set[str]:
    """Symbols with a partition of the dataset in the cold tier."""
    return {n.removeprefix("symbol=") for n in cold.names(cold.join(dataset)) if n.startswith("symbol=")}


def stored_dates(cold: ColdStore, symbol: str, dataset: str = "ticks") -> set[str]:
    """UTC dates of the symbol's partitions of the dataset in the cold tier."""
    names = cold.names(cold.join(dataset, f"symbol={symbol}"))
    return {n.removeprefix("date=") for n in names if n.startswith("date=")}
