"""The resident ingest process: feed chunks in, validated ticks out to Redis and ring buffers.

Ticks are grouped per symbol into micro-batches of ``batch_size`` ticks; a
partial batch is flushed once it is ``flush_ms`` old, before the feed is
waited on, and at the end. Each flush is one Redis commit that also moves
the restart checkpoints (per symbol, then per source; see
:meth:`HotStore.commit`), so a restart resumes exactly after what was stored:
no tick twice, none lost.

Real-time indicators are refreshed every ``indicator_every`` stored ticks of a
symbol, and also whenever the feed is waited on and at its end, so that then
they cover the symbol's newest stored tick however the wall clock grouped the
ticks into commits.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from fractal_assets.config import Config
from fractal_assets.hot.retry import RetryPolicy
from fractal_assets.hot.ring import RingBuffer
from fractal_assets.hot.store import NOTHING, Block, HotStore, SourceCheckpoint
from fractal_assets.indicators.realtime import WINDOW_SECONDS, VpinReading, batch_values, realtime_values
from fractal_assets.ingest import live_vpin
from fractal_assets.ingest.live_bars import LiveBars
from fractal_assets.ingest.live_vpin import LiveVpin
from fractal_assets.ingest.metrics import PUSH_EVERY_S, IngestMetrics
from fractal_assets.ingest.summary import RunCounts
from fractal_assets.ingest.validation import Bounds, SymbolState, normalize_symbols, validate, validate_quotes
from fractal_assets.market.ticks import (
    QUOTE_DTYPE,
    TICK_DTYPE,
    BookSnapshot,
    FeedChunk,
    RawQuotes,
    RawTrades,
    Rejection,
    with_originals,
)


@dataclass
class IngestReport(RunCounts):
    """What one run of ingest did."""

    seconds: float = 0.0


@dataclass
class _Pending:
    """Accepted ticks of one symbol not yet in Redis."""

    ticks: list[np.ndarray] = field(default_factory=list)
    seqs: list[np.ndarray] = field(default_factory=list)
    received: list[float] = field(default_factory=list)
    """Receipt time (monotonic s) of each part, for latency."""
    count: int = 0
    since: float = 0.0

    def add(self, ticks: np.ndarray, seqs: np.ndarray, received: float) -> None:
        if not self.count:
            self.since = received
        self.ticks.append(ticks)
        self.seqs.append(seqs)
        self.received.append(received)
        self.count += len(ticks)

    def cut(self, size: int, take_rest: bool) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Full blocks of ``size`` (plus the remainder when ``take_rest``), each with the
        receipt time of its oldest tick."""
        if not self.count:
            return []
        ticks, seqs = np.concatenate(self.ticks), np.concatenate(self.seqs)
        part_ends = np.cumsum([len(t) for t in self.ticks])
        stop = len(ticks) if take_rest else len(ticks) - len(ticks) % size
        blocks = [
            (ticks[i:i + size], seqs[i:i + size], self.received[int(np.searchsorted(part_ends, i, side="right"))])
            for i in range(0, stop, size)
        ]
        rest = stop < len(ticks)
        if rest:
            self.received = [self.received[int(np.searchsorted(part_ends, stop, side="right"))]]
            self.since = self.received[0]
        else:
            self.received = []
        self.ticks, self.seqs = ([ticks[stop:]], [seqs[stop:]]) if rest else ([], [])
        self.count = len(ticks) - stop
        return blocks

    def first_seq(self) -> int | None:
        return int(self.seqs[0][0]) if self.count else None


