"""Backtest and indicator data across the three tiers, each tick or bar exactly once.

The public functions (re-exported by ``fractal_assets.api``) validate their
arguments (``query``), read and merge the tiers (``tiers``) and cache final
results in Redis (``result_cache``).
"""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import pandas as pd

from fractal_assets.access import result_cache
from fractal_assets.access.presentation import shape, utc_datetime
from fractal_assets.access.request import check_indicator_timeframe, make_request
from fractal_assets.access.result_cache import SETTLE_S, through_cache
from fractal_assets.access.tier_reads import (
    between,
    compute,
    data_dates,
    empty_bars,
    hot_ticks,
    require_known,
    sort_unique,
    sources,
)
from fractal_assets.config import Config
from fractal_assets.hot.connection import open_store
from fractal_assets.hot.store import HotStore
from fractal_assets.indicators.realtime import INDICATORS as REALTIME_INDICATORS
from fractal_assets.market.bars import TIMEFRAMES
from fractal_assets.market.calendar import DAY_MS
from fractal_assets.market.symbols import normalize_symbol
from fractal_assets.warm.db import connect_readonly, has_table

__all__ = ["SETTLE_S", "cache_stats", "get_backtest_data", "get_data_for_indicator", "get_fractal_indicators"]

TICK_INDICATORS = REALTIME_INDICATORS


BAR_INDICATORS = {"williams_fractal": ("5m", 8_640), "hurst_exponent": ("1d", 252)}
"""Indicator -> (bar timeframe, number of latest bars it needs)."""


INDICATOR_ALIASES = {"williams_fractals": "williams_fractal"}
"""Other accepted names: the Dagster asset is called ``williams_fractals``."""


INDICATORS = (*TICK_INDICATORS, *BAR_INDICATORS)


def indicator_name(indicator_type: str) -> str:
    """The canonical indicator name, or a ValueError listing every accepted one."""
    name = INDICATOR_ALIASES.get(indicator_type, indicator_type)
    if name not in INDICATORS:
        valid = ", ".join((*INDICATORS, *INDICATOR_ALIASES))
        raise ValueError(f"unknown indicator_type {indicator_type!r}; valid: {valid}")
    return name


FRESH_MS = 5 * 60_000
"""A real-time value from Redis is used when this close to the symbol's newest tick."""


@lru_cache(maxsize=8)
def hot_store(config: Config) -> HotStore:
    """One Redis client per configuration, so repeated calls reuse its connection."""
    return open_store(config)


def get_backtest_data(
    symbol: str,
    start_date: str | date,
    end_date: str | date,
    kind: str = "ticks",
    timeframe: str | None = None,
    config: Config | None = None,
    use_cache: bool = True,
    utc: bool = False,
    with_symbol: bool = False,
) -> pd.DataFrame:
    """Ticks (ts, price, volume, side, seq) or bars (``BAR_COLUMNS``) of a symbol for the UTC
    dates start_date..end_date inclusive, from every tier, each once, in time order.

    ``config`` defaults to the environment's; ``use_cache=False`` bypasses the Redis cache
    (see the module docstring for when results are cached). ``utc=True`` gives ``ts`` /
    ``timestamp`` as UTC datetimes instead of epoch ms, ``with_symbol=True`` adds a leading
    ``symbol`` column. Bad arguments raise ValueError before any storage is read.
    """
    req = make_request(symbol, start_date, end_date, kind, timeframe)
    config = config or Config.from_env()
    store = hot_store(config)
    files = sources(config, req)
    data = compute(config, store, req, files) if not use_cache else through_cache(config, store, req, files)
    return shape(data, req.symbol, utc, with_symbol)


def cache_stats(config: Config | None = None) -> dict[str, int]:
    """Backtest-data cache lookups so far: hit, miss, skip."""
    return result_cache.cache_stats(hot_store(config or Config.from_env()))


def latest_bars(config: Config, store: HotStore, symbol: str, timeframe: str, rows: int) -> pd.DataFrame:
    """The last ``rows`` bars up to the newest data; the window of days doubles while it
    holds too few bars (market closures) and older data exists."""
    span = data_dates(config, store, symbol)
    if span is None:
        require_known(config, store, symbol)
        return empty_bars()
    first, last = date.fromisoformat(span[0]), date.fromisoformat(span[1])
    days = math.ceil(rows * TIMEFRAMES[timeframe] / DAY_MS)
    while True:
        start = max(first, last - timedelta(days=days - 1))
        bars = get_backtest_data(symbol, start.isoformat(), last.isoformat(), "bars", timeframe, config=config)
        if len(bars) >= rows or start == first:
            return bars.tail(rows).reset_index(drop=True)
        days *= 2


