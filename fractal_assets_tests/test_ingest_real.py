"""Every shared real file through `fractal ingest` into a real Redis, counts equal to the file."""

from __future__ import annotations

import numpy as np
import pytest

from fractal_assets.cli import source_id
from fractal_assets.config import Config
from fractal_assets.hot.store import HotStore
from fractal_assets_tests.support import run_ingest, shared_file

CASES = [
    ("tardis_binance_futures_btcusdt_20200222/trades.csv.gz", "BTCUSDT", 9_999, 5_267),
    ("hftbacktest_binance_spot_feed_20240808/btcusdt_20240808.gz", "BTCUSDT", 9_757, 4_103),
    ("hftbacktest_binance_spot_feed_20240808/ethusdt_20240808.gz", "ETHUSDT", 6_106, 3_231),
    ("freqtrade_binance_xrpeth_trades_20191011/XRP_ETH-trades.json.gz", "XRP_ETH", 12_477, 6_524),
    ("databento_glbx_esh4_mbo_20231225/esh4-glbx-mdp3-20231225.mbo.dbn.zst", "ESH4", 2_973, None),
]


@pytest.mark.parametrize(("relative", "symbol", "trades", "buys"), CASES, ids=[c[1] + ":" + c[0].split("_")[0] for c in CASES])
def test_real_file_ingests_every_trade_exactly_once(
    config: Config, store: HotStore, relative: str, symbol: str, trades: int, buys: int | None, capsys
) -> None:
    path = shared_file(relative)
    assert run_ingest(config, path) == 0
    ticks = store.read_ticks(symbol).ticks
    assert len(ticks) == trades
    assert f"accepted {trades} ticks" in capsys.readouterr().out
    if buys is not None:
        assert int((ticks["side"] == 1).sum()) == buys
    assert np.isin(ticks["side"], [1, -1]).all()
    assert store.rejected_counts(source_id(path)) == {}
    run_ingest(config, path)
    assert len(store.read_ticks(symbol).ticks) == trades, "a second run of the same file adds nothing"


def test_databento_trade_without_aggressor_gets_the_tick_rule(config: Config, store: HotStore) -> None:
    run_ingest(config, shared_file(CASES[4][0]))
    ticks = store.read_ticks("ESH4").ticks
    assert int((ticks["side"] == 1).sum()) in (1_542, 1_543)
    assert int((ticks["side"] == -1).sum()) in (1_430, 1_431)


def test_binance_books_and_quotes_reach_the_hot_tier(config: Config, store: HotStore) -> None:
    run_ingest(config, shared_file(CASES[1][0]))
    books = store.read_books("BTCUSDT")
    assert len(books) > 3_000
    ts = [b["ts"] for b in books]
    assert ts == sorted(ts) and min(np.diff(ts)) >= 100
    for book in books[::250]:
        bids, asks = np.array(book["bids"]), np.array(book["asks"])
        assert len(bids) == len(asks) == 10
        assert (np.diff(bids[:, 0]) < 0).all() and (np.diff(asks[:, 0]) > 0).all() and bids[0, 0] < asks[0, 0]
    spread = store.read_indicator("BTCUSDT", "bid_ask_spread", "5m")
    assert spread is not None and 0 < spread["value"] < 10
    assert spread["meta"]["quote_count"] > 0 and not spread["meta"]["spread_estimated"]
    run_ingest(config, shared_file(CASES[1][0]))
    assert len(store.read_books("BTCUSDT")) == len(books), "books are not written twice on a rerun"
