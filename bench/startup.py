"""How fast the command line starts: ``fractal --help``, and ``fractal ingest`` until its
first tick is visible in Redis. The baseline is a bare ``python -c pass`` in the same run,
so the figures say what the project adds to the interpreter's own start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import bench_config, synthetic_ticks
from fractal_assets.hot.connection import open_store

REPEATS = 7


def _median_wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Median wall time of running a command to completion, in seconds."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _first_tick_seconds(config, path: Path) -> float:
    """Seconds from starting ``fractal ingest`` until its first tick can be read from Redis."""
    store = open_store(config)
    env = {**os.environ, "FRACTAL_REDIS_URL": config.redis_url, "FRACTAL_KEY_PREFIX": config.key_prefix}
    env.pop("DAGSTER_HOME", None)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(config.data_dir), "ingest",
                             "--source", str(path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not store.symbols() and proc.poll() is None:
            time.sleep(0.002)
        return time.perf_counter() - start
    finally:
        proc.wait(timeout=120)


def run() -> dict[str, float]:
    python = _median_wall([sys.executable, "-c", "pass"])
    fractal = str(Path(sys.executable).with_name("fractal"))
    help_s = _median_wall([fractal, "--help"])
    with bench_config() as config:
        path = config.data_dir / "ticks.parquet"
        synthetic_ticks(200_000).to_parquet(path)
        first_tick = _first_tick_seconds(config, path)
    return {
        "python -c pass (s, median)": python,
        "fractal --help (s, median)": help_s,
        "fractal ingest to first tick (s)": first_tick,
    }
