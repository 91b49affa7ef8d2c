"""Materializing tick-pipeline partitions outside the UI: the demo, the CLI and tests."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from dagster import AssetMaterialization, ConfigurableResource, DagsterInstance, materialize

from fractal_assets.cold.store import ColdStore
from fractal_assets.defs.assets.bars import BAR_ASSETS
from fractal_assets.defs.assets.indicators import INDICATOR_ASSETS
from fractal_assets.defs.assets.ticks import raw_ticks
from fractal_assets.defs.partitions import partition_key, symbol_partitions
from fractal_assets.hot.store import HotStore, utc_days
from fractal_assets.market.calendar import SymbolDay

PIPELINE = [raw_ticks, *BAR_ASSETS, *INDICATOR_ASSETS]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
"""Runs started here log only warnings to the console; the UI keeps every event."""


def partitions_with_data(store: HotStore, cold: ColdStore) -> list[SymbolDay]:
    """Every symbol-day with ticks in the hot tier or already in the cold tier."""
    days = set()
    for symbol in store.symbols():
        for span in store.entry_spans(symbol):
            days.update(SymbolDay(symbol, d) for d in utc_days(span.t0, span.t1))
    for symbol_dir in cold.names(cold.join("ticks")):
        for date_dir in cold.names(cold.join("ticks", symbol_dir)):
            if symbol_dir.startswith("symbol=") and date_dir.startswith("date="):
                days.add(SymbolDay(symbol_dir.removeprefix("symbol="), date_dir.removeprefix("date=")))
    return sorted(days, key=lambda d: (d.symbol, d.date))


def instance_from_env() -> DagsterInstance:
    """The instance under DAGSTER_HOME (created when missing), else an ephemeral one."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return DagsterInstance.ephemeral()
    Path(home).mkdir(parents=True, exist_ok=True)
    return DagsterInstance.get()


def register_symbols(instance: DagsterInstance, symbols: Iterable[str]) -> None:
    """Add symbols missing from the dynamic ``symbol`` partitions."""
    known = set(instance.get_dynamic_partitions(symbol_partitions.name))
    new = sorted(set(symbols) - known)
    if new:
        instance.add_dynamic_partitions(symbol_partitions.name, new)


def record_imported(instance: DagsterInstance, days: list[SymbolDay]) -> None:
    """Tell Dagster that imported ``raw_ticks`` partitions exist, so backfills of the bars
    see them as materialized."""
    register_symbols(instance, {d.symbol for d in days})
    for day in days:
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key=raw_ticks.key, partition=partition_key(day), description="fractal import")
        )


def materialize_days(
    days: Iterable[SymbolDay],
    instance: DagsterInstance,
    resources: dict[str, ConfigurableResource],
) -> list[SymbolDay]:
    """Run the tick pipeline for each symbol-day; returns the days whose run failed."""
    days = list(days)
    register_symbols(instance, {d.symbol for d in days})
    failed = []
    for day in days:
        result = materialize(
            PIPELINE, partition_key=partition_key(day), instance=instance,
            resources=resources, raise_on_error=False, run_config=QUIET,
            tags={"fractal/source": "fractal materialize"},
        )
        if not result.success:
            failed.append(day)
    return failed
