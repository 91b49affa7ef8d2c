"""The hot tier on a real Redis Cluster (three redis-server primaries on loopback) and on one
server, through the same code: a feed lands exactly once and identically on both, symbols
spread over the shards, a commit cut short between its writes (or a killed ingest) resumes
without loss or duplicates, and `fractal health`, `fractal status` and the Redis backup see
every shard.

The cluster is started here from ``/usr/bin/redis-server`` and ``/usr/bin/redis-cli``; the
cluster tests skip when either is missing (``apt-get install redis-server redis-tools``).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from dagster import DagsterInstance
from redis.cluster import RedisCluster

from fractal_assets.access.reads import get_backtest_data
from fractal_assets.cli import main, source_id
from fractal_assets.config import Config
from fractal_assets.defs.materialize import materialize_days, partitions_with_data
from fractal_assets.defs.resources import resources_for
from fractal_assets.feeds import open_feed
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot import store as store_module
from fractal_assets.hot.connection import open_store, primaries
from fractal_assets.hot.store import GuardedWrite, HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.ingest.validation import BAD_PRICE, BAD_SYMBOL
from fractal_assets.ops.health import check_health
from fractal_assets.ops.redis_dump import export_redis, import_redis
from fractal_assets_tests.support import free_port, private_prefix, write_ticks

pytestmark = pytest.mark.xdist_group("redis_cluster")

REDIS_SERVER = Path("/usr/bin/redis-server")
REDIS_CLI = Path("/usr/bin/redis-cli")
NODES = 3
START_TIMEOUT_S = 30
SYMBOLS = ("BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT")
"""Their hash tags fall in the slot ranges of all three primaries of a fresh cluster."""
START_MS = 1_723_118_400_000
"""2024-08-08T12:00:00Z."""


def _wait(what: str, ready: Any, logs: list[Path]) -> None:
    """Poll ``ready`` until it holds, or fail with the tail of every node's log."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if time.monotonic() > deadline:
            tails = "\n".join(f"{log}: {log.read_text()[-1500:]}" for log in logs if log.exists())
            raise AssertionError(f"Redis Cluster: {what} not ready in {START_TIMEOUT_S} s\n{tails}")
        time.sleep(0.1)


def _answers(port: int, check: Any = lambda client: client.ping()) -> bool:
    try:
        return bool(check(redis.Redis(port=port, socket_connect_timeout=0.5)))
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a fresh three-primary Redis Cluster, stopped afterwards."""
    missing = [str(tool) for tool in (REDIS_SERVER, REDIS_CLI) if not tool.exists()]
    if missing:
        pytest.skip(f"no Redis Cluster: {', '.join(missing)} not installed (apt-get install redis-server redis-tools)")
    root = tmp_path_factory.mktemp("redis-cluster")
    ports: set[int] = set()
    while len(ports) < 2 * NODES:
        ports.add(free_port())
    nodes, buses = sorted(ports)[:NODES], sorted(ports)[NODES:]
    logs = [root / f"{port}.log" for port in nodes]
    servers: list[subprocess.Popen] = []
    try:
        for port, bus, log in zip(nodes, buses, logs):
            servers.append(subprocess.Popen(
                [str(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-port", str(bus), "--cluster-config-file", str(root / f"nodes-{port}.conf"),
                 "--dir", str(root), "--save", "", "--appendonly", "no", "--logfile", str(log)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        for port in nodes:
            _wait(f"node {port}", lambda: _answers(port), logs)
        subprocess.run([str(REDIS_CLI), "--cluster", "create", *(f"127.0.0.1:{port}" for port in nodes),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for port in nodes:
            _wait(f"cluster state of {port}",
                  lambda: _answers(port, lambda client: client.cluster("info")["cluster_state"] == "ok"), logs)
        yield f"redis+cluster://127.0.0.1:{nodes[0]}"
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=20)


@pytest.fixture
def cluster_config(tmp_path: Path, redis_cluster: str) -> Iterator[Config]:
    """Settings on the cluster with a key prefix of the test's own, deleted afterwards."""
    with private_prefix(redis_cluster) as prefix:
        yield Config.from_env(data_dir=tmp_path / "cluster-data", redis_url=redis_cluster, key_prefix=prefix)


@pytest.fixture(params=["server", pytest.param("cluster", marks=pytest.mark.redis_cluster)])
def hot_config(request: pytest.FixtureRequest) -> Config:
    """The same test on one server and on the cluster."""
    return request.getfixturevalue("config" if request.param == "server" else "cluster_config")


