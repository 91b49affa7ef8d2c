"""Standard VPIN in the ingest process: one symbol's volume buckets carried across
micro-batches and days, sized by the trailing daily volume in the warm tier."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from fractal_assets.access.request import make_request
from fractal_assets.access.tier_reads import compute, sources
from fractal_assets.config import Config
from fractal_assets.hot.store import HotStore
from fractal_assets.indicators.realtime import VpinReading
from fractal_assets.indicators.vpin import N_BUCKETS, VpinState, daily_bucket_volume, vpin_span
from fractal_assets.market.calendar import DAY_MS, date_of
from fractal_assets.market.ticks import to_ticks
from fractal_assets.warm.db import connect_readonly, has_table
from fractal_assets.warm.vpin_state import read_vpin_state, trailing_daily_volume

NAN = float("nan")
RETRY_MS = 60_000
"""While a day's bucket size is unknown or misses the day before, the warm tier is asked
again once this much event time has passed."""

History = Callable[[int], dict[int, float]]
"""Day start -> {day start: volume} of the trailing days with trades before it, oldest first."""


class LiveVpin:
    """One symbol's VPIN buckets, fed stored micro-batches in arrival order.

    A tick belongs to the UTC day of the newest timestamp seen so far, so a
    late tick from before midnight (within the ingest tolerance) joins the
    new day. Each day's new buckets have size V = the average volume of the
    day's trailing days / 50 (``history``, the warm tier's daily bars). The
    day before is usually not yet stored at midnight; it is then counted
    from what this process fed, when it fed all of that day.
    """

    def __init__(self, history: History, days: int, state: VpinState | None, fed_from: int, note: str = "") -> None:
        self.history = history
        self.days = days
        self.state = state or VpinState()
        self.fed_from = fed_from
        """Start of the first day this process fed from its first tick."""
        self.note = note
        """Why the buckets start later than the symbol's history, if they do."""
        self.day: int | None = None
        self.bucket_volume = NAN
        self.sized_by: dict[int, float] = {}
        self.fed: dict[int, float] = {}
        self.value = NAN
        self._retry_at = 0

    def feed(self, ticks: np.ndarray) -> VpinReading:
        """Add ticks (``TICK_DTYPE``, arrival order) to the buckets; the reading after the last."""
        if not len(ticks):
            return self.reading()
        day_of = np.maximum.accumulate(ticks["ts"] // DAY_MS * DAY_MS)
        if self.day is not None:
            day_of = np.maximum(day_of, self.day)
        bounds = [0, *(np.flatnonzero(np.diff(day_of)) + 1), len(ticks)]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            part = ticks[lo:hi]
            self._enter(int(day_of[lo]), int(part["ts"][0]))
            span = vpin_span(part["volume"], part["side"], self.bucket_volume, self.state)
            self.state, self.value = span.state, span.value
            self.fed[self.day] = self.fed.get(self.day, 0.0) + float(np.sum(part["volume"]))
        return self.reading()

    def _enter(self, day: int, ts: int) -> None:
        """Start a new day, or size its buckets again when due."""
        if day != self.day:
            self.day, self.bucket_volume, self.sized_by, self._retry_at = day, NAN, {}, ts
        before = day - DAY_MS
        if (np.isnan(self.bucket_volume) or before not in self.sized_by) and ts >= self._retry_at:
            self.sized_by = self._trailing_volumes(day)
            volumes = np.fromiter(self.sized_by.values(), dtype=np.float64, count=len(self.sized_by))
            self.bucket_volume = daily_bucket_volume(volumes, N_BUCKETS)
            self._retry_at = ts + RETRY_MS

    def _trailing_volumes(self, day: int) -> dict[int, float]:
        volumes = self.history(day)
        before = day - DAY_MS
        if before not in volumes and self.fed_from <= before and self.fed.get(before, 0.0) > 0:
            volumes = dict(sorted({**volumes, before: self.fed[before]}.items())[-self.days:])
        return volumes

    def reading(self) -> VpinReading:
        """The current value, the V and the days behind it, and why it is NaN when it is."""
        meta = {"bucket_volume": self.bucket_volume, "vpin_days": len(self.sized_by),
                "vpin_buckets": len(self.state.imbalance)}
        if np.isnan(self.value):
            meta["reason"] = self._reason()
        return VpinReading(self.value, meta)

    def _reason(self) -> str:
        if self.day is not None and np.isnan(self.bucket_volume):
            return f"no daily volume before {date_of(self.day)} in the warm tier to size the buckets"
        return f"{len(self.state.imbalance)} of {N_BUCKETS} buckets complete" + (f" ({self.note})" if self.note else "")


@contextmanager
def _warm_table(config: Config, table: str) -> Iterator[sqlite3.Connection | None]:
    """A read-only warm-tier connection when the database and the table exist, else None."""
    conn = connect_readonly(config.warm_db)
    try:
        yield conn if conn is not None and has_table(conn, table) else None
    finally:
        if conn is not None:
            conn.close()


def warm_history(config: Config, symbol: str) -> History:
    """The symbol's trailing daily volumes before a day, read from the warm tier when asked."""
    def history(day: int) -> dict[int, float]:
        with _warm_table(config, "fractal_bars") as conn:
            return {} if conn is None else trailing_daily_volume(conn, symbol, day, config.vpin_days)
    return history


def restore(config: Config, store: HotStore, symbol: str, first_ts: int, last_ts: int) -> LiveVpin:
    """A symbol's buckets through its stored ticks of the days of [first_ts, last_ts] (hot and
    cold tiers, each tick once, in time order): from the state the warm tier holds for the
    first day's start (the day before's end), else from empty."""
    day = first_ts // DAY_MS * DAY_MS
    with _warm_table(config, "fractal_vpin_state") as conn:
        stored = None if conn is None else read_vpin_state(conn, symbol, day)
    state = stored[1] if stored is not None and stored[0] == day else None
    note = "" if state is not None else f"buckets start at {date_of(day)}: no state stored for the day before's end"
    live = LiveVpin(warm_history(config, symbol), config.vpin_days, state, fed_from=day, note=note)
    request = make_request(symbol, date_of(day), date_of(last_ts), "ticks", None)
    ticks = compute(config, store, request, sources(config, request))
    live.feed(to_ticks(*(ticks[c].to_numpy() for c in ("ts", "price", "volume", "side"))))
    return live
