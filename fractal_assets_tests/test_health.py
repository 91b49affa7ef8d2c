"""Health, status and the Dagster health check on real Redis, SQLite and files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from dagster import DagsterInstance, Definitions, build_sensor_context

from fractal_assets.cli import source_id
from fractal_assets.config import Config
from fractal_assets.defs.assets.hot import hot_ticks
from fractal_assets.defs.health import health_job, hot_tier_health, hot_tier_metrics
from fractal_assets.defs.resources import resources_for
from fractal_assets.feeds import open_feed
from fractal_assets.hot.connection import ensure_embedded_redis, stop_embedded_redis
from fractal_assets.hot.store import PROCESS_METRICS_TTL_MS, HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.ingest.metrics import PUSH_EVERY_S
from fractal_assets.market.ticks import FeedChunk
from fractal_assets.ops.health import check_health, status
from fractal_assets.warm.db import connect
from fractal_assets.warm.schema import migrate
from fractal_assets_tests.support import ingest_file, run_cli, write_ticks

DOWN = "redis://127.0.0.1:1/0"


def ready(config: Config) -> Config:
    conn = connect(config.warm_db)
    migrate(conn)
    conn.close()
    return config


def ingest(config: Config, store: HotStore, tmp_path: Path, n: int = 5_000) -> None:
    path = tmp_path / "ticks.csv"
    write_ticks(path, n, symbols=("HLT",))
    ingest_file(config, store, path)


def while_live(config: Config, store: HotStore, tmp_path: Path, look: Callable[[], Any], symbol: str = "HLT") -> Any:
    """Ingest 20,000 ticks of ``symbol`` and return what ``look`` sees in the middle of the
    run, once the process has published metrics after committing ticks."""
    path = tmp_path / "live.csv"
    write_ticks(path, 20_000, symbols=(symbol,))
    seen = []

    def chunks() -> Iterator[FeedChunk]:
        feed = open_feed(path, chunk_rows=1_000)
        yield next(feed)
        time.sleep(PUSH_EVERY_S)
        yield next(feed)
        seen.append(look())
        yield from feed

    Ingestor(config, store, source_id(path)).run(chunks())
    return seen[0]


def health_cli(config: Config) -> subprocess.CompletedProcess:
    return run_cli(config, "health", "--json")


def test_health_reports_every_key_and_exit_code(config: Config, store: HotStore, tmp_path: Path) -> None:
    ingest(ready(config), store, tmp_path)
    result = health_cli(config)
    report = json.loads(result.stdout)
    assert result.returncode == 0, report
    assert {"redis_connected", "redis_version", "sqlite_accessible", "memory_usage_mb", "tick_lag_ms",
            "cache_hit_rate", "cold_writable", "archive_backlog_ticks", "problems", "notes"} <= set(report)
    assert report["redis_connected"] and report["sqlite_accessible"] and report["cold_writable"]
    assert report["redis_version"] == redis.Redis.from_url(config.redis_url).info("server")["redis_version"]
    assert report["problems"] == report["notes"] == []
    assert report["archive_backlog_ticks"] == 5_000 and report["memory_usage_mb"] > 0
    assert report["tick_lag_ms"] > 0

    down = health_cli(replace(config, redis_url=DOWN))
    report = json.loads(down.stdout)
    assert down.returncode == 1 and report["redis_connected"] is False
    assert report["problems"][0].startswith("redis_connected failed (ConnectionError: "), "the operator learns why"


def test_limits_make_a_deployment_unhealthy(config: Config, store: HotStore, tmp_path: Path) -> None:
    ingest(ready(config), store, tmp_path, n=3_000)
    assert check_health(config).healthy
    strict = check_health(replace(config, health_max_backlog=1_000))
    assert not strict.healthy and "await archiving" in strict.problems[0]
    stale = check_health(replace(config, health_max_tick_lag_ms=60_000))
    assert not stale.healthy and "old" in stale.problems[0]
    garbage = config.data_dir / "garbage.db"
    garbage.write_bytes(b"not a database, " * 512)
    broken = check_health(replace(config, warm_db=garbage))
    assert broken.sqlite_accessible is False and not broken.healthy
    assert broken.problems == ["sqlite_accessible failed (DatabaseError: file is not a database)"]


def test_a_new_deployment_is_healthy_with_notes_and_health_creates_nothing(tmp_path: Path, redis_server: str) -> None:
    """From an empty directory, with the default ./data: nothing exists yet, which is not a failure."""
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRACTAL_")}
    result = subprocess.run([sys.executable, "-m", "fractal_assets.cli", "health", "--json"],
                            env=env, capture_output=True, text=True, cwd=empty)
    report = json.loads(result.stdout)
    assert result.returncode == 0, report
    assert report["healthy"] and report["problems"] == []
    assert report["redis_connected"] is None and report["sqlite_accessible"] is None and report["cold_writable"]
    assert [note.split(":")[0] for note in report["notes"]] == ["not initialized yet"] * 2
    assert list(empty.iterdir()) == [], "health created something"

    configured = run_cli(Config.from_env(data_dir=empty / "data", redis_url=redis_server), "health", "--json", cwd=empty)
    report = json.loads(configured.stdout)
    assert configured.returncode == 0 and report["redis_connected"] is True
    assert report["notes"] == [f"not initialized yet: no warm database at {empty / 'data' / 'warm.db'} "
                               "(the first materialization or `fractal migrate` creates it)"]
    assert list(empty.iterdir()) == []


@pytest.mark.infra
def test_an_embedded_redis_that_ran_and_stopped_is_a_failure(tmp_path: Path) -> None:
    config = Config.from_env(data_dir=tmp_path / "data", redis_url="")
    ensure_embedded_redis(config.data_dir)
    assert stop_embedded_redis(config.data_dir)
    health = check_health(config)
    assert health.redis_connected is False and not health.healthy
    assert health.problems[0].startswith("redis_connected failed (ConnectionError: embedded Redis: not running (no socket at ")


def test_status_has_latency_throughput_and_memory_per_symbol_of_live_processes(
    config: Config, store: HotStore, tmp_path: Path
) -> None:
    report = while_live(config, store, tmp_path, lambda: status(config))
    (process,) = report["ingest"]
    assert int(process["pid"]) == os.getpid()
    p50, p95, p99 = (float(process[f"latency_p{p}_ms"]) for p in (50, 95, 99))
    assert 0 < p50 <= p95 <= p99
    assert 0 < int(process["ticks_total"]) < 20_000
    assert float(process["throughput_tps"]) > 0
    assert float(process["indicator_p50_ms"]) > 0
    row = report["symbols"]["HLT"]
    assert 0 < row["ticks_in_redis"] == row["unarchived_ticks"] < 20_000
    assert row["ring_mb"] > 0 and row["redis_mb"] > 0

    after = status(config)
    assert after["ingest"] == [], "an ended process is not listed"
    assert after["symbols"]["HLT"]["ticks_in_redis"] == 20_000


def test_status_forgets_a_killed_process_and_names_the_embedded_redis_when_it_is_down(
    config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "follow.csv"
    write_ticks(path, 2_000, symbols=("FLW",))
    env = {**os.environ, "FRACTAL_REDIS_URL": config.redis_url, "FRACTAL_KEY_PREFIX": config.key_prefix}
    proc = subprocess.Popen([sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(config.data_dir), "ingest",
                             "--source", str(path), "--follow"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    client = redis.Redis.from_url(config.redis_url)
    key = f"{config.key_prefix}metrics:ingest:{source_id(path)}"
    try:
        deadline = time.monotonic() + 60
        while int(client.hget(key, "ticks_total") or 0) < 2_000:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        first = int(client.hget(key, "updated_ms"))
        while int(client.hget(key, "updated_ms")) == first:
            assert time.monotonic() < deadline, "an idle process keeps publishing"
            time.sleep(0.05)
        (process,) = status(config)["ingest"]
        assert int(process["pid"]) == proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert 0 < client.pttl(key) <= PROCESS_METRICS_TTL_MS, "a dead process's metrics expire"
    finally:
        if proc.poll() is None:
            proc.kill()

    down = run_cli(replace(config, redis_url=""), "status")
    assert down.returncode == 1
    (line,) = down.stderr.splitlines()
    assert line.startswith(f"fractal: error: the embedded Redis of {config.data_dir} (FRACTAL_REDIS_URL is unset): "
                           "ConnectionError: embedded Redis: not running (no socket "), line
    assert not (config.data_dir / "redis").exists(), "status starts nothing"


def test_dagster_check_fails_when_unhealthy_and_sensor_observes_metrics(config: Config, store: HotStore, tmp_path: Path) -> None:
    ingest(ready(config), store, tmp_path)
    for cfg, expected in ((config, True), (replace(config, redis_url=DOWN), False)):
        defs = Definitions(assets=[hot_ticks], asset_checks=[hot_tier_health], jobs=[health_job],
                           resources={"hot": resources_for(cfg)["hot"]})
        result = defs.resolve_job_def("health_check").execute_in_process()
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.passed is expected

    def observe() -> Any:
        with DagsterInstance.ephemeral() as instance:
            context = build_sensor_context(instance=instance, resources={"hot": resources_for(config)["hot"]})
            return hot_tier_metrics(context).asset_events

    (observation,) = while_live(config, store, tmp_path, observe, symbol="LIV")
    assert observation.asset_key == hot_ticks.key
    assert {"ingest_latency_p99_ms", "ingest_throughput_tps", "LIV_ring_mb", "LIV_unarchived_ticks"} <= set(observation.metadata)
