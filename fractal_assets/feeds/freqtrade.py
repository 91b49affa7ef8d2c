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
import pandas as pd

from fractal_assets.feeds.errors import FeedFormatError
from fractal_assets.feeds.generic import frame_to_chunk
from fractal_assets.ingest.validation import UNPARSEABLE
from fractal_assets.market.ticks import FeedChunk, Rejection

COLUMNS = ("ts", "id", "type", "side", "price", "volume", "cost")
"""freqtrade's row layout, named as the generic parser expects."""


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
    with opener(path, "rt", encoding="utf-8") as handle:
        try:
            rows = json.load(handle)
        except ValueError as err:
            raise FeedFormatError(f"{path} is not a JSON document: {err}") from err
    if not isinstance(rows, list):
        raise FeedFormatError(f"{path} holds a JSON {type(rows).__name__}, not freqtrade's array of trades")
    return rows


def _chunks(rows: list[Any], symbol: str, chunk_rows: int) -> Iterator[FeedChunk]:
    for start in range(0, len(rows), chunk_rows):
        yield _chunk(rows[start : start + chunk_rows], symbol, start)


def _chunk(rows: list[Any], symbol: str, first_seq: int) -> FeedChunk:
    """Well-shaped rows through the generic parser (which rejects non-numeric cells), the others rejected here."""
    seq = np.arange(first_seq, first_seq + len(rows), dtype=np.int64)
    shaped = np.fromiter((isinstance(r, list) and len(r) == len(COLUMNS) for r in rows), dtype=bool, count=len(rows))
    frame = pd.DataFrame(list(compress(rows, shaped)), columns=list(COLUMNS))
    frame["symbol"] = symbol
    chunk = frame_to_chunk(frame[["ts", "symbol", "price", "volume", "side"]], seq[shaped])
    detail = f"not a list of {len(COLUMNS)} fields"
    misshapen = [
        Rejection(int(s), UNPARSEABLE, detail, json.dumps(rows[s - first_seq])[:500], symbol) for s in seq[~shaped]
    ]
    chunk.rejections = sorted(chunk.rejections + misshapen, key=lambda r: r.seq)
    chunk.last_seq = int(seq[-1])
    return chunk
