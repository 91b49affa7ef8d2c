"""`fractal import` end to end (process wall: interpreter start-up, reading, validation, Parquet
partitions) beside a DuckDB ``COPY`` of the same file to zstd Parquet in its own process.

Both run as fresh processes on the same file, alternated so that both see the same machine
load; the figure of each is the best of ``ROUNDS``. The files are the sizes of the report that
asked for this figure: a 654,140-tick CSV and a 13.5M-tick Parquet file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import bench_config, synthetic_ticks

CSV_TICKS = 654_140
PARQUET_TICKS = 13_500_000
ROUNDS = 5
COPY = "import duckdb; duckdb.sql(\"COPY (SELECT * FROM '{src}') TO '{dst}' (FORMAT parquet, COMPRESSION zstd)\")"


def wall(command: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds a command takes as a process, start-up included."""
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def side_by_side(source: Path, work: Path, redis_url: str) -> tuple[float, float]:
    """Best wall time of `fractal import` and of DuckDB's COPY over ``ROUNDS`` alternated runs;
    each import into a fresh data dir and key prefix, so it imports the whole file."""
    ours = duck = float("inf")
    for round_ in range(ROUNDS):
        out = work / f"copy-{round_}.parquet"
        duck = min(duck, wall([sys.executable, "-c", COPY.format(src=source, dst=out)]))
        out.unlink()
        env = {**os.environ, "FRACTAL_REDIS_URL": redis_url, "FRACTAL_KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:"}
        data_dir = work / f"data-{round_}"
        ours = min(ours, wall([sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(data_dir),
                               "import", "--source", str(source)], env))
    return ours, duck


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fractal-bench-import-") as tmp, bench_config() as config:
        work = Path(tmp)
        files = {"csv": (work / "ticks.csv", CSV_TICKS), "parquet": (work / "ticks.parquet", PARQUET_TICKS)}
        for kind, (path, ticks) in files.items():
            frame = synthetic_ticks(ticks, seed=7)
            frame.to_csv(path, index=False) if kind == "csv" else frame.to_parquet(path, index=False)
            del frame
            ours, duck = side_by_side(path, work, config.redis_url)
            figures[f"import_{kind}_ticks_per_s"] = ticks / ours
            figures[f"duckdb_copy_{kind}_ticks_per_s"] = ticks / duck
            figures[f"import_{kind}_pct_of_duckdb_copy"] = 100 * duck / ours
    return figures


if __name__ == "__main__":
    for metric, value in run().items():
        print(f"{metric:36s} {value:>16,.3f}")
