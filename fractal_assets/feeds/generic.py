"""Generic tick files: CSV or Parquet with columns ``ts,symbol,price,volume[,side]``.

``ts`` takes every form of :mod:`fractal_assets.feeds.timestamps`; ``side`` is
1/-1 or buy/sell (empty: inferred by the tick rule). Columns are converted
straight from Arrow to numpy, a cell at a time where a block holds a bad one,
so only the bad rows are rejected. A Parquet row group that cannot be read
(a corrupt page) is rejected row by row and the next one is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fractal_assets.feeds.columns import numbers, words
from fractal_assets.feeds.csv_blocks import csv_chunks, follow_csv, open_binary, read_header
from fractal_assets.feeds.errors import FeedFormatError
from fractal_assets.feeds.timestamps import TsParser
from fractal_assets.ingest.validation import UNPARSEABLE
from fractal_assets.market.arrays import valid, values
from fractal_assets.market.ticks import FeedChunk, RawTrades, Rejection, with_originals

REQUIRED = ("ts", "symbol", "price", "volume")
COLUMNS = (*REQUIRED, "side")
CSV_TYPES = {"ts": pa.string(), "symbol": pa.string(), "side": pa.string()}
"""Read as text whatever the cells look like: ts has many forms, symbols and sides are words."""
SIDE_WORDS = {"1": 1.0, "+1": 1.0, "-1": -1.0, "buy": 1.0, "b": 1.0, "sell": -1.0, "s": -1.0, "": np.nan}
UNREADABLE = ("ts is not a time", "price is not a number", "volume is not a number")
WORD_COLUMNS = ["symbol", "side"]
"""Text columns read from Parquet as dictionaries: a few distinct words, never materialized per row."""


def check_columns(names: Sequence[str], path: Path) -> None:
    """A FeedFormatError naming what is wrong with a generic file's columns."""
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise FeedFormatError(f"{path}: a generic tick file needs columns ts,symbol,price,volume[,side]; "
                              f"it lacks {missing}")
    doubled = sorted({n for n in names if n in COLUMNS and list(names).count(n) > 1})
    if doubled:
        raise FeedFormatError(f"{path}: columns {doubled} appear more than once")


def sides(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Sides as floats: +1/-1, NaN for missing, 0 for anything else (rejected later)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        return np.where(valid(array), values(array, array.type.to_pandas_dtype()), np.nan)
    if pa.types.is_boolean(array.type):
        return np.where(valid(array), 0.0, np.nan)
    codes, uniques = words(array)
    table = np.array([SIDE_WORDS.get(str(u).lower(), 0.0) for u in uniques], dtype=np.float64)
    return table[codes] if len(table) else np.full(len(codes), np.nan)


def trades_chunk(table: pa.Table, seq: np.ndarray, times: TsParser) -> FeedChunk:
    """Generic rows numbered ``seq`` as trades, and rejections of the rows with an unreadable cell."""
    parsed = times.parse(table.column("ts"))
    price, price_ok = numbers(table.column("price"))
    volume, volume_ok = numbers(table.column("volume"))
    side = sides(table.column("side")) if "side" in table.column_names else np.full(len(seq), np.nan)
    codes, uniques = words(table.column("symbol"))
    symbol = uniques[codes]
    readable = np.vstack((parsed.ok, price_ok, volume_ok))
    bad = np.flatnonzero(~readable.all(axis=0))
    first_problem = np.argmin(readable[:, bad], axis=0)
    rejections = [Rejection(int(seq[i]), UNPARSEABLE, UNREADABLE[p], symbol=str(symbol[i]))
                  for i, p in zip(bad, first_problem)]
    trades = RawTrades(seq, symbol, parsed.ms, price, volume, side, symbol_codes=(codes, uniques))
    if len(bad):
        trades = trades.take(readable.all(axis=0))
    return FeedChunk(last_seq=int(seq[-1]) if len(seq) else -1, trades=trades, rejections=rejections,
                     notes=times.take_notes())


def read_csv(path: Path, chunk_rows: int, follow: bool = False, ts_unit: str = "auto") -> Iterator[FeedChunk]:
    """A generic CSV file (optionally gzipped), streamed; ``follow`` tails it forever."""
    times = TsParser(ts_unit)

    def parse(table: pa.Table, seq: np.ndarray) -> FeedChunk:
        return trades_chunk(table, seq, times)

    if follow:
        return follow_csv(path, chunk_rows, parse, CSV_TYPES, lambda names: check_columns(names, path))
    with open_binary(path) as handle:
        check_columns(read_header(handle, path), path)
    return csv_chunks(path, chunk_rows, parse, CSV_TYPES)


def read_parquet(path: Path, chunk_rows: int, ts_unit: str = "auto") -> Iterator[FeedChunk]:
    """A generic Parquet file, row group by row group, in slices of ``chunk_rows``."""
    try:
        names = pq.read_schema(path).names
        check_columns(names, path)
        parquet = pq.ParquetFile(path, read_dictionary=[c for c in WORD_COLUMNS if c in names])
    except (OSError, pa.ArrowException) as err:
        raise FeedFormatError(f"{path} is not a readable Parquet file: {err}") from None
    return _row_groups(parquet, [c for c in COLUMNS if c in names], chunk_rows, TsParser(ts_unit))


def _row_groups(parquet: pq.ParquetFile, columns: list[str], chunk_rows: int, times: TsParser) -> Iterator[FeedChunk]:
    first = 0
    for group in range(parquet.num_row_groups):
        rows = parquet.metadata.row_group(group).num_rows
        try:
            table = parquet.read_row_group(group, columns=columns)
        except (OSError, pa.ArrowException) as err:
            detail = f"row group {group} cannot be read: {err}"[:300]
            yield FeedChunk(last_seq=first + rows - 1,
                            rejections=[Rejection(seq, UNPARSEABLE, detail) for seq in range(first, first + rows)])
            first += rows
            continue
        for start in range(0, table.num_rows, chunk_rows):
            part = table.slice(start, chunk_rows)
            chunk = trades_chunk(part, np.arange(first + start, first + start + part.num_rows, dtype=np.int64), times)
            chunk.originals = row_originals(part, first + start)
            chunk.rejections = with_originals(chunk.rejections, chunk.originals)
            yield chunk
        first += rows


def row_originals(table: pa.Table, first: int) -> Callable[[Sequence[int]], list[str]]:
    """Rows of given record numbers as JSON of the values the file holds (not as parsed)."""
    return lambda seqs: [json.dumps(table.slice(seq - first, 1).to_pylist()[0], default=str) for seq in seqs]
