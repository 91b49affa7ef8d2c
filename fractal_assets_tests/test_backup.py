"""Backups and restores on real storage: a restored deployment equals the original, a damaged
backup is refused before anything is written."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis
from dagster import DagsterInstance

from fractal_assets.cli import main, source_id
from fractal_assets.cold.parquet import write_ticks
from fractal_assets.config import Config
from fractal_assets.defs.materialize import materialize_days, partitions_with_data
from fractal_assets.defs.resources import resources_for
from fractal_assets.feeds import open_feed
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.market.bars import compute_bars
from fractal_assets.market.calendar import DAY_MS
from fractal_assets.ops.backup import MANIFEST, BackupError, backup, read_manifest, restore
from fractal_assets.warm.bars import replace_bars
from fractal_assets.warm.db import connect
from fractal_assets.warm.schema import MIGRATIONS, migrate
from fractal_assets_tests.support import private_prefix, shared_file

TARDIS = "tardis_binance_futures_btcusdt_20200222/trades.csv.gz"
PARTITION = "ticks/symbol=BTCUSDT/date=2020-02-22"


@pytest.fixture
def other_prefix(redis_server: str) -> Iterator[str]:
    """The restore target's key prefix, cleaned up like the ``key_prefix`` fixture's."""
    with private_prefix(redis_server) as prefix:
        yield prefix


def use_deployment(monkeypatch: pytest.MonkeyPatch, config: Config) -> None:
    """Point the environment (read by the CLI) at a deployment's Redis slice."""
    monkeypatch.setenv("FRACTAL_REDIS_URL", config.redis_url)
    monkeypatch.setenv("FRACTAL_KEY_PREFIX", config.key_prefix)
    monkeypatch.delenv("FRACTAL_WARM_DB", raising=False)
    monkeypatch.delenv("FRACTAL_COLD_DIR", raising=False)


def all_bars(config: Config) -> pd.DataFrame:
    with sqlite3.connect(config.warm_db) as conn:
        return pd.read_sql_query("SELECT * FROM fractal_bars ORDER BY symbol, timeframe, timestamp", conn)


def keys_without_prefix(client: redis.Redis, prefix: str) -> dict[bytes, bytes]:
    """Key (prefix removed) -> its serialized value, for every key of a deployment."""
    return {k[len(prefix):]: client.dump(k) for k in client.scan_iter(match=f"{prefix}*", count=1000)}


def small_deployment(config: Config) -> None:
    """A warm database and one cold-tier partition, without running Dagster."""
    migrate(connect(config.warm_db))
    ticks = pa.table({"ts": [1, 2, 3], "price": [1.0, 2.0, 3.0], "volume": [1.0, 1.0, 1.0],
                      "side": pa.array([1, -1, 1], pa.int8()), "seq": [0, 1, 2]})
    write_ticks(config.cold, "BTCUSDT", "2020-02-22", ticks)


def target_config(tmp_path: Path, config: Config, prefix: str | None = None) -> Config:
    return Config.from_env(data_dir=tmp_path / "restored", redis_url=config.redis_url,
                           key_prefix=prefix or config.key_prefix)


