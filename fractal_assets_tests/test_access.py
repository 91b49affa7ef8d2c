"""The access layer across real tiers (Redis, SQLite, Parquet via DuckDB), and cold-tier compaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fractal_assets.access import request as query
from fractal_assets.access import result_cache, tier_reads
from fractal_assets.access.reads import (
    FRESH_MS,
    cache_stats,
    get_backtest_data,
    get_data_for_indicator,
    get_fractal_indicators,
)
from fractal_assets.cli import source_id
from fractal_assets.cold.archive import archive_day
from fractal_assets.cold.compaction import compact_all, compact_partition, merge_parts
from fractal_assets.cold.parquet import TICK_ENCODINGS, TICK_SCHEMA, read_ticks, tick_partition, write_atomic
from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.bulk_import import file_seq_base, import_history
from fractal_assets.market.bars import BAR_COLUMNS, TIMEFRAMES, compute_bars
from fractal_assets.market.calendar import DAY_MS, SymbolDay
from fractal_assets.warm.bars import replace_bars
from fractal_assets.warm.db import connect
from fractal_assets.warm.retention import BAR_SCHEMA, bar_partition, export_bars, prune_bars
from fractal_assets.warm.schema import migrate
from fractal_assets_tests.support import ingest_file, run_cli

SYMBOL = "ACC"
DAY1, DAY2, DAY3 = "2024-03-01", "2024-03-02", "2024-03-03"
HOUR = 3_600_000
TICK_COLUMNS = ["ts", "price", "volume", "side", "seq"]


def day_ms(day: str) -> int:
    return SymbolDay(SYMBOL, day).start


def market(seed: int = 7) -> pd.DataFrame:
    """Three days of ticks in arrival order, some sharing a millisecond; ``seq`` is the arrival number."""
    rng = np.random.default_rng(seed)
    parts = []
    for day, n in ((DAY1, 1500), (DAY2, 2000), (DAY3, 800)):
        parts.append(day_ms(day) + np.sort(rng.integers(0, DAY_MS, n)) // 1000 * 1000)
    ts = np.concatenate(parts)
    n = len(ts)
    return pd.DataFrame({
        "ts": ts,
        "price": np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2),
        "volume": np.round(rng.exponential(1.0, n), 3),
        "side": rng.choice(np.array([1, -1], dtype=np.int8), n),
        "seq": np.arange(n, dtype=np.int64),
    })


def ingest(config: Config, store: HotStore, ticks: pd.DataFrame, path: Path) -> None:
    ticks.drop(columns="seq").assign(symbol=SYMBOL).to_parquet(path)
    assert ingest_file(config, store, path).total_accepted == len(ticks)


def build_bars(config: Config, day: str) -> None:
    """What the bars assets do for a partition: every timeframe from the archived ticks."""
    ticks = read_ticks(config.cold, SYMBOL, day)
    columns = [ticks.column(c).to_numpy() for c in ("ts", "price", "volume", "side")]
    conn = connect(config.warm_db)
    migrate(conn)
    for timeframe in TIMEFRAMES:
        replace_bars(conn, SYMBOL, timeframe, day_ms(day), day_ms(day) + DAY_MS, compute_bars(*columns, timeframe))
    conn.close()


@dataclass
class Tiers:
    config: Config
    store: HotStore
    ticks: pd.DataFrame
    archived: pd.DataFrame
    """The ticks that were archived (and turned into warm bars) before the rest arrived."""


@pytest.fixture
def tiers(config: Config, store: HotStore, tmp_path: Path) -> Tiers:
    """Day 1 archived and trimmed from Redis, day 2 archived up to noon with its last
    archived hours still in Redis and its afternoon only there, day 3 only in Redis;
    bars of days 1-2 built into the warm tier, the older half of them moved to cold Parquet."""
    config = replace(config, batch_size=100)
    ticks = market()
    noon = day_ms(DAY2) + 12 * HOUR
    archived = ticks[ticks.ts < noon]
    ingest(config, store, archived, tmp_path / "morning.parquet")
    for day in (DAY1, DAY2):
        archive_day(store, config.cold, SymbolDay(SYMBOL, day), keep_ms=3 * HOUR)
        build_bars(config, day)
    conn = connect(config.warm_db)
    assert prune_bars(conn, config.cold, keep_days=1)
    conn.close()
    ingest(config, store, ticks[ticks.ts >= noon], tmp_path / "afternoon.parquet")
    return Tiers(config, store, ticks, archived)


def expected_ticks(ticks: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    rows = ticks[(ticks.ts >= day_ms(start)) & (ticks.ts < day_ms(end) + DAY_MS)]
    return rows.sort_values(["ts", "seq"]).reset_index(drop=True)[TICK_COLUMNS]


def test_ticks_from_cold_and_hot_come_back_exactly_once(tiers: Tiers) -> None:
    hot = tiers.store.read_ticks(SYMBOL)
    cold = pd.concat([read_ticks(tiers.config.cold, SYMBOL, d).to_pandas() for d in (DAY1, DAY2, DAY3)])
    assert hot.ticks["ts"].min() >= day_ms(DAY2), "day 1 left Redis"
    assert 0 < len(np.intersect1d(hot.seq, cold.seq)) < (tiers.ticks.ts >= day_ms(DAY2)).sum(), "day 2 overlaps"
    assert not (cold.ts >= day_ms(DAY3)).any() and (hot.ticks["ts"] >= day_ms(DAY3)).any(), "day 3 only in Redis"

    got = get_backtest_data(SYMBOL, DAY1, DAY3, config=tiers.config)
    pd.testing.assert_frame_equal(got, expected_ticks(tiers.ticks, DAY1, DAY3))
    for day in (DAY1, DAY2, DAY3):
        pd.testing.assert_frame_equal(get_backtest_data(SYMBOL, day, day, config=tiers.config),
                                      expected_ticks(tiers.ticks, day, day))


def expected_bars(tiers: Tiers, timeframe: str, start: str, end: str) -> pd.DataFrame:
    """Bars of all ticks: the 1d bar of day 2, built by the warm tier from the morning's
    archived ticks, is not served stale once the afternoon's ticks are in the hot tier."""
    merged = compute_bars(*(tiers.ticks[c].to_numpy() for c in ("ts", "price", "volume", "side")), timeframe)
    rows = merged[(merged.timestamp >= day_ms(start)) & (merged.timestamp < day_ms(end) + DAY_MS)]
    return rows.sort_values("timestamp").reset_index(drop=True)


