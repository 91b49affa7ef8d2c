"""UTC days as epoch-millisecond windows: the time axis every tier partitions by."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_MS = 86_400_000


@dataclass(frozen=True)
class SymbolDay:
    """A symbol's UTC day as an epoch-ms window [start, end): the unit of archiving and bars."""

    symbol: str
    date: str

    @property
    def start(self) -> int:
        return day_start_ms(self.date)

    @property
    def end(self) -> int:
        return self.start + DAY_MS


def day_start_ms(date: str) -> int:
    """Epoch ms of midnight UTC starting a date (YYYY-MM-DD)."""
    return int(np.datetime64(date, "D").astype("M8[ms]").astype(np.int64))


def date_of(ts_ms: int) -> str:
    """UTC date (YYYY-MM-DD) of an epoch-ms timestamp."""
    return str(np.datetime64(int(ts_ms), "ms").astype("M8[D]"))
