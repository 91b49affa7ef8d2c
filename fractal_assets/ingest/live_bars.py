"""Bars of the open day, written to ``fractal_bars`` by the ingest process as their buckets close.

When a bucket is final: validation rejects a symbol's tick that is more than
the tolerance older than the symbol's newest (``ts_backwards``), so once the
newest accepted tick is at ``t + w + tolerance`` no tick can join the bucket
[t, t + w) any more. Every 1m, 5m, 15m and 1h bucket is then computed with
``compute_bars`` from its ticks in (ts, arrival) order, the order of the
archived partition, so the day's later rebuild from the cold tier writes
identical rows.

The clock: a symbol's buckets close on its own newest tick while it trades.
While the feed waits for data (an empty chunk: a followed file, a live
source), the clock of every symbol is the newest tick seen across symbols
plus the wall time since it was received, so the last bars of a quiet
market close too. A tick accepted afterwards into a bucket written that way
(within its own symbol's tolerance) makes the bucket be written again.

Memory: the ticks of each symbol's open hour plus the tolerance, 25 bytes a
tick (about 90 MB for a symbol trading 1,000 ticks/s).

After a restart a symbol's open buckets are reloaded from the hot tier;
buckets that may hold ticks the hot tier no longer has (trimmed) are left
to the day's rebuild. The warm tier holds every bar ending at or before the
watermark a symbol's ``ckpt:{SYM}`` field ``live_bars`` records.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fractal_assets.config import Config
from fractal_assets.hot.retry import RetryPolicy
from fractal_assets.hot.store import Block, HotStore
from fractal_assets.indicators.realtime import fractal_value
from fractal_assets.market.bars import TIMEFRAMES, compute_bars
from fractal_assets.market.ticks import TICK_DTYPE
from fractal_assets.warm.bars import read_bars, upsert_bars
from fractal_assets.warm.db import connect
from fractal_assets.warm.schema import migrate

LIVE_TIMEFRAMES = ("1m", "5m", "15m", "1h")
STEP_MS = TIMEFRAMES[LIVE_TIMEFRAMES[0]]
SPAN_MS = TIMEFRAMES[LIVE_TIMEFRAMES[-1]]
NEVER = -(2**62)
"""An epoch ms before any tick."""
FRACTAL_BARS = 100
"""5m bars the real-time Williams fractal looks back over for the newest up and down fractal."""

BarRows = list[tuple[str, str, pd.DataFrame]]


def floor_to(ts: int, width: int) -> int:
    return ts - ts % width


@dataclass
class _Open:
    """One symbol's ticks of buckets that may still change, and what was written of them."""

    ordered: np.ndarray
    """Ticks sorted by (ts, arrival)."""
    written: int
    """Every live bucket ending at or before this is in the warm tier."""
    coverage: int = NEVER
    """Buckets starting before this may hold ticks this process never saw: not written."""
    fresh: list[np.ndarray] = field(default_factory=list)
    newest: int = NEVER
    late: int | None = None
    """Oldest tick that arrived for an already written bucket."""

    def add(self, ticks: np.ndarray) -> None:
        self.fresh.append(ticks)
        oldest = int(ticks["ts"].min())
        if oldest < self.written:
            self.late = oldest if self.late is None else min(self.late, oldest)
        self.newest = max(self.newest, int(ticks["ts"].max()))

    def sorted_ticks(self) -> np.ndarray:
        """All held ticks in (ts, arrival) order: the stable sort keeps arrival order on equal ts."""
        if self.fresh:
            ticks = np.concatenate([self.ordered, *self.fresh])
            if np.any(np.diff(ticks["ts"]) < 0):
                ticks = ticks[np.argsort(ticks["ts"], kind="stable")]
            self.ordered, self.fresh = ticks, []
        return self.ordered

    def forget(self, tolerance: int) -> None:
        """Drop the ticks of hours final by the symbol's own clock."""
        keep_from = floor_to(self.newest - tolerance, SPAN_MS)
        cut = int(np.searchsorted(self.ordered["ts"], keep_from))
        if cut:
            self.ordered = self.ordered[cut:]