def get_data_for_indicator(
    symbol: str, indicator_type: str, config: Config | None = None, utc: bool = False, with_symbol: bool = False,
) -> pd.DataFrame:
    """The data an indicator is computed from: the last 2 h of hot-tier ticks for tick
    microstructure, the last 8,640 5m bars for Williams fractals, the last 252 1d bars for
    the Hurst exponent.

    ``indicator_type`` is one of tick_imbalance, order_flow_ratio, bid_ask_spread,
    kyle_lambda, vpin, williams_fractal (or williams_fractals), hurst_exponent; ``utc`` and
    ``with_symbol`` as in :func:`get_backtest_data`.
    """
    name = indicator_name(indicator_type)
    symbol = normalize_symbol(symbol)
    config = config or Config.from_env()
    store = hot_store(config)
    if name in TICK_INDICATORS:
        require_known(config, store, symbol)
        hot = hot_ticks(store, symbol)
        newest = int(hot["ts"].max()) if len(hot) else 0
        data = sort_unique(between(hot, newest - config.retention_ms, newest + 1))
    else:
        timeframe, rows = BAR_INDICATORS[name]
        data = latest_bars(config, store, symbol, timeframe, rows)
    return shape(data, symbol, utc, with_symbol)


def warm_indicator_values(config: Config, symbol: str, timeframe: str) -> dict[str, dict[str, Any]]:
    """Latest row of each indicator of the symbol and timeframe in ``fractal_indicator_values``."""
    conn = connect_readonly(config.warm_db)
    if conn is None:
        return {}
    try:
        if not has_table(conn, "fractal_indicator_values"):
            return {}
        rows = conn.execute(
            "SELECT indicator, timestamp, value, metadata FROM fractal_indicator_values AS v "
            "WHERE symbol = ? AND timeframe = ? AND timestamp = (SELECT MAX(timestamp) FROM fractal_indicator_values "
            "WHERE symbol = v.symbol AND indicator = v.indicator AND timeframe = v.timeframe)",
            (symbol, timeframe),
        ).fetchall()
    finally:
        conn.close()
    return {name: {"value": value, "timestamp": int(ts), "source": "warm", "metadata": _json(meta)}
            for name, ts, value, meta in rows}


def _json(text: str) -> Any:
    """Parsed metadata; text that is not JSON is returned as is."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def hot_indicator_values(store: HotStore, symbol: str, timeframe: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """Real-time values from Redis ``ind:`` keys that are fresh against the symbol's newest tick."""
    newest = store.client.hget(store.keys.checkpoint(symbol), "max_ts")
    if newest is None:
        return {}
    out = {}
    for name in names:
        doc = store.read_indicator(symbol, name, timeframe)
        if doc is not None and int(doc.get("ts", 0)) >= int(newest) - FRESH_MS:
            out[name] = {"value": doc.get("value"), "timestamp": int(doc["ts"]), "source": "hot",
                         "metadata": doc.get("meta", {})}
    return out


def get_fractal_indicators(
    symbol: str, timeframe: str = "5m", config: Config | None = None, utc: bool = False,
) -> dict[str, dict[str, Any] | None]:
    """Latest value of every indicator: {name: {value, timestamp, source, metadata} or None}.

    The real-time Redis value wins while fresh (within 5 minutes of the
    symbol's newest tick); otherwise the warm tier's latest row is used.
    ``timeframe`` is a bar timeframe (1m, 5m, 15m, 1h, 1d) or a tick count such as
    ``1000t`` (the metrics of the newest full micro-batch); ``utc=True`` gives each
    ``timestamp`` as a UTC datetime instead of epoch ms.
    """
    symbol = normalize_symbol(symbol)
    check_indicator_timeframe(timeframe)
    config = config or Config.from_env()
    store = hot_store(config)
    require_known(config, store, symbol)
    warm = warm_indicator_values(config, symbol, timeframe)
    names = sorted(set(TICK_INDICATORS) | set(warm))
    hot = hot_indicator_values(store, symbol, timeframe, names)
    latest = {name: hot.get(name) or warm.get(name) for name in names}
    if utc:
        return {name: v and {**v, "timestamp": utc_datetime(v["timestamp"])} for name, v in latest.items()}
    return latest
