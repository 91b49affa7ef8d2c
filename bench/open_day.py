"""The open day: indicator data with a full day of hot ticks, read from the live bars beside
the same reads rebuilding every bar from the hot ticks (no live-bar watermark), same run."""

from __future__ import annotations

import numpy as np

from bench.common import bench_config, best_of
from fractal_assets.access.reads import get_data_for_indicator
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot.connection import open_store
from fractal_assets.hot.store import LIVE_BARS_FIELD
from fractal_assets.ingest.ingestor import Ingestor

SYMBOL = "OPENDAY"
RATE = 100
SECONDS = 16_000
"""About 1.6M ticks of today (UTC) in the hot tier."""


def run() -> dict[str, float]:
    today = int(np.datetime64("today", "D").astype("M8[ms]").astype(np.int64))
    with bench_config() as config:
        store = open_store(config)
        spec = SimulatorSpec((SYMBOL,), rate=RATE, duration_s=SECONDS, start_ms=today, seed=1)
        report = Ingestor(config, store, "bench-open-day").run(simulate(spec))
        out: dict[str, float] = {"open_day_hot_ticks": report.total_accepted}
        for indicator in ("williams_fractal", "hurst_exponent"):
            out[f"{indicator}_data_ms"] = 1000 * best_of(3, lambda: get_data_for_indicator(SYMBOL, indicator, config=config))
        store.client.hdel(store.keys.checkpoint(SYMBOL), LIVE_BARS_FIELD)
        for indicator in ("williams_fractal", "hurst_exponent"):
            rebuilt = 1000 * best_of(1, lambda: get_data_for_indicator(SYMBOL, indicator, config=config))
            out[f"{indicator}_rebuild_ms"] = rebuilt
            out[f"{indicator}_speedup"] = rebuilt / out[f"{indicator}_data_ms"]
    return out
