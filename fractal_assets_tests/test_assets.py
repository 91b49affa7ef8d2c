"""Dagster assets end to end on real storage: Redis -> Parquet -> SQLite bars, checked by DuckDB."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, Definitions, materialize

from fractal_assets.cold.parquet import read_ticks
from fractal_assets.config import Config
from fractal_assets.definitions import defs
from fractal_assets.defs.assets.pipeline import build_days_asset
from fractal_assets.defs.materialize import materialize_days, partitions_with_data
from fractal_assets.defs.partitions import register_dates
from fractal_assets.defs.resources import resources_for
from fractal_assets.hot.store import HotStore
from fractal_assets.market.bars import TIMEFRAMES
from fractal_assets_tests.support import ingest_file, run_cli, shared_file

TARDIS = "tardis_binance_futures_btcusdt_20200222/trades.csv.gz"
FREQTRADE = "freqtrade_binance_xrpeth_trades_20191011/XRP_ETH-trades.json.gz"

BARS_SQL = """
WITH t AS (
    SELECT symbol, ts, seq, price::DOUBLE AS price, volume::DOUBLE AS volume, side, ts - ts % $width AS bucket
    FROM read_parquet($glob, hive_partitioning = true, union_by_name = true)
)
SELECT symbol, bucket AS timestamp,
       first(price ORDER BY ts, seq) AS open, max(price) AS high, min(price) AS low,
       last(price ORDER BY ts, seq) AS close, sum(volume) AS volume,
       sum(CASE WHEN side > 0 THEN volume ELSE 0 END) AS buy_volume,
       sum(CASE WHEN side < 0 THEN volume ELSE 0 END) AS sell_volume,
       count(*) AS tick_count, sum(price * volume) / sum(volume) AS vwap
