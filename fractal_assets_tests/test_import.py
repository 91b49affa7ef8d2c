"""fractal import carries everything ingest does: trades, quotes and order-book snapshots, through
the same validation, into the cold tier's layout; its days get quoted spreads, not estimated ones."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fractal_assets.access.reads import get_backtest_data
from fractal_assets.api import get_order_books
from fractal_assets.cold.compaction import compact_all
from fractal_assets.cold.parquet import read_quotes, read_ticks, tick_partition
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest import bulk_import
from fractal_assets.market.calendar import date_of
from fractal_assets_tests.support import shared_file

pytestmark = pytest.mark.realdata

BTCUSDT = "hftbacktest_binance_spot_feed_20240808/btcusdt_20240808.gz"
TARDIS_QUOTES = "tardis_binance_futures_btcusdt_20200222/quotes.csv.gz"


def feed_contents(path: Path) -> tuple[list[tuple[int, float, float]], list]:
    """The quotes (ts, bid, ask) and books a file's feed yields, read directly."""
    quotes, books = [], []
    for chunk in open_feed(path):
        if chunk.quotes is not None:
            quotes += list(zip(chunk.quotes.ts.tolist(), chunk.quotes.bid.tolist(), chunk.quotes.ask.tolist()))
        books += chunk.books
    return quotes, books


@pytest.mark.parametrize(("relative", "symbol"), [(BTCUSDT, "BTCUSDT"), (TARDIS_QUOTES, "BTCUSDT")])
def test_import_stores_quotes_and_books_beside_the_ticks(config: Config, fractal, relative: str, symbol: str) -> None:
    path = shared_file(relative)
    quotes, books = feed_contents(path)
    run = fractal("import", "--source", str(path))
    assert run.code == 0 and f"order-book snapshots {len(books)}, quotes {len(quotes)}" in run.out
    dates = sorted({date_of(ts) for ts, _, _ in quotes})
    stored = [row for date in dates for row in read_quotes(config.cold, symbol, date).to_pylist()]
    assert sorted((q["ts"], q["bid"], q["ask"]) for q in stored) == sorted(quotes)
    got = get_order_books(symbol, min(b.ts for b in books), max(b.ts for b in books) + 1, config=config)
    assert [b["ts"] for b in got] == sorted(b.ts for b in books)
    by_ts = {b.ts: b for b in books}
    for book in got[:: max(1, len(got) // 50)]:
        assert book["bids"] == by_ts[book["ts"]].bids.tolist() and book["asks"] == by_ts[book["ts"]].asks.tolist()


def test_ingest_after_import_adds_no_quote_or_book(config: Config, store: HotStore, fractal) -> None:
    path = shared_file(BTCUSDT)
    assert fractal("import", "--source", str(path)).code == 0
    run = fractal("ingest", "--source", str(path))
    assert run.code == 0 and "order-book snapshots 0, quotes 0" in run.out
    assert store.read_books("BTCUSDT") == [] and len(store.read_stream("BTCUSDT", "quotes").records) == 0


def test_imported_days_get_quoted_spreads(config: Config, fractal) -> None:
    assert fractal("import", "--source", str(shared_file(BTCUSDT))).code == 0
    assert fractal("materialize", "--symbol", "BTCUSDT", "--start", "2024-08-08", "--end", "2024-08-08").code == 0
    with sqlite3.connect(config.warm_db) as conn:
        rows = conn.execute("SELECT spread_estimated, bid_ask_spread FROM fractal_microstructure "
                            "WHERE symbol = 'BTCUSDT' AND window_ms = 86400000").fetchall()
    assert rows and all(estimated == 0 for estimated, _ in rows)
    assert all(0 < spread < 10 for _, spread in rows) and np.isfinite([s for _, s in rows]).all()


def test_a_partition_imported_in_parts_reads_once_and_the_compaction_merges_it(
    config: Config, store: HotStore, fractal, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(bulk_import, "PART_ROWS", 1_000)
    history = tmp_path / "history.csv"
    start = 1_699_920_000_000
    rows = [f"{start + i * 10},PARTS,{100 + (i % 7) / 100},1.5,1\n" for i in range(4_500)]
    history.write_text("ts,symbol,price,volume,side\n" + "".join(rows))
    assert fractal("import", "--source", str(history), "--chunk-rows", "1000").code == 0
    directory = Path(tick_partition(config.cold, "PARTS", "2023-11-14"))
    assert sorted(p.name for p in directory.iterdir()) == [f"part-{n}.parquet" for n in range(5)]
    expected = [start + i * 10 for i in range(4_500)]
    assert read_ticks(config.cold, "PARTS", "2023-11-14").column("ts").to_pylist() == expected
    assert get_backtest_data("PARTS", "2023-11-14", "2023-11-14", config=config, use_cache=False)["ts"].tolist() == expected
    live = tmp_path / "live.csv"
    live.write_text(f"ts,symbol,price,volume,side\n{start + 50_000},PARTS,101,2,-1\n")
    assert fractal("ingest", "--source", str(live)).code == 0
    assert fractal("materialize", "--symbol", "PARTS").code == 0
    assert read_ticks(config.cold, "PARTS", "2023-11-14").column("ts").to_pylist() == [*expected, start + 50_000]
    compact_all(config.cold)
    assert sorted(p.name for p in directory.iterdir()) == ["part-0.parquet"]
    merged = pq.read_table(directory / "part-0.parquet")
    assert merged.column("ts").to_pylist() == [*expected, start + 50_000]


def test_importing_a_plain_file_does_not_load_pandas(config: Config, tmp_path: Path) -> None:
    """pyarrow loads pandas (a quarter of a second) on its first to_numpy; the import path moves
    columns through their buffers instead (market/arrays.py), which bench/importing.py counts on."""
    path = tmp_path / "plain.csv"
    path.write_text("ts,symbol,price,volume,side\n" + "".join(
        f"{1_700_000_000_000 + i},PLAIN,{100 + i % 9},1.25,{1 if i % 2 else -1}\n" for i in range(2_000)))
    script = ("import sys; from fractal_assets.cli import main; "
              f"code = main(['--data-dir', {str(config.data_dir)!r}, 'import', '--source', {str(path)!r}]); "
              "print(code, 'pandas' in sys.modules)")
    env = {**os.environ, "FRACTAL_REDIS_URL": config.redis_url, "FRACTAL_KEY_PREFIX": config.key_prefix}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "0 False"
