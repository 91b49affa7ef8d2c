"""``raw_ticks``: each symbol-day of ticks archived to the cold tier."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from fractal_assets.cold.archive import archive_day
from fractal_assets.cold.parquet import read_ticks
from fractal_assets.defs.assets.hot import hot_ticks
from fractal_assets.defs.metadata import markdown_table, time_range
from fractal_assets.defs.partitions import symbol_day, tick_partitions
from fractal_assets.defs.resources import ColdTierResource, HotTierResource


@asset(
    partitions_def=tick_partitions,
    deps=[hot_ticks],
    group_name="cold_tier",
    kinds={"parquet"},
    description="A symbol's ticks of one UTC day as zstd Parquet, sorted by (ts, arrival sequence), "
    "at {cold_dir}/ticks/symbol=SYM/date=YYYY-MM-DD/part-0.parquet (on object stores part-0.gTIME.parquet).",
)
def raw_ticks(context: AssetExecutionContext, hot: HotTierResource, cold: ColdTierResource) -> MaterializeResult:
    day, store = symbol_day(context), cold.store()
    result = archive_day(hot.store(), store, day, hot.config().retention_ms)
    table = read_ticks(store, day.symbol, day.date)
    return MaterializeResult(metadata={
        "rows": MetadataValue.int(result.rows),
        "from_hot_tier": MetadataValue.int(result.from_hot),
        "previously_archived": MetadataValue.int(result.already_archived),
        "hot_entries_trimmed": MetadataValue.int(result.trimmed_entries),
        "quotes_archived": MetadataValue.int(result.quotes),
        "bytes": MetadataValue.int(store.size(result.path)),
        "path": MetadataValue.path(store.uri(result.path)),
        **time_range(table.column("ts").to_numpy()),
        "preview": markdown_table(table.slice(0, 10).to_pandas()),
    })
