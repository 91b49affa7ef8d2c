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
