"""msgpack payloads of the hot tier.

A micro-batch of ticks (or quotes) is packed column by column (raw little-endian arrays as
msgpack bin fields), so packing and unpacking 1000 ticks is a handful of
memory copies. Unpacking enforces size limits: a payload is never trusted.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

FORMAT_VERSION = 1
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
MAX_TICKS_PER_ENTRY = 200_000


class PayloadError(ValueError):
    """A hot-tier payload that is malformed, too large or of an unknown version."""


def _unpackb(blob: bytes) -> Any:
    if len(blob) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(blob)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        return msgpack.unpackb(
            blob, raw=False, max_bin_len=MAX_PAYLOAD_BYTES, max_str_len=1 << 16,
            max_array_len=1 << 16, max_map_len=1 << 10, strict_map_key=True,
        )
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise PayloadError(f"not a valid msgpack payload: {exc}") from exc


def pack_records(records: np.ndarray, seq0: int) -> bytes:
    """One stream entry: structured records column by column, and the arrival number of the first."""
    return msgpack.packb(
        {
            "v": FORMAT_VERSION,
            "n": len(records),
            "seq0": int(seq0),
            **{name: np.ascontiguousarray(records[name]).tobytes() for name in records.dtype.names},
        },
        use_bin_type=True,
    )


def unpack_records(blob: bytes, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """(records, seq0) from a stream entry, validating version, count and column sizes."""
    doc = _unpackb(blob)
    if not isinstance(doc, dict) or doc.get("v") != FORMAT_VERSION:
        raise PayloadError("payload has no known format version")
    n = doc.get("n")
    if not isinstance(n, int) or not 0 <= n <= MAX_TICKS_PER_ENTRY:
        raise PayloadError(f"payload record count {n!r} out of range")
    out = np.empty(n, dtype=dtype)
    for name in dtype.names:
        column = doc.get(name)
        if not isinstance(column, bytes) or len(column) != n * dtype[name].itemsize:
            raise PayloadError(f"payload column {name!r} is missing or has the wrong size")
        out[name] = np.frombuffer(column, dtype=dtype[name])
    seq0 = doc.get("seq0", 0)
    if not isinstance(seq0, int):
        raise PayloadError("payload seq0 is not an integer")
    return out, seq0


def pack_value(doc: dict[str, Any]) -> bytes:
    """msgpack of a small document (indicator values, order books, dead letters)."""
    return msgpack.packb(doc, use_bin_type=True)


def unpack_value(blob: bytes) -> Any:
    """Inverse of :func:`pack_value`, with the same size limits as tick payloads."""
    return _unpackb(blob)


def pack_book(ts: int, bids: np.ndarray, asks: np.ndarray) -> bytes:
    """An order-book snapshot {bids, asks, ts}; levels are [price, qty] pairs, best first."""
    return pack_value({"ts": int(ts), "bids": np.asarray(bids).tolist(), "asks": np.asarray(asks).tolist()})
