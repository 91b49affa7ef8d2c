"""freqtrade trade files: a (gzipped) JSON array of ``[timestamp_ms, id, type, side, price, amount, cost]``.

freqtrade names the file after the pair (``XRP_ETH-trades.json.gz``), which
is where the symbol comes from. ``side`` is the taker (aggressor) side. The
file is one JSON document, so it is loaded whole and then cut into chunks;
``seq`` is a row's index in the array.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from itertools import compress
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fractal_assets.feeds.errors import FeedFormatError
from fractal_assets.feeds.generic import trades_chunk
from fractal_assets.feeds.timestamps import TsParser
from fractal_assets.ingest.validation import UNPARSEABLE
from fractal_assets.market.ticks import FeedChunk, Rejection, with_originals

COLUMNS = ("ts", "id", "type", "side", "price", "volume", "cost")
"""freqtrade's row layout, named as the generic parser expects."""
GENERIC = {"ts": 0, "side": 3, "price": 4, "volume": 5}
"""Generic column -> position in a freqtrade row."""
TS_UNIT = "ms"


def read(path: Path, chunk_rows: int, follow: bool) -> Iterator[FeedChunk]:
    """Chunks of ``chunk_rows`` trades; ``follow`` is refused, a JSON array is only readable once complete."""
    if follow:
        raise FeedFormatError("--follow is only supported for generic CSV files, not freqtrade JSON")
    return _chunks(_load(path), _symbol_of(path), chunk_rows)


def _symbol_of(path: Path) -> str:
    """The pair in freqtrade's file name: ``XRP_ETH-trades.json.gz`` -> ``XRP_ETH``."""
    return re.sub(r"-trades$", "", path.name.split(".")[0])


def _load(path: Path) -> list[Any]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            rows = json.load(handle)
    except ValueError as err:
        raise FeedFormatError(f"{path} is not a JSON document: {str(err)[:200]}") from None
    except (OSError, EOFError) as err:
        raise FeedFormatError(f"cannot read {path}: {err}") from None
    if not isinstance(rows, list):
        raise FeedFormatError(f"{path} holds a JSON {type(rows).__name__}, not freqtrade's array of trades")
    return rows


def _chunks(rows: list[Any], symbol: str, chunk_rows: int) -> Iterator[FeedChunk]:
    times = TsParser(TS_UNIT)
    for start in range(0, len(rows), chunk_rows):
        yield _chunk(rows[start : start + chunk_rows], symbol, start, times)


def _column(rows: list[list[Any]], position: int) -> pa.Array:
    """One field of every row: typed when the values agree, else as text (parsed cell by cell)."""
    values = [row[position] for row in rows]
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _chunk(rows: list[Any], symbol: str, first_seq: int, times: TsParser) -> FeedChunk:
    """Well-shaped rows through the generic parser (which rejects non-numeric cells), the others rejected here."""
    seq = np.arange(first_seq, first_seq + len(rows), dtype=np.int64)
    shaped = np.fromiter((isinstance(r, list) and len(r) == len(COLUMNS) for r in rows), dtype=bool, count=len(rows))
    good = list(compress(rows, shaped))
    table = pa.table({"symbol": pa.array([symbol] * len(good), pa.string()),
                      **{name: _column(good, position) for name, position in GENERIC.items()}})
    chunk = trades_chunk(table, seq[shaped], times)
    detail = f"not a list of {len(COLUMNS)} fields"
    misshapen = [Rejection(int(s), UNPARSEABLE, detail, symbol=symbol) for s in seq[~shaped]]
    chunk.rejections = sorted(chunk.rejections + misshapen, key=lambda r: r.seq)
    chunk.last_seq = int(seq[-1])
    chunk.originals = lambda seqs: [json.dumps(rows[s - first_seq]) for s in seqs]
    chunk.rejections = with_originals(chunk.rejections, chunk.originals)
    return chunk
