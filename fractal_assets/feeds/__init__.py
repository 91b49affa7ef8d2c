"""Feeds: sources of ticks, quotes and order books, each yielding :class:`FeedChunk` objects.

A reader takes ``(path, chunk_rows, follow)`` and yields chunks in source
order, numbering every source record (``seq``) so that ingest can resume
after a restart exactly where it stopped.
"""

from __future__ import annotations

import gzip
import importlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fractal_assets.feeds.errors import FeedFormatError

if TYPE_CHECKING:
    from fractal_assets.market.ticks import FeedChunk

Reader = Callable[[Path, int, bool], Iterator["FeedChunk"]]


def _generic(path: Path, chunk_rows: int, follow: bool) -> Iterator[FeedChunk]:
    from fractal_assets.feeds.generic import read_csv, read_parquet

    if path.suffix == ".parquet":
        if follow:
            raise FeedFormatError("--follow needs a text file; Parquet files are complete when written")
        return read_parquet(path, chunk_rows)
    return read_csv(path, chunk_rows, follow)


def _reader(fmt: str) -> Reader:
    """The reader of a format; each lives in the module of that name, imported on first use."""
    if fmt == "generic":
        return _generic
    return importlib.import_module(f"fractal_assets.feeds.{fmt}").read


FORMATS = ("auto", "generic", "binance", "tardis", "freqtrade", "databento")


def head(path: Path, size: int = 4096) -> str:
    """The first bytes of a file as text, decompressing gzip."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return handle.read(size).decode("utf-8", errors="replace")


def detect_format(path: Path) -> str:
    """Guess a file's format from its name and first bytes."""
    name = path.name.lower()
    if ".dbn" in name:
        return "databento"
    if name.endswith(".parquet"):
        return "generic"
    text = head(path)
    first = text.splitlines()[0] if text else ""
    if first.startswith("exchange,symbol,timestamp,local_timestamp"):
        return "tardis"
    if re.match(r"\s*\[\s*\[", text):
        return "freqtrade"
    if first.split(" ", 1)[0].isdigit() and "{" in first:
        return "binance"
    if {"ts", "symbol", "price", "volume"} <= {c.strip() for c in first.split(",")}:
        return "generic"
    raise FeedFormatError(f"cannot tell the format of {path}; pass --format")


def open_feed(path: Path, fmt: str = "auto", chunk_rows: int = 100_000, follow: bool = False) -> Iterator[FeedChunk]:
    """Chunks of a file in the given (or detected) format."""
    if not path.exists():
        raise FileNotFoundError(f"no such feed file: {path}")
    if fmt not in FORMATS:
        raise FeedFormatError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    return _reader(fmt)(path, chunk_rows, follow)
