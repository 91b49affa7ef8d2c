"""A tick file's Arrow columns as numpy: numbers, words and symbols, each cell parsed on its own.

A column arrives typed by its file (Parquet) or by pyarrow's inference over
one block of CSV lines: numbers as numbers, a block with one bad cell as
text. Either way every cell gets a value and a flag saying whether it was
one; a whole column is never refused for one cell.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fractal_assets.market.arrays import booleans, valid, values

FLOAT_RE = r"(?i)^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?$|^[+-]?(nan|inf|infinity)$"
"""A decimal number as text; 'nan' and 'inf' are numbers too (validation rejects them as bad
values, not as unreadable rows)."""


def as_text(array: pa.Array) -> pa.Array:
    """A string, large-string, binary or dictionary column as ``string``; a binary cell that is
    not UTF-8 becomes null."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_string(array.type):
        return array
    if pa.types.is_large_string(array.type):
        return pc.cast(array, pa.string())
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        try:
            return pc.cast(array, pa.string())
        except pa.ArrowInvalid:
            return pa.array([_utf8_or_none(v) for v in array.to_pylist()], pa.string())
    return pc.cast(array, pa.string())


def _utf8_or_none(value: bytes | None) -> str | None:
    try:
        return None if value is None else value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def float_text(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(value, is a number) of each cell of a string column; NaN where not a number."""
    trimmed = pc.utf8_trim_whitespace(text)
    number = booleans(pc.match_substring_regex(trimmed, FLOAT_RE))
    values = np.full(len(text), np.nan)
    if number.any():
        cells = pc.utf8_lower(trimmed.filter(pa.array(number)))
        cells = pc.replace_substring_regex(cells, r"^([+-]?)infinity$", r"\1inf")
        try:
            values[number] = pc.cast(cells, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            values[number] = [float(cell) for cell in cells.to_pylist()]
    return values, number


def numbers(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 value, was a number) of each cell; a missing cell is not a number."""
    array = _one(column)
    kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return values(array, kind.to_pandas_dtype()).astype(np.float64), valid(array)
    if pa.types.is_decimal(kind):
        return float_text(pc.cast(array, pa.string()))
    if pa.types.is_null(kind) or pa.types.is_boolean(kind) or pa.types.is_nested(kind):
        return np.full(len(array), np.nan), np.zeros(len(array), bool)
    return float_text(as_text(array))


def words(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(code per cell, distinct stripped texts) of a text column; a missing cell is ''.

    Symbols and sides repeat heavily, so each distinct text is handled once
    and rows carry an integer code.
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    encoded = [chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(as_text(chunk))
               for chunk in chunks] or [pc.dictionary_encode(pa.array([], pa.string()))]
    texts = [(text or "").strip() for chunk in encoded for text in as_text(chunk.dictionary).to_pylist()]
    uniques, merged = np.unique(np.array([*texts, ""], dtype=object), return_inverse=True)
    codes, offset = [], 0
    for chunk in encoded:
        indices = values(chunk.indices, chunk.indices.type.to_pandas_dtype()).astype(np.int64) + offset
        codes.append(merged[np.where(valid(chunk.indices), indices, len(texts))])
        offset += len(chunk.dictionary)
    return np.concatenate(codes), uniques


def symbols(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each cell's text as an object array (as feeds hand symbols to validation)."""
    codes, uniques = words(column)
    return uniques[codes]


def _one(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column

