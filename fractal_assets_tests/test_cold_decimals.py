"""Exact decimals in the cold tier: every float64 written comes back as the same float64,
through pyarrow and through DuckDB, whatever mix of scales and floats the files hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fractal_assets.access.reads import get_backtest_data
from fractal_assets.cold.compaction import compact_partition
from fractal_assets.cold.decimals import to_decimal, to_floats
from fractal_assets.cold.parquet import TICK_SCHEMA, read_ticks, tick_partition, write_ticks
from fractal_assets.config import Config
from fractal_assets.market.calendar import DAY_MS, day_start_ms
from fractal_assets.market.decimals import MAX_SCALE, MAX_UNSCALED, exact_scale

SYMBOL = "DEC"
DAYS = ("2024-05-01", "2024-05-02", "2024-05-03")


def decimals_at(scale: int, n: int, seed: int, magnitude: int = 10**9) -> np.ndarray:
    """Floats parsed from decimal numbers with ``scale`` digits after the point."""
    unscaled = np.random.default_rng(seed).integers(1, magnitude, n)
    return np.array([float(f"{u / 10**scale:.{scale}f}") for u in unscaled.tolist()])


def ticks(day: str, price: np.ndarray, volume: np.ndarray) -> pa.Table:
    n = len(price)
    start = day_start_ms(day)
    return pa.table({"ts": start + np.arange(n, dtype=np.int64) * (DAY_MS // n), "price": price, "volume": volume,
                     "side": np.where(np.arange(n) % 3, 1, -1).astype(np.int8), "seq": np.arange(n, dtype=np.int64)},
                    schema=TICK_SCHEMA)


def stored_type(path: Path, column: str) -> tuple[str, str]:
    """Physical and logical type of a column as the Parquet file holds it."""
    field = pq.ParquetFile(path).schema.column(TICK_SCHEMA.names.index(column))
    return field.physical_type, str(field.logical_type)


@pytest.mark.parametrize("scale", [0, 1, 2, 3, 5, 8, MAX_SCALE])
def test_the_smallest_exact_scale_is_found_and_round_trips_bit_for_bit(scale: int) -> None:
    values = decimals_at(scale, 5_000, seed=scale, magnitude=min(10**15, MAX_UNSCALED))
    if scale:
        values[0] = float(f"1.{'0' * (scale - 1)}7")  # one value that needs every digit
    assert exact_scale(values) == scale
    back = to_floats(pa.chunked_array([to_decimal(values, scale)])).to_numpy()
    assert back.tobytes() == values.tobytes()


@pytest.mark.parametrize("values", [
    [1 / 3, 2.0], [0.1 + 0.2], [1.5, float("nan")], [float("inf")], [2.0**60], [1e-13],
], ids=["third", "sum", "nan", "inf", "too-large", "too-small"])
def test_values_that_no_decimal_holds_exactly_have_no_scale(values: list[float]) -> None:
    assert exact_scale(np.array(values)) is None


def test_a_sliced_decimal_chunk_decodes_its_own_rows() -> None:
    values = decimals_at(2, 100, seed=1)
    chunk = to_decimal(values, 2).slice(37, 20)
    assert to_floats(pa.chunked_array([chunk])).to_numpy().tobytes() == values[37:57].tobytes()


def test_exact_ticks_are_stored_as_integer_decimals_and_others_as_doubles(config: Config) -> None:
    exact = write_ticks(config.cold, SYMBOL, DAYS[0], ticks(DAYS[0], decimals_at(2, 1000, 1), decimals_at(3, 1000, 2)))
    assert stored_type(exact, "price") == ("INT64", "Decimal(precision=18, scale=2)")
    assert stored_type(exact, "volume") == ("INT64", "Decimal(precision=18, scale=3)")
    inexact = np.random.default_rng(3).random(1000) * 100
    mixed = write_ticks(config.cold, SYMBOL, DAYS[1], ticks(DAYS[1], inexact, decimals_at(0, 1000, 4)))
    assert stored_type(mixed, "price")[0] == "DOUBLE"
    assert stored_type(mixed, "volume") == ("INT64", "Decimal(precision=18, scale=0)")
    assert read_ticks(config.cold, SYMBOL, DAYS[1]).column("price").to_numpy().tobytes() == inexact.tobytes()


def test_duckdb_and_pyarrow_read_every_mix_of_scales_as_the_floats_written(config: Config) -> None:
    written = [
        ticks(DAYS[0], decimals_at(2, 3000, 11), decimals_at(8, 3000, 12)),
        ticks(DAYS[1], decimals_at(8, 3000, 13, magnitude=10**15), decimals_at(0, 3000, 14)),
        ticks(DAYS[2], np.random.default_rng(15).random(3000) * 1e4, decimals_at(12, 3000, 16, magnitude=10**13)),
    ]
    for day, table in zip(DAYS, written):
        write_ticks(config.cold, SYMBOL, day, table)
    want = pa.concat_tables(written).to_pandas()
    for day, table in zip(DAYS, written):
        assert read_ticks(config.cold, SYMBOL, day).equals(table)
    got = get_backtest_data(SYMBOL, DAYS[0], DAYS[2], config=config, use_cache=False)
    for column in ("price", "volume"):
        assert got[column].to_numpy().tobytes() == want[column].to_numpy().tobytes(), column


def test_compaction_merges_parts_of_different_scales_exactly(config: Config) -> None:
    directory = tick_partition(config.cold, SYMBOL, DAYS[0])
    first = ticks(DAYS[0], decimals_at(1, 500, 21), decimals_at(4, 500, 22))
    later = ticks(DAYS[0], decimals_at(6, 500, 23), np.random.default_rng(24).random(500))
    later = later.set_column(4, "seq", pa.array(np.arange(500, 1000, dtype=np.int64)))
    write_ticks(config.cold, SYMBOL, DAYS[0], first)
    write_ticks(config.cold, SYMBOL, DAYS[0], later)
    (Path(directory) / "part-0.parquet").rename(Path(directory) / "part-1.parquet")
    write_ticks(config.cold, SYMBOL, DAYS[0], first)
    before = read_ticks(config.cold, SYMBOL, DAYS[0])
    assert compact_partition(config.cold, directory) == 2
    assert stored_type(Path(directory) / "part-0.parquet", "price") == ("INT64", "Decimal(precision=18, scale=6)")
    assert stored_type(Path(directory) / "part-0.parquet", "volume")[0] == "DOUBLE"
    assert read_ticks(config.cold, SYMBOL, DAYS[0]).equals(before)
    assert before.num_rows == 1000
