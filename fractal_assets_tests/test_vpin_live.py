"""Real-time VPIN: the ingest process carries the standard buckets across micro-batches,
midnight and restarts, sized by the daily volumes of the warm tier, and publishes the same
value as the day-by-day chain over the same ticks."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from fractal_assets.config import Config
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot.store import HotStore
from fractal_assets.indicators.vpin import vpin_span
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.ingest.live_vpin import RETRY_MS, LiveVpin, warm_history
from fractal_assets.market.calendar import DAY_MS, day_start_ms
from fractal_assets.market.ticks import to_ticks
from fractal_assets.warm.bars import replace_bars
from fractal_assets.warm.db import connect
from fractal_assets.warm.schema import migrate
from fractal_assets.warm.vpin_state import write_vpin_state
from fractal_assets_tests.test_vpin import daily_bars

DAY = day_start_ms("2024-08-09")
SYMBOL = "BTCUSDT"


def store_daily_volumes(config: Config, symbol: str, volumes: dict[int, float]) -> None:
    conn = connect(config.warm_db)
    migrate(conn)
    replace_bars(conn, symbol, "1d", min(volumes), max(volumes) + DAY_MS, daily_bars(volumes))
    conn.close()


def ticks_at(ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return to_ticks(ts, np.full(len(ts), 100.0), rng.integers(1, 5, len(ts)).astype(float),
                    rng.choice(np.array([-1, 1], dtype=np.int8), len(ts)))


def test_buckets_cross_midnight_sized_by_the_warm_tier_and_the_day_fed(config: Config) -> None:
    store_daily_volumes(config, "AAA", {DAY - 3 * DAY_MS: 300.0, DAY - 2 * DAY_MS: 200.0})
    rng = np.random.default_rng(1)
    before = ticks_at(np.sort(rng.integers(DAY - DAY_MS, DAY, 400)), rng)
    after = ticks_at(np.sort(rng.integers(DAY, DAY + 600_000, 300)), rng)
    late = after.copy()
    late["ts"][5] = DAY - 1  # stamped before midnight, arriving after it: it joins the new day
    live = LiveVpin(warm_history(config, "AAA"), config.vpin_days, None, fed_from=DAY - DAY_MS)
    for block in np.array_split(np.concatenate((before, late)), 9):
        reading = live.feed(block)
    fed_before = float(before["volume"].sum())
    # the day before midnight: V = (300 + 200) / 2 / 50 = 5; after it the day just fed counts too
    expected_size = (300 + 200 + fed_before) / 3 / 50
    first = vpin_span(before["volume"], before["side"], 5.0)
    second = vpin_span(late["volume"], late["side"], expected_size, first.state)
    assert reading.meta["bucket_volume"] == pytest.approx(expected_size, rel=1e-12)
    assert reading.meta["vpin_days"] == 3
    assert len(first.bucket_imbalance) + len(second.bucket_imbalance) > 50
    assert reading.value == pytest.approx(second.value, abs=1e-10)
    assert reading.meta["vpin_buckets"] == 50 and "reason" not in reading.meta


def test_without_history_vpin_is_nan_with_a_reason_until_the_day_before_is_stored(config: Config) -> None:
    rng = np.random.default_rng(2)
    live = LiveVpin(warm_history(config, "AAA"), config.vpin_days, None, fed_from=DAY)
    reading = live.feed(ticks_at(np.arange(DAY, DAY + 1_000, 10), rng))
    assert math.isnan(reading.value)
    assert reading.meta["reason"] == "no daily volume before 2024-08-09 in the warm tier to size the buckets"
    store_daily_volumes(config, "AAA", {DAY - DAY_MS: 5_000.0})  # the bars asset has run for the day before
    reading = live.feed(ticks_at(np.arange(DAY + 1_000, DAY + RETRY_MS, 10), rng))
    assert math.isnan(reading.meta["bucket_volume"]), "asked again only after RETRY_MS of event time"
    reading = live.feed(ticks_at(np.arange(DAY + RETRY_MS, DAY + RETRY_MS + 2_000, 10), rng))
    assert reading.meta["bucket_volume"] == 100.0  # 5000 / 50: a few buckets of the 200 ticks' ~500
    assert reading.meta["reason"] == f"{reading.meta['vpin_buckets']} of 50 buckets complete"
    assert 0 < reading.meta["vpin_buckets"] < 50


def ingest(config: Config, store: HotStore, source: str, start_ms: int, seconds: int, seed: int) -> None:
    """Simulated trades through ingest, the ``ind:`` values refreshed after every commit."""
    spec = SimulatorSpec(symbols=(SYMBOL,), rate=40, duration_s=seconds, start_ms=start_ms, seed=seed)
    every_commit = replace(config, indicator_every=1)
    assert Ingestor(every_commit, store, source).run(simulate(spec)).total_rejected == 0


def stored_ticks(store: HotStore) -> np.ndarray:
    hot = store.read_ticks(SYMBOL)
    return hot.ticks[np.argsort(hot.seq, kind="stable")]


def test_ingest_publishes_the_standard_vpin_across_midnight_and_a_restart(config: Config, store: HotStore) -> None:
    probe = np.concatenate([c.trades.volume for c in simulate(SimulatorSpec((SYMBOL,), 40, 120, DAY - 60_000, seed=0))
                            if c.trades is not None])
    daily = float(probe.sum())  # earlier days about as busy as two minutes of this market: ~50 buckets a minute
    store_daily_volumes(config, SYMBOL, {DAY - 3 * DAY_MS: daily, DAY - 2 * DAY_MS: daily})

    ingest(config, store, "sim:one", DAY - 60_000, 120, seed=0)
    ticks = stored_ticks(store)
    before = ticks[ticks["ts"] < DAY]
    after = ticks[ticks["ts"] >= DAY]
    first = vpin_span(before["volume"], before["side"], daily / 50)
    size = (2 * daily + float(before["volume"].sum())) / 3 / 50
    second = vpin_span(after["volume"], after["side"], size, first.state)
    live = store.read_indicator(SYMBOL, "vpin", "5m")
    assert live["meta"]["bucket_volume"] == pytest.approx(size, rel=1e-12)
    assert not math.isnan(second.value)
    assert live["value"] == pytest.approx(second.value, abs=1e-10)
    window = store.read_indicator(SYMBOL, "vpin_window", "5m")
    assert window["value"] != pytest.approx(live["value"], abs=1e-6), "the per-window variant is kept apart"

    # after midnight the assets store the day before: its daily bar and its buckets at its end
    conn = connect(config.warm_db)
    replace_bars(conn, SYMBOL, "1d", DAY - DAY_MS, DAY, daily_bars({DAY - DAY_MS: float(before["volume"].sum())}))
    write_vpin_state(conn, SYMBOL, DAY, first.state, daily / 50)
    conn.close()
    # a new ingest process restores the buckets from that state and the day's stored ticks
    ingest(config, store, "sim:two", DAY + 60_000, 60, seed=1)
    ticks = stored_ticks(store)
    today = ticks[ticks["ts"] >= DAY]
    expected = vpin_span(today["volume"], today["side"], size, first.state)
    live = store.read_indicator(SYMBOL, "vpin", "5m")
    assert live["value"] == pytest.approx(expected.value, abs=1e-10)
    assert live["meta"]["vpin_buckets"] == 50


def test_a_restart_without_a_stored_state_starts_the_buckets_at_its_day(config: Config, store: HotStore) -> None:
    store_daily_volumes(config, SYMBOL, {DAY - DAY_MS: 1e9})  # buckets far too large to fill in a minute
    ingest(config, store, "sim:one", DAY + 1_000, 30, seed=3)
    live = store.read_indicator(SYMBOL, "vpin", "5m")
    assert math.isnan(live["value"])
    assert live["meta"]["reason"] == ("0 of 50 buckets complete (buckets start at 2024-08-09: "
                                      "no state stored for the day before's end)")
