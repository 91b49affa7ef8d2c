"""The scale-out path (docs/scaling.md) on real services: the Dagster instance on PostgreSQL
and Redis keys and commits that a Redis Cluster can place (one hash slot per symbol or
source). The hot tier on a real Redis Cluster is tested in test_redis_cluster.py, the cold
tier on S3 in test_cold_object_store.py.

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

from fractal_assets.config import Config
from fractal_assets.defs.assets.pipeline import build_days_asset
from fractal_assets.defs.materialize import materialize_days, partitions_with_data
from fractal_assets.defs.resources import resources_for
from fractal_assets.feeds import open_feed
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.market.calendar import SymbolDay

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


@pytest.mark.postgres
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
        for key in build_days_asset.keys:
            assert instance.get_materialized_partitions(key) == {day.date}, key
        event = instance.get_latest_materialization_event(AssetKey("bars_1m"))
        assert event.run_id == runs[0].run_id
        assert event.asset_materialization.metadata["rows"].value == 1
        assert instance.get_dynamic_partitions("date") == [day.date]

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
    assert sorted(stored) == sorted((key.to_string(), day.date) for key in build_days_asset.keys)
    assert not (home / "history" / "runs.db").exists(), "no SQLite run storage was created beside the yaml"


def key_builders() -> dict[str, dict[str, int]]:
    """``Keys`` methods by family, each with its number of arguments: ``symbol`` builds a key
    of one symbol (first parameter ``symbol``), ``source`` one of a source's bookkeeping (first
    parameter ``source_id``, except the untagged ingest metrics), ``global`` the rest."""
    families: dict[str, dict[str, int]] = {"symbol": {}, "source": {}, "global": {}}
    for name, method in inspect.getmembers(Keys, inspect.isfunction):
        params = list(inspect.signature(method).parameters)[1:]
        if name.startswith("_"):
            continue
        family = {"symbol": "symbol", "source_id": "source"}.get(params[0] if params else "", "global")
        families["global" if name == "ingest_metrics" else family][name] = len(params)
    return families


def global_family(key: str, keys: Keys) -> str | None:
    """The ``Keys`` method that builds this deployment-wide key, if any: an exact match for a
    method without arguments, a prefix match (``metrics:ingest:``...) for one with an id."""
    for name, arity in key_builders()["global"].items():
        built = getattr(keys, name)(*[""] * arity)
        if key == built or (arity and key.startswith(built)):
            return name
    return None


@pytest.mark.parametrize(("family", "tags"), [("symbol", ("BTCUSDT", "XRP_ETH", "ES.FUT")),
                                               ("source", ("sim:0123456789abcdef", "file:slots", "bench"))])
def test_every_key_of_a_symbol_or_a_source_carries_its_hash_tag_and_shares_its_slot(
    family: str, tags: tuple[str, ...]
) -> None:
    keys = Keys("deploy:")
    builders = key_builders()[family]
    assert {"symbol": {"ticks", "quotes", "order_book", "indicator", "checkpoint", "archived"},
            "source": {"source_checkpoint", "rejected_counts"}}[family] <= set(builders)
    for tag in tags:
        slots = set()
        for name, arity in builders.items():
            key = getattr(keys, name)(tag, *["x"] * (arity - 1))
            assert TAG.findall(key) == [tag], (name, key)
            slots.add(key_slot(key.encode()))
        assert slots == {key_slot(f"{{{tag}}}".encode())}, tag


def test_a_brace_in_the_key_prefix_would_take_the_place_of_the_symbol_tag() -> None:
    """Redis hashes the first {...} of a key: FRACTAL_KEY_PREFIX must not contain one (docs/scaling.md)."""
    keys = Keys("deploy:{eu}:")
    assert key_slot(keys.ticks("BTCUSDT").encode()) == key_slot(keys.ticks("ETHUSDT").encode()) == key_slot(b"{eu}")


def test_a_brace_in_a_source_id_is_refused() -> None:
    with pytest.raises(ValueError, match="no braces"):
        Keys().source_checkpoint("file:{x}")


@dataclass(frozen=True)
class Sent:
    """One pipeline or command sent to Redis: its atomic units (a MULTI/EXEC, an EVAL or a
    single command, each as the keys it touches) in the order sent."""

    units: tuple[tuple[str, ...], ...]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _unit(args: tuple) -> tuple[str, ...]:
    """The keys of one command: an EVAL's declared KEYS, else its first argument."""
    if args[0] == "EVAL":
        return tuple(_text(k) for k in args[3:3 + int(args[2])])
    return (_text(args[1]),)


def record_writes(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """Every pipeline and single command sent from now on, as atomic units."""
    sent: list[Sent] = []
    execute, command = redis.client.Pipeline.execute, redis.Redis.execute_command

    def pipeline(pipe: redis.client.Pipeline, raise_on_error: bool = True):
        units = tuple(_unit(args) for args, _ in pipe.command_stack)
        if pipe.transaction and units:
            units = (tuple(key for unit in units for key in unit),)
        sent.append(Sent(units))
        return execute(pipe, raise_on_error)

    def single(client: redis.Redis, *args, **options):
        if len(args) > 1:
            sent.append(Sent((_unit(args),)))
        return command(client, *args, **options)

    monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline)
    monkeypatch.setattr(redis.Redis, "execute_command", single)
    return sent


def owner(key: str, keys: Keys, symbols: set[str]) -> str:
    """The ``Keys`` method of a deployment-wide key, else the symbol or source whose slot the key lives in."""
    family = global_family(key, keys)
    if family is not None:
        tags = TAG.findall(key)
        assert not tags or global_family(tags[0], keys) is not None, f"{key}: tagged, but not with a global key's name"
        return family
    tags = TAG.findall(key)
    assert len(tags) == 1, f"untagged key {key}"
    assert key_slot(key.encode()) == key_slot(f"{{{tags[0]}}}".encode())
    return tags[0]


def test_every_write_of_an_ingest_commit_stays_in_one_slot(
    config: Config, store: HotStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What lets a Redis Cluster take the commit (test_redis_cluster.py runs it on one): each
    atomic unit is one symbol's keys or one source's, while one pipeline still carries the
    writes of every symbol of a commit."""
    symbols = {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    sources = {"sim:slots", "file:slots"}
    sent = record_writes(monkeypatch)
    spec = SimulatorSpec(symbols=tuple(sorted(symbols)), rate=50, duration_s=30, start_ms=START_MS, seed=5)
    Ingestor(config, store, "sim:slots").run(simulate(spec))
    csv = tmp_path / "ticks.csv"
    csv.write_text("ts,symbol,price,volume,side\n"
                   f"{START_MS + 60_000},BTCUSDT,10,1,1\n{START_MS + 60_001},ETHUSDT,-5,1,1\n")
    Ingestor(config, store, "file:slots").run(open_feed(csv))

    owners: set[str] = set()
    for pipe in sent:
        for unit in pipe.units:
            assert len({key_slot(key.encode()) for key in unit}) == 1, f"a unit spans slots: {unit}"
            owners |= {owner(key, store.keys, symbols) for key in unit}
    assert owners >= symbols | sources | {"symbols", "ingest_metrics"}
    spans = [len({owner(unit[0], store.keys, symbols) for unit in pipe.units} & symbols) for pipe in sent]
    assert max(spans) == len(symbols), "one pipeline carries the writes of every symbol of a commit"

    stored = [k.decode() for k in store.client.scan_iter(match=f"{store.keys.prefix}*", count=1000)]
    assert {owner(key, store.keys, symbols) for key in stored} >= symbols | sources | {"symbols"}