def test_restore_into_an_empty_deployment_gives_equal_bars_parquet_and_redis_ticks(
    config: Config, store: HotStore, other_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shared_file(TARDIS)
    assert Ingestor(replace(config, batch_size=100), store, source_id(path)).run(open_feed(path)).total_accepted == 9_999
    with DagsterInstance.ephemeral() as instance:
        assert materialize_days(partitions_with_data(store, config.cold), instance, resources_for(config)) == []
    hot_before = store.read_ticks("BTCUSDT")
    assert 0 < len(hot_before.ticks) < 9_999, "Redis holds the last 2 h, the cold tier the whole day"

    use_deployment(monkeypatch, config)
    assert main(["--data-dir", str(config.data_dir), "backup", str(tmp_path / "backups"), "--redis"]) == 0
    (made,) = (tmp_path / "backups").iterdir()
    manifest = read_manifest(made)
    assert manifest.schema_version == max(m.version for m in MIGRATIONS)
    assert manifest.key_prefix == config.key_prefix and manifest.redis_keys > 0
    assert {f.path for f in manifest.files} >= {"warm.db", "redis.dump", f"cold/{PARTITION}/part-0.parquet"}

    restored = target_config(tmp_path, config, other_prefix)
    use_deployment(monkeypatch, restored)
    assert main(["--data-dir", str(restored.data_dir), "restore", str(made), "--redis"]) == 0

    pd.testing.assert_frame_equal(all_bars(restored), all_bars(config))
    assert len(all_bars(restored)) > 0
    pd.testing.assert_frame_equal(pd.read_parquet(Path(restored.cold_dir) / PARTITION), pd.read_parquet(Path(config.cold_dir) / PARTITION))
    count = "SELECT count(*), sum(volume) FROM read_parquet($g, hive_partitioning = true)"
    restored_count = duckdb.execute(count, {"g": str(Path(restored.cold_dir) / "ticks/*/*/*.parquet")}).fetchall()
    assert restored_count == duckdb.execute(count, {"g": str(Path(config.cold_dir) / "ticks/*/*/*.parquet")}).fetchall()
    assert restored_count[0][0] == 9_999

    hot_after = HotStore(store.client, Keys(other_prefix)).read_ticks("BTCUSDT")
    assert hot_after.last_entry == hot_before.last_entry
    np.testing.assert_array_equal(hot_after.ticks, hot_before.ticks)
    np.testing.assert_array_equal(hot_after.seq, hot_before.seq)
    assert keys_without_prefix(store.client, other_prefix) == keys_without_prefix(store.client, config.key_prefix)


def test_a_corrupted_or_missing_file_is_refused_before_anything_is_restored(config: Config, tmp_path: Path) -> None:
    small_deployment(config)
    made = backup(config, tmp_path / "backups")
    part = made / "cold" / PARTITION / "part-0.parquet"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.unlink()  # a hard link to the live file: replace it rather than write through it
    part.write_bytes(bytes(data))
    target = target_config(tmp_path, config)

    with pytest.raises(BackupError, match=f"checksum mismatch: cold/{PARTITION}/part-0.parquet"):
        restore(target, made)
    part.unlink()
    with pytest.raises(BackupError, match=f"missing: cold/{PARTITION}/part-0.parquet"):
        restore(target, made)
    assert not target.warm_db.exists() and not Path(target.cold_dir).exists()
    assert pd.read_parquet(Path(config.cold_dir) / PARTITION)["price"].tolist() == [1.0, 2.0, 3.0]


def test_restore_refuses_to_overwrite_data_unless_forced(config: Config, tmp_path: Path) -> None:
    small_deployment(config)
    made = backup(config, tmp_path / "backups")
    with pytest.raises(BackupError, match="refusing to overwrite existing data"):
        restore(config, made)
    assert main(["--data-dir", str(config.data_dir), "restore", str(made)]) == 2
    restore(config, made, force=True)
    assert pd.read_parquet(Path(config.cold_dir) / PARTITION)["seq"].tolist() == [0, 1, 2]


def test_every_backup_gets_a_new_directory_and_restore_without_a_snapshot_refuses_redis(
    config: Config, tmp_path: Path
) -> None:
    small_deployment(config)
    first, second = backup(config, tmp_path / "backups"), backup(config, tmp_path / "backups")
    assert first != second and first.parent == second.parent
    assert read_manifest(first).key_prefix is None
    with pytest.raises(BackupError, match="no Redis snapshot"):
        restore(target_config(tmp_path, config), first, with_redis=True)
    with pytest.raises(BackupError, match="inside the cold tier"):
        backup(config, Path(config.cold_dir) / "backups")


def test_a_manifest_naming_a_path_outside_the_backup_is_refused(config: Config, tmp_path: Path) -> None:
    small_deployment(config)
    made = backup(config, tmp_path / "backups")
    doc = json.loads((made / MANIFEST).read_text())
    doc["files"][-1]["path"] = "cold/../../escape.parquet"
    (made / MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(BackupError, match="unsafe path"):
        restore(target_config(tmp_path, config), made)


def test_the_warm_copy_is_a_consistent_snapshot_while_a_writer_commits(config: Config, tmp_path: Path) -> None:
    small_deployment(config)
    bars = compute_bars(np.arange(0, 600_000, 1000), np.full(600, 1.0), np.ones(600), np.ones(600, dtype=np.int8), "1m")
    stop, committed = threading.Event(), threading.Condition()
    commits = [0]

    def write() -> None:
        conn = connect(config.warm_db)
        while not stop.is_set():
            replace_bars(conn, f"S{commits[0]}", "1m", 0, DAY_MS, bars)
            with committed:
                commits[0] += 1
                committed.notify_all()
        conn.close()

    def next_commit() -> None:
        """Wait for the writer's next commit, so it commits between any two backups however
        the threads are scheduled."""
        with committed:
            seen = commits[0]
            assert committed.wait_for(lambda: commits[0] > seen, 30)

    writer = threading.Thread(target=write)
    writer.start()
    made = []
    try:
        for _ in range(5):
            next_commit()
            made.append(backup(config, tmp_path / "backups"))
    finally:
        stop.set()
        writer.join()
    symbols = []
    for directory in made:
        with sqlite3.connect(directory / "warm.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            per_symbol = conn.execute("SELECT count(*) FROM fractal_bars GROUP BY symbol").fetchall()
        assert {n for (n,) in per_symbol} <= {len(bars)}, "a transaction was copied half-way"
        symbols.append(len(per_symbol))
    assert all(symbols) and symbols[-1] > symbols[0], "the writer committed while the backups ran"
