"""Fault tests: Redis restarts under ingest, writers killed mid-Parquet, fuzzed input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import redis

from fractal_assets.cli import source_id
from fractal_assets.cold.parquet import read_ticks, tick_partition
from fractal_assets.cold.store import open_cold
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.hot.codec import PayloadError, pack_records, unpack_records
from fractal_assets.hot.connection import ensure_embedded_redis, stop_embedded_redis
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.ingest.validation import REASONS
from fractal_assets.market.ticks import QUOTE_DTYPE, TICK_DTYPE
from fractal_assets_tests.support import write_ticks


@pytest.mark.infra
def test_redis_restart_during_ingest_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    url = ensure_embedded_redis(data_dir)
    path = tmp_path / "paced.csv"
    frame = write_ticks(path, 60_000, symbols=("RST",))
    env = {**os.environ, "FRACTAL_REDIS_URL": url, "FRACTAL_KEY_PREFIX": ""}
    cmd = [sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(data_dir), "ingest",
           "--source", str(path), "--speed", "900"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = HotStore(redis.Redis.from_url(url), Keys())
    try:
        deadline = time.monotonic() + 30
        while store.client.exists(store.keys.ticks("RST")) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert stop_embedded_redis(data_dir)
        time.sleep(1.0)
        ensure_embedded_redis(data_dir)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
        stored = HotStore(redis.Redis.from_url(url), Keys()).read_ticks("RST").ticks
        assert 0 < len(frame) and stored["ts"].tolist() == frame["ts"].tolist()
        assert b"accepted 60000 ticks" in out
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_embedded_redis(data_dir)


WRITER = """
import sys, numpy as np, pyarrow as pa
from fractal_assets.cold.parquet import write_ticks
from fractal_assets.cold.store import open_cold
n = int(sys.argv[3])
rng = np.random.default_rng(n)
table = pa.table({"ts": np.sort(rng.integers(0, 86_400_000, n)) + 1_700_006_400_000, "price": rng.random(n),
                  "volume": rng.random(n), "side": rng.choice(np.array([1, -1], dtype=np.int8), n),
                  "seq": np.arange(n)})
while True:
    write_ticks(open_cold(sys.argv[1]), sys.argv[2], "2023-11-15", table)
    print("written", flush=True)
"""


def test_writer_killed_mid_parquet_never_leaves_a_partial_partition(tmp_path: Path) -> None:
    cold = open_cold(str(tmp_path / "cold"))
    for attempt, rows in enumerate((200_000, 400_000, 800_000)):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, cold.root, "KILL", str(rows)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "written\n", "the writer completed its first replacement"
        time.sleep(0.05 + 0.1 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        table = read_ticks(cold, "KILL", "2023-11-15")
        assert table.num_rows == rows
        visible = sorted(p.name for p in Path(tick_partition(cold, "KILL", "2023-11-15")).iterdir() if not p.name.startswith("."))
        assert visible == ["part-0.parquet"]


def fuzz_rows(rng: np.random.Generator, n: int) -> tuple[list[str], int]:
    """CSV lines where every odd line is malformed in one of many ways; returns (lines, bad count)."""
    garbage = ["", "nan", "inf", "-1", "0", "abc", "1e400", "--", "0x10", "NaN", "-inf", "💥", "1,2", '"', "None"]
    lines, bad = [], 0
    ts = 1_700_000_000_000
    for i in range(n):
        ts += int(rng.integers(1, 50))
        good = [str(ts), "FUZZ", f"{100 + rng.random():.4f}", f"{rng.random():.4f}", str(rng.choice([1, -1]))]
        if i % 2:
            field = int(rng.integers(0, 5))
            if field == 1:
                good[1] = str(rng.choice(["", "A/B", "../x", "A" * 40, "a b", "é"]))
            else:
                good[field] = str(rng.choice(garbage))
                if field == 3 and good[3] in ("0",):
                    good[3] = "-5"
                if field == 4 and good[4] in ("-1", ""):
                    good[4] = "7"  # an empty side is valid: the tick rule infers it
            bad += 1
        lines.append(",".join(good))
    return lines, bad


def test_fuzzed_ticks_are_each_rejected_with_a_reason_and_valid_ones_survive(config: Config, store: HotStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    lines, bad = fuzz_rows(rng, 2_400)
    path = tmp_path / "fuzz.csv"
    path.write_text("ts,symbol,price,volume,side\n" + "\n".join(lines) + "\n")
    report = Ingestor(config, store, source_id(path)).run(open_feed(path, chunk_rows=500))
    good_ts = [int(line.split(",")[0]) for line in lines[::2]]
    assert report.total_accepted == len(good_ts) == 1_200
    assert report.total_rejected == bad >= 1_000
    assert set(report.rejected) <= set(REASONS)
    assert store.client.xlen(store.keys.dead_letter()) == bad
    assert store.read_ticks("FUZZ").ticks["ts"].tolist() == good_ts


def test_fuzzed_payloads_are_refused_never_misread() -> None:
    rng = np.random.default_rng(11)
    ticks = np.zeros(50, dtype=TICK_DTYPE)
    ticks["ts"] = np.arange(50)
    valid = pack_records(ticks, seq0=3)
    refused = 0
    for i in range(1_500):
        kind = i % 3
        if kind == 0:
            blob = rng.bytes(int(rng.integers(0, 400)))
        elif kind == 1:
            blob = bytearray(valid)
            for _ in range(int(rng.integers(1, 6))):
                blob[int(rng.integers(0, len(blob)))] = int(rng.integers(0, 256))
            blob = bytes(blob)
        else:
            doc = msgpack.unpackb(valid)
            key = str(rng.choice(list(doc)))
            choices = [None, -1, 10**9, b"x" * int(rng.integers(0, 900)), "s", [1, 2]]
            doc[key] = choices[int(rng.integers(0, len(choices)))]
            blob = msgpack.packb(doc, use_bin_type=True)
        try:
            records, seq0 = unpack_records(blob, TICK_DTYPE)
        except PayloadError:
            refused += 1
            continue
        assert len(records) == 50 and isinstance(seq0, int), "a payload that unpacks must be whole"
    assert refused >= 1_000
    with pytest.raises(PayloadError):
        unpack_records(valid, QUOTE_DTYPE)
