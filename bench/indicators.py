"""Indicator throughput: the window metrics over 1M ticks, standard VPIN's day-sized buckets
over a day of 1M ticks, and that day through the per-window microstructure table."""

from __future__ import annotations

import numpy as np

from bench.common import best_of, synthetic_ticks
from fractal_assets.indicators.vpin import vpin_span
from fractal_assets.indicators.windows import microstructure_table, window_metrics
from fractal_assets.market.ticks import QUOTE_DTYPE, TICK_DTYPE

TICKS = 1_000_000
DAY_START = 1_700_006_400_000


def _records(frame) -> np.ndarray:
    out = np.empty(len(frame), dtype=TICK_DTYPE)
    for name in TICK_DTYPE.names:
        out[name] = frame[name].to_numpy()
    return out


def _quotes(ticks: np.ndarray) -> np.ndarray:
    quotes = np.empty(len(ticks) // 10, dtype=QUOTE_DTYPE)
    quotes["ts"] = ticks["ts"][::10][: len(quotes)]
    quotes["bid"] = ticks["price"][::10][: len(quotes)] - 0.01
    quotes["ask"] = quotes["bid"] + 0.02
    quotes["bid_size"] = quotes["ask_size"] = 1.0
    return quotes


def run() -> dict[str, float]:
    ticks = _records(synthetic_ticks(TICKS, symbols=("AAA",)))
    quotes = _quotes(ticks)
    end = DAY_START + 86_400_000
    metrics = best_of(5, lambda: window_metrics(ticks, quotes, DAY_START, end))
    size = float(ticks["volume"].sum()) / 50
    buckets = vpin_span(ticks["volume"], ticks["side"], size)
    chain = best_of(5, lambda: vpin_span(ticks["volume"], ticks["side"], size))
    table = best_of(3, lambda: microstructure_table(ticks, quotes, DAY_START, end, 300_000, buckets))
    return {
        "window_metrics_1M_ticks_seconds": metrics,
        "window_metrics_ticks_per_s": TICKS / metrics,
        "vpin_day_buckets_ticks_per_s": TICKS / chain,
        "microstructure_5m_table_ticks_per_s": TICKS / table,
    }
