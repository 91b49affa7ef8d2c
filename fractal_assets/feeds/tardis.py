"""Tardis.dev CSV datasets: ``trades`` and ``quotes`` files (optionally gzipped), told apart by their header.

Timestamps are microseconds; the exchange ``timestamp`` (not Tardis's
receive time) becomes ``ts`` in ms. A trade's ``side`` is the aggressor:
buy/sell, empty or Tardis's ``unknown`` when the exchange did not say (the
tick rule decides), anything else a bad side. A quotes file also yields a
level-1 order-book snapshot of the latest quote at the end of every 100 ms
bucket of event time, stamped like the Binance books with the bucket's last
millisecond.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fractal_assets.feeds import head
from fractal_assets.feeds.columns import numbers, symbols
from fractal_assets.feeds.csv_blocks import csv_chunks
from fractal_assets.feeds.errors import FeedFormatError
from fractal_assets.feeds.generic import trades_chunk
from fractal_assets.feeds.timestamps import TsParser
from fractal_assets.ingest.validation import UNPARSEABLE
from fractal_assets.market.orderbook import SNAPSHOT_MS, bucket_end
from fractal_assets.market.ticks import BookSnapshot, FeedChunk, RawQuotes, Rejection

TRADE_COLUMNS = frozenset({"symbol", "timestamp", "side", "price", "amount"})
QUOTE_COLUMNS = {"bid": "bid_price", "ask": "ask_price", "bid_size": "bid_amount", "ask_size": "ask_amount"}
"""RawQuotes field -> Tardis column."""
STRINGS = {"exchange": pa.string(), "symbol": pa.string(), "side": pa.string()}
TS_UNIT = "us"


def read(path: Path, chunk_rows: int, follow: bool) -> Iterator[FeedChunk]:
    """Trades or quotes, whichever the header says; ``follow`` is refused, a dataset file is complete."""
    if follow:
        raise FeedFormatError("--follow is only supported for generic CSV files, not Tardis datasets")
    text = head(path)
    columns = {c.strip() for c in (text.splitlines()[0] if text else "").split(",")}
    if TRADE_COLUMNS <= columns:
        times = TsParser(TS_UNIT)
        return csv_chunks(path, chunk_rows, lambda table, seq: _trades_chunk(table, seq, times), STRINGS)
    if {"symbol", "timestamp", *QUOTE_COLUMNS.values()} <= columns:
        return _quote_chunks(path, chunk_rows)
    raise FeedFormatError(f"{path} is neither a Tardis trades nor a quotes file (columns {sorted(columns)})")


def _trades_chunk(table: pa.Table, seq: np.ndarray, times: TsParser) -> FeedChunk:
    """Trades through the generic parser, with Tardis's columns mapped onto it; a side of
    'unknown' is a missing side."""
    side = pc.utf8_trim_whitespace(table.column("side"))
    generic = pa.table({
        "ts": table.column("timestamp"),
        "symbol": table.column("symbol"),
        "price": table.column("price"),
        "volume": table.column("amount"),
        "side": pc.if_else(pc.equal(pc.utf8_lower(side), "unknown"), pa.scalar(None, pa.string()), side),
    })
    return trades_chunk(generic, seq, times)


def _quote_chunks(path: Path, chunk_rows: int) -> Iterator[FeedChunk]:
    books = _LevelOneBooks(TsParser(TS_UNIT))
    last_seq = -1
    for chunk in csv_chunks(path, chunk_rows, books.parse, STRINGS):
        last_seq = chunk.last_seq
        yield chunk
    last = books.finish(last_seq)
    if last:
        yield FeedChunk(last_seq=last_seq, books=last)


def _quotes(table: pa.Table, seq: np.ndarray, times: TsParser) -> tuple[RawQuotes, list[Rejection]]:
    """Quote columns; rows whose timestamp, price or amount is not a number are rejected (empty is a missing side)."""
    ts = times.parse(table.column("timestamp"))
    values, bad = {}, ~ts.ok
    for name, column in QUOTE_COLUMNS.items():
        values[name], number = numbers(table.column(column))
        bad |= ~number & ~table.column(column).is_null().to_numpy()
    symbol = symbols(table.column("symbol"))
    detail = "timestamp, prices and amounts must be numbers"
    rejections = [Rejection(int(seq[i]), UNPARSEABLE, detail, symbol=symbol[i]) for i in np.flatnonzero(bad)]
    keep = ~bad
    quotes = RawQuotes(seq[keep], symbol[keep], ts.ms[keep], **{k: v[keep] for k, v in values.items()})
    return quotes, rejections


class _LevelOneBooks:
    """Cuts quotes into one level-1 book per symbol and 100 ms bucket; each symbol's newest bucket waits for more."""

    def __init__(self, times: TsParser) -> None:
        self.times = times
        self.pending: dict[str, tuple[int, np.ndarray]] = {}
        """Per symbol: the newest bucket and its latest (bid, bid_size, ask, ask_size), not yet known to be complete."""

    def parse(self, table: pa.Table, seq: np.ndarray) -> FeedChunk:
        """A batch of quote rows as a chunk of quotes and the books they complete."""
        quotes, rejections = _quotes(table, seq, self.times)
        last_seq = int(seq[-1]) if len(seq) else -1
        return FeedChunk(last_seq=last_seq, quotes=quotes, books=self._cut(quotes), rejections=rejections)

    def finish(self, last_seq: int) -> list[BookSnapshot]:
        """The newest bucket of every symbol, once the file has ended (after record ``last_seq``)."""
        return [_book(symbol, bucket, row, last_seq) for symbol, (bucket, row) in self.pending.items()]

    def _cut(self, quotes: RawQuotes) -> list[BookSnapshot]:
        levels = np.column_stack((quotes.bid, quotes.bid_size, quotes.ask, quotes.ask_size))
        books: list[BookSnapshot] = []
        for symbol in np.unique(quotes.symbol):
            rows = quotes.symbol == symbol
            books += self._cut_symbol(symbol, quotes.ts[rows] // SNAPSHOT_MS, levels[rows], quotes.seq[rows])
        return books

    def _cut_symbol(self, symbol: str, bucket: np.ndarray, levels: np.ndarray, seq: np.ndarray) -> list[BookSnapshot]:
        """Books of the buckets this symbol's quotes close, each cut at the quote that closes it;
        a late quote counts towards the newest bucket so far."""
        if symbol in self.pending:
            pending_bucket, pending_levels = self.pending[symbol]
            bucket = np.concatenate(([pending_bucket], bucket))
            levels = np.vstack((pending_levels, levels))
            seq = np.concatenate(([-1], seq))
        bucket = np.maximum.accumulate(bucket)
        closing = np.flatnonzero(bucket[:-1] != bucket[1:])
        self.pending[symbol] = (int(bucket[-1]), levels[-1])
        return [_book(symbol, int(bucket[i]), levels[i], int(seq[i + 1])) for i in closing]


def _book(symbol: str, bucket: int, row: np.ndarray, seq: int) -> BookSnapshot:
    """A level-1 book; a side whose price is missing has no level."""
    bid, bid_size, ask, ask_size = row
    return BookSnapshot(symbol, bucket_end(bucket), _level(bid, bid_size), _level(ask, ask_size), seq)


def _level(price: float, qty: float) -> np.ndarray:
    return np.array([[price, qty]] if np.isfinite(price) else [], dtype=np.float64).reshape(-1, 2)
