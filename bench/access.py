"""The access layer: ``get_backtest_data`` beside a raw DuckDB read of the same Parquet file
and beside ArcticDB's and polars' reads of the same ticks, the latency of a cache hit, and the
cold tier's bytes per tick on the shared real data."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import bench_config, best_of, synthetic_ticks
from fractal_assets.access.reads import SETTLE_S, get_backtest_data, hot_store
from fractal_assets.cold.parquet import TICK_SCHEMA, ZSTD_LEVEL, read_partition, write_ticks
from fractal_assets.cold.store import open_cold
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.ingest.bulk_import import IMPORT_SEQ_ORIGIN, import_history
from fractal_assets.market.bars import compute_bars
from fractal_assets.market.calendar import DAY_MS
from fractal_assets.warm.bars import replace_bars
from fractal_assets.warm.db import connect
from fractal_assets.warm.schema import migrate

TICKS = 2_000_000
SYMBOL = "AAA"
DAY = "2023-11-15"
"""The UTC day ``synthetic_ticks`` fills."""
CACHE_HITS = 300
ROUNDS = 9
PEER_DAYS = (1, 10)
"""Day counts of the reads compared with the peers; each day holds ``TICKS`` ticks."""
PEER_SYMBOL = "PEER"
PEER_SCRIPT = Path(__file__).with_name("peers.py")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_TRADES = {
    "tardis": "tardis_binance_futures_btcusdt_20200222/trades.csv.gz",
    "freqtrade": "freqtrade_binance_xrpeth_trades_20191011/XRP_ETH-trades.json.gz",
    "binance": "hftbacktest_binance_spot_feed_20240808/btcusdt_20240808.gz",
    "binance_eth": "hftbacktest_binance_spot_feed_20240808/ethusdt_20240808.gz",
}
BSS_ENCODINGS = {"ts": "DELTA_BINARY_PACKED", "seq": "DELTA_BINARY_PACKED",
                 "price": "BYTE_STREAM_SPLIT", "volume": "BYTE_STREAM_SPLIT"}
"""The first tick encodings (float64 columns), for comparison on the same rows."""

RAW_SQL = "SELECT ts, price, volume, side, seq FROM read_parquet($files, hive_partitioning = false)"


def read_rates(config: Config, path: Path) -> dict[str, float]:
    """Rows/s of get_backtest_data (cache off) and of a plain DuckDB read of the same file into
    pandas, alternated so that both see the same machine load; best of ``ROUNDS`` each."""
    con = duckdb.connect()
    raw = ours = float("inf")
    for _ in range(ROUNDS):
        raw = min(raw, best_of(1, lambda: con.sql(RAW_SQL, params={"files": [str(path)]}).df()))
        ours = min(ours, best_of(1, lambda: get_backtest_data(SYMBOL, DAY, DAY, config=config, use_cache=False)))
    return {"get_backtest_data_rows_per_s": TICKS / ours, "raw_duckdb_rows_per_s": TICKS / raw,
            "get_backtest_data_pct_of_raw": 100 * raw / ours}


def write_days(config: Config, days: int) -> None:
    """``days`` consecutive days of ``TICKS`` ticks of ``PEER_SYMBOL`` in the cold tier, from
    ``DAY`` on."""
    for d in range(days):
        ticks = synthetic_ticks(TICKS, symbols=(PEER_SYMBOL,), seed=d)
        table = pa.table({"ts": ticks.ts + d * DAY_MS, "price": ticks.price, "volume": ticks.volume,
                          "side": ticks.side, "seq": np.arange(d * TICKS, (d + 1) * TICKS, dtype=np.int64)})
        write_ticks(config.cold, PEER_SYMBOL, str(np.datetime64(DAY) + d), table)


class Peers:
    """The peer process (bench/peers.py in ``FRACTAL_PEER_PYTHON``) holding the same ticks."""

    def __init__(self, python: str, ticks: pd.DataFrame, tmp: str) -> None:
        path = Path(tmp) / "peer-ticks.parquet"
        pq.write_table(pa.Table.from_pandas(ticks, preserve_index=False), path)
        self.process = subprocess.Popen([python, str(PEER_SCRIPT), str(path)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{PEER_SCRIPT.name} did not start (exit {self.process.wait()})")

    def read_s(self, peer: str) -> float:
        self.process.stdin.write(peer + "\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def peer_rates(config: Config) -> dict[str, float]:
    """Rows/s of ``get_backtest_data`` ticks (cache off, and through the cache), ArcticDB's
    ``lib.read`` and polars ``scan_parquet`` of the same ticks, for 1 and 10 days; the rounds
    alternate so that every reader sees the same machine load, best of ``ROUNDS`` each."""
    python = os.environ.get("FRACTAL_PEER_PYTHON")
    if not python:
        print("note: FRACTAL_PEER_PYTHON unset (make bench sets it), no ArcticDB/polars figures", file=sys.stderr)
        return {}
    out: dict[str, float] = {}
    write_days(config, max(PEER_DAYS))
    for days in PEER_DAYS:
        end = str(np.datetime64(DAY) + days - 1)
        ticks = get_backtest_data(PEER_SYMBOL, DAY, end, config=config, use_cache=False)
        with tempfile.TemporaryDirectory(prefix="fractal-bench-peers-") as tmp:
            peers = Peers(python, ticks, tmp)
            del ticks
            best = dict.fromkeys(("ours", "cached", "arcticdb", "polars"), float("inf"))
            try:
                for _ in range(ROUNDS):
                    best["arcticdb"] = min(best["arcticdb"], peers.read_s("arcticdb"))
                    best["ours"] = min(best["ours"], best_of(1, lambda: get_backtest_data(
                        PEER_SYMBOL, DAY, end, config=config, use_cache=False)))
                    best["polars"] = min(best["polars"], peers.read_s("polars"))
                    best["cached"] = min(best["cached"], best_of(1, lambda: get_backtest_data(
                        PEER_SYMBOL, DAY, end, config=config)))
            finally:
                peers.close()
        rows = days * TICKS
        out |= {f"ticks_{days}d_get_backtest_data_rows_per_s": rows / best["ours"],
                f"ticks_{days}d_get_backtest_data_cached_rows_per_s": rows / best["cached"],
                f"ticks_{days}d_arcticdb_read_rows_per_s": rows / best["arcticdb"],
                f"ticks_{days}d_polars_scan_rows_per_s": rows / best["polars"],
                f"ticks_{days}d_ratio_to_arcticdb": best["arcticdb"] / best["ours"]}
    return out


def cache_hit_latency(config: Config, ticks: pd.DataFrame) -> dict[str, float]:
    """Median and 99th-percentile wall time of a cache hit for one day of 1m bars (1,440 rows)."""
    bars = compute_bars(*(ticks[c].to_numpy() for c in ("ts", "price", "volume", "side")), "1m")
    conn = connect(config.warm_db)
    migrate(conn)
    start = int(np.datetime64(DAY, "ms").astype(np.int64))
    replace_bars(conn, SYMBOL, "1m", start, start + DAY_MS, bars)
    conn.close()
    time.sleep(SETTLE_S + 0.1)
    get_backtest_data(SYMBOL, DAY, DAY, "bars", "1m", config=config)
    times = []
    for _ in range(CACHE_HITS):
        began = time.perf_counter()
        get_backtest_data(SYMBOL, DAY, DAY, "bars", "1m", config=config)
        times.append(time.perf_counter() - began)
    store = hot_store(config)
    entry = store.client.strlen(store.keys.backtest(SYMBOL, DAY, DAY, "bars", "1m"))
    hits = int(store.client.hget(store.keys.cache_stats(), "hit") or 0)
    assert hits == CACHE_HITS, f"expected {CACHE_HITS} cache hits, got {hits}"
    return {"cache_hit_1m_day_median_ms": 1000 * float(np.median(times)),
            "cache_hit_1m_day_p99_ms": 1000 * float(np.percentile(times, 99)),
            "cache_entry_bytes": float(entry), "cache_entry_rows": float(len(bars))}


def _size(tables: list[pa.Table], encodings: dict[str, str] | None) -> int:
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, table in enumerate(tables):
            path = Path(tmp) / f"{i}.parquet"
            pq.write_table(table, path, compression="zstd", compression_level=ZSTD_LEVEL, use_dictionary=False,
                           column_encoding=encodings)
            total += path.stat().st_size
    return total


def real_bytes_per_tick() -> dict[str, float]:
    """Each real trade file imported (``fractal import``'s code path) into a fresh cold tier;
    bytes of its Parquet partitions per tick, and the same rows with the old encodings."""
    out: dict[str, float] = {}
    all_rows = all_bytes = all_old = 0
    for name, relative in REAL_TRADES.items():
        source = SHARED / relative
        if not source.exists():
            print(f"note: {source} absent, no bytes/tick figure for {name}", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cold = open_cold(tmp)
            import_history(open_feed(source), cold, IMPORT_SEQ_ORIGIN, 5_000)
            parts = sorted(Path(tmp).glob("ticks/*/*/part-*.parquet"))
            tables = [read_partition(cold, str(d), TICK_SCHEMA) for d in sorted({p.parent for p in parts})]
            rows, size = sum(t.num_rows for t in tables), sum(p.stat().st_size for p in parts)
        out[f"cold_bytes_per_tick_{name}"] = size / rows
        all_rows, all_bytes, all_old = all_rows + rows, all_bytes + size, all_old + _size(tables, BSS_ENCODINGS)
    if all_rows:
        out["cold_bytes_per_tick_real_all"] = all_bytes / all_rows
        out["cold_bytes_per_tick_real_all_old_encodings"] = all_old / all_rows
    return out


def run() -> dict[str, float]:
    ticks = synthetic_ticks(TICKS, symbols=(SYMBOL,))
    table = pa.table({"ts": ticks.ts, "price": ticks.price, "volume": ticks.volume, "side": ticks.side,
                      "seq": np.arange(TICKS, dtype=np.int64)})
    with bench_config() as config:
        path = Path(write_ticks(config.cold, SYMBOL, DAY, table))
        figures = read_rates(config, path)
        figures["cold_bytes_per_tick_synthetic"] = path.stat().st_size / TICKS
        figures.update(cache_hit_latency(config, ticks))
        figures.update(peer_rates(config))
    figures.update(real_bytes_per_tick())
    return figures
