"""A built-in market simulator: trades, quotes and order books for any symbols, no files needed.

Each symbol's mid follows a log random walk whose variance is a GARCH(1,1)
process updated every 100 ms step, so calm and turbulent stretches
alternate as in real markets. Trades arrive in bursts: the intensity rises
with the variance and excites itself (a discrete Hawkes process), so
inter-arrival times are over-dispersed. Every step publishes a best
bid/offer, whose spread widens with volatility, and a 10-level book; trades
hit that quote (buys at the ask, sells at the bid). Only the sequential
state recursions loop over steps; all per-trade work is vectorized.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fractal_assets.market.symbols import InvalidSymbol, normalize_symbol
from fractal_assets.market.ticks import BookSnapshot, FeedChunk, RawQuotes, RawTrades

STEP_MS = 100
"""Event-time resolution of the mid, the variance, the quotes and the books."""
STEP_S = STEP_MS / 1000

VOL_PER_SECOND = 1e-4
"""Long-run standard deviation of the log mid over one second (about 3% a day)."""
MEAN_VAR = VOL_PER_SECOND**2 * STEP_S
"""Unconditional variance of one step's log return."""
GARCH_ALPHA = 0.05
GARCH_BETA = 0.94
"""Persistence 0.99 per step: volatility shocks decay with a half-life of about 7 s."""
GARCH_OMEGA = MEAN_VAR * (1 - GARCH_ALPHA - GARCH_BETA)

BRANCHING = 0.5
"""Expected trades triggered by each trade; the remaining share arrive at a rate proportional to the variance."""
EXCITATION_DECAY = math.exp(-STEP_MS / 300)
"""A burst of triggered trades fades with a 300 ms time constant."""

HALF_SPREAD_VOL = 0.25
"""Half the quoted spread as a multiple of the current one-step volatility."""
FLOW_SKEW = 1.0
"""How strongly a step's buy/sell mix leans towards the direction the mid moves next."""

TRADE_NOTIONAL = 200.0
"""Median trade size in quote currency; sizes are log-normal around it."""
TRADE_SIZE_SIGMA = 1.2
QUOTE_NOTIONAL = 5_000.0
"""Median size at the best bid or ask, in quote currency."""
QUOTE_SIZE_SIGMA = 0.6
BOOK_LEVELS = 10
LEVEL_GAP_EXTRA = 0.7
"""Mean number of empty ticks between neighbouring book levels."""

PRICE_RANGE = (10.0, 50_000.0)
RELATIVE_TICK = 1e-5
REFERENCE_PRICES = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0, "BNBUSDT": 550.0, "XRPUSDT": 0.5}
"""Start prices of common symbols near their 2024 levels, so that a demo looks like the market."""
"""A tick is the power of ten at or just below this fraction of the starting price."""


@dataclass(frozen=True)
class SimulatorSpec:
    """What to simulate: which symbols, how busy, for how long, from when, with which seed."""

    symbols: tuple[str, ...]
    rate: float
    """Long-run mean trades per second per symbol; as activity follows volatility,
    a run of a few minutes can be several percent off, a run of seconds tens of percent."""
    duration_s: float
    """Seconds of simulated market time."""
    start_ms: int
    """Epoch ms of the first event."""
    seed: int = 0
    chunk_ms: int = 1000
    """Event-time span of one chunk, a multiple of ``STEP_MS``."""

    def __post_init__(self) -> None:
        """Refuse specs that could produce rejected or ambiguous data."""
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be a non-empty list without duplicates")
        for symbol in self.symbols:
            if normalize_symbol(symbol) != symbol:
                raise InvalidSymbol(f"symbol {symbol!r} must be upper-case")
        if not (self.rate >= 0 and self.duration_s >= 0 and self.seed >= 0):
            raise ValueError("rate, duration and seed must be >= 0")
        if self.chunk_ms <= 0 or self.chunk_ms % STEP_MS:
            raise ValueError(f"chunk_ms must be a positive multiple of {STEP_MS}")


@dataclass(frozen=True)
class SymbolProfile:
    """A symbol's starting price and tick size, derived from its name so that every run agrees."""

    price: float
    tick: float
    decimals: int
    """Decimal places of the tick, used to round prices to exact decimal values."""


def _name_key(symbol: str) -> int:
    """A stable 64-bit hash of a symbol (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(symbol.encode(), digest_size=8).digest(), "little")


def symbol_profile(symbol: str) -> SymbolProfile:
    """Starting price from ``REFERENCE_PRICES``, else log-uniform in ``PRICE_RANGE`` by the
    name; a tick of about ``RELATIVE_TICK`` of it."""
    low, high = PRICE_RANGE
    raw = REFERENCE_PRICES.get(symbol) or low * (high / low) ** (_name_key(symbol) / 2**64)
    decimals = -math.floor(math.log10(raw * RELATIVE_TICK))
    return SymbolProfile(round(raw, decimals), 10.0**-decimals, decimals)


@dataclass
class _SymbolState:
    """What one symbol carries from chunk to chunk."""

    symbol: str
    rng: np.random.Generator
    profile: SymbolProfile
    log_mid: float
    var: float
    excitation: float


@dataclass
class _Path:
    """One symbol through a chunk: mid and variance at each step's start, its trade count and return shock."""

    log_mid: np.ndarray
    var: np.ndarray
    counts: np.ndarray
    shocks: np.ndarray