class LiveBars:
    """Writes every closed 1m-1h bar of the symbols an :class:`Ingestor` stores."""

    def __init__(self, config: Config, store: HotStore, redis: RetryPolicy) -> None:
        self.config = config
        self.store = store
        self.redis = redis
        """The ingest process's one retry policy, for every Redis call made here too."""
        self.tolerance = config.ts_tolerance_ms
        self._open: dict[str, _Open] = {}
        self._conn: sqlite3.Connection | None = None
        self._newest = NEVER
        self._received = 0.0
        """Newest tick committed across symbols, and when (monotonic s)."""

    def committed(self, blocks: list[Block]) -> None:
        """The ingest hook after each commit: hold the ticks, write the bars that closed and
        refresh the real-time Williams fractal of symbols whose 5m bar closed."""
        if not blocks:
            return
        for block in blocks:
            self.add(block.symbol, block.records, block.seq0)
            self._newest = max(self._newest, self._open[block.symbol].newest)
        self._received = time.monotonic()
        self._refresh_fractals(self.close(sorted({b.symbol for b in blocks})))

    def idle(self) -> None:
        """The ingest hook while the feed waits: close buckets on the wall-clock-advanced event clock."""
        if self._open:
            waited_ms = int((time.monotonic() - self._received) * 1000)
            self._refresh_fractals(self.close([], idle_clock=self._newest + waited_ms))

    def _refresh_fractals(self, closed: dict[str, pd.DataFrame]) -> None:
        for symbol, bars in closed.items():
            end = int(bars["timestamp"].iloc[-1]) + TIMEFRAMES["5m"]
            recent = read_bars(self._warm(), symbol, "5m", end - FRACTAL_BARS * TIMEFRAMES["5m"], end)
            self.redis.call(self.store.write_indicators, symbol, fractal_value(recent, end))

    def add(self, symbol: str, ticks: np.ndarray, seq0: int) -> None:
        """Ticks just committed to Redis; ``seq0`` is the arrival number of the first."""
        if symbol not in self._open:
            self._open[symbol] = self._reload(symbol, seq0) if seq0 else _Open(np.empty(0, TICK_DTYPE), NEVER)
        self._open[symbol].add(ticks)

    def _reload(self, symbol: str, seq0: int) -> _Open:
        """After a restart: the hot tier's ticks of buckets not yet written or not yet final."""
        hot = self.redis.call(self.store.read_ticks, symbol)
        stored = hot.seq < seq0
        ticks, seqs = hot.ticks[stored], hot.seq[stored]
        written = self.redis.call(self.store.live_bars_through, symbol)
        newest = int(ticks["ts"].max()) if len(ticks) else NEVER
        keep_from = floor_to(min(written if written is not None else NEVER, newest - self.tolerance), SPAN_MS)
        trimmed = len(seqs) == 0 or seqs[0] > 0
        coverage = int(ticks["ts"][0]) + self.tolerance + 1 if trimmed and len(ticks) else NEVER
        state = _Open(np.empty(0, TICK_DTYPE), written if written is not None else NEVER, coverage)
        if len(ticks):
            state.add(ticks[ticks["ts"] >= keep_from])
            state.late = None
        return state

    def close(self, symbols: list[str], idle_clock: int | None = None) -> dict[str, pd.DataFrame]:
        """Write the bars that closed for ``symbols`` (all held symbols with ``idle_clock``);
        returns each symbol's newly closed 5m bars."""
        rows: BarRows = []
        advanced: dict[str, int] = {}
        for symbol in self._open if idle_clock is not None else symbols:
            state = self._open[symbol]
            clock = state.newest if idle_clock is None else max(state.newest, idle_clock)
            through = floor_to(clock - self.tolerance, STEP_MS)
            if through <= state.written and state.late is None:
                continue
            rows += self._closed(symbol, state, through)
            if through > state.written:
                state.written = advanced[symbol] = through
            state.late = None
            state.forget(self.tolerance)
        if rows:
            upsert_bars(self._warm(), rows)
        if advanced:
            self.redis.call(self.store.mark_live_bars, advanced)
        return {symbol: bars for symbol, tf, bars in rows if tf == "5m"}

    def _closed(self, symbol: str, state: _Open, through: int) -> BarRows:
        """Bars of every live timeframe that ended after the last write (or got a late tick)
        and at or before ``through``."""
        ticks = state.sorted_ticks()
        ts = ticks["ts"]
        since = state.written if state.late is None else min(state.written, state.late)
        rows = []
        for timeframe in LIVE_TIMEFRAMES:
            width = TIMEFRAMES[timeframe]
            lo = max(floor_to(since, width) if since > NEVER else NEVER, -floor_to(-state.coverage, width))
            hi = floor_to(through, width)
            i, j = np.searchsorted(ts, [lo, hi]) if hi > lo else (0, 0)
            if j > i:
                part = ticks[i:j]
                rows.append((symbol, timeframe, compute_bars(part["ts"], part["price"], part["volume"], part["side"], timeframe)))
        return rows

    def _warm(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.config.warm_db)
            migrate(self._conn)
        return self._conn

    def shut(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
