"""Tick model, tick rule, validation and the ring buffer: pure functions, no storage."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fractal_assets.hot.codec import PayloadError, pack_records, unpack_records
from fractal_assets.hot.ring import RingBuffer
from fractal_assets.ingest.validation import (
    BAD_PRICE,
    BAD_SIDE,
    BAD_SYMBOL,
    BAD_VOLUME,
    TS_BACKWARDS,
    TS_OUT_OF_RANGE,
    InvalidSymbol,
    SymbolState,
    normalize_symbol,
    validate,
)
from fractal_assets.market.ticks import TICK_DTYPE, RawTrades, tick_rule, to_ticks


def raw(symbol, ts, price, volume, side) -> RawTrades:
    n = len(ts)
    return RawTrades(
        np.arange(n, dtype=np.int64), np.array(symbol if isinstance(symbol, list) else [symbol] * n, dtype=object),
        np.array(ts, dtype=np.int64), np.array(price, dtype=float), np.array(volume, dtype=float),
        np.array(side, dtype=float),
    )


def test_tick_rule_signs_changes_and_carries_over_zero_changes() -> None:
    price = np.array([10.0, 10.0, 11.0, 11.0, 10.5, 10.5, 10.5, 12.0])
    assert tick_rule(price).tolist() == [1, 1, 1, 1, -1, -1, -1, 1]


def test_tick_rule_continues_from_previous_chunk_state() -> None:
    assert tick_rule(np.array([9.0, 9.0]), prev_price=10.0, prev_side=1).tolist() == [-1, -1]
    assert tick_rule(np.array([10.0, 10.0]), prev_price=10.0, prev_side=-1).tolist() == [-1, -1]


def test_validate_infers_missing_sides_per_symbol_and_keeps_given_ones() -> None:
    trades = raw(["A", "B", "A", "B", "A"], [1, 1, 2, 2, 3], [5.0, 7.0, 4.0, 8.0, 4.0], [1] * 5,
                 [np.nan, np.nan, np.nan, -1, np.nan])
    accepted, rejections = validate(trades, {}, tolerance_ms=0)
    assert rejections == []
    by_symbol = {v.symbol: v for v in accepted}
    assert by_symbol["A"].ticks["side"].tolist() == [1, -1, -1]
    assert by_symbol["B"].ticks["side"].tolist() == [1, -1]
    assert by_symbol["A"].seq.tolist() == [0, 2, 4]


def test_validate_rejects_each_bad_value_with_its_reason() -> None:
    trades = raw(
        ["OK", "OK", "OK", "OK", "OK", "OK", "BAD/SYM", "OK", "OK"],
        [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008],
        [1.0, np.nan, np.inf, -1.0, 0.0, 1.0, 1.0, 1.0, 1.0],
        [1.0, 1.0, 1.0, 1.0, 1.0, -2.0, 1.0, 1.0, np.nan],
        [1, 1, 1, 1, 1, 1, 1, 2, 1],
    )
    accepted, rejections = validate(trades, {}, tolerance_ms=0)
    assert [(r.seq, r.reason) for r in rejections] == [
        (1, BAD_PRICE), (2, BAD_PRICE), (3, BAD_PRICE), (4, BAD_PRICE), (5, BAD_VOLUME),
        (6, BAD_SYMBOL), (7, BAD_SIDE), (8, BAD_VOLUME),
    ]
    assert len(accepted) == 1 and accepted[0].seq.tolist() == [0]


def test_timestamp_going_back_beyond_tolerance_is_rejected_across_chunks() -> None:
    states: dict[str, SymbolState] = {}
    validate(raw("X", [10_000, 12_000], [1, 1], [1, 1], [1, 1]), states, tolerance_ms=1000)
    accepted, rejections = validate(raw("X", [11_500, 10_999, 11_000, 13_000], [1] * 4, [1] * 4, [1] * 4),
                                    states, tolerance_ms=1000)
    assert [r.seq for r in rejections] == [1]
    assert rejections[0].reason == TS_BACKWARDS
    assert accepted[0].ticks["ts"].tolist() == [11_500, 11_000, 13_000]
    assert states["X"].max_ts == 13_000


@pytest.mark.parametrize("bad", ["", "BTC/USD", "../etc", "A" * 33, "BTC USD", "btc:usd"])
def test_symbols_that_could_escape_a_key_or_path_are_invalid(bad: str) -> None:
    with pytest.raises(InvalidSymbol):
        normalize_symbol(bad)


def test_symbols_are_upper_cased() -> None:
    assert normalize_symbol(" btc-usdt.p_1 ") == "BTC-USDT.P_1"


def ticks(ts: range) -> np.ndarray:
    n = len(ts)
    return to_ticks(np.array(ts, dtype=np.int64), np.ones(n), np.ones(n), np.ones(n, dtype=np.int8))


def test_ring_buffer_wraps_around_keeping_the_newest_in_order() -> None:
    ring = RingBuffer(10, TICK_DTYPE)
    ring.append(ticks(range(0, 7)))
    ring.append(ticks(range(7, 13)))
    assert len(ring) == 10 and ring.total == 13
    assert ring.latest(10)["ts"].tolist() == list(range(3, 13))
    assert ring.latest(3)["ts"].tolist() == [10, 11, 12]
    ring.append(ticks(range(13, 40)))
    assert ring.latest(100)["ts"].tolist() == list(range(30, 40))


def test_ring_recent_is_a_view_unless_the_window_wraps() -> None:
    ring = RingBuffer(10, TICK_DTYPE)
    ring.append(ticks(range(0, 8000, 1000)))
    window = ring.recent(3)
    assert window["ts"].tolist() == [4000, 5000, 6000, 7000]
    assert np.shares_memory(window, ring._buf)
    ring.append(ticks(range(8000, 12000, 1000)))
    assert ring.recent(1)["ts"].tolist() == [10000, 11000]
    assert np.shares_memory(ring.recent(1), ring._buf)
    wrapped = ring.recent(4)
    assert wrapped["ts"].tolist() == [7000, 8000, 9000, 10000, 11000]
    assert not np.shares_memory(wrapped, ring._buf)


def test_tick_payload_round_trips_and_rejects_tampering() -> None:
    block = ticks(range(5))
    blob = pack_records(block, seq0=42)
    back, seq0 = unpack_records(blob, TICK_DTYPE)
    assert seq0 == 42 and np.array_equal(back, block)
    with pytest.raises(PayloadError):
        unpack_records(blob[:-3], TICK_DTYPE)
    with pytest.raises(PayloadError):
        unpack_records(b"\xc1garbage", TICK_DTYPE)


def test_timestamps_before_1970_or_far_in_the_future_are_out_of_range() -> None:
    far = int(time.time() * 1000) + 2 * 86_400_000
    accepted, rejections = validate(raw("T", [-5, 1_000, far, 2_000], [1] * 4, [1] * 4, [1] * 4), {}, tolerance_ms=0)
    assert [(r.seq, r.reason) for r in rejections] == [(0, TS_OUT_OF_RANGE), (2, TS_OUT_OF_RANGE)]
    assert accepted[0].ticks["ts"].tolist() == [1_000, 2_000]


def test_bars_of_ticks_on_bucket_edges() -> None:
    from fractal_assets.market.bars import compute_bars

    one = compute_bars(np.array([120_000]), np.array([5.0]), np.array([2.0]), np.array([1], dtype=np.int8), "1m")
    assert one[["timestamp", "open", "close", "tick_count", "buy_volume"]].values.tolist() == [[120_000, 5, 5, 1, 2]]
    ts = np.array([60_000, 119_999, 120_000, 300_000])
    bars = compute_bars(ts, np.array([1.0, 2, 3, 4]), np.ones(4), np.array([1, -1, 1, -1], dtype=np.int8), "1m")
    assert bars["timestamp"].tolist() == [60_000, 120_000, 300_000]
    assert bars["tick_count"].tolist() == [2, 1, 1] and bars["close"].tolist() == [2, 3, 4]


@pytest.mark.parametrize("bad", ["btc", "A*", "A}B", "X:Y", "", "A B"])
def test_keys_refuse_symbols_that_are_not_normalized(bad: str) -> None:
    from fractal_assets.hot.keys import Keys

    with pytest.raises(InvalidSymbol):
        Keys("p:").ticks(bad)
    assert Keys("p:").ticks("BTC-USD.P_1") == "p:tick:{BTC-USD.P_1}"
