"""CSV files read as blocks of whole lines: parsed by pyarrow, numbered by line, kept as written.

Tick files quote nothing, so a newline always ends a record: the file
(optionally gzipped) is cut after the last newline of every read, and each
block is parsed on its own, its column types inferred from its own cells.
Record ``n`` is the file's line ``n + 2`` (after the header), whatever the
block size, so a restart finds the same numbers. A block keeps its bytes, so
a rejected record's dead letter holds its line exactly as written.

A clean block (every line has the header's number of fields and is UTF-8)
takes pyarrow's multi-threaded path. A block with a bad line is split into
lines first: blank lines are no records, lines with the wrong number of
fields, a stray carriage return or bytes that are not UTF-8 are rejected, and
the others are parsed.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from fractal_assets.feeds.errors import FeedFormatError
from fractal_assets.ingest.identity import new_hasher
from fractal_assets.ingest.validation import UNPARSEABLE
from fractal_assets.market.ticks import FeedChunk, Rejection, with_originals

BYTES_PER_ROW = 64
"""Bytes read per wanted line: about one tick line."""
MIN_READ = 1 << 16
POLL_S = 0.05
BOM = b"\xef\xbb\xbf"

TableParser = Callable[[pa.Table, np.ndarray], FeedChunk]
"""Turns a block's parsed rows and their record numbers into a chunk."""


@dataclass(frozen=True)
class Lines:
    """Whole lines of a file (each ending in a newline), how many, and the record number of the first."""

    data: bytes
    count: int
    first: int

    def originals(self) -> Callable[[Sequence[int]], list[bytes]]:
        """The lines of given record numbers as written, without their line ending."""
        ends: list[np.ndarray] = []

        def lines(seqs: Sequence[int]) -> list[bytes]:
            if not ends:
                ends.append(np.flatnonzero(np.frombuffer(self.data, np.uint8) == 10))
            stops = ends[0]
            starts = np.concatenate(([0], stops[:-1] + 1))
            out = []
            for seq in seqs:
                i = seq - self.first
                out.append(self.data[starts[i]:stops[i]].rstrip(b"\r") if 0 <= i < len(stops) else b"")
            return out

        return lines


def open_binary(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


READ_ERRORS = (OSError, EOFError, zlib.error)
"""What reading a damaged file raises (a gzip stream cut short, say)."""


def read_header(handle: BinaryIO, path: Path) -> list[str]:
    """The column names of the first line."""
    try:
        line = handle.readline()
    except READ_ERRORS as err:
        raise FeedFormatError(f"cannot read {path}: {err}") from None
    return header_names(line, path)


def header_names(line: bytes, path: Path) -> list[str]:
    """The column names of a header line (a UTF-8 byte-order mark skipped)."""
    try:
        text = line.removeprefix(BOM).decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise FeedFormatError(f"{path}: the first line is not UTF-8 text, so not a CSV header") from None
    return [name.strip() for name in text.split(",")]


def cut_lines(data: bytes, lines: int) -> tuple[list[bytes], bytes, int]:
    """Blocks of ``lines`` whole lines from the start of ``data``, and what is left after them
    with the number of newlines it holds."""
    total = data.count(b"\n")
    if total < lines:
        return [], data, total
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)[lines - 1 :: lines]
    starts = np.concatenate(([0], ends + 1))
    return [data[a:b + 1] for a, b in zip(starts, ends)], data[starts[-1]:], total - len(ends) * lines


def whole_lines(handle: BinaryIO, lines: int) -> Iterator[tuple[bytes, int]]:
    """The rest of the file in blocks of ``lines`` whole lines (the last one shorter), each with
    its number of lines; a last line without a newline gets one."""
    rest, left = b"", 0
    while chunk := handle.read(max(MIN_READ, lines * BYTES_PER_ROW)):
        blocks, rest, left = cut_lines(rest + chunk, lines)
        yield from ((block, lines) for block in blocks)
    if rest:
        yield (rest, left) if rest.endswith(b"\n") else (rest + b"\n", left + 1)


def csv_chunks(
    path: Path, chunk_rows: int, parse: TableParser, column_types: dict[str, pa.DataType]
) -> Iterator[FeedChunk]:
    """A CSV file (optionally gzipped) in chunks of about ``chunk_rows`` lines. When the file
    cannot be read on (a damaged gzip stream), what follows is rejected as one record."""
    with open_binary(path) as handle:
        names = read_header(handle, path)
        first = 0
        blocks = whole_lines(handle, chunk_rows)
        while True:
            try:
                data, count = next(blocks)
            except StopIteration:
                return
            except READ_ERRORS as err:
                yield FeedChunk(last_seq=first, rejections=[unreadable_rest(first, err)])
                return
            yield parse_lines(Lines(data, count, first), names, parse, column_types)
            first += count


