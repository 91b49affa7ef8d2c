"""Partitions of the tick-derived assets: UTC date x symbol."""

from __future__ import annotations

from dagster import (
    AssetExecutionContext,
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from fractal_assets.config import env_value
from fractal_assets.market.calendar import SymbolDay

symbol_partitions = DynamicPartitionsDefinition(name="symbol")
"""Symbols are added when ingest or import first sees them."""

date_partitions = DailyPartitionsDefinition(start_date=env_value("FRACTAL_START_DATE"), timezone="UTC", end_offset=1)
"""UTC calendar days; ``end_offset=1`` includes today, so live data can be built before midnight."""

tick_partitions = MultiPartitionsDefinition({"date": date_partitions, "symbol": symbol_partitions})


def partition_key(day: SymbolDay) -> MultiPartitionKey:
    """The Dagster partition of a symbol-day."""
    return MultiPartitionKey({"date": day.date, "symbol": day.symbol})


def symbol_day(context: AssetExecutionContext) -> SymbolDay:
    """The partition a run is materializing."""
    keys = context.partition_key.keys_by_dimension
    return SymbolDay(symbol=keys["symbol"], date=keys["date"])
