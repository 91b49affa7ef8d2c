"""Shared fixtures: a real Redis for every test, real files under a temporary data dir.

The system Redis on 127.0.0.1:6379 is used when it answers (database 13,
a key prefix unique to the test, removed afterwards); otherwise one embedded
redis-server is started for the session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from fractal_assets.cli import main
from fractal_assets.config import Config
from fractal_assets.hot.connection import ensure_embedded_redis, stop_embedded_redis
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import HotStore
from fractal_assets_tests.support import SYSTEM_REDIS, private_prefix


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts a Redis Cluster (its fixture) carries the ``redis_cluster`` marker."""
    for item in items:
        if "redis_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis_cluster)


@pytest.fixture(autouse=True)
def no_dagster_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests make their own Dagster instances; a developer's DAGSTER_HOME must not leak in."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


@pytest.fixture(autouse=True)
def no_leaked_defs_state_storage() -> None:
    """Dagster keeps the current instance's defs-state storage in a context variable that some
    schedule/sensor test helpers leave set to a disposed instance; a later test resolving
    Definitions outside an instance then fails ("undefined DagsterInstance weakref")."""
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis: the system one when reachable, else an embedded one."""
    try:
        redis.Redis.from_url(SYSTEM_REDIS, socket_connect_timeout=0.5).ping()
        yield SYSTEM_REDIS
        return
    except redis.ConnectionError:
        pass
    data_dir = tmp_path_factory.mktemp("embedded-redis")
    yield ensure_embedded_redis(data_dir)
    stop_embedded_redis(data_dir)


@pytest.fixture
def key_prefix(redis_server: str) -> Iterator[str]:
    with private_prefix(redis_server) as prefix:
        yield prefix


@pytest.fixture
def config(tmp_path: Path, redis_server: str, key_prefix: str) -> Config:
    """Settings pointing at a fresh data dir and the test's slice of Redis."""
    return Config.from_env(data_dir=tmp_path / "data", redis_url=redis_server, key_prefix=key_prefix)


@pytest.fixture
def store(config: Config) -> HotStore:
    return HotStore(redis.Redis.from_url(config.redis_url), Keys(config.key_prefix))


@dataclass(frozen=True)
class Run:
    """What one ``fractal`` command did: exit code, stdout and stderr."""

    code: int
    out: str
    err: str


@pytest.fixture
def fractal(config: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Runs a ``fractal`` command in this process against the test's data dir and Redis keys; an
    exception escaping the command (a traceback for the user) fails the test."""
    monkeypatch.setenv("FRACTAL_REDIS_URL", config.redis_url)
    monkeypatch.setenv("FRACTAL_KEY_PREFIX", config.key_prefix)

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(["--data-dir", str(config.data_dir), *args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
