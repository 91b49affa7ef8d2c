"""A price-level order book rebuilt from a snapshot plus incremental level updates.

Levels live in dicts (price -> quantity) so an update costs O(levels it
touches); the sorted top of the book is computed only when a snapshot of it
is taken. Feed-specific sequencing (update ids, gaps) is the feed's business.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fractal_assets.market import schema

if TYPE_CHECKING:
    from fractal_assets.market.ticks import BookSnapshot

Level = tuple[float, float]
"""One ``(price, quantity)`` pair."""

SNAPSHOT_MS = 100
"""Feeds cut their books into snapshots at the end of every bucket of this much event time."""


def bucket_end(bucket: int) -> int:
    """The stamp of ``bucket``'s snapshot: its last millisecond, so it holds every update stamped up to then."""
    return (bucket + 1) * SNAPSHOT_MS - 1


def parse_levels(levels: Iterable[Sequence[str | float]]) -> list[Level]:
    """``[price, quantity]`` pairs, as numbers or as the strings exchanges send, as floats.

    Feeds parse a whole update before applying it, so a malformed one raises
    without leaving the book half-changed.
    """
    return [(float(price), float(qty)) for price, qty in levels]


class OrderBook:
    """Bid and ask levels of one instrument; a zero quantity deletes a level."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def apply_snapshot(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book with the given levels."""
        self.bids, self.asks = {}, {}
        self.apply_update(bids, asks)

    def apply_update(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Set each given level's quantity, deleting levels whose quantity is zero."""
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, qty in levels:
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty

    def top(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The best ``n`` bids (price descending) and asks (ascending) as ``(k, 2)`` arrays, k <= n."""
        bids = _levels_array(self.bids, heapq.nlargest(n, self.bids))
        return bids, _levels_array(self.asks, heapq.nsmallest(n, self.asks))


def _levels_array(side: dict[float, float], prices: list[float]) -> np.ndarray:
    """``(price, quantity)`` rows of the chosen prices (selecting on bare float keys is cheaper than on pairs)."""
    return np.array([(price, side[price]) for price in prices], dtype=np.float64).reshape(-1, 2)


def book_records(books: Sequence[BookSnapshot]) -> np.ndarray:
    """Snapshots as ``schema.BOOK`` records; levels past a book's depth are NaN."""
    out = np.zeros(len(books), schema.BOOK.numpy)
    for name in schema.BOOK.names[1:]:
        out[name] = np.nan
    for i, book in enumerate(books):
        out["ts"][i] = book.ts
        for side, levels in (("bid", book.bids), ("ask", book.asks)):
            depth = min(len(levels), schema.BOOK_LEVELS)
            out[f"{side}_price"][i, :depth] = levels[:depth, 0]
            out[f"{side}_size"][i, :depth] = levels[:depth, 1]
    return out


def book_dict(ts: int, bid_price: np.ndarray, bid_size: np.ndarray, ask_price: np.ndarray,
              ask_size: np.ndarray) -> dict[str, Any]:
    """A stored snapshot as the API returns books: ``{ts, bids, asks}``, levels ``[price, qty]``."""
    def levels(price: np.ndarray, size: np.ndarray) -> list[list[float]]:
        return [[float(p), float(q)] for p, q in zip(price, size) if not np.isnan(p)]

    return {"ts": int(ts), "bids": levels(bid_price, bid_size), "asks": levels(ask_price, ask_size)}
