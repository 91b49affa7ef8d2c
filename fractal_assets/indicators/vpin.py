"""VPIN, the volume-synchronized probability of informed trading (Easley, López de Prado &
O'Hara 2012; AFML section 19.5.2), over buckets that run on across days.

Trades fill equal-volume buckets of size V in order; VPIN is the mean
order imbalance |V_B - V_S| / V of the last 50 complete buckets. The
standard V is one fiftieth of the average daily volume, so a bucket is
about half an hour of an average day and the buckets do not restart at
midnight. ``vpin_span`` therefore takes the state an earlier span of
trades left behind (``VpinState``: the bucket being filled and the last
complete ones) and returns the state after its own trades, so that days
can be processed one after the other and the real-time process can feed
micro-batches as they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NAN = float("nan")
N_BUCKETS = 50
"""Buckets per average day, and buckets averaged by VPIN (Easley et al. 2012)."""

_COMPLETE_TOLERANCE = 1e-9
"""A bucket short of its size by less than this fraction of it (float rounding of running sums) is complete."""


@dataclass(frozen=True, eq=False)
class VpinState:
    """What one span of trades hands to the next.

    ``imbalance``: |V_B - V_S| / size of the last (at most ``N_BUCKETS``)
    complete buckets, oldest first. ``open_volume`` and ``open_buy``: volume
    and buy volume in the bucket being filled (0 when none is), whose size
    ``open_size`` was fixed when it opened (NaN when none is open).
    """

    imbalance: np.ndarray = field(default_factory=lambda: np.empty(0))
    open_size: float = NAN
    open_volume: float = 0.0
    open_buy: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, for storage between runs."""
        return {"imbalance": self.imbalance.tolist(), "open_size": _json_float(self.open_size),
                "open_volume": self.open_volume, "open_buy": self.open_buy}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> VpinState:
        size = data["open_size"]
        return cls(np.asarray(data["imbalance"], dtype=np.float64), NAN if size is None else float(size),
                   float(data["open_volume"]), float(data["open_buy"]))


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else value


@dataclass(frozen=True, eq=False)
class VpinSpan:
    """The buckets one span of trades completed, and VPIN at any trade of it.

    ``bucket_imbalance[k]`` is |V_B - V_S| / size of the k-th bucket
    completed in the span and ``bucket_end_index[k]`` the index of the trade
    that completed it (a trade split across a border counts in both
    buckets). ``carried`` are the imbalances the span started with.
    """

    carried: np.ndarray
    bucket_imbalance: np.ndarray
    bucket_end_index: np.ndarray
    bucket_volume: float
    n_buckets: int
    trades: int
    state: VpinState

    def value_after(self, trade_index: np.ndarray) -> np.ndarray:
        """VPIN once trades 0..i of the span are in (i = -1: before any): the mean of the last
        ``n_buckets`` complete buckets, carried ones included; NaN while there are fewer."""
        n = self.n_buckets
        series = np.concatenate((self.carried, self.bucket_imbalance))
        completed = len(self.carried) + np.searchsorted(self.bucket_end_index, trade_index, side="right")
        if len(series) < n:
            return np.full(len(completed), np.nan)
        means = sliding_window_view(series, n).mean(axis=1)
        return np.where(completed >= n, means[np.maximum(completed - n, 0)], np.nan)

    @property
    def value(self) -> float:
        """VPIN after the span's last trade."""
        return float(self.value_after(np.array([self.trades - 1]))[0])


def _check_buckets(n_buckets: int) -> None:
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be at least 1, got {n_buckets}")


