"""Real-time indicator values computed from the ring buffers for the ``ind:`` keys."""

from __future__ import annotations

from typing import Any

import numpy as np

from fractal_assets.indicators.microstructure import bid_ask_spread, order_flow_ratio, tick_imbalance

WINDOW_SECONDS = 300
TIMEFRAME = "5m"
"""Real-time values cover the trailing five minutes of event time."""


def realtime_values(ticks: np.ndarray, quotes: np.ndarray) -> dict[tuple[str, str], dict[str, Any]]:
    """(indicator, timeframe) -> {value, ts, meta} for one symbol's trailing window."""
    ts = int(ticks["ts"][-1])
    meta = {"window_s": WINDOW_SECONDS, "ticks": len(ticks), "first_ts": int(ticks["ts"][0])}
    values = {
        ("tick_imbalance", TIMEFRAME): tick_imbalance(ticks["side"]),
        ("order_flow_ratio", TIMEFRAME): order_flow_ratio(ticks["volume"], ticks["side"]),
    }
    docs = {key: {"value": value, "ts": ts, "meta": meta} for key, value in values.items()}
    if len(quotes):
        spread, relative = bid_ask_spread(quotes["bid"], quotes["ask"])
        docs[("bid_ask_spread", TIMEFRAME)] = {
            "value": spread, "ts": ts, "meta": {**meta, "quotes": len(quotes), "relative": relative},
        }
    return docs
