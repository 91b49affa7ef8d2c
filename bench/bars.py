"""Bar building from sorted ticks beside pandas resample and DuckDB on the same ticks,
and the SQLite upsert rate of the warm tier."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bench.common import best_of, synthetic_ticks
from fractal_assets.market.bars import compute_bars
from fractal_assets.warm.bars import replace_bars
from fractal_assets.warm.db import connect
from fractal_assets.warm.schema import migrate

TICKS = 10_000_000
UPSERT_ROWS = 500_000


def pandas_resample(frame: pd.DataFrame) -> pd.DataFrame:
    indexed = frame.set_index(pd.to_datetime(frame["ts"], unit="ms"))
    grouped = indexed.resample("1min")
    out = grouped["price"].ohlc()
    out["volume"] = grouped["volume"].sum()
    out["buy_volume"] = indexed["volume"].where(indexed["side"] > 0, 0.0).resample("1min").sum()
    out["tick_count"] = grouped["price"].count()
    out["vwap"] = (indexed["price"] * indexed["volume"]).resample("1min").sum() / out["volume"]
    return out[out["tick_count"] > 0]


DUCKDB_SQL = """
SELECT ts - ts % 60000 AS bucket, first(price ORDER BY ts) AS open, max(price) AS high, min(price) AS low,
       last(price ORDER BY ts) AS close, sum(volume) AS volume,
       sum(CASE WHEN side > 0 THEN volume ELSE 0 END) AS buy_volume, count(*) AS tick_count,
       sum(price * volume) / sum(volume) AS vwap
FROM ticks GROUP BY bucket ORDER BY bucket
"""


def upsert_rate() -> float:
    rows = np.arange(UPSERT_ROWS, dtype=np.int64)
    bars = pd.DataFrame({
        "timestamp": 1_600_000_000_000 + rows * 60_000, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5,
        "volume": 10.0, "buy_volume": 6.0, "sell_volume": 4.0, "tick_count": 7, "vwap": 1.2,
    })
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "warm.db")
        migrate(conn)
        seconds = best_of(3, lambda: replace_bars(conn, "BENCH", "1m", 0, 1 << 62, bars))
        conn.close()
    return UPSERT_ROWS / seconds


def run() -> dict[str, float]:
    frame = synthetic_ticks(TICKS, symbols=("AAA",))
    ts, price, volume, side = (frame[c].to_numpy() for c in ("ts", "price", "volume", "side"))
    ours = best_of(5, lambda: compute_bars(ts, price, volume, side, "1m"))
    pandas_s = best_of(2, lambda: pandas_resample(frame))
    con = duckdb.connect()
    con.register("ticks", frame)
    duck = best_of(2, lambda: con.execute(DUCKDB_SQL).fetchnumpy())
    return {
        "bars_1m_ticks_per_s": TICKS / ours,
        "pandas_resample_ticks_per_s": TICKS / pandas_s,
        "duckdb_ticks_per_s": TICKS / duck,
        "sqlite_upsert_rows_per_s": upsert_rate(),
    }
