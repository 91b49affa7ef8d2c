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

from fractal_assets.defs.assets.bars import BAR_ASSETS
from fractal_assets.defs.assets.indicators import INDICATOR_ASSETS
from fractal_assets.defs.assets.maintenance import cold_compaction, warm_retention
from fractal_assets.defs.assets.ticks import raw_ticks
from fractal_assets.defs.partitions import partition_key, symbol_partitions
from fractal_assets.defs.resources import HotTierResource
from fractal_assets.hot.store import EntrySpan, utc_days
from fractal_assets.market.calendar import DAY_MS, SymbolDay, day_start_ms

CLOSE_GRACE_MS = 60_000
"""A day counts as closed once the symbol's newest tick is this far past midnight."""

tick_pipeline_job = define_asset_job(
    "tick_pipeline",
    selection=AssetSelection.assets(raw_ticks, *BAR_ASSETS, *INDICATOR_ASSETS),
    description="Archive a symbol-day of ticks and build its bars and indicators.",
)

warm_retention_job = define_asset_job("warm_retention_job", selection=AssetSelection.assets(warm_retention))
cold_compaction_job = define_asset_job("cold_compaction_job", selection=AssetSelection.assets(cold_compaction))


def closed_days(spans: list[EntrySpan], newest_ts: int) -> tuple[dict[str, bytes], bytes | None]:
    """Closed days touched by the entries, each with the newest entry touching it, and the
    id of the last entry before the first one that touches an open day (the next cursor)."""
    days: dict[str, bytes] = {}
    through, blocked = None, False
    for span in spans:
        touched = utc_days(span.t0, span.t1)
        open_day = [day_start_ms(d) + DAY_MS + CLOSE_GRACE_MS > newest_ts for d in touched]
        days.update({d: span.entry_id for d, is_open in zip(touched, open_day) if not is_open})
        blocked = blocked or any(open_day)
        if not blocked:
            through = span.entry_id
    return days, through


@sensor(job=tick_pipeline_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def hot_tier_sensor(context: SensorEvaluationContext, hot: HotTierResource) -> SensorResult:
    """Registers new symbols and requests runs for symbol-days whose data is closed and new.

    The cursor holds, per symbol, the last stream entry whose days were all
    closed and requested. Entries after it are read again until their days
    close; run keys name the newest entry touching the day, so a day is
    requested again only when new data for it arrived.
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
        for date, newest_entry in sorted(days.items()):
            key = partition_key(SymbolDay(symbol, date))
            requests.append(RunRequest(run_key=f"{symbol}|{date}|{newest_entry.decode()}", partition_key=key))
        if through is not None:
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
        yield RunRequest(run_key=f"finalize|{symbol}|{yesterday}", partition_key=partition_key(SymbolDay(symbol, yesterday)))


@schedule(
    job=warm_retention_job,
    cron_schedule="45 0 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def nightly_retention(context: ScheduleEvaluationContext):
    """Prune the warm tier after the day's partitions are final."""
    return RunRequest(run_key=f"retention|{context.scheduled_execution_time.date()}")


@schedule(
    job=cold_compaction_job,
    cron_schedule="30 1 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def nightly_compaction(context: ScheduleEvaluationContext):
    """Compact the cold tier once the day's archives and retention exports are written."""
    return RunRequest(run_key=f"compaction|{context.scheduled_execution_time.date()}")
