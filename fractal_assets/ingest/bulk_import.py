"""Bulk import of history straight into the cold tier's partitions, bypassing Redis.

Trades, quotes and order-book snapshots go through the same feeds and the same
validation functions as live ingest, into the same layout as the archive:
``ticks/``, ``quotes/`` and ``books/`` partitions per symbol and UTC day,
written as new parts while the file is still being read. Each imported
record gets a negative arrival number made of a per-source base (reserved
once in Redis) plus its record number, so two sources never collide with
each other or with live ticks, and readers take a record once however many
parts hold it.

An import stores what earlier runs of the same source (the same content, see
``ingest.identity``) did not. Records an earlier import handled are skipped.
Of the records an earlier ingest handled, the quotes, books and rejected
rows are skipped, and so are, per symbol, the ticks between the first and
the last one ingest stored; the symbol's other ticks were rejected by ingest
(history older than the symbol's newest tick) and are imported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from fractal_assets.cold.archive import columns_table
from fractal_assets.cold.parquet import (
    BOOK_SCHEMA,
    QUOTE_SCHEMA,
    TICK_SCHEMA,
    next_part,
    tick_partition,
    write_books,
    write_quotes,
    write_ticks,
)
from fractal_assets.cold.store import ColdStore
from fractal_assets.hot.store import NOTHING, HotStore
from fractal_assets.ingest.summary import RunCounts
from fractal_assets.ingest.validation import Bounds, SymbolState, normalize_symbols, validate, validate_quotes
from fractal_assets.market.calendar import SymbolDay
from fractal_assets.market.orderbook import book_records
from fractal_assets.market.ticks import BookSnapshot, FeedChunk, Rejection, with_originals

IMPORT_SEQ_ORIGIN = -(1 << 62)
FILE_SEQ_SPAN = 1 << 40
"""Record numbers available to one imported file."""
WRITERS = 2
"""Parts written at once: Parquet encoding and compression release the GIL."""
PART_ROWS = 1 << 21
"""Records of a partition written as one part: large enough to compress as well as a whole day,
small enough for writing to start while the file is still being read."""

DATASETS = {
    "ticks": (TICK_SCHEMA, write_ticks),
    "quotes": (QUOTE_SCHEMA, write_quotes),
    "books": (BOOK_SCHEMA, write_books),
}

DeadLetter = Callable[[list[Rejection]], None]
Partition = tuple[str, SymbolDay]
"""A dataset (ticks, quotes, books) and a symbol-day."""


@dataclass
class ImportReport(RunCounts):
    """What one import did."""

    partitions: set[SymbolDay] = field(default_factory=set)
    """``raw_ticks`` partitions written."""
    last_seq: int = NOTHING


@dataclass(frozen=True)
class StoredBefore:
    """What earlier runs stored or rejected of a source, so an import handles each record once."""

    imported: int = NOTHING
    """Records up to this one were handled by an earlier import."""
    ingested: int = NOTHING
    """Records up to this one were handled by an earlier ingest (or import)."""
    ticks: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Symbol -> first and last record whose tick ingest stored."""

    def unstored(self, chunk: FeedChunk) -> tuple[FeedChunk, int]:
        """The chunk without what earlier runs handled, and how many records that was."""
        chunk, skipped = chunk.after(self.imported)
        if chunk.trades is not None and self.ticks and len(chunk.trades):
            codes, names, _ = normalize_symbols(chunk.trades.symbol, chunk.trades.symbol_codes)
            bounds = np.array([self.ticks.get(n, (0, NOTHING)) for n in names], dtype=np.int64).reshape(-1, 2)[codes]
            stored = (chunk.trades.seq >= bounds[:, 0]) & (chunk.trades.seq <= bounds[:, 1])
            chunk.trades = chunk.trades.take(~stored)
            skipped += int(stored.sum())
        if chunk.quotes is not None:
            handled = chunk.quotes.seq <= self.ingested
            chunk.quotes = chunk.quotes.take(~handled)
            skipped += int(handled.sum())
        books = [b for b in chunk.books if b.seq is None or b.seq > self.ingested]
        skipped += len(chunk.books) - len(books)
        chunk.books = books
        return chunk, skipped


def stored_before(store: HotStore, source_id: str) -> StoredBefore:
    """What earlier ingests and imports of the source stored, from its checkpoints."""
    done = store.source_checkpoint(source_id)
    ticks = {
        symbol: (ckpt.first_source_seq, ckpt.source_seq)
        for symbol, ckpt in store.checkpoints(store.symbols(), source_id).items()
        if ckpt.first_source_seq != NOTHING
    }
    return StoredBefore(done.imported, done.handled, ticks)


