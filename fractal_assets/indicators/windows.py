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
    time_weighted_spread,
)
from fractal_assets.indicators.vpin import VpinSpan, vpin

METRICS = ("tick_imbalance", "order_flow_ratio", "bid_ask_spread", "time_weighted_spread", "kyle_lambda", "vpin")
"""The metrics of every window: columns of ``fractal_microstructure`` and ``ind:`` indicators."""


@dataclass(frozen=True)
class WindowMetrics:
    """The metrics over one window, with what they rest on."""

    tick_imbalance: float
    order_flow_ratio: float
    bid_ask_spread: float
    """Mean over the window's quotes of ask - bid, or Roll's estimate when it has none."""
    relative_spread: float
    spread_estimated: bool
    """True when no quotes were seen and the spread is Roll's estimate from trades."""
    time_weighted_spread: float
    """Mean of ask - bid weighted by how long each quote stood in the window; NaN without quotes."""
    relative_time_weighted_spread: float
    kyle_lambda: float
    kyle_t_stat: float
    vpin: float
    """Standard VPIN (day-sized buckets carried across windows and days), given by the caller."""
    vpin_window: float
    """VPIN of the window's trades on their own (V = window volume / 50): not the literature's."""
    tick_count: int
    quote_count: int


def window_metrics(ticks: np.ndarray, quotes: np.ndarray, start: int, end: int, vpin_value: float = np.nan) -> WindowMetrics:
    """Metrics of the window [start, end) from its ticks (``TICK_DTYPE``) and quotes (``QUOTE_DTYPE``).

    ``quotes`` are the window's quotes, optionally preceded by the quote
    standing at ``start`` (stamped before it), which only the time-weighted
    spread uses. ``vpin_value`` is the standard VPIN at the window's last
    tick, from ``vpin_span`` over everything before; it needs history a
    window does not hold, so it is NaN unless given.
    """
    price, volume, side = ticks["price"], ticks["volume"], ticks["side"]
    inside = quotes[quotes["ts"] >= start]
    if len(inside):
        spread, relative = bid_ask_spread(inside["bid"], inside["ask"])
    else:
        spread = roll_spread(price)
        relative = spread / float(np.mean(price)) if len(price) else float("nan")
    weighted, weighted_relative = time_weighted_spread(quotes["ts"], quotes["bid"], quotes["ask"], start, end)
    lam, t_stat = kyle_lambda(price, volume, side)
    return WindowMetrics(
        tick_imbalance=tick_imbalance(side),
        order_flow_ratio=order_flow_ratio(volume, side),
        bid_ask_spread=spread,
        relative_spread=relative,
        spread_estimated=not len(inside),
        time_weighted_spread=weighted,
        relative_time_weighted_spread=weighted_relative,
        kyle_lambda=lam,
        kyle_t_stat=t_stat,
        vpin=float(vpin_value),
        vpin_window=vpin(volume, side).value,
        tick_count=len(ticks),
        quote_count=len(inside),
    )


def microstructure_table(
    ticks: np.ndarray, quotes: np.ndarray, start: int, end: int, window_ms: int, buckets: VpinSpan | None = None,
) -> pd.DataFrame:
    """One row per non-empty window of [start, end): the columns of ``fractal_microstructure``.

    ``buckets`` is ``vpin_span(...)`` over the same ``ticks``, continuing the
    buckets of the days before; each window's VPIN is its value at the
    window's last tick. Without it the ``vpin`` column is NaN. A window's
    time-weighted spread starts from the quote standing at its start (the
    day's first window from the day's first quote).
    """
    edges = np.arange(start, end + window_ms, window_ms)
    tick_at = np.searchsorted(ticks["ts"], edges)
    quote_at = np.searchsorted(quotes["ts"], edges)
    nonempty = np.flatnonzero(tick_at[:-1] < tick_at[1:])
    last_tick = tick_at[1:][nonempty] - 1
    vpin_at = buckets.value_after(last_tick) if buckets is not None else np.full(len(nonempty), np.nan)
    rows = []
    for k, w in enumerate(nonempty):
        window_quotes = quotes[max(quote_at[w] - 1, 0):quote_at[w + 1]]
        m = window_metrics(ticks[tick_at[w]:tick_at[w + 1]], window_quotes, int(edges[w]), int(edges[w + 1]), vpin_at[k])
        rows.append({"timestamp": int(edges[w]), "window_ms": window_ms, **{c: getattr(m, c) for c in METRICS},
                     "spread_estimated": int(m.spread_estimated), "tick_count": m.tick_count})
    columns = ["timestamp", "window_ms", *METRICS, "spread_estimated", "tick_count"]
    return pd.DataFrame(rows, columns=columns)
