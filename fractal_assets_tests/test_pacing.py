"""The paced replay of a feed: no record leaves before its event time, none is lost or repeated."""

from __future__ import annotations

import time

import numpy as np

from fractal_assets.feeds.pacing import RELEASE_EVERY_S, Pacer, paced
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.market.ticks import FeedChunk

START_MS = 1_700_000_000_000


class ManualClock:
    """A clock that moves only when slept on, by the time asked plus a jitter, like a busy machine."""

    def __init__(self, seed: int) -> None:
        self.now = 100.0
        self.rng = np.random.default_rng(seed)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + float(self.rng.exponential(0.0005))


def _released(chunks: list[FeedChunk], clock: ManualClock, speed: float) -> list[tuple[float, FeedChunk]]:
    pacer = Pacer(speed, clock=clock, sleep=clock.sleep)
    return [(clock(), part) for part in paced(chunks, pacer)], pacer


def test_no_record_leaves_before_its_event_time() -> None:
    spec = SimulatorSpec(("BTCUSDT", "ETHUSDT"), rate=2_000, duration_s=3, start_ms=START_MS, seed=5)
    chunks = list(simulate(spec))
    for speed in (1.0, 4.0):
        clock = ManualClock(seed=int(speed))
        released, pacer = _released(chunks, clock, speed)
        wall0, ts0 = pacer.origin
        assert ts0 == START_MS
        for at, part in released:
            for records in (part.trades, part.quotes):
                if records is not None and len(records):
                    assert at >= wall0 + (int(records.ts.max()) - ts0) / 1000 / speed
            for book in part.books:
                assert at >= wall0 + (book.ts - ts0) / 1000 / speed
        assert min(clock.sleeps) >= RELEASE_EVERY_S
        slices = [part for _, part in released if part.trades is not None and len(part.trades)]
        assert len(slices) > 10 * len(chunks), "a one-second chunk leaves in many slices"


def test_every_record_leaves_once_in_order_with_checkpoints_that_hold() -> None:
    spec = SimulatorSpec(("BTCUSDT", "SOLUSDT"), rate=500, duration_s=2.5, start_ms=START_MS, seed=9)
    chunks = list(simulate(spec))
    released, _ = _released(chunks, ManualClock(seed=1), 1.0)
    parts = [part for _, part in released]
    for kind in ("trades", "quotes"):
        original = np.concatenate([getattr(c, kind).seq for c in chunks])
        out = np.concatenate([getattr(p, kind).seq for p in parts if getattr(p, kind) is not None])
        assert np.array_equal(original, out)
    assert [b.ts for c in chunks for b in c.books] == [b.ts for p in parts for b in p.books]
    seen: list[int] = []
    for part in parts:
        for records in (part.trades, part.quotes):
            seen += records.seq.tolist() if records is not None else []
        held = set(range(max(seen) + 1)) - set(seen) if seen else set()
        assert all(s > part.last_seq for s in held), "last_seq never passes a record still held back"
    ends = [p.last_seq for p in parts if p.trades is not None]
    assert ends[-1] == chunks[-1].last_seq and ends == sorted(ends)


def test_out_of_order_timestamps_wait_for_the_newest_before_them() -> None:
    chunk = next(simulate(SimulatorSpec(("BTCUSDT",), rate=200, duration_s=1, start_ms=START_MS, seed=2)))
    ts = chunk.trades.ts.copy()
    ts[5] = ts[-1]
    chunk.trades.ts = ts
    clock = ManualClock(seed=3)
    released, pacer = _released([chunk], clock, 1.0)
    wall0, ts0 = pacer.origin
    trades = [(at, part.trades) for at, part in released if part.trades is not None and len(part.trades)]
    for at, part in trades:
        assert at >= wall0 + (int(part.ts.max()) - ts0) / 1000
    assert np.array_equal(np.concatenate([t.seq for _, t in trades]), chunk.trades.seq), "arrival order kept"
    late = next(at for at, t in trades if chunk.trades.seq[5] in t.seq)
    assert late >= wall0 + (int(ts[-1]) - ts0) / 1000, "rows after a late timestamp wait for it"


def test_real_clock_releases_nothing_early() -> None:
    """The same check on the monotonic clock: a slow machine only makes releases later."""
    spec = SimulatorSpec(("BTCUSDT",), rate=1_000, duration_s=0.5, start_ms=START_MS, seed=4)
    pacer = Pacer(1.0)
    for part in paced(simulate(spec), pacer):
        at = time.monotonic()
        if part.trades is not None and len(part.trades):
            assert at >= pacer.due(int(part.trades.ts.max()))


def test_speed_zero_passes_chunks_through() -> None:
    chunks = list(simulate(SimulatorSpec(("BTCUSDT",), rate=100, duration_s=2, start_ms=START_MS)))
    assert list(paced(chunks, Pacer(0.0))) == chunks