class Rings:
    """Per-symbol in-memory ring buffers of ticks and quotes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ticks: dict[str, RingBuffer] = {}
        self.quotes: dict[str, RingBuffer] = {}

    def tick_ring(self, symbol: str) -> RingBuffer:
        if symbol not in self.ticks:
            self.ticks[symbol] = RingBuffer(self.capacity, TICK_DTYPE)
        return self.ticks[symbol]

    def quote_ring(self, symbol: str) -> RingBuffer:
        if symbol not in self.quotes:
            self.quotes[symbol] = RingBuffer(self.capacity, QUOTE_DTYPE)
        return self.quotes[symbol]

    def memory_bytes(self, symbol: str) -> int:
        return sum(r[symbol].nbytes for r in (self.ticks, self.quotes) if symbol in r)


ProgressFn = Callable[[int, "IngestReport"], None]


class Ingestor:
    """Runs feed chunks through validation into the hot tier.

    Every call it makes to Redis goes through one :class:`RetryPolicy`, so a Redis restart
    shorter than ``FRACTAL_REDIS_RETRY_S`` costs a pause, not the process.
    """

    def __init__(
        self, config: Config, store: HotStore, source_id: str, rings: Rings | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.redis = RetryPolicy(config.redis_retry_s)
        self.bounds = Bounds.of(config)
        self.source_id = source_id
        self.rings = rings or Rings(config.ring_capacity)
        self.report = IngestReport()
        self._pending: dict[str, _Pending] = {}
        self._states: dict[str, SymbolState] = {}
        self._counts: dict[str, int] = {}
        self._stored_seq: dict[str, int] = {}
        self._first_seq: dict[str, int] = {}
        self._book_ts: dict[str, int] = {}
        self._quote_counts: dict[str, int] = {}
        self._quote_seq: dict[str, int] = {}
        self._pending_quotes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._since_refresh: Counter[str] = Counter()
        self._vpin: dict[str, LiveVpin] = {}
        self._rejections: list[Rejection] = []
        self._books: list[BookSnapshot] = []
        self._resume = self.redis.call(store.source_checkpoint, source_id)
        self._last_seq = self._resume.handled
        """Progress never moves back: a rerun that skips everything keeps the checkpoint."""
        self._committed = self._resume
        symbols = self.redis.call(store.symbols)
        for symbol, ckpt in self.redis.call(store.checkpoints, symbols, source_id).items():
            self._states[symbol] = ckpt.state
            self._counts[symbol] = ckpt.count
            self._stored_seq[symbol] = ckpt.source_seq
            if ckpt.first_source_seq != NOTHING:
                self._first_seq[symbol] = ckpt.first_source_seq
            self._book_ts[symbol] = ckpt.book_ts
            self._quote_counts[symbol] = ckpt.quote_count
            self._quote_seq[symbol] = ckpt.quote_source_seq
        self._replay_through = max(self._stored_seq.values(), default=NOTHING)
        self.metrics = IngestMetrics.start()
        self.live_bars = LiveBars(config, store, self.redis)
        """Closed bars of the open day to the warm tier (ingest.live_bars)."""

    def run(self, chunks: Iterable[FeedChunk], speed: float = 0.0, progress: ProgressFn | None = None) -> IngestReport:
        """Ingest every chunk; ``speed`` 0 is as fast as possible, N is N times real time.

        An empty chunk means the feed is waiting for data: everything pending is flushed.
        The process's metrics are published about once a second while it runs, waiting
        included, and withdrawn when it ends (they expire when it dies), so `fractal status`
        lists live processes only.
        """
        started = time.monotonic()
        pacer = _Pacer(speed)
        self._push_metrics()
        for chunk in chunks:
            self._ingest_chunk(chunk, pacer, progress)
            if self.metrics.due():
                self._push_metrics()
        self._flush_all()
        self.live_bars.shut()
        self._push_metrics()
        self.redis.call(self.store.drop_process_metrics, self.source_id)
        self.report.seconds = time.monotonic() - started
        return self.report

    def _ingest_chunk(self, chunk: FeedChunk, pacer: "_Pacer", progress: ProgressFn | None) -> None:
        """Validate a chunk and commit what is due; an empty one flushes everything pending."""
        self.report.notes += [n for n in chunk.notes if n not in self.report.notes]
        if not chunk.handled():
            self._flush_all()
            self.live_bars.idle()
            return
        if chunk.last_seq <= self._resume.handled:
            self.report.skipped += chunk.handled()
            return
        chunk, done = chunk.after(self._resume.handled)
        self.report.skipped += done
        delay = pacer.delay(chunk)
        if delay > 0:
            self._flush_all()
            self._wait(delay)
        self._accept(chunk, received=time.monotonic())
        self._flush(take_rest=self._stale())
        if progress:
            progress(chunk.last_seq + 1, self.report)

    def _wait(self, seconds: float) -> None:
        """Sleep for a paced replay, still publishing metrics about once a second."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            time.sleep(min(left, PUSH_EVERY_S))
            if self.metrics.due():
                self._push_metrics()

    def _accept(self, chunk: FeedChunk, received: float) -> None:
        """Queue a chunk's records; its feed's rejections carry their originals, validation's
        get them here."""
        rejections: list[Rejection] = []
        if chunk.trades is not None and len(chunk.trades):
            rejections += self._accept_trades(chunk.trades, received)
        if chunk.quotes is not None and len(chunk.quotes):
            rejections += self._accept_quotes(chunk.quotes)
        self._accept_books(chunk.books)
        rejections = chunk.rejections + with_originals(rejections, chunk.originals)
        self._rejections += sorted((r for r in rejections if r.seq > self._resume.rejected), key=lambda r: r.seq)
        self._last_seq = chunk.last_seq

    def _accept_trades(self, trades: RawTrades, received: float) -> list[Rejection]:
        if trades.seq[0] <= self._replay_through:
            trades = self._drop_stored(trades)
        accepted, rejections = validate(trades, self._states, self.config.ts_tolerance_ms, self.bounds)
        for v in accepted:
            self._counts.setdefault(v.symbol, 0)
            self._pending.setdefault(v.symbol, _Pending()).add(v.ticks, v.seq, received)
        return rejections

    def _drop_stored(self, trades: RawTrades) -> RawTrades:
        """Rows an earlier run already stored for their symbol."""
        codes, names, _ = normalize_symbols(trades.symbol, trades.symbol_codes)
        stored = np.array([self._stored_seq.get(n, NOTHING) for n in names], dtype=np.int64)[codes]
        keep = trades.seq > stored
        self.report.skipped += int((~keep).sum())
        return trades.take(keep)

    def _accept_quotes(self, quotes: RawQuotes) -> list[Rejection]:
        """Queue valid quotes not stored before for the next commit; the invalid ones are rejected."""
        codes, symbols, _ = normalize_symbols(quotes.symbol)
        stored = np.array([self._quote_seq.get(n, NOTHING) for n in symbols], dtype=np.int64)[codes]
        fresh = quotes.seq > stored
        self.report.skipped += int((~fresh).sum())
        accepted, rejections = validate_quotes(quotes.take(fresh), self.bounds)
        for v in accepted:
            self._pending_quotes.setdefault(v.symbol, []).append((v.quotes, v.seq))
        return rejections

    def _accept_books(self, books: list[BookSnapshot]) -> None:
        fresh = [b for b in books if b.ts > self._book_ts.get(b.symbol, NOTHING)]
        self._books += fresh
        self.report.skipped += len(books) - len(fresh)

    def _stale(self) -> bool:
        """A partial micro-batch has waited ``flush_ms``."""
        now = time.monotonic()
        return any(p.count and (now - p.since) * 1000 >= self.config.flush_ms for p in self._pending.values())

    def _flush_all(self) -> None:
        """Commit everything pending, then refresh the real-time indicators of every symbol
        with stored ticks they do not cover yet (a tail shorter than ``indicator_every``)."""
        self._flush(take_rest=True)
        for symbol in [s for s, n in self._since_refresh.items() if n]:
            self._refresh(symbol)

    def _flush(self, take_rest: bool) -> None:
        """Commit full micro-batches (and partial ones when ``take_rest``) with checkpoints."""
        blocks: list[Block] = []
        received: list[tuple[float, int]] = []
        for symbol, pending in self._pending.items():
            for ticks, seqs, at in pending.cut(self.config.batch_size, take_rest):
                first = None if symbol in self._first_seq else self._first_seq.setdefault(symbol, int(seqs[0]))
                blocks.append(Block(symbol, ticks, self._counts[symbol], int(seqs[-1]), first))
                received.append((at, len(ticks)))
                self._counts[symbol] += len(ticks)
        quote_blocks = self._quote_blocks()
        waiting = [p.first_seq() for p in self._pending.values() if p.count]
        progress = SourceCheckpoint(handled=min(waiting) - 1 if waiting else self._last_seq,
                                    rejected=max(self._last_seq, self._resume.rejected))
        if not (blocks or quote_blocks or self._rejections or self._books) and progress == self._committed:
            return
        self.redis.call(
            self.store.commit, self.source_id, blocks, quote_blocks, self._states, self._rejections, self._books, progress
        )
        self._committed = progress
        self.metrics.committed(received)
        self._after_commit(blocks, quote_blocks)

    def _push_metrics(self) -> None:
        """Publish this process's metrics and each symbol's memory and freshness."""
        per_symbol = {
            symbol: {"ring_bytes": self.rings.memory_bytes(symbol), "ticks_total": self.report.accepted[symbol],
                     "newest_ts": int(ring.latest(1)["ts"][0]) if len(ring) else -1}
            for symbol, ring in self.rings.ticks.items()
        }
        self.redis.call(self.store.write_metrics, self.source_id, self.metrics.snapshot(), per_symbol)

    def _quote_blocks(self) -> list[Block]:
        """Every queued quote, in stream entries of at most ``batch_size``."""
        blocks = []
        size = self.config.batch_size
        for symbol, parts in self._pending_quotes.items():
            quotes = np.concatenate([q for q, _ in parts])
            seqs = np.concatenate([s for _, s in parts])
            for i in range(0, len(quotes), size):
                count = self._quote_counts.setdefault(symbol, 0)
                blocks.append(Block(symbol, quotes[i:i + size], count, int(seqs[i:i + size][-1])))
                self._quote_counts[symbol] = count + len(quotes[i:i + size])
        self._pending_quotes = {}
        return blocks

    def _after_commit(self, blocks: list[Block], quote_blocks: list[Block]) -> None:
        """Count what was stored, feed the rings and refresh real-time indicators."""
        self.report.rejected.update(r.reason for r in self._rejections)
        self.report.books += len(self._books)
        self._rejections, self._books = [], []
        for block in quote_blocks:
            self.report.quotes += len(block.records)
            self._quote_seq[block.symbol] = block.source_seq
            self.rings.quote_ring(block.symbol).append(block.records)
        for block in blocks:
            self.report.accepted[block.symbol] += len(block.records)
            self._stored_seq[block.symbol] = block.source_seq
            self.rings.tick_ring(block.symbol).append(block.records)
            self._since_refresh[block.symbol] += len(block.records)
        self.live_bars.committed(blocks)
        readings = self._feed_vpin(blocks)
        full = {b.symbol: (b, r) for b, r in zip(blocks, readings) if len(b.records) == self.config.batch_size}
        for symbol, (block, reading) in full.items():
            self._batch_metrics(symbol, block.records, reading)
        due = [s for s, n in self._since_refresh.items() if n >= self.config.indicator_every]
        for symbol in due:
            self._refresh(symbol)

    def _feed_vpin(self, blocks: list[Block]) -> list[VpinReading]:
        """Stored blocks into each symbol's VPIN buckets, in order; the reading after each block.

        A symbol new to this process has its buckets restored instead, through
        every stored tick of its day so far (these blocks included).
        """
        new = {b.symbol for b in blocks} - set(self._vpin)
        for symbol in new:
            ts = np.concatenate([b.records["ts"] for b in blocks if b.symbol == symbol])
            self._vpin[symbol] = self.redis.call(live_vpin.restore, self.config, self.store, symbol, int(ts.min()),
                                                 int(ts.max()))
        return [self._vpin[b.symbol].reading() if b.symbol in new else self._vpin[b.symbol].feed(b.records)
                for b in blocks]

    def _quotes_between(self, symbol: str, start: int, end: int) -> np.ndarray:
        """Quotes stamped in [start, end], preceded by the one standing at ``start`` if the ring has it."""
        ring = self.rings.quotes.get(symbol)
        quotes = ring.latest(len(ring.since(start)) + 1) if ring else np.empty(0, QUOTE_DTYPE)
        return quotes[quotes["ts"] <= end]

    def _batch_metrics(self, symbol: str, block: np.ndarray, vpin: VpinReading) -> None:
        """Metrics of the symbol's newest full micro-batch (``ind:{SYM}:{name}:1000t``)."""
        quotes = self._quotes_between(symbol, int(block["ts"][0]), int(block["ts"][-1]))
        self.redis.call(self.store.write_indicators, symbol, batch_values(block, quotes, vpin))

    def _refresh(self, symbol: str) -> None:
        ticks = self.rings.tick_ring(symbol).recent(WINDOW_SECONDS)
        end = int(ticks["ts"][-1])
        quotes = self._quotes_between(symbol, end - WINDOW_SECONDS * 1000, end)
        started = time.monotonic()
        values = realtime_values(ticks, quotes, self._vpin[symbol].reading())
        self.metrics.indicator_ms.add((time.monotonic() - started) * 1000)
        self.redis.call(self.store.write_indicators, symbol, values)
        self._since_refresh[symbol] = 0


class _Pacer:
    """Sleeps that replay a feed at ``speed`` times its event-time pace."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._origin: tuple[float, int] | None = None

    def delay(self, chunk: FeedChunk) -> float:
        if self.speed <= 0:
            return 0.0
        first = _first_ts(chunk)
        if first is None:
            return 0.0
        if self._origin is None:
            self._origin = (time.monotonic(), first)
            return 0.0
        wall0, ts0 = self._origin
        return wall0 + (first - ts0) / 1000 / self.speed - time.monotonic()


def _first_ts(chunk: FeedChunk) -> int | None:
    candidates = [int(x.ts[0]) for x in (chunk.trades, chunk.quotes) if x is not None and len(x)]
    candidates += [b.ts for b in chunk.books[:1]]
    return min(candidates) if candidates else None
