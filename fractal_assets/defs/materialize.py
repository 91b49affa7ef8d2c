"""Running the tick pipeline outside the UI: ``fractal materialize``, the demo, the bench and tests.

Runs are ranged, as the backfill daemon makes them: up to FRACTAL_DAYS_PER_RUN dates in
one in-process run, tagged with the first and last key of the range, on the same instance
the UI reads (DAGSTER_HOME, default ``{data_dir}/dagster``).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from dagster import ConfigurableResource, DagsterInstance, materialize
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._core.utils import make_new_backfill_id

from fractal_assets import filemodes
from fractal_assets.cold.archive import stored_dates, stored_symbols
from fractal_assets.cold.store import ColdStore
from fractal_assets.config import Config, env_value
from fractal_assets.defs.assets.pipeline import build_days_asset
from fractal_assets.defs.partitions import date_partitions, in_range, register_dates
from fractal_assets.hot.store import HotStore, utc_days
from fractal_assets.market.calendar import SymbolDay

INSTANCE_TEMPLATE = Path(__file__).with_name("dagster.yaml")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
"""Runs started here log only warnings to the console; the UI keeps every event."""


def partitions_with_data(store: HotStore, cold: ColdStore) -> list[SymbolDay]:
    """Every symbol-day with ticks in the hot tier or already in the cold tier."""
    days = set()
    for symbol in store.symbols():
        for span in store.entry_spans(symbol):
            days.update(SymbolDay(symbol, d) for d in utc_days(span.t0, span.t1))
    for symbol in stored_symbols(cold):
        days.update(SymbolDay(symbol, d) for d in stored_dates(cold, symbol))
    return sorted((d for d in days if in_range(d.date)), key=lambda d: (d.symbol, d.date))


def cli_instance(config: Config) -> DagsterInstance:
    """The instance at ``dagster_home``, its dagster.yaml written from the template when missing.

    Two commands starting at once on a new home would both create its SQLite schemas
    (and one fail): the first creates them under a file lock, the second then finds them.
    """
    home = config.dagster_home
    filemodes.make_dirs(home)
    with open(home / ".fractal-create.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / "dagster.yaml").exists():
            (home / "dagster.yaml.tmp").unlink(missing_ok=True)
            filemodes.write_file(home / "dagster.yaml.tmp", INSTANCE_TEMPLATE.read_bytes())
            os.replace(home / "dagster.yaml.tmp", home / "dagster.yaml")
        instance = DagsterInstance.from_config(str(home))
        instance.get_dynamic_partitions(date_partitions.name)
        instance.get_runs(limit=1)
    return instance


def date_batches(order: list[str], wanted: set[str], size: int) -> list[list[str]]:
    """The wanted dates as ranges of consecutive keys in the partitions' stored order (a
    ranged run covers every key between its first and last), each at most ``size`` long."""
    batches: list[list[str]] = []
    run: list[str] = []
    for key in order:
        if key in wanted and len(run) < size:
            run.append(key)
            continue
        if run:
            batches.append(run)
        run = [key] if key in wanted else []
    if run:
        batches.append(run)
    return batches


@dataclass(frozen=True)
class RunOutcome:
    """One run of ``materialize_dates``: what it built and whether it succeeded."""

    run_id: str
    dates: list[str]
    success: bool
    symbol_days: int
    ticks: int
    bars: int
    seconds: float
    error: str

    def line(self) -> str:
        """The CLI's progress line."""
        span = self.dates[0] if len(self.dates) == 1 else f"{min(self.dates)}..{max(self.dates)}"
        status = "ok" if self.success else f"FAILED: {self.error}"
        return (f"run {self.run_id[:8]} {span} ({len(self.dates)} dates): {self.symbol_days} symbol-days, "
                f"{self.ticks} ticks, {self.bars} bars, {self.seconds:.1f} s, {status}")


def _outcome(result, dates: list[str], seconds: float) -> RunOutcome:
    values: dict[str, int] = {"symbol_days": 0, "ticks": 0, "bars": 0}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        name = materialization.asset_key.to_user_string()
        if name == "raw_ticks":
            values["symbol_days"], values["ticks"] = metadata["symbol_days"], metadata["ticks"]
        elif name.startswith("bars_"):
            values["bars"] += metadata["rows"]
    failures = [e.event_specific_data.error.message.strip().splitlines()[0]
                for e in result.all_events if e.is_step_failure and e.event_specific_data.error]
    return RunOutcome(result.run_id, dates, result.success, seconds=seconds, error="; ".join(failures), **values)


def materialize_dates(
    dates: Iterable[str],
    instance: DagsterInstance,
    resources: dict[str, ConfigurableResource],
    symbols: list[str] | None = None,
    days_per_run: int | None = None,
    on_run: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Register the dates and build them in ranged runs of at most ``days_per_run`` dates
    (FRACTAL_DAYS_PER_RUN); only the given symbols when named."""
    wanted = set(dates)
    register_dates(instance, wanted)
    size = days_per_run or int(env_value("FRACTAL_DAYS_PER_RUN"))
    run_config = {**QUIET, "ops": {build_days_asset.op.name: {"config": {"symbols": symbols or []}}}}
    outcomes = []
    for batch in date_batches(instance.get_dynamic_partitions(date_partitions.name), wanted, size):
        started = time.perf_counter()
        result = materialize(
            [build_days_asset], instance=instance, resources=resources, raise_on_error=False, run_config=run_config,
            tags={ASSET_PARTITION_RANGE_START_TAG: batch[0], ASSET_PARTITION_RANGE_END_TAG: batch[-1],
                  "fractal/source": "fractal materialize"},
        )
        outcomes.append(_outcome(result, batch, time.perf_counter() - started))
        if on_run:
            on_run(outcomes[-1])
    return outcomes


def submit_backfill(dates: Iterable[str], instance: DagsterInstance) -> str:
    """Register the dates and submit a backfill of the whole pipeline over them, as the UI
    does: the daemon forms ranged runs of FRACTAL_DAYS_PER_RUN dates and launches them through
    the run queue. Returns the backfill's id."""
    from fractal_assets.definitions import defs

    dates = sorted(set(dates))
    register_dates(instance, dates)
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(), asset_graph=defs.resolve_asset_graph(), partition_names=dates,
        asset_selection=list(build_days_asset.keys), backfill_timestamp=time.time(),
        tags={"fractal/source": "fractal materialize --daemon"}, dynamic_partitions_store=instance,
        all_partitions=False, title=f"fractal materialize {dates[0]}..{dates[-1]}" if dates else "fractal materialize",
        description=None, run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def materialize_days(
    days: Iterable[SymbolDay], instance: DagsterInstance, resources: dict[str, ConfigurableResource],
) -> list[RunOutcome]:
    """Build every date the symbol-days fall on (all their symbols); returns the failed runs."""
    return [o for o in materialize_dates({d.date for d in days}, instance, resources) if not o.success]
