"""Dagster resources for the three storage tiers, configured from the environment via ``EnvVar``."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, EnvVar

from fractal_assets.cold.store import ColdStore, open_cold
from fractal_assets.config import SETTINGS, Config
from fractal_assets.hot.connection import open_store
from fractal_assets.hot.store import HotStore
from fractal_assets.warm.db import connect as connect_sqlite
from fractal_assets.warm.schema import migrate


def dagster_value(name: str, fallback: str | None = None) -> Any:
    """An ``EnvVar`` for a set variable (so the UI shows its source), else ``fallback``
    or the documented default, for Dagster resource fields."""
    if os.environ.get(name):
        return EnvVar(name)
    return SETTINGS[name].default if fallback is None else fallback


def dagster_reference(name: str, value: str) -> Any:
    """``EnvVar(name)`` when the environment holds ``value``, else ``value``: Dagster stores
    resource values with each run, and a Redis or object-store URL can carry a password."""
    return EnvVar(name) if os.environ.get(name) == value else value


class HotTierResource(ConfigurableResource):
    """Redis: the configured server, or the embedded one under ``data_dir``."""

    data_dir: str
    redis_url: str = ""
    key_prefix: str = ""
    retention_hours: float = 2.0

    def config(self) -> Config:
        return Config.from_env(
            data_dir=self.data_dir, redis_url=self.redis_url, key_prefix=self.key_prefix,
            retention_hours=self.retention_hours,
        )

    def store(self) -> HotStore:
        return open_store(self.config())


class WarmTierResource(ConfigurableResource):
    """The SQLite warm tier; connecting applies pending schema migrations."""

    db_path: str
    keep_days: int = 30
    vpin_days: int = 20
    """Trailing days with trades whose average volume sizes VPIN's buckets (``FRACTAL_VPIN_DAYS``)."""

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A migrated connection, closed when the block ends."""
        conn = connect_sqlite(Path(self.db_path))
        try:
            migrate(conn)
            yield conn
        finally:
            conn.close()


class ColdTierResource(ConfigurableResource):
    """Root of the Parquet cold tier: a directory or an fsspec URL."""

    root: str

    def store(self) -> ColdStore:
        return open_cold(self.root)


def resources_from_env() -> dict[str, ConfigurableResource]:
    """The resources of the code location, each field an ``EnvVar`` where the variable is set."""
    config = Config.from_env()
    return {
        "hot": HotTierResource(
            data_dir=dagster_value("FRACTAL_DATA_DIR"),
            redis_url=dagster_value("FRACTAL_REDIS_URL"),
            key_prefix=dagster_value("FRACTAL_KEY_PREFIX"),
            retention_hours=config.retention_hours,
        ),
        "warm": WarmTierResource(db_path=dagster_value("FRACTAL_WARM_DB", str(config.warm_db)), keep_days=config.warm_days,
                                 vpin_days=config.vpin_days),
        "cold": ColdTierResource(root=dagster_value("FRACTAL_COLD_DIR", str(config.cold_dir))),
    }


def resources_for(config: Config) -> dict[str, ConfigurableResource]:
    """The same resources with resolved values, for runs started outside a code location
    (secrets as ``EnvVar`` references: see ``dagster_reference``)."""
    return {
        "hot": HotTierResource(data_dir=str(config.data_dir),
                               redis_url=dagster_reference("FRACTAL_REDIS_URL", config.redis_url),
                               key_prefix=config.key_prefix, retention_hours=config.retention_hours),
        "warm": WarmTierResource(db_path=str(config.warm_db), keep_days=config.warm_days, vpin_days=config.vpin_days),
        "cold": ColdTierResource(root=dagster_reference("FRACTAL_COLD_DIR", str(config.cold_dir))),
    }
