"""Small PNG plots for materialization metadata (matplotlib, headless Agg backend)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

MAX_CANDLES = 120


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def candlestick_png(bars: pd.DataFrame, title: str) -> bytes:
    """The last ``MAX_CANDLES`` bars as candles: green up, red down, wicks high to low."""
    tail = bars.tail(MAX_CANDLES)
    x = np.arange(len(tail))
    up = (tail["close"] >= tail["open"]).to_numpy()
    colors = np.where(up, "#26a69a", "#ef5350")
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.vlines(x, tail["low"], tail["high"], colors=colors, linewidth=0.8)
    body_low = np.minimum(tail["open"], tail["close"])
    body = np.maximum(np.abs(tail["close"] - tail["open"]), (tail["high"] - tail["low"]).max() * 1e-3)
    ax.bar(x, body, bottom=body_low, color=colors, width=0.7)
    if len(tail):
        ticks = x[:: max(1, len(x) // 6)]
        labels = pd.to_datetime(tail["timestamp"].to_numpy()[ticks], unit="ms").strftime("%m-%d %H:%M")
        ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


def fractal_png(bars: pd.DataFrame, up: np.ndarray, down: np.ndarray, title: str) -> bytes:
    """5m closes with up fractals (triangles above highs) and down fractals (below lows)."""
    tail = slice(max(0, len(bars) - 2 * MAX_CANDLES), len(bars))
    frame, up, down = bars.iloc[tail], up[tail], down[tail]
    x = np.arange(len(frame))
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.vlines(x, frame["low"], frame["high"], colors="#90a4ae", linewidth=0.8)
    ax.plot(x, frame["close"], color="#37474f", linewidth=0.8)
    ax.scatter(x[up], frame["high"].to_numpy()[up], marker="^", color="#26a69a", s=18, label="up fractal")
    ax.scatter(x[down], frame["low"].to_numpy()[down], marker="v", color="#ef5350", s=18, label="down fractal")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return _png(fig)


def series_png(ts_ms: np.ndarray, values: dict[str, np.ndarray], title: str, ylabel: str) -> bytes:
    """One or more lines over time (VPIN over the day, rolling Hurst)."""
    fig, ax = plt.subplots(figsize=(8, 3))
    times = pd.to_datetime(ts_ms, unit="ms")
    for label, series in values.items():
        ax.plot(times, series, linewidth=1.0, label=label)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    return _png(fig)
