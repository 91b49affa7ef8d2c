"""The built-in market simulator: valid, deterministic data with the statistical features of real markets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from fractal_assets.feeds.simulator import BOOK_LEVELS, SimulatorSpec, simulate, symbol_profile
from fractal_assets.ingest.validation import SymbolState, validate
from fractal_assets.market.ticks import RAW_TRADE_FIELDS, BookSnapshot, FeedChunk

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START_MS = 1_700_000_000_000
QUOTE_FIELDS = ("seq", "symbol", "ts", "bid", "ask", "bid_size", "ask_size")


@dataclass(repr=False)
class Run:
    """A whole simulation, its chunks kept and its columns concatenated.

    No generated repr: pytest prints fixture arguments on failure, and
    rendering hours of ticks would take minutes.
    """

    chunks: list[FeedChunk]
    trades: dict[str, np.ndarray]
    quotes: dict[str, np.ndarray]
    books: list[BookSnapshot]


def _run(spec: SimulatorSpec) -> Run:
    chunks = list(simulate(spec))
    trades = {f: np.concatenate([getattr(c.trades, f) for c in chunks]) for f in RAW_TRADE_FIELDS}
    quotes = {f: np.concatenate([getattr(c.quotes, f) for c in chunks]) for f in QUOTE_FIELDS}
    return Run(chunks, trades, quotes, [b for c in chunks for b in c.books])


@pytest.fixture(scope="module")
def short() -> Run:
    """A busy run whose duration ends mid-step, in default one-second chunks."""
    return _run(SimulatorSpec(SYMBOLS, rate=500, duration_s=30.05, start_ms=START_MS, seed=7))


@pytest.fixture(scope="module")
def long() -> Run:
    """An hour at a modest rate: long enough for volatility statistics."""
    return _run(SimulatorSpec(SYMBOLS, rate=20, duration_s=3600, start_ms=START_MS, seed=3, chunk_ms=60_000))


def _one_second_mids(run: Run, symbol: str) -> np.ndarray:
    """The quoted mid at the start of every second."""
    mine = run.quotes["symbol"] == symbol
    ts = run.quotes["ts"][mine]
    whole = (ts - START_MS) % 1000 == 0
    return ((run.quotes["bid"][mine] + run.quotes["ask"][mine]) / 2)[whole]


def _lag1_autocorrelation(x: np.ndarray) -> float:
    d = x - x.mean()
    return float((d[1:] * d[:-1]).mean() / d.var())


def test_same_seed_gives_identical_data_and_another_seed_differs() -> None:
    spec = SimulatorSpec(SYMBOLS, rate=300, duration_s=5, start_ms=START_MS, seed=11)
    first, again = _run(spec), _run(spec)
    other = _run(SimulatorSpec(SYMBOLS, rate=300, duration_s=5, start_ms=START_MS, seed=12))
    for field in first.trades:
        np.testing.assert_array_equal(first.trades[field], again.trades[field])
    for field in first.quotes:
        np.testing.assert_array_equal(first.quotes[field], again.quotes[field])
    assert len(first.books) == len(again.books)
    for a, b in zip(first.books, again.books):
        np.testing.assert_array_equal(a.bids, b.bids)
        np.testing.assert_array_equal(a.asks, b.asks)
    assert not np.array_equal(first.quotes["bid"], other.quotes["bid"])
    assert not np.array_equal(first.trades["ts"][:100], other.trades["ts"][:100])


def test_trade_count_matches_rate_within_five_sigma() -> None:
    """Bursty arrivals make counts vary more than Poisson, so sigma comes from independent replicates."""
    rate, duration = 50, 300
    totals = np.array([
        len(_run(SimulatorSpec(SYMBOLS, rate, duration, START_MS, seed=seed, chunk_ms=60_000)).trades["ts"])
        for seed in range(12)
    ])
    expected = rate * duration * len(SYMBOLS)
    standard_error = totals.std(ddof=1) / np.sqrt(len(totals))
    assert abs(totals.mean() - expected) < 5 * standard_error
    assert np.all(np.abs(totals - expected) < 5 * totals.std(ddof=1))
    assert totals.std(ddof=1) > np.sqrt(expected)


def test_chunks_are_numbered_in_event_time_order_and_pass_validation(short: Run) -> None:
    seq = np.sort(np.concatenate([short.trades["seq"], short.quotes["seq"]]))
    np.testing.assert_array_equal(seq, np.arange(len(seq)))
    states: dict[str, SymbolState] = {}
    for chunk in short.chunks:
        assert not chunk.rejections
        accepted, rejections = validate(chunk.trades, states, tolerance_ms=0)
        assert not rejections and sum(len(v.ticks) for v in accepted) == len(chunk.trades)
        assert chunk.last_seq == max(chunk.trades.seq.max(initial=-1), chunk.quotes.seq.max())
        by_seq = np.argsort(np.concatenate([chunk.trades.seq, chunk.quotes.seq]))
        assert np.all(np.diff(np.concatenate([chunk.trades.ts, chunk.quotes.ts])[by_seq]) >= 0)
        assert [b.ts for b in chunk.books] == sorted(b.ts for b in chunk.books)


def test_timestamps_are_in_range_and_never_go_back_per_symbol(short: Run) -> None:
    end = START_MS + 30.05 * 1000
    for ts in (short.trades["ts"], short.quotes["ts"]):
        assert ts.dtype == np.int64
        assert ts.min() >= START_MS and ts.max() < end
    for symbol in SYMBOLS:
        assert np.all(np.diff(short.trades["ts"][short.trades["symbol"] == symbol]) >= 0)
        assert np.all(np.diff([b.ts for b in short.books if b.symbol == symbol]) > 0)


def _on_grid(prices: np.ndarray, tick: float) -> bool:
    return bool(np.allclose(prices / tick, np.round(prices / tick), rtol=0, atol=1e-6))


def test_prices_lie_on_each_symbols_tick_grid(short: Run) -> None:
    for symbol in SYMBOLS:
        tick = symbol_profile(symbol).tick
        assert _on_grid(short.trades["price"][short.trades["symbol"] == symbol], tick)
        assert _on_grid(short.quotes["bid"][short.quotes["symbol"] == symbol], tick)
        assert _on_grid(short.quotes["ask"][short.quotes["symbol"] == symbol], tick)
        books = [b for b in short.books if b.symbol == symbol]
        assert all(_on_grid(b.bids[:, 0], tick) and _on_grid(b.asks[:, 0], tick) for b in books)


def test_buys_execute_at_the_ask_and_sells_at_the_bid_of_the_prevailing_quote(short: Run) -> None:
    trades, quotes = short.trades, short.quotes
    assert set(np.unique(trades["side"])) == {-1.0, 1.0}
    for symbol in SYMBOLS:
        t, q = trades["symbol"] == symbol, quotes["symbol"] == symbol
        prevailing = np.searchsorted(quotes["seq"][q], trades["seq"][t]) - 1
        assert prevailing.min() >= 0
        assert np.all(quotes["ts"][q][prevailing] <= trades["ts"][t])
        quoted = np.where(trades["side"][t] > 0, quotes["ask"][q][prevailing], quotes["bid"][q][prevailing])
        np.testing.assert_array_equal(trades["price"][t], quoted)
    assert np.all(trades["volume"] > 0)
    assert len(np.unique(trades["volume"])) == len(trades["volume"])


def test_spread_is_at_least_one_tick_and_widens_with_volatility(long: Run) -> None:
    for symbol in SYMBOLS:
        mine = long.quotes["symbol"] == symbol
        spread_ticks = (long.quotes["ask"][mine] - long.quotes["bid"][mine]) / symbol_profile(symbol).tick
        assert spread_ticks.min() >= 1 - 1e-6
        abs_return = np.abs(np.diff(np.log(_one_second_mids(long, symbol))))
        mean_spread = spread_ticks.reshape(-1, 10).mean(axis=1)[:-1]
        assert np.corrcoef(mean_spread, abs_return)[0, 1] > 0.2


def test_inter_arrival_times_are_over_dispersed(long: Run) -> None:
    """A Poisson process has a coefficient of variation of 1; bursts push it well above."""
    for symbol in SYMBOLS:
        gaps = np.diff(long.trades["ts"][long.trades["symbol"] == symbol])
        assert gaps.std() / gaps.mean() > 1.15


def test_absolute_returns_cluster(long: Run) -> None:
    """Large one-second moves follow large ones: the autocorrelation of |return| is far beyond its noise.

    Symbols are independent, so their autocorrelations are averaged to shrink that noise.
    """
    abs_returns = [np.abs(np.diff(np.log(_one_second_mids(long, symbol)))) for symbol in SYMBOLS]
    mean_autocorrelation = np.mean([_lag1_autocorrelation(r) for r in abs_returns])
    assert mean_autocorrelation > 5 / np.sqrt(sum(len(r) for r in abs_returns))


def test_books_are_well_formed_and_topped_by_the_quote(short: Run) -> None:
    steps = int(np.ceil(30.05 * 10))
    assert len(short.books) == steps * len(SYMBOLS)
    quote_at = {(s, int(ts)): i for i, (s, ts) in enumerate(zip(short.quotes["symbol"], short.quotes["ts"]))}
    for book in short.books:
        assert book.bids.shape == book.asks.shape == (BOOK_LEVELS, 2)
        assert np.all(np.diff(book.bids[:, 0]) < 0) and np.all(np.diff(book.asks[:, 0]) > 0)
        assert np.all(book.bids[:, 1] > 0) and np.all(book.asks[:, 1] > 0)
        assert book.bids[0, 0] < book.asks[0, 0]
        i = quote_at[(book.symbol, book.ts)]
        assert (book.bids[0, 0], book.asks[0, 0]) == (short.quotes["bid"][i], short.quotes["ask"][i])
        assert (book.bids[0, 1], book.asks[0, 1]) == (short.quotes["bid_size"][i], short.quotes["ask_size"][i])


@pytest.mark.parametrize(
    "change",
    [{"symbols": ()}, {"symbols": ("btcusdt",)}, {"symbols": ("A", "A")}, {"rate": -1.0}, {"chunk_ms": 150}],
)
def test_specs_that_could_yield_invalid_data_are_refused(change: dict) -> None:
    fields = {"symbols": SYMBOLS, "rate": 10.0, "duration_s": 1.0, "start_ms": START_MS} | change
    with pytest.raises(ValueError):
        SimulatorSpec(**fields)
