"""Columns between Arrow and numpy through their buffers.

pyarrow's own ``to_numpy`` and its conversions of numpy arrays and Python
scalars go through its pandas layer, which imports pandas: a quarter of a
second of every process that touches them. Fixed-width columns need none of
it: their values are one buffer, their validity a bitmap. The import path
(``fractal import`` of a plain file) stays clear of pandas this way; other
paths may use pyarrow's conversions freely.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def _chunks(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]


def values(column: pa.Array | pa.ChunkedArray, dtype: np.dtype | str) -> np.ndarray:
    """The values of a fixed-width column (integers, floats, timestamps, dictionary indices) as
    ``dtype``, the column's own width; a null's slot holds whatever its buffer holds."""
    dtype = np.dtype(dtype)
    parts = [np.frombuffer(chunk.buffers()[1], dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)
             if len(chunk) else np.empty(0, dtype) for chunk in _chunks(column)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty(0, dtype)


def _bits(buffer: pa.Buffer | None, offset: int, length: int, absent: bool) -> np.ndarray:
    if buffer is None:
        return np.full(length, absent)
    bits = np.unpackbits(np.frombuffer(buffer, np.uint8), bitorder="little")
    return bits[offset:offset + length].astype(bool)


def valid(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Where a column holds a value (not null)."""
    parts = [_bits(chunk.buffers()[0], chunk.offset, len(chunk), True) for chunk in _chunks(column)]
    return np.concatenate(parts) if parts else np.empty(0, bool)


def booleans(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean column's values (False where null)."""
    parts = [_bits(chunk.buffers()[1], chunk.offset, len(chunk), False) & valid(chunk) for chunk in _chunks(column)]
    return np.concatenate(parts) if parts else np.empty(0, bool)


def arrow(array: np.ndarray) -> pa.Array:
    """A one-dimensional numeric numpy array as an Arrow array; a two-dimensional one as a
    fixed-size list array of its rows."""
    if array.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(arrow(array.ravel()), array.shape[1])
    contiguous = np.ascontiguousarray(array)
    return pa.Array.from_buffers(pa.from_numpy_dtype(contiguous.dtype), len(contiguous),
                                 [None, pa.py_buffer(contiguous)])
