"""Jobs, the hot-tier sensor and the schedules that keep the assets up to date."""

import json
from datetime import timedelta, timezone

from dagster import (
    AddDynamicPartitionsRequest,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    schedule,
    sensor,
)

from fractal_assets.assets.bars import BAR_ASSETS
from fractal_assets.assets.maintenance import warm_retention
from fractal_assets.assets.ticks import raw_ticks
from fractal_assets.hot.store import EntrySpan, utc_days
from fractal_assets.partitions import SymbolDay, symbol_partitions
from fractal_assets.resources import HotTierResource

CLOSE_GRACE_MS = 60_000
"""A day counts as closed once the symbol's newest tick is this far past midnight."""

tick_pipeline_job = define_asset_job(
    "tick_pipeline",
    selection=AssetSelection.assets(raw_ticks, *BAR_ASSETS),
    description="Archive a symbol-day of ticks and build its bars.",
)

warm_retention_job = define_asset_job("warm_retention_job", selection=AssetSelection.assets(warm_retention))


def closed_days(spans: list[EntrySpan], newest_ts: int) -> tuple[set[str], bytes | None]:
    """Days touched by the entries that are closed, and the id of the last entry all of
    whose days are closed (the sensor's next cursor for the symbol)."""
    days: set[str] = set()
    through = None
    for span in spans:
        touched = utc_days(span.t0, span.t1)
        if any(_day_end(d) + CLOSE_GRACE_MS > newest_ts for d in touched):
            break
        days.update(touched)
        through = span.entry_id
    return days, through


def _day_end(date: str) -> int:
    return SymbolDay("X", date).end


@sensor(job=tick_pipeline_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def hot_tier_sensor(context: SensorEvaluationContext, hot: HotTierResource) -> SensorResult:
    """Registers new symbols and requests runs for symbol-days whose data is closed and new.

    The cursor holds, per symbol, the last stream entry already handed to a
    run; run keys name that entry, so a day is never requested twice for the
    same data.
    """
    store = hot.store()
    cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    symbols = store.symbols()
    known = set(context.instance.get_dynamic_partitions(symbol_partitions.name))
    requests = []
    for symbol in symbols:
        start = cursor.get(symbol)
        spans = store.entry_spans(symbol, min_id=f"({start}" if start else "-")
        if not spans:
            continue
        days, through = closed_days(spans, max(s.t1 for s in spans))
        if through is None:
            continue
        for date in sorted(days):
            key = SymbolDay(symbol, date).key
            requests.append(RunRequest(run_key=f"{symbol}|{date}|{through.decode()}", partition_key=key))
        cursor[symbol] = through.decode()
    new_symbols = sorted(set(symbols) - known)
    return SensorResult(
        run_requests=requests,
        cursor=json.dumps(cursor),
        dynamic_partitions_requests=[AddDynamicPartitionsRequest(symbol_partitions.name, new_symbols)] if new_symbols else [],
    )


@schedule(
    job=tick_pipeline_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def finalize_yesterday(context: ScheduleEvaluationContext):
    """After midnight UTC, rebuild yesterday for every symbol, late ticks included."""
    yesterday = (context.scheduled_execution_time.astimezone(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    for symbol in context.instance.get_dynamic_partitions(symbol_partitions.name):
        yield RunRequest(run_key=f"finalize|{symbol}|{yesterday}", partition_key=SymbolDay(symbol, yesterday).key)


@schedule(
    job=warm_retention_job,
    cron_schedule="45 0 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def nightly_retention(context: ScheduleEvaluationContext):
    """Prune the warm tier after the day's partitions are final."""
    return RunRequest(run_key=f"retention|{context.scheduled_execution_time.date()}")
