"""Live bars: the ingest process writes each closed 1m-1h bar of the open day, equal to the day's rebuild."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fractal_assets.cold.archive import archive_day
from fractal_assets.cold.parquet import read_ticks
from fractal_assets.config import Config
from fractal_assets.hot.store import HotStore
from fractal_assets.indicators.fractals import williams_fractals
from fractal_assets.ingest.live_bars import LIVE_TIMEFRAMES
from fractal_assets.market.bars import TIMEFRAMES, compute_bars
from fractal_assets.market.calendar import SymbolDay, date_of
from fractal_assets.warm.bars import read_bars
from fractal_assets.warm.db import connect
from fractal_assets_tests.support import ingest_file, shared_file

REAL = {
    "BTCUSDT": "tardis_binance_futures_btcusdt_20200222/trades.csv.gz",
    "XRP_ETH": "freqtrade_binance_xrpeth_trades_20191011/XRP_ETH-trades.json.gz",
}


def live_rows(config: Config, symbol: str, timeframe: str) -> pd.DataFrame:
    conn = connect(config.warm_db)
    try:
        return read_bars(conn, symbol, timeframe, 0, 2**62)
    finally:
        conn.close()


def rebuilt(config: Config, store: HotStore, symbol: str, timeframe: str) -> pd.DataFrame:
    """What the day's bars step writes: ``compute_bars`` over the archived ticks of each day."""
    hot = store.read_ticks(symbol).ticks["ts"]
    days = [str(d) for d in np.arange(np.datetime64(date_of(int(hot.min()))), np.datetime64(date_of(int(hot.max()))) + 1)]
    frames = []
    for day in days:
        archive_day(store, config.cold, SymbolDay(symbol, day), keep_ms=10**12)
        ticks = read_ticks(config.cold, symbol, day)
        frames.append(compute_bars(*(ticks.column(c).to_numpy() for c in ("ts", "price", "volume", "side")), timeframe))
    return pd.concat(frames, ignore_index=True)


def closed_through(config: Config, store: HotStore, symbol: str) -> int:
    return int(store.client.hget(store.keys.checkpoint(symbol), "max_ts")) - config.ts_tolerance_ms


@pytest.mark.realdata
@pytest.mark.parametrize("symbol", sorted(REAL))
def test_live_bars_equal_the_rebuild_on_real_data(config: Config, store: HotStore, symbol: str) -> None:
    report = ingest_file(config, store, shared_file(REAL[symbol]))
    assert report.accepted[symbol] > 0
    through = closed_through(config, store, symbol)
    assert store.live_bars_through(symbol) == through - through % 60_000
    for timeframe in LIVE_TIMEFRAMES:
        live = live_rows(config, symbol, timeframe)
        want = rebuilt(config, store, symbol, timeframe)
        want = want[want.timestamp + TIMEFRAMES[timeframe] <= through].reset_index(drop=True)
        assert len(live) > 0
        pd.testing.assert_frame_equal(live, want, check_exact=True, check_dtype=False)


def market(start: int, n: int, seed: int) -> pd.DataFrame:
    """n ticks over three hours from ``start``, some out of order within the tolerance."""
    rng = np.random.default_rng(seed)
    ts = start + np.sort(rng.integers(0, 3 * 3_600_000, n))
    ts = ts - rng.integers(0, 3_000, n) * (rng.random(n) < 0.1)
    return pd.DataFrame({
        "symbol": "LIVE", "ts": ts,
        "price": np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2),
        "volume": np.round(rng.exponential(1.0, n), 3),
        "side": rng.choice(np.array([1, -1], dtype=np.int8), n),
    })


def test_a_restart_resumes_the_open_buckets_from_the_hot_tier(config: Config, store: HotStore, tmp_path: Path) -> None:
    config = replace(config, batch_size=50)
    ticks = market(1_709_251_200_000, 6_000, seed=3)
    for i, part in enumerate((ticks.iloc[:2_500], ticks.iloc[2_500:])):
        part.to_parquet(tmp_path / f"part{i}.parquet")
        assert ingest_file(config, store, tmp_path / f"part{i}.parquet").total_rejected == 0
    through = closed_through(config, store, "LIVE")
    for timeframe in LIVE_TIMEFRAMES:
        want = rebuilt(config, store, "LIVE", timeframe)
        want = want[want.timestamp + TIMEFRAMES[timeframe] <= through].reset_index(drop=True)
        pd.testing.assert_frame_equal(live_rows(config, "LIVE", timeframe), want, check_exact=True, check_dtype=False)
        assert live_rows(config, "LIVE", timeframe).tick_count.sum() == (ticks.ts < through - through % TIMEFRAMES[timeframe]).sum()


def test_realtime_williams_fractal_follows_each_closed_5m_bar(config: Config, store: HotStore, tmp_path: Path) -> None:
    ticks = market(1_709_251_200_000, 6_000, seed=5)
    ticks.to_parquet(tmp_path / "ticks.parquet")
    ingest_file(config, store, tmp_path / "ticks.parquet")
    bars = live_rows(config, "LIVE", "5m")
    doc = store.read_indicator("LIVE", "williams_fractal", "5m")
    assert doc["ts"] == int(bars.timestamp.iloc[-1]) + TIMEFRAMES["5m"]
    up, down = williams_fractals(bars.high.to_numpy(), bars.low.to_numpy(), n=2)
    assert doc["value"] == (1 if up[-3] else -1 if down[-3] else 0)
    assert doc["meta"]["bar_ts"] == int(bars.timestamp.iloc[-3])
    newest_up = np.flatnonzero(up[-100:])[-1] + len(bars) - min(100, len(bars))
    assert doc["meta"]["up"] == {"ts": int(bars.timestamp.iloc[newest_up]), "value": float(bars.high.iloc[newest_up])}
