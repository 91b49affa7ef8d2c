"""Reading and writing the hot tier in Redis, one server or a Redis Cluster alike.

An ingest commit is a few atomic writes, each confined to one Redis Cluster
slot (one symbol's keys, or one source's) and guarded by the checkpoint
watermark it advances, so that sending it again stores nothing twice. They are
ordered so that a process killed between two of them resumes exactly: see
:meth:`HotStore.commit`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from redis.cluster import ClusterPipeline, RedisCluster

from fractal_assets.hot.codec import pack_book, pack_records, pack_value, unpack_records, unpack_value
from fractal_assets.hot.keys import Keys
from fractal_assets.ingest.validation import SymbolState
from fractal_assets.market.ticks import QUOTE_DTYPE, TICK_DTYPE, BookSnapshot, Rejection

DEAD_LETTER_MAXLEN = 1_000_000
RAW_LIMIT = 4096
"""Characters (bytes, for a binary record) of a rejected record kept in its dead letter."""
DEAD_LETTERS_PER_WRITE = 10_000
"""Rejections per guarded write: about 18 arguments each keeps one EVAL far below the
1,048,576 arguments Redis 6.2 accepts in a command."""
PROCESS_METRICS_TTL_MS = 10_000
"""An ingest process publishes its metrics about once a second; ten seconds without doing so
means it is gone."""
BOOK_MAXLEN = 72_000
"""Order-book snapshots kept per symbol: two hours at one per 100 ms. Books are not
archived (their top of book is, as quotes), so the stream is capped, not trimmed on archive."""
NOTHING = -1
LIVE_BARS_FIELD = "live_bars"
SOURCE_FIELDS = ("handled", "rejected", "imported")
WATERMARKS = ("src", "qsrc", "book")
"""Per-source checkpoint fields of a symbol: ticks, quotes and books stored, in the order a
symbol's write picks its guard from."""

Client = redis.Redis | RedisCluster
Pipeline = redis.client.Pipeline | ClusterPipeline
Command = tuple[Any, ...]
"""A Redis command with its key second: ``("HSET", key, field, value)``."""

GUARDED_WRITE = """
-- Apply writes to one slot at most once: skip them when the hash field ARGV[1] of KEYS[1]
-- (the watermark they advance) already holds ARGV[2] or more. KEYS lists every key written.
-- ARGV[3..] are the commands, each as its argument count followed by its arguments.
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored and tonumber(stored) >= tonumber(ARGV[2]) then
  return 0
end
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
"""


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
    first_source_seq: int = NOTHING
    """Lowest sequence number of the source stored among this symbol's ticks, or NOTHING: with
    ``source_seq`` it bounds what ingest stored, so an import of the same file stores the rest."""


@dataclass(frozen=True)
class SourceCheckpoint:
    """How far one source got."""

    handled: int = NOTHING
    """Every record up to this sequence is stored or rejected: a restart reads on from here."""
    rejected: int = NOTHING
    """Rejections of records up to this sequence are in the dead-letter stream."""
    imported: int = NOTHING
    """Every record up to this sequence was handled by ``fractal import`` (written by import only)."""


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
    first_source_seq: int | None = None
    """Set on the first block of a symbol's ticks from a source: its lowest source sequence number."""


STREAM_DTYPES = {"ticks": TICK_DTYPE, "quotes": QUOTE_DTYPE}


@dataclass(frozen=True)
class GuardedWrite:
    """Commands on keys of one slot that advance a watermark (a checkpoint hash field), sent
    as one script: atomic, and skipped by the server when the watermark shows them applied."""

    watermark_key: str
    field: str
    value: int
    commands: list[Command]

    def queue(self, pipe: Pipeline) -> None:
        """Add the write to a pipeline as one EVAL (redis-py's cluster pipeline blocks ``eval()``)."""
        keys = list(dict.fromkeys([self.watermark_key, *(command[1] for command in self.commands)]))
        argv: list[Any] = [self.field, self.value]
        for command in self.commands:
            argv += [len(command), *command]
        pipe.execute_command("EVAL", GUARDED_WRITE, len(keys), *keys, *argv)


