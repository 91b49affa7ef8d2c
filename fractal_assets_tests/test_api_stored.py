"""The public API for order-book snapshots and backtest results, on a real Redis and SQLite."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from fractal_assets.api import get_order_books, load_backtest_result, save_backtest_result
from fractal_assets.config import Config
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor

START_MS = 1_717_200_000_000


def test_order_books_between_two_times_in_every_time_form(config: Config, store: HotStore) -> None:
    spec = SimulatorSpec(symbols=("OBK",), rate=50, duration_s=20, start_ms=START_MS, seed=4)
    Ingestor(config, store, "sim:books").run(simulate(spec))
    every = store.read_books("OBK")
    assert len(every) > 50
    t0, t1 = every[10]["ts"], every[40]["ts"]
    books = get_order_books("obk", t0, t1, config=config)
    assert books == [b for b in every if t0 <= b["ts"] < t1]
    assert books[0]["ts"] == t0 and books[-1]["ts"] < t1, "start is inclusive, end exclusive"
    assert all(b["bids"][0][0] < b["asks"][0][0] for b in books)
    iso = datetime.fromtimestamp(t0 / 1000, timezone.utc).isoformat().replace("+00:00", "Z")
    naive = datetime.fromtimestamp(t1 / 1000, timezone.utc).replace(tzinfo=None)
    assert get_order_books("OBK", iso, naive, config=config) == books
    assert get_order_books("OBK", t1, t1, config=config) == []
    with pytest.raises(ValueError, match="before start"):
        get_order_books("OBK", t1, t0, config=config)
    with pytest.raises(ValueError, match="not an ISO-8601 time"):
        get_order_books("OBK", "yesterday", t1, config=config)


def test_backtest_results_are_keyed_by_their_parameters(config: Config) -> None:
    params = {"strategy": "breakout", "symbols": ["AAA", "BBB"], "lookback": 20, "fee": 0.0005}
    assert load_backtest_result(params, config=config) is None
    assert not config.warm_db.exists(), "a lookup never creates the warm database"
    key = save_backtest_result(params, b"result-1", config=config)
    same_params_reordered = {"fee": 0.0005, "lookback": 20, "symbols": ["AAA", "BBB"], "strategy": "breakout"}
    stored = load_backtest_result(same_params_reordered, config=config)
    assert stored is not None and stored.key == key and stored.result == b"result-1" and stored.params == params
    assert load_backtest_result({**params, "lookback": 21}, config=config) is None
    assert save_backtest_result(params, b"result-2", config=config) == key
    assert load_backtest_result(params, config=config).result == b"result-2", "a new run replaces the old result"
    with pytest.raises(ValueError, match="bytes"):
        save_backtest_result(params, "not bytes", config=config)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON-serializable"):
        save_backtest_result({"when": datetime.now()}, b"x", config=config)
