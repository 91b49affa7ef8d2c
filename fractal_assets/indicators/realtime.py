"""Real-time indicator values computed from the ring buffers for the ``ind:`` keys."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fractal_assets.indicators.fractals import williams_fractals
from fractal_assets.indicators.windows import METRICS, window_metrics

WINDOW_SECONDS = 300
TIMEFRAME = "5m"
"""Real-time values cover the trailing five minutes of event time."""
INDICATORS = (*METRICS, "vpin_window")
"""Every ``ind:`` indicator: the window metrics and the per-window VPIN variant."""


@dataclass(frozen=True)
class VpinReading:
    """The standard VPIN after a window's last tick, with what it rests on (the ``vpin`` meta)."""

    value: float
    meta: dict[str, Any] = field(default_factory=dict)


def _values(
    ticks: np.ndarray, quotes: np.ndarray, start: int, end: int, timeframe: str, vpin: VpinReading, **meta: Any,
) -> dict[tuple[str, str], dict[str, Any]]:
    details = asdict(window_metrics(ticks, quotes, start, end, vpin.value))
    meta = {**meta, "first_ts": int(ticks["ts"][0]), **{k: v for k, v in details.items() if k not in INDICATORS}}
    ts = int(ticks["ts"][-1])
    values = {(name, timeframe): {"value": details[name], "ts": ts, "meta": meta} for name in INDICATORS}
    values[("vpin", timeframe)]["meta"] = {**meta, **vpin.meta}
    return values


def realtime_values(ticks: np.ndarray, quotes: np.ndarray, vpin: VpinReading) -> dict[tuple[str, str], dict[str, Any]]:
    """(indicator, timeframe) -> {value, ts, meta} for one symbol's trailing window.

    ``quotes`` are the window's, optionally preceded by the quote standing
    at its start (for the time-weighted spread).
    """
    end = int(ticks["ts"][-1])
    return _values(ticks, quotes, end - WINDOW_SECONDS * 1000, end, TIMEFRAME, vpin, window_s=WINDOW_SECONDS)


def batch_values(block: np.ndarray, quotes: np.ndarray, vpin: VpinReading) -> dict[tuple[str, str], dict[str, Any]]:
    """The same metrics over one micro-batch of ticks, under timeframe ``{n}t`` (e.g. ``1000t``)."""
    start, end = int(block["ts"][0]), int(block["ts"][-1])
    return _values(block, quotes, start, end, f"{len(block)}t", vpin, ticks_in_batch=len(block))


FRACTAL_N = 2
"""Bars on each side of a Williams fractal, as in the ``williams_fractals`` asset."""


def fractal_value(bars: pd.DataFrame, end_ts: int) -> dict[tuple[str, str], dict[str, Any]]:
    """``williams_fractal`` on 5m for the bar the newest closed 5m bar just confirmed.

    value: +1 when that bar (``FRACTAL_N`` bars before the newest) is an up fractal,
    -1 a down fractal, 0 neither (both: +1, with both in meta); ts: the end of the
    newest closed bar; meta: the confirmed bar's timestamp and the newest up and
    down fractals (bar timestamp and price) among ``bars``.
    """
    up, down = williams_fractals(bars["high"].to_numpy(), bars["low"].to_numpy(), n=FRACTAL_N)
    center = len(bars) - 1 - FRACTAL_N
    is_up, is_down = (bool(up[center]), bool(down[center])) if center >= 0 else (False, False)
    ts = bars["timestamp"].to_numpy()

    def newest(mask: np.ndarray, column: str) -> dict[str, Any] | None:
        hits = np.flatnonzero(mask)
        return {"ts": int(ts[hits[-1]]), "value": float(bars[column].iloc[hits[-1]])} if len(hits) else None

    meta = {"n": FRACTAL_N, "bar_ts": int(ts[center]) if center >= 0 else None, "up": newest(up, "high"),
            "down": newest(down, "low"), "both": is_up and is_down}
    return {("williams_fractal", TIMEFRAME): {"value": 1 if is_up else -1 if is_down else 0, "ts": end_ts, "meta": meta}}
