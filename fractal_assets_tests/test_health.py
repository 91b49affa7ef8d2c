"""Health, status and the Dagster health check on real Redis, SQLite and files."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

from dagster import DagsterInstance, Definitions, build_sensor_context

from fractal_assets.config import Config
from fractal_assets.defs.assets.hot import hot_ticks
from fractal_assets.defs.health import health_job, hot_tier_health, hot_tier_metrics
from fractal_assets.defs.resources import resources_for
from fractal_assets.hot.store import HotStore
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


def health_cli(config: Config) -> subprocess.CompletedProcess:
    return run_cli(config, "health", "--json")


def test_health_reports_every_key_and_exit_code(config: Config, store: HotStore, tmp_path: Path) -> None:
    ingest(ready(config), store, tmp_path)
    result = health_cli(config)
    report = json.loads(result.stdout)
    assert result.returncode == 0, report
    assert {"redis_connected", "sqlite_accessible", "memory_usage_mb", "tick_lag_ms", "cache_hit_rate",
            "cold_writable", "archive_backlog_ticks"} <= set(report)
    assert report["redis_connected"] and report["sqlite_accessible"] and report["cold_writable"]
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
    missing = check_health(replace(config, warm_db=config.data_dir / "missing.db"))
    assert not missing.sqlite_accessible
    assert missing.problems == ["sqlite_accessible failed (OperationalError: unable to open database file)"]


def test_status_has_latency_throughput_and_memory_per_symbol(config: Config, store: HotStore, tmp_path: Path) -> None:
    ingest(config, store, tmp_path, n=20_000)
    report = status(config)
    process = report["ingest"][0]
    p50, p95, p99 = (float(process[f"latency_p{p}_ms"]) for p in (50, 95, 99))
    assert 0 < p50 <= p95 <= p99
    assert int(process["ticks_total"]) == 20_000
    assert float(process["indicator_p50_ms"]) > 0
    row = report["symbols"]["HLT"]
    assert row["ticks_in_redis"] == row["unarchived_ticks"] == 20_000
    assert row["ring_mb"] > 0 and row["redis_mb"] > 0


def test_dagster_check_fails_when_unhealthy_and_sensor_observes_metrics(config: Config, store: HotStore, tmp_path: Path) -> None:
    ingest(ready(config), store, tmp_path)
    for cfg, expected in ((config, True), (replace(config, redis_url=DOWN), False)):
        defs = Definitions(assets=[hot_ticks], asset_checks=[hot_tier_health], jobs=[health_job],
                           resources={"hot": resources_for(cfg)["hot"]})
        result = defs.resolve_job_def("health_check").execute_in_process()
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.passed is expected
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, resources={"hot": resources_for(config)["hot"]})
        (observation,) = hot_tier_metrics(context).asset_events
    assert observation.asset_key == hot_ticks.key
    assert {"ingest_latency_p99_ms", "ingest_throughput_tps", "HLT_ring_mb", "HLT_unarchived_ticks"} <= set(observation.metadata)
