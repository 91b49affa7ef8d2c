"""A tick file's timestamps, in every form users write them, as epoch milliseconds (UTC).

- Numbers are epoch seconds, milliseconds, microseconds or nanoseconds. The
  unit is inferred once per file, from the magnitude of its first numbers, or
  given (``--ts-unit``), so that one odd value cannot change how the others
  read. Integers stay integers (a nanosecond time does not fit a float
  exactly); fractional numbers are rounded to the microsecond first.
- Text is ISO-8601: a date, optionally a time with or without fractional
  seconds, and a zone ``Z`` or ``+hh:mm`` (converted to UTC) or none (taken
  as UTC, and said so).
- Arrow timestamp and date columns (Parquet) of any unit and time zone.

Milliseconds are floored. A value that is no time at all is *unparsed*; a
well-formed time that no millisecond count can hold becomes ``OUT_OF_RANGE``,
which validation rejects as ``ts_out_of_range`` like any other time outside
the range a tick may have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fractal_assets.feeds import TS_UNITS
from fractal_assets.feeds.columns import as_text, float_text
from fractal_assets.market.arrays import booleans, valid, values

UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
US_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}
UNITS_PER_MS = {"ms": 1, "us": 1_000, "ns": 1_000_000}
MAGNITUDES = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
"""The unit is the first whose bound the median number stays below: 1e11 s is the year 5138,
while 1e11 ms is March 1973, before any electronic tick data."""
INFERENCE_SAMPLE = 100_000
OUT_OF_RANGE = np.iinfo(np.int64).min
"""The millisecond value of a time that cannot be a tick's time (validation rejects it)."""
MAX_SECONDS = np.iinfo(np.int64).max // 1000
INT64_MAX_TEXT = str(np.iinfo(np.int64).max)
INTEGER_RE = r"^[+-]?[0-9]{1,19}$"
ISO_RE = (r"^[+-]?[0-9]{4,6}-[0-9]{2}-[0-9]{2}"
          r"([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?\s*([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?$")
ZONED_RE = r"([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$"
PANDAS_YEARS = (1678, 2261)
"""Years pandas parses without overflowing its nanosecond clock; ISO times of other years are
out of range for a tick anyway."""
NAIVE_NOTE = "ts: times without a time zone taken as UTC"


@dataclass
class ParsedTimes:
    """Epoch ms per value, and whether the value was a time at all."""

    ms: np.ndarray
    ok: np.ndarray


