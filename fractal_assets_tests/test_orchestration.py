"""The hot-tier sensor, the schedules and warm-tier retention, on real Redis, SQLite and Parquet."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from dagster import (
    DagsterInstance,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from fractal_assets.cold.archive import HotSlice, archive_day
from fractal_assets.cold.parquet import (
    TICK_ENCODINGS,
    TICK_SCHEMA,
    part_files,
    read_part,
    read_partition,
    read_ticks,
    tick_partition,
    to_parquet,
    write_ticks,
)
from fractal_assets.cold.store import open_cold
from fractal_assets.config import Config
from fractal_assets.defs.assets.maintenance import cold_compaction
from fractal_assets.defs.automation import (
    CLOSE_GRACE_MS,
    finalize_yesterday,
    hot_tier_sensor,
    intraday,
    intraday_cron,
    nightly_compaction,
)
from fractal_assets.defs.materialize import materialize_days
from fractal_assets.defs.resources import ColdTierResource, resources_for
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets.market.bars import TIMEFRAMES, compute_bars
from fractal_assets.market.calendar import DAY_MS, SymbolDay
from fractal_assets.market.ticks import FeedChunk, RawTrades
from fractal_assets.pipeline.build import Sources, build_days
from fractal_assets.warm.bars import read_bars, replace_bars
from fractal_assets.warm.db import connect
from fractal_assets.warm.retention import BAR_SCHEMA, bar_partition, prune_bars, prune_derived
from fractal_assets.warm.schema import migrate

DAY1 = 1_700_006_400_000  # 2023-11-15T00:00:00Z


def chunk(symbol: str, ts: list[int], first_seq: int = 0) -> FeedChunk:
    n = len(ts)
    seq = np.arange(first_seq, first_seq + n, dtype=np.int64)
    trades = RawTrades(seq, np.array([symbol] * n, dtype=object), np.array(ts, dtype=np.int64),
                       np.full(n, 10.0), np.ones(n), np.ones(n))
    return FeedChunk(last_seq=int(seq[-1]), trades=trades)


def evaluate(instance: DagsterInstance, config: Config, cursor: str | None):
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"hot": resources_for(config)["hot"]})
    return hot_tier_sensor(context)


def test_sensor_registers_dates_and_requests_each_closed_date_once(config: Config, store: HotStore) -> None:
    ingestor = Ingestor(config, store, "test-source")
    ingestor.run([chunk("SENS", [DAY1 + 1000, DAY1 + DAY_MS - 1000, DAY1 + DAY_MS + 1000])])
    with DagsterInstance.ephemeral() as instance:
        first = evaluate(instance, config, None)
        assert first.dynamic_partitions_requests[0].partition_keys == ["2023-11-15", "2023-11-16"]
        assert first.run_requests == []  # day 1 is not closed: newest tick is only 1 s past midnight

        Ingestor(config, store, "test-source-2").run([chunk("SENS", [DAY1 + DAY_MS + CLOSE_GRACE_MS + 5000])])
        second = evaluate(instance, config, first.cursor)
        assert [r.partition_key for r in second.run_requests] == ["2023-11-15"]
        instance.add_dynamic_partitions("date", ["2023-11-15", "2023-11-16"])
        third = evaluate(instance, config, second.cursor)
        assert third.dynamic_partitions_requests == []
        assert {r.run_key for r in third.run_requests} <= {r.run_key for r in second.run_requests}, \
            "with no new data a date may only be asked for under its old run key, which Dagster skips"
        assert json.loads(third.cursor) == json.loads(second.cursor)


def schedule_context(instance: DagsterInstance, at: dt.datetime):
    return build_schedule_context(instance=instance, scheduled_execution_time=at)


def test_finalize_schedule_requests_yesterday_when_it_has_data() -> None:
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("date", ["2024-03-01"])
        request = finalize_yesterday(schedule_context(instance, dt.datetime(2024, 3, 2, 0, 15, tzinfo=dt.timezone.utc)))
        skipped = finalize_yesterday(schedule_context(instance, dt.datetime(2024, 3, 3, 0, 15, tzinfo=dt.timezone.utc)))
    assert request.partition_key == "2024-03-01"
    assert isinstance(skipped, SkipReason)


def test_intraday_schedule_requests_today_once_it_has_data() -> None:
    at = dt.datetime(2024, 3, 2, 10, 45, tzinfo=dt.timezone.utc)
    with instance_for_test() as instance:
        assert isinstance(intraday(schedule_context(instance, at)), SkipReason)
        instance.add_dynamic_partitions("date", ["2024-03-02"])
        request = intraday(schedule_context(instance, at))
    assert request.partition_key == "2024-03-02"
    assert intraday.cron_schedule == "*/15 * * * *"
    assert intraday_cron(5) == "*/5 * * * *"
    with pytest.raises(ValueError, match="divide 60"):
        intraday_cron(7)


def test_intraday_runs_append_only_new_ticks_and_keep_redis_within_retention(config: Config, store: HotStore) -> None:
    """Three runs over one open day, ticks arriving between them: each run appends a part with
    the ticks that arrived since the last, none twice or missed; the bars equal the ticks'."""
    config = replace(config, batch_size=50, retention_hours=1.0)
    resources = resources_for(config)
    date = "2023-11-15"
    stamps = [DAY1 + np.arange(i * 7_200_000, (i + 1) * 7_200_000, 30_000) for i in range(3)]
    with DagsterInstance.ephemeral() as instance:
        for i, ts in enumerate(stamps):
            Ingestor(config, store, f"feed-{i}").run([chunk("INTRA", ts.tolist(), first_seq=0)])
            assert materialize_days([SymbolDay("INTRA", date)], instance, resources) == []
            in_redis = store.read_ticks("INTRA").ticks["ts"]
            assert in_redis.min() >= ts.max() - config.retention_ms - 50 * 30_000, "Redis holds retention + a batch"
    parts = part_files(config.cold, tick_partition(config.cold, "INTRA", date))
    assert [p.rsplit("/", 1)[1] for p in parts] == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    seqs = [read_part(config.cold, p).column("seq").to_numpy() for p in parts]
    assert [len(s) for s in seqs] == [len(ts) for ts in stamps]
    assert len(np.unique(np.concatenate(seqs))) == sum(len(ts) for ts in stamps), "no tick in two parts"
    ticks = read_ticks(config.cold, "INTRA", date)
    assert ticks.column("ts").to_pylist() == np.concatenate(stamps).tolist()
    with connect(config.warm_db) as conn:
        bars = read_bars(conn, "INTRA", "1m", DAY1, DAY1 + DAY_MS)
    expected = compute_bars(ticks.column("ts").to_numpy(), ticks.column("price").to_numpy(),
                            ticks.column("volume").to_numpy(), ticks.column("side").to_numpy(), "1m")
    pd.testing.assert_frame_equal(bars, expected, check_dtype=False)


