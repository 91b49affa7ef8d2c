"""The open day: indicator data with a full day of hot ticks, read from the live bars beside
the same reads rebuilding every bar from the hot ticks (no live-bar watermark), same run; and
the lag of the live bars: from a bucket's end plus the timestamp tolerance, on the feed's
clock, until the bar is readable in ``fractal_bars``."""

from __future__ import annotations

import sqlite3
import threading
import time

import numpy as np

from bench.common import bench_config, best_of
from fractal_assets.access.reads import get_data_for_indicator
from fractal_assets.config import Config
from fractal_assets.feeds.pacing import Pacer, paced
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot.connection import open_store
from fractal_assets.hot.store import LIVE_BARS_FIELD
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.market.bars import TIMEFRAMES

SYMBOL = "OPENDAY"
RATE = 100
SECONDS = 16_000
"""About 1.6M ticks of today (UTC) in the hot tier."""
LAG_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
LAG_RATE = 200
"""Ticks/s per symbol of the lag run on the feed's clock: 12,000 ticks/s of wall time at ``LAG_SPEED``."""
LAG_SPEED = 20.0
LAG_EVENT_S = 1_200
"""20 minutes of market on the feed's clock, replayed in one minute."""
POLL_S = 0.01


class BarWatcher(threading.Thread):
    """Polls ``fractal_bars`` and notes when each (symbol, timeframe, timestamp) first appears."""

    def __init__(self, config: Config) -> None:
        super().__init__(daemon=True)
        self.config, self.seen, self.stop = config, {}, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(POLL_S):
            if not self.config.warm_db.exists():
                continue
            conn = sqlite3.connect(f"file:{self.config.warm_db}?mode=ro", uri=True, timeout=1)
            try:
                rows = conn.execute("SELECT symbol, timeframe, timestamp FROM fractal_bars").fetchall()
            except sqlite3.OperationalError:
                rows = []
            finally:
                conn.close()
            now = time.monotonic()
            for row in rows:
                self.seen.setdefault(row, now)


def live_bar_lag() -> dict[str, float]:
    """Seconds from each live bar's bucket end + tolerance on the feed's clock (a steady
    simulated market paced at ``LAG_SPEED``) until a reader sees it, p50/p99 per the whole run."""
    start = int(time.time() * 1000) // 3_600_000 * 3_600_000
    spec = SimulatorSpec(LAG_SYMBOLS, rate=LAG_RATE, duration_s=LAG_EVENT_S, start_ms=start, seed=3)
    with bench_config() as config:
        pacer = Pacer(LAG_SPEED)
        watcher = BarWatcher(config)
        watcher.start()
        Ingestor(config, open_store(config), "bench-bar-lag").run(paced(simulate(spec), pacer))
        time.sleep(0.1)
        watcher.stop.set()
        watcher.join()
        lags = {tf: [] for tf in TIMEFRAMES}
        for (_symbol, timeframe, ts), seen in watcher.seen.items():
            end = ts + TIMEFRAMES[timeframe]
            if end + config.ts_tolerance_ms < start + LAG_EVENT_S * 1000:
                lags[timeframe].append(seen - pacer.due(end + config.ts_tolerance_ms))
    everything = np.concatenate([np.array(v) for v in lags.values() if v])
    return {"live_bar_lag_bars": float(len(everything)),
            "live_bar_lag_p50_s": float(np.percentile(everything, 50)),
            "live_bar_lag_p99_s": float(np.percentile(everything, 99)),
            "live_bar_lag_max_s": float(everything.max()),
            "live_bar_lag_speed": LAG_SPEED}


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
    return out | live_bar_lag()
