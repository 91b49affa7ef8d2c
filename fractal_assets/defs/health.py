"""Health and metrics of the hot tier inside Dagster: a check that fails in the UI when the
deployment is unhealthy, and observations of the ingest metrics on ``hot_ticks``."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetObservation,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MetadataValue,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    asset_check,
    define_asset_job,
    sensor,
)

from fractal_assets.defs.assets.hot import hot_ticks
from fractal_assets.defs.resources import HotTierResource
from fractal_assets.ops.health import check_health, status


def _metadata(values: dict) -> dict[str, MetadataValue]:
    return {k: MetadataValue.text(str(v)) if not isinstance(v, (int, float)) or isinstance(v, bool)
            else MetadataValue.float(float(v)) for k, v in values.items() if v is not None}


@asset_check(asset=hot_ticks.key, description="Redis reachable, SQLite readable, cold tier writable, tick lag and "
             "archive backlog within their configured limits.")
def hot_tier_health(hot: HotTierResource) -> AssetCheckResult:
    health = check_health(hot.config())
    return AssetCheckResult(
        passed=health.healthy, severity=AssetCheckSeverity.ERROR,
        metadata={**_metadata({k: v for k, v in health.as_dict().items() if k != "problems"}),
                  "problems": MetadataValue.md("\n".join(f"- {p}" for p in health.problems) or "none")},
    )


health_job = define_asset_job("health_check", selection=AssetSelection.checks(hot_tier_health))

health_schedule = ScheduleDefinition(
    job=health_job, cron_schedule="*/5 * * * *", execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)


@sensor(minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING)
def hot_tier_metrics(context: SensorEvaluationContext, hot: HotTierResource) -> SensorResult:
    """Records the ingest metrics (latency percentiles, throughput, memory, backlog) as an
    observation of ``hot_ticks``, so they chart over time in the UI."""
    report = status(hot.config())
    metadata: dict = {"cache_hit_rate": report["cache_hit_rate"]}
    for process in report["ingest"]:
        metadata.update({f"ingest_{k}": float(v) for k, v in process.items() if k not in ("pid",) and v != "nan"})
    for symbol, row in report["symbols"].items():
        metadata.update({f"{symbol}_{k}": v for k, v in row.items()})
    return SensorResult(asset_events=[AssetObservation(asset_key=hot_ticks.key, metadata=_metadata(metadata))])
