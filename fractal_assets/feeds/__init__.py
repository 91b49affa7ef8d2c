"""Feeds: sources of ticks, quotes and order books, each yielding :class:`FeedChunk` objects.

A reader takes ``(path, chunk_rows, follow)`` and yields chunks in source
order, numbering every source record (``seq``) so that ingest can resume
after a restart exactly where it stopped. Only generic files take a
timestamp unit: every other format fixes its own.
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


def _generic(path: Path, chunk_rows: int, follow: bool, ts_unit: str) -> Iterator[FeedChunk]:
    from fractal_assets.feeds.generic import read_csv, read_parquet

    if path.suffix == ".parquet":
        if follow:
            raise FeedFormatError("--follow needs a text file; Parquet files are complete when written")
        return read_parquet(path, chunk_rows, ts_unit)
    return read_csv(path, chunk_rows, follow, ts_unit)


def _reader(fmt: str, ts_unit: str) -> Reader:
    """The reader of a format; each lives in the module of that name, imported on first use."""
    if fmt == "generic":
        return lambda path, chunk_rows, follow: _generic(path, chunk_rows, follow, ts_unit)
    if ts_unit != "auto":
        raise FeedFormatError(f"--ts-unit applies to generic files; {fmt} files fix their own timestamp unit")
    return importlib.import_module(f"fractal_assets.feeds.{fmt}").read


FORMATS = ("auto", "generic", "binance", "tardis", "freqtrade", "databento")
TS_UNITS = ("auto", "s", "ms", "us", "ns")
"""Units of numeric timestamps in generic files (``--ts-unit``); ``auto`` infers it per file."""
GENERIC_COLUMNS = ("ts", "symbol", "price", "volume")


def head(path: Path, size: int = 4096) -> str:
    """The first bytes of a file as text, decompressing gzip."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            return handle.read(size).decode("utf-8", errors="replace")
    except (OSError, EOFError) as err:
        raise FeedFormatError(f"cannot read {path}: {err}") from None


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
    columns = {c.strip() for c in first.removeprefix("\ufeff").split(",")}
    if set(GENERIC_COLUMNS) <= columns:
        return "generic"
    raise FeedFormatError(f"cannot tell the format of {path}: {_why_not_generic(columns)}; pass --format")


def _why_not_generic(columns: set[str]) -> str:
    """What a first line lacks to be a generic header, named when it looks like one."""
    known = columns & {*GENERIC_COLUMNS, "side"}
    if known:
        missing = [c for c in GENERIC_COLUMNS if c not in columns]
        return f"its header looks generic but lacks columns {missing} (needs ts,symbol,price,volume[,side])"
    return ("its first line is no generic header (ts,symbol,price,volume[,side]) "
            "nor one of a Tardis, Binance, freqtrade or Databento file")


def open_feed(path: Path, fmt: str = "auto", chunk_rows: int = 100_000, follow: bool = False,
              ts_unit: str = "auto") -> Iterator[FeedChunk]:
    """Chunks of a file in the given (or detected) format; ``ts_unit`` (generic files) is the
    unit of numeric timestamps, ``auto`` to infer it from their magnitude."""
    if not path.exists():
        raise FileNotFoundError(f"no such feed file: {path}")
    if path.is_dir():
        raise FeedFormatError(f"{path} is a directory, not a feed file")
    if fmt not in FORMATS:
        raise FeedFormatError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    return _reader(fmt, ts_unit)(path, chunk_rows, follow)
