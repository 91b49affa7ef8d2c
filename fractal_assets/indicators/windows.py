"""Microstructure metrics per time window: the one computation behind both the
real-time ``ind:`` values and the ``fractal_microstructure`` table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fractal_assets.indicators.microstructure import (
    bid_ask_spread,
    kyle_lambda,
    order_flow_ratio,
    roll_spread,
    tick_imbalance,
    vpin,
)

VPIN_BUCKETS = 50
METRICS = ("tick_imbalance", "order_flow_ratio", "bid_ask_spread", "kyle_lambda", "vpin")


@dataclass(frozen=True)
class WindowMetrics:
    """The five metrics over one window, with what they rest on."""

    tick_imbalance: float
    order_flow_ratio: float
    bid_ask_spread: float
    relative_spread: float
    spread_estimated: bool
    """True when no quotes were seen and the spread is Roll's estimate from trades."""
    kyle_lambda: float
    kyle_t_stat: float
    vpin: float
    tick_count: int
    quote_count: int


def window_metrics(ticks: np.ndarray, bid: np.ndarray, ask: np.ndarray, vpin_value: float | None = None) -> WindowMetrics:
    """Metrics of one window's ticks (``TICK_DTYPE``) and quotes.

    VPIN defaults to the window on its own (bucket size = the window's
    volume / 50); the daily table passes the value from the day's buckets.
    """
    price, volume, side = ticks["price"], ticks["volume"], ticks["side"]
    if len(bid):
        spread, relative = bid_ask_spread(bid, ask)
        estimated = False
    else:
        spread, estimated = roll_spread(price), True
        relative = spread / float(np.mean(price)) if len(price) else float("nan")
    lam, t_stat = kyle_lambda(price, volume, side)
    return WindowMetrics(
        tick_imbalance=tick_imbalance(side),
        order_flow_ratio=order_flow_ratio(volume, side),
        bid_ask_spread=spread,
        relative_spread=relative,
        spread_estimated=estimated,
        kyle_lambda=lam,
        kyle_t_stat=t_stat,
        vpin=vpin(volume, side, n_buckets=VPIN_BUCKETS).value if vpin_value is None else vpin_value,
        tick_count=len(ticks),
        quote_count=len(bid),
    )


def day_vpin_by_window(volume: np.ndarray, side: np.ndarray, window_last_tick: np.ndarray) -> np.ndarray:
    """VPIN at the end of each window from the day's equal-volume buckets (V = day volume / 50).

    At a window's end it is the mean imbalance of the last
    min(50, k) buckets completed so far that day; NaN before the first one.
    """
    result = vpin(volume, side, n_buckets=VPIN_BUCKETS)
    completed = np.searchsorted(result.bucket_end_index, window_last_tick, side="right")
    cumulative = np.concatenate(([0.0], np.cumsum(result.bucket_imbalance)))
    first = np.maximum(completed - VPIN_BUCKETS, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(completed > 0, (cumulative[completed] - cumulative[first]) / (completed - first), np.nan)


def microstructure_table(ticks: np.ndarray, quotes: np.ndarray, start: int, end: int, window_ms: int) -> pd.DataFrame:
    """One row per non-empty window of [start, end): the columns of ``fractal_microstructure``."""
    edges = np.arange(start, end + window_ms, window_ms)
    tick_at = np.searchsorted(ticks["ts"], edges)
    quote_at = np.searchsorted(quotes["ts"], edges)
    nonempty = np.flatnonzero(tick_at[:-1] < tick_at[1:])
    day_vpin = day_vpin_by_window(ticks["volume"], ticks["side"], tick_at[1:][nonempty] - 1)
    rows = []
    for k, w in enumerate(nonempty):
        q = slice(quote_at[w], quote_at[w + 1])
        m = window_metrics(ticks[tick_at[w]:tick_at[w + 1]], quotes["bid"][q], quotes["ask"][q], day_vpin[k])
        rows.append({"timestamp": int(edges[w]), "window_ms": window_ms, **{c: getattr(m, c) for c in METRICS},
                     "spread_estimated": int(m.spread_estimated), "tick_count": m.tick_count})
    columns = ["timestamp", "window_ms", *METRICS, "spread_estimated", "tick_count"]
    return pd.DataFrame(rows, columns=columns)
