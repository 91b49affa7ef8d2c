"""What a run of ``fractal ingest`` or ``fractal import`` tells its user: counts, the fix for each
kind of rejection where there is one, and whether anything was stored (the exit code)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from fractal_assets.ingest.validation import (
    BAD_PRICE,
    BAD_QUOTE,
    BAD_SIDE,
    BAD_SYMBOL,
    BAD_VOLUME,
    PRICE_OUT_OF_RANGE,
    TS_BACKWARDS,
    TS_OUT_OF_RANGE,
    UNPARSEABLE,
    VOLUME_OUT_OF_RANGE,
)
from fractal_assets.market.symbols import SYMBOL_GRAMMAR

NOTHING_STORED = 1
"""Exit code of a run that accepted no record and did not find them all stored already."""

HINTS = {
    UNPARSEABLE: "rows that are not records of the format (each is in deadletter:ticks with its original line)",
    BAD_PRICE: "prices must be finite and > 0",
    BAD_VOLUME: "volumes must be finite and >= 0",
    BAD_SIDE: "sides must be 1/-1, buy/sell or empty",
    BAD_SYMBOL: f"symbols must match {SYMBOL_GRAMMAR} after upper-casing",
    PRICE_OUT_OF_RANGE: "prices above FRACTAL_MAX_PRICE: raise it if such prices are real",
    VOLUME_OUT_OF_RANGE: "volumes above FRACTAL_MAX_VOLUME: raise it if such volumes are real",
    TS_OUT_OF_RANGE: "times before 1970 or more than a day ahead: if the unit read above is wrong, pass --ts-unit",
    BAD_QUOTE: "quotes need a valid symbol and 0 < bid <= ask <= FRACTAL_MAX_PRICE",
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


@dataclass
class RunCounts:
    """What a run of ingest or import counted, as its summary reports it."""

    accepted: Counter[str] = field(default_factory=Counter)
    """Ticks stored per symbol."""
    rejected: Counter[str] = field(default_factory=Counter)
    """Rejections per reason (each dead-lettered)."""
    skipped: int = 0
    """Records an earlier run of the same content had stored or rejected."""
    quotes: int = 0
    books: int = 0
    notes: list[str] = field(default_factory=list)
    """What the feed found out about the file (e.g. the unit of its timestamps)."""

    @property
    def total_accepted(self) -> int:
        return sum(self.accepted.values())

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())


def rejection_lines(rejected: Counter[str], hints: dict[str, str]) -> list[str]:
    """``rejected N`` and one line per reason with its count and what to do about it."""
    lines = [f"rejected {sum(rejected.values())}"]
    lines += [f"  {reason}: {n}" + (f"  ({hints[reason]})" if reason in hints else "")
              for reason, n in sorted(rejected.items())]
    return lines


def common_lines(report: RunCounts, hints: dict[str, str]) -> list[str]:
    """Per-symbol ticks, rejections, skipped records, quotes and books."""
    return [
        *(f"  {symbol}: {n}" for symbol, n in sorted(report.accepted.items())),
        *rejection_lines(report.rejected, hints),
        f"skipped {report.skipped} records already stored or rejected by an earlier run of the same content",
        f"order-book snapshots {report.books}, quotes {report.quotes}",
    ]


def exit_code(report: RunCounts) -> int:
    """0 when something was stored, or everything was found stored already; else NOTHING_STORED."""
    stored = report.total_accepted or report.quotes or report.books
    already = report.skipped and not report.total_rejected
    return 0 if stored or already else NOTHING_STORED


def nothing_stored(report: RunCounts, source: str) -> str:
    """The one line saying why a run stored nothing."""
    if report.total_rejected:
        return f"nothing stored from {source}: every new record was rejected (reasons above)"
    return f"nothing stored from {source}: it holds no records"


def nothing_new(report: RunCounts, source: str) -> str:
    """The line saying that a run found every record handled before ('' when it did not)."""
    if report.skipped and not (report.total_accepted or report.total_rejected or report.quotes or report.books):
        return f"nothing new in {source}: all {report.skipped} records were stored or rejected by an earlier run"
    return ""
