"""What the project creates is private to its owner (0700 directories, 0600 files) whatever
the umask, group-readable with FRACTAL_GROUP_ACCESS=1, and a backup is a copy that a damaged
original cannot reach. Real files, real modes, a real embedded redis-server."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from fractal_assets.cold.parquet import read_ticks, write_ticks
from fractal_assets.config import Config
from fractal_assets.hot.connection import ensure_embedded_redis, stop_embedded_redis
from fractal_assets.ops.backup import MANIFEST, backup, read_manifest, restore, sha256_of, verify
from fractal_assets.warm.db import connect
from fractal_assets.warm.schema import migrate
from fractal_assets_tests.support import write_ticks as write_tick_csv

PARTITION = "ticks/symbol=PRV/date=2020-02-22"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default umask, which leaves new files world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes(*roots: Path) -> dict[str, set[str]]:
    """Every directory, file and socket under the roots (themselves included), by mode, as
    paths relative to their root."""
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            info = os.lstat(path)
            kind = "dir" if stat.S_ISDIR(info.st_mode) else "sock" if stat.S_ISSOCK(info.st_mode) else "file"
            found.setdefault(f"{kind} {stat.S_IMODE(info.st_mode):04o}", set()).add(str(path.relative_to(root)))
    return found


def small_deployment(config: Config) -> None:
    conn = connect(config.warm_db)
    migrate(conn)
    conn.close()
    ticks = pa.table({"ts": [1, 2, 3], "price": [1.0, 2.0, 3.0], "volume": [1.0, 1.0, 1.0],
                      "side": pa.array([1, -1, 1], pa.int8()), "seq": [0, 1, 2]})
    write_ticks(config.cold, "PRV", "2020-02-22", ticks)


@pytest.mark.infra
def test_the_fractal_command_creates_only_private_files(tmp_path: Path) -> None:
    """Ingest into the embedded Redis, materialize, back up: under a umask of 022 every
    directory is 0700, every file 0600 (the socket 0700), Redis's own files included."""
    root = Path(tempfile.mkdtemp(prefix="fm-"))
    data_dir, dest = root / "data", root / "backups"
    feed = tmp_path / "ticks.csv"
    write_tick_csv(feed, 3_000, symbols=("PRV",))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRACTAL_")}
    try:
        for args in (["ingest", "--source", str(feed)], ["materialize"], ["backup", str(dest), "--redis"]):
            subprocess.run([sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(data_dir), *args], env=env,
                           check=True, capture_output=True, preexec_fn=lambda: os.umask(0o022))
        found = modes(root / "data", dest)
        assert set(found) == {"dir 0700", "file 0600", "sock 0700"}, found
        assert {"warm.db", "redis/appendonly.aof", "redis/redis.pid", "redis/redis.log"} <= found["file 0600"]
        assert any(name.startswith("cold/ticks/symbol=PRV/") for name in found["file 0600"])
        assert {MANIFEST, "warm.db", "redis.dump"} <= {Path(name).name for name in found["file 0600"]}
    finally:
        stop_embedded_redis(data_dir)
        shutil.rmtree(root, ignore_errors=True)


def test_library_calls_create_private_files_without_touching_the_umask(
    config: Config, tmp_path: Path, loose_umask: None
) -> None:
    small_deployment(config)
    conn = connect(config.warm_db)
    conn.execute("INSERT INTO fractal_backtest_results VALUES ('k', '{}', 0, x'00')")
    target = backup(config, tmp_path / "backups", with_redis=True)
    assert os.umask(0o022) == 0o022, "the host's umask is left as it was"
    found = modes(config.data_dir, target)
    conn.close()
    assert set(found) == {"dir 0700", "file 0600"}, found
    assert {"warm.db", "warm.db-wal", "warm.db-shm", f"cold/{PARTITION}/part-0.parquet"} <= found["file 0600"]


@pytest.mark.infra
def test_group_access_makes_data_group_readable_but_keeps_redis_private(
    config: Config, tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRACTAL_GROUP_ACCESS", "1")
    small_deployment(config)
    target = backup(config, tmp_path / "backups")
    found = modes(config.data_dir, target)
    assert set(found) == {"dir 0750", "file 0640"}, found
    root = Path(tempfile.mkdtemp(prefix="fm-"))
    try:
        ensure_embedded_redis(root / "data")
        assert set(modes(root / "data" / "redis")) == {"dir 0700", "file 0600", "sock 0700"}
    finally:
        stop_embedded_redis(root / "data")
        shutil.rmtree(root, ignore_errors=True)


def test_a_backup_is_an_independent_copy_that_survives_damage_to_the_original(config: Config, tmp_path: Path) -> None:
    small_deployment(config)
    live = Path(config.cold.root) / PARTITION / "part-0.parquet"
    original = read_ticks(config.cold, "PRV", "2020-02-22")
    target = backup(config, tmp_path / "backups")
    copy = target / "cold" / PARTITION / "part-0.parquet"
    assert os.stat(copy).st_ino != os.stat(live).st_ino and os.stat(copy).st_nlink == 1
    (entry,) = [f for f in read_manifest(target).files if f.path == f"cold/{PARTITION}/part-0.parquet"]
    assert entry.sha256 == sha256_of(copy) == sha256_of(live)

    with open(live, "r+b") as handle:
        handle.seek(0)
        handle.write(b"\0" * 64)
    assert sha256_of(live) != entry.sha256
    verify(target)
    fresh = Config.from_env(data_dir=tmp_path / "restored", redis_url=config.redis_url, key_prefix=config.key_prefix)
    restore(fresh, target)
    assert read_ticks(fresh.cold, "PRV", "2020-02-22").equals(original)
