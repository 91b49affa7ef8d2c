"""The hot tier as external assets: written by the resident ingest process, not by Dagster,
but shown in the lineage graph as the source of everything downstream."""

from __future__ import annotations

from dagster import AssetSpec

GROUP = "hot_tier"

hot_ticks = AssetSpec(
    "hot_ticks",
    description="Redis streams tick:{SYMBOL}: msgpack micro-batches of validated ticks, last 2 h per symbol "
    "(longer until archived).",
    group_name=GROUP,
    kinds={"redis"},
)
hot_order_books = AssetSpec(
    "hot_order_books",
    description="Redis streams ob:{SYMBOL}: top-10 order-book snapshots every 100 ms (event time).",
    group_name=GROUP,
    kinds={"redis"},
)
hot_indicators = AssetSpec(
    "hot_indicators",
    description="Redis keys ind:{SYMBOL}:{indicator}:{timeframe}: real-time indicator values refreshed every N ticks.",
    group_name=GROUP,
    kinds={"redis"},
    deps=[hot_ticks, hot_order_books],
)

HOT_TIER_SPECS = [hot_ticks, hot_order_books, hot_indicators]