def vpin_span(
    volume: np.ndarray, side: np.ndarray, bucket_volume: float, state: VpinState | None = None,
    n_buckets: int = N_BUCKETS,
) -> VpinSpan:
    """Continue the buckets of ``state`` through one span of trades (Easley et al. 2012).

    The open bucket keeps the size it opened with and is filled first; every
    later bucket has size ``bucket_volume``. A trade crossing a border is
    split between the buckets. Each trade's volume is buy volume in the
    fraction (1 + side) / 2: +1/-1 ticks are all-buy/all-sell, and a
    fractional side in [-1, 1] carries a bulk classification. A NaN
    ``bucket_volume`` (no daily volume to size buckets by) leaves the trades
    out of any bucket: the state passes through unchanged.
    """
    _check_buckets(n_buckets)
    state = VpinState() if state is None else state
    size = float(bucket_volume)
    if not np.isnan(size) and not 0 < size < np.inf:
        raise ValueError(f"bucket_volume must be positive and finite, got {bucket_volume}")
    carried = state.imbalance[-n_buckets:]
    volume = np.asarray(volume, dtype=np.float64)
    if np.isnan(size):
        return VpinSpan(carried, np.empty(0), np.empty(0, dtype=np.int64), size, n_buckets, len(volume), state)
    buy_fraction = (1.0 + np.asarray(side, dtype=np.float64)) / 2.0
    cum_volume = np.concatenate(([0.0], np.cumsum(volume)))
    cum_buy = np.concatenate(([0.0], np.cumsum(volume * buy_fraction)))
    total = float(cum_volume[-1])
    borders, sizes = _borders(total, size, state)
    trade = np.searchsorted(cum_volume, borders, side="left") - 1
    buy_at_border = cum_buy[trade] + (borders - cum_volume[trade]) * buy_fraction[trade]
    buy = np.diff(buy_at_border, prepend=-state.open_buy)
    imbalance = np.abs(2.0 * buy - sizes) / sizes
    if len(borders):
        rest = max(total - float(borders[-1]), 0.0)
        rest_buy = max(float(cum_buy[-1] - buy_at_border[-1]), 0.0) if rest > 0 else 0.0
        open_bucket = (size if rest > 0 else NAN, rest, rest_buy)
    else:
        rest = state.open_volume + total
        open_bucket = (_next_size(state, size) if rest > 0 else NAN, rest, state.open_buy + float(cum_buy[-1]))
    after = VpinState(np.concatenate((carried, imbalance))[-n_buckets:], *open_bucket)
    return VpinSpan(carried, imbalance, trade, size, n_buckets, len(volume), after)


def _next_size(state: VpinState, size: float) -> float:
    """Size of the next bucket to complete: the open one's own, else the new ``size``."""
    return state.open_size if state.open_volume > 0 else size


def _borders(total: float, size: float, state: VpinState) -> tuple[np.ndarray, np.ndarray]:
    """Positions in the span's running volume where buckets complete, and those buckets' sizes.

    The first border completes the open bucket (at its own size), the next
    ones follow every ``size``; a border short of the span's total by float
    rounding (less than ``_COMPLETE_TOLERANCE`` of a bucket) is moved onto it.
    """
    first_size = _next_size(state, size)
    first = first_size - state.open_volume
    reach = (total - first) / size + _COMPLETE_TOLERANCE
    complete = int(np.floor(reach)) + 1 if reach >= 0 else 0
    sizes = np.full(complete, size)
    sizes[:1] = first_size
    return np.minimum(first + np.arange(complete) * size, total), sizes


def vpin(volume: np.ndarray, side: np.ndarray, bucket_volume: float | None = None, n_buckets: int = N_BUCKETS) -> VpinSpan:
    """VPIN of one sequence of trades on its own, from empty buckets.

    ``bucket_volume`` defaults to the sequence's total volume / ``n_buckets``
    (the per-window variant, ``vpin_window``: not comparable with the
    literature's day-sized buckets). The incomplete last bucket is dropped;
    VPIN is NaN with fewer than ``n_buckets`` complete buckets or zero volume.
    """
    _check_buckets(n_buckets)
    if bucket_volume is None:
        total = float(np.sum(volume))
        bucket_volume = total / n_buckets if total > 0 else NAN
    elif not bucket_volume > 0:
        raise ValueError(f"bucket_volume must be positive, got {bucket_volume}")
    return vpin_span(volume, side, bucket_volume, VpinState(), n_buckets)


def daily_bucket_volume(daily_volume: np.ndarray, n_buckets: int = N_BUCKETS) -> float:
    """V = the average of the given daily volumes / ``n_buckets``; NaN when there are none
    (or they are all 0), since buckets cannot be sized without history."""
    daily_volume = np.asarray(daily_volume, dtype=np.float64)
    average = float(np.mean(daily_volume)) if len(daily_volume) else NAN
    return average / n_buckets if average > 0 else NAN
