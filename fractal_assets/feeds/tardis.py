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
import pandas as pd
import pyarrow as pa

from fractal_assets.feeds import head
from fractal_assets.feeds.errors import FeedFormatError
from fractal_assets.feeds.generic import csv_chunks, frame_to_chunk, row_text, unparsed
from fractal_assets.ingest.validation import UNPARSEABLE
from fractal_assets.market.orderbook import SNAPSHOT_MS, bucket_end
from fractal_assets.market.ticks import BookSnapshot, FeedChunk, RawQuotes, Rejection

TRADE_COLUMNS = frozenset({"symbol", "timestamp", "side", "price", "amount"})
QUOTE_COLUMNS = {"bid": "bid_price", "ask": "ask_price", "bid_size": "bid_amount", "ask_size": "ask_amount"}
"""RawQuotes field -> Tardis column."""
STRINGS = {"exchange": pa.string(), "symbol": pa.string(), "side": pa.string()}


def read(path: Path, chunk_rows: int, follow: bool) -> Iterator[FeedChunk]:
    """Trades or quotes, whichever the header says; ``follow`` is refused, a dataset file is complete."""
    if follow:
        raise FeedFormatError("--follow is only supported for generic CSV files, not Tardis datasets")
    text = head(path)
    columns = {c.strip() for c in (text.splitlines()[0] if text else "").split(",")}
    if TRADE_COLUMNS <= columns:
        return csv_chunks(path, chunk_rows, _trades_chunk, STRINGS)
    if {"symbol", "timestamp", *QUOTE_COLUMNS.values()} <= columns:
        return _quote_chunks(path, chunk_rows)
    raise FeedFormatError(f"{path} is neither a Tardis trades nor a quotes file (columns {sorted(columns)})")


def _ms(micros: pd.Series) -> pd.Series:
    """Epoch microseconds as ms, NaN where not a number."""
    return pd.to_numeric(micros, errors="coerce") // 1000


def _trades_chunk(frame: pd.DataFrame, seq: np.ndarray) -> FeedChunk:
    """Trades through the generic parser, with Tardis's columns and units mapped onto it."""
    side = frame["side"]
    generic = pd.DataFrame(
        {
            "ts": _ms(frame["timestamp"]),
            "symbol": frame["symbol"],
            "price": frame["price"],
            "volume": frame["amount"],
            "side": side.mask(side.str.strip().str.lower() == "unknown"),
        }
    )
    return frame_to_chunk(generic, seq)


def _quote_chunks(path: Path, chunk_rows: int) -> Iterator[FeedChunk]:
    books = _LevelOneBooks()
    last_seq = -1
    for chunk in csv_chunks(path, chunk_rows, books.parse, STRINGS):
        last_seq = chunk.last_seq
        yield chunk
    last = books.finish()
    if last:
        yield FeedChunk(last_seq=last_seq, books=last)


def _quotes(frame: pd.DataFrame, seq: np.ndarray) -> tuple[RawQuotes, list[Rejection]]:
    """Quote columns; rows whose timestamp, price or amount is not a number are rejected (empty is a missing side)."""
    ts = _ms(frame["timestamp"]).to_numpy(np.float64, na_value=np.nan)
    values = {
        name: pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64, na_value=np.nan)
        for name, column in QUOTE_COLUMNS.items()
    }
    bad = np.isnan(ts)
    for name, column in QUOTE_COLUMNS.items():
        bad |= unparsed(frame[column], values[name])
    symbol = frame["symbol"].fillna("").astype(str).to_numpy(dtype=object)
    detail = "timestamp, prices and amounts must be numbers"
    rejections = [
        Rejection(int(seq[i]), UNPARSEABLE, detail, row_text(frame, i), symbol[i]) for i in np.flatnonzero(bad)
    ]
    keep = ~bad
    quotes = RawQuotes(seq[keep], symbol[keep], ts[keep].astype(np.int64), **{k: v[keep] for k, v in values.items()})
    return quotes, rejections


class _LevelOneBooks:
    """Cuts quotes into one level-1 book per symbol and 100 ms bucket; each symbol's newest bucket waits for more."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[int, np.ndarray]] = {}
        """Per symbol: the newest bucket and its latest (bid, bid_size, ask, ask_size), not yet known to be complete."""

    def parse(self, frame: pd.DataFrame, seq: np.ndarray) -> FeedChunk:
        """A batch of quote rows as a chunk of quotes and the books they complete."""
        quotes, rejections = _quotes(frame, seq)
        last_seq = int(seq[-1]) if len(seq) else -1
        return FeedChunk(last_seq=last_seq, quotes=quotes, books=self._cut(quotes), rejections=rejections)

    def finish(self) -> list[BookSnapshot]:
        """The newest bucket of every symbol, once the file has ended."""
        return [_book(symbol, bucket, row) for symbol, (bucket, row) in self.pending.items()]

    def _cut(self, quotes: RawQuotes) -> list[BookSnapshot]:
        levels = np.column_stack((quotes.bid, quotes.bid_size, quotes.ask, quotes.ask_size))
        books: list[BookSnapshot] = []
        for symbol in pd.unique(quotes.symbol):
            rows = quotes.symbol == symbol
            books += self._cut_symbol(symbol, quotes.ts[rows] // SNAPSHOT_MS, levels[rows])
        return books

    def _cut_symbol(self, symbol: str, bucket: np.ndarray, levels: np.ndarray) -> list[BookSnapshot]:
        """Books of the buckets this symbol's quotes close; a late quote counts towards the newest bucket so far."""
        if symbol in self.pending:
            pending_bucket, pending_levels = self.pending[symbol]
            bucket = np.concatenate(([pending_bucket], bucket))
            levels = np.vstack((pending_levels, levels))
        bucket = np.maximum.accumulate(bucket)
        closing = np.flatnonzero(bucket[:-1] != bucket[1:])
        self.pending[symbol] = (int(bucket[-1]), levels[-1])
        return [_book(symbol, int(bucket[i]), levels[i]) for i in closing]


def _book(symbol: str, bucket: int, row: np.ndarray) -> BookSnapshot:
    """A level-1 book; a side whose price is missing has no level."""
    bid, bid_size, ask, ask_size = row
    return BookSnapshot(symbol, bucket_end(bucket), _level(bid, bid_size), _level(ask, ask_size))


def _level(price: float, qty: float) -> np.ndarray:
    return np.array([[price, qty]] if np.isfinite(price) else [], dtype=np.float64).reshape(-1, 2)