@dataclass
class _Quotes:
    """One symbol's best bid/offer at each step of a chunk."""

    ts: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray


@dataclass
class _Trades:
    """One symbol's trades in a chunk, in time order."""

    ts: np.ndarray
    price: np.ndarray
    volume: np.ndarray
    side: np.ndarray


def _initial_state(symbol: str, spec: SimulatorSpec) -> _SymbolState:
    """A symbol at its long-run mean variance and intensity, so the mean rate is exactly ``spec.rate``.

    Each symbol has its own random stream, so adding a symbol does not change the others.
    """
    profile = symbol_profile(symbol)
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, _name_key(symbol)]))
    return _SymbolState(symbol, rng, profile, math.log(profile.price), MEAN_VAR, BRANCHING * spec.rate)


def _advance(state: _SymbolState, lengths_s: np.ndarray, rate: float) -> _Path:
    """Run the mid, its GARCH variance and the trade intensity through a chunk's steps.

    These recursions are sequential in time, so this loops over the chunk's
    few steps in scalar math; per-trade work is vectorized elsewhere.
    """
    steps = len(lengths_s)
    shocks = state.rng.standard_normal(steps)
    log_mid, var = np.empty(steps), np.empty(steps)
    counts = np.empty(steps, dtype=np.int64)
    base = rate * (1 - BRANCHING) / MEAN_VAR
    for k in range(steps):
        log_mid[k], var[k] = state.log_mid, state.var
        counts[k] = state.rng.poisson((base * state.var + state.excitation) * lengths_s[k])
        state.excitation = EXCITATION_DECAY * state.excitation + BRANCHING * (1 - EXCITATION_DECAY) * counts[k] / STEP_S
        state.log_mid += math.sqrt(state.var) * shocks[k]
        state.var = GARCH_OMEGA + (GARCH_ALPHA * shocks[k] ** 2 + GARCH_BETA) * state.var
    return _Path(log_mid, var, counts, shocks)


def _to_price(ticks: np.ndarray, profile: SymbolProfile) -> np.ndarray:
    """Integer tick counts as prices rounded to the exact decimal grid."""
    return np.round(ticks * profile.tick, profile.decimals)


