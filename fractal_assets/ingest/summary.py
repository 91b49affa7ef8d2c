"""What a run of ``fractal ingest`` or ``fractal import`` tells its user: counts, the fix for each
kind of rejection where there is one, and whether anything was stored (the exit code)."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from fractal_assets.ingest.validation import (
    BAD_PRICE,
    BAD_QUOTE,
    BAD_SIDE,
    BAD_SYMBOL,
    BAD_VOLUME,
    TS_BACKWARDS,
    TS_OUT_OF_RANGE,
    UNPARSEABLE,
)
from fractal_assets.market.symbols import SYMBOL_RE

NOTHING_STORED = 1
"""Exit code of a run that accepted no record and did not find them all stored already."""

HINTS = {
    UNPARSEABLE: "rows that are not records of the format (each is in deadletter:ticks with its original line)",
    BAD_PRICE: "prices must be finite and > 0",
    BAD_VOLUME: "volumes must be finite and >= 0",
    BAD_SIDE: "sides must be 1/-1, buy/sell or empty",
    BAD_SYMBOL: f"symbols must match {SYMBOL_RE.pattern} after upper-casing",
    TS_OUT_OF_RANGE: "times before 1970 or more than a day ahead: if the unit read above is wrong, pass --ts-unit",
    BAD_QUOTE: "quotes need 0 < bid <= ask",
}
INGEST_HINTS = {
    **HINTS,
    TS_BACKWARDS: "older than their symbol's newest stored tick by more than FRACTAL_TS_TOLERANCE_MS: "
                  "to add history, use `fractal import --source FILE`",
}
IMPORT_HINTS = {
    **HINTS,
    TS_BACKWARDS: "more than FRACTAL_TS_TOLERANCE_MS older than an earlier tick of the symbol in the file: "
                  "sort the file by time",
}


class Report(Protocol):
    accepted: Counter[str]
    rejected: Counter[str]
    skipped: int
    quotes: int
    books: int
    notes: list[str]

    @property
    def total_accepted(self) -> int: ...

    @property
    def total_rejected(self) -> int: ...


def rejection_lines(rejected: Counter[str], hints: dict[str, str]) -> list[str]:
    """``rejected N`` and one line per reason with its count and what to do about it."""
    lines = [f"rejected {sum(rejected.values())}"]
    lines += [f"  {reason}: {n}" + (f"  ({hints[reason]})" if reason in hints else "")
              for reason, n in sorted(rejected.items())]
    return lines


def common_lines(report: Report, hints: dict[str, str]) -> list[str]:
    """Per-symbol ticks, rejections, skipped records, quotes and books."""
    return [
        *(f"  {symbol}: {n}" for symbol, n in sorted(report.accepted.items())),
        *rejection_lines(report.rejected, hints),
        f"skipped {report.skipped} records already stored or rejected by an earlier run of the same content",
        f"order-book snapshots {report.books}, quotes {report.quotes}",
    ]


def exit_code(report: Report) -> int:
    """0 when something was stored, or everything was found stored already; else NOTHING_STORED."""
    stored = report.total_accepted or report.quotes or report.books
    already = report.skipped and not report.total_rejected
    return 0 if stored or already else NOTHING_STORED


def nothing_stored(report: Report, source: str) -> str:
    """The one line saying why a run stored nothing."""
    if report.total_rejected:
        return f"nothing stored from {source}: every new record was rejected (reasons above)"
    return f"nothing stored from {source}: it holds no records"


def nothing_new(report: Report, source: str) -> str:
    """The line saying that a run found every record handled before ('' when it did not)."""
    if report.skipped and not (report.total_accepted or report.total_rejected or report.quotes or report.books):
        return f"nothing new in {source}: all {report.skipped} records were stored or rejected by an earlier run"
    return ""