def test_an_open_day_build_writes_only_final_buckets_beside_the_live_bars(config: Config, store: HotStore) -> None:
    """Within the open day a run writes the buckets no tick can join any more (its newest
    archived tick less the tolerance) and leaves the later ones to the ingest's live bars, so
    that after two runs with ticks arriving between them every stored bar counts all its ticks
    and no partial bucket is stored."""
    date = "2023-11-15"
    first, later = DAY1 + np.arange(0, 3_600_000, 1_000), DAY1 + np.arange(3_600_000, 5_400_000, 1_000)
    conn = connect(config.warm_db)
    migrate(conn)
    try:
        for source, ts in (("open-1", first), ("open-2", later)):
            Ingestor(config, store, source).run([chunk("OPEN", ts.tolist())])
            sources = Sources(store, config.cold, conn, config.retention_ms, config.ts_tolerance_ms, config.vpin_days,
                              now_ms=int(ts[-1]) + 1)
            assert not build_days(sources, [date]).failed
        final = int(later[-1]) - config.ts_tolerance_ms
        ticks = np.concatenate([first, later])
        for timeframe in ("1m", "5m", "15m", "1h"):
            expected = compute_bars(ticks, np.full(len(ticks), 10.0), np.ones(len(ticks)), np.ones(len(ticks)), timeframe)
            expected = expected[expected["timestamp"] + TIMEFRAMES[timeframe] <= final].reset_index(drop=True)
            stored = read_bars(conn, "OPEN", timeframe, DAY1, DAY1 + DAY_MS)
            pd.testing.assert_frame_equal(stored, expected, check_dtype=False, obj=timeframe)
    finally:
        conn.close()


def test_an_archive_that_died_before_its_watermark_stores_no_tick_twice(config: Config, store: HotStore) -> None:
    Ingestor(config, store, "feed").run([chunk("DIED", (DAY1 + np.arange(0, 600_000, 1000)).tolist())])
    first = archive_day(store, config.cold, SymbolDay("DIED", "2023-11-15"), keep_ms=DAY_MS)
    store.client.delete(store.keys.archived("DIED", "ticks"))  # as if the run died before marking
    again = HotSlice.read(store, "DIED", "ticks", ["2023-11-15"]).archive(config.cold, "2023-11-15")
    assert (first.rows, again.duplicates, again.path) == (600, 600, None)
    assert read_ticks(config.cold, "DIED", "2023-11-15").num_rows == 600