@pytest.mark.parametrize("timeframe", list(TIMEFRAMES))
def test_bars_from_cold_warm_and_hot_days(tiers: Tiers, timeframe: str) -> None:
    exported = list((Path(tiers.config.cold_dir) / "bars" / f"timeframe={timeframe}").rglob("part-0.parquet"))
    assert exported, "old bars were moved to cold Parquet"
    got = get_backtest_data(SYMBOL, DAY1, DAY3, "bars", timeframe, config=tiers.config)
    pd.testing.assert_frame_equal(got, expected_bars(tiers, timeframe, DAY1, DAY3))
    assert (got.timestamp >= day_ms(DAY3)).sum() > 0, "day 3 bars come from the hot tier"


def test_warm_bars_win_over_cold_ones(tiers: Tiers) -> None:
    warm = get_backtest_data(SYMBOL, DAY2, DAY2, "bars", "1m", config=tiers.config)
    stale = warm.head(3).assign(close=-1.0)
    export_bars(tiers.config.cold, SYMBOL, "1m", stale)
    pd.testing.assert_frame_equal(get_backtest_data(SYMBOL, DAY2, DAY2, "bars", "1m", config=tiers.config), warm)


@pytest.fixture
def settle_window(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Sets how old a source file must be before results read from it are cached (SETTLE_S):
    0 stands for files that have aged past the guard, an hour for files just written, so no
    verdict depends on how long the machine took between a write and a read."""
    return lambda seconds: monkeypatch.setattr(result_cache, "SETTLE_S", seconds)


def test_cache_hit_equals_miss_and_counts_both(tiers: Tiers, settle_window: Callable[[float], None]) -> None:
    config = tiers.config
    settle_window(0)
    first = get_backtest_data(SYMBOL, DAY1, DAY1, "bars", "1m", config=config)
    assert cache_stats(config) == {"hit": 0, "miss": 1, "skip": 0}
    second = get_backtest_data(SYMBOL, DAY1, DAY1, "bars", "1m", config=config)
    pd.testing.assert_frame_equal(second, first)
    assert cache_stats(config) == {"hit": 1, "miss": 1, "skip": 0}
    key = tiers.store.keys.backtest(SYMBOL, DAY1, DAY1, "bars", "1m")
    assert 0 < tiers.store.client.ttl(key) <= 24 * 3600


def test_ranges_still_receiving_ticks_are_not_cached(tiers: Tiers) -> None:
    get_backtest_data(SYMBOL, DAY2, DAY3, config=tiers.config)
    get_backtest_data(SYMBOL, DAY2, DAY3, config=tiers.config)
    assert cache_stats(tiers.config) == {"hit": 0, "miss": 0, "skip": 2}
    assert not tiers.store.client.exists(tiers.store.keys.backtest(SYMBOL, DAY2, DAY3, "ticks", None))


def test_cache_is_invalidated_when_the_cold_tier_changes(tiers: Tiers, tmp_path: Path,
                                                        settle_window: Callable[[float], None]) -> None:
    config = tiers.config
    settle_window(0)
    before = get_backtest_data(SYMBOL, DAY1, DAY1, config=config)
    settle_window(3600)
    late = tmp_path / "late.csv"
    late.write_text(f"ts,symbol,price,volume,side\n{day_ms(DAY1) + 5},{SYMBOL},99.5,2,1\n")
    import_history(open_feed(late), config.cold, file_seq_base(tiers.store, source_id(late)), config.ts_tolerance_ms)
    fresh = get_backtest_data(SYMBOL, DAY1, DAY1, config=config)
    assert len(fresh) == len(before) + 1 and 99.5 in fresh.price.tolist()
    assert cache_stats(config) == {"hit": 0, "miss": 1, "skip": 1}, "a just-written partition is not cached"
    settle_window(0)
    pd.testing.assert_frame_equal(get_backtest_data(SYMBOL, DAY1, DAY1, config=config), fresh)
    pd.testing.assert_frame_equal(get_backtest_data(SYMBOL, DAY1, DAY1, config=config), fresh)
    assert cache_stats(config) == {"hit": 1, "miss": 2, "skip": 1}


def test_cached_result_is_rebuilt_after_the_warm_tier_changes(tiers: Tiers, settle_window: Callable[[float], None]) -> None:
    config = tiers.config
    settle_window(0)
    get_backtest_data(SYMBOL, DAY2, DAY2, "bars", "1h", config=config)
    conn = connect(config.warm_db)
    conn.execute("UPDATE fractal_bars SET close = 1.5 WHERE symbol = ? AND timeframe = '1h' AND timestamp = ?",
                 (SYMBOL, day_ms(DAY2)))
    conn.close()
    assert get_backtest_data(SYMBOL, DAY2, DAY2, "bars", "1h", config=config).close.iloc[0] == 1.5
    assert cache_stats(config) == {"hit": 0, "miss": 2, "skip": 0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("NOPE", DAY1, DAY1), "unknown symbol 'NOPE'"),
        ((SYMBOL, DAY2, DAY1), "end_date 2024-03-01 is before start_date 2024-03-02"),
        ((SYMBOL, "2024-3-1", DAY1), "start_date '2024-3-1' must be a date written YYYY-MM-DD"),
        ((SYMBOL, "20240301", DAY1), "must be a date written YYYY-MM-DD"),
        ((SYMBOL, DAY1, "2024-02-30"), "end_date '2024-02-30' is not a calendar date"),
        ((SYMBOL, DAY1, "tomorrow"), "end_date 'tomorrow' must be a date"),
        (("../x", DAY1, DAY1), "symbol '../x' must match"),
        (("a/b", DAY1, DAY1), "symbol 'a/b' must match"),
        ((SYMBOL, DAY1, DAY1, "candles"), "kind 'candles' must be one of ticks, bars"),
        ((SYMBOL, DAY1, DAY1, "bars"), "timeframe None must be one of 1m, 5m, 15m, 1h, 1d"),
        ((SYMBOL, DAY1, DAY1, "bars", "2m"), "timeframe '2m' must be one of"),
        ((SYMBOL, DAY1, DAY1, "ticks", "1m"), "timeframe applies to kind='bars' only"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(tiers: Tiers, args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("?", r"\?")):
        get_backtest_data(*args, config=tiers.config)


def test_indicator_data_is_routed_to_its_tier(tiers: Tiers) -> None:
    config = tiers.config
    ticks = get_data_for_indicator(SYMBOL, "vpin", config=config)
    newest = tiers.ticks.ts.max()
    pd.testing.assert_frame_equal(ticks, expected_ticks(tiers.ticks[tiers.ticks.ts >= newest - 2 * HOUR], DAY3, DAY3))
    fractal = get_data_for_indicator(SYMBOL, "williams_fractal", config=config)
    pd.testing.assert_frame_equal(fractal, expected_bars(tiers, "5m", DAY1, DAY3))
    hurst = get_data_for_indicator(SYMBOL, "hurst_exponent", config=config)
    assert hurst.timestamp.tolist() == [day_ms(d) for d in (DAY1, DAY2, DAY3)]
    with pytest.raises(ValueError, match="unknown indicator_type 'rsi'; valid: tick_imbalance, .*hurst_exponent"):
        get_data_for_indicator(SYMBOL, "rsi", config=config)


def test_indicator_names_accept_the_asset_spelling_and_list_every_valid_value(tiers: Tiers) -> None:
    config = tiers.config
    pd.testing.assert_frame_equal(get_data_for_indicator(SYMBOL, "williams_fractals", config=config),
                                  get_data_for_indicator(SYMBOL, "williams_fractal", config=config))
    with pytest.raises(ValueError) as refused:
        get_data_for_indicator(SYMBOL, "fractal", config=config)
    for name in ("tick_imbalance", "order_flow_ratio", "bid_ask_spread", "kyle_lambda", "vpin",
                 "williams_fractal", "williams_fractals", "hurst_exponent"):
        assert name in str(refused.value)


def test_fractal_indicators_take_every_documented_timeframe(tiers: Tiers) -> None:
    config, store = tiers.config, tiers.store
    newest = int(tiers.ticks.ts.max())
    store.write_indicators(SYMBOL, {("vpin", "1000t"): {"value": 0.7, "ts": newest, "meta": {}}})
    assert get_fractal_indicators(SYMBOL, "1000t", config=config)["vpin"]["value"] == 0.7
    with pytest.raises(ValueError, match="timeframe '7x' must be one of 1m, 5m, 15m, 1h, 1d or a tick count"):
        get_fractal_indicators(SYMBOL, "7x", config=config)


def test_utc_datetimes_and_a_symbol_column_on_request(tiers: Tiers) -> None:
    config = tiers.config
    plain = get_backtest_data(SYMBOL, DAY3, DAY3, config=config)
    shaped = get_backtest_data(SYMBOL, DAY3, DAY3, config=config, utc=True, with_symbol=True)
    assert list(shaped.columns) == ["symbol", *plain.columns] and set(shaped.symbol) == {SYMBOL}
    assert str(shaped.ts.dtype) == "datetime64[ms, UTC]"
    assert ((shaped.ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).tolist() == plain.ts.tolist()
    bars = get_data_for_indicator(SYMBOL, "hurst_exponent", config=config, utc=True)
    assert bars.timestamp.dt.strftime("%Y-%m-%d").tolist() == [DAY1, DAY2, DAY3]
    tiers.store.write_indicators(SYMBOL, {("vpin", "5m"): {"value": 0.3, "ts": int(tiers.ticks.ts.max()), "meta": {}}})
    vpin = get_fractal_indicators(SYMBOL, config=config, utc=True)["vpin"]
    assert vpin["timestamp"] == pd.Timestamp(int(tiers.ticks.ts.max()), unit="ms", tz="UTC")


def test_fractal_indicators_prefer_fresh_realtime_values(tiers: Tiers) -> None:
    config, store = tiers.config, tiers.store
    newest = int(tiers.ticks.ts.max())
    conn = connect(config.warm_db)
    conn.executemany(
        "INSERT INTO fractal_indicator_values (symbol, indicator, timeframe, timestamp, value, metadata) "
        "VALUES (?, ?, '5m', ?, ?, ?)",
        [(SYMBOL, "hurst_exponent", day_ms(DAY1), 0.4, "{}"), (SYMBOL, "hurst_exponent", day_ms(DAY2), 0.6, '{"n": 2}'),
         (SYMBOL, "vpin", day_ms(DAY2), 0.2, "{}"), (SYMBOL, "tick_imbalance", day_ms(DAY2), 5.0, "{}")],
    )
    conn.close()
    store.write_indicators(SYMBOL, {
        ("vpin", "5m"): {"value": 0.3, "ts": newest - 60_000, "meta": {"window_s": 300}},
        ("tick_imbalance", "5m"): {"value": 9.0, "ts": newest - 3_600_000, "meta": {}},
        ("kyle_lambda", "5m"): {"value": 0.1, "ts": newest - FRESH_MS - 1, "meta": {}},
    })
    got = get_fractal_indicators(SYMBOL, config=config)
    assert got["vpin"] == {"value": 0.3, "timestamp": newest - 60_000, "source": "hot", "metadata": {"window_s": 300}}
    assert got["tick_imbalance"]["source"] == "warm" and got["tick_imbalance"]["value"] == 5.0
    assert got["hurst_exponent"] == {"value": 0.6, "timestamp": day_ms(DAY2), "source": "warm", "metadata": {"n": 2}}
    flow = got["order_flow_ratio"]
    assert flow is not None and (flow["source"], flow["timestamp"]) == ("hot", newest), "ingest's value, up to date"
    assert got["kyle_lambda"] is None, "a stale real-time value and no warm row"


def test_cli_backtest_data_writes_parquet_and_csv_and_summarizes(tiers: Tiers, tmp_path: Path) -> None:
    config = tiers.config
    want = get_backtest_data(SYMBOL, DAY1, DAY2, "bars", "1h", config=config, use_cache=False)
    out = tmp_path / "bars.parquet"
    done = run_cli(config, "backtest-data", SYMBOL, DAY1, DAY2, "--kind", "bars", "--timeframe", "1h", "--out", str(out))
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(out), want)
    csv = tmp_path / "ticks.csv"
    assert run_cli(config, "backtest-data", SYMBOL, DAY1, DAY1, "--out", str(csv)).returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(csv, dtype={"side": "int8"}), expected_ticks(tiers.ticks, DAY1, DAY1),
                                  check_exact=False)
    summary = run_cli(config, "backtest-data", SYMBOL, DAY3, DAY3).stdout
    assert f"{(tiers.ticks.ts >= day_ms(DAY3)).sum()} rows" in summary and "from 2024-03-03T" in summary
    refused = run_cli(config, "backtest-data", "../x", DAY1, DAY1)
    assert refused.returncode == 2 and "symbol '../x' must match" in refused.stderr


# Compaction


def tick_table(ts: list[int], seq: list[int]) -> pa.Table:
    n = len(ts)
    return pa.table({"ts": ts, "price": [100.0 + s for s in seq], "volume": [1.0] * n, "side": [1] * n, "seq": seq},
                    schema=TICK_SCHEMA)


def write_part(directory: str, n: int, table: pa.Table, encodings: dict[str, str] | None = None) -> None:
    Path(directory).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, Path(directory) / f"part-{n}.parquet", use_dictionary=not encodings, column_encoding=encodings)


def test_compaction_of_ticks_is_safe_at_every_step(config: Config, store: HotStore) -> None:
    start = day_ms(DAY1)
    directory = tick_partition(config.cold, SYMBOL, DAY1)
    parts = [tick_table([start + 1, start + 2, start + 5], [0, 1, 4]),
             tick_table([start + 2, start + 3, start + 5], [1, 2, 4]),
             tick_table([start + 3, start + 4], [2, 3])]
    for n, part in enumerate(parts):
        write_part(directory, n, part, TICK_ENCODINGS)
    want = tick_table([start + 1, start + 2, start + 3, start + 4, start + 5], [0, 1, 2, 3, 4]).to_pandas()

    def readers_agree() -> None:
        pd.testing.assert_frame_equal(read_ticks(config.cold, SYMBOL, DAY1).to_pandas(), want)
        pd.testing.assert_frame_equal(get_backtest_data(SYMBOL, DAY1, DAY1, config=config, use_cache=False), want)

    readers_agree()
    write_atomic(config.cold, directory, merge_parts(parts), TICK_ENCODINGS)
    readers_agree()  # crashed after the rename: part-0 merged, part-1 and part-2 still there
    (Path(directory) / "part-1.parquet").unlink()
    readers_agree()  # crashed while deleting
    request = query.make_request(SYMBOL, DAY1, DAY1, "ticks", None)
    listed_before = tier_reads.sources(config, request)
    assert compact_partition(config.cold, directory) == 2
    assert [p.name for p in Path(directory).iterdir()] == ["part-0.parquet"]
    readers_agree()
    assert compact_partition(config.cold, directory) == 0
    pd.testing.assert_frame_equal(tier_reads.compute(config, store, request, listed_before), want)  # listed mid-compaction


def bar_table(timestamps: list[int], close: float) -> pd.DataFrame:
    n = len(timestamps)
    return pd.DataFrame({"timestamp": timestamps, "open": 1.0, "high": 2.0, "low": 0.5, "close": close,
                         "volume": 3.0, "buy_volume": 1.0, "sell_volume": 2.0, "tick_count": 4, "vwap": 1.5},
                        index=range(n))[list(BAR_COLUMNS)]


def test_compaction_of_bars_keeps_the_latest_part_even_when_interrupted(config: Config, store: HotStore) -> None:
    start = day_ms(DAY1)
    directory = bar_partition(config.cold, "1m", SYMBOL, DAY1)
    versions = [bar_table([start + i * 60_000 for i in range(3)], close=float(n)) for n in range(11)]
    versions[10] = versions[10].head(1)
    for n, frame in enumerate(versions):
        write_part(directory, n, pa.Table.from_pandas(frame, schema=BAR_SCHEMA, preserve_index=False))
    want = pd.concat([versions[10], versions[9].iloc[1:]]).reset_index(drop=True)

    def read() -> pd.DataFrame:
        return get_backtest_data(SYMBOL, DAY1, DAY1, "bars", "1m", config=config, use_cache=False)

    store.client.sadd(store.keys.symbols(), SYMBOL)
    pd.testing.assert_frame_equal(read(), want)
    tables = [pq.read_table(Path(directory) / f"part-{n}.parquet") for n in range(11)]
    write_atomic(config.cold, directory, merge_parts(tables))
    for n in range(1, 6):
        (Path(directory) / f"part-{n}.parquet").unlink()
    pd.testing.assert_frame_equal(read(), want)  # crashed halfway through the deletions
    assert compact_all(config.cold) == {directory: 6}
    assert [p.name for p in Path(directory).iterdir()] == ["part-0.parquet"]
    pd.testing.assert_frame_equal(read(), want)
    assert compact_all(config.cold) == {}


@pytest.mark.parametrize("span_ms", [50_000, 2 * HOUR])
def test_bars_count_every_tick_after_a_build_and_more_ticks_in_the_same_bucket(
    config: Config, store: HotStore, tmp_path: Path, span_ms: int,
) -> None:
    """Ingest, build the day's bars, ingest more into the same buckets: every timeframe counts
    every tick, equal to bars computed from all of them."""
    rng = np.random.default_rng(11)
    start = day_ms(DAY1) + HOUR
    ts = start + np.sort(rng.integers(0, span_ms, 4_000))
    ticks = pd.DataFrame({"ts": ts, "price": np.round(100 + np.cumsum(rng.normal(0, 0.05, 4_000)), 2),
                          "volume": np.round(rng.exponential(1.0, 4_000), 3),
                          "side": rng.choice(np.array([1, -1], dtype=np.int8), 4_000), "seq": np.arange(4_000)})
    ingest(config, store, ticks.iloc[:2_000], tmp_path / "first.parquet")
    archive_day(store, config.cold, SymbolDay(SYMBOL, DAY1), keep_ms=3 * HOUR)
    build_bars(config, DAY1)
    ingest(config, store, ticks.iloc[2_000:], tmp_path / "more.parquet")
    for timeframe in TIMEFRAMES:
        got = get_backtest_data(SYMBOL, DAY1, DAY1, "bars", timeframe, config=config, use_cache=False)
        assert got.tick_count.sum() == 4_000
        want = compute_bars(*(ticks[c].to_numpy() for c in ("ts", "price", "volume", "side")), timeframe)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
