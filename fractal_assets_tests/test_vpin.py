"""Standard VPIN across days: buckets carried from one span of trades to the next, checked by
hand and against a trade-by-trade loop; the state and daily volumes in the warm tier; the
per-window table that reads VPIN off the carried buckets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fractal_assets.indicators.vpin import VpinState, daily_bucket_volume, vpin, vpin_span
from fractal_assets.indicators.windows import microstructure_table
from fractal_assets.market.bars import BAR_COLUMNS
from fractal_assets.market.calendar import DAY_MS, date_of
from fractal_assets.market.ticks import QUOTE_DTYPE, to_ticks
from fractal_assets.warm.bars import replace_bars
from fractal_assets.warm.db import connect
from fractal_assets.warm.indicators import read_microstructure, replace_microstructure
from fractal_assets.warm.schema import MIGRATIONS, VERSION_TABLE, migrate
from fractal_assets.warm.vpin_state import (
    bucket_volume_for_day,
    continue_day,
    read_vpin_state,
    trailing_daily_volume,
    write_vpin_state,
)

NAN = math.nan


def test_two_days_by_hand_with_the_warm_up_and_a_trade_split_across_midnight() -> None:
    # day 1, V = 4: trades (volume, side) (3, +), (4, -), (2, +); cumulative volume 3, 7, 9
    #   bucket 1 [0, 4]: buy 3, sell 1 of trade 1   -> |3 - 1| / 4 = 0.5, completed by trade 1
    #   bucket 2 [4, 8]: sell 3, buy 1 of trade 2   -> |1 - 3| / 4 = 0.5, completed by trade 2
    #   open at midnight: 1 unit bought, size 4
    day1 = vpin_span(np.array([3.0, 4, 2]), np.array([1, -1, 1]), 4.0, n_buckets=3)
    assert day1.bucket_imbalance.tolist() == [0.5, 0.5]
    assert day1.bucket_end_index.tolist() == [1, 2]
    assert np.isnan(day1.value_after(np.array([-1, 0, 1, 2]))).all()  # warm-up: fewer than 3 buckets
    state = day1.state
    assert state.imbalance.tolist() == [0.5, 0.5]
    assert (state.open_size, state.open_volume, state.open_buy) == (4.0, 1.0, 1.0)
    # day 2, V = 6: trades (5, -), (6, +), (1, +)
    #   trade 0 is split across midnight's open bucket: 3 of its 5 sold units fill it to its size 4
    #     bucket 3: buy 1, sell 3 -> 0.5; now 3 buckets: VPIN = (0.5 + 0.5 + 0.5) / 3 = 0.5
    #   its other 2 units open a bucket of the new size 6, trade 1 buys 4 of it
    #     bucket 4: sell 2, buy 4 -> |4 - 2| / 6 = 1/3; VPIN = (0.5 + 0.5 + 1/3) / 3 = 4/9
    #   trade 1's other 2 and trade 2's 1 unit stay open (3 bought of 6)
    day2 = vpin_span(np.array([5.0, 6, 1]), np.array([-1, 1, 1]), 6.0, state, n_buckets=3)
    assert day2.bucket_imbalance.tolist() == pytest.approx([0.5, 1 / 3])
    assert day2.bucket_end_index.tolist() == [0, 1]
    after = day2.value_after(np.array([-1, 0, 1, 2]))
    assert math.isnan(after[0])
    assert after[1:].tolist() == pytest.approx([0.5, 4 / 9, 4 / 9])
    assert day2.value == pytest.approx(4 / 9)
    assert day2.state.imbalance.tolist() == pytest.approx([0.5, 0.5, 1 / 3])
    assert (day2.state.open_size, day2.state.open_volume, day2.state.open_buy) == (6.0, 3.0, 3.0)


def chain_reference(days: list[tuple[np.ndarray, np.ndarray, float]], n_buckets: int) -> tuple[list, list]:
    """Trade by trade over the days: a bucket takes the V of the day it opens in and is filled
    to that size; VPIN after each trade is the mean of the last n complete buckets."""
    imbalances, values, room, size, buy = [], [], 0.0, 0.0, 0.0
    for volume, side, day_size in days:
        for v, s in zip(volume, side):
            while v > 0:
                if room == 0:
                    room = size = day_size
                    buy = 0.0
                take = min(v, room)
                room -= take
                buy += take * (1 + s) / 2
                v -= take
                if room == 0:
                    imbalances.append(abs(2 * buy - size) / size)
            values.append(float(np.mean(imbalances[-n_buckets:])) if len(imbalances) >= n_buckets else NAN)
    return imbalances, values


def test_chained_days_match_the_trade_by_trade_loop() -> None:
    rng = np.random.default_rng(12)
    sizes = [37.0, 52.0, 45.0, 61.0]  # integer volumes and sizes: the loop's arithmetic is exact
    days = [(rng.integers(0, 30, n).astype(float), rng.choice(np.array([-1, 1], dtype=np.int8), n), size)
            for n, size in zip((300, 250, 400, 350), sizes)]
    imbalances, values = chain_reference(days, 20)
    state, got_imbalances, got_values = None, [], []
    for volume, side, size in days:
        span = vpin_span(volume, side, size, state, n_buckets=20)
        got_imbalances += span.bucket_imbalance.tolist()
        got_values += span.value_after(np.arange(len(volume))).tolist()
        state = span.state
    np.testing.assert_allclose(got_imbalances, imbalances, rtol=1e-12)
    np.testing.assert_allclose(got_values, values, rtol=1e-12)  # NaN where the loop is NaN too
    assert np.isnan(got_values[0]) and not np.isnan(got_values[-1])


def test_spans_of_one_day_chain_to_the_same_buckets_as_one_span() -> None:
    rng = np.random.default_rng(4)
    volume, side = rng.exponential(2.0, 5_000), rng.uniform(-1, 1, 5_000)
    whole = vpin_span(volume, side, 7.3)
    state, imbalances, values = None, [], []
    for part in np.array_split(np.arange(5_000), [17, 1_000, 1_001, 3_333]):  # the real-time micro-batches
        span = vpin_span(volume[part], side[part], 7.3, state)
        imbalances += span.bucket_imbalance.tolist()
        values.append(span.value)
        state = span.state
    # running sums restart with each span: imbalances (in [0, 1]) agree to their rounding, ~1e-12
    np.testing.assert_allclose(imbalances, whole.bucket_imbalance, rtol=0, atol=1e-10)
    assert values[-1] == pytest.approx(whole.value, abs=1e-10)
    assert vpin(volume, side, bucket_volume=7.3).value == whole.value


def test_unknown_bucket_volume_passes_the_state_through() -> None:
    state = vpin_span(np.ones(60), np.ones(60), 1.0).state  # 50 complete all-buy buckets kept
    span = vpin_span(np.array([5.0, 5.0]), np.array([-1, -1]), NAN, state)
    assert span.state is state and len(span.bucket_imbalance) == 0
    assert span.value_after(np.array([-1, 1])).tolist() == [1.0, 1.0]  # the carried buckets still give VPIN
    with pytest.raises(ValueError, match="bucket_volume"):
        vpin_span(np.ones(3), np.ones(3), 0.0)
    with pytest.raises(ValueError, match="bucket_volume"):
        vpin_span(np.ones(3), np.ones(3), math.inf)


def test_daily_bucket_volume_is_the_average_day_over_fifty() -> None:
    assert daily_bucket_volume(np.array([1_000.0, 2_000.0, 3_000.0])) == 40.0  # 2000 / 50
    assert math.isnan(daily_bucket_volume(np.empty(0)))
    assert math.isnan(daily_bucket_volume(np.zeros(2)))


def test_state_survives_json() -> None:
    state = vpin_span(np.array([3.0, 4, 2]), np.array([1, -1, 1]), 4.0).state
    back = VpinState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert back.imbalance.tolist() == state.imbalance.tolist()
    assert (back.open_size, back.open_volume, back.open_buy) == (state.open_size, state.open_volume, state.open_buy)
    empty = VpinState.from_dict(json.loads(json.dumps(VpinState().to_dict())))
    assert math.isnan(empty.open_size) and empty.open_volume == 0 and len(empty.imbalance) == 0


def daily_bars(days: dict[int, float]) -> pd.DataFrame:
    """1d bars with the given volumes (prices are not read by VPIN)."""
    frame = pd.DataFrame({c: 1.0 for c in BAR_COLUMNS}, index=range(len(days)))
    frame["timestamp"], frame["volume"] = list(days), list(days.values())
    frame["buy_volume"], frame["sell_volume"] = frame["volume"] / 2, frame["volume"] / 2
    frame["tick_count"] = 1
    return frame[list(BAR_COLUMNS)]


def test_warm_tier_trailing_volume_and_state(tmp_path: Path) -> None:
    conn = connect(tmp_path / "warm.db")
    migrate(conn)
    day = 20_000 * DAY_MS
    volumes = {day - 9 * DAY_MS: 900.0, day - 5 * DAY_MS: 500.0, day - 2 * DAY_MS: 200.0, day - DAY_MS: 100.0,
               day: 7_777.0}  # a gap (no trades), and the day itself, which must not count
    replace_bars(conn, "AAA", "1d", day - 10 * DAY_MS, day + DAY_MS, daily_bars(volumes))
    replace_bars(conn, "BBB", "1d", day - DAY_MS, day, daily_bars({day - DAY_MS: 1e9}))
    assert trailing_daily_volume(conn, "AAA", day, 3) == {day - 5 * DAY_MS: 500.0, day - 2 * DAY_MS: 200.0,
                                                           day - DAY_MS: 100.0}
    assert bucket_volume_for_day(conn, "AAA", day, 3) == pytest.approx(800 / 3 / 50)
    assert bucket_volume_for_day(conn, "AAA", day, 20) == pytest.approx(1_700 / 4 / 50)
    assert math.isnan(bucket_volume_for_day(conn, "AAA", day - 9 * DAY_MS, 20))  # no day before it

    assert read_vpin_state(conn, "AAA", day) is None
    state = vpin_span(np.array([3.0, 4, 2]), np.array([1, -1, 1]), 4.0).state
    write_vpin_state(conn, "AAA", day - DAY_MS, state, 4.0)
    at, back = read_vpin_state(conn, "AAA", day + 5 * DAY_MS)  # the newest state at or before
    assert at == day - DAY_MS and back.imbalance.tolist() == state.imbalance.tolist()
    assert back.open_volume == state.open_volume and back.open_buy == state.open_buy
    write_vpin_state(conn, "AAA", day - DAY_MS, VpinState(), math.nan)  # a re-run replaces the row
    assert len(read_vpin_state(conn, "AAA", day)[1].imbalance) == 0
    assert conn.execute("SELECT bucket_volume FROM fractal_vpin_state").fetchall() == [(None,)]
    with pytest.raises(ValueError, match="midnight"):
        write_vpin_state(conn, "AAA", day + 1, state, 4.0)
    conn.close()


def test_days_continue_through_the_warm_tier_oldest_first(tmp_path: Path) -> None:
    conn = connect(tmp_path / "warm.db")
    migrate(conn)
    rng = np.random.default_rng(6)
    first = 19_000 * DAY_MS
    days = [first + k * DAY_MS for k in range(5)]
    trades = {d: (rng.integers(1, 9, 400).astype(float), rng.choice(np.array([-1, 1], dtype=np.int8), 400))
              for d in days}
    replace_bars(conn, "AAA", "1d", first, days[-1] + DAY_MS, daily_bars({d: float(v.sum()) for d, (v, _) in trades.items()}))
    results = [continue_day(conn, "AAA", d, *trades[d], days=2) for d in days[:3]]
    # by hand: day 0 has no earlier volume (no buckets), day 1 is sized by day 0, day 2 by days 0 and 1
    volume_of = {d: float(trades[d][0].sum()) for d in days}
    state = None
    for d, size, got in zip(days[:3], (NAN, volume_of[days[0]] / 50, (volume_of[days[0]] + volume_of[days[1]]) / 100),
                            results):
        expected = vpin_span(*trades[d], size, state)
        assert got.span.bucket_volume == pytest.approx(size, nan_ok=True)
        np.testing.assert_allclose(got.span.value_after(np.arange(400)), expected.value_after(np.arange(400)))
        assert got.carried_from == (None if d == first else d) and got.unchained == []
        state = expected.state
    assert len(results[0].span.bucket_imbalance) == 0 and not np.isnan(results[2].span.value)
    stored_at, stored = read_vpin_state(conn, "AAA", days[3])
    assert stored_at == days[3] and stored.imbalance.tolist() == pytest.approx(state.imbalance.tolist())
    skipped = continue_day(conn, "AAA", days[4], *trades[days[4]], days=2)  # day 3 was never computed
    assert skipped.carried_from == days[3] and skipped.unchained == [date_of(days[3])]
    conn.close()


def test_migration_adds_the_time_weighted_spread_to_an_existing_table(tmp_path: Path) -> None:
    conn = connect(tmp_path / "warm.db")
    conn.execute(f"CREATE TABLE {VERSION_TABLE} (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                 "applied_at TEXT NOT NULL DEFAULT 'then')")
    for migration in MIGRATIONS[:3]:  # a database as the previous release left it
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(f"INSERT INTO {VERSION_TABLE} (version, description) VALUES (?, ?)",
                     (migration.version, migration.description))
    conn.execute("INSERT INTO fractal_microstructure (symbol, timestamp, window_ms, vpin, tick_count) "
                 "VALUES ('AAA', 0, 300000, 0.3, 7)")
    assert migrate(conn) == [4, 5]
    old = read_microstructure(conn, "AAA", 0, 1, 300_000)
    assert old["vpin"].tolist() == [0.3] and old["time_weighted_spread"].isna().all()
    conn.close()


def test_table_reads_vpin_off_the_carried_buckets_and_weights_quotes_by_time(tmp_path: Path) -> None:
    # three 1-second windows, four ticks each; quotes at 100 (spread 1) and 1500 (spread 3)
    ts = np.array([10, 20, 30, 40, 1100, 1200, 1300, 1400, 2100, 2200, 2300, 2400])
    price = np.array([10.0, 10.1, 10.0, 10.1, 10.0, 10.1, 10.0, 10.1, 10.0, 10.1, 10.0, 10.1])
    ticks = to_ticks(ts, price, np.full(12, 2.0), np.array([1, 1, -1, 1, 1, 1, 1, 1, -1, -1, -1, -1]))
    quotes = np.zeros(2, dtype=QUOTE_DTYPE)
    quotes["ts"], quotes["bid"], quotes["ask"] = [100, 1500], [9.5, 8.5], [10.5, 11.5]
    carried = vpin_span(np.array([4.0, 4.0]), np.array([1, -1]), 4.0, n_buckets=3).state  # two buckets, 1 and 1
    buckets = vpin_span(ticks["volume"], ticks["side"], 4.0, carried, n_buckets=3)
    table = microstructure_table(ticks, quotes, 0, 3_000, 1_000, buckets)
    # buckets of 4 = two ticks each: (+,+) 1, (-,+) 0, (+,+) 1, (+,+) 1, (-,-) 1, (-,-) 1
    # after window 0 (4 ticks): last three of 1, 1, 1, 0 -> 2/3; window 1: 0, 1, 1 -> 2/3; window 2: 1, 1, 1
    assert table["vpin"].tolist() == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert table["vpin"].tolist() == buckets.value_after(np.array([3, 7, 11])).tolist()
    # window 0: the quote of 100 stands 900 ms -> 1; window 1: it stands 500 ms, then spread 3 for 500 ms -> 2;
    # window 2 has no quote of its own (Roll's estimate for the per-quote mean) but the spread-3 quote stands
    assert table["time_weighted_spread"].tolist() == pytest.approx([1.0, 2.0, 3.0])
    assert table["bid_ask_spread"].tolist()[:2] == pytest.approx([1.0, 3.0])
    assert table["spread_estimated"].tolist() == [0, 0, 1]
    assert microstructure_table(ticks, quotes, 0, 3_000, 1_000)["vpin"].isna().all()  # no buckets given

    conn = connect(tmp_path / "warm.db")
    migrate(conn)
    replace_microstructure(conn, "AAA", 0, 3_000, table)
    stored = read_microstructure(conn, "AAA", 0, 3_000, 1_000)
    assert stored["time_weighted_spread"].tolist() == pytest.approx([1.0, 2.0, 3.0])
    conn.close()
