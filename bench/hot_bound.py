"""The hot tier stays bounded: six hours of a steady simulated market of the open day, with
an intraday pipeline run every FRACTAL_INTRADAY_MINUTES of market time (the work of the
``intraday`` schedule, ``pipeline.build_days`` on today's date). Redis memory per symbol is
read after each run: it grows for retention + one interval, then stays flat."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bench.common import bench_config
from fractal_assets.config import Config
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot.connection import open_store
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.market.calendar import date_of
from fractal_assets.market.ticks import FeedChunk
from fractal_assets.pipeline.build import Sources, build_days
from fractal_assets.warm.db import connect
from fractal_assets.warm.schema import migrate

SYMBOLS = ("BNDA", "BNDB", "BNDC")
RATE = 20
"""Trades per second per symbol, steady: the simulator's activity varies, its mean does not."""
HOURS = 6
INTERVAL_MIN = 15


def redis_mb(store: HotStore, symbol: str) -> float:
    """Memory of a symbol's tick, quote and order-book streams."""
    keys = (store.keys.ticks(symbol), store.keys.quotes(symbol), store.keys.order_book(symbol))
    return sum(store.client.memory_usage(k) or 0 for k in keys) / 1e6


def with_runs(chunks: Iterator[FeedChunk], every_ms: int, run: callable) -> Iterator[FeedChunk]:
    """The feed's chunks, calling ``run(clock)`` each time market time crosses a run's boundary."""
    next_run = None
    for chunk in chunks:
        ts = chunk.trades.ts if chunk.trades is not None and len(chunk.trades) else None
        if ts is not None:
            clock = int(ts.max())
            next_run = next_run or clock - clock % every_ms + every_ms
            if clock >= next_run:
                run(next_run)
                next_run += every_ms
        yield chunk


def run() -> dict[str, float]:
    day = int(np.datetime64("today", "D").astype("M8[ms]").astype(np.int64))
    samples: list[tuple[float, float, int]] = []
    with bench_config() as config:
        config = Config(**{**config.__dict__, "batch_size": 200})
        store = open_store(config)
        conn = connect(config.warm_db)
        migrate(conn)

        def intraday(clock: int) -> None:
            sources = Sources(store, config.cold, conn, config.retention_ms, config.ts_tolerance_ms, config.vpin_days,
                              now_ms=clock)
            build_days(sources, [date_of(clock)])
            hot = store.read_ticks(SYMBOLS[0]).ticks["ts"]
            span_h = (int(hot.max()) - int(hot.min())) / 3_600_000 if len(hot) else 0.0
            samples.append(((clock - day) / 3_600_000, np.mean([redis_mb(store, s) for s in SYMBOLS]), span_h))

        spec = SimulatorSpec(SYMBOLS, rate=RATE, duration_s=HOURS * 3600, start_ms=day, seed=3)
        Ingestor(config, store, "bench-hot-bound").run(with_runs(simulate(spec), INTERVAL_MIN * 60_000, intraday))
        conn.close()
    out: dict[str, float] = {}
    for hours, mb, span_h in samples:
        out[f"t+{hours:4.2f}h redis MB/symbol"] = mb
        out[f"t+{hours:4.2f}h hours held"] = span_h
    bound = config.retention_hours + INTERVAL_MIN / 60
    settled = [mb for hours, mb, _ in samples if hours >= bound + INTERVAL_MIN / 60]
    out["bound (retention + interval), h"] = bound
    out["max hours held in Redis"] = max(span for _, _, span in samples)
    out["settled MB/symbol, max / min"] = max(settled) / min(settled) if settled else float("nan")
    return out
