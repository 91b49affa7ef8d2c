"""The cold tier on a real S3 implementation (Ceph's RADOS Gateway, started on loopback; the
tests skip when Ceph is not installed: apt-get install radosgw ceph-mon ceph-osd).

``FRACTAL_COLD_DIR=s3://bucket/prefix`` with the endpoint and credentials in the AWS
variables: archiving, bars, backtest reads through DuckDB, compaction, backups and the health
check run against the object store, and a reader never sees a torn partition.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, materialize

from fractal_assets.access.reads import get_backtest_data
from fractal_assets.cold import decimals
from fractal_assets.cold import store as cold_store
from fractal_assets.cold.compaction import compact_partition
from fractal_assets.cold.parquet import (
    TICK_ENCODINGS,
    TICK_SCHEMA,
    ZSTD_LEVEL,
    part_files,
    read_ticks,
    tick_partition,
    to_parquet,
    write_ticks,
)
from fractal_assets.cold.store import open_cold
from fractal_assets.config import Config
from fractal_assets.defs.assets.maintenance import cold_compaction
from fractal_assets.defs.materialize import materialize_days, partitions_with_data
from fractal_assets.defs.resources import ColdTierResource, resources_for
from fractal_assets.hot.store import HotStore
from fractal_assets.market.calendar import DAY_MS, day_start_ms
from fractal_assets.ops.backup import backup, restore
from fractal_assets.ops.health import check_health
from fractal_assets_tests.support import free_port, ingest_file

pytestmark = [pytest.mark.ceph, pytest.mark.xdist_group("ceph")]

CEPH_TOOLS = ("ceph", "ceph-authtool", "monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin")
S3_KEY, S3_SECRET = "fractal-test", "fractal-test-secret"
CEPH_START_TIMEOUT_S = 90
CEPH_CLIENT_ATTEMPTS = 5
CHECKSUMS_WHEN_REQUIRED = {"AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
                           "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}
"""Newer AWS SDKs (pyarrow's, botocore) send uploads with trailing checksums, which stores such as
Ceph Pacific refuse (HTTP 411): ask for checksums only where the API requires them."""


@dataclass(frozen=True)
class S3Server:
    """An S3 endpoint with the credentials of one user."""

    endpoint: str
    access_key: str
    secret_key: str



def ceph_conf(root: Path, fsid: str, mon_port: int, rgw_port: int) -> str:
    """A one-monitor, one-OSD (in memory) Ceph cluster without authentication, and its RADOS
    Gateway: the smallest real S3 implementation that Debian packages. The OSD does not place
    itself in the CRUSH map: the command it sends for that at boot can race its first monitor
    map and be refused ('wrong fsid', see :func:`run`), which left it stuck; the fixture
    places it instead."""
    return f"""[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
run dir = {root}/run
log file = {root}/log/$name.log
admin socket = {root}/run/$name.asok
keyring = {root}/keyring
[mon.a]
mon data = {root}/mon.a
[osd.0]
osd data = {root}/osd.0
osd objectstore = memstore
osd class update on start = false
osd crush update on start = false
memstore device bytes = 1073741824
[client.rgw]
rgw data = {root}/rgw
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
"""


def run(*cmd: str) -> subprocess.CompletedProcess:
    """A Ceph setup command; the cluster commands give up after 60 s instead of hanging.

    A client's first command can reach the monitor before the client has its monitor map
    and be refused as from the wrong cluster (EPERM, 'wrong fsid'): that one is retried.
    """
    for _ in range(CEPH_CLIENT_ATTEMPTS - 1):
        done = subprocess.run(cmd, capture_output=True, timeout=60)
        if done.returncode == 0 or b"EPERM" not in done.stderr:
            break
        time.sleep(0.2)
    else:
        done = subprocess.run(cmd, capture_output=True, timeout=60)
    done.check_returncode()
    return done


def ceph_logs(root: Path) -> str:
    return "\n".join(f"{p.name}: {p.read_text()[-1500:]}" for p in sorted((root / "log").glob("*.log")))


def wait_for(what: str, ready: Callable[[], bool], deadline: float, root: Path) -> None:
    """Poll ``ready`` until the deadline, then fail with the tail of every Ceph log."""
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"Ceph: {what} not ready in {CEPH_START_TIMEOUT_S} s\n{ceph_logs(root)}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server on loopback: Ceph's RADOS Gateway over a throwaway cluster."""
    missing = [tool for tool in CEPH_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"no S3-compatible server: {', '.join(missing)} not installed "
                    "(apt-get install radosgw ceph-mon ceph-osd)")
    root = tmp_path_factory.mktemp("ceph")
    for sub in ("run", "log", "mon.a", "osd.0", "rgw"):
        (root / sub).mkdir()
    mon_port, rgw_port = free_port(), free_port()
    fsid = str(uuid.uuid4())
    conf = root / "ceph.conf"
    conf.write_text(ceph_conf(root, fsid, mon_port, rgw_port))
    ceph = ["-c", str(conf)]
    run("ceph-authtool", "--create-keyring", str(root / "keyring"), "--gen-key", "-n", "mon.",
        "--cap", "mon", "allow *")
    run("monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"[v1:127.0.0.1:{mon_port}]", str(root / "monmap"))
    run("ceph-mon", *ceph, "--mkfs", "-i", "a", "--monmap", str(root / "monmap"))
    daemons: list[subprocess.Popen] = []

    def start(*cmd: str) -> None:
        daemons.append(subprocess.Popen([*cmd[:1], *ceph, "-f", *cmd[1:]], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True))

    def osd_up() -> bool:
        try:
            return json.loads(run("ceph", *ceph, "osd", "stat", "-f", "json").stdout)["num_up_osds"] == 1
        except subprocess.CalledProcessError:
            return False

    try:
        start("ceph-mon", "-i", "a")
        deadline = time.monotonic() + CEPH_START_TIMEOUT_S
        osd_uuid = str(uuid.uuid4())
        run("ceph", *ceph, "--connect-timeout", "30", "osd", "new", osd_uuid)
        run("ceph", *ceph, "osd", "crush", "add", "osd.0", "1.0", "root=default", "host=localhost")
        run("ceph-osd", *ceph, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        start("ceph-osd", "-i", "0")
        wait_for("OSD", osd_up, deadline, root)
        start("radosgw", "-n", "client.rgw")
        run("radosgw-admin", *ceph, "user", "create", "--uid=fractal", "--display-name=fractal",
            f"--access-key={S3_KEY}", f"--secret={S3_SECRET}")
        endpoint = f"http://127.0.0.1:{rgw_port}"
        wait_for("RADOS Gateway", lambda: http_ok(endpoint), deadline, root)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        stop_all(daemons)
        raise AssertionError(f"Ceph setup failed: {exc}\n{getattr(exc, 'stderr', b'')!r}\n{ceph_logs(root)}") from exc
    except BaseException:
        stop_all(daemons)
        raise
    try:
        yield S3Server(endpoint, S3_KEY, S3_SECRET)
    finally:
        stop_all(daemons)


def stop_all(daemons: list[subprocess.Popen]) -> None:
    """Stop the Ceph daemons this module started, newest first."""
    for daemon in reversed(daemons):
        daemon.terminate()
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=20)


def http_ok(url: str) -> bool:
    """Whether the URL answers 200 (the gateway lists the anonymous user's buckets)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> tuple[pafs.S3FileSystem, str]:
    """pyarrow's S3 filesystem and a fresh bucket of the server."""
    for name, value in CHECKSUMS_WHEN_REQUIRED.items():
        monkeypatch.setenv(name, value)
    fs = pafs.S3FileSystem(access_key=s3_server.access_key, secret_key=s3_server.secret_key,
                           endpoint_override=s3_server.endpoint, scheme="http", region="us-east-1",
                           allow_bucket_creation=True)
    bucket = f"cold-{uuid.uuid4().hex[:12]}"
    fs.create_dir(bucket)
    return fs, bucket


def put_object(fs: pafs.S3FileSystem, key: str, table: pa.Table) -> None:
    """One upload of a whole partition file with the cold tier's encodings: S3 makes the object
    visible only once it is complete, so the upload itself needs no temporary file."""
    pq.write_table(table, key, filesystem=fs, compression="zstd", compression_level=ZSTD_LEVEL,
                   use_dictionary=False, column_encoding=TICK_ENCODINGS, write_statistics=True)


def tick_table(version: int, rows: int) -> pa.Table:
    """Ticks whose every row names the version of the partition they were written in."""
    return pa.table({"ts": np.full(rows, version, np.int64), "price": np.full(rows, float(version)),
                     "volume": np.ones(rows), "side": np.ones(rows, np.int8), "seq": np.arange(rows, dtype=np.int64)},
                    schema=TICK_SCHEMA)


def test_a_reader_keeps_its_local_partition_across_a_replace_but_not_its_s3_object_across_an_overwrite(
    s3: tuple[pafs.S3FileSystem, str], tmp_path: Path
) -> None:
    """Why cold.store writes new objects on S3 instead of replacing files as on disk: an open local file keeps the old
    inode, while a Parquet read on S3 is several ranged GETs of whatever the key holds now."""
    fs, bucket = s3
    old, new = tick_table(1, 50_000), tick_table(2, 80_000)
    local = open_cold(str(tmp_path / "cold"))
    reading = pq.ParquetFile(write_ticks(local, "BTCUSDT", "2024-08-08", old))
    write_ticks(local, "BTCUSDT", "2024-08-08", new)
    assert decimals.decode(reading.read()).equals(old)

    key = f"{bucket}/ticks/symbol=BTCUSDT/date=2024-08-08/part-0.parquet"
    put_object(fs, key, old)
    reading = pq.ParquetFile(fs.open_input_file(key))
    put_object(fs, key, new)
    try:
        torn = reading.read()
    except (OSError, pa.ArrowInvalid):
        return
    assert not torn.equals(old), "the footer of the old object was applied to the bytes of the new one"




@pytest.fixture
def s3_cold(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://BUCKET/cold`` on a fresh bucket, with the server's endpoint and credentials in
    the AWS variables, as a deployment would set them."""
    for name, value in {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
                        "AWS_ENDPOINT_URL": s3_server.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
                        **CHECKSUMS_WHEN_REQUIRED}.items():
        monkeypatch.setenv(name, value)
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[s3]')")
    bucket = f"cold-{uuid.uuid4().hex[:12]}"
    open_cold(f"s3://{bucket}").fs.mkdir(bucket)
    return f"s3://{bucket}/cold"


def two_days(symbol: str) -> pd.DataFrame:
    """Two UTC days of trades with prices and sizes of a few decimals."""
    rng = np.random.default_rng(5)
    start = day_start_ms("2024-08-08")
    ts = start + np.sort(rng.integers(0, 2 * DAY_MS, 6_000))
    return pd.DataFrame({"ts": ts, "symbol": symbol, "price": np.round(100 + np.cumsum(rng.normal(0, 0.05, len(ts))), 2),
                         "volume": np.round(rng.exponential(1.0, len(ts)), 4),
                         "side": rng.choice(np.array([1, -1], dtype=np.int8), len(ts))})


def parquet_bytes(table: pa.Table) -> bytes:
    return to_parquet(table, TICK_ENCODINGS)


def ingest(config: Config, store: HotStore, trades: pd.DataFrame, path: Path) -> None:
    trades.to_parquet(path)
    assert ingest_file(config, store, path).total_accepted == len(trades)


def objects(config: Config) -> list[str]:
    return config.cold.files()


def test_the_pipeline_archives_to_s3_and_reads_it_back_through_duckdb(
    config: Config, store: HotStore, s3_cold: str, tmp_path: Path
) -> None:
    config = replace(config, cold_dir=s3_cold, retention_hours=0.0)
    trades = two_days("S3T")
    ingest(config, store, trades, tmp_path / "trades.parquet")
    days = partitions_with_data(store, config.cold)
    with DagsterInstance.ephemeral() as instance:
        assert materialize_days(days, instance, resources_for(config)) == []
    stored = objects(config)
    assert [f for f in stored if f.startswith("ticks/")] and all(
        re.fullmatch(r"ticks/symbol=S3T/date=2024-08-0[89]/part-0\.g\d{20}\.parquet", f) for f in stored
        if f.startswith("ticks/")), stored
    assert partitions_with_data(store, config.cold) == days, "the partitions are listed from the bucket"

    got = get_backtest_data("S3T", "2024-08-08", "2024-08-09", config=config, use_cache=False)
    want = trades.drop(columns="symbol").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["ts", "price", "volume", "side"]], want, check_dtype=False)
    assert got["seq"].is_unique
    bars = get_backtest_data("S3T", "2024-08-08", "2024-08-09", "bars", "1d", config=config, use_cache=False)
    assert bars["tick_count"].tolist() == [int((trades.ts < day_start_ms("2024-08-09")).sum()),
                                           int((trades.ts >= day_start_ms("2024-08-09")).sum())]
    assert check_health(config).cold_writable


def test_a_rewrite_is_a_new_generation_and_superseded_ones_go_after_the_grace_period(
    config: Config, s3_cold: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = open_cold(s3_cold)
    first, second = tick_table(1, 1_000), tick_table(2, 2_000)
    path1 = write_ticks(cold, "GEN", "2024-08-08", first)
    path2 = write_ticks(cold, "GEN", "2024-08-08", second)
    directory = tick_partition(cold, "GEN", "2024-08-08")
    assert path1 != path2 and part_files(cold, directory) == [path2]
    assert read_ticks(cold, "GEN", "2024-08-08").equals(second)
    assert cold.exists(path1), "a superseded object stays readable during the grace period"
    assert cold.sweep() == 0
    monkeypatch.setattr(cold_store, "GRACE_S", 0.0)
    path3 = write_ticks(cold, "GEN", "2024-08-08", first)
    assert sorted(cold.names(directory)) == [path3.rsplit("/", 1)[1]]


def test_the_nightly_sweep_deletes_generations_of_parts_never_written_again(
    config: Config, s3_cold: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = open_cold(s3_cold)
    for day in ("2024-08-08", "2024-08-09"):
        for version in (1, 2):
            write_ticks(cold, "SWP", day, tick_table(version, 100))
    assert len(cold.files()) == 4, "each superseded generation is still in its grace period"
    monkeypatch.setattr(cold_store, "GRACE_S", 0.0)
    with DagsterInstance.ephemeral() as instance:
        result = materialize([cold_compaction], instance=instance, resources={"cold": ColdTierResource(root=s3_cold)})
        metadata = result.asset_materializations_for_node("cold_compaction")[0].metadata
    assert metadata["superseded_objects_deleted"].value == 2
    assert len(cold.files()) == 2
    assert all(read_ticks(cold, "SWP", day).column("price").to_pylist() == [2.0] * 100 for day in ("2024-08-08", "2024-08-09"))


def test_compaction_merges_parts_on_s3(config: Config, s3_cold: str) -> None:
    cold = open_cold(s3_cold)
    directory = tick_partition(cold, "CMP", "2024-08-08")
    early, late = tick_table(1, 500), tick_table(1, 700)
    late = late.set_column(4, "seq", pa.array(np.arange(300, 1000, dtype=np.int64)))
    write_ticks(cold, "CMP", "2024-08-08", early)
    cold.put(f"{directory}/part-1.g{time.time_ns():020d}.parquet", parquet_bytes(late))
    assert read_ticks(cold, "CMP", "2024-08-08").num_rows == 1000
    assert compact_partition(cold, directory) == 2
    assert [f.rsplit("/", 1)[1][:7] for f in part_files(cold, directory)] == ["part-0."]
    assert read_ticks(cold, "CMP", "2024-08-08").column("seq").to_pylist() == list(range(1000))


def test_backup_of_an_s3_cold_tier_restores_into_a_local_one(
    config: Config, s3_cold: str, tmp_path: Path
) -> None:
    remote = replace(config, cold_dir=s3_cold)
    table = tick_table(3, 4_000)
    write_ticks(remote.cold, "BAK", "2024-08-08", table)
    made = backup(remote, tmp_path / "backups")
    local = replace(config, data_dir=tmp_path / "restored", warm_db=tmp_path / "restored" / "warm.db",
                    cold_dir=str(tmp_path / "restored" / "cold"))
    restore(local, made)
    assert read_ticks(local.cold, "BAK", "2024-08-08").equals(table)


def test_a_reader_never_sees_a_torn_partition_while_it_is_rewritten(config: Config, s3_cold: str) -> None:
    cold = open_cold(s3_cold)
    sizes = {v: 20_000 + 5_000 * v for v in range(8)}
    write_ticks(cold, "TORN", "2024-08-08", tick_table(0, sizes[0]))
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    done, read = threading.Event(), threading.Condition()

    def read_while_rewritten() -> None:
        while not done.is_set():
            try:
                table = read_ticks(cold, "TORN", "2024-08-08")
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                with read:
                    errors.append(exc)
                    read.notify_all()
                return
            versions = set(table.column("price").to_numpy().tolist())
            with read:
                seen.append((int(versions.pop()) if len(versions) == 1 else -1, table.num_rows))
                read.notify_all()

    def two_more_reads() -> None:
        """Wait until a read has started after the last write, however the threads are scheduled."""
        with read:
            count = len(seen)
            assert read.wait_for(lambda: len(seen) >= count + 2 or errors, 60)

    reader = threading.Thread(target=read_while_rewritten)
    reader.start()
    for version in range(1, 8):
        write_ticks(cold, "TORN", "2024-08-08", tick_table(version, sizes[version]))
        two_more_reads()
    done.set()
    reader.join(timeout=120)
    assert not errors, errors[0]
    assert seen and all(v >= 0 and rows == sizes[v] for v, rows in seen), "every read is one whole version"
    assert len({v for v, _ in seen}) >= 2, "reads overlapped rewrites"
