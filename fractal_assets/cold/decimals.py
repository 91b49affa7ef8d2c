"""Float columns stored as exact scaled decimals.

Trade prices and sizes are decimal numbers (9663.07, 0.013) that reach us as
float64. Stored as Parquet DECIMAL on INT64 (the integer 966307 with scale 2)
and delta-encoded, they take about a third less space than the floats under
zstd (bench/access.py), and they are exact: a column is converted only when
every value comes back as the very same float64, otherwise it stays float64.

Reading back must be exact too. A value ``u / 10**s`` with ``|u| <= 2**53``
is one correctly rounded division of two exact doubles, which is what
:func:`to_floats` and DuckDB's ``CAST(... AS DOUBLE)`` compute; pyarrow's own
decimal-to-float cast is not correctly rounded, so it is not used.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fractal_assets.market.arrays import values as column_values
from fractal_assets.market.decimals import exact_scale, unscaled

PRECISION = 18
"""The largest precision Parquet stores on INT64."""
DECIMAL_ENCODING = "DELTA_BINARY_PACKED"


def to_decimal(values: np.ndarray, scale: int) -> pa.Array:
    """``values`` (exact at ``scale``) as a decimal128 array built from its unscaled integers."""
    integers = unscaled(values, scale)
    words = np.empty((len(integers), 2), np.int64)
    words[:, 0] = integers
    words[:, 1] = integers >> 63
    return pa.Array.from_buffers(pa.decimal128(PRECISION, scale), len(integers), [None, pa.py_buffer(words)])


def to_floats(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A decimal column as float64, each value the double nearest to the decimal."""
    power = 10.0**column.type.scale
    return pa.chunked_array([chunk_unscaled(chunk) / power for chunk in column.chunks], pa.float64())


def chunk_unscaled(chunk: pa.Array) -> np.ndarray:
    """The low 64 bits of each little-endian decimal128: the unscaled value, as it fits in int64."""
    if chunk.null_count:
        raise ValueError("a cold-tier decimal column holds nulls")
    words = np.frombuffer(chunk.buffers()[1], np.int64)
    return words[2 * chunk.offset: 2 * (chunk.offset + len(chunk)): 2]


def encode(table: pa.Table, encodings: dict[str, str]) -> tuple[pa.Table, dict[str, str]]:
    """Every float64 column that is exact at some scale as a decimal, with its encoding."""
    encodings = dict(encodings)
    for index, field in enumerate(table.schema):
        if not pa.types.is_float64(field.type) or table.column(index).null_count:
            continue
        values = column_values(table.column(index), np.float64)
        scale = exact_scale(values)
        if scale is not None:
            table = table.set_column(index, field.name, to_decimal(values, scale))
            encodings[field.name] = DECIMAL_ENCODING
    return table, encodings


def decode(table: pa.Table) -> pa.Table:
    """Every decimal column of a stored table back as float64."""
    for index, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type):
            table = table.set_column(index, field.name, to_floats(table.column(index)))
    return table