class _Partitions:
    """Records waiting per dataset and symbol-day, written as new parts of their partition: once
    ``PART_ROWS`` are waiting, and once the file has moved past the partition's date. Parts are
    written on a few threads while reading goes on; they never touch the partition's earlier
    parts (readers take one row per seq; the archive and compaction merge parts into part-0)."""

    def __init__(self, cold: ColdStore, pool: ThreadPoolExecutor) -> None:
        self.cold = cold
        self.pool = pool
        self.tables: dict[Partition, list[pa.Table]] = defaultdict(list)
        self.rows: dict[Partition, int] = defaultdict(int)
        self.next_part: dict[Partition, int] = {}
        self.writes: list[Future[str]] = []
        self.written: set[SymbolDay] = set()
        """Ticks partitions written to."""

    def add(self, dataset: str, symbol: str, columns: Mapping[str, np.ndarray], seq: np.ndarray) -> str:
        """Queue one symbol's records, column by column; returns the newest UTC date among them."""
        schema = DATASETS[dataset][0]
        days = columns["ts"].astype("M8[ms]").astype("M8[D]")
        if days[0] == days[-1] and np.all(days == days[0]):
            self._queue((dataset, SymbolDay(symbol, str(days[0]))), columns_table(columns, seq, schema))
            return str(days[0])
        for day in np.unique(days):
            rows = days == day
            table = columns_table({name: values[rows] for name, values in columns.items()}, seq[rows], schema)
            self._queue((dataset, SymbolDay(symbol, str(day))), table)
        return str(days.max())

    def _queue(self, key: Partition, table: pa.Table) -> None:
        self.tables[key].append(table)
        self.rows[key] += table.num_rows
        if self.rows[key] >= PART_ROWS:
            self._start(key)

    def flush(self, newest: dict[str, str] | None = None) -> None:
        """Start writing what waits for the partitions dated before ``newest[symbol]`` (all when None)."""
        for key in [key for key in self.tables if newest is None or key[1].date < newest.get(key[1].symbol, "")]:
            self._start(key)

    def _start(self, key: Partition) -> None:
        dataset, day = key
        if key not in self.next_part:
            self.next_part[key] = next_part(self.cold, tick_partition(self.cold, day.symbol, day.date, dataset))
        part = self.next_part[key]
        self.next_part[key] += 1
        tables, _ = self.tables.pop(key), self.rows.pop(key)
        write = DATASETS[dataset][1]
        self.writes.append(self.pool.submit(write, self.cold, day.symbol, day.date, pa.concat_tables(tables), part))
        if dataset == "ticks":
            self.written.add(day)

    def wait(self) -> None:
        """Wait for every write started; the first failure is raised."""
        writes, self.writes = self.writes, []
        for write in writes:
            write.result()


def import_history(
    chunks: Iterable[FeedChunk], cold: ColdStore, seq_base: int, tolerance_ms: int,
    before: StoredBefore | None = None, dead_letter: DeadLetter | None = None, bounds: Bounds = Bounds(),
) -> ImportReport:
    """Validate chunks and write their trades, quotes and books into cold-tier day partitions.

    ``before`` says what earlier runs of the same source handled; ``dead_letter`` receives
    each chunk's rejections (records an earlier run had handled excepted, they are counted
    as skipped).
    """
    before = before or StoredBefore()
    report = ImportReport()
    states: dict[str, SymbolState] = {}
    with ThreadPoolExecutor(WRITERS) as pool:
        partitions = _Partitions(cold, pool)
        try:
            for chunk in chunks:
                report.notes += [n for n in chunk.notes if n not in report.notes]
                report.last_seq = max(report.last_seq, chunk.last_seq)
                chunk, skipped = before.unstored(chunk)
                report.skipped += skipped
                newest, rejections = _store(chunk, partitions, states, seq_base, tolerance_ms, bounds, report)
                handled = [r for r in rejections if r.seq <= before.ingested]
                fresh = [r for r in rejections if r.seq > before.ingested]
                report.skipped += len(handled)
                report.rejected.update(r.reason for r in fresh)
                if fresh and dead_letter is not None:
                    dead_letter(fresh)
                partitions.flush(newest)
            partitions.flush()
        finally:
            partitions.wait()
    report.partitions = partitions.written
    return report


def _store(chunk: FeedChunk, partitions: _Partitions, states: dict[str, SymbolState], seq_base: int,
           tolerance_ms: int, bounds: Bounds, report: ImportReport) -> tuple[dict[str, str], list[Rejection]]:
    """Validate a chunk and queue what is accepted; returns each symbol's newest date and the
    chunk's rejections."""
    newest: dict[str, str] = {}
    rejections: list[Rejection] = []

    def queue(dataset: str, symbol: str, columns: Mapping[str, np.ndarray], seq: np.ndarray) -> None:
        date = partitions.add(dataset, symbol, columns, seq_base + seq)
        newest[symbol] = max(newest.get(symbol, ""), date)

    if chunk.trades is not None and len(chunk.trades):
        accepted, rejected = validate(chunk.trades, states, tolerance_ms, bounds)
        rejections += rejected
        for v in accepted:
            queue("ticks", v.symbol, {"ts": v.ts, "price": v.price, "volume": v.volume, "side": v.side}, v.seq)
            report.accepted[v.symbol] += len(v)
    if chunk.quotes is not None and len(chunk.quotes):
        quotes, rejected = validate_quotes(chunk.quotes, bounds)
        rejections += rejected
        for q in quotes:
            queue("quotes", q.symbol, fields(q.quotes), q.seq)
            report.quotes += len(q.quotes)
    for symbol, books in _books_by_symbol(chunk.books, chunk.last_seq).items():
        queue("books", symbol, fields(book_records(books)), np.array([b.seq for b in books], dtype=np.int64))
        report.books += len(books)
    return newest, chunk.rejections + with_originals(rejections, chunk.originals)


def fields(records: np.ndarray) -> dict[str, np.ndarray]:
    """A record array's fields as columns."""
    return {name: records[name] for name in records.dtype.names}


def _books_by_symbol(books: list[BookSnapshot], last_seq: int) -> dict[str, list[BookSnapshot]]:
    """Snapshots per symbol, each with a record number (the chunk's last for a feed without any)."""
    out: dict[str, list[BookSnapshot]] = defaultdict(list)
    for book in books:
        out[book.symbol].append(book if book.seq is not None else BookSnapshot(
            book.symbol, book.ts, book.bids, book.asks, last_seq))
    return out


def file_seq_base(store: HotStore, source_id: str) -> int:
    """The arrival-number base of an imported file: the same for every import of it."""
    return IMPORT_SEQ_ORIGIN + store.file_index(source_id) * FILE_SEQ_SPAN