FROM t GROUP BY symbol, bucket ORDER BY symbol, bucket
"""


def ingest(config: Config, store: HotStore, relative: str) -> int:
    return ingest_file(config, store, shared_file(relative)).total_accepted


def warm_bars(config: Config, timeframe: str) -> pd.DataFrame:
    with sqlite3.connect(config.warm_db) as conn:
        return pd.read_sql_query(
            "SELECT * FROM fractal_bars WHERE timeframe = ? ORDER BY symbol, timestamp", conn, params=(timeframe,)
        )


def expected_bars(config: Config, timeframe: str) -> pd.DataFrame:
    glob = str(Path(config.cold_dir) / "ticks" / "*" / "*" / "*.parquet")
    return duckdb.execute(BARS_SQL, {"width": TIMEFRAMES[timeframe], "glob": glob}).df()


def assert_bars_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(got) == len(want) > 0
    for column in ("symbol", "timestamp", "open", "high", "low", "close", "tick_count"):
        assert got[column].tolist() == want[column].tolist(), column
    for column in ("volume", "buy_volume", "sell_volume"):
        np.testing.assert_allclose(got[column], want[column], rtol=1e-12, atol=0)
    np.testing.assert_allclose(got["vwap"], want["vwap"], rtol=1e-12, atol=0)


@pytest.fixture
def instance() -> DagsterInstance:
    with DagsterInstance.ephemeral() as inst:
        yield inst


def test_definitions_load() -> None:
    Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"hot_ticks", "raw_ticks", "bars_1m", "bars_5m", "bars_15m", "bars_1h", "bars_1d"} <= keys


def test_real_trades_become_bars_equal_to_an_independent_duckdb_computation(
    config: Config, store: HotStore, instance: DagsterInstance
) -> None:
    assert ingest(config, store, TARDIS) == 9_999
    assert ingest(config, store, FREQTRADE) == 12_477
    days = partitions_with_data(store, config.cold)
    assert [(d.symbol, d.date) for d in days] == [
        ("BTCUSDT", "2020-02-22"), ("XRP_ETH", "2019-10-11"), ("XRP_ETH", "2019-10-12"), ("XRP_ETH", "2019-10-13"),
    ]
    assert materialize_days(days, instance, resources_for(config)) == []

    archived = duckdb.execute(
        "SELECT symbol, count(*) FROM read_parquet($g, hive_partitioning = true) GROUP BY 1 ORDER BY 1",
        {"g": str(Path(config.cold_dir) / "ticks/*/*/*.parquet")},
    ).fetchall()
    assert archived == [("BTCUSDT", 9_999), ("XRP_ETH", 12_477)]
    source = pd.read_csv(shared_file(TARDIS))
    tardis_parquet = read_ticks(config.cold, "BTCUSDT", "2020-02-22").to_pandas()
    assert sorted(tardis_parquet["ts"].tolist()) == sorted((source["timestamp"] // 1000).tolist())
    assert tardis_parquet["volume"].sum() == pytest.approx(source["amount"].sum(), rel=1e-12)

    for timeframe in TIMEFRAMES:
        assert_bars_equal(warm_bars(config, timeframe), expected_bars(config, timeframe))
    daily = warm_bars(config, "1d")
    assert daily.groupby("symbol")["tick_count"].sum().to_dict() == {"BTCUSDT": 9_999, "XRP_ETH": 12_477}
    with gzip.open(shared_file(FREQTRADE)) as handle:
        trades = json.load(handle)
    buys = sum(t[5] for t in trades if t[3] == "buy")
    assert daily[daily.symbol == "XRP_ETH"]["buy_volume"].sum() == pytest.approx(buys, rel=1e-12)



def test_every_asset_check_runs_and_passes_on_real_data(config: Config, store: HotStore, instance: DagsterInstance) -> None:
    ingest(config, store, TARDIS)
    register_dates(instance, ["2020-02-22"])
    result = materialize([build_days_asset], partition_key="2020-02-22", instance=instance, resources=resources_for(config))
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 4 * len(TIMEFRAMES) + len(TIMEFRAMES) - 1
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]
    metadata = next(m.metadata for m in result.asset_materializations_for_node("build_days")
                    if m.asset_key.to_user_string() == "bars_1m")
    assert metadata["rows"].value == len(warm_bars(config, "1m"))
    assert "data:image/png;base64," in metadata["candles"].value


def test_rematerializing_leaves_identical_rows_and_trims_archived_hot_ticks(
    config: Config, store: HotStore, instance: DagsterInstance
) -> None:
    ingest(replace(config, batch_size=100), store, TARDIS)
    days = partitions_with_data(store, config.cold)
    resources = resources_for(config)
    materialize_days(days, instance, resources)
    first = {tf: warm_bars(config, tf) for tf in TIMEFRAMES}
    parquet_first = read_ticks(config.cold, "BTCUSDT", "2020-02-22").to_pandas()
    hot_left = len(store.read_ticks("BTCUSDT").ticks)
    assert 0 < hot_left < 9_999, "archived ticks older than the 2 h window leave Redis"
    assert store.read_ticks("BTCUSDT").ticks["ts"].min() >= 1582329947728 - 2 * 3_600_000 - 60_000

    assert materialize_days(days, instance, resources) == []
    for timeframe in TIMEFRAMES:
        pd.testing.assert_frame_equal(warm_bars(config, timeframe), first[timeframe])
    pd.testing.assert_frame_equal(
        read_ticks(config.cold, "BTCUSDT", "2020-02-22").to_pandas(), parquet_first
    )


def test_two_concurrent_backfills_neither_fail_nor_corrupt_the_warm_db(config: Config, store: HotStore) -> None:
    ingest(config, store, FREQTRADE)
    env = {**os.environ, "FRACTAL_REDIS_URL": config.redis_url, "FRACTAL_KEY_PREFIX": config.key_prefix}
    env.pop("DAGSTER_HOME", None)
    cmd = [sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(config.data_dir), "materialize"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for timeframe in TIMEFRAMES:
        assert_bars_equal(warm_bars(config, timeframe), expected_bars(config, timeframe))
    with sqlite3.connect(config.warm_db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def cli_ok(config: Config, *args: str, dagster_home: Path | None = None) -> subprocess.CompletedProcess:
    done = run_cli(config, *args, dagster_home=dagster_home)
    assert done.returncode == 0, done.stderr
    return done


def test_import_writes_partitions_directly_and_reimport_adds_nothing(config: Config, store: HotStore, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    source = str(shared_file(FREQTRADE))
    out = cli_ok(config, "import", "--source", source, dagster_home=home).stdout
    assert "imported 12477 ticks into 3 raw_ticks partitions" in out
    cli_ok(config, "import", "--source", source, dagster_home=home)
    counts = duckdb.execute(
        "SELECT date::VARCHAR, count(*), count(DISTINCT seq) FROM read_parquet($g, hive_partitioning = true) "
        "GROUP BY 1 ORDER BY 1", {"g": str(Path(config.cold_dir) / "ticks/*/*/*.parquet")},
    ).fetchall()
    assert [c[0] for c in counts] == ["2019-10-11", "2019-10-12", "2019-10-13"]
    assert sum(c[1] for c in counts) == 12_477 and all(c[1] == c[2] for c in counts)
    assert store.client.xlen(store.keys.ticks("XRP_ETH")) == 0

    dates = ["2019-10-11", "2019-10-12", "2019-10-13"]
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_dynamic_partitions("date") == dates
    cli_ok(config, "materialize", dagster_home=home)
    for timeframe in TIMEFRAMES:
        assert_bars_equal(warm_bars(config, timeframe), expected_bars(config, timeframe))
    with DagsterInstance.from_config(str(home)) as instance:
        for key in build_days_asset.keys:
            assert instance.get_materialized_partitions(key) == set(dates), key


def test_imported_and_live_ticks_of_one_day_are_archived_together(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    live = tmp_path / "live.csv"
    path.write_text("ts,symbol,price,volume,side\n1700000000000,MIX,10,1,1\n1700000001000,MIX,11,2,-1\n")
    live.write_text("ts,symbol,price,volume,side\n1700000002000,MIX,12,3,1\n")
    cli_ok(config, "import", "--source", str(path))
    cli_ok(config, "ingest", "--source", str(live))
    cli_ok(config, "materialize")
    ticks = read_ticks(config.cold, "MIX", "2023-11-14").to_pandas()
    assert ticks["ts"].tolist() == [1700000000000, 1700000001000, 1700000002000]
    assert (ticks["seq"] < 0).tolist() == [True, True, False]
    bars = warm_bars(config, "1d")
    assert bars[["open", "high", "low", "close", "volume", "buy_volume", "tick_count"]].values.tolist() == [
        [10, 12, 10, 12, 6, 4, 3]
    ]


def test_history_of_any_era_builds_with_no_environment(config: Config, tmp_path: Path) -> None:
    """2013 trades imported and materialized with neither DAGSTER_HOME nor FRACTAL_START_DATE
    set: every asset of every date is built, on the instance at {data_dir}/dagster."""
    path = tmp_path / "2013.csv"
    ts = 1_381_190_400_000 + np.arange(0, 3 * 86_400_000, 60_000)  # 2013-10-08 .. 2013-10-10, one a minute
    pd.DataFrame({"ts": ts, "symbol": "AIG", "price": 50 + np.sin(np.arange(len(ts)) / 30),
                  "volume": 1.0, "side": np.where(np.arange(len(ts)) % 3, 1, -1)}).to_csv(path, index=False)
    assert "FRACTAL_START_DATE" not in os.environ
    cli_ok(config, "import", "--source", str(path))
    done = cli_ok(config, "materialize")
    assert "0 failed" in done.stdout.splitlines()[-1], done.stdout
    dates = ["2013-10-08", "2013-10-09", "2013-10-10"]
    with DagsterInstance.from_config(str(config.data_dir / "dagster")) as instance:
        for key in build_days_asset.keys:
            assert instance.get_materialized_partitions(key) == set(dates), key
    for timeframe in TIMEFRAMES:
        assert_bars_equal(warm_bars(config, timeframe), expected_bars(config, timeframe))
