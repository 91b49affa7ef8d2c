"""Tick and quote validation: every bad record is rejected with a named reason, never dropped silently.

Checks are vectorized over a whole chunk; only the per-symbol carry-over
(newest timestamp, last price and side) is kept between chunks. Ingest and
import both validate through these functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from fractal_assets.config import SETTINGS, Config
from fractal_assets.market.symbols import SYMBOL_GRAMMAR, InvalidSymbol, normalize_symbol
from fractal_assets.market.ticks import BUY, QUOTE_DTYPE, RawQuotes, RawTrades, Rejection, tick_rule, to_ticks

UNPARSEABLE = "unparseable"
BAD_PRICE = "bad_price"
BAD_VOLUME = "bad_volume"
BAD_SIDE = "bad_side"
BAD_SYMBOL = "bad_symbol"
TS_BACKWARDS = "ts_backwards"
TS_OUT_OF_RANGE = "ts_out_of_range"
BAD_QUOTE = "bad_quote"
PRICE_OUT_OF_RANGE = "price_out_of_range"
VOLUME_OUT_OF_RANGE = "volume_out_of_range"
REASONS = (UNPARSEABLE, BAD_PRICE, BAD_VOLUME, BAD_SIDE, BAD_SYMBOL, TS_OUT_OF_RANGE, TS_BACKWARDS, BAD_QUOTE,
           PRICE_OUT_OF_RANGE, VOLUME_OUT_OF_RANGE)

FUTURE_SLACK_MS = 86_400_000
"""A tick stamped more than a day past the wall clock is a bad timestamp, not the future:
accepting it would make every later tick look like it went backwards."""


@dataclass(frozen=True)
class Bounds:
    """The largest price and volume a tick may have (``FRACTAL_MAX_PRICE``, 1e12, and
    ``FRACTAL_MAX_VOLUME``, 1e15). Beyond them a value is a feed or unit error, not a trade;
    within them price x volume stays far from overflowing a float64, and every whole volume
    is exact in one (below 2**53)."""

    max_price: float = float(SETTINGS["FRACTAL_MAX_PRICE"].default)
    max_volume: float = float(SETTINGS["FRACTAL_MAX_VOLUME"].default)

    @classmethod
    def of(cls, config: Config) -> "Bounds":
        return cls(config.max_price, config.max_volume)


@dataclass
class SymbolState:
    """What validation of a symbol's next ticks needs to know about its earlier ones."""

    max_ts: int | None = None
    last_price: float | None = None
    last_side: int = BUY
    """The tick rule's current sign, carried over unchanged prices."""


@dataclass
class Validated:
    """One symbol's accepted ticks of a chunk, column by column, with their source sequence numbers."""

    symbol: str
    ts: np.ndarray
    price: np.ndarray
    volume: np.ndarray
    side: np.ndarray
    seq: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)

    @cached_property
    def ticks(self) -> np.ndarray:
        """The ticks as ``TICK_DTYPE`` records, the hot tier's form (built when first asked for)."""
        return to_ticks(self.ts, self.price, self.volume, self.side)


def normalize_symbols(
    raw: np.ndarray, codes: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code per row, normalized name per code, valid flag per code).

    Symbols repeat heavily, so each distinct one is checked once and rows
    carry an integer code instead of a string; ``codes`` are the feed's own
    (code per row, distinct symbols) when it has them.
    """
    codes, uniques = codes if codes is not None else factorize(raw)
    names = np.empty(len(uniques), dtype=object)
    ok = np.zeros(len(uniques), dtype=bool)
    for i, u in enumerate(uniques):
        try:
            names[i], ok[i] = normalize_symbol(u), True
        except InvalidSymbol:
            names[i] = str(u)
    return codes, names, ok


def factorize(raw: np.ndarray) -> tuple[np.ndarray, list[object]]:
    """(code per row, distinct values) of an array of symbols, through Arrow's hash table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        array = pa.array(raw, type=pa.string(), from_pandas=True)
    except (pa.ArrowException, TypeError):
        array = pa.array([str(value) for value in raw], type=pa.string())
    encoded = pc.dictionary_encode(array.fill_null(""))
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


def _reject(trades: RawTrades, rows: np.ndarray, reason: str, detail: str, symbols: np.ndarray) -> list[Rejection]:
    """Rejections of ``rows``; ``symbols`` holds each row's normalized symbol."""
    return [
        Rejection(
            seq=int(trades.seq[i]),
            reason=reason,
            detail=detail,
            raw=f"{trades.symbol[i]},{trades.ts[i]},{trades.price[i]},{trades.volume[i]},{trades.side[i]}",
            symbol=str(symbol),
        )
        for i, symbol in zip(rows, symbols)
    ]


