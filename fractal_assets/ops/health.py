"""Health and status of a deployment: what `fractal health`, `fractal status` and the
Dagster health check report.

Both only look: they start no server and create no file or directory. A deployment that
holds nothing yet (no warm database, an embedded Redis never started) is healthy, with a
note saying what does not exist yet, so a container probe passes before the first
materialization; a component that exists and fails is a problem.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from fractal_assets.config import Config
from fractal_assets.hot.connection import client_for, embedded_client, embedded_started, primaries
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import Client, HotStore
from fractal_assets.warm.schema import current_version

MB = 1024 * 1024


@dataclass
class Health:
    redis_connected: bool | None
    """None: the embedded server was never started under the data dir (see ``notes``)."""
    redis_version: str | None
    """The server's version (each distinct one of a cluster's primaries, comma-separated)."""
    sqlite_accessible: bool | None
    """None: the warm database does not exist yet (see ``notes``)."""
    memory_usage_mb: float | None
    """Memory Redis uses, summed over every primary of a cluster."""
    tick_lag_ms: int | None
    """Wall clock minus the newest stored tick's event time, over all symbols."""
    cache_hit_rate: float | None
    cold_writable: bool
    archive_backlog_ticks: int | None
    """Ticks in the hot tier whose day has not been archived through them."""
    healthy: bool = True
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What is not there yet: not a failure."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 5}


def _client(config: Config) -> Client:
    """A client that does not start the embedded server: health must see it down."""
    if config.redis_url:
        return client_for(config.redis_url, **TIMEOUTS)
    return embedded_client(config.data_dir, **TIMEOUTS)


def _failure(exc: Exception) -> str:
    """What went wrong, for the operator: the error's type and message (never the URL)."""
    return f"{type(exc).__name__}: {exc}"


def _connected_store(config: Config) -> tuple[HotStore | None, str | None]:
    """The hot tier if Redis answers, else why not (a cluster client already fails to connect)."""
    try:
        store = HotStore(_client(config), Keys(config.key_prefix))
        store.client.ping()
        return store, None
    except (redis.RedisError, RedisClusterException, OSError) as exc:
        return None, _failure(exc)


def memory_mb(store: HotStore) -> float:
    """Memory of every primary: INFO answers for one server, a cluster has several."""
    return round(sum(node.info("memory")["used_memory"] for node in primaries(store.client)) / MB, 3)


def server_version(store: HotStore) -> str:
    """The redis-server version, e.g. '7.0.15'; a cluster's primaries each say theirs."""
    return ",".join(sorted({str(node.info("server")["redis_version"]) for node in primaries(store.client)}))


def _sqlite_failure(config: Config) -> str | None:
    """Why the existing warm database cannot be read, or None when it can."""
    try:
        with sqlite3.connect(f"file:{config.warm_db}?mode=ro", uri=True, timeout=5) as conn:
            current_version(conn)
        return None
    except sqlite3.Error as exc:
        return _failure(exc)


def hit_rate(store: HotStore) -> float | None:
    stats = {k.decode(): int(v) for k, v in store.client.hgetall(store.keys.cache_stats()).items()}
    looked_up = stats.get("hit", 0) + stats.get("miss", 0)
    return stats.get("hit", 0) / looked_up if looked_up else None


def newest_tick_ts(store: HotStore) -> int | None:
    newest = [int(v) for v in (store.client.hget(store.keys.symbol_metrics(s), "newest_ts") for s in store.symbols())
              if v is not None and int(v) >= 0]
    return max(newest) if newest else None


def backlog(store: HotStore) -> int:
    return sum(span.n for symbol in store.symbols() for span in store.unarchived(symbol))


def check_health(config: Config) -> Health:
    """Every check, never raising: a failed component is reported, not thrown."""
    redis_started = bool(config.redis_url) or embedded_started(config.data_dir)
    store, redis_failure = _connected_store(config) if redis_started else (None, None)
    warm_exists = config.warm_db.exists()
    sqlite_failure = _sqlite_failure(config) if warm_exists else None
    connected = store is not None
    health = Health(
        redis_connected=connected if redis_started else None,
        redis_version=server_version(store) if connected else None,
        sqlite_accessible=sqlite_failure is None if warm_exists else None,
        memory_usage_mb=memory_mb(store) if connected else None,
        tick_lag_ms=None,
        cache_hit_rate=hit_rate(store) if connected else None,
        cold_writable=config.cold.writable(),
        archive_backlog_ticks=backlog(store) if connected else None,
    )
    if connected and (newest := newest_tick_ts(store)) is not None:
        health.tick_lag_ms = int(time.time() * 1000) - newest
    failures = {"redis_connected": redis_failure, "sqlite_accessible": sqlite_failure}
    health.problems = _problems(health, config, failures)
    health.notes = _notes(health, config)
    health.healthy = not health.problems
    return health


def _notes(health: Health, config: Config) -> list[str]:
    """What a new deployment does not have yet."""
    notes = []
    if health.redis_connected is None:
        notes.append(f"not initialized yet: the embedded Redis was never started under {config.data_dir} "
                     "(ingest or `fractal redis start` starts it)")
    if health.sqlite_accessible is None:
        notes.append(f"not initialized yet: no warm database at {config.warm_db} (the first materialization "
                     "or `fractal migrate` creates it)")
    return notes


def _problems(health: Health, config: Config, failures: dict[str, str | None]) -> list[str]:
    problems = [f"{name} failed" + (f" ({failures[name]})" if failures.get(name) else "")
                for name in ("redis_connected", "sqlite_accessible", "cold_writable") if getattr(health, name) is False]
    if config.health_max_tick_lag_ms and health.tick_lag_ms is not None and health.tick_lag_ms > config.health_max_tick_lag_ms:
        problems.append(f"newest tick is {health.tick_lag_ms} ms old (limit {config.health_max_tick_lag_ms})")
    if config.health_max_backlog and (health.archive_backlog_ticks or 0) > config.health_max_backlog:
        problems.append(f"{health.archive_backlog_ticks} ticks await archiving (limit {config.health_max_backlog})")
    return problems


def status(config: Config) -> dict[str, Any]:
    """Per-process ingest metrics and per-symbol figures for `fractal status`."""
    store = HotStore(_client(config), Keys(config.key_prefix))
    processes = [
        {k.decode(): v.decode() for k, v in store.client.hgetall(key).items()}
        for key in store.client.scan_iter(match=store.keys.ingest_metrics("*"), count=1000)
    ]
    symbols = {}
    for symbol in store.symbols():
        metrics = {k.decode(): v.decode() for k, v in store.client.hgetall(store.keys.symbol_metrics(symbol)).items()}
        redis_bytes = sum(store.client.memory_usage(k) or 0 for k in (store.keys.ticks(symbol), store.keys.quotes(symbol),
                                                                     store.keys.order_book(symbol)))
        spans = store.entry_spans(symbol)
        symbols[symbol] = {
            "ticks_in_redis": sum(s.n for s in spans),
            "unarchived_ticks": sum(s.n for s in store.unarchived(symbol, spans=spans)),
            "redis_mb": round(redis_bytes / MB, 3),
            "ring_mb": round(int(metrics.get("ring_bytes", 0)) / MB, 3),
            "newest_ts": int(metrics.get("newest_ts", -1)),
        }
    return {"ingest": processes, "symbols": symbols, "cache_hit_rate": hit_rate(store)}
