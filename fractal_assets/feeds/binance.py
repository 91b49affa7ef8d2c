"""Binance raw feed as recorded by hftbacktest: text (usually gzip), one ``<local_ts_ns> <json>`` per line.

Trades come from ``@trade`` messages, best bid/offer quotes from
``@bookTicker`` and order-book snapshots from the REST depth snapshot plus
``depthUpdate`` diffs. Every line is a record whose ``seq`` is its 0-based
line number; a line that does not parse becomes an UNPARSEABLE rejection.

A file holds one symbol's book: the REST snapshot line names no symbol, so
it could not be matched to a book in a multi-symbol file.
"""

from __future__ import annotations

import gzip
import json
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from fractal_assets.feeds.csv_blocks import READ_ERRORS, unreadable_rest
from fractal_assets.feeds.errors import FeedFormatError
from fractal_assets.ingest.validation import UNPARSEABLE
from fractal_assets.market.orderbook import SNAPSHOT_MS, OrderBook, bucket_end, parse_levels
from fractal_assets.market.ticks import (
    BUY,
    SELL,
    BookSnapshot,
    FeedChunk,
    RawQuotes,
    RawTrades,
    Rejection,
    with_originals,
)

BOOK_LEVELS = 10
WAITING_UPDATES = 1000
"""Depth updates kept while no snapshot is in force; older ones could not be applied to a later snapshot anyway."""

TRADE_FIELDS = ("s", "T", "p", "q", "m")
QUOTE_FIELDS = ("s", "b", "a", "B", "A")
TRADE_COLUMNS = ("seq", "symbol", "ts", "price", "volume", "maker")
QUOTE_COLUMNS = ("seq", "local_ns", "symbol", "bid", "ask", "bid_size", "ask_size")
BOOK_TICKER_KEYS = frozenset(QUOTE_FIELDS)
PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError)
"""What a malformed line raises: bad JSON or number, a missing field, a field of the wrong shape."""


def read(path: Path, chunk_rows: int, follow: bool) -> Iterator[FeedChunk]:
    """Chunks of ``chunk_rows`` lines; ``follow`` is refused, a recording is read as a whole."""
    if follow:
        raise FeedFormatError("--follow is only supported for generic CSV files, not Binance recordings")
    return _chunks(path, chunk_rows)


def _chunks(path: Path, chunk_rows: int) -> Iterator[FeedChunk]:
    """Chunks of lines; a damaged gzip stream ends the file with a rejection of the rest."""
    depth = DepthSync()
    seq = 0
    with _open_text(path) as handle:
        while True:
            try:
                lines = list(islice(handle, chunk_rows))
            except READ_ERRORS as err:
                yield FeedChunk(last_seq=seq, rejections=[unreadable_rest(seq, err)])
                seq += 1
                break
            if not lines:
                break
            yield _parse_chunk(lines, seq, depth)
            seq += len(lines)
    last = depth.finish(seq - 1)
    if last:
        yield FeedChunk(last_seq=seq - 1, books=last)


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


@dataclass
class _Rows:
    """A chunk's trade and quote fields (turned into columns once all its lines are read) and its books."""

    trades: list[tuple[Any, ...]] = field(default_factory=list)
    quotes: list[tuple[Any, ...]] = field(default_factory=list)
    books: list[BookSnapshot] = field(default_factory=list)


def _parse_chunk(lines: list[str], first_seq: int, depth: DepthSync) -> FeedChunk:
    """Route each line to its kind, then build the trade and quote columns of the whole chunk at once."""
    rows = _Rows()
    rejections: list[Rejection] = []
    for seq, line in enumerate(lines, first_seq):
        try:
            _route(seq, line, rows, depth)
        except PARSE_ERRORS as err:
            rejections.append(Rejection(seq, UNPARSEABLE, f"not a Binance feed message: {err!r}"[:200]))
    trades, bad_trades = _parsed(rows.trades, TRADE_COLUMNS, ("ts", "price", "volume"))
    quotes, bad_quotes = _parsed(rows.quotes, QUOTE_COLUMNS, ("bid", "ask", "bid_size", "ask_size"))

    def originals(seqs: Sequence[int]) -> list[str | bytes]:
        return [lines[s - first_seq].rstrip("\r\n") for s in seqs]

    return FeedChunk(
        last_seq=first_seq + len(lines) - 1,
        trades=_trades(trades),
        quotes=_quotes(quotes),
        books=rows.books,
        rejections=with_originals(sorted(rejections + bad_trades + bad_quotes, key=lambda r: r.seq), originals),
        originals=originals,
    )


def _route(seq: int, line: str, rows: _Rows, depth: DepthSync) -> None:
    """Parse one line and hand its message to the trades, the quotes or the order book."""
    local, _, text = line.partition(" ")
    local_ns = int(local)
    message = json.loads(text)
    if "lastUpdateId" in message:
        rows.books += _cut_at(seq, depth.on_snapshot(message))
        return
    data = message["data"] if "stream" in message else message
    kind = data.get("e") or ("bookTicker" if BOOK_TICKER_KEYS <= data.keys() else None)
    if kind == "trade":
        rows.trades.append((seq, *(data[f] for f in TRADE_FIELDS)))
    elif kind == "bookTicker":
        rows.quotes.append((seq, local_ns, *(data[f] for f in QUOTE_FIELDS)))
    elif kind == "depthUpdate":
        rows.books += _cut_at(seq, depth.on_update(DepthUpdate.parse(data)))
    else:
        raise ValueError(f"unknown message kind {kind!r}")


def _cut_at(seq: int, books: list[BookSnapshot]) -> list[BookSnapshot]:
    """Books cut after the line numbered ``seq``."""
    return [replace(book, seq=seq) for book in books]


