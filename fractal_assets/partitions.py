"""Partitions of the tick-derived assets: UTC date x symbol."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from dagster import (
    AssetExecutionContext,
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from fractal_assets.config import env_value

DAY_MS = 86_400_000

symbol_partitions = DynamicPartitionsDefinition(name="symbol")
"""Symbols are added when ingest or import first sees them."""

date_partitions = DailyPartitionsDefinition(start_date=env_value("FRACTAL_START_DATE"), timezone="UTC", end_offset=1)
"""UTC calendar days; ``end_offset=1`` includes today, so live data can be built before midnight."""

tick_partitions = MultiPartitionsDefinition({"date": date_partitions, "symbol": symbol_partitions})


@dataclass(frozen=True)
class SymbolDay:
    """One partition: a symbol's UTC day as an epoch-ms window [start, end)."""

    symbol: str
    date: str

    @property
    def start(self) -> int:
        return day_start_ms(self.date)

    @property
    def end(self) -> int:
        return self.start + DAY_MS

    @property
    def key(self) -> MultiPartitionKey:
        return MultiPartitionKey({"date": self.date, "symbol": self.symbol})


def symbol_day(context: AssetExecutionContext) -> SymbolDay:
    """The partition a run is materializing."""
    keys = context.partition_key.keys_by_dimension
    return SymbolDay(symbol=keys["symbol"], date=keys["date"])


def day_start_ms(date: str) -> int:
    """Epoch ms of midnight UTC starting a date (YYYY-MM-DD)."""
    return int(np.datetime64(date, "D").astype("M8[ms]").astype(np.int64))


def date_of(ts_ms: int) -> str:
    """UTC date (YYYY-MM-DD) of an epoch-ms timestamp."""
    return str(np.datetime64(int(ts_ms), "ms").astype("M8[D]"))
