"""Ingest end to end (Parquet file -> validated ticks in Redis streams and ring buffers)
beside a naive one-XADD-per-tick baseline, in the same run on the same Redis."""

from __future__ import annotations

import tempfile
from pathlib import Path

import redis

from bench.common import bench_config, synthetic_ticks
from fractal_assets.feeds import open_feed
from fractal_assets.hot.connection import open_store
from fractal_assets.hot.keys import Keys
from fractal_assets.ingest.ingestor import Ingestor

TICKS = 2_000_000
NAIVE_TICKS = 200_000
PIPELINE_DEPTH = 1000


def naive_xadd(client: redis.Redis, keys: Keys, frame) -> float:
    """One XADD per tick (fields as strings), pipelined 1000 commands at a time: ticks/s."""
    import time

    rows = frame.itertuples(index=False)
    start = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i, (ts, symbol, price, volume, side) in enumerate(rows, 1):
        pipe.xadd(keys.ticks(f"NAIVE{symbol}"), {"ts": ts, "price": price, "volume": volume, "side": side})
        if i % PIPELINE_DEPTH == 0:
            pipe.execute()
    pipe.execute()
    return len(frame) / (time.perf_counter() - start)


def run() -> dict[str, float]:
    frame = synthetic_ticks(TICKS)
    with tempfile.TemporaryDirectory() as tmp, bench_config() as config:
        path = Path(tmp) / "ticks.parquet"
        frame.to_parquet(path, index=False)
        store = open_store(config)
        report = Ingestor(config, store, "bench").run(open_feed(path))
        assert report.total_accepted == TICKS, report
        fast = report.total_accepted / report.seconds
        naive = naive_xadd(store.client, store.keys, frame.head(NAIVE_TICKS))
    return {
        "ingest_ticks_per_s": fast,
        "naive_xadd_ticks_per_s": naive,
        "speedup_vs_naive": fast / naive,
    }
