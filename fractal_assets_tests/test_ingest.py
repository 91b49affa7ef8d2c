"""Ingest into a real Redis: counts, rejections, restarts, micro-batching, real-time indicators."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import redis

from fractal_assets.cli import source_id
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.hot.codec import unpack_records
from fractal_assets.hot.connection import connect, embedded_socket, stop_embedded_redis
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.ingest.validation import BAD_QUOTE, REASONS, TS_OUT_OF_RANGE
from fractal_assets.market.ticks import TICK_DTYPE, FeedChunk, RawQuotes
from fractal_assets_tests.support import ingest_file, run_ingest, write_ticks


def stored(store: HotStore, symbol: str) -> np.ndarray:
    return store.read_ticks(symbol).ticks


def test_generic_csv_reaches_redis_exactly_with_sides_and_order(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    frame = write_ticks(path, 5_432)
    assert run_ingest(config, path) == 0
    for symbol, rows in frame.groupby("symbol", sort=True):
        got = stored(store, symbol)
        assert got["ts"].tolist() == rows["ts"].tolist()
        assert np.array_equal(got["price"], rows["price"].to_numpy())
        assert np.array_equal(got["volume"], rows["volume"].to_numpy())
        assert got["side"].tolist() == rows["side"].tolist()
    assert store.symbols() == ["AAA", "BBB"]
    assert store.rejected_counts(source_id(path)) == {}


def test_micro_batches_hold_batch_size_ticks(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    write_ticks(path, 2_500, symbols=("ONE",))
    run_ingest(config, path)
    sizes = [len(unpack_records(f[b"d"], TICK_DTYPE)[0]) for _, f in store.client.xrange(store.keys.ticks("ONE"))]
    assert sizes == [1000, 1000, 500]


def test_every_rejection_reason_is_counted_and_dead_lettered(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "ts,symbol,price,volume,side\n"
        "1700000000000,GOOD,10,1,buy\n"       # 0 ok
        "1700000000001,GOOD,abc,1,buy\n"      # 1 unparseable
        "1700000000002,GOOD,10\n"             # 2 unparseable: wrong field count
        "1700000000003,GOOD,nan,1,buy\n"      # 3 bad_price
        "1700000000004,GOOD,-5,1,sell\n"      # 4 bad_price
        "1700000000005,GOOD,10,-1,sell\n"     # 5 bad_volume
        "1700000000006,GOOD,10,1,sideways\n"  # 6 bad_side
        "1700000000007,BAD/SYM,10,1,buy\n"    # 7 bad_symbol
        "1699999000000,GOOD,10,1,buy\n"       # 8 ts_backwards (1000 s back)
        "2023-11-14T22:13:20.009Z,good,11,2,\n"  # 9 ok: ISO time, lower-case symbol, side inferred (uptick)
        "1700000000010,GOOD,1e13,1,buy\n"    # 10 price_out_of_range
        "1700000000011,GOOD,10,1e16,buy\n"   # 11 volume_out_of_range
    )
    run_ingest(config, path)
    assert store.rejected_counts(source_id(path)) == {
        "unparseable": 2, "bad_price": 2, "bad_volume": 1, "bad_side": 1, "bad_symbol": 1, "ts_backwards": 1,
        "price_out_of_range": 1, "volume_out_of_range": 1,
    }
    assert set(store.rejected_counts(source_id(path))) == set(REASONS) - {BAD_QUOTE, TS_OUT_OF_RANGE}
    letters = store.client.xrange(store.keys.dead_letter())
    assert sorted((int(f[b"seq"]), f[b"reason"].decode()) for _, f in letters) == [
        (1, "unparseable"), (2, "unparseable"), (3, "bad_price"), (4, "bad_price"), (5, "bad_volume"),
        (6, "bad_side"), (7, "bad_symbol"), (8, "ts_backwards"), (10, "price_out_of_range"),
        (11, "volume_out_of_range"),
    ]
    good = stored(store, "GOOD")
    assert good["ts"].tolist() == [1700000000000, 1700000000009]
    assert good["side"].tolist() == [1, 1]


def test_restart_on_the_same_file_stores_nothing_twice(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "again.csv"
    frame = write_ticks(path, 3_000)
    run_ingest(config, path)
    run_ingest(config, path)
    assert sum(len(stored(store, s)) for s in ("AAA", "BBB")) == len(frame)


def test_interrupted_run_resumes_exactly_where_it_stopped(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "crash.csv"
    frame = write_ticks(path, 7_777)
    path.write_text(path.read_text() + "oops,AAA,1\n")

    def crashing(chunks, after: int):
        for i, chunk in enumerate(chunks):
            if i == after:
                raise KeyboardInterrupt
            yield chunk

    with pytest.raises(KeyboardInterrupt):
        Ingestor(config, store, source_id(path)).run(crashing(open_feed(path, chunk_rows=1_000), after=5))
    partial = sum(len(stored(store, s)) for s in ("AAA", "BBB"))
    assert 0 < partial < len(frame)
    report = Ingestor(config, store, source_id(path)).run(open_feed(path, chunk_rows=700))
    assert report.total_accepted == len(frame) - partial
    for symbol, rows in frame.groupby("symbol"):
        assert stored(store, symbol)["ts"].tolist() == rows["ts"].tolist()
    assert store.rejected_counts(source_id(path)) == {"unparseable": 1}


def test_killed_process_restarts_without_loss_or_duplicates(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    frame = write_ticks(path, 400_000, symbols=("KILL",))
    env = {**os.environ, "FRACTAL_REDIS_URL": config.redis_url, "FRACTAL_KEY_PREFIX": config.key_prefix}
    cmd = [sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(config.data_dir), "ingest",
           "--source", str(path), "--speed", "0", "--chunk-rows", "2000"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    key = store.keys.ticks("KILL")
    deadline = time.monotonic() + 60
    while store.client.xlen(key) < 20 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    assert 0 < len(stored(store, "KILL")) < len(frame), "the kill must land mid-replay"
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert stored(store, "KILL")["ts"].tolist() == frame["ts"].tolist()


def test_realtime_indicators_are_refreshed_from_the_ring(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "ind.csv"
    frame = write_ticks(path, 1_500, symbols=("IND",))
    run_ingest(config, path)
    last = frame[frame["ts"] >= frame["ts"].iloc[-1] - 300_000]
    imbalance = store.read_indicator("IND", "tick_imbalance", "5m")
    flow = store.read_indicator("IND", "order_flow_ratio", "5m")
    assert imbalance["value"] == last["side"].sum()
    assert imbalance["ts"] == frame["ts"].iloc[-1]
    expected = (last["volume"] * last["side"]).sum() / last["volume"].sum()
    assert flow["value"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("flush_ms", [0.0, math.inf], ids=["tail-with-full-batch", "tail-alone"])
def test_realtime_indicators_cover_the_tail_however_it_was_flushed(
    config: Config, store: HotStore, tmp_path: Path, flush_ms: float
) -> None:
    """50 ticks after a full micro-batch, fewer than indicator_every: committed with it or alone at the end."""
    path = tmp_path / "tail.csv"
    frame = write_ticks(path, 1_050, symbols=("TAIL",))
    ingest_file(replace(config, batch_size=1_000, indicator_every=100, flush_ms=flush_ms), store, path)
    last = frame[frame["ts"] >= frame["ts"].iloc[-1] - 300_000]
    imbalance = store.read_indicator("TAIL", "tick_imbalance", "5m")
    assert imbalance["ts"] == frame["ts"].iloc[-1] and imbalance["value"] == last["side"].sum()


@pytest.mark.infra
def test_embedded_redis_starts_under_the_data_dir_when_no_url_is_set(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FRACTAL_REDIS_URL", raising=False)
    data_dir = tmp_path / "data"
    config = Config.from_env(data_dir=data_dir)
    assert config.redis_url == ""
    client = connect(config)
    try:
        assert client.ping()
        assert embedded_socket(data_dir).is_socket()
        assert str(embedded_socket(data_dir)).startswith(str(data_dir))
        info = client.info("server")
        assert info["redis_mode"] == "standalone" and int(info["tcp_port"]) == 0
        assert redis.Redis.from_url(f"unix://{embedded_socket(data_dir)}").ping()
    finally:
        assert stop_embedded_redis(data_dir)


def test_a_bad_cell_deep_in_a_csv_is_rejected_alone(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    frame = write_ticks(path, 20_000, symbols=("LATE",))
    lines = path.read_text().splitlines()
    lines[15_001] = lines[15_001].replace(lines[15_001].split(",")[2], "oops", 1)
    path.write_text("\n".join(lines) + "\n")
    report = Ingestor(config, store, source_id(path)).run(open_feed(path, chunk_rows=1_000))
    assert report.rejected == {"unparseable": 1}
    assert stored(store, "LATE")["ts"].tolist() == frame["ts"].drop(index=15_000).tolist()


def test_quotes_are_stored_and_bad_ones_rejected(config: Config, store: HotStore) -> None:
    quotes = RawQuotes(
        seq=np.arange(4, dtype=np.int64), symbol=np.array(["QQ", "QQ", "QQ", "Q/Q"], dtype=object),
        ts=np.array([1, 2, 3, 4], dtype=np.int64), bid=np.array([10.0, 11.0, 9.0, 10.0]),
        ask=np.array([10.5, 10.0, 9.5, 10.5]), bid_size=np.ones(4), ask_size=np.ones(4),
    )
    report = Ingestor(config, store, "quotes").run([FeedChunk(last_seq=3, quotes=quotes)])
    assert report.quotes == 2 and report.rejected == {BAD_QUOTE: 2}
    assert store.read_stream("QQ", "quotes").records["bid"].tolist() == [10.0, 9.0]
    again = Ingestor(config, store, "quotes").run([FeedChunk(last_seq=3, quotes=quotes)])
    assert again.quotes == 0 and len(store.read_stream("QQ", "quotes").records) == 2


def test_follow_tails_lines_appended_to_a_growing_file(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "live.csv"
    path.write_text("ts,symbol,price,volume,side\n1700000000000,TAIL,10,1,1\n")
    env = {**os.environ, "FRACTAL_REDIS_URL": config.redis_url, "FRACTAL_KEY_PREFIX": config.key_prefix}
    proc = subprocess.Popen([sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(config.data_dir), "ingest",
                             "--source", str(path), "--follow"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def wait_for(n: int) -> list[int]:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = stored(store, "TAIL")["ts"].tolist()
                if len(got) >= n:
                    return got
                time.sleep(0.05)
            return stored(store, "TAIL")["ts"].tolist()

        assert wait_for(1) == [1700000000000]
        with open(path, "a") as handle:
            handle.write("1700000000001,TAIL,11,1,1\n1700000000002,TA")
            handle.flush()
            time.sleep(0.3)
            handle.write("IL,12,1,-1\n")
        assert wait_for(3) == [1700000000000, 1700000000001, 1700000000002]
        assert stored(store, "TAIL")["side"].tolist() == [1, 1, -1]
    finally:
        proc.kill()
        proc.wait()
