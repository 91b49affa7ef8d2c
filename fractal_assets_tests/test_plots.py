"""The pictures and previews of the materializations: PNGs that decode to real images with
what they are meant to show, UTC times instead of epoch milliseconds, described checks."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib import image
from matplotlib.colors import to_rgb

from fractal_assets.defs.metadata import markdown_table, time_range
from fractal_assets.defs.plots import (
    DOWN_FRACTAL_COLOR,
    UP_FRACTAL_COLOR,
    candlestick_png,
    fractal_png,
    microstructure_png,
    series_png,
    utc_labels,
)
from fractal_assets.indicators.fractals import williams_fractals
from fractal_assets.market.bars import compute_bars
from fractal_assets.market.calendar import day_start_ms
from fractal_assets.pipeline import checks

DAY = day_start_ms("2024-08-08")


def decoded(png: bytes) -> np.ndarray:
    """The PNG's pixels (RGB in [0, 1]); fails unless it is a real, reasonably sized picture."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = image.imread(io.BytesIO(png), format="png")[..., :3]
    assert pixels.shape[0] > 150 and pixels.shape[1] > 400
    return pixels


def pixels_of(pixels: np.ndarray, color: str) -> int:
    """How many pixels are (within antialiasing) of the colour."""
    return int((np.abs(pixels - np.array(to_rgb(color))).max(axis=2) < 0.03).sum())


def bars_5m(n: int = 90) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    ts = DAY + np.arange(n * 20) * 15_000
    price = 100 + np.cumsum(rng.normal(0, 0.05, len(ts)))
    return compute_bars(ts, price, np.ones(len(ts)), np.ones(len(ts), dtype=np.int8), "5m")


def test_utc_labels_read_as_the_utc_clock() -> None:
    assert utc_labels(np.array([DAY, DAY + 12 * 3_600_000 + 5 * 60_000])) == ["08-08 00:00", "08-08 12:05"]
    assert utc_labels(np.array([DAY - 60_000])) == ["08-07 23:59"]


def test_fractals_are_marked_on_the_candles() -> None:
    bars = bars_5m()
    up, down = williams_fractals(bars["high"].to_numpy(), bars["low"].to_numpy())
    assert up.any() and down.any()
    marked = decoded(fractal_png(bars, up, down, "AAA 5m fractals"))
    plain = decoded(fractal_png(bars, np.zeros(len(bars), bool), np.zeros(len(bars), bool), "AAA 5m fractals"))
    for color in (UP_FRACTAL_COLOR, DOWN_FRACTAL_COLOR):
        assert pixels_of(marked, color) > 20 * 3, f"{color}: markers drawn"  # at least a few triangles
        assert pixels_of(plain, color) < pixels_of(marked, color) / 4, f"{color}: only the legend without fractals"
    decoded(candlestick_png(bars, "AAA 5m"))


def test_microstructure_and_hurst_series_render() -> None:
    n = 288
    windows = pd.DataFrame({
        "timestamp": DAY + np.arange(n) * 300_000,
        "vpin": np.r_[np.full(40, np.nan), np.linspace(0.2, 0.4, n - 40)],
        "vpin_window": np.linspace(0.9, 0.6, n),
        "order_flow_ratio": np.sin(np.arange(n) / 10),
    })
    pixels = decoded(microstructure_png(windows, "AAA VPIN and order flow 2024-08-08"))
    assert pixels_of(pixels, "#26a69a") > 100 and pixels_of(pixels, "#ef5350") > 100  # buying and selling bars
    decoded(microstructure_png(windows.drop(columns="vpin_window"), "AAA"))
    ends = DAY + np.arange(240, 1_441, 30) * 60_000
    decoded(series_png(ends, {"H (rs)": np.full(len(ends), 0.55), "H (dfa)": np.full(len(ends), 0.5)},
                       "AAA rolling Hurst", "H", reference=0.5))


def test_previews_show_utc_times_not_epoch_milliseconds() -> None:
    frame = pd.DataFrame({"timestamp": [DAY, DAY + 300_000], "window_ms": [300_000, 300_000], "vpin": [0.25, np.nan]})
    text = markdown_table(frame).value
    assert "| 2024-08-08T00:00:00.000Z | 300000 | 0.25 |" in text
    assert "| 2024-08-08T00:05:00.000Z | 300000 |  |" in text
    assert str(DAY) not in text
    assert time_range(frame["timestamp"].to_numpy())["last"].value == "2024-08-08T00:05:00.000Z"


def test_every_asset_check_has_a_description() -> None:
    from fractal_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    described = {key: graph.get_check_spec(key).description for key in graph.asset_check_keys}
    assert len(described) > 20 and {k.name for k in described} >= set(checks.DESCRIPTIONS)
    assert all(text and len(text) > 20 for text in described.values()), described
