"""The scale-out path (docs/scaling.md) on real services: the Dagster instance on PostgreSQL
and Redis keys that a Redis Cluster can place (one hash slot per symbol). The cold tier on
S3 is tested in test_cold_object_store.py.

The PostgreSQL test skips with a reason when dagster-postgres is not installed or no
server answers on ``DAGSTER_PG_HOST:DAGSTER_PG_PORT`` (default 127.0.0.1:5432).
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from redis.crc import key_slot

from fractal_assets.backfill import PIPELINE, materialize_days, partitions_with_data
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest import Ingestor
from fractal_assets.partitions import SymbolDay
from fractal_assets.resources import resources_for

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
    assert partitions_with_data(store, config.cold) == [day]

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
