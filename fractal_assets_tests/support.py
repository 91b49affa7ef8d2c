"""Helpers shared by the tests: real data files, private Redis prefixes, tick files, ingest and CLI runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fractal_assets.cli import main, source_id
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.hot.connection import client_for
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor, IngestReport

SYSTEM_REDIS = "redis://127.0.0.1:6379/13"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def free_port() -> int:
    """A loopback port nothing listens on now, so parallel runs do not collide on a fixed one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shared_file(relative: str) -> Path:
    """A file of the shared real market data, or a skip saying why it is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real market data not present: {path} (see shared/data/SOURCES.md)")
    return path


@contextmanager
def private_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = client_for(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


def write_ticks(path: Path, n: int, symbols: tuple[str, ...] = ("AAA", "BBB"), seed: int = 1) -> pd.DataFrame:
    """A generic tick CSV of n rows over the given symbols."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ts": 1_700_000_000_000 + np.sort(rng.integers(0, 3_600_000, n)),
        "symbol": rng.choice(symbols, n),
        "price": np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2),
        "volume": np.round(rng.exponential(1.0, n), 6),
        "side": rng.choice([1, -1], n),
    })
    frame.to_csv(path, index=False)
    return frame


def ingest_file(config: Config, store: HotStore, path: Path) -> IngestReport:
    """Ingest a file in this process, as ``fractal ingest`` does."""
    return Ingestor(config, store, source_id(path)).run(open_feed(path))


def run_ingest(config: Config, path: Path, *extra: str) -> int:
    """``fractal ingest`` of a file in this process, on the test's Redis prefix; its exit code."""
    env = {"FRACTAL_REDIS_URL": config.redis_url, "FRACTAL_KEY_PREFIX": config.key_prefix}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return main(["--data-dir", str(config.data_dir), "ingest", "--source", str(path), "--speed", "0", *extra])
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def run_cli(config: Config, *args: str, dagster_home: Path | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``fractal --data-dir ... ARGS`` in a fresh process on the test's Redis prefix and warm DB,
    with the given DAGSTER_HOME or none, in the given working directory."""
    env = {**os.environ, "FRACTAL_REDIS_URL": config.redis_url, "FRACTAL_KEY_PREFIX": config.key_prefix,
           "FRACTAL_WARM_DB": str(config.warm_db)}
    env.pop("DAGSTER_HOME", None)
    if dagster_home:
        env["DAGSTER_HOME"] = str(dagster_home)
    return subprocess.run([sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(config.data_dir), *args],
                          env=env, capture_output=True, text=True, cwd=cwd)
