"""Small PNG plots for materialization metadata (matplotlib, headless Agg backend).

Every time axis is labelled in UTC (month-day hour:minute), the time the
partitions and the tables use.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

MAX_CANDLES = 120
TIME_TICKS = 6
UP_COLOR, DOWN_COLOR = "#26a69a", "#ef5350"
"""Rising and falling candles (and positive and negative order flow)."""
UP_FRACTAL_COLOR, DOWN_FRACTAL_COLOR = "#1e63d6", "#f28e00"
"""Fractal markers, apart from the candle colours so that they stand out."""
LINE_COLORS = ("#37474f", "#8e24aa", "#00897b")


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def utc_labels(ts_ms: np.ndarray) -> list[str]:
    """Epoch milliseconds as 'MM-DD HH:MM' UTC axis labels."""
    return list(pd.to_datetime(np.asarray(ts_ms, dtype=np.int64), unit="ms", utc=True).strftime("%m-%d %H:%M"))


def _time_axis(ax: plt.Axes, x: np.ndarray, ts_ms: np.ndarray) -> None:
    """About ``TIME_TICKS`` ticks along positions ``x`` labelled with their UTC times."""
    if len(x):
        at = np.unique(np.linspace(0, len(x) - 1, min(TIME_TICKS, len(x))).round().astype(int))
        ax.set_xticks(x[at], utc_labels(ts_ms[at]), fontsize=7)
    ax.set_xlabel("UTC", fontsize=7)


def _candles(ax: plt.Axes, bars: pd.DataFrame) -> np.ndarray:
    """Candles at positions 0..n-1: green up, red down, wicks from low to high."""
    x = np.arange(len(bars))
    colors = np.where((bars["close"] >= bars["open"]).to_numpy(), UP_COLOR, DOWN_COLOR)
    ax.vlines(x, bars["low"], bars["high"], colors=colors, linewidth=0.8)
    body_low = np.minimum(bars["open"], bars["close"])
    body = np.maximum(np.abs(bars["close"] - bars["open"]), (bars["high"] - bars["low"]).max() * 1e-3)
    ax.bar(x, body, bottom=body_low, color=colors, width=0.7)
    _time_axis(ax, x, bars["timestamp"].to_numpy())
    ax.tick_params(axis="y", labelsize=7)
    return x


def candlestick_png(bars: pd.DataFrame, title: str) -> bytes:
    """The last ``MAX_CANDLES`` bars as candles."""
    fig, ax = plt.subplots(figsize=(8, 3))
    _candles(ax, bars.tail(MAX_CANDLES))
    ax.set_title(title, fontsize=9)
    return _png(fig)


def fractal_png(bars: pd.DataFrame, up: np.ndarray, down: np.ndarray, title: str) -> bytes:
    """The last ``MAX_CANDLES`` bars as candles, up fractals marked above their highs and
    down fractals below their lows (``up``/``down`` as from ``williams_fractals``)."""
    tail = slice(max(0, len(bars) - MAX_CANDLES), len(bars))
    frame, up, down = bars.iloc[tail], np.asarray(up)[tail], np.asarray(down)[tail]
    fig, ax = plt.subplots(figsize=(8, 3))
    x = _candles(ax, frame)
    pad = float((frame["high"] - frame["low"]).max()) * 0.15 if len(frame) else 0.0
    ax.scatter(x[up], frame["high"].to_numpy()[up] + pad, marker="^", color=UP_FRACTAL_COLOR, s=22, label="up fractal")
    ax.scatter(x[down], frame["low"].to_numpy()[down] - pad, marker="v", color=DOWN_FRACTAL_COLOR, s=22,
               label="down fractal")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def microstructure_png(windows: pd.DataFrame, title: str) -> bytes:
    """A day's 5-minute windows: VPIN (and the per-window variant, when given as
    ``vpin_window``) above, the order-flow ratio as bars below."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4), sharex=True, height_ratios=(3, 2))
    x = np.arange(len(windows))
    top.plot(x, windows["vpin"], color=LINE_COLORS[0], linewidth=1.2, label="VPIN (day-sized buckets)")
    if "vpin_window" in windows:
        top.plot(x, windows["vpin_window"], color=LINE_COLORS[1], linewidth=0.8, linestyle="--",
                 label="VPIN of the window alone")
    top.set_ylim(0, 1)
    top.set_ylabel("VPIN", fontsize=8)
    top.legend(fontsize=7, loc="upper left")
    top.set_title(title, fontsize=9)
    flow = windows["order_flow_ratio"].to_numpy(dtype=np.float64)
    bottom.bar(x, flow, color=np.where(flow >= 0, UP_COLOR, DOWN_COLOR), width=0.8)
    bottom.axhline(0, color="#90a4ae", linewidth=0.6)
    bottom.set_ylim(-1, 1)
    bottom.set_ylabel("order flow", fontsize=8)
    _time_axis(bottom, x, windows["timestamp"].to_numpy())
    for ax in (top, bottom):
        ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


def series_png(ts_ms: np.ndarray, values: dict[str, np.ndarray], title: str, ylabel: str,
               reference: float | None = None) -> bytes:
    """One or more lines over time (e.g. rolling Hurst, with ``reference`` = 0.5 drawn as
    the random walk's level)."""
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    fig, ax = plt.subplots(figsize=(8, 3))
    for k, (label, series) in enumerate(values.items()):
        ax.plot(ts_ms, series, color=LINE_COLORS[k % len(LINE_COLORS)], linewidth=1.0, label=label)
    if reference is not None:
        ax.axhline(reference, color="#90a4ae", linewidth=0.8, linestyle=":", label=f"{reference:g}")
    _time_axis(ax, ts_ms, ts_ms)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)