def unreadable_rest(seq: int, err: BaseException) -> Rejection:
    """The rejection standing for the rest of a file that cannot be read from record ``seq`` on."""
    return Rejection(seq, UNPARSEABLE, f"the rest of the file cannot be read: {type(err).__name__}: {err}"[:300])


def follow_csv(
    path: Path, chunk_rows: int, parse: TableParser, column_types: dict[str, pa.DataType],
    check: Callable[[list[str]], None],
) -> Iterator[FeedChunk]:
    """Tail a growing CSV: complete lines are parsed as they are appended. An empty chunk tells
    ingest that the file has nothing new, so it flushes instead of waiting; it carries the size
    and digest of what was read, so the file's identity can follow its growth. A file without a
    complete header line yet is waited for; ``check`` judges the header once it is there."""
    hasher = new_hasher()
    with open(path, "rb") as handle:
        header = b""
        while not header.endswith(b"\n"):
            header += handle.readline()
            if not header.endswith(b"\n"):
                yield FeedChunk(last_seq=-1)
                time.sleep(POLL_S)
        names = header_names(header, path)
        check(names)
        hasher.update(header)
        read, first, partial = len(header), 0, b""
        while True:
            data = partial + handle.read(max(MIN_READ, chunk_rows * BYTES_PER_ROW))
            cut = data.rfind(b"\n") + 1
            partial = data[cut:]
            if not cut:
                yield FeedChunk(last_seq=first - 1, read=(read, hasher.hexdigest()))
                time.sleep(POLL_S)
                continue
            hasher.update(memoryview(data)[:cut])
            read += cut
            blocks, rest, left = cut_lines(data[:cut], chunk_rows)
            for block, count in [*((block, chunk_rows) for block in blocks), *([(rest, left)] if rest else [])]:
                yield parse_lines(Lines(block, count, first), names, parse, column_types)
                first += count


def parse_lines(lines: Lines, names: list[str], parse: TableParser, column_types: dict[str, pa.DataType]) -> FeedChunk:
    """One block of lines as a chunk: records numbered, bad lines rejected, originals kept."""
    count = lines.count
    table = _parse_clean(lines.data, names, column_types, count)
    if table is not None:
        chunk = parse(table, np.arange(lines.first, lines.first + count, dtype=np.int64))
    else:
        good, body, rejections = _split(lines, len(names))
        table = _read(body, names, column_types, threads=False) if len(good) else _empty(names, column_types)
        chunk = parse(table, good)
        chunk.rejections = sorted(chunk.rejections + rejections, key=lambda r: r.seq)
    chunk.last_seq = lines.first + count - 1
    chunk.originals = lines.originals()
    chunk.rejections = with_originals(chunk.rejections, chunk.originals)
    return chunk


def _read(data: bytes, names: list[str], column_types: dict[str, pa.DataType], threads: bool,
          on_invalid: Callable[[pacsv.InvalidRow], str] | None = None) -> pa.Table:
    return pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=threads, block_size=1 << 20),
        parse_options=pacsv.ParseOptions(quote_char=False, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={k: v for k, v in column_types.items() if k in names},
            null_values=[""], strings_can_be_null=True,
        ),
    )


def _parse_clean(data: bytes, names: list[str], column_types: dict[str, pa.DataType], count: int) -> pa.Table | None:
    """The block parsed in parallel, or None when a line is bad (it needs numbering line by line)."""
    invalid = [0]

    def count_invalid(_: pacsv.InvalidRow) -> str:
        invalid[0] += 1
        return "skip"

    try:
        table = _read(data, names, column_types, threads=True, on_invalid=count_invalid)
    except pa.ArrowInvalid:
        return None
    return table if not invalid[0] and table.num_rows == count else None


def _split(lines: Lines, fields: int) -> tuple[np.ndarray, bytes, list[Rejection]]:
    """Record numbers and text of the well-formed lines of a block, and rejections of the others."""
    good: list[int] = []
    kept: list[bytes] = []
    rejections: list[Rejection] = []
    for seq, line in enumerate(lines.data.split(b"\n")[:-1], lines.first):
        text = line[:-1] if line.endswith(b"\r") else line
        if not text.strip():
            continue
        problem = _problem(text, fields)
        if problem:
            rejections.append(Rejection(seq, UNPARSEABLE, problem))
        else:
            good.append(seq)
            kept.append(text + b"\n")
    return np.array(good, dtype=np.int64), b"".join(kept), rejections


def _problem(line: bytes, fields: int) -> str:
    """Why a line cannot be a record ('' when it can)."""
    if b"\r" in line:
        return "a carriage return inside the line"
    if line.count(b",") != fields - 1:
        return f"wrong number of fields ({line.count(b',') + 1}, the header has {fields})"
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return ""


def _empty(names: list[str], column_types: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({name: pa.array([], column_types.get(name, pa.string())) for name in names})
