"""The same real trades written in every timestamp form ingest and import to identical ticks and bars.

The trades are the shared Tardis BTCUSDT file (microsecond times). The
expected ticks are computed here from that file with pandas alone; each form
is written from it, run through ``fractal ingest`` or ``fractal import`` and
read back with ``get_backtest_data``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fractal_assets.access.reads import get_backtest_data
from fractal_assets.config import Config
from fractal_assets.market.bars import compute_bars
from fractal_assets_tests.support import shared_file

pytestmark = pytest.mark.realdata

TARDIS = "tardis_binance_futures_btcusdt_20200222/trades.csv.gz"
SYMBOL = "BTCUSDT"
DAY = "2020-02-22"


@lru_cache(maxsize=1)
def trades() -> pd.DataFrame:
    """The real trades: epoch microseconds, price, volume, side."""
    raw = pd.read_csv(shared_file(TARDIS))
    return pd.DataFrame({
        "us": raw["timestamp"].astype(np.int64),
        "symbol": raw["symbol"],
        "price": raw["price"].astype(np.float64),
        "volume": raw["amount"].astype(np.float64),
        "side": raw["side"].map({"buy": 1, "sell": -1}).astype(np.int8),
    })


def expected(whole_seconds: bool) -> pd.DataFrame:
    """The ticks every form must store: times floored to the millisecond (or to the second, for
    forms that only hold whole seconds)."""
    frame = trades()
    ms = frame["us"] // 1000
    return frame.assign(ts=ms // 1000 * 1000 if whole_seconds else ms)[["ts", "price", "volume", "side"]]


def _clock(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame["us"], unit="us", utc=True)


def _csv(ts: Callable[[pd.DataFrame], pd.Series]) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        frame = trades()
        out = pd.DataFrame({"ts": ts(frame), "symbol": frame["symbol"], "price": frame["price"],
                            "volume": frame["volume"], "side": frame["side"]})
        out.to_csv(path, index=False, compression="gzip" if path.suffix == ".gz" else None)
        return path
    return write


def _parquet(ts: Callable[[pd.DataFrame], pa.Array]) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        frame = trades()
        pq.write_table(pa.table({"ts": ts(frame), "symbol": frame["symbol"], "price": frame["price"],
                                 "volume": frame["volume"], "side": frame["side"]}), path)
        return path
    return write


def _with_colon(offsets: pd.Series) -> pd.Series:
    """``+0530`` -> ``+05:30``."""
    return offsets.str.replace(r"([+-]\d\d)(\d\d)$", r"\1:\2", regex=True)


FORMS: dict[str, tuple[str, Callable[[Path], Path], bool]] = {
    "epoch_ms": (".csv", _csv(lambda f: f["us"] // 1000), False),
    "epoch_ms_gzip": (".csv.gz", _csv(lambda f: f["us"] // 1000), False),
    "epoch_us": (".csv", _csv(lambda f: f["us"]), False),
    "epoch_ns": (".csv", _csv(lambda f: f["us"] * 1000), False),
    "epoch_s_fraction": (".csv", _csv(lambda f: (f["us"] // 1000).map(lambda ms: f"{ms // 1000}.{ms % 1000:03d}")), False),
    "iso_z_micros": (".csv", _csv(lambda f: _clock(f).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")), False),
    "iso_offset": (".csv", _csv(lambda f: _with_colon(_clock(f).dt.tz_convert("Asia/Kolkata")
                                                      .dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z"))), False),
    "iso_offset_no_colon": (".csv", _csv(lambda f: _clock(f).dt.tz_convert("America/New_York")
                                         .dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z")), False),
    "iso_naive_space": (".csv", _csv(lambda f: _clock(f).dt.strftime("%Y-%m-%d %H:%M:%S.%f")), False),
    "epoch_s_whole": (".csv", _csv(lambda f: f["us"] // 1_000_000), True),
    "iso_z_whole": (".csv", _csv(lambda f: _clock(f).dt.strftime("%Y-%m-%dT%H:%M:%SZ")), True),
    "parquet_ms": (".parquet", _parquet(lambda f: pa.array(f["us"] // 1000)), False),
    "parquet_float_s": (".parquet", _parquet(lambda f: pa.array(f["us"] / 1e6)), False),
    "parquet_ts_ns_utc": (".parquet", _parquet(lambda f: pa.array(f["us"] * 1000, pa.timestamp("ns", "UTC"))), False),
    "parquet_ts_us_naive": (".parquet", _parquet(lambda f: pa.array(f["us"], pa.timestamp("us"))), False),
    "parquet_ts_ms_new_york": (".parquet", _parquet(
        lambda f: pa.array(f["us"] // 1000, pa.timestamp("ms", "America/New_York"))), False),
    "parquet_ts_s": (".parquet", _parquet(lambda f: pa.array(f["us"] // 1_000_000, pa.timestamp("s", "UTC"))), True),
    "parquet_iso_text": (".parquet", _parquet(lambda f: pa.array(_clock(f).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))), False),
}


@pytest.mark.parametrize("command", ["ingest", "import"])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_timestamp_form_stores_identical_ticks_and_bars(
    config: Config, fractal, tmp_path: Path, form: str, command: str
) -> None:
    suffix, write, whole_seconds = FORMS[form]
    path = write(tmp_path / f"{form}{suffix}")
    run = fractal(command, "--source", str(path))
    assert run.code == 0, run.err
    got = get_backtest_data(SYMBOL, DAY, DAY, config=config, use_cache=False)
    want = expected(whole_seconds)
    assert got["ts"].tolist() == want["ts"].tolist()
    assert np.array_equal(got["price"], want["price"]) and np.array_equal(got["volume"], want["volume"])
    assert got["side"].tolist() == want["side"].tolist()
    for timeframe in ("1m", "1h"):
        pd.testing.assert_frame_equal(
            compute_bars(*(got[c].to_numpy() for c in ("ts", "price", "volume", "side")), timeframe),
            compute_bars(*(want[c].to_numpy() for c in ("ts", "price", "volume", "side")), timeframe),
        )
    numeric = form.startswith("epoch") or form in ("parquet_ms", "parquet_float_s")
    assert ("ts: numbers read as epoch" in run.out) == numeric
    assert ("taken as UTC" in run.out) == (form in ("iso_naive_space", "parquet_ts_us_naive"))


def test_a_given_unit_overrides_the_inferred_one(fractal, store, tmp_path: Path) -> None:
    path = tmp_path / "seconds.csv"
    path.write_text("ts,symbol,price,volume,side\n1582329602,UNIT,10,1,1\n1582329603,UNIT,11,1,1\n")
    assert "epoch seconds (inferred" in fractal("ingest", "--source", str(path)).out
    assert store.read_ticks("UNIT").ticks["ts"].tolist() == [1582329602000, 1582329603000]
    other = tmp_path / "millis-as-seconds.csv"
    other.write_text("ts,symbol,price,volume,side\n1582329602111,SEC,10,1,1\n")
    run = fractal("ingest", "--source", str(other), "--ts-unit", "s")
    assert run.code == 1 and "ts_out_of_range: 1" in run.out and "--ts-unit" in run.out
    assert "inferred" not in run.out
    assert run.err.splitlines()[-1] == f"fractal: nothing stored from {other}: every new record was rejected (reasons above)"
    run = fractal("ingest", "--source", str(path), "--format", "tardis", "--ts-unit", "ms")
    assert run.code == 2 and run.err.startswith("fractal: error: --ts-unit applies to generic files")