def _sizes(rng: np.random.Generator, notional: float, price: float, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
    """Log-normal sizes whose median is worth ``notional`` at ``price``."""
    return np.exp(math.log(notional / price) + sigma * rng.standard_normal(shape))


def _quotes(state: _SymbolState, path: _Path, step_ts: np.ndarray) -> tuple[_Quotes, np.ndarray, np.ndarray]:
    """The best bid/offer per step, spread proportional to volatility, plus bid/ask in ticks."""
    mid_ticks = np.exp(path.log_mid) / state.profile.tick
    half = HALF_SPREAD_VOL * np.sqrt(path.var) * mid_ticks
    bid_t, ask_t = np.floor(mid_ticks - half), np.ceil(mid_ticks + half)
    price = state.profile.price
    shape = (len(step_ts),)
    quotes = _Quotes(
        step_ts,
        _to_price(bid_t, state.profile),
        _to_price(ask_t, state.profile),
        _sizes(state.rng, QUOTE_NOTIONAL, price, QUOTE_SIZE_SIGMA, shape),
        _sizes(state.rng, QUOTE_NOTIONAL, price, QUOTE_SIZE_SIGMA, shape),
    )
    return quotes, bid_t, ask_t


def _book_side(state: _SymbolState, top_t: np.ndarray, top_size: np.ndarray, direction: int) -> np.ndarray:
    """Levels (steps x ``BOOK_LEVELS`` x 2) walking away from the top, deeper levels holding more."""
    steps = len(top_t)
    gaps = 1 + state.rng.poisson(LEVEL_GAP_EXTRA, (steps, BOOK_LEVELS - 1))
    offsets = np.concatenate([np.zeros((steps, 1)), np.cumsum(gaps, axis=1)], axis=1)
    depth = 1 + 0.5 * np.arange(1, BOOK_LEVELS)
    deeper = depth * _sizes(state.rng, QUOTE_NOTIONAL, state.profile.price, QUOTE_SIZE_SIGMA, (steps, BOOK_LEVELS - 1))
    sides = np.empty((steps, BOOK_LEVELS, 2))
    sides[:, :, 0] = _to_price(top_t[:, None] + direction * offsets, state.profile)
    sides[:, :, 1] = np.concatenate([top_size[:, None], deeper], axis=1)
    return sides


def _books(state: _SymbolState, quotes: _Quotes, bid_t: np.ndarray, ask_t: np.ndarray) -> list[BookSnapshot]:
    """One snapshot per step whose top level is that step's quote."""
    bids = _book_side(state, bid_t, quotes.bid_size, -1)
    asks = _book_side(state, ask_t, quotes.ask_size, +1)
    return [BookSnapshot(state.symbol, int(ts), b, a) for ts, b, a in zip(quotes.ts, bids, asks)]


def _trades(state: _SymbolState, path: _Path, quotes: _Quotes, step_ts: np.ndarray, lengths_ms: np.ndarray) -> _Trades:
    """Each step's trades at uniform times within it, hitting that step's quote.

    Buys are likelier in steps before the mid rises, the way order flow moves prices.
    """
    rng, total = state.rng, int(path.counts.sum())
    step = np.repeat(np.arange(len(step_ts)), path.counts)
    offsets = np.sort(step * STEP_MS + (rng.random(total) * lengths_ms[step]).astype(np.int64)) - step * STEP_MS
    buy = rng.random(total) < 1 / (1 + np.exp(-FLOW_SKEW * path.shocks[step]))
    return _Trades(
        step_ts[step] + offsets,
        np.where(buy, quotes.ask[step], quotes.bid[step]),
        _sizes(rng, TRADE_NOTIONAL, state.profile.price, TRADE_SIZE_SIGMA, (total,)),
        np.where(buy, 1.0, -1.0),
    )


QUOTE_COLUMNS = ("ts", "bid", "ask", "bid_size", "ask_size")
TRADE_COLUMNS = ("ts", "price", "volume", "side")


def _columns(
    symbols: tuple[str, ...], parts: list[_Quotes] | list[_Trades], fields: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Per-symbol parts concatenated into columns, with a ``symbol`` column saying whose each row is."""
    columns = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
    columns["symbol"] = np.repeat(np.array(symbols), [len(p.ts) for p in parts])
    return columns


def _merge(
    symbols: tuple[str, ...], quotes: list[_Quotes], trades: list[_Trades], first_seq: int
) -> tuple[RawQuotes, RawTrades]:
    """All symbols' quotes and trades in event-time order, numbered from ``first_seq``.

    A quote sorts before a trade at the same millisecond, so every trade comes
    after the quote it executed against.
    """
    q, t = _columns(symbols, quotes, QUOTE_COLUMNS), _columns(symbols, trades, TRADE_COLUMNS)
    order = np.argsort(np.concatenate([q["ts"], t["ts"]]), kind="stable")
    is_trade = order >= len(q["ts"])
    seq = first_seq + np.arange(len(order), dtype=np.int64)
    q_rows, t_rows = order[~is_trade], order[is_trade] - len(q["ts"])
    raw_quotes = RawQuotes(seq=seq[~is_trade], **{f: column[q_rows] for f, column in q.items()})
    raw_trades = RawTrades(seq=seq[is_trade], **{f: column[t_rows] for f, column in t.items()})
    return raw_quotes, raw_trades


def _chunk(states: list[_SymbolState], spec: SimulatorSpec, first_step: int, steps: int, first_seq: int) -> FeedChunk:
    """Simulate ``steps`` steps of every symbol from ``first_step`` on and merge them into one chunk."""
    end_ms = spec.start_ms + spec.duration_s * 1000
    step_ts = spec.start_ms + STEP_MS * np.arange(first_step, first_step + steps, dtype=np.int64)
    lengths_ms = np.minimum(STEP_MS, end_ms - step_ts)
    quotes, trades, books = [], [], []
    for state in states:
        path = _advance(state, lengths_ms / 1000, spec.rate)
        q, bid_t, ask_t = _quotes(state, path, step_ts)
        quotes.append(q)
        books += _books(state, q, bid_t, ask_t)
        trades.append(_trades(state, path, q, step_ts, lengths_ms))
    raw_quotes, raw_trades = _merge(spec.symbols, quotes, trades, first_seq)
    books.sort(key=lambda b: b.ts)
    return FeedChunk(first_seq + len(raw_quotes) + len(raw_trades) - 1, raw_trades, raw_quotes, books)


def simulate(spec: SimulatorSpec) -> Iterator[FeedChunk]:
    """Chunks of ``spec.chunk_ms`` event time covering ``[start_ms, start_ms + duration_s * 1000)``."""
    states = [_initial_state(symbol, spec) for symbol in spec.symbols]
    total_steps = math.ceil(spec.duration_s * 1000 / STEP_MS)
    per_chunk = spec.chunk_ms // STEP_MS
    next_seq = 0
    for first_step in range(0, total_steps, per_chunk):
        chunk = _chunk(states, spec, first_step, min(per_chunk, total_steps - first_step), next_seq)
        next_seq = chunk.last_seq + 1
        yield chunk
