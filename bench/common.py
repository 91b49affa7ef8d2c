"""Shared helpers: synthetic ticks, a Redis to measure against, best-of-N timing."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from fractal_assets.config import Config
from fractal_assets.hot.connection import client_for, ensure_embedded_redis, stop_embedded_redis


def synthetic_ticks(n: int, symbols: tuple[str, ...] = ("AAA", "BBB", "CCC"), seed: int = 0) -> pd.DataFrame:
    """n ticks over one UTC day, sorted by time, with sides and fractional volumes."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ts": 1_700_006_400_000 + np.sort(rng.integers(0, 86_400_000, n)),
        "symbol": rng.choice(symbols, n),
        "price": np.round(100 + np.cumsum(rng.normal(0, 0.01, n)), 2),
        "volume": np.round(rng.exponential(1.0, n), 6),
        "side": rng.choice(np.array([1, -1], dtype=np.int8), n),
    })


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@contextmanager
def bench_config() -> Iterator[Config]:
    """Settings on FRACTAL_REDIS_URL when set, else on a fresh embedded Redis, with a
    key prefix of its own that is deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="fractal-bench-") as tmp:
        data_dir = Path(tmp)
        config = Config.from_env(data_dir=data_dir, key_prefix=f"bench:{uuid.uuid4().hex[:8]}:")
        embedded = not config.redis_url
        if embedded:
            config = Config.from_env(data_dir=data_dir, key_prefix=config.key_prefix,
                                     redis_url=ensure_embedded_redis(data_dir))
        try:
            yield config
        finally:
            client = client_for(config.redis_url)
            for batch in _chunks(list(client.scan_iter(match=f"{config.key_prefix}*", count=1000)), 1000):
                client.delete(*batch)
            if embedded:
                stop_embedded_redis(data_dir)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
