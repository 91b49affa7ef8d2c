"""Jobs, the hot-tier sensor and the schedules that keep the assets up to date.

Schedules rather than declarative automation: each has an explicit cadence, works with the
dynamic ``date`` partitions (``AutomationCondition.on_cron`` treats a non-time-partitioned
asset as all of its partitions) and runs by default, where the automation-condition sensor
starts stopped.
"""

import hashlib
import json
from collections import defaultdict
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
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from fractal_assets.config import env_value
from fractal_assets.defs.assets.maintenance import cold_compaction, warm_retention
from fractal_assets.defs.assets.pipeline import build_days_asset
from fractal_assets.defs.partitions import date_partitions, in_range
from fractal_assets.defs.resources import HotTierResource
from fractal_assets.hot.store import EntrySpan, utc_days
from fractal_assets.market.calendar import DAY_MS, day_start_ms

CLOSE_GRACE_MS = 60_000
"""A day counts as closed once the symbol's newest tick is this far past midnight."""

tick_pipeline_job = define_asset_job(
    "tick_pipeline",
    selection=AssetSelection.assets(build_days_asset),
    description="Archive the ticks of a date's symbols and build their bars and indicators.",
)

warm_retention_job = define_asset_job("warm_retention_job", selection=AssetSelection.assets(warm_retention))
cold_compaction_job = define_asset_job("cold_compaction_job", selection=AssetSelection.assets(cold_compaction))


def intraday_cron(minutes: int) -> str:
    """A cron schedule every ``minutes`` minutes, aligned to the hour."""
    if minutes < 1 or 60 % minutes:
        raise ValueError(f"FRACTAL_INTRADAY_MINUTES must divide 60, not {minutes}")
    return f"*/{minutes} * * * *"


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
    """Registers the dates of new hot-tier data and requests a run per closed date with new data.

    The cursor holds, per symbol, the last stream entry whose days were all
    closed and requested. Entries after it are read again until their days
    close; a date's run key names the newest entry touching it of every
    symbol, so a date is requested again only when new data for it arrived.
    """
    store = hot.store()
    cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    seen: set[str] = set()
    newest: dict[str, list[str]] = defaultdict(list)
    for symbol in store.symbols():
        start = cursor.get(symbol)
        spans = store.entry_spans(symbol, min_id=f"({start}" if start else "-")
        if not spans:
            continue
        seen.update(d for span in spans for d in utc_days(span.t0, span.t1))
        days, through = closed_days(spans, max(s.t1 for s in spans))
        for date, entry in days.items():
            newest[date].append(f"{symbol}:{entry.decode()}")
        if through is not None:
            cursor[symbol] = through.decode()
    known = set(context.instance.get_dynamic_partitions(date_partitions.name))
    new_dates = sorted(d for d in seen - known if in_range(d))
    requests = [
        RunRequest(run_key=f"{date}|{hashlib.sha1(','.join(sorted(marks)).encode()).hexdigest()[:16]}",
                   partition_key=date)
        for date, marks in sorted(newest.items()) if in_range(date)
    ]
    return SensorResult(
        run_requests=requests,
        cursor=json.dumps(cursor),
        dynamic_partitions_requests=[AddDynamicPartitionsRequest(date_partitions.name, new_dates)] if new_dates else [],
    )


def _utc_date(context: ScheduleEvaluationContext, days_back: int = 0) -> str:
    return (context.scheduled_execution_time.astimezone(timezone.utc) - timedelta(days=days_back)).strftime("%Y-%m-%d")


@schedule(
    job=tick_pipeline_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def finalize_yesterday(context: ScheduleEvaluationContext):
    """After midnight UTC, rebuild yesterday for every symbol, late ticks included."""
    yesterday = _utc_date(context, days_back=1)
    if not context.instance.has_dynamic_partition(date_partitions.name, yesterday):
        return SkipReason(f"no data of {yesterday}")
    return RunRequest(run_key=f"finalize|{yesterday}", partition_key=yesterday)


@schedule(
    job=tick_pipeline_job,
    cron_schedule=intraday_cron(int(env_value("FRACTAL_INTRADAY_MINUTES"))),
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def intraday(context: ScheduleEvaluationContext):
    """Every FRACTAL_INTRADAY_MINUTES, archive today's new hot-tier records as a part file,
    trim Redis to its retention and rebuild today's bars and indicators, so the warm tier
    lags the feed by at most the interval. Today counts once the sensor has registered it."""
    today = _utc_date(context)
    if not context.instance.has_dynamic_partition(date_partitions.name, today):
        return SkipReason(f"no data of {today} registered yet")
    return RunRequest(run_key=f"intraday|{context.scheduled_execution_time.isoformat()}", partition_key=today)


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
