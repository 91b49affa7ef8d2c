"""Microstructure metrics over a window of ticks or quotes.

Each function takes the window's columns and returns plain floats; an empty
window (or zero volume) gives NaN rather than a made-up number.
"""

from __future__ import annotations

import numpy as np


def tick_imbalance(side: np.ndarray) -> float:
    """Sum of aggressor signs over the window: AFML ch. 2's tick imbalance theta."""
    return float(np.sum(side, dtype=np.int64)) if len(side) else float("nan")


def order_flow_ratio(volume: np.ndarray, side: np.ndarray) -> float:
    """(buy volume - sell volume) / total volume, in [-1, 1]."""
    total = float(np.sum(volume))
    return float(np.dot(volume, side)) / total if total > 0 else float("nan")


def bid_ask_spread(bid: np.ndarray, ask: np.ndarray) -> tuple[float, float]:
    """(mean quoted spread, mean relative spread (ask - bid) / mid) over the window's quotes."""
    if len(bid) == 0:
        return float("nan"), float("nan")
    spread = ask - bid
    return float(np.mean(spread)), float(np.mean(spread / ((ask + bid) / 2)))
