"""Reading a request's ticks or bars from each tier and merging them, each record once.

Ticks are the cold tier's Parquet (the part files of the symbol's date
partitions in range, decoded in parallel into contiguous columns by
``cold.columns``, row groups outside the ts range skipped) plus the hot tier's
ticks in range, deduplicated by arrival number ``seq`` and sorted by (ts, seq). Bars are, per bucket
timestamp, the most complete of the warm tier's (SQLite), the cold tier's
exported bars and bars computed with ``compute_bars`` from the ticks of
days the hot tier still holds (cold and hot ticks of those days together,
so a bucket whose first ticks already left Redis is still complete); see
``merge_bars``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from fractal_assets.access.request import Request
from fractal_assets.cold.columns import read_tick_columns
from fractal_assets.cold.parquet import READ_ATTEMPTS, part_files, unique_order
from fractal_assets.cold.store import ColdStore, duckdb_for
from fractal_assets.config import Config
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.live_bars import LIVE_TIMEFRAMES, floor_to
from fractal_assets.market import schema
from fractal_assets.market.bars import BAR_COLUMNS, TIMEFRAMES, compute_bars, roll_up
from fractal_assets.market.calendar import date_of
from fractal_assets.warm.bars import read_bars
from fractal_assets.warm.db import connect_readonly, has_table

TICK_DTYPES = schema.STORED_TICK.pandas
BAR_DTYPES = schema.BAR.pandas


BARS_SQL = rf"""
SELECT {', '.join(BAR_COLUMNS)}
FROM read_parquet($files, hive_partitioning = true, filename = true,
                  hive_types = {{'timeframe': VARCHAR, 'symbol': VARCHAR, 'date': DATE}})
WHERE timeframe = $timeframe AND symbol = $symbol AND date BETWEEN $start AND $end
  AND timestamp >= $t0 AND timestamp < $t1
QUALIFY row_number() OVER (
    PARTITION BY timestamp ORDER BY CAST(regexp_extract(filename, 'part-(\d+)\.parquet$', 1) AS BIGINT) DESC
) = 1
ORDER BY timestamp
"""
"""A later part of a bar partition wins (see cold.compaction)."""


def partition_files(cold: ColdStore, root: str, start: str, end: str) -> list[str]:
    """Part files of the ``date=YYYY-MM-DD`` partitions under ``root`` with start <= date <= end,
    in date then part order."""
    names = sorted(n for n in cold.names(root) if n.startswith("date=") and start <= n[5:] <= end)
    return [p for name in names for p in part_files(cold, f"{root}/{name}")]


def tick_files(cold: ColdStore, req: Request) -> list[str]:
    return partition_files(cold, cold.join("ticks", f"symbol={req.symbol}"), req.start, req.end)


def bar_files(cold: ColdStore, req: Request) -> list[str]:
    return partition_files(cold, cold.join("bars", f"timeframe={req.timeframe}", f"symbol={req.symbol}"),
                           req.start, req.end)


def _query(cold: ColdStore, sql: str, files: list[str], params: dict[str, Any]) -> duckdb.DuckDBPyRelation:
    return duckdb_for(cold).cursor().sql(sql, params={"files": [cold.uri(p) for p in files], **params})


def cold_ticks(cold: ColdStore, files: list[str], req: Request, t0: int | None = None, t1: int | None = None) -> pd.DataFrame:
    """The cold tier's ticks of the request, sorted by (ts, seq), each seq once.

    The files are read in order and every part is written sorted, so only a
    partition caught with several parts (see cold.compaction) makes a sort
    necessary. Each file decodes its decimals to float64 itself, so files of
    differing scales (cold.decimals) read back exactly.
    """
    if not files:
        return empty_ticks()
    columns = read_tick_columns(cold, files, req.start_ms if t0 is None else t0, req.end_ms if t1 is None else t1)
    frame = pd.DataFrame(columns, copy=False)
    return frame if len({_partition(p) for p in files}) == len(files) else sort_unique(frame)


def cold_bars(cold: ColdStore, files: list[str], req: Request) -> pd.DataFrame:
    """Bars exported to the cold tier by warm-tier retention."""
    if not files:
        return empty_bars()
    params = {"timeframe": req.timeframe, "symbol": req.symbol, "start": date.fromisoformat(req.start),
              "end": date.fromisoformat(req.end), "t0": req.start_ms, "t1": req.end_ms}
    return _query(cold, BARS_SQL, files, params).df().astype(BAR_DTYPES)


def empty_ticks() -> pd.DataFrame:
    return schema.STORED_TICK.empty_frame()


def sort_unique(frame: pd.DataFrame) -> pd.DataFrame:
    """Ticks sorted by (ts, seq) with each seq once."""
    order = unique_order(frame["ts"].to_numpy(), frame["seq"].to_numpy())
    return frame if order is None else frame.iloc[order].reset_index(drop=True)


def hot_ticks(store: HotStore, symbol: str) -> pd.DataFrame:
    """Every tick the hot tier holds for the symbol, archived or not, in arrival order."""
    hot = store.read_ticks(symbol)
    if not len(hot.seq):
        return empty_ticks()
    columns = {name: hot.ticks[name] for name in ("ts", "price", "volume", "side")}
    return pd.DataFrame({**columns, "seq": hot.seq}).astype(TICK_DTYPES)


def between(ticks: pd.DataFrame, start_ms: int, end_ms: int) -> pd.DataFrame:
    """Ticks with start_ms <= ts < end_ms."""
    if ticks.empty:
        return ticks
    return ticks[(ticks["ts"] >= start_ms) & (ticks["ts"] < end_ms)].reset_index(drop=True)


def union_ticks(cold: pd.DataFrame, hot: pd.DataFrame) -> pd.DataFrame:
    """Sorted, unique cold ticks and hot ticks, sorted by (ts, seq), each seq once.

    Copies of a tick share its ts, so cold ticks older than the oldest hot
    tick cannot be duplicates: only the overlap is sorted again.
    """
    if hot.empty:
        return cold
    cut = int(np.searchsorted(cold["ts"].to_numpy(), hot["ts"].min(), side="left"))
    tail = sort_unique(pd.concat([cold.iloc[cut:], hot], ignore_index=True))
    return pd.concat([cold.iloc[:cut], tail], ignore_index=True)


def warm_bars(config: Config, req: Request) -> pd.DataFrame:
    """The warm tier's bars of the request (none when the database or table does not exist)."""
    conn = connect_readonly(config.warm_db)
    if conn is None:
        return empty_bars()
    try:
        if not has_table(conn, "fractal_bars"):
            return empty_bars()
        return read_bars(conn, req.symbol, req.timeframe, req.start_ms, req.end_ms).astype(BAR_DTYPES)
    finally:
        conn.close()