@dataclass
class TsParser:
    """Parses one file's timestamp column chunk by chunk, the unit of its numbers fixed per file."""

    unit: str = "auto"
    notes: list[str] = field(default_factory=list)
    """What the user should be told about how the times were read, each once."""

    def __post_init__(self) -> None:
        if self.unit not in TS_UNITS:
            raise ValueError(f"--ts-unit {self.unit!r} must be one of {', '.join(TS_UNITS)}")
        self._said: set[str] = set()

    def take_notes(self) -> list[str]:
        """Notes not handed out before."""
        notes, self.notes = self.notes, []
        return notes

    def parse(self, column: pa.Array | pa.ChunkedArray) -> ParsedTimes:
        """Epoch ms of every value of ``column``."""
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        kind = array.type
        if pa.types.is_integer(kind):
            return self._integers(array)
        if pa.types.is_floating(kind):
            return self._floats(np.where(valid(array), values(array, kind.to_pandas_dtype()), np.nan))
        if pa.types.is_decimal(kind):
            return self._floats(float_text(pc.cast(array, pa.string()))[0])
        if pa.types.is_timestamp(kind):
            return self._timestamps(array)
        if pa.types.is_date(kind):
            return self._timestamps(pc.cast(array, pa.timestamp("ms")))
        if pa.types.is_null(kind) or pa.types.is_boolean(kind) or pa.types.is_nested(kind):
            return ParsedTimes(np.full(len(array), OUT_OF_RANGE, np.int64), np.zeros(len(array), bool))
        return self._text(as_text(array))

    def _note(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            self.notes.append(text)

    def _fix_unit(self, values: np.ndarray, ok: np.ndarray) -> str:
        """The file's unit of numbers: given, or inferred from the first ones seen that are a
        time in some unit (a zero or a 1e20 says nothing)."""
        if self.unit == "auto":
            sample = np.abs(values[ok][:INFERENCE_SAMPLE].astype(np.float64))
            sample = sample[(sample >= 1) & (sample < 2.0**63)]
            if len(sample):
                median = float(np.median(sample))
                self.unit = next((unit for bound, unit in MAGNITUDES if median < bound), "ns")
                self._note(f"ts: numbers read as epoch {UNIT_NAMES[self.unit]} "
                           "(inferred from their magnitude; --ts-unit overrides)")
        return self.unit

    def _integers(self, array: pa.Array) -> ParsedTimes:
        ok = valid(array)
        numbers = np.where(ok, values(array, array.type.to_pandas_dtype()), 0)
        if numbers.dtype == np.uint64:
            fits = numbers <= np.iinfo(np.int64).max
            ms = self._integer_ms(np.where(fits, numbers, 0).astype(np.int64), ok & fits)
            return ParsedTimes(np.where(fits, ms, OUT_OF_RANGE), ok)
        return ParsedTimes(self._integer_ms(numbers.astype(np.int64, copy=False), ok), ok)

    def _integer_ms(self, values: np.ndarray, ok: np.ndarray) -> np.ndarray:
        unit = self._fix_unit(values, ok)
        if unit == "auto":
            return np.full(len(values), OUT_OF_RANGE, np.int64)
        if unit == "s":
            return np.where(np.abs(values) <= MAX_SECONDS, values * 1000, OUT_OF_RANGE)
        return values if unit == "ms" else np.floor_divide(values, UNITS_PER_MS[unit])

    def _floats(self, values: np.ndarray) -> ParsedTimes:
        ok = np.isfinite(values)
        return ParsedTimes(self._float_ms(values, ok), ok)

    def _float_ms(self, values: np.ndarray, ok: np.ndarray) -> np.ndarray:
        unit = self._fix_unit(values, ok)
        if unit == "auto":
            return np.full(len(values), OUT_OF_RANGE, np.int64)
        with np.errstate(invalid="ignore", over="ignore"):
            us = np.round(values * US_PER_UNIT[unit])
            fits = ok & (np.abs(us) < 2.0**62)
            return np.where(fits, np.floor_divide(np.where(fits, us, 0).astype(np.int64), 1000), OUT_OF_RANGE)

    def _timestamps(self, array: pa.Array) -> ParsedTimes:
        ok = valid(array)
        if array.type.tz is None:
            self._note(NAIVE_NOTE)
        raw = np.where(ok, values(pc.cast(array, pa.int64()), np.int64), 0)
        if array.type.unit == "s":
            return ParsedTimes(np.where(np.abs(raw) <= MAX_SECONDS, raw * 1000, OUT_OF_RANGE), ok)
        return ParsedTimes(np.floor_divide(raw, UNITS_PER_MS[array.type.unit]), ok)

    def _text(self, text: pa.Array) -> ParsedTimes:
        """Integers, decimal numbers and ISO-8601 times, each cell by its own form (a column of
        plain integers, the common case, in one cast)."""
        try:
            values = pc.cast(text, pa.int64())
        except pa.ArrowInvalid:
            return self._text_forms(text)
        return self._integers(values)

    def _text_forms(self, text: pa.Array) -> ParsedTimes:
        ms = np.full(len(text), OUT_OF_RANGE, np.int64)
        ok = np.zeros(len(text), bool)
        trimmed = pc.utf8_trim_whitespace(text)
        integer = booleans(pc.match_substring_regex(trimmed, INTEGER_RE))
        if integer.all():
            self._text_integers(trimmed, integer, ms, ok)
            return ParsedTimes(ms, ok)
        if integer.any():
            self._text_integers(trimmed, integer, ms, ok)
        values, number = float_text(trimmed)
        decimal = ~integer & number & np.isfinite(values)
        if decimal.any():
            ms[decimal] = self._float_ms(values[decimal], np.ones(int(decimal.sum()), bool))
            ok[decimal] = True
        iso = ~number & booleans(pc.match_substring_regex(trimmed, ISO_RE))
        if iso.any():
            self._iso(trimmed.filter(pa.array(iso)), np.flatnonzero(iso), ms, ok)
        return ParsedTimes(ms, ok)

    def _text_integers(self, trimmed: pa.Array, rows: np.ndarray, ms: np.ndarray, ok: np.ndarray) -> None:
        """Integer cells, exactly: a sign and up to 19 digits, beyond int64 out of range."""
        cells = trimmed.filter(pa.array(rows))
        negative = booleans(pc.starts_with(cells, "-"))
        digits = pc.replace_substring_regex(cells, r"^[+-]", "")
        too_big = booleans(pc.and_(pc.equal(pc.utf8_length(digits), 19), pc.greater(digits, INT64_MAX_TEXT)))
        values = pc.cast(pc.if_else(pa.array(too_big), "0", digits), pa.int64()).to_numpy()
        values = np.where(negative, -values, values)
        where = np.flatnonzero(rows)
        ms[where] = np.where(too_big, OUT_OF_RANGE, self._integer_ms(values, ~too_big))
        ok[where] = True

    def _iso(self, text: pa.Array, rows: np.ndarray, ms: np.ndarray, ok: np.ndarray) -> None:
        """Well-formed ISO-8601 cells through pandas' parser: a time of a year pandas cannot hold
        is out of range, an impossible date (February 30) unparsed."""
        import pandas as pd

        if not booleans(pc.match_substring_regex(text, ZONED_RE)).all():
            self._note(NAIVE_NOTE)
        stamps = pd.to_datetime(pd.Series(text.to_numpy(zero_copy_only=False)), format="ISO8601", utc=True,
                                errors="coerce")
        parsed = stamps.notna().to_numpy()
        clock = stamps.dt.tz_localize(None).to_numpy()
        ms[rows[parsed]] = clock[parsed].astype("datetime64[ms]").astype(np.int64)
        years = pc.cast(pc.extract_regex(text, r"^[+-]?(?P<year>[0-9]+)-").field("year"), pa.int64()).to_numpy()
        years = np.where(booleans(pc.starts_with(text, "-")), -years, years)
        beyond = ~parsed & ((years < PANDAS_YEARS[0]) | (years > PANDAS_YEARS[1]))
        ok[rows[parsed | beyond]] = True

