"""Limits on what a tick may hold: the symbol grammar, and sane bounds on price and volume
(FRACTAL_MAX_PRICE, FRACTAL_MAX_VOLUME); whatever is outside is rejected with its reason,
dead-lettered and counted. Real Redis, real files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fractal_assets.cli import main, source_id
from fractal_assets.cold.parquet import read_ticks
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.hot.connection import open_store
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.ingest.validation import BAD_QUOTE, BAD_SYMBOL, PRICE_OUT_OF_RANGE, VOLUME_OUT_OF_RANGE
from fractal_assets.market.symbols import InvalidSymbol, normalize_symbol
from fractal_assets.market.ticks import FeedChunk, RawQuotes

TS = 1_700_000_000_000


@pytest.mark.parametrize("symbol", ["BTCUSDT", "btc-perpetual", "ES.FUT", ".BXBT", "1000PEPEUSDT", "BRK.B",
                                    "_X_", "A" * 32, "BTC-29MAR24-60000-C"])
def test_real_symbols_follow_the_grammar(symbol: str) -> None:
    assert normalize_symbol(symbol) == symbol.upper()


@pytest.mark.parametrize("symbol", ["..", ".", "-" * 32, "--", "_", "._-", "-X", "-BTC", "A" * 33, "", "../x", "A/B"])
def test_dot_dash_only_and_dash_led_names_are_not_symbols(symbol: str) -> None:
    with pytest.raises(InvalidSymbol, match="must match the symbol grammar"):
        normalize_symbol(symbol)
    if symbol:
        with pytest.raises(InvalidSymbol):
            Keys().ticks(symbol)


def write_rows(path: Path, rows: list[tuple[str, float, float]]) -> None:
    """A generic CSV: one tick per (symbol, price, volume), a millisecond apart."""
    lines = [f"{TS + i},{symbol},{price!r},{volume!r},1" for i, (symbol, price, volume) in enumerate(rows)]
    path.write_text("ts,symbol,price,volume,side\n" + "\n".join(lines) + "\n")


ROWS = [
    ("LIM", 100.0, 1.0),
    ("..", 100.0, 1.0),
    ("-" * 32, 100.0, 1.0),
    ("LIM", 1e308, 1.0),
    ("LIM", 1.000001e12, 1.0),
    ("LIM", 1e12, 1.0),
    ("LIM", 100.0, 1e308),
    ("LIM", 100.0, 2e15),
    ("LIM", 100.0, 1e15),
    ("LIM", 0.0, 1.0),
]


def test_symbols_and_out_of_bound_values_are_rejected_with_their_reason(config: Config, store: HotStore, tmp_path: Path) -> None:
    path = tmp_path / "limits.csv"
    write_rows(path, ROWS)
    report = Ingestor(config, store, source_id(path)).run(open_feed(path))
    assert report.rejected == {BAD_SYMBOL: 2, PRICE_OUT_OF_RANGE: 2, VOLUME_OUT_OF_RANGE: 2, "bad_price": 1}
    stored = store.read_ticks("LIM").ticks
    assert stored["price"].tolist() == [100.0, 1e12, 100.0] and stored["volume"].tolist() == [1.0, 1.0, 1e15]
    assert store.symbols() == ["LIM"]
    letters = [{k.decode(): v.decode() for k, v in fields.items()}
               for _, fields in store.client.xrange(store.keys.dead_letter())]
    by_seq = {int(letter["seq"]): letter for letter in letters}
    assert [by_seq[i]["reason"] for i in (1, 2, 3, 4, 6, 7)] == [BAD_SYMBOL, BAD_SYMBOL, PRICE_OUT_OF_RANGE,
                                                              PRICE_OUT_OF_RANGE, VOLUME_OUT_OF_RANGE, VOLUME_OUT_OF_RANGE]
    assert by_seq[3]["detail"] == "price above 1e+12 (FRACTAL_MAX_PRICE)"
    assert by_seq[7]["detail"] == "volume above 1e+15 (FRACTAL_MAX_VOLUME)"
    assert store.rejected_counts(source_id(path)) == report.rejected


def test_the_bounds_are_settings_for_ingest_and_import(config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.csv"
    write_rows(path, [("BND", 50.0, 5.0), ("BND", 150.0, 5.0), ("BND", 50.0, 20.0)])
    for name, value in (("FRACTAL_REDIS_URL", config.redis_url), ("FRACTAL_KEY_PREFIX", config.key_prefix),
                        ("FRACTAL_MAX_PRICE", "100"), ("FRACTAL_MAX_VOLUME", "10")):
        monkeypatch.setenv(name, value)
    assert main(["--data-dir", str(config.data_dir), "ingest", "--source", str(path)]) == 0
    store = open_store(config)
    assert store.read_ticks("BND").ticks["price"].tolist() == [50.0]
    assert store.rejected_counts(source_id(path)) == {PRICE_OUT_OF_RANGE: 1, VOLUME_OUT_OF_RANGE: 1}

    imported = tmp_path / "history.csv"
    write_rows(imported, [("HIS", 50.0, 5.0), ("HIS", 150.0, 5.0)])
    assert main(["--data-dir", str(config.data_dir), "import", "--source", str(imported)]) == 0
    assert read_ticks(config.cold, "HIS", "2023-11-14")["price"].to_pylist() == [50.0]
    assert store.rejected_counts(source_id(imported)) == {PRICE_OUT_OF_RANGE: 1}


def test_quotes_above_the_price_bound_are_rejected(config: Config, store: HotStore) -> None:
    quotes = RawQuotes(
        seq=np.arange(3, dtype=np.int64), symbol=np.array(["QB"] * 3, dtype=object),
        ts=np.array([TS, TS + 1, TS + 2], dtype=np.int64), bid=np.array([10.0, 10.0, 10.0]),
        ask=np.array([11.0, 1e308, 200.0]), bid_size=np.ones(3), ask_size=np.ones(3),
    )
    report = Ingestor(replace(config, max_price=100.0), store, "test:quotes").run([FeedChunk(last_seq=2, quotes=quotes)])
    assert report.quotes == 1 and report.rejected == {BAD_QUOTE: 2}