def empty_bars() -> pd.DataFrame:
    return schema.BAR.empty_frame()


def _partition(path: str) -> str:
    return path.rsplit("/", 1)[0]


def _file_date(path: str) -> str:
    return _partition(path).rsplit("/", 1)[-1].removeprefix("date=")


def hot_day_bars(cold: ColdStore, store: HotStore, req: Request, ticks: list[str]) -> pd.DataFrame:
    """Bars of the days the hot tier has ticks for, from those days' cold and hot ticks."""
    hot = between(hot_ticks(store, req.symbol), req.start_ms, req.end_ms)
    if hot.empty:
        return empty_bars()
    days = set(np.unique(hot["ts"].to_numpy().astype("M8[ms]").astype("M8[D]").astype(str)).tolist())
    span = Request(req.symbol, min(days), max(days), "ticks", None)
    merged = union_ticks(cold_ticks(cold, [p for p in ticks if _file_date(p) in days], span), hot)
    columns = (merged[c].to_numpy() for c in ("ts", "price", "volume", "side"))
    return compute_bars(*columns, req.timeframe).astype(BAR_DTYPES)


def live_tail_bars(config: Config, store: HotStore, req: Request, ticks: list[str], live: int) -> pd.DataFrame:
    """Bars the live bars of the warm tier do not hold yet, read without touching older ticks.

    The ingest process has written every 1m-1h bar ending at or before ``live`` (see
    ingest.live_bars), so only buckets from ``live`` on are computed, from the newest hot
    entries and the cold ticks of that span. A 1d bar of a day the hot tier holds is rolled
    up from the day's 1h bars (live and computed): every tick counted, volume sums to float
    rounding until the day's build writes the exact bar.
    """
    base = req.timeframe if req.timeframe in LIVE_TIMEFRAMES else LIVE_TIMEFRAMES[-1]
    since = max(floor_to(live, TIMEFRAMES[base]), req.start_ms)
    tail = compute_bars(*_columns(recent_ticks(config, store, req.symbol, ticks, since, req.end_ms)), base)
    if base == req.timeframe:
        return tail.astype(BAR_DTYPES)
    first = store.client.xrange(store.keys.ticks(req.symbol), count=1)
    if not first:
        return empty_bars()
    hot_from = max(floor_to(int(first[0][1][b"t0"]), TIMEFRAMES[req.timeframe]), req.start_ms)
    hours = warm_bars(config, Request(req.symbol, date_of(hot_from), req.end, "bars", base))
    return roll_up(merge_bars(hours[hours.timestamp >= hot_from], empty_bars(), tail), req.timeframe).astype(BAR_DTYPES)


def recent_ticks(config: Config, store: HotStore, symbol: str, ticks: list[str], t0: int, t1: int) -> pd.DataFrame:
    """Ticks with t0 <= ts < t1 from the newest hot entries and the cold files of those days."""
    hot = store.read_ticks_since(symbol, t0, config.ts_tolerance_ms)
    frame = between(pd.DataFrame({**{c: hot.ticks[c] for c in ("ts", "price", "volume", "side")}, "seq": hot.seq}), t0, t1)
    days = {date_of(t0), date_of(min(t1, int(frame["ts"].max()) if len(frame) else t0))}
    files = [p for p in ticks if _file_date(p) in days]
    cold = cold_ticks(config.cold, files, Request(symbol, min(days), max(days), "ticks", None), t0, t1)
    return union_ticks(cold, sort_unique(frame.astype(TICK_DTYPES)))