def test_retention_moves_old_bars_to_parquet_before_deleting(tmp_path: Path) -> None:
    conn = connect(tmp_path / "warm.db")
    migrate(conn)
    ts = DAY1 + np.arange(0, 40 * DAY_MS, 3_600_000, dtype=np.int64)
    bars = compute_bars(ts, 100 + np.sin(np.arange(len(ts))), np.ones(len(ts)), np.ones(len(ts), dtype=np.int8), "1h")
    replace_bars(conn, "RET", "1h", int(ts[0]), int(ts[-1]) + 1, bars)
    cold = open_cold(str(tmp_path / "cold"))
    pruned = prune_bars(conn, cold, keep_days=30)
    cutoff = int(bars["timestamp"].max()) - 30 * DAY_MS
    assert [(p.symbol, p.timeframe, p.rows) for p in pruned] == [("RET", "1h", int((bars["timestamp"] < cutoff).sum()))]
    kept = read_bars(conn, "RET", "1h", 0, 1 << 62)
    assert kept["timestamp"].min() >= cutoff
    exported = pd.concat(
        read_partition(cold, str(p), BAR_SCHEMA).to_pandas()
        for p in sorted((tmp_path / "cold/bars/timeframe=1h/symbol=RET").iterdir())
    )
    pd.testing.assert_frame_equal(
        pd.concat([exported, kept]).reset_index(drop=True), bars.reset_index(drop=True), check_dtype=False
    )
    assert Path(bar_partition(cold, "1h", "RET", "2023-11-15")).exists()
    assert prune_bars(conn, cold, keep_days=30) == []


def test_retention_deletes_indicator_rows_older_than_the_window(tmp_path: Path) -> None:
    conn = connect(tmp_path / "warm.db")
    migrate(conn)
    newest = DAY1 + 40 * DAY_MS
    bars = compute_bars(np.array([newest]), np.ones(1), np.ones(1), np.ones(1, dtype=np.int8), "1d")
    replace_bars(conn, "IND", "1d", newest - newest % DAY_MS, newest + DAY_MS, bars)
    stamps = [DAY1, DAY1 + 20 * DAY_MS, newest - newest % DAY_MS]
    for ts in stamps:
        conn.execute("INSERT INTO fractal_microstructure (symbol, timestamp, window_ms, tick_count) VALUES (?, ?, ?, ?)",
                     ("IND", ts, 300_000, 1))
        conn.execute("INSERT INTO fractal_indicator_values (symbol, indicator, timeframe, timestamp, value) "
                     "VALUES (?, ?, ?, ?, ?)", ("IND", "hurst_rs", "1d", ts, 0.5))
    assert prune_derived(conn, keep_days=30) == {"fractal_microstructure": 1, "fractal_indicator_values": 1}
    left = [r[0] for r in conn.execute("SELECT timestamp FROM fractal_microstructure ORDER BY timestamp")]
    assert left == stamps[1:]


def ticks_with_seq(seq: np.ndarray) -> pa.Table:
    n = len(seq)
    return pa.table({"ts": DAY1 + seq * 1000, "price": 100 + seq / 100, "volume": np.ones(n), "side": np.ones(n, np.int8),
                     "seq": seq}, schema=TICK_SCHEMA)


def test_the_nightly_compaction_merges_the_parts_of_each_partition(tmp_path: Path) -> None:
    cold = open_cold(str(tmp_path / "cold"))
    directory = tick_partition(cold, "CMPA", "2023-11-15")
    write_ticks(cold, "CMPA", "2023-11-15", ticks_with_seq(np.arange(0, 60)))
    cold.put(f"{directory}/part-1.parquet", to_parquet(ticks_with_seq(np.arange(40, 100)), TICK_ENCODINGS))
    with DagsterInstance.ephemeral() as instance:
        result = materialize([cold_compaction], instance=instance,
                             resources={"cold": ColdTierResource(root=str(tmp_path / "cold"))})
        assert result.success
        metadata = result.asset_materializations_for_node("cold_compaction")[0].metadata
    assert metadata["partitions_compacted"].value == 1
    assert sorted(p.name for p in Path(directory).iterdir()) == ["part-0.parquet"]
    assert read_ticks(cold, "CMPA", "2023-11-15").column("seq").to_pylist() == list(range(100))
    request = nightly_compaction(build_schedule_context(
        scheduled_execution_time=dt.datetime(2023, 11, 16, 1, 30, tzinfo=dt.timezone.utc)))
    assert request.run_key == "compaction|2023-11-16"
