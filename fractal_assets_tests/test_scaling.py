"""The scale-out path (docs/scaling.md) on real services: the Dagster instance on PostgreSQL,
Redis keys that a Redis Cluster can place (one hash slot per symbol), and the cold tier's
write pattern on a real S3 implementation.

The PostgreSQL test skips with a reason when dagster-postgres is not installed or no
server answers on ``DAGSTER_PG_HOST:DAGSTER_PG_PORT`` (default 127.0.0.1:5432); the S3
tests start Ceph's RADOS Gateway on loopback and skip when Ceph is not installed.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import redis
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from redis.crc import key_slot

from fractal_assets.backfill import PIPELINE, materialize_days, partitions_with_data
from fractal_assets.cold.parquet import PART, TICK_ENCODINGS, TICK_SCHEMA, ZSTD_LEVEL, write_ticks
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest import Ingestor
from fractal_assets.partitions import SymbolDay
from fractal_assets.resources import resources_for
from fractal_assets_tests.conftest import free_port

if TYPE_CHECKING:
    import psycopg2.extensions

REPO = Path(__file__).resolve().parents[1]
START_MS = 1_723_118_400_000
"""2024-08-08T12:00:00Z."""
PG_DEFAULTS = {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "postgres",
               "DAGSTER_PG_PASSWORD": ""}
"""The connection settings of dagster-postgres.yaml, as documented there; the environment wins."""
TAG = re.compile(r"\{([^}]*)\}")


@dataclass(frozen=True)
class PgServer:
    """Connection settings of a reachable PostgreSQL server."""

    host: str
    port: int
    user: str
    password: str

    def connect(self, dbname: str) -> psycopg2.extensions.connection:
        """psycopg2 comes with the optional dagster-postgres, hence the import here."""
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=dbname, connect_timeout=3)


@pytest.fixture
def pg_database() -> Iterator[tuple[PgServer, str]]:
    """A fresh, empty database on the server, dropped afterwards."""
    pytest.importorskip("dagster_postgres", reason="dagster-postgres is not installed (pip install -e '.[postgres]')")
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 is not installed (it comes with dagster-postgres)")
    settings = {k: os.environ.get(k, v) for k, v in PG_DEFAULTS.items()}
    server = PgServer(settings["DAGSTER_PG_HOST"], int(settings["DAGSTER_PG_PORT"]), settings["DAGSTER_PG_USER"],
                      settings["DAGSTER_PG_PASSWORD"])
    try:
        admin = server.connect("postgres")
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {server.host}:{server.port} as {server.user}: {exc}".strip())
    admin.autocommit = True
    name = f"fractal_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield server, name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_a_partition_run_and_its_materializations_are_stored_in_postgresql(
    config: Config, store: HotStore, tmp_path: Path, pg_database: tuple[PgServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, db_name = pg_database
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster-postgres.yaml", home / "dagster.yaml")
    for name, value in (("DAGSTER_HOME", str(home)), ("DAGSTER_PG_HOST", server.host),
                        ("DAGSTER_PG_PORT", str(server.port)), ("DAGSTER_PG_USER", server.user),
                        ("DAGSTER_PG_PASSWORD", server.password), ("DAGSTER_PG_DB", db_name)):
        monkeypatch.setenv(name, value)
    spec = SimulatorSpec(symbols=("BTCUSDT",), rate=20, duration_s=60, start_ms=START_MS, seed=3)
    Ingestor(config, store, "sim:pg-test").run(simulate(spec))
    day = SymbolDay("BTCUSDT", "2024-08-08")
    assert partitions_with_data(store, config.cold_dir) == [day]

    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert materialize_days([day], instance, resources_for(config)) == []
        runs = instance.get_runs()
        assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS]
        assert runs[0].tags["fractal/source"] == "fractal materialize"
        for asset in PIPELINE:
            assert instance.get_materialized_partitions(asset.key) == {day.key}, asset.key
        event = instance.get_latest_materialization_event(AssetKey("bars_1m"))
        assert event.run_id == runs[0].run_id
        assert event.asset_materialization.metadata["rows"].value == 1
        assert instance.get_dynamic_partitions("symbol") == ["BTCUSDT"]

    conn = server.connect(db_name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT run_id, status FROM runs")
            assert cur.fetchall() == [(runs[0].run_id, "SUCCESS")]
            cur.execute("SELECT asset_key, partition FROM event_logs "
                        "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND run_id = %s", (runs[0].run_id,))
            stored = cur.fetchall()
    finally:
        conn.close()
    assert sorted(stored) == sorted((asset.key.to_string(), str(day.key)) for asset in PIPELINE)
    assert not (home / "history" / "runs.db").exists(), "no SQLite run storage was created beside the yaml"


def key_builders() -> tuple[dict[str, int], dict[str, int]]:
    """``Keys`` methods that build a key of one symbol (first parameter ``symbol``) and the
    deployment-wide ones, each with its number of arguments."""
    per_symbol, global_ = {}, {}
    for name, method in inspect.getmembers(Keys, inspect.isfunction):
        params = list(inspect.signature(method).parameters)[1:]
        if not name.startswith("_"):
            (per_symbol if params[:1] == ["symbol"] else global_)[name] = len(params)
    return per_symbol, global_


def global_family(key: str, keys: Keys) -> str | None:
    """The ``Keys`` method that builds this deployment-wide key, if any: an exact match for a
    method without arguments, a prefix match (``ckpt:source:``...) for one with an id."""
    for name, arity in key_builders()[1].items():
        built = getattr(keys, name)(*[""] * arity)
        if key == built or (arity and key.startswith(built)):
            return name
    return None


def test_every_per_symbol_key_carries_the_symbol_hash_tag_and_shares_its_slot() -> None:
    keys = Keys("deploy:")
    builders = key_builders()[0]
    assert {"ticks", "quotes", "order_book", "indicator", "checkpoint", "archived"} <= set(builders)
    for symbol in ("BTCUSDT", "XRP_ETH", "ES.FUT"):
        slots = set()
        for name, arity in builders.items():
            key = getattr(keys, name)(symbol, *["x"] * (arity - 1))
            assert TAG.findall(key) == [symbol], (name, key)
            slots.add(key_slot(key.encode()))
        assert slots == {key_slot(f"{{{symbol}}}".encode())}, symbol


def test_a_brace_in_the_key_prefix_would_take_the_place_of_the_symbol_tag() -> None:
    """Redis hashes the first {...} of a key: FRACTAL_KEY_PREFIX must not contain one (docs/scaling.md)."""
    keys = Keys("deploy:{eu}:")
    assert key_slot(keys.ticks("BTCUSDT").encode()) == key_slot(keys.ticks("ETHUSDT").encode()) == key_slot(b"{eu}")


@dataclass(frozen=True)
class Sent:
    """One pipeline sent to Redis: MULTI/EXEC or not, and the key of each command."""

    transaction: bool
    keys: tuple[str, ...]


def record_pipelines(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """Keys of every pipeline executed from now on (each command's first argument is its key)."""
    sent: list[Sent] = []
    execute = redis.client.Pipeline.execute

    def recording(pipe: redis.client.Pipeline, raise_on_error: bool = True):
        keys = tuple(args[1].decode() if isinstance(args[1], bytes) else str(args[1]) for args, _ in pipe.command_stack)
        sent.append(Sent(pipe.transaction, keys))
        return execute(pipe, raise_on_error)

    monkeypatch.setattr(redis.client.Pipeline, "execute", recording)
    return sent


def owner(key: str, keys: Keys, symbols: set[str]) -> str:
    """The ``Keys`` method of a deployment-wide key, else the symbol whose slot the key lives in."""
    family = global_family(key, keys)
    if family is not None:
        assert not TAG.search(key), key
        return family
    tags = TAG.findall(key)
    assert len(tags) == 1 and tags[0] in symbols, f"untagged or unknown per-symbol key {key}"
    assert key_slot(key.encode()) == key_slot(f"{{{tags[0]}}}".encode())
    return tags[0]


def test_an_ingest_commit_touches_one_slot_per_symbol_plus_the_global_keys(
    config: Config, store: HotStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    symbols = {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    sent = record_pipelines(monkeypatch)
    spec = SimulatorSpec(symbols=tuple(sorted(symbols)), rate=50, duration_s=30, start_ms=START_MS, seed=5)
    Ingestor(config, store, "sim:slots").run(simulate(spec))
    csv = tmp_path / "ticks.csv"
    csv.write_text("ts,symbol,price,volume,side\n"
                   f"{START_MS + 60_000},BTCUSDT,10,1,1\n{START_MS + 60_001},ETHUSDT,-5,1,1\n")
    Ingestor(config, store, "file:slots").run(open_feed(csv))

    commits = [s for s in sent if s.transaction and s.keys]
    assert commits, "ingest commits in MULTI/EXEC transactions"
    global_families: set[str] = set()
    spans = []
    for commit in commits:
        owners = {key: owner(key, store.keys, symbols) for key in commit.keys}
        per_symbol = {key: o for key, o in owners.items() if o in symbols}
        commit_symbols = set(per_symbol.values())
        assert len({key_slot(k.encode()) for k in per_symbol}) == len(commit_symbols), "one slot per symbol"
        global_families |= set(owners.values()) - symbols
        spans.append(len(commit_symbols))
    assert {"symbols", "dead_letter", "rejected_counts", "accepted_counts", "source_checkpoint"} <= global_families
    assert max(spans) == len(symbols), "a commit spans every symbol's slot: one cluster transaction cannot hold it"

    stored = [k.decode() for k in store.client.scan_iter(match=f"{store.keys.prefix}*", count=1000)]
    assert {owner(key, store.keys, symbols) for key in stored} >= symbols | {"symbols", "source_checkpoint"}


CEPH_TOOLS = ("ceph", "ceph-authtool", "monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin")
S3_KEY, S3_SECRET = "fractal-test", "fractal-test-secret"
CEPH_START_TIMEOUT_S = 90
CEPH_CLIENT_ATTEMPTS = 5
NOT_FOUND = re.compile(r"NO_?SUCH_?KEY|RESOURCE_NOT_FOUND|HTTP status 404", re.IGNORECASE)
"""How the AWS SDK names a 404 in pyarrow's errors, depending on the request that met it."""


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
    # Newer AWS SDKs send aws-chunked uploads with trailing checksums, which stores such as
    # Ceph Pacific reject (HTTP 411): ask for checksums only where the API requires them.
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
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
    """Why write_atomic's rename does not carry over to S3: an open local file keeps the old
    inode, while a Parquet read on S3 is several ranged GETs of whatever the key holds now."""
    fs, bucket = s3
    old, new = tick_table(1, 50_000), tick_table(2, 80_000)
    local = write_ticks(tmp_path / "cold", "BTCUSDT", "2024-08-08", old)
    reading = pq.ParquetFile(local)
    write_ticks(tmp_path / "cold", "BTCUSDT", "2024-08-08", new)
    assert reading.read().equals(old)

    key = f"{bucket}/ticks/symbol=BTCUSDT/date=2024-08-08/{PART}"
    put_object(fs, key, old)
    reading = pq.ParquetFile(fs.open_input_file(key))
    put_object(fs, key, new)
    try:
        torn = reading.read()
    except (OSError, pa.ArrowInvalid):
        return
    assert not torn.equals(old), "the footer of the old object was applied to the bytes of the new one"


def generation_key(prefix: str, generation: int) -> str:
    """Zero-padded, so the newest generation is also the greatest name."""
    return f"{prefix}/part-0.g{generation:010d}.parquet"


def newest_generation(fs: pafs.S3FileSystem, prefix: str) -> str:
    """The partition's current object: the highest generation listed (S3 and RGW lists are
    strongly consistent, so a completed upload is listed at once)."""
    return max(info.path for info in fs.get_file_info(pafs.FileSelector(prefix)) if info.path.endswith(".parquet"))


def vanished(exc: OSError) -> bool:
    """Whether a read failed because its object was deleted (HTTP 404), which pyarrow reports
    as FileNotFoundError when opening and as an AWS error once a read is under way."""
    return isinstance(exc, FileNotFoundError) or bool(NOT_FOUND.search(str(exc)))


def test_cold_tier_on_s3_with_immutable_generations_never_tears_a_read_and_duckdb_reads_it(
    s3: tuple[pafs.S3FileSystem, str]
) -> None:
    """The S3 replacement for write_atomic: each write is a new object, never an overwrite;
    readers take the newest one and retry when a superseded one is deleted under them."""
    fs, bucket = s3
    prefix = f"{bucket}/ticks/symbol=BTCUSDT/date=2024-08-08"
    sizes = {v: 50_000 + 10_000 * v for v in range(9)}
    put_object(fs, generation_key(prefix, 0), tick_table(0, sizes[0]))
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    retries = 0
    done = threading.Event()

    def read_while_replaced() -> None:
        nonlocal retries
        while not done.is_set():
            try:
                table = pq.read_table(newest_generation(fs, prefix), filesystem=fs)
            except OSError as exc:
                if not vanished(exc):
                    errors.append(exc)
                    return
                retries += 1
                continue
            versions = set(table.column("ts").to_numpy().tolist())
            seen.append((versions.pop() if len(versions) == 1 else -1, table.num_rows))

    reader = threading.Thread(target=read_while_replaced)
    reader.start()
    for version in range(1, 9):
        put_object(fs, generation_key(prefix, version), tick_table(version, sizes[version]))
        fs.delete_file(generation_key(prefix, version - 1))
    done.set()
    reader.join(timeout=120)
    assert not errors, errors[0]
    assert seen and all(v >= 0 and rows == sizes[v] for v, rows in seen), "every read is one whole version"
    assert len({v for v, _ in seen}) >= 2, "reads overlapped replacements"

    eth = f"{bucket}/ticks/symbol=ETHUSDT/date=2024-08-09"
    put_object(fs, generation_key(eth, 3), tick_table(9, 1000))
    current = [newest_generation(fs, p) for p in (prefix, eth)]
    dataset = pads.dataset(current, filesystem=fs, format="parquet",
                           partitioning=pads.partitioning(flavor="hive"), partition_base_dir=f"{bucket}/ticks")
    conn = duckdb.connect()
    conn.register("ticks", dataset)
    counts = conn.execute(
        "SELECT symbol, CAST(date AS VARCHAR), count(*), max(ts) FROM ticks GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert counts == [("BTCUSDT", "2024-08-08", sizes[8], 8), ("ETHUSDT", "2024-08-09", 1000, 9)]
