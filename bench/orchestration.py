"""What orchestration costs on top of the work: a backfill of 120 symbol-days of real ticks
(one shared real day replicated over 30 dates x 4 symbols by shifting its timestamps).

The work is ``pipeline.build.build_days`` called directly; the backfill is the same
computation through Dagster, as ``fractal materialize`` runs it (ranged in-process runs of
FRACTAL_DAYS_PER_RUN dates on a SQLite instance), each on a fresh warm DB over the same
cold tier. Also the fixed cost of one small run, and of a whole ``fractal materialize``
process over one 100-tick symbol-day: on a new Dagster instance (whose SQLite schemas it
creates first), then again on that instance.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pyarrow as pa

from bench.common import bench_config
from fractal_assets.cold.archive import stored_dates, stored_symbols
from fractal_assets.cold.parquet import read_ticks, write_ticks
from fractal_assets.cold.store import open_cold
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.hot.connection import open_store
from fractal_assets.ingest.bulk_import import import_history
from fractal_assets.market.calendar import DAY_MS, date_of, day_start_ms
from fractal_assets.pipeline.build import Sources, build_days
from fractal_assets.warm.db import connect
from fractal_assets.warm.schema import migrate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_DAYS = (
    "tardis_binance_futures_btcusdt_20200222/trades.csv.gz",
    "freqtrade_binance_xrpeth_trades_20191011/XRP_ETH-trades.json.gz",
)
"""Real trade files, in order of preference; the busiest symbol-day of the first present one is replicated."""
SYMBOLS = ("REPA", "REPB", "REPC", "REPD")
DAYS = 30
FIRST_DATE = "2024-01-01"
SMALL_TICKS = 100


def real_day() -> tuple[str, pa.Table] | None:
    """The busiest symbol-day of the first shared real file present, as stored ticks."""
    for relative in REAL_DAYS:
        source = SHARED / relative
        if not source.exists():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cold = open_cold(tmp)
            import_history(open_feed(source), cold, -(1 << 40), 5_000)
            days = [(s, d) for s in stored_symbols(cold) for d in stored_dates(cold, s)]
            tables = {day: read_ticks(cold, *day) for day in days}
        symbol, date = max(tables, key=lambda day: tables[day].num_rows)
        return f"{relative} {symbol} {date}", tables[(symbol, date)]
    return None


def replicate(config: Config, day: pa.Table, symbols: tuple[str, ...], days: int) -> list[str]:
    """The day written as every symbol's partition of ``days`` consecutive dates (as an import
    writes them); returns the dates."""
    ts = day.column("ts").to_numpy()
    offset0 = day_start_ms(FIRST_DATE) - day_start_ms(date_of(int(ts.min())))
    dates = []
    for k in range(days):
        shifted = day.set_column(0, "ts", pa.array(ts + offset0 + k * DAY_MS))
        date = date_of(int(ts.min()) + offset0 + k * DAY_MS)
        for symbol in symbols:
            write_ticks(config.cold, symbol, date, shifted)
        dates.append(date)
    return dates


def work_seconds(config: Config, dates: list[str]) -> float:
    """``build_days`` over the dates, directly, on a fresh warm DB."""
    conn = connect(config.warm_db)
    migrate(conn)
    try:
        started = time.perf_counter()
        build_days(Sources(open_store(config), config.cold, conn, config.retention_ms, config.ts_tolerance_ms,
                           config.vpin_days), dates)
        return time.perf_counter() - started
    finally:
        conn.close()


def dagster_seconds(config: Config, dates: list[str], home: Path) -> tuple[float, int, bool]:
    """The same dates through Dagster as ``fractal materialize`` runs them: (seconds, runs, all ok)."""
    from fractal_assets.defs.materialize import cli_instance, materialize_dates
    from fractal_assets.defs.resources import resources_for

    os.environ["DAGSTER_HOME"] = str(home)
    try:
        instance = cli_instance(config)
        started = time.perf_counter()
        outcomes = materialize_dates(dates, instance, resources_for(config))
        return time.perf_counter() - started, len(outcomes), all(o.success for o in outcomes)
    finally:
        del os.environ["DAGSTER_HOME"]


def cli_seconds(config: Config, day: pa.Table) -> float:
    """A whole ``fractal materialize`` process over one small symbol-day (imports included)."""
    write_ticks(config.cold, "SMALL", FIRST_DATE, replace_ts(day.slice(0, SMALL_TICKS)))
    env = {**os.environ, "FRACTAL_REDIS_URL": config.redis_url, "FRACTAL_KEY_PREFIX": config.key_prefix,
           "FRACTAL_WARM_DB": str(config.warm_db)}
    env.pop("DAGSTER_HOME", None)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(config.data_dir), "materialize"],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stdout + done.stderr)
    return time.perf_counter() - started


def replace_ts(table: pa.Table) -> pa.Table:
    """The ticks moved to FIRST_DATE, keeping their time of day."""
    ts = table.column("ts").to_numpy()
    return table.set_column(0, "ts", pa.array(day_start_ms(FIRST_DATE) + ts % DAY_MS))


def run() -> dict[str, float]:
    found = real_day()
    if found is None:
        print(f"note: no shared real trades under {SHARED} (see shared/data/SOURCES.md): orchestration skipped",
              file=sys.stderr)
        return {}
    name, day = found
    print(f"note: replicating {name} ({day.num_rows} ticks) over {DAYS} dates x {len(SYMBOLS)} symbols", file=sys.stderr)
    figures: dict[str, float] = {}
    with bench_config() as config:
        dates = replicate(config, day, SYMBOLS, DAYS)
        for date in dates:  # every partition read once, so neither side pays for a cold page cache
            for symbol in SYMBOLS:
                read_ticks(config.cold, symbol, date)
        work = work_seconds(replace(config, warm_db=config.data_dir / "warm-work.db"), dates)
        total, runs, ok = dagster_seconds(replace(config, warm_db=config.data_dir / "warm-dagster.db"), dates,
                                          config.data_dir / "dagster")
        if not ok:
            raise RuntimeError("a backfill run failed")
        symbol_days = len(dates) * len(SYMBOLS)
        figures.update({
            "backfill_symbol_days": symbol_days,
            "backfill_ticks": symbol_days * day.num_rows,
            "backfill_runs": runs,
            "backfill_work_s": work,
            "backfill_dagster_s": total,
            "backfill_orchestration_s": total - work,
            "orchestration_over_work_ratio": (total - work) / work,
            "dagster_over_work_ratio": total / work,
        })
        one, _, _ = dagster_seconds(replace(config, warm_db=config.data_dir / "warm-one.db"), dates[:1],
                                    config.data_dir / "dagster")
        work_one = work_seconds(replace(config, warm_db=config.data_dir / "warm-work-one.db"), dates[:1])
        figures.update({"one_date_run_s": one, "one_date_work_s": work_one, "one_date_run_fixed_cost_s": one - work_one})
    with bench_config() as config:
        figures["cli_materialize_100_ticks_new_instance_s"] = cli_seconds(config, day)
        figures["cli_materialize_100_ticks_s"] = cli_seconds(config, day)
    return figures
