"""Databento DBN market-by-order files (``.dbn``, or zstd-compressed ``.dbn.zst``): their trades.

Only ``action == 'T'`` records become trades: the F (fill) records report the
same executions from the resting orders' side, and A/C/M are order-book
events. A trade's ``side`` is the aggressor: B buy, A sell, N not reported
(the tick rule decides). ``seq`` is the record's index in the file, the
metadata header not counted. The MBO order book (rebuilding it from
A/C/M/F events) is not reconstructed here.

Records are decoded by ``databento_dbn`` and packed back into their fixed
binary layout, so every field is then read with numpy for a whole chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress
from pathlib import Path
from typing import IO, Any

import databento_dbn as dbn
import numpy as np
import zstandard

from fractal_assets.feeds.csv_blocks import unreadable_rest
from fractal_assets.feeds.errors import FeedFormatError
from fractal_assets.ingest.validation import UNPARSEABLE
from fractal_assets.market.ticks import BUY, SELL, FeedChunk, RawTrades, Rejection

READ_BYTES = 1 << 20
DECODE_ERRORS = (dbn.DBNError, zstandard.ZstdError, OSError, EOFError)
MBO_DTYPE = np.dtype(dbn.MBOMsg._dtypes)
"""An MBO record's binary layout, as databento_dbn itself describes it."""


def read(path: Path, chunk_rows: int, follow: bool) -> Iterator[FeedChunk]:
    """Chunks of ``chunk_rows`` records; ``follow`` is refused, a DBN file is read as a whole."""
    if follow:
        raise FeedFormatError("--follow is only supported for generic CSV files, not Databento DBN")
    return _chunks(path, chunk_rows)


def _open(path: Path) -> IO[bytes]:
    raw = open(path, "rb")
    if path.suffix == ".zst":
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
    return raw


def _chunks(path: Path, chunk_rows: int) -> Iterator[FeedChunk]:
    """Decode the file block by block and cut its records into chunks of exactly ``chunk_rows``.

    A file that is not DBN from the start is refused; one that breaks off
    later (bad bytes, a cut zstd stream) ends with a rejection of the rest.
    """
    decoder = dbn.DBNDecoder()
    symbols: _Symbols | None = None
    pending: list[Any] = []
    seq = 0
    failure: BaseException | None = None
    with _open(path) as stream:
        while True:
            try:
                block = stream.read(READ_BYTES)
                if not block:
                    break
                decoder.write(block)
                records = decoder.decode()
            except DECODE_ERRORS as err:
                if symbols is None:
                    raise FeedFormatError(f"{path} is not valid DBN: {err}") from None
                failure = err
                break
            if records and isinstance(records[0], dbn.Metadata):
                symbols = _symbols(records.pop(0), path, path.name.split(".")[0].split("-")[0].upper())
            pending += records
            while len(pending) >= chunk_rows and symbols is not None:
                yield _chunk(pending[:chunk_rows], seq, symbols)
                pending, seq = pending[chunk_rows:], seq + chunk_rows
    if pending and symbols is not None:
        yield _chunk(pending, seq, symbols)
        seq += len(pending)
    leftover = len(decoder.buffer())
    if failure is not None:
        yield FeedChunk(seq, rejections=[unreadable_rest(seq, failure)])
    elif leftover:
        yield FeedChunk(seq, rejections=[Rejection(seq, UNPARSEABLE, f"file ends inside a record ({leftover} bytes)")])


@dataclass(frozen=True)
class _Symbols:
    """Instrument id -> symbol; an id the metadata does not map gets ``fallback``, the file name's prefix."""

    mapped: dict[int, str]
    fallback: str

    def of(self, instrument_ids: np.ndarray) -> np.ndarray:
        """The symbol of each id, looked up once per distinct id."""
        ids, where = np.unique(instrument_ids, return_inverse=True)
        return np.array([self.mapped.get(int(i), self.fallback) for i in ids], dtype=object)[where]


def _symbols(metadata: dbn.Metadata, path: Path, fallback: str) -> _Symbols:
    """Raw symbol per instrument id from the metadata's symbol mappings (when they map to instrument ids)."""
    if metadata.schema != dbn.Schema.MBO:
        raise FeedFormatError(f"{path} holds {metadata.schema} records; only the mbo schema is read")
    mapped: dict[int, str] = {}
    if metadata.stype_out == dbn.SType.INSTRUMENT_ID:
        for raw_symbol, intervals in metadata.mappings.items():
            mapped.update({int(i["symbol"]): raw_symbol for i in intervals if str(i["symbol"]).isdigit()})
    return _Symbols(mapped, fallback)


def _chunk(records: list[Any], first_seq: int, symbols: _Symbols) -> FeedChunk:
    """The trades among ``records``, read column-wise from their packed bytes."""
    is_mbo = np.fromiter((isinstance(r, dbn.MBOMsg) for r in records), dtype=bool, count=len(records))
    mbo = np.frombuffer(b"".join(map(bytes, compress(records, is_mbo))), dtype=MBO_DTYPE)
    seq = np.arange(first_seq, first_seq + len(records), dtype=np.int64)[is_mbo]
    trade = mbo["action"] == b"T"
    mbo, seq = mbo[trade], seq[trade]
    side = mbo["side"]
    trades = RawTrades(
        seq=seq,
        symbol=symbols.of(mbo["instrument_id"]),
        ts=(mbo["ts_event"] // 1_000_000).astype(np.int64),
        price=np.where(mbo["price"] == dbn.UNDEF_PRICE, np.nan, mbo["price"] / 1e9),
        volume=mbo["size"].astype(np.float64),
        side=np.select([side == b"B", side == b"A", side == b"N"], [float(BUY), float(SELL), np.nan], 0.0),
    )
    return FeedChunk(last_seq=first_seq + len(records) - 1, trades=trades,
                     originals=lambda seqs: [bytes(records[s - first_seq]) for s in seqs])
