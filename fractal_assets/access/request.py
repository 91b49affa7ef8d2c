"""Arguments of a data request, validated before any storage is touched."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from fractal_assets.market.bars import TIMEFRAMES
from fractal_assets.market.calendar import DAY_MS, day_start_ms
from fractal_assets.market.symbols import normalize_symbol

KINDS = ("ticks", "bars")


DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Request:
    """Validated arguments of :func:`get_backtest_data`."""

    symbol: str
    start: str
    end: str
    kind: str
    timeframe: str | None

    @property
    def start_ms(self) -> int:
        return day_start_ms(self.start)

    @property
    def end_ms(self) -> int:
        """Exclusive: midnight after ``end``."""
        return day_start_ms(self.end) + DAY_MS


def parse_date(name: str, value: str | date) -> str:
    """A UTC date as 'YYYY-MM-DD', or a ValueError naming the argument."""
    text = value.isoformat() if isinstance(value, date) else value
    if not isinstance(text, str) or not DATE_RE.match(text):
        raise ValueError(f"{name} {value!r} must be a date written YYYY-MM-DD")
    try:
        date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a calendar date") from None
    return text


def check_timeframe(timeframe: str | None) -> str:
    """A known bar timeframe, or a ValueError listing them."""
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"timeframe {timeframe!r} must be one of {', '.join(TIMEFRAMES)}")
    return timeframe


TICK_COUNT_RE = re.compile(r"^[1-9]\d*t$")
"""A timeframe of ``N`` ticks (``1000t``: one full micro-batch of the default size)."""


def check_indicator_timeframe(timeframe: str) -> str:
    """A bar timeframe or a tick-count timeframe (``1000t``) of the ``ind:`` keys, or a
    ValueError listing them."""
    if timeframe in TIMEFRAMES or (isinstance(timeframe, str) and TICK_COUNT_RE.match(timeframe)):
        return timeframe
    raise ValueError(f"timeframe {timeframe!r} must be one of {', '.join(TIMEFRAMES)} "
                     "or a tick count such as 1000t")


def make_request(symbol: str, start_date: str | date, end_date: str | date, kind: str, timeframe: str | None) -> Request:
    """Validate every argument before any storage is touched."""
    start, end = parse_date("start_date", start_date), parse_date("end_date", end_date)
    if end < start:
        raise ValueError(f"end_date {end} is before start_date {start}")
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} must be one of {', '.join(KINDS)}")
    if kind == "bars":
        check_timeframe(timeframe)
    elif timeframe is not None:
        raise ValueError("timeframe applies to kind='bars' only")
    return Request(normalize_symbol(symbol), start, end, kind, timeframe)