def _parsed(
    rows: list[tuple[Any, ...]], columns: tuple[str, ...], numeric: tuple[str, ...]
) -> tuple[pd.DataFrame, list[Rejection]]:
    """Rows as a frame with ``numeric`` columns as floats, without (but rejecting) rows where one is not a number."""
    frame = pd.DataFrame(rows, columns=list(columns))
    for name in numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
    bad = frame[list(numeric)].isna().any(axis=1).to_numpy()
    detail = f"{', '.join(numeric)} must be numbers"
    return frame[~bad], [Rejection(int(seq), UNPARSEABLE, detail) for seq in frame["seq"].to_numpy()[bad]]


def _symbols(frame: pd.DataFrame) -> np.ndarray:
    return frame["symbol"].fillna("").astype(str).to_numpy(dtype=object)


def _trades(frame: pd.DataFrame) -> RawTrades:
    """Trade columns; ``m`` (buyer is maker) means the aggressor sold, anything but a bool is a bad side."""
    side = frame["maker"].map({True: float(SELL), False: float(BUY)}).fillna(0.0)
    return RawTrades(
        seq=frame["seq"].to_numpy(np.int64),
        symbol=_symbols(frame),
        ts=frame["ts"].to_numpy(np.int64),
        price=frame["price"].to_numpy(np.float64),
        volume=frame["volume"].to_numpy(np.float64),
        side=side.to_numpy(np.float64),
    )


def _quotes(frame: pd.DataFrame) -> RawQuotes:
    """Quote columns, stamped with the collector's clock: bookTicker carries no time of its own."""
    return RawQuotes(
        seq=frame["seq"].to_numpy(np.int64),
        symbol=_symbols(frame),
        ts=frame["local_ns"].to_numpy(np.int64) // 1_000_000,
        bid=frame["bid"].to_numpy(np.float64),
        ask=frame["ask"].to_numpy(np.float64),
        bid_size=frame["bid_size"].to_numpy(np.float64),
        ask_size=frame["ask_size"].to_numpy(np.float64),
    )


@dataclass(frozen=True)
class DepthUpdate:
    """One ``depthUpdate``, fully parsed before it may touch a book."""

    first_id: int
    last_id: int
    event_ms: int
    symbol: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> DepthUpdate:
        """From a ``depthUpdate`` message's ``data``; raises on a missing or malformed field."""
        ids = int(data["U"]), int(data["u"]), int(data["E"])
        return cls(*ids, str(data["s"]), parse_levels(data["b"]), parse_levels(data["a"]))


class DepthSync:
    """Keeps an :class:`OrderBook` in step with diff-depth updates and cuts it into 100 ms snapshots.

    Follows Binance's rules for a local order book: updates that arrive
    before the REST snapshot wait (the newest ``WAITING_UPDATES``); updates
    with ``u <= lastUpdateId`` are dropped; each applied update must start at
    most one id past the book (``U <= id + 1``), otherwise updates were lost
    and the book is discarded until the next snapshot. A snapshot always
    replaces the book, so a recording that re-fetches one after a reconnect
    resynchronises.

    A book snapshot is stamped with the last millisecond of its 100 ms bucket
    of event time (``E``) and holds every update with ``E`` up to that stamp;
    it is cut when an update of a later bucket arrives, and at the end of the
    file. A bucket interrupted by a gap or a REST snapshot is not cut: its
    end state is unknown.
    """

    def __init__(self) -> None:
        self.book: OrderBook | None = None
        self.update_id = 0
        self.symbol = ""
        self.bucket = -1
        self.pending = False
        """The book has changes in ``bucket`` that no snapshot has shown yet."""
        self.waiting: deque[DepthUpdate] = deque(maxlen=WAITING_UPDATES)

    def on_snapshot(self, message: dict[str, Any]) -> list[BookSnapshot]:
        """Start from a REST snapshot, then apply the updates that were waiting for it."""
        book = OrderBook()
        book.apply_snapshot(parse_levels(message["bids"]), parse_levels(message["asks"]))
        self.book, self.update_id, self.pending = book, int(message["lastUpdateId"]), False
        waiting, self.waiting = list(self.waiting), deque(maxlen=WAITING_UPDATES)
        return [snapshot for update in waiting for snapshot in self.on_update(update)]

    def on_update(self, update: DepthUpdate) -> list[BookSnapshot]:
        """Apply an update in sequence; the snapshot of the bucket it closes, if any."""
        if self.symbol and update.symbol != self.symbol:
            raise ValueError(f"depth update for {update.symbol} in a file of {self.symbol}: one book per file")
        self.symbol = update.symbol
        if self.book is None:
            self.waiting.append(update)
            return []
        if update.last_id <= self.update_id:
            return []
        if update.first_id > self.update_id + 1:
            self.book, self.pending = None, False
            self.waiting.append(update)
            return []
        closed = self._close_bucket(self.book, update.event_ms // SNAPSHOT_MS)
        self.book.apply_update(update.bids, update.asks)
        self.update_id, self.pending = update.last_id, True
        return closed

    def finish(self, last_seq: int) -> list[BookSnapshot]:
        """The last bucket's snapshot, once the file has ended (after line ``last_seq``)."""
        return _cut_at(last_seq, [self._snapshot(self.book)]) if self.book is not None and self.pending else []

    def _close_bucket(self, book: OrderBook, bucket: int) -> list[BookSnapshot]:
        closed = [self._snapshot(book)] if self.pending and bucket > self.bucket else []
        self.bucket = max(self.bucket, bucket)
        return closed

    def _snapshot(self, book: OrderBook) -> BookSnapshot:
        bids, asks = book.top(BOOK_LEVELS)
        return BookSnapshot(self.symbol, bucket_end(self.bucket), bids, asks)
