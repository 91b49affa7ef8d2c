"""Reading and writing the hot tier in Redis.

A commit is one MULTI/EXEC transaction holding the tick entries, the
dead letters and the checkpoints that say how far each symbol got, so a
process killed at any instant leaves either all of a commit or none of it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import redis

from fractal_assets.hot.codec import pack_book, pack_records, pack_value, unpack_records, unpack_value
from fractal_assets.hot.keys import Keys
from fractal_assets.ticks import QUOTE_DTYPE, TICK_DTYPE, BookSnapshot, Rejection
from fractal_assets.validation import SymbolState

DEAD_LETTER_MAXLEN = 1_000_000
RECONNECT_DEADLINE_S = 60.0
BOOK_MAXLEN = 72_000
"""Order-book snapshots kept per symbol: two hours at one per 100 ms. Books are not
archived (their top of book is, as quotes), so the stream is capped, not trimmed on archive."""
NOTHING = -1


@dataclass
class SymbolCheckpoint:
    """How far one symbol got: overall, and from one source."""

    state: SymbolState
    count: int
    """Ticks of this symbol ever stored (the next tick's arrival number)."""
    source_seq: int
    """Highest sequence number of the source stored for this symbol, or NOTHING."""
    book_ts: int
    """Newest order-book snapshot stored from the source, or NOTHING."""
    quote_count: int
    """Quotes of this symbol ever stored."""
    quote_source_seq: int
    """Highest sequence number of the source stored among this symbol's quotes, or NOTHING."""


@dataclass(frozen=True)
class SourceCheckpoint:
    """How far one source got."""

    handled: int = NOTHING
    """Every record up to this sequence is stored or rejected: a restart reads on from here."""
    rejected: int = NOTHING
    """Rejections of records up to this sequence are in the dead-letter stream."""
    commits: int = 0
    """Commits of this source so far: tells whether a commit interrupted by a lost
    connection was applied before the connection dropped."""


@dataclass
class HotRecords:
    """Records read back from a stream, with each one's arrival number."""

    last_entry: bytes | None
    records: np.ndarray
    seq: np.ndarray

    @property
    def ticks(self) -> np.ndarray:
        return self.records


@dataclass(frozen=True)
class EntrySpan:
    """A stream entry, the event-time range of its records and how many it holds."""

    entry_id: bytes
    t0: int
    t1: int
    n: int = 0


def _stream_id(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.decode().partition("-")
    return int(ms), int(seq or 0)


def _is_archived(span: EntrySpan, archived: dict[str, tuple[int, int]]) -> bool:
    """Every day the entry touches was archived through it or a later entry."""
    return all(archived.get(day, (-1, -1)) >= _stream_id(span.entry_id) for day in utc_days(span.t0, span.t1))


def utc_days(t0: int, t1: int) -> list[str]:
    """UTC dates (YYYY-MM-DD) touched by the epoch-ms range [t0, t1]."""
    first, last = np.datetime64(t0, "ms").astype("M8[D]"), np.datetime64(t1, "ms").astype("M8[D]")
    return [str(d) for d in np.arange(first, last + 1)]


@dataclass
class Block:
    """A micro-batch of one symbol's ticks or quotes, ready for one stream entry."""

    symbol: str
    records: np.ndarray
    seq0: int
    """Arrival number of the first record among the symbol's records of this kind."""
    source_seq: int
    """Highest source sequence number in the block."""


STREAM_DTYPES = {"ticks": TICK_DTYPE, "quotes": QUOTE_DTYPE}


class HotStore:
    """The Redis side of the hot tier."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def checkpoints(self, symbols: list[str], source_id: str) -> dict[str, SymbolCheckpoint]:
        """Saved progress of the given symbols, for resuming after a restart."""
        pipe = self.client.pipeline(transaction=False)
        for symbol in symbols:
            pipe.hgetall(self.keys.checkpoint(symbol))
        out = {}
        for symbol, raw in zip(symbols, pipe.execute()):
            h = {k.decode(): v.decode() for k, v in raw.items()}
            out[symbol] = SymbolCheckpoint(
                state=SymbolState(
                    max_ts=int(h["max_ts"]) if "max_ts" in h else None,
                    last_price=float(h["last_price"]) if "last_price" in h else None,
                    last_side=int(h.get("last_side", 1)),
                ),
                count=int(h.get("count", 0)),
                source_seq=int(h.get(f"src:{source_id}", NOTHING)),
                book_ts=int(h.get(f"book:{source_id}", NOTHING)),
                quote_count=int(h.get("quote_count", 0)),
                quote_source_seq=int(h.get(f"qsrc:{source_id}", NOTHING)),
            )
        return out

    def source_checkpoint(self, source_id: str) -> SourceCheckpoint:
        """Saved progress of a source (NOTHING where it never ran)."""
        raw = self.client.hgetall(self.keys.source_checkpoint(source_id))
        return SourceCheckpoint(**{k.decode(): int(v) for k, v in raw.items()})

    def commit(
        self,
        source_id: str,
        blocks: list[Block],
        quote_blocks: list[Block],
        states: dict[str, SymbolState],
        rejections: list[Rejection],
        books: list[BookSnapshot],
        progress: SourceCheckpoint,
    ) -> None:
        """Store tick and quote blocks, dead letters and books with their checkpoints, atomically."""
        pipe = self.client.pipeline(transaction=True)
        stored: Counter[str] = Counter()
        marks: dict[str, dict[str, Any]] = {}
        for stream, kind_blocks, src, count in (
            ("ticks", blocks, "src", "count"), ("quotes", quote_blocks, "qsrc", "quote_count")
        ):
            for block in kind_blocks:
                ts = block.records["ts"]
                entry = {"d": pack_records(block.records, block.seq0), "t0": int(ts.min()), "t1": int(ts.max()),
                         "n": len(block.records)}
                pipe.xadd(self._stream_key(block.symbol, stream), entry)
                mark = marks.setdefault(block.symbol, {})
                mark[f"{src}:{source_id}"] = block.source_seq
                mark[count] = block.seq0 + len(block.records)
        for block in blocks:
            stored[block.symbol] += len(block.records)
        for book in books:
            pipe.xadd(self.keys.order_book(book.symbol), {"d": pack_book(book.ts, book.bids, book.asks)},
                      maxlen=BOOK_MAXLEN, approximate=True)
            marks.setdefault(book.symbol, {})[f"book:{source_id}"] = book.ts
        for symbol, mark in marks.items():
            if symbol in stored:
                state = states[symbol]
                mark.update(max_ts=state.max_ts, last_price=repr(state.last_price), last_side=state.last_side)
            pipe.hset(self.keys.checkpoint(symbol), mapping=mark)
            pipe.sadd(self.keys.symbols(), symbol)
        for symbol, n in stored.items():
            pipe.hincrby(self.keys.accepted_counts(), symbol, n)
        self._dead_letters(pipe, source_id, rejections)
        pipe.hset(self.keys.source_checkpoint(source_id), mapping=asdict(progress))
        pipe.execute()

    def commit_retrying(self, source_id: str, *args: Any, deadline_s: float = RECONNECT_DEADLINE_S) -> None:
        """:meth:`commit`, surviving a Redis restart: on a lost connection it waits for the
        server, then retries unless the source checkpoint shows the commit already applied."""
        progress: SourceCheckpoint = args[-1]
        give_up = time.monotonic() + deadline_s
        delay = 0.05
        while True:
            try:
                self.commit(source_id, *args)
                return
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > give_up:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                try:
                    if self.source_checkpoint(source_id).commits >= progress.commits:
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    continue

    def write_metrics(self, source_id: str, process: dict[str, Any], per_symbol: dict[str, dict[str, Any]]) -> None:
        """Publish an ingest process's metrics and per-symbol figures."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.keys.ingest_metrics(source_id), mapping=process)
        for symbol, fields in per_symbol.items():
            pipe.hset(self.keys.symbol_metrics(symbol), mapping=fields)
        pipe.execute()

    def _dead_letters(self, pipe: redis.client.Pipeline, source_id: str, rejections: list[Rejection]) -> None:
        """Count rejections by reason and append them to the dead-letter stream."""
        for reason, n in Counter(r.reason for r in rejections).items():
            pipe.hincrby(self.keys.rejected_counts(), reason, n)
        for r in rejections:
            pipe.xadd(
                self.keys.dead_letter(),
                {"reason": r.reason, "detail": r.detail, "source": source_id, "seq": r.seq,
                 "symbol": r.symbol, "raw": r.raw[:4096]},
                maxlen=DEAD_LETTER_MAXLEN, approximate=True,
            )

    def record_rejections(self, source_id: str, rejections: list[Rejection]) -> None:
        """Dead-letter rejections found outside live ingest (bulk import)."""
        pipe = self.client.pipeline(transaction=True)
        self._dead_letters(pipe, source_id, rejections)
        pipe.execute()

    def file_index(self, source_id: str) -> int:
        """A stable small integer per imported file, handed out once."""
        key = self.keys.imports()
        existing = self.client.hget(key, source_id)
        if existing is None:
            self.client.hsetnx(key, source_id, self.client.incr(self.keys.import_counter()) - 1)
            existing = self.client.hget(key, source_id)
        return int(existing)

    def _stream_key(self, symbol: str, stream: str) -> str:
        return self.keys.ticks(symbol) if stream == "ticks" else self.keys.quotes(symbol)

    def read_stream(self, symbol: str, stream: str, min_id: str | bytes = "-", max_id: str | bytes = "+") -> HotRecords:
        """Records of the ``ticks`` or ``quotes`` entries in [min_id, max_id], in arrival order."""
        dtype = STREAM_DTYPES[stream]
        entries = self.client.xrange(self._stream_key(symbol, stream), min_id, max_id)
        parts, seqs = [], []
        for _, fields in entries:
            records, seq0 = unpack_records(fields[b"d"], dtype)
            parts.append(records)
            seqs.append(np.arange(seq0, seq0 + len(records), dtype=np.int64))
        if not parts:
            return HotRecords(None, np.empty(0, dtype=dtype), np.empty(0, dtype=np.int64))
        return HotRecords(entries[-1][0], np.concatenate(parts), np.concatenate(seqs))

    def read_ticks(self, symbol: str, min_id: str | bytes = "-", max_id: str | bytes = "+") -> HotRecords:
        """Ticks of the stream entries in [min_id, max_id], in arrival order."""
        return self.read_stream(symbol, "ticks", min_id, max_id)

    def entry_spans(self, symbol: str, min_id: str | bytes = "-", stream: str = "ticks") -> list[EntrySpan]:
        """Entry ids with the time span of their records, without unpacking payloads."""
        entries = self.client.xrange(self._stream_key(symbol, stream), min_id, "+")
        return [EntrySpan(eid, int(f[b"t0"]), int(f[b"t1"]), int(f.get(b"n", 0))) for eid, f in entries]

    def unarchived(self, symbol: str, stream: str = "ticks", spans: list[EntrySpan] | None = None) -> list[EntrySpan]:
        """Entries holding records of a day not yet archived through them (the archive backlog);
        ``spans`` saves reading the stream again when the caller already has them."""
        archived = self._archived_ids(symbol, stream)
        spans = self.entry_spans(symbol, stream=stream) if spans is None else spans
        return [span for span in spans if not _is_archived(span, archived)]

    def _archived_ids(self, symbol: str, stream: str) -> dict[str, tuple[int, int]]:
        return {d: _stream_id(v) for d, v in self.archived(symbol, stream).items()}

    def mark_archived(self, symbol: str, date: str, through: bytes, stream: str = "ticks") -> None:
        """Record that the records of ``date`` in entries up to ``through`` are in the cold tier."""
        self.client.hset(self.keys.archived(symbol, stream), date, through)

    def archived(self, symbol: str, stream: str = "ticks") -> dict[str, bytes]:
        """UTC date -> newest entry id archived for it."""
        return {k.decode(): v for k, v in self.client.hgetall(self.keys.archived(symbol, stream)).items()}

    def trim_archived(self, symbol: str, keep_ms: int, stream: str = "ticks") -> int:
        """Drop the oldest entries whose records are all archived and older than ``keep_ms``
        before the stream's newest record; returns how many were dropped.

        The newest entry is never older than that, so there is always one left
        to serve as the MINID boundary.
        """
        spans = self.entry_spans(symbol, stream=stream)
        if not spans:
            return 0
        newest = max(s.t1 for s in spans)
        archived = self._archived_ids(symbol, stream)
        cut = 0
        for span in spans:
            if span.t1 >= newest - keep_ms or not _is_archived(span, archived):
                break
            cut += 1
        if cut == 0:
            return 0
        return int(self.client.xtrim(self._stream_key(symbol, stream), minid=spans[cut].entry_id))

    def symbols(self) -> list[str]:
        """Every symbol ingest has stored."""
        return sorted(s.decode() for s in self.client.smembers(self.keys.symbols()))

    def read_books(self, symbol: str) -> list[dict[str, Any]]:
        """Every order-book snapshot of a symbol, oldest first."""
        return [unpack_value(f[b"d"]) for _, f in self.client.xrange(self.keys.order_book(symbol))]

    def write_indicators(self, symbol: str, values: dict[tuple[str, str], dict[str, Any]]) -> None:
        """Set latest indicator values: (indicator, timeframe) -> {value, ts, meta}."""
        pipe = self.client.pipeline(transaction=False)
        for (indicator, timeframe), doc in values.items():
            pipe.set(self.keys.indicator(symbol, indicator, timeframe), pack_value(doc))
        pipe.execute()

    def read_indicator(self, symbol: str, indicator: str, timeframe: str) -> dict[str, Any] | None:
        """Latest value of one real-time indicator, or None."""
        raw = self.client.get(self.keys.indicator(symbol, indicator, timeframe))
        return unpack_value(raw) if raw is not None else None

    def rejected_counts(self) -> dict[str, int]:
        """Rejections so far, by reason."""
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.keys.rejected_counts()).items()}