def validate(
    trades: RawTrades, states: dict[str, SymbolState], tolerance_ms: int, bounds: Bounds = Bounds()
) -> tuple[list[Validated], list[Rejection]]:
    """Split a chunk into accepted ticks per symbol and rejections.

    ``states`` is updated in place with the accepted ticks, so the next chunk
    continues the timestamp check and the tick rule where this one ended.
    """
    codes, names, valid = normalize_symbols(trades.symbol, trades.symbol_codes)
    checks = (
        (valid[codes], BAD_SYMBOL, f"symbol must match {SYMBOL_GRAMMAR}"),
        (np.isfinite(trades.price) & (trades.price > 0), BAD_PRICE, "price must be finite and > 0"),
        (trades.price <= bounds.max_price, PRICE_OUT_OF_RANGE, f"price above {bounds.max_price:g} (FRACTAL_MAX_PRICE)"),
        (np.isfinite(trades.volume) & (trades.volume >= 0), BAD_VOLUME, "volume must be finite and >= 0"),
        (trades.volume <= bounds.max_volume, VOLUME_OUT_OF_RANGE,
         f"volume above {bounds.max_volume:g} (FRACTAL_MAX_VOLUME)"),
        (np.isnan(trades.side) | (trades.side == 1) | (trades.side == -1), BAD_SIDE,
         "side must be 1 (buy), -1 (sell) or missing"),
        ((trades.ts > 0) & (trades.ts <= time.time() * 1000 + FUTURE_SLACK_MS), TS_OUT_OF_RANGE,
         "timestamp must be after 1970 and at most a day past the wall clock"),
    )
    rejections: list[Rejection] = []
    pending = np.ones(len(trades), dtype=bool)
    for ok, reason, detail in checks:
        bad = np.flatnonzero(pending & ~ok)
        rejections += _reject(trades, bad, reason, detail, names[codes[bad]])
        pending &= ok

    accepted: list[Validated] = []
    for code in np.flatnonzero(valid):
        symbol = names[code]
        rows = np.flatnonzero(pending & (codes == code))
        if len(rows) == 0:
            continue
        state = states.setdefault(symbol, SymbolState())
        ts = trades.ts[rows]
        running = np.maximum.accumulate(ts)
        prior = np.concatenate(([state.max_ts if state.max_ts is not None else ts[0]], running[:-1]))
        if state.max_ts is not None:
            prior = np.maximum(prior, state.max_ts)
        backwards = ts < prior - tolerance_ms
        rejections += _reject(
            trades, rows[backwards], TS_BACKWARDS, f"timestamp more than {tolerance_ms} ms before the symbol's newest",
            np.full(int(backwards.sum()), symbol, dtype=object),
        )
        good = rows[~backwards]
        if len(good) == 0:
            continue
        price = trades.price[good]
        inferred = tick_rule(price, state.last_price, state.last_side)
        given = trades.side[good]
        side = np.where(np.isnan(given), inferred, given).astype(np.int8)
        accepted.append(Validated(symbol, trades.ts[good], price, trades.volume[good], side, trades.seq[good]))
        state.max_ts = int(running[-1] if state.max_ts is None else max(running[-1], state.max_ts))
        state.last_price, state.last_side = float(price[-1]), int(inferred[-1])
    rejections.sort(key=lambda r: r.seq)
    return accepted, rejections


@dataclass
class ValidatedQuotes:
    """One symbol's accepted quotes of a chunk, with their source sequence numbers."""

    symbol: str
    quotes: np.ndarray
    seq: np.ndarray


def validate_quotes(quotes: RawQuotes, bounds: Bounds = Bounds()) -> tuple[list[ValidatedQuotes], list[Rejection]]:
    """Split quotes into accepted ones per symbol and rejections: a quote needs a valid symbol,
    a time a tick could have and 0 < bid <= ask <= ``bounds.max_price``."""
    codes, names, valid = normalize_symbols(quotes.symbol)
    in_range = (quotes.ts > 0) & (quotes.ts <= time.time() * 1000 + FUTURE_SLACK_MS)
    sane = (np.isfinite(quotes.bid) & np.isfinite(quotes.ask) & (quotes.bid > 0) & (quotes.ask >= quotes.bid)
            & (quotes.ask <= bounds.max_price))
    rejections = [
        Rejection(int(quotes.seq[i]), TS_OUT_OF_RANGE if not in_range[i] else BAD_QUOTE,
                  "timestamp must be after 1970 and at most a day past the wall clock" if not in_range[i]
                  else f"quote needs a valid symbol and 0 < bid <= ask <= {bounds.max_price:g} (FRACTAL_MAX_PRICE)",
                  f"{quotes.symbol[i]},{quotes.ts[i]},{quotes.bid[i]},{quotes.ask[i]}", str(names[codes[i]]))
        for i in np.flatnonzero(~(valid[codes] & in_range & sane))
    ]
    keep = valid[codes] & in_range & sane
    accepted = []
    for code in np.unique(codes[keep]):
        rows = keep & (codes == code)
        block = np.empty(int(rows.sum()), dtype=QUOTE_DTYPE)
        for name in QUOTE_DTYPE.names:
            block[name] = getattr(quotes, name)[rows]
        accepted.append(ValidatedQuotes(str(names[code]), block, quotes.seq[rows]))
    return accepted, rejections