def use(monkeypatch: pytest.MonkeyPatch, config: Config) -> None:
    """Point the CLI at a configuration's Redis and key prefix."""
    monkeypatch.setenv("FRACTAL_REDIS_URL", config.redis_url)
    monkeypatch.setenv("FRACTAL_KEY_PREFIX", config.key_prefix)


def simulate_cli(config: Config, monkeypatch: pytest.MonkeyPatch) -> int:
    use(monkeypatch, config)
    return main(["--data-dir", str(config.data_dir), "simulate", "--symbols", ",".join(SYMBOLS), "--rate", "200",
                 "--duration", "20", "--speed", "0", "--start-ms", str(START_MS), "--seed", "7"])


def contents(store: HotStore) -> dict[str, Any]:
    """Everything ingest stored per symbol: records with arrival numbers, books, checkpoints."""
    out: dict[str, Any] = {"symbols": store.symbols()}
    for symbol in out["symbols"]:
        ticks, quotes = store.read_stream(symbol, "ticks"), store.read_stream(symbol, "quotes")
        out[symbol] = {
            "ticks": (ticks.records.tobytes(), ticks.seq.tolist()),
            "quotes": (quotes.records.tobytes(), quotes.seq.tolist()),
            "books": store.read_books(symbol),
            "checkpoint": store.client.hgetall(store.keys.checkpoint(symbol)),
        }
    return out


