"""Real-time indicator values computed from the ring buffers for the ``ind:`` keys."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from fractal_assets.indicators.windows import METRICS, window_metrics

WINDOW_SECONDS = 300
TIMEFRAME = "5m"
"""Real-time values cover the trailing five minutes of event time."""


def _values(ticks: np.ndarray, quotes: np.ndarray, timeframe: str, **meta: Any) -> dict[tuple[str, str], dict[str, Any]]:
    details = asdict(window_metrics(ticks, quotes["bid"], quotes["ask"]))
    meta = {**meta, "first_ts": int(ticks["ts"][0]), **{k: v for k, v in details.items() if k not in METRICS}}
    ts = int(ticks["ts"][-1])
    return {(name, timeframe): {"value": details[name], "ts": ts, "meta": meta} for name in METRICS}


def realtime_values(ticks: np.ndarray, quotes: np.ndarray) -> dict[tuple[str, str], dict[str, Any]]:
    """(indicator, timeframe) -> {value, ts, meta} for one symbol's trailing window."""
    return _values(ticks, quotes, TIMEFRAME, window_s=WINDOW_SECONDS)


def batch_values(block: np.ndarray, quotes: np.ndarray) -> dict[tuple[str, str], dict[str, Any]]:
    """The same metrics over one micro-batch of ticks, under timeframe ``{n}t`` (e.g. ``1000t``)."""
    return _values(block, quotes, f"{len(block)}t", ticks_in_batch=len(block))
