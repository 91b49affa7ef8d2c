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
    number = _mask(pc.match_substring_regex(trimmed, FLOAT_RE))
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
        return array.to_numpy(zero_copy_only=False).astype(np.float64), ~_mask(array.is_null())
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
    encoded = pc.dictionary_encode(pc.utf8_trim_whitespace(as_text(_one(column))).fill_null(""))
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), \
        encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)


def symbols(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each cell's text as an object array (as feeds hand symbols to validation)."""
    codes, uniques = words(column)
    return uniques[codes]


def _one(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as numpy, null as False."""
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False)