def test_a_simulated_feed_lands_on_the_cluster_exactly_as_on_one_server(
    config: Config, cluster_config: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert simulate_cli(config, monkeypatch) == 0
    assert simulate_cli(cluster_config, monkeypatch) == 0
    first = capsys.readouterr().out
    server, cluster = open_store(config), open_store(cluster_config)
    assert isinstance(cluster.client, RedisCluster)
    stored = contents(cluster)
    assert stored == contents(server)
    assert stored["symbols"] == sorted(SYMBOLS)
    assert all(stored[s]["ticks"][1] and stored[s]["quotes"][1] and stored[s]["books"] for s in SYMBOLS)
    total = sum(len(stored[s]["ticks"][1]) for s in SYMBOLS)
    assert f"accepted {total} ticks" in first

    ticks = {cluster.keys.ticks(s).encode(): s for s in SYMBOLS}
    shards = [{ticks[k] for k in node.scan_iter(match=f"{cluster.keys.prefix}*") if k in ticks}
              for node in primaries(cluster.client)]
    assert len(shards) == NODES and all(shards), "every primary holds some symbols' ticks"
    assert sorted(s for shard in shards for s in shard) == sorted(SYMBOLS), "each symbol on exactly one shard"

    assert simulate_cli(cluster_config, monkeypatch) == 0
    assert "accepted 0 ticks" in capsys.readouterr().out
    assert contents(cluster) == stored, "a restart of the same feed stores nothing twice"


class Crash(BaseException):
    """The ingest process dies here (not an Exception: nothing may catch it)."""


def crash_in(monkeypatch: pytest.MonkeyPatch, step: str, commit: int) -> None:
    """Kill ingest at a point of its ``commit``-th commit:
    ``dead_letters``: after step 1 (symbols listed, rejections dead-lettered);
    ``symbols``: in step 2, after the first symbol's write and before the others;
    ``source``: after step 2, before the source checkpoint moves."""
    method = "_advance_source" if step == "source" else "_send"
    original = getattr(HotStore, method)
    calls = itertools.count(1)

    def crashing(self: HotStore, *args: Any) -> None:
        if next(calls) == commit:
            if step == "symbols":
                writes: list[GuardedWrite] = args[0]
                assert len(writes) > 1, "the commit must span several symbols"
                original(self, writes[:1])
            raise Crash
        original(self, *args)

    monkeypatch.setattr(HotStore, method, crashing)


def bad_rows_feed(path: Path) -> tuple[Any, Counter[str]]:
    """A CSV of ticks over the symbols with a bad price in every 97th row (valid symbol: a
    restart skips such a row once its symbol's checkpoint passes it) and one bad symbol."""
    frame = write_ticks(path, 12_000, symbols=SYMBOLS)
    lines = path.read_text().splitlines()
    bad = list(range(50, len(lines), 97))
    for i in bad:
        ts, symbol, _, volume, side = lines[i].split(",")
        lines[i] = ",".join((ts, symbol, "-5", volume, side))
    lines[3] = lines[3].replace(lines[3].split(",")[1], "BAD/SYM", 1)
    path.write_text("\n".join(lines) + "\n")
    kept = frame.drop(index=[i - 1 for i in (*bad, 3)])
    return kept, Counter({BAD_PRICE: len(bad), BAD_SYMBOL: 1})


def assert_stored_once(store: HotStore, source: str, kept: Any, rejected: Counter[str]) -> None:
    """Every kept row stored once, in order, with consecutive arrival numbers; every bad one
    dead-lettered once."""
    for symbol, rows in kept.groupby("symbol"):
        assert store.read_ticks(symbol).ticks["ts"].tolist() == rows["ts"].tolist(), symbol
        assert store.read_ticks(symbol).seq.tolist() == list(range(len(rows))), symbol
    assert store.rejected_counts(source) == rejected
    assert store.client.xlen(store.keys.dead_letter()) == rejected.total()


@pytest.mark.parametrize(("step", "commit"), [("dead_letters", 6), ("symbols", 1), ("symbols", 6), ("source", 6)])
def test_a_commit_cut_short_between_its_writes_resumes_exactly_once(
    hot_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, commit: int
) -> None:
    """Commit 1 is the first of every symbol: a restart must still find the one stored.
    Dead letters go in writes of two, so a commit has several."""
    monkeypatch.setattr(store_module, "DEAD_LETTERS_PER_WRITE", 2)
    path = tmp_path / "ticks.csv"
    kept, rejected = bad_rows_feed(path)
    source = source_id(path)
    config = replace(hot_config, flush_ms=0)
    store = open_store(config)
    with monkeypatch.context() as patched:
        crash_in(patched, step, commit)
        with pytest.raises(Crash):
            Ingestor(config, store, source).run(open_feed(path, chunk_rows=500))
    progress = store.source_checkpoint(source)
    stored = max(store.checkpoints(list(SYMBOLS), source)[s].source_seq for s in SYMBOLS)
    ahead = progress.rejected if step == "dead_letters" else stored
    assert ahead > progress.handled, "the crash left work stored beyond handled"

    report = Ingestor(config, store, source).run(open_feed(path, chunk_rows=700))
    assert report.skipped > 0
    assert_stored_once(store, source, kept, rejected)


def test_every_commit_sent_twice_stores_what_one_would(
    hot_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a commit retried after its reply was lost with the connection does: each guarded
    write already applied is skipped by the server."""
    monkeypatch.setattr(store_module, "DEAD_LETTERS_PER_WRITE", 2)
    path = tmp_path / "ticks.csv"
    kept, rejected = bad_rows_feed(path)
    chunks = list(simulate(SimulatorSpec(symbols=SYMBOLS, rate=100, duration_s=10, start_ms=START_MS, seed=5)))
    clean = open_store(replace(hot_config, key_prefix=hot_config.key_prefix + "clean:"))
    Ingestor(hot_config, clean, "sim:twice").run(chunks)
    commit = HotStore.commit

    def twice(self: HotStore, *args: Any) -> None:
        commit(self, *args)
        commit(self, *args)

    monkeypatch.setattr(HotStore, "commit", twice)
    store = open_store(hot_config)
    Ingestor(hot_config, store, source_id(path)).run(open_feed(path, chunk_rows=500))
    assert_stored_once(store, source_id(path), kept, rejected)
    simulated = open_store(replace(hot_config, key_prefix=hot_config.key_prefix + "sim:"))
    Ingestor(hot_config, simulated, "sim:twice").run(chunks)
    assert contents(simulated) == contents(clean)


def test_a_simulated_feed_cut_short_between_symbol_writes_resumes_exactly_once(
    hot_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quotes and order books resume per symbol from their own checkpoint fields too."""
    chunks = list(simulate(SimulatorSpec(symbols=SYMBOLS, rate=100, duration_s=15, start_ms=START_MS, seed=3)))
    clean = open_store(replace(hot_config, key_prefix=hot_config.key_prefix + "clean:"))
    Ingestor(hot_config, clean, "sim:cut").run(chunks)
    config = replace(hot_config, flush_ms=0)
    store = open_store(config)
    with monkeypatch.context() as patched:
        crash_in(patched, "symbols", commit=5)
        with pytest.raises(Crash):
            Ingestor(config, store, "sim:cut").run(chunks)
    Ingestor(config, store, "sim:cut").run(chunks)
    assert contents(store) == contents(clean)


def test_an_ingest_killed_on_the_cluster_resumes_without_loss_or_duplicates(
    cluster_config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "big.csv"
    frame = write_ticks(path, 300_000, symbols=SYMBOLS)
    env = {**os.environ, "FRACTAL_REDIS_URL": cluster_config.redis_url, "FRACTAL_KEY_PREFIX": cluster_config.key_prefix}
    cmd = [sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(cluster_config.data_dir), "ingest",
           "--source", str(path), "--speed", "0", "--chunk-rows", "2000"]
    store = open_store(cluster_config)
    log = tmp_path / "ingest.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 60
    while store.client.xlen(store.keys.ticks(SYMBOLS[0])) < 10 and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    partial = sum(len(store.read_ticks(s).ticks) for s in SYMBOLS)
    assert 0 < partial < len(frame), "the kill must land mid-replay"
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for symbol, rows in frame.groupby("symbol"):
        assert store.read_ticks(symbol).ticks["ts"].tolist() == rows["ts"].tolist(), symbol


def test_health_status_and_the_redis_backup_see_every_shard(
    cluster_config: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    assert simulate_cli(cluster_config, monkeypatch) == 0
    capsys.readouterr()
    store = open_store(cluster_config)
    nodes = primaries(store.client)
    ticks = {s: len(store.read_ticks(s).ticks) for s in SYMBOLS}

    main(["--data-dir", str(cluster_config.data_dir), "health", "--json"])
    health = json.loads(capsys.readouterr().out)
    assert health["redis_connected"] and health["archive_backlog_ticks"] == sum(ticks.values())
    one_node = max(node.info("memory")["used_memory"] for node in nodes) / 1024**2
    assert health["memory_usage_mb"] > one_node, "memory is summed over the primaries"

    assert main(["--data-dir", str(cluster_config.data_dir), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {s: row["ticks_in_redis"] for s, row in status["symbols"].items()} == ticks
    assert status["ingest"] == [], "an ended ingest process is not listed"

    on_nodes = sorted(k for node in nodes for k in node.scan_iter(match=f"{cluster_config.key_prefix}*", count=1000))
    assert len({node.connection_pool.connection_kwargs["port"] for node in nodes}) == NODES
    dump = tmp_path / "redis.dump"
    assert export_redis(store.client, cluster_config.key_prefix, dump) == len(on_nodes)
    with private_prefix(cluster_config.redis_url) as copy:
        assert import_redis(store.client, copy, dump) == len(on_nodes)
        restored = open_store(replace(cluster_config, key_prefix=copy))
        assert {s: len(restored.read_ticks(s).ticks) for s in SYMBOLS} == ticks


def test_health_reports_an_unreachable_cluster_instead_of_raising(tmp_path: Path) -> None:
    config = Config.from_env(data_dir=tmp_path / "data", redis_url=f"redis+cluster://127.0.0.1:{free_port()}")
    health = check_health(config)
    assert not health.redis_connected
    assert health.problems[0].startswith("redis_connected failed (RedisClusterException: Redis Cluster cannot be connected")
    assert health.memory_usage_mb is None and health.archive_backlog_ticks is None


def test_the_dagster_pipeline_and_get_backtest_data_run_on_the_cluster_as_on_one_server(
    config: Config, cluster_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Archive (read, mark archived, trim), bars, indicators and the backtest cache, through
    the same code on both; the results must be equal."""
    results = []
    for cfg in (config, cluster_config):
        assert simulate_cli(cfg, monkeypatch) == 0
        store = open_store(cfg)
        days = partitions_with_data(store, cfg.cold)
        with DagsterInstance.ephemeral() as instance:
            assert materialize_days(days, instance, resources_for(cfg)) == []
        day = days[0]
        results.append((
            days,
            get_backtest_data(day.symbol, day.date, day.date, config=cfg, use_cache=False),
            get_backtest_data(day.symbol, day.date, day.date, "bars", "1m", config=cfg, use_cache=False),
            (store.read_indicator(day.symbol, "tick_imbalance", "5m") or {}).get("value"),
        ))
    (days, ticks, bars, indicator), cluster = results
    assert [d.symbol for d in days] == sorted(SYMBOLS)
    pd.testing.assert_frame_equal(cluster[1], ticks)
    pd.testing.assert_frame_equal(cluster[2], bars)
    assert len(ticks) > 0 and bars["tick_count"].sum() == len(ticks)
    assert cluster[0] == days and cluster[3] == indicator is not None