def _columns(ticks: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(ticks[c].to_numpy() for c in ("ts", "price", "volume", "side"))


def merge_bars(warm: pd.DataFrame, cold: pd.DataFrame, computed: pd.DataFrame) -> pd.DataFrame:
    """One bar per timestamp, from the most complete source: the bar counting the most
    ticks, on a tie the warm tier's, then the cold tier's, then the computed one; sorted by
    timestamp.

    Every source counts ticks of the same deduplicated tick set, so a bar can only lack
    ticks, never have extra ones: the highest ``tick_count`` is the most complete. A warm
    bar built before more ticks of its bucket arrived loses to the bar computed from the
    tiers' ticks."""
    frames = [f for f in (warm, cold, computed) if len(f)] or [empty_bars()]
    merged = pd.concat(frames, ignore_index=True)
    order = np.lexsort((np.arange(len(merged)), -merged["tick_count"].to_numpy(), merged["timestamp"].to_numpy()))
    merged = merged.iloc[order].drop_duplicates("timestamp", keep="first")
    return merged.reset_index(drop=True)


def require_known(config: Config, store: HotStore, symbol: str) -> None:
    """A ValueError unless some tier has data of the symbol."""
    if store.client.sismember(store.keys.symbols(), symbol):
        return
    if symbol_roots(config.cold, symbol):
        return
    conn = connect_readonly(config.warm_db)
    if conn is not None:
        try:
            if has_table(conn, "fractal_bars") and conn.execute(
                "SELECT 1 FROM fractal_bars WHERE symbol = ? LIMIT 1", (symbol,)
            ).fetchone():
                return
        finally:
            conn.close()
    archived = {n.removeprefix("symbol=") for n in config.cold.names(config.cold.join("ticks")) if n.startswith("symbol=")}
    known = sorted(set(store.symbols()) | archived)
    raise ValueError(f"unknown symbol {symbol!r}: no data in the hot, warm or cold tier "
                     f"(known: {', '.join(known[:20]) or 'none'})")


def symbol_roots(cold: ColdStore, symbol: str) -> list[str]:
    """The symbol's tick directory and bar directories (one per timeframe) that exist."""
    ticks = [cold.join("ticks", f"symbol={symbol}")] if f"symbol={symbol}" in cold.names(cold.join("ticks")) else []
    bars = [cold.join("bars", tf, f"symbol={symbol}") for tf in cold.names(cold.join("bars"))
            if f"symbol={symbol}" in cold.names(cold.join("bars", tf))]
    return ticks + bars


def sources(config: Config, req: Request) -> tuple[list[str], list[str]]:
    """The cold part files a request reads: tick partitions, and bar partitions for bars."""
    return tick_files(config.cold, req), bar_files(config.cold, req) if req.kind == "bars" else []


def read_tiers(config: Config, store: HotStore, req: Request, ticks: list[str], bars: list[str]) -> pd.DataFrame:
    """The request's ticks or bars merged from the listed cold files, the warm tier and Redis."""
    cold = config.cold
    if req.kind == "ticks":
        return union_ticks(cold_ticks(cold, ticks, req), between(hot_ticks(store, req.symbol), req.start_ms, req.end_ms))
    live = store.live_bars_through(req.symbol)
    computed = hot_day_bars(cold, store, req, ticks) if live is None else live_tail_bars(config, store, req, ticks, live)
    return merge_bars(warm_bars(config, req), cold_bars(cold, bars, req), computed)


def compute(config: Config, store: HotStore, req: Request, files: tuple[list[str], list[str]]) -> pd.DataFrame:
    """The request's data from every tier. A part file that vanished under the read was merged
    into part-0 by a concurrent compaction, so the partitions are listed again."""
    require_known(config, store, req.symbol)
    for _ in range(READ_ATTEMPTS - 1):
        try:
            return read_tiers(config, store, req, *files)
        except (duckdb.IOException, FileNotFoundError):
            if all(config.cold.exists(p) for p in files[0] + files[1]):
                raise
            files = sources(config, req)
    return read_tiers(config, store, req, *files)


def data_dates(config: Config, store: HotStore, symbol: str) -> tuple[str, str] | None:
    """First and last UTC date with data of the symbol in any tier, or None."""
    days: list[str] = []
    for root in symbol_roots(config.cold, symbol):
        dates = [n.removeprefix("date=") for n in config.cold.names(root) if n.startswith("date=")]
        days += [min(dates), max(dates)] if dates else []
    conn = connect_readonly(config.warm_db)
    if conn is not None:
        try:
            if has_table(conn, "fractal_bars"):
                row = conn.execute("SELECT MIN(timestamp), MAX(timestamp) FROM fractal_bars WHERE symbol = ?",
                                   (symbol,)).fetchone()
                days += [date_of(v) for v in row if v is not None]
        finally:
            conn.close()
    first = store.client.xrange(store.keys.ticks(symbol), count=1)
    newest = store.client.hget(store.keys.checkpoint(symbol), "max_ts")
    days += [date_of(int(first[0][1][b"t0"]))] if first else []
    days += [date_of(int(newest))] if newest is not None else []
    return (min(days), max(days)) if days else None
