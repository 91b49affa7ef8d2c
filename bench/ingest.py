"""Ingest end to end (Parquet file -> validated ticks in Redis streams and ring buffers)
beside a naive one-XADD-per-tick baseline, in the same run on the same Redis; and the
latency from a tick's receipt to its visibility in Redis with a feed that releases ticks as
they occur (the simulator paced at speed 1), at 10k and 50k ticks/s."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import redis

from bench.common import bench_config, synthetic_ticks
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.feeds.pacing import Pacer, paced
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot.connection import open_store
from fractal_assets.hot.keys import Keys
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.ingest.metrics import Percentiles

TICKS = 2_000_000
NAIVE_TICKS = 200_000
PIPELINE_DEPTH = 1000
PACED_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
PACED_RATES = (10_000, 50_000, 70_000)
"""Ticks/s over all symbols, released as they occur."""
PACED_SECONDS = 15


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
        **paced_latencies(),
    }


def paced_latency(config: Config, rate: int, seconds: float = PACED_SECONDS) -> dict[str, float]:
    """Receipt -> visible percentiles (ms) of a simulated market at ``rate`` ticks/s released
    at speed 1, over the whole run (``fractal status`` shows the same measure for the most
    recent samples while a process runs)."""
    spec = SimulatorSpec(PACED_SYMBOLS, rate=rate / len(PACED_SYMBOLS), duration_s=seconds,
                         start_ms=int(time.time() * 1000), seed=rate)
    store = open_store(config)
    ingestor = Ingestor(config, store, f"bench-paced-{rate}-{config.batch_size}-{config.flush_ms}")
    ingestor.metrics.latency_ms = Percentiles(window=10**7)
    report = ingestor.run(paced(simulate(spec), Pacer(1.0)))
    whole = ingestor.metrics.latency_ms.get()
    return {"ticks_per_s": report.total_accepted / report.seconds, **{f"p{p}_ms": v for p, v in whole.items()}}


def paced_latencies(settings: tuple[tuple[int, float], ...] = ((1000, 0.0), (1000, 1.0))) -> dict[str, float]:
    """``paced_latency`` at each rate of ``PACED_RATES`` for each (batch size, flush ms)."""
    out: dict[str, float] = {}
    for batch_size, flush_ms in settings:
        for rate in PACED_RATES:
            with bench_config() as config:
                config = dataclasses.replace(config, batch_size=batch_size, flush_ms=flush_ms)
                figures = paced_latency(config, rate)
            tag = f"paced_{rate // 1000}k" + ("" if (batch_size, flush_ms) == (1000, 0.0) else f"_b{batch_size}_f{flush_ms:g}")
            out |= {f"{tag}_{name}": value for name, value in figures.items()}
    return out
