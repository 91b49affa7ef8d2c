"""FRACTAL_WARM_DB inside a host application's database: only fractal_ objects are added."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from fractal_assets.access.reads import get_backtest_data
from fractal_assets.cli import source_id
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.warm.backtest_cache import get_result, put_result
from fractal_assets.warm.db import connect
from fractal_assets.warm.retention import prune_bars
from fractal_assets.warm.schema import MIGRATIONS
from fractal_assets_tests.support import run_cli

HOST_SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, since TEXT DEFAULT '2020-01-01');
CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, customer_id INTEGER REFERENCES customers (id),
                     amount REAL, receipt BLOB);
CREATE INDEX orders_by_customer ON orders (customer_id, amount DESC);
CREATE TABLE audit (order_id INTEGER, what TEXT);
CREATE TRIGGER orders_audit AFTER INSERT ON orders BEGIN INSERT INTO audit VALUES (new.id, 'created'); END;
CREATE VIEW big_orders AS SELECT c.name, o.amount FROM orders o JOIN customers c ON c.id = o.customer_id
                          WHERE o.amount > 100;
CREATE TABLE bars (symbol TEXT, timestamp INTEGER, close REAL, PRIMARY KEY (symbol, timestamp)) WITHOUT ROWID;
CREATE TABLE schema_version (version INTEGER);
INSERT INTO customers (name) VALUES ('ada'), ('grace'), ('o''neil');
INSERT INTO orders (customer_id, amount, receipt) VALUES (1, 12.5, x'00ff10'), (2, 250.0, NULL), (3, 101.25, x'');
INSERT INTO bars VALUES ('BTCUSDT', 1, 1.5), ('ETHUSDT', 2, 2.5);
INSERT INTO schema_version VALUES (7);
PRAGMA user_version = 42;
PRAGMA application_id = 424242;
"""

PRAGMAS = ("journal_mode", "user_version", "application_id", "page_size", "auto_vacuum", "encoding")


def host_state(path: Path) -> tuple[dict[str, object], list[tuple], bytes]:
    """PRAGMAs, sqlite_master rows and the full SQL dump of everything not named fractal_*."""
    conn = sqlite3.connect(path)
    try:
        ours = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'fractal\\_%' ESCAPE '\\'")}
        master = conn.execute(
            "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'fractal\\_%' ESCAPE '\\' ORDER BY type, name"
        ).fetchall()
        dump = "\n".join(line for line in conn.iterdump() if not any(name in line for name in ours))
        pragmas = {p: conn.execute(f"PRAGMA {p}").fetchone()[0] for p in PRAGMAS}
    finally:
        conn.close()
    return pragmas, master, dump.encode()


def cli_stdout(config: Config, *args: str) -> str:
    done = run_cli(config, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def ingest_a_day(config: Config, store: HotStore, path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    pd.DataFrame({
        "ts": 1_709_251_200_000 + np.sort(rng.integers(0, 86_400_000, n)),
        "symbol": "HOST",
        "price": np.round(50 + np.cumsum(rng.normal(0, 0.02, n)), 2),
        "volume": np.round(rng.exponential(1.0, n), 3),
        "side": rng.choice([1, -1], n),
    }).to_parquet(path)
    Ingestor(config, store, source_id(path)).run(open_feed(path))


def test_migrate_and_materialize_leave_every_host_object_and_row_untouched(
    config: Config, store: HotStore, tmp_path: Path
) -> None:
    host = tmp_path / "app" / "application.db"
    host.parent.mkdir()
    with sqlite3.connect(host) as conn:
        conn.executescript(HOST_SCHEMA)
    before = host_state(host)
    assert before[0]["journal_mode"] == "delete"
    config = replace(config, warm_db=host)

    versions = ", ".join(str(m.version) for m in MIGRATIONS)
    assert f"applied migrations {versions}" in cli_stdout(config, "migrate")
    assert f"up to date (version {MIGRATIONS[-1].version})" in cli_stdout(config, "migrate")
    ingest_a_day(config, store, tmp_path / "ticks.parquet")
    cli_stdout(config, "materialize")
    conn = connect(host)
    prune_bars(conn, config.cold, keep_days=0)
    put_result(conn, {"strategy": "sma", "symbol": "HOST"}, b"result bytes")
    assert get_result(conn, {"symbol": "HOST", "strategy": "sma"}).result == b"result bytes"
    conn.close()
    assert len(get_backtest_data("HOST", "2024-03-01", "2024-03-01", "bars", "1m", config=config)) > 0

    assert host_state(host) == before
    with sqlite3.connect(host) as conn:
        after = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
        assert conn.execute("SELECT COUNT(*) FROM fractal_bars").fetchone()[0] > 0
    existing = {(row[0], row[1]) for row in before[1]}
    added = [obj for obj in after if obj not in existing]
    assert added and all(name.startswith("fractal_") for _, name in added), added


def test_a_database_the_project_creates_uses_wal(tmp_path: Path) -> None:
    conn = connect(tmp_path / "own.db")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
