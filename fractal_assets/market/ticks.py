"""The tick model: what a feed hands over, and what the platform stores.

Everything is columnar numpy: one array per field, never one Python object
per tick, so that validation and storage run at memory speed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from fractal_assets.market import schema

TICK_DTYPE = schema.TICK.numpy
QUOTE_DTYPE = schema.QUOTE.numpy

BUY, SELL = 1, -1


@dataclass
class RawTrades:
    """Trades as a feed parsed them, in arrival order, not yet validated.

    ``side`` is float: +1 buy aggressor, -1 sell, NaN when the source has no
    side (the tick rule fills it in); any other value is invalid input.
    ``seq`` numbers the source records, so a restart can resume after the
    last one stored. ``symbol_codes`` is the symbols as (code per row,
    distinct symbols), when the feed already has them that way.
    """

    seq: np.ndarray
    symbol: np.ndarray
    ts: np.ndarray
    price: np.ndarray
    volume: np.ndarray
    side: np.ndarray
    symbol_codes: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.seq)

    def take(self, index: np.ndarray) -> "RawTrades":
        """The rows selected by a boolean mask or an index array."""
        codes = None if self.symbol_codes is None else (self.symbol_codes[0][index], self.symbol_codes[1])
        return RawTrades(*(getattr(self, f)[index] for f in RAW_TRADE_FIELDS), symbol_codes=codes)


RAW_TRADE_FIELDS = ("seq", "symbol", "ts", "price", "volume", "side")


@dataclass
class RawQuotes:
    """Best bid/offer updates as parsed, in arrival order."""

    seq: np.ndarray
    symbol: np.ndarray
    ts: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)

    def take(self, index: np.ndarray) -> "RawQuotes":
        """The rows selected by a boolean mask or an index array."""
        return RawQuotes(*(getattr(self, f)[index] for f in RAW_QUOTE_FIELDS))


RAW_QUOTE_FIELDS = ("seq", "symbol", "ts", "bid", "ask", "bid_size", "ask_size")


@dataclass(frozen=True)
class BookSnapshot:
    """Top levels of one symbol's order book at an event time; rows are (price, qty).

    ``seq`` is the number of the source record after which the feed cut the
    snapshot (None for a feed without records, the simulator), so that a
    restart can tell the snapshots it already stored like any other record.
    """

    symbol: str
    ts: int
    bids: np.ndarray
    asks: np.ndarray
    seq: int | None = None


@dataclass(frozen=True)
class Rejection:
    """A record that did not become a tick, and why."""

    seq: int
    reason: str
    detail: str
    raw: str | bytes = ""
    """The record as the source holds it: its line, or the bytes of a binary record."""
    symbol: str = ""


Originals = Callable[[Sequence[int]], list[str | bytes]]
"""The records of the given numbers as the source holds them (a line, the bytes of a binary
record); fetched only for the few rows that are rejected."""


@dataclass
class FeedChunk:
    """What a feed yields: a slice of the source, ``last_seq`` being its last record number.

    ``originals`` gives the chunk's records as written, for dead letters;
    ``notes`` are what the feed found out about the file and wants the user
    to read once (the unit it inferred for timestamps, say).
    """

    last_seq: int
    trades: RawTrades | None = None
    quotes: RawQuotes | None = None
    books: list[BookSnapshot] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    originals: Originals | None = None
    notes: list[str] = field(default_factory=list)
    read: tuple[int, str] | None = None
    """For a followed file: the bytes read so far and their digest (see ingest.identity)."""

    def records(self) -> int:
        """Trades, quotes and books in the chunk."""
        return sum(len(x) for x in (self.trades, self.quotes) if x is not None) + len(self.books)

    def handled(self) -> int:
        """Records and rejected records in the chunk."""
        return self.records() + len(self.rejections)

    def after(self, seq: int) -> tuple["FeedChunk", int]:
        """The chunk without its records (rejected ones included) numbered ``seq`` or lower, and
        how many those were."""
        if self._first_seq() > seq:
            return self, 0
        trades = self.trades.take(self.trades.seq > seq) if self.trades is not None else None
        quotes = self.quotes.take(self.quotes.seq > seq) if self.quotes is not None else None
        books = [b for b in self.books if b.seq is None or b.seq > seq]
        rejections = [r for r in self.rejections if r.seq > seq]
        kept = replace(self, trades=trades, quotes=quotes, books=books, rejections=rejections)
        return kept, self.handled() - kept.handled()


    def _first_seq(self) -> int:
        """The lowest record number in the chunk (a large number when it has none)."""
        firsts = [int(x.seq.min()) for x in (self.trades, self.quotes) if x is not None and len(x)]
        firsts += [b.seq for b in self.books if b.seq is not None] + [r.seq for r in self.rejections]
        return min(firsts, default=np.iinfo(np.int64).max)


def with_originals(rejections: list[Rejection], originals: Originals | None) -> list[Rejection]:
    """Rejections whose ``raw`` is the record as the source holds it, when the feed can tell."""
    if originals is None or not rejections:
        return rejections
    texts = originals([r.seq for r in rejections])
    return [replace(r, raw=text) for r, text in zip(rejections, texts)]


def to_ticks(ts: np.ndarray, price: np.ndarray, volume: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Pack validated columns into a ``TICK_DTYPE`` array."""
    out = np.empty(len(ts), dtype=TICK_DTYPE)
    out["ts"], out["price"], out["volume"], out["side"] = ts, price, volume, side
    return out


def tick_rule(price: np.ndarray, prev_price: float | None = None, prev_side: int = BUY) -> np.ndarray:
    """Aggressor side inferred from price changes (Lee-Ready tick rule).

    An uptick is a buy, a downtick a sell, and an unchanged price repeats the
    previous side. ``prev_price``/``prev_side`` carry the state of the
    symbol's earlier ticks; a symbol's very first tick counts as a buy.
    """
    n = len(price)
    if n == 0:
        return np.empty(0, dtype=np.int8)
    before = price[0] if prev_price is None else prev_price
    step = np.sign(np.diff(price, prepend=before)).astype(np.int8)
    last_change = np.where(step != 0, np.arange(n), -1)
    np.maximum.accumulate(last_change, out=last_change)
    return np.where(last_change >= 0, step[np.maximum(last_change, 0)], np.int8(prev_side)).astype(np.int8)
