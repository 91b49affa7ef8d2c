"""Generic tick files: CSV or Parquet with columns ``ts,symbol,price,volume[,side]``.

``ts`` is epoch milliseconds or an ISO-8601 string; ``side`` is 1/-1 or
buy/sell (empty: inferred by the tick rule). Clean files take a fast typed
path through pyarrow; a file with a bad cell falls back to per-cell
coercion so that only the bad rows are rejected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fractal_assets.feeds.errors import FeedFormatError
from fractal_assets.ingest.validation import UNPARSEABLE
from fractal_assets.market.ticks import FeedChunk, RawTrades, Rejection

REQUIRED = ("ts", "symbol", "price", "volume")
SIDE_WORDS = {"1": 1.0, "+1": 1.0, "-1": -1.0, "buy": 1.0, "b": 1.0, "sell": -1.0, "s": -1.0, "": np.nan}


def _side_column(values: pd.Series) -> np.ndarray:
    """Sides as floats: +1/-1, NaN for missing, 0 for an unrecognised word (rejected later)."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    words = values.fillna("").astype(str).str.strip().str.lower()
    known = words.isin(list(SIDE_WORDS))
    return np.where(known, words.map(SIDE_WORDS), 0.0).astype(np.float64)


def _ts_column(values: pd.Series) -> np.ndarray:
    """Epoch ms as float (NaN where unparseable): numbers pass through, strings parse as ISO-8601."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    numeric = pd.to_numeric(values, errors="coerce")
    parsed = pd.to_datetime(values.where(numeric.isna()), utc=True, errors="coerce", format="ISO8601")
    iso_ms = np.floor((parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(milliseconds=1))
    return numeric.fillna(iso_ms).to_numpy(dtype=np.float64, na_value=np.nan)


def frame_to_chunk(frame: pd.DataFrame, seq: np.ndarray) -> FeedChunk:
    """Turn generic rows numbered ``seq`` into trades plus rejections for unparseable cells."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise FeedFormatError(f"generic tick file lacks columns {missing}; needs ts,symbol,price,volume[,side]")
    ts = _ts_column(frame["ts"])
    price = pd.to_numeric(frame["price"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    volume = pd.to_numeric(frame["volume"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    side = _side_column(frame["side"]) if "side" in frame.columns else np.full(len(frame), np.nan)
    symbol = frame["symbol"].fillna("").astype(str).to_numpy(dtype=object)
    bad = ~np.isfinite(ts) | unparsed(frame["price"], price) | unparsed(frame["volume"], volume)
    rejections = [
        Rejection(int(seq[i]), UNPARSEABLE, "ts, price or volume is not a number", row_text(frame, i), str(symbol[i]))
        for i in np.flatnonzero(bad)
    ]
    keep = ~bad
    trades = RawTrades(seq[keep], symbol[keep], ts[keep].astype(np.int64), price[keep], volume[keep], side[keep])
    return FeedChunk(last_seq=int(seq[-1]) if len(seq) else -1, trades=trades, rejections=rejections)


def unparsed(original: pd.Series, parsed: np.ndarray) -> np.ndarray:
    """Cells that were present but did not parse as numbers ('nan' itself parses: a bad value, not a bad row)."""
    if pd.api.types.is_numeric_dtype(original.dtype):
        return np.zeros(len(parsed), dtype=bool)
    text = original.fillna("").astype(str).str.strip().str.lower()
    return np.isnan(parsed) & ~text.isin(["nan", "inf", "-inf", "+inf"]).to_numpy()


def row_text(frame: pd.DataFrame, i: int) -> str:
    return ",".join("" if pd.isna(v) else str(v) for v in frame.iloc[i].tolist())


def read_parquet(path: Path, chunk_rows: int) -> Iterator[FeedChunk]:
    """A generic Parquet file, in batches of ``chunk_rows``."""
    seq = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        yield frame_to_chunk(batch.to_pandas(), np.arange(seq, seq + batch.num_rows, dtype=np.int64))
        seq += batch.num_rows


def read_csv(path: Path, chunk_rows: int, follow: bool = False) -> Iterator[FeedChunk]:
    """A generic CSV file (optionally compressed), streamed; ``follow`` tails it forever."""
    if follow:
        yield from _follow_csv(path, chunk_rows)
        return
    yield from csv_chunks(path, chunk_rows, frame_to_chunk, {"symbol": pa.string(), "side": pa.string()})


FrameParser = Callable[[pd.DataFrame, np.ndarray], FeedChunk]
"""Turns a batch of CSV rows and their record numbers into a chunk."""


def csv_chunks(
    path: Path, chunk_rows: int, parse: FrameParser, column_types: dict[str, pa.DataType]
) -> Iterator[FeedChunk]:
    """A CSV file (optionally compressed) streamed through pyarrow, each batch handed to ``parse``.

    Records are numbered by their data row in the file, malformed ones
    included, so the numbering does not depend on how the file is chunked;
    rows with the wrong number of fields become rejections. Quoting is off:
    tick files quote nothing, and a stray quote must not swallow the lines
    after it. pyarrow infers
    column types from the first block; when a later block holds a value of
    another type, reading starts over with every column as text (``parse``
    coerces cells one by one) and resumes after the last record handed out.
    """
    handed_out = -1
    try:
        for chunk in _csv_pass(path, chunk_rows, parse, column_types, after=handed_out):
            handed_out = chunk.last_seq
            yield chunk
    except pa.ArrowInvalid:
        as_text = {name: pa.string() for name in _header(path)}
        yield from _csv_pass(path, chunk_rows, parse, as_text, after=handed_out)


def _header(path: Path) -> list[str]:
    with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)) as reader:
        return reader.schema.names


def _csv_pass(
    path: Path, chunk_rows: int, parse: FrameParser, column_types: dict[str, pa.DataType], after: int
) -> Iterator[FeedChunk]:
    """One streaming read, handing out only records numbered above ``after``."""
    malformed: dict[int, str] = {}

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed[row.number - 2] = row.text or ""
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=max(1 << 16, chunk_rows * 64), use_threads=False),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, quote_char=False),
        convert_options=pacsv.ConvertOptions(column_types=column_types, null_values=[""], strings_can_be_null=True),
    )
    next_row = 0
    with reader:
        for batch in reader:
            candidates = np.arange(next_row, next_row + batch.num_rows + len(malformed), dtype=np.int64)
            seq = candidates[~np.isin(candidates, list(malformed))][: batch.num_rows]
            next_row = int(seq[-1]) + 1 if len(seq) else next_row
            rejected = [r for r in _malformed(malformed, below=next_row) if r.seq > after]
            if next_row - 1 <= after:
                continue
            fresh = seq > after
            chunk = parse(batch.to_pandas()[fresh].reset_index(drop=True), seq[fresh])
            chunk.rejections += rejected
            chunk.last_seq = next_row - 1
            yield chunk
    if malformed:
        yield FeedChunk(last_seq=max(malformed), rejections=_malformed(malformed, below=max(malformed) + 1))


