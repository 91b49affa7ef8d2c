"""A backfill submitted by ``fractal materialize --daemon``, the way the UI submits one, picked
up by a real ``dagster-daemon``: every date of the range succeeds and the bars equal an
independent DuckDB computation."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from dagster import AssetKey, DagsterInstance, RunsFilter
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.tags import BACKFILL_ID_TAG

from fractal_assets.cold.parquet import read_ticks, write_ticks
from fractal_assets.config import Config
from fractal_assets.defs.materialize import cli_instance
from fractal_assets.feeds import open_feed
from fractal_assets.ingest.bulk_import import import_history
from fractal_assets.market.bars import TIMEFRAMES
from fractal_assets.market.calendar import DAY_MS, date_of
from fractal_assets_tests.support import run_cli, shared_file
from fractal_assets_tests.test_assets import assert_bars_equal, expected_bars, warm_bars

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

TARDIS = "tardis_binance_futures_btcusdt_20200222/trades.csv.gz"
SYMBOLS = ("DMNA", "DMNB")
DATES = 6
DAYS_PER_RUN = 4
"""Six dates in runs of at most four: the daemon forms two ranged runs."""
TIMEOUT_S = 300
PIPELINE_KEYS = [AssetKey(name) for name in ("raw_ticks", *(f"bars_{tf}" for tf in TIMEFRAMES), "microstructure",
                                             "williams_fractals", "hurst_exponent", "indicator_snapshot")]


def replicate_real_day(config: Config, tmp: Path) -> list[str]:
    """The real Tardis day written as each symbol's partition of DATES consecutive dates."""
    staging = Config.from_env(data_dir=tmp / "staging", redis_url=config.redis_url, key_prefix=config.key_prefix)
    import_history(open_feed(shared_file(TARDIS)), staging.cold, -(1 << 40), config.ts_tolerance_ms)
    day = read_ticks(staging.cold, "BTCUSDT", "2020-02-22")
    ts = day.column("ts").to_numpy()
    dates = []
    for k in range(DATES):
        date = date_of(int(ts.min()) + k * DAY_MS)
        for symbol in SYMBOLS:
            write_ticks(config.cold, symbol, date, day.set_column(0, "ts", pa.array(ts + k * DAY_MS)))
        dates.append(date)
    return dates


def daemon_env(config: Config, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRACTAL_")}
    env.update(DAGSTER_HOME=str(home), FRACTAL_DATA_DIR=str(config.data_dir), FRACTAL_REDIS_URL=config.redis_url,
               FRACTAL_KEY_PREFIX=config.key_prefix, FRACTAL_DAYS_PER_RUN=str(DAYS_PER_RUN))
    return env


def wait_for_backfill(instance: DagsterInstance, backfill_id: str, daemon: subprocess.Popen, log: Path) -> BulkActionStatus:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        status = instance.get_backfill(backfill_id).status
        if status not in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING):
            return status
        assert daemon.poll() is None, f"dagster-daemon exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"backfill not done in {TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
        time.sleep(1)


def test_a_backfill_for_the_daemon_builds_every_date_in_ranged_runs(config: Config, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    dates = replicate_real_day(config, tmp_path)
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    submitted = run_cli(config, "materialize", "--start", dates[0], "--end", dates[-1], "--daemon", dagster_home=home)
    assert submitted.returncode == 0, submitted.stderr
    backfill_id = re.search(r"submitted backfill (\S+) of 6 dates", submitted.stdout).group(1)
    instance = cli_instance(config)
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m",
                                   "fractal_assets.definitions"], env=daemon_env(config, home), stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        status = wait_for_backfill(instance, backfill_id, daemon, log)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    assert status == BulkActionStatus.COMPLETED_SUCCESS, log.read_text()[-3000:]
    runs = instance.get_runs(filters=RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
    assert len(runs) == 2 and all(run.is_success for run in runs), "two ranged runs, both succeeded"
    for key in PIPELINE_KEYS:
        assert instance.get_materialized_partitions(key) == set(dates), key
    for timeframe in TIMEFRAMES:
        assert_bars_equal(warm_bars(config, timeframe), expected_bars(config, timeframe))