class HotStore:
    """The Redis side of the hot tier."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._listed: set[str] = set()
        """Symbols this store has added to ``symbols``: nothing removes them, so once is enough."""

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
                first_source_seq=int(h.get(f"first:{source_id}", NOTHING)),
            )
        return out

    def source_checkpoint(self, source_id: str) -> SourceCheckpoint:
        """Saved progress of a source (NOTHING where it never ran)."""
        raw = {k.decode(): int(v) for k, v in self.client.hgetall(self.keys.source_checkpoint(source_id)).items()}
        return SourceCheckpoint(**{f: raw[f] for f in SOURCE_FIELDS if f in raw})

    def mark_imported(self, source_id: str, through: int) -> None:
        """Record that ``fractal import`` handled every record of a source up to ``through``: a
        later ingest of the same content reads on after it, a later import skips it."""
        done = self.source_checkpoint(source_id)
        self.client.hset(self.keys.source_checkpoint(source_id), mapping={
            "imported": max(done.imported, through), "handled": max(done.handled, through),
            "rejected": max(done.rejected, through),
        })

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
        """Store tick and quote blocks, books and dead letters with their checkpoints, in three
        steps whose every write stays in one cluster slot and may be sent again.

        1. The symbols join ``symbols`` and the rejections are dead-lettered. A restart finds a
           symbol's checkpoint through ``symbols`` and never re-reads the records that
           checkpoint covers, rejected ones included, so both come before step 2.
        2. Each symbol's entries with its checkpoint, one atomic write per symbol.
        3. The source checkpoint, so ``handled`` never runs ahead of stored records.

        A process killed between writes leaves each symbol wholly stored or untouched, and a
        restart resumes each symbol from its own checkpoint.
        """
        symbols = {item.symbol for item in (*blocks, *quote_blocks, *books)}
        self._list_and_dead_letter(source_id, symbols, rejections)
        self._send(self._symbol_writes(source_id, blocks, quote_blocks, states, books))
        self._advance_source(source_id, progress)

    def write_metrics(self, source_id: str, process: dict[str, Any], per_symbol: dict[str, dict[str, Any]]) -> None:
        """Publish an ingest process's metrics, which expire ``PROCESS_METRICS_TTL_MS`` after
        this unless published again (a process that died leaves none), and per-symbol figures."""
        pipe = self.client.pipeline(transaction=False)
        key = self.keys.ingest_metrics(source_id)
        pipe.hset(key, mapping=process)
        pipe.pexpire(key, PROCESS_METRICS_TTL_MS)
        for symbol, fields in per_symbol.items():
            pipe.hset(self.keys.symbol_metrics(symbol), mapping=fields)
        pipe.execute()

    def drop_process_metrics(self, source_id: str) -> None:
        """Withdraw the metrics of an ingest process that has ended."""
        self.client.delete(self.keys.ingest_metrics(source_id))

    def _list_and_dead_letter(self, source_id: str, symbols: set[str], rejections: list[Rejection]) -> None:
        """Step 1 of a commit: add new symbols to ``symbols`` and dead-letter the rejections.
        Usually there is nothing to send."""
        new = symbols - self._listed
        if not (new or rejections):
            return
        pipe = self.client.pipeline(transaction=False)
        if new:
            pipe.sadd(self.keys.symbols(), *sorted(new))
        ordered = sorted(rejections, key=lambda r: r.seq)
        for start in range(0, len(ordered), DEAD_LETTERS_PER_WRITE):
            for write in self._dead_letter_writes(source_id, ordered[start:start + DEAD_LETTERS_PER_WRITE]):
                write.queue(pipe)
        pipe.execute()
        self._listed |= new

    def _dead_letter_writes(self, source_id: str, rejections: list[Rejection]) -> list[GuardedWrite]:
        """Rejections in sequence order: the letters, guarded by the source's mark in the
        dead-letter stream's slot, and the counts, guarded by the source checkpoint's
        ``rejected`` watermark in the source's slot; each moves its guard to the last one's
        sequence number."""
        through = rejections[-1].seq
        marks, checkpoint = self.keys.dead_letter_marks(), self.keys.source_checkpoint(source_id)
        return [
            GuardedWrite(marks, source_id, through,
                         [*self._letter_commands(source_id, rejections), ("HSET", marks, source_id, through)]),
            GuardedWrite(checkpoint, "rejected", through,
                         [*self._count_commands(source_id, rejections), ("HSET", checkpoint, "rejected", through)]),
        ]

    def _symbol_writes(self, source_id: str, blocks: list[Block], quote_blocks: list[Block],
                       states: dict[str, SymbolState], books: list[BookSnapshot]) -> list[GuardedWrite]:
        """Step 2 of a commit: per symbol, its stream entries and the checkpoint fields they move."""
        commands: dict[str, list[Command]] = defaultdict(list)
        marks: dict[str, dict[str, Any]] = defaultdict(dict)
        for stream, kind_blocks, src, count in (
            ("ticks", blocks, "src", "count"), ("quotes", quote_blocks, "qsrc", "quote_count")
        ):
            for block in kind_blocks:
                ts = block.records["ts"]
                commands[block.symbol].append((
                    "XADD", self._stream_key(block.symbol, stream), "*", "d", pack_records(block.records, block.seq0),
                    "t0", int(ts.min()), "t1", int(ts.max()), "n", len(block.records),
                ))
                marks[block.symbol][f"{src}:{source_id}"] = block.source_seq
                marks[block.symbol][count] = block.seq0 + len(block.records)
                if block.first_source_seq is not None:
                    marks[block.symbol][f"first:{source_id}"] = block.first_source_seq
        for book in books:
            commands[book.symbol].append((
                "XADD", self.keys.order_book(book.symbol), "MAXLEN", "~", BOOK_MAXLEN, "*",
                "d", pack_book(book.ts, book.bids, book.asks),
            ))
            marks[book.symbol][f"book:{source_id}"] = book.ts
        for symbol, mark in marks.items():
            if f"src:{source_id}" in mark:
                state = states[symbol]
                mark.update(max_ts=state.max_ts, last_price=repr(state.last_price), last_side=state.last_side)
        return [self._checkpointed(symbol, source_id, commands[symbol], mark) for symbol, mark in marks.items()]

    def _checkpointed(self, symbol: str, source_id: str, commands: list[Command], mark: dict[str, Any]) -> GuardedWrite:
        """A symbol's commands with its checkpoint update, guarded by the first source watermark
        the write moves: each of them only grows, so one already at its value means applied."""
        checkpoint = self.keys.checkpoint(symbol)
        guard = next(field for field in (f"{kind}:{source_id}" for kind in WATERMARKS) if field in mark)
        fields = [item for pair in mark.items() for item in pair]
        return GuardedWrite(checkpoint, guard, mark[guard], [*commands, ("HSET", checkpoint, *fields)])

    def _send(self, writes: list[GuardedWrite]) -> None:
        """One pipeline of guarded writes: one round trip per server, whatever their slots."""
        if not writes:
            return
        pipe = self.client.pipeline(transaction=False)
        for write in writes:
            write.queue(pipe)
        pipe.execute()

    def _advance_source(self, source_id: str, progress: SourceCheckpoint) -> None:
        """Step 3 of a commit: the source checkpoint, one HSET (atomic and idempotent)."""
        self.client.hset(self.keys.source_checkpoint(source_id),
                         mapping={"handled": progress.handled, "rejected": progress.rejected})

    def _letter_commands(self, source_id: str, rejections: list[Rejection]) -> list[Command]:
        """Append rejections to the dead-letter stream."""
        return [("XADD", self.keys.dead_letter(), "MAXLEN", "~", DEAD_LETTER_MAXLEN, "*", "reason", r.reason,
                 "detail", r.detail, "source", source_id, "seq", r.seq, "symbol", r.symbol, "raw", r.raw[:RAW_LIMIT])
                for r in rejections]

    def _count_commands(self, source_id: str, rejections: list[Rejection]) -> list[Command]:
        """Count rejections by reason in the source's counts."""
        counts = self.keys.rejected_counts(source_id)
        return [("HINCRBY", counts, reason, n) for reason, n in Counter(r.reason for r in rejections).items()]

    def record_rejections(self, source_id: str, rejections: list[Rejection]) -> None:
        """Dead-letter rejections found outside live ingest (bulk import): the letters, then
        the counts, each one transaction in its own slot."""
        for commands in (self._letter_commands(source_id, rejections), self._count_commands(source_id, rejections)):
            pipe = self.client.pipeline(transaction=True)
            for command in commands:
                pipe.execute_command(*command)
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

    def read_ticks_since(self, symbol: str, since_ms: int, tolerance_ms: int, page: int = 64) -> HotRecords:
        """Ticks of the newest entries, back to the first entry that cannot hold a tick stamped at
        or after ``since_ms``, in arrival order (they include older ticks too).

        Ticks arriving before an entry are at most its first tick plus the tolerance (ingest
        rejects a tick more than the tolerance older than its symbol's newest), so the walk back
        stops at an entry with ``t0 + tolerance < since_ms``.
        """
        key = self._stream_key(symbol, "ticks")
        entries: list = []
        upper: str | bytes = "+"
        while True:
            batch = self.client.xrevrange(key, upper, "-", count=page)
            fresh = batch if upper == "+" else batch[1:]
            entries += fresh
            if not fresh or len(batch) < page or any(int(f[b"t0"]) + tolerance_ms < since_ms for _, f in fresh):
                break
            upper = batch[-1][0]
        parts, seqs = [], []
        for _, fields in reversed(entries):
            records, seq0 = unpack_records(fields[b"d"], TICK_DTYPE)
            parts.append(records)
            seqs.append(np.arange(seq0, seq0 + len(records), dtype=np.int64))
        if not parts:
            return HotRecords(None, np.empty(0, dtype=TICK_DTYPE), np.empty(0, dtype=np.int64))
        return HotRecords(entries[0][0], np.concatenate(parts), np.concatenate(seqs))

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
        to serve as the MINID boundary. The trim is exact (not ``MINID ~``, which
        only drops whole radix-tree nodes), so Redis holds the retention and no more.
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
        return int(self.client.xtrim(self._stream_key(symbol, stream), minid=spans[cut].entry_id, approximate=False))

    def mark_live_bars(self, through: dict[str, int]) -> None:
        """Record per symbol that every closed 1m-1h bar ending at or before ``through`` is in
        the warm tier (field ``live_bars`` of ``ckpt:{SYM}``); one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for symbol, ts in through.items():
            pipe.hset(self.keys.checkpoint(symbol), LIVE_BARS_FIELD, ts)
        pipe.execute()

    def live_bars_through(self, symbol: str) -> int | None:
        """The symbol's live-bar watermark (see :meth:`mark_live_bars`), or None."""
        value = self.client.hget(self.keys.checkpoint(symbol), LIVE_BARS_FIELD)
        return None if value is None else int(value)

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

    def rejected_counts(self, source_id: str) -> dict[str, int]:
        """Rejections of a source so far, by reason."""
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.keys.rejected_counts(source_id)).items()}
