"""What VPIN carries from day to day in the warm tier: the trailing daily volumes that size its
buckets (``fractal_bars``, timeframe 1d) and the bucket state at each day's end
(``fractal_vpin_state``)."""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass

import numpy as np

from fractal_assets.indicators.vpin import N_BUCKETS, VpinSpan, VpinState, daily_bucket_volume, vpin_span
from fractal_assets.market.calendar import DAY_MS, date_of
from fractal_assets.warm.db import write_transaction


def trailing_daily_volume(conn: sqlite3.Connection, symbol: str, before: int, days: int) -> dict[int, float]:
    """Day start -> volume of the symbol's last ``days`` UTC days with trades before ``before``."""
    rows = conn.execute(
        "SELECT timestamp, volume FROM fractal_bars WHERE symbol = ? AND timeframe = '1d' AND timestamp < ? "
        "ORDER BY timestamp DESC LIMIT ?",
        (symbol, before, days),
    ).fetchall()
    return {int(ts): float(volume) for ts, volume in reversed(rows)}


def bucket_volume_for_day(conn: sqlite3.Connection, symbol: str, day_start: int, days: int) -> float:
    """Standard V for a day: the average volume of its ``days`` trailing days with trades / 50;
    NaN with no earlier day in the warm tier."""
    volumes = trailing_daily_volume(conn, symbol, day_start, days)
    return daily_bucket_volume(np.fromiter(volumes.values(), dtype=np.float64, count=len(volumes)), N_BUCKETS)


def read_vpin_state(conn: sqlite3.Connection, symbol: str, at: int) -> tuple[int, VpinState] | None:
    """The newest stored state of every trade before some time t <= ``at``, with t; None when none is."""
    row = conn.execute(
        "SELECT timestamp, state FROM fractal_vpin_state WHERE symbol = ? AND timestamp <= ? "
        "ORDER BY timestamp DESC LIMIT 1",
        (symbol, at),
    ).fetchone()
    return None if row is None else (int(row[0]), VpinState.from_dict(json.loads(row[1])))


def write_vpin_state(conn: sqlite3.Connection, symbol: str, at: int, state: VpinState, bucket_volume: float) -> None:
    """Store the state after every trade before ``at`` (a day's end), with the V that day used."""
    if at % DAY_MS:
        raise ValueError(f"a VPIN state is stored at a day's end (midnight UTC), not at {at}")
    with write_transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO fractal_vpin_state (symbol, timestamp, bucket_volume, state) VALUES (?, ?, ?, ?)",
            (symbol, at, None if math.isnan(bucket_volume) else bucket_volume, json.dumps(state.to_dict())),
        )


@dataclass(frozen=True)
class DayBuckets:
    """A day's VPIN buckets and what they continued from."""

    span: VpinSpan
    """``vpin_span`` over the day's trades: ``value_after`` gives VPIN at any of them."""
    carried_from: int | None
    """End of the day whose stored state the buckets continue (None: they start empty)."""
    unchained: list[str]
    """Days with trades (a 1d bar) after that state and before this day: the chain misses their
    buckets until they are computed, oldest first, and the days after them again."""


def continue_day(
    conn: sqlite3.Connection, symbol: str, day_start: int, volume: np.ndarray, side: np.ndarray, days: int,
) -> DayBuckets:
    """Continue the symbol's VPIN buckets through one day's trades (time order) and store the
    state at the day's end.

    The buckets carry on from the newest state stored at or before the
    day's start; new buckets are sized by the ``days`` trailing days with
    trades (``bucket_volume_for_day``). Days must therefore be computed
    oldest first, and a re-computed day hands a new state to the days after it.
    """
    stored = read_vpin_state(conn, symbol, day_start)
    carried_from, state = stored if stored is not None else (None, None)
    size = bucket_volume_for_day(conn, symbol, day_start, days)
    span = vpin_span(volume, side, size, state)
    write_vpin_state(conn, symbol, day_start + DAY_MS, span.state, size)
    traded = conn.execute(
        "SELECT timestamp FROM fractal_bars WHERE symbol = ? AND timeframe = '1d' AND timestamp >= ? "
        "AND timestamp < ? ORDER BY timestamp",
        (symbol, -1 if carried_from is None else carried_from, day_start),
    ).fetchall()
    return DayBuckets(span, carried_from, [date_of(ts) for (ts,) in traded])
