"""The Dagster code location: ``fractal_assets.definitions:defs``.

Every job runs in process (one process per run, not per step): a run launched by the
sensor, a schedule or a UI backfill costs what ``fractal materialize`` does.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from fractal_assets.defs.assets.hot import HOT_TIER_SPECS
from fractal_assets.defs.assets.maintenance import cold_compaction, warm_retention
from fractal_assets.defs.assets.pipeline import build_days_asset
from fractal_assets.defs.automation import (
    cold_compaction_job,
    finalize_yesterday,
    hot_tier_sensor,
    intraday,
    nightly_compaction,
    nightly_retention,
    tick_pipeline_job,
    warm_retention_job,
)
from fractal_assets.defs.health import health_job, health_schedule, hot_tier_health, hot_tier_metrics
from fractal_assets.defs.resources import resources_from_env

defs = Definitions(
    assets=[*HOT_TIER_SPECS, build_days_asset, warm_retention, cold_compaction],
    asset_checks=[hot_tier_health],
    jobs=[tick_pipeline_job, warm_retention_job, cold_compaction_job, health_job],
    sensors=[hot_tier_sensor, hot_tier_metrics],
    schedules=[finalize_yesterday, intraday, nightly_retention, nightly_compaction, health_schedule],
    resources=resources_from_env(),
    executor=in_process_executor,
)
