"""Bulk import of history straight into the cold tier's partitions, bypassing Redis.

Trades, quotes and order-book snapshots go through the same feeds and the same
validation functions as live ingest, into the same layout as the archive:
``ticks/``, ``quotes/`` and ``books/`` partitions per symbol and UTC day.
Each imported record gets a negative arrival number made of a per-source
base (reserved once in Redis) plus its record number, so importing a source
again replaces nothing twice and two sources never collide with each other
or with live ticks.

An import stores what earlier runs of the same source (the same content, see
``ingest.identity``) did not. Records an earlier import handled are skipped.
Of the records an earlier ingest handled, the quotes, books and rejected
rows are skipped, and so are, per symbol, the ticks between the first and
the last one ingest stored; the symbol's other ticks were rejected by ingest
(history older than the symbol's newest tick) and are imported.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from fractal_assets.cold.archive import hot_table, merge_by_seq
from fractal_assets.cold.parquet import (
    BOOK_SCHEMA,
    QUOTE_SCHEMA,
    TICK_SCHEMA,
    read_books,
    read_quotes,
    read_ticks,
    write_books,
    write_quotes,
    write_ticks,
)
from fractal_assets.cold.store import ColdStore
from fractal_assets.hot.store import NOTHING, HotStore
from fractal_assets.ingest.validation import SymbolState, normalize_symbols, validate, validate_quotes
from fractal_assets.market.calendar import SymbolDay
from fractal_assets.market.orderbook import book_records
from fractal_assets.market.ticks import BookSnapshot, FeedChunk, Rejection, with_originals

IMPORT_SEQ_ORIGIN = -(1 << 62)
FILE_SEQ_SPAN = 1 << 40
"""Record numbers available to one imported file."""
WRITERS = 2
"""Partitions written at once: Parquet encoding and compression release the GIL."""

DATASETS = {
    "ticks": (TICK_SCHEMA, read_ticks, write_ticks),
    "quotes": (QUOTE_SCHEMA, read_quotes, write_quotes),
    "books": (BOOK_SCHEMA, read_books, write_books),
}

DeadLetter = Callable[[list[Rejection]], None]
Partition = tuple[str, SymbolDay]
"""A dataset (ticks, quotes, books) and a symbol-day."""


@dataclass
class ImportReport:
    """What one import did."""

    accepted: Counter[str] = field(default_factory=Counter)
    """Ticks stored per symbol."""
    rejected: Counter[str] = field(default_factory=Counter)
    """Rejections per reason (each dead-lettered)."""
    skipped: int = 0
    """Records an earlier ingest or import of the same content had handled."""
    quotes: int = 0
    books: int = 0
    partitions: set[SymbolDay] = field(default_factory=set)
    """``raw_ticks`` partitions written."""
    last_seq: int = NOTHING
    notes: list[str] = field(default_factory=list)

    @property
    def total_accepted(self) -> int:
        return sum(self.accepted.values())

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())


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
            codes, names, _ = normalize_symbols(chunk.trades.symbol)
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
    """Records waiting per dataset and symbol-day. A partition is written, merged with what it
    already holds, once the file has moved past its date, so a time-ordered file writes each
    partition once; writes run on a few threads while reading goes on."""

    def __init__(self, cold: ColdStore, pool: ThreadPoolExecutor) -> None:
        self.cold = cold
        self.pool = pool
        self.tables: dict[Partition, list[pa.Table]] = defaultdict(list)
        self.writes: dict[Partition, Future[None]] = {}

    def add(self, dataset: str, symbol: str, records: np.ndarray, seq: np.ndarray) -> str:
        """Queue one symbol's records; returns the newest UTC date among them."""
        schema = DATASETS[dataset][0]
        days = records["ts"].astype("M8[ms]").astype("M8[D]")
        if days[0] == days[-1] and np.all(days == days[0]):
            self.tables[(dataset, SymbolDay(symbol, str(days[0])))].append(hot_table(records, seq, schema))
            return str(days[0])
        for day in np.unique(days):
            rows = days == day
            self.tables[(dataset, SymbolDay(symbol, str(day)))].append(hot_table(records[rows], seq[rows], schema))
        return str(days.max())

    def flush(self, newest: dict[str, str] | None = None) -> set[SymbolDay]:
        """Start writing the partitions dated before ``newest[symbol]`` (all when None); returns
        the ticks partitions among them. A partition written again (a file out of time order)
        waits for its previous write."""
        ready = [key for key in self.tables if newest is None or key[1].date < newest.get(key[1].symbol, "")]
        for key in ready:
            self.writes[key] = self.pool.submit(self._write, key, self.tables.pop(key), self.writes.get(key))
        return {day for dataset, day in ready if dataset == "ticks"}

    def wait(self) -> None:
        """Wait for every write started; the first failure is raised."""
        writes, self.writes = self.writes, {}
        for write in writes.values():
            write.result()

    def _write(self, key: Partition, tables: list[pa.Table], previous: Future[None] | None) -> None:
        if previous is not None:
            previous.result()
        dataset, day = key
        _, read, write = DATASETS[dataset]
        merged = merge_by_seq(read(self.cold, day.symbol, day.date), pa.concat_tables(tables))
        write(self.cold, day.symbol, day.date, merged)


def import_history(
    chunks: Iterable[FeedChunk], cold: ColdStore, seq_base: int, tolerance_ms: int,
    before: StoredBefore | None = None, dead_letter: DeadLetter | None = None,
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
                newest, rejections = _store(chunk, partitions, states, seq_base, tolerance_ms, report)
                handled = [r for r in rejections if r.seq <= before.ingested]
                fresh = [r for r in rejections if r.seq > before.ingested]
                report.skipped += len(handled)
                report.rejected.update(r.reason for r in fresh)
                if fresh and dead_letter is not None:
                    dead_letter(fresh)
                report.partitions |= partitions.flush(newest)
            report.partitions |= partitions.flush()
        finally:
            partitions.wait()
    return report


def _store(chunk: FeedChunk, partitions: _Partitions, states: dict[str, SymbolState], seq_base: int,
           tolerance_ms: int, report: ImportReport) -> tuple[dict[str, str], list[Rejection]]:
    """Validate a chunk and queue what is accepted; returns each symbol's newest date and the
    chunk's rejections."""
    newest: dict[str, str] = {}
    rejections: list[Rejection] = []

    def queue(dataset: str, symbol: str, records: np.ndarray, seq: np.ndarray) -> None:
        date = partitions.add(dataset, symbol, records, seq_base + seq)
        newest[symbol] = max(newest.get(symbol, ""), date)

    if chunk.trades is not None and len(chunk.trades):
        accepted, rejected = validate(chunk.trades, states, tolerance_ms)
        rejections += rejected
        for v in accepted:
            queue("ticks", v.symbol, v.ticks, v.seq)
            report.accepted[v.symbol] += len(v.ticks)
    if chunk.quotes is not None and len(chunk.quotes):
        quotes, rejected = validate_quotes(chunk.quotes)
        rejections += rejected
        for q in quotes:
            queue("quotes", q.symbol, q.quotes, q.seq)
            report.quotes += len(q.quotes)
    for symbol, books in _books_by_symbol(chunk.books, chunk.last_seq).items():
        queue("books", symbol, book_records(books), np.array([b.seq for b in books], dtype=np.int64))
        report.books += len(books)
    return newest, chunk.rejections + with_originals(rejections, chunk.originals)


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
