"""A feed's records released at their event times, for a replay at ``speed`` times real time.

A feed yields chunks that span event time (the simulator: one second each).
Released whole, a chunk's later ticks would reach Redis before they occurred:
up to a second early at ``--speed 1``. :func:`paced` splits every chunk and
releases each record once the clock has passed its event time, scaled by
``speed`` from the first record's. It wakes at most every ``RELEASE_EVERY_S``, so
a busy feed costs a wake-up per millisecond rather than per tick. Before a
pause of ``WAIT_SIGNAL_S`` or more it yields an empty chunk, the feed
protocol's "waiting" signal on which the ingest process commits everything it
holds and refreshes its real-time indicators; shorter pauses are left to the
ingest process's ``flush_ms``, since a signal every millisecond would refresh
every symbol's indicators a thousand times a second.

Records leave in arrival order: a record waits for every earlier one of its
kind (trades, quotes, books), so a slice's ``last_seq`` never passes a record
still held back, whatever the order of the source's timestamps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from fractal_assets.market.ticks import FeedChunk, RawQuotes, RawTrades

RELEASE_EVERY_S = 0.001
"""Shortest sleep between two releases."""
WAIT_SIGNAL_S = 0.002
"""Pauses at least this long are announced with an empty chunk."""


@dataclass
class Pacer:
    """The clock of a paced replay: when a record of event time ``ts`` may leave."""

    speed: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    origin: tuple[float, int] | None = None
    """(clock reading, event time) of the first record released."""

    def due(self, ts: int | np.ndarray) -> float | np.ndarray:
        """The clock reading from which a record of event time ``ts`` may leave."""
        wall0, ts0 = self.origin
        return wall0 + (ts - ts0) / 1000 / self.speed


def paced(chunks: Iterable[FeedChunk], pacer: Pacer) -> Iterator[FeedChunk]:
    """The chunks' records in slices, none before it is due on ``pacer``'s clock; an empty
    chunk before each pause of ``WAIT_SIGNAL_S`` or more. ``pacer.speed <= 0`` passes the chunks on as they are."""
    if pacer.speed <= 0:
        yield from chunks
        return
    for chunk in chunks:
        first = _first_ts(chunk)
        if first is None:
            yield chunk
            continue
        if pacer.origin is None:
            pacer.origin = (pacer.clock(), first)
        yield from _slices(chunk, pacer)


@dataclass
class _Held:
    """What is left of one chunk: the first row of each kind not released yet, and when each
    row is due (non-decreasing: a row waits for every earlier one of its kind)."""

    chunk: FeedChunk
    pacer: Pacer
    trades: int = 0
    quotes: int = 0
    books: int = 0
    due: tuple[np.ndarray, np.ndarray, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        c = self.chunk
        kinds = (_ts(c.trades), _ts(c.quotes), np.array([b.ts for b in c.books], dtype=np.int64))
        self.due = tuple(self.pacer.due(_running_max(ts)) for ts in kinds)

    def done(self) -> bool:
        return (self.trades, self.quotes, self.books) == tuple(len(d) for d in self.due)

    def next_due(self) -> float:
        """The clock reading the next release waits for."""
        return float(min(d[i] for d, i in zip(self.due, (self.trades, self.quotes, self.books)) if i < len(d)))

    def release(self, now: float) -> FeedChunk | None:
        """Every held record due at ``now``, or None when there is none."""
        c = self.chunk
        ends = [int(np.searchsorted(d, now, side="right")) for d in self.due]
        starts = (self.trades, self.quotes, self.books)
        if ends == list(starts):
            return None
        trades, quotes = _rows(c.trades, starts[0], ends[0]), _rows(c.quotes, starts[1], ends[1])
        self.trades, self.quotes, self.books = ends
        if self.done():
            return FeedChunk(c.last_seq, trades, quotes, c.books[starts[2]:], c.rejections)
        return FeedChunk(self.released_through(), trades, quotes, c.books[starts[2]:ends[2]])

    def released_through(self) -> int:
        """The record number before the first one still held."""
        held = [seq[i] for seq, i in ((_seqs(self.chunk.trades), self.trades), (_seqs(self.chunk.quotes), self.quotes))
                if i < len(seq)]
        return int(min(held)) - 1 if held else self.chunk.last_seq


def _slices(chunk: FeedChunk, pacer: Pacer) -> Iterator[FeedChunk]:
    """One chunk's records as they fall due, an empty chunk before every long pause."""
    held = _Held(chunk, pacer)
    while True:
        part = held.release(pacer.clock())
        if part is not None:
            yield part
            if held.done():
                return
        pause = max(held.next_due() - pacer.clock(), RELEASE_EVERY_S)
        if pause >= WAIT_SIGNAL_S:
            yield FeedChunk(held.released_through())
        pacer.sleep(max(held.next_due() - pacer.clock(), RELEASE_EVERY_S))


def _rows(records: RawTrades | RawQuotes | None, start: int, end: int) -> RawTrades | RawQuotes | None:
    """Rows start..end of a feed's columns."""
    return None if records is None else records.take(slice(start, end))


def _running_max(ts: np.ndarray) -> np.ndarray:
    """Event times made non-decreasing, so that what is due is always a prefix."""
    return np.maximum.accumulate(ts) if len(ts) else ts


def _ts(records: RawTrades | RawQuotes | None) -> np.ndarray:
    return records.ts if records is not None else np.empty(0, np.int64)


def _seqs(records: RawTrades | RawQuotes | None) -> np.ndarray:
    return records.seq if records is not None else np.empty(0, np.int64)


def _first_ts(chunk: FeedChunk) -> int | None:
    candidates = [int(x.ts.min()) for x in (chunk.trades, chunk.quotes) if x is not None and len(x)]
    candidates += [min(b.ts for b in chunk.books)] if chunk.books else []
    return min(candidates) if candidates else None