def _malformed(rows: dict[int, str], below: int) -> list[Rejection]:
    """Pop the rows with the wrong number of fields numbered below ``below``."""
    numbers = sorted(n for n in rows if n < below)
    return [Rejection(n, UNPARSEABLE, "wrong number of fields", rows.pop(n)) for n in numbers]


def _follow_csv(path: Path, chunk_rows: int, poll_s: float = 0.05) -> Iterator[FeedChunk]:
    """Tail a growing CSV: complete lines are parsed as they are appended; an empty chunk
    tells ingest that the file has nothing new, so it flushes instead of waiting."""
    with open(path, newline="") as handle:
        header = handle.readline().strip().split(",")
        seq, partial = 0, ""
        while True:
            lines = handle.readlines(chunk_rows * 64)
            if not lines:
                yield FeedChunk(last_seq=seq - 1)
                time.sleep(poll_s)
                continue
            lines[0] = partial + lines[0]
            partial = "" if lines[-1].endswith("\n") else lines.pop()
            if not lines:
                continue
            rows = [line.rstrip("\r\n").split(",") for line in lines]
            numbers = np.arange(seq, seq + len(rows), dtype=np.int64)
            fits = np.array([len(r) == len(header) for r in rows])
            chunk = frame_to_chunk(pd.DataFrame([r for r in rows if len(r) == len(header)], columns=header), numbers[fits])
            chunk.rejections += _malformed({int(n): ",".join(rows[i]) for i, n in enumerate(numbers) if not fits[i]}, seq + len(rows))
            chunk.rejections.sort(key=lambda r: r.seq)
            seq += len(rows)
            chunk.last_seq = seq - 1
            yield chunk
