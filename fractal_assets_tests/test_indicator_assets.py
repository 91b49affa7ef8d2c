"""Indicator assets on the shared real Binance feed: tables filled, and the real-time
`ind:` values equal to the batch computation over the same ticks and quotes."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import redis
from dagster import DagsterInstance

from fractal_assets.cli import source_id
from fractal_assets.cold.parquet import read_quotes, read_ticks
from fractal_assets.config import Config
from fractal_assets.defs.materialize import materialize_days, partitions_with_data
from fractal_assets.defs.resources import resources_for
from fractal_assets.feeds import open_feed
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import HotStore
from fractal_assets.indicators.realtime import INDICATORS, TIMEFRAME, WINDOW_SECONDS
from fractal_assets.indicators.vpin import vpin_span
from fractal_assets.indicators.windows import window_metrics
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.market.calendar import day_start_ms
from fractal_assets.market.ticks import QUOTE_DTYPE, TICK_DTYPE
from fractal_assets_tests.support import private_prefix, shared_file

BINANCE = "hftbacktest_binance_spot_feed_20240808/{}_20240808.gz"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[tuple[Config, HotStore]]:
    """Both real Binance files ingested and materialized once for the module: its tests only read."""
    with private_prefix(redis_server) as prefix:
        config = Config.from_env(data_dir=tmp_path_factory.mktemp("indicator-assets") / "data",
                                 redis_url=redis_server, key_prefix=prefix)
        store = HotStore(redis.Redis.from_url(config.redis_url), Keys(config.key_prefix))
        for name in ("btcusdt", "ethusdt"):
            path = shared_file(BINANCE.format(name))
            Ingestor(config, store, source_id(path)).run(open_feed(path))
        days = partitions_with_data(store, config.cold)
        with DagsterInstance.ephemeral() as instance:
            assert materialize_days(days, instance, resources_for(config)) == []
        yield config, store


@pytest.fixture
def built(deployment: tuple[Config, HotStore]) -> Config:
    return deployment[0]


@pytest.fixture
def store(deployment: tuple[Config, HotStore]) -> HotStore:
    """The module's deployment's hot tier (in place of conftest's fresh one)."""
    return deployment[1]


def cold_frame(config: Config, symbol: str, dataset: str) -> pd.DataFrame:
    reader = read_ticks if dataset == "ticks" else read_quotes
    frames = [reader(config.cold, symbol, d).to_pandas() for d in ("2024-08-08", "2024-08-09")]
    return pd.concat(frames, ignore_index=True)


def records(frame: pd.DataFrame, dtype: np.dtype) -> np.ndarray:
    out = np.empty(len(frame), dtype=dtype)
    for name in dtype.names:
        out[name] = frame[name].to_numpy()
    return out


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_realtime_values_equal_batch_values_over_the_same_ticks(built: Config, store: HotStore, symbol: str) -> None:
    ticks = cold_frame(built, symbol, "ticks").sort_values("seq")
    quotes = cold_frame(built, symbol, "quotes").sort_values("seq")
    live = {name: store.read_indicator(symbol, name, TIMEFRAME) for name in INDICATORS}
    end = live["tick_imbalance"]["ts"]
    assert end == ticks["ts"].max()
    start = end - WINDOW_SECONDS * 1000
    window = ticks[ticks["ts"] >= start]
    standing = quotes[quotes["ts"] < start].tail(1)
    in_quotes = pd.concat([standing, quotes[(quotes["ts"] >= start) & (quotes["ts"] <= end)]])
    batch = window_metrics(records(window, TICK_DTYPE), records(in_quotes, QUOTE_DTYPE), start, end,
                           live["vpin"]["value"])
    assert live["tick_imbalance"]["meta"]["tick_count"] == len(window) > 100
    assert not batch.spread_estimated and batch.quote_count > 100
    assert batch.time_weighted_spread > 0
    for name in INDICATORS:
        assert live[name]["value"] == pytest.approx(getattr(batch, name), rel=1e-12, nan_ok=True), name


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_realtime_vpin_is_the_day_chain_sized_by_the_day_before(built: Config, store: HotStore, symbol: str) -> None:
    # the feed runs from 2024-08-08 23:54 to 2024-08-09 00:00:01; no daily bars were stored before ingest,
    # so 08-08 has no bucket size, and 08-09's buckets are sized by the volume of 08-08 that ingest fed
    ticks = cold_frame(built, symbol, "ticks").sort_values("seq")
    first_day = ticks["ts"] < day_start_ms("2024-08-09")
    size = float(ticks["volume"][first_day].sum()) / 50
    later = records(ticks[~first_day], TICK_DTYPE)
    expected = vpin_span(later["volume"], later["side"], size)
    live = store.read_indicator(symbol, "vpin", TIMEFRAME)
    assert live["meta"]["bucket_volume"] == pytest.approx(size, rel=1e-12)
    assert live["meta"]["vpin_buckets"] == len(expected.bucket_imbalance) < 50
    assert math.isnan(live["value"]) and live["meta"]["reason"].startswith(f"{len(expected.bucket_imbalance)} of 50")


def test_indicator_tables_are_filled(built: Config) -> None:
    with sqlite3.connect(built.warm_db) as conn:
        micro = pd.read_sql_query("SELECT * FROM fractal_microstructure ORDER BY symbol, window_ms, timestamp", conn)
        values = pd.read_sql_query("SELECT * FROM fractal_indicator_values", conn)
    assert set(micro["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    assert set(micro["window_ms"]) == {300_000, 86_400_000}
    quoted = micro[micro["spread_estimated"] == 0]
    estimated = micro[micro["spread_estimated"] == 1]
    assert len(quoted) > len(estimated)
    first_quote = {s: cold_frame(built, s, "quotes")["ts"].min() for s in ("BTCUSDT", "ETHUSDT")}
    last_quote = {s: cold_frame(built, s, "quotes")["ts"].max() for s in ("BTCUSDT", "ETHUSDT")}
    for row in estimated.itertuples():
        window_end = row.timestamp + row.window_ms
        assert window_end <= first_quote[row.symbol] or row.timestamp > last_quote[row.symbol], \
            "Roll's estimate is used only for windows without a single quote"
    assert micro[["tick_imbalance", "order_flow_ratio", "bid_ask_spread", "kyle_lambda"]].notna().all().all()
    assert (quoted["time_weighted_spread"] > 0).all()
    daily = micro[micro["window_ms"] == 86_400_000].set_index(["symbol", "timestamp"])["tick_count"]
    assert daily.groupby("symbol").sum().to_dict() == {"BTCUSDT": 9_757, "ETHUSDT": 6_106}
    assert micro["vpin"].dropna().between(0, 1).all()
    snapshots = values[values["indicator"] == "indicator_snapshot"]
    assert len(snapshots) == 4  # two symbols x two UTC days
    hurst = values[(values["indicator"] == "hurst_dfa") & (values["timeframe"] == "1m")]
    assert len(hurst) == 4


def test_batch_metrics_cover_the_newest_full_micro_batch(built: Config, store: HotStore) -> None:
    ticks = cold_frame(built, "BTCUSDT", "ticks").sort_values("seq")
    full = len(ticks) // 1000 * 1000
    block = ticks.iloc[full - 1000:full]
    live = store.read_indicator("BTCUSDT", "kyle_lambda", "1000t")
    assert live["ts"] == block["ts"].iloc[-1] and live["meta"]["tick_count"] == 1000
    quotes = cold_frame(built, "BTCUSDT", "quotes").sort_values("seq")
    start, end = int(block["ts"].iloc[0]), int(block["ts"].iloc[-1])
    in_block = pd.concat([quotes[quotes["ts"] < start].tail(1), quotes[(quotes["ts"] >= start) & (quotes["ts"] <= end)]])
    vpin_value = store.read_indicator("BTCUSDT", "vpin", "1000t")["value"]
    batch = window_metrics(records(block, TICK_DTYPE), records(in_block, QUOTE_DTYPE), start, end, vpin_value)
    for name in INDICATORS:
        got = store.read_indicator("BTCUSDT", name, "1000t")["value"]
        assert got == pytest.approx(getattr(batch, name), rel=1e-12, nan_ok=True), name
