"""Housekeeping assets: warm-tier retention and cold-tier compaction."""

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from fractal_assets.cold.compaction import compact_all
from fractal_assets.defs.assets.pipeline import BARS, WARM_POOL
from fractal_assets.defs.metadata import markdown_table
from fractal_assets.defs.resources import ColdTierResource, WarmTierResource
from fractal_assets.warm.retention import prune_bars, prune_derived


@asset(
    deps=[spec.key for spec in BARS],
    group_name="maintenance",
    kinds={"sqlite", "parquet"},
    pool=WARM_POOL,
    description="Moves bars older than the warm window (30 days before each symbol's newest bar) to "
    "{cold_dir}/bars/timeframe=/symbol=/date= Parquet, then deletes them from SQLite; deletes indicator and "
    "microstructure rows older than the window.",
)
def warm_retention(context: AssetExecutionContext, warm: WarmTierResource, cold: ColdTierResource) -> MaterializeResult:
    with warm.connection() as conn:
        pruned = prune_bars(conn, cold.store(), warm.keep_days)
        derived = prune_derived(conn, warm.keep_days)
    frame = pd.DataFrame([p.__dict__ for p in pruned], columns=["symbol", "timeframe", "rows", "cutoff"])
    return MaterializeResult(metadata={
        "rows_moved": MetadataValue.int(int(frame["rows"].sum())),
        "moved": markdown_table(frame, rows=50),
        **{f"{table}_deleted": MetadataValue.int(n) for table, n in derived.items()},
    })


@asset(
    group_name="maintenance",
    kinds={"parquet"},
    pool=WARM_POOL,
    description="Merges the part files of every cold-tier partition that has more than part-0 (intraday "
    "archive runs append parts) into one part-0 (cold.compaction), and on an object store deletes the superseded "
    "generations of every part (cold.store). In the pool of the pipeline, whose runs append parts, so the "
    "two never write one partition at once.",
)
def cold_compaction(context: AssetExecutionContext, cold: ColdTierResource) -> MaterializeResult:
    store = cold.store()
    merged = compact_all(store)
    frame = pd.DataFrame({"partition": [store.uri(d) for d in merged], "parts_merged": list(merged.values())})
    return MaterializeResult(metadata={
        "partitions_compacted": MetadataValue.int(len(merged)),
        "superseded_objects_deleted": MetadataValue.int(store.sweep()),
        "compacted": markdown_table(frame, rows=50),
    })
