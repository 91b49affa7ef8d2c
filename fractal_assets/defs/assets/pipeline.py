"""The tick pipeline as one Dagster step: ``raw_ticks`` -> ``bars_1m`` ... ``bars_1d`` ->
``microstructure``, ``williams_fractals``, ``hurst_exponent`` -> ``indicator_snapshot``.

The assets keep their own keys, lineage and checks, but one ``multi_asset`` materializes
them, so a run reads each symbol-day once and pays Dagster's per-step cost once. A run
covers one or more dates (a ranged run) and every symbol with data on them; its results
carry per-symbol-day rows, tick counts and check outcomes in their metadata, and one plot
per asset (the busiest symbol of the run's last date), since plots cost more than the work.
"""

import json
import sqlite3
from collections.abc import Iterator

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from dagster import Config as DagsterConfig

from fractal_assets.config import env_value
from fractal_assets.defs.assets.hot import hot_ticks
from fractal_assets.defs.metadata import markdown_table, png_markdown, time_range
from fractal_assets.defs.partitions import date_partitions
from fractal_assets.defs.plots import candlestick_png, fractal_png, microstructure_png, series_png
from fractal_assets.defs.resources import ColdTierResource, HotTierResource, WarmTierResource
from fractal_assets.market.bars import TIMEFRAMES
from fractal_assets.market.calendar import SymbolDay
from fractal_assets.pipeline import checks
from fractal_assets.pipeline.build import (
    BASE,
    BLOCKING_CHECKS,
    ROLLUP_CHECK,
    RunReport,
    Selection,
    Sources,
    build_days,
)
from fractal_assets.pipeline.indicators import (
    HURST_ROLLING_BARS,
    HURST_STEP_BARS,
    INDICATORS,
    MICRO_WINDOWS,
    fractal_window,
    rolling_hurst,
    snapshot_values,
)
from fractal_assets.warm.bars import read_bars
from fractal_assets.warm.indicators import read_microstructure

WARM_POOL = "warm_sqlite"
"""SQLite takes one writer at a time: its writers share this Dagster pool (limit 1 in
dagster.yaml), so two runs never build at once."""
TABLE_ROWS = 100
"""Per-symbol-day rows shown in a result's metadata table."""

RAW_TICKS = AssetSpec(
    "raw_ticks", deps=[hot_ticks], group_name="cold_tier", kinds={"parquet"},
    description="Each symbol's ticks of one UTC day as zstd Parquet at {cold_dir}/ticks/symbol=SYM/date=YYYY-MM-DD/: "
    "a run appends what the hot tier holds beyond the partition as part-N (the nightly compaction merges parts).",
)
BARS = [
    AssetSpec(f"bars_{tf}", deps=["raw_ticks"] if tf == BASE else ["raw_ticks", f"bars_{BASE}"], group_name="bars",
              kinds={"sqlite"}, description=f"{tf} OHLCV bars (buy/sell volume, tick count, VWAP) in fractal_bars, "
              "buckets aligned to the UTC epoch.")
    for tf in TIMEFRAMES
]
INDICATOR_SPECS = [
    AssetSpec("microstructure", deps=["raw_ticks"], group_name="indicators", kinds={"sqlite"}, skippable=True,
              description="Tick imbalance, order-flow ratio, bid-ask spread (quoted, or Roll-estimated without quotes), "
              "Kyle's lambda and VPIN per 5-minute window and per day, in fractal_microstructure."),
    AssetSpec("williams_fractals", deps=["bars_5m"], group_name="indicators", kinds={"sqlite"}, skippable=True,
              description="Bill Williams fractals (n=2, strict) on the last 30 days of 5m bars, in "
              "fractal_indicator_values (williams_fractal_up = the bar's high, williams_fractal_down = its low)."),
    AssetSpec("hurst_exponent", deps=["bars_1d", "bars_1m"], group_name="indicators", kinds={"sqlite"}, skippable=True,
              description="Hurst exponent (R/S and DFA on log returns) of the last 252 daily closes (timeframe 1d) "
              "and of the day's 1m closes (timeframe 1m), in fractal_indicator_values."),
    AssetSpec("indicator_snapshot", deps=["microstructure", "williams_fractals", "hurst_exponent"],
              group_name="indicators", kinds={"sqlite"}, skippable=True,
              description="One row per symbol-day (indicator 'indicator_snapshot', timeframe 1d) whose metadata JSON "
              "holds the day's closing value of every indicator; value = how many of them are defined."),
]
CHECKS = [
    AssetCheckSpec(name, asset=f"bars_{tf}", blocking=name in BLOCKING_CHECKS, description=checks.DESCRIPTIONS[name],
                   additional_deps=[f"bars_{BASE}"] if name == ROLLUP_CHECK else None)
    for tf in TIMEFRAMES for name in (*BLOCKING_CHECKS, *([ROLLUP_CHECK] if tf != BASE else []))
]


class PipelineConfig(DagsterConfig):
    """Run options; by default a run builds every symbol with data on its dates."""

    symbols: list[str] = []


def selection_of(context: AssetExecutionContext) -> Selection:
    """The part of the pipeline a (possibly subset) run builds."""
    keys = {k.to_user_string() for k in context.selected_asset_keys}
    return Selection(archive="raw_ticks" in keys, timeframes=tuple(tf for tf in TIMEFRAMES if f"bars_{tf}" in keys),
                     indicators=tuple(name for name in INDICATORS if name in keys))


@multi_asset(
    name="build_days",
    specs=[RAW_TICKS, *BARS, *INDICATOR_SPECS],
    check_specs=CHECKS,
    partitions_def=date_partitions,
    backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=int(env_value("FRACTAL_DAYS_PER_RUN"))),
    can_subset=True,
    pool=WARM_POOL,
    description="Archive, bars, checks and indicators of every symbol on the run's dates, each symbol-day read once.",
)
def build_days_asset(context: AssetExecutionContext, config: PipelineConfig, hot: HotTierResource,
                     warm: WarmTierResource, cold: ColdTierResource) -> Iterator[MaterializeResult]:
    selection = selection_of(context)
    with warm.connection() as conn:
        sources = Sources(hot.store() if selection.archive else None, cold.store(), conn, hot.config().retention_ms,
                          hot.config().ts_tolerance_ms, warm.vpin_days)
        report = build_days(sources, context.partition_keys, selection, config.symbols or None)
        context.log.info(f"{len(report.days)} symbol-days, {report.ticks} ticks, {report.bars} bars")
        showcase = showcase_day(report)
        if selection.archive:
            yield MaterializeResult(asset_key="raw_ticks", metadata=raw_ticks_metadata(report))
        for tf in selection.timeframes:
            checks = [check_result(tf, key.name, report) for key in context.selected_asset_check_keys
                      if key.asset_key == AssetKey(f"bars_{tf}")]
            yield MaterializeResult(asset_key=f"bars_{tf}", metadata=bars_metadata(conn, tf, report, showcase),
                                    check_results=checks)
        if report.failed:
            context.log.error(f"indicators not built: {len(report.failed)} symbol-days failed a blocking check")
            return
        for name in selection.indicators:
            yield MaterializeResult(asset_key=name, metadata=indicator_metadata(conn, name, report, showcase))


def showcase_day(report: RunReport) -> SymbolDay | None:
    """The run's plotted symbol-day: the busiest symbol of its last date."""
    if not report.days:
        return None
    last = max(d.date for d in report.days)
    busiest = max((d for d in report.days if d.date == last), key=lambda d: d.ticks)
    return SymbolDay(busiest.symbol, busiest.date)


def day_table(report: RunReport, **columns) -> MetadataValue:
    """One row per symbol-day with the given columns (name -> function of a DayReport)."""
    frame = pd.DataFrame([{"date": d.date, "symbol": d.symbol, **{k: f(d) for k, f in columns.items()}}
                          for d in report.days], columns=["date", "symbol", *columns])
    return markdown_table(frame, rows=TABLE_ROWS)


def span(report: RunReport) -> dict[str, MetadataValue]:
    dates = sorted({d.date for d in report.days})
    return {"symbol_days": MetadataValue.int(len(report.days)), "dates": MetadataValue.int(len(dates)),
            "first_date": MetadataValue.text(dates[0] if dates else ""),
            "last_date": MetadataValue.text(dates[-1] if dates else "")}


def raw_ticks_metadata(report: RunReport) -> dict:
    return {
        **span(report),
        "ticks": MetadataValue.int(report.ticks),
        "from_hot_tier": MetadataValue.int(sum(d.from_hot for d in report.days)),
        "previously_archived": MetadataValue.int(sum(d.already_archived for d in report.days)),
        "duplicates_dropped": MetadataValue.int(sum(d.duplicates for d in report.days)),
        "quotes": MetadataValue.int(sum(d.quotes for d in report.days)),
        "hot_entries_trimmed": MetadataValue.int(report.trimmed_entries),
        **time_range(np.array([t for d in report.days if d.ts_range for t in d.ts_range], dtype=np.int64)),
        "per_symbol_day": day_table(report, ticks=lambda d: d.ticks, from_hot=lambda d: d.from_hot,
                                    quotes=lambda d: d.quotes),
    }


def bars_metadata(conn: sqlite3.Connection, timeframe: str, report: RunReport, showcase: SymbolDay | None) -> dict:
    metadata = {
        **span(report),
        "rows": MetadataValue.int(sum(d.bars.get(timeframe, 0) for d in report.days)),
        "ticks": MetadataValue.int(report.ticks),
        "per_symbol_day": day_table(report, rows=lambda d: d.bars.get(timeframe, 0), ticks=lambda d: d.ticks),
    }
    if showcase:
        bars = read_bars(conn, showcase.symbol, timeframe, showcase.start, showcase.end)
        if len(bars):
            title = f"{showcase.symbol} {timeframe} {showcase.date}"
            metadata["candles"] = png_markdown(candlestick_png(bars, title), "candles")
    return metadata


def check_result(timeframe: str, name: str, report: RunReport) -> AssetCheckResult:
    """One result for the run: passed when every symbol-day passed; the failures listed."""
    outcomes = [(d, d.checks[(timeframe, name)]) for d in report.days if (timeframe, name) in d.checks]
    failed = [(d, details) for d, (ok, details) in outcomes if not ok]
    failures = pd.DataFrame([{"date": d.date, "symbol": d.symbol, "details": json.dumps(details)} for d, details in failed],
                            columns=["date", "symbol", "details"])
    return AssetCheckResult(
        asset_key=f"bars_{timeframe}", check_name=name, passed=not failed,
        severity=AssetCheckSeverity.ERROR if name in BLOCKING_CHECKS else AssetCheckSeverity.WARN,
        metadata={"symbol_days": len(outcomes), "failed": len(failed), "failures": markdown_table(failures, TABLE_ROWS)},
    )


def indicator_metadata(conn: sqlite3.Connection, name: str, report: RunReport, showcase: SymbolDay | None) -> dict:
    columns = {"rows": lambda d: d.indicators.get(name, 0)}
    if name == "microstructure":
        columns |= {"vpin_bucket_volume": lambda d: d.vpin_bucket_volume,
                    "vpin_unchained_days": lambda d: ", ".join(d.vpin_unchained)}
    metadata = {
        **span(report),
        "rows": MetadataValue.int(sum(d.indicators.get(name, 0) for d in report.days)),
        "per_symbol_day": day_table(report, **columns),
    }
    if showcase:
        metadata.update(PLOTS[name](conn, showcase))
    return metadata


def vpin_plot(conn: sqlite3.Connection, day: SymbolDay) -> dict:
    """The day's VPIN (NaN while its 50 buckets fill) above its order-flow ratio, per 5 minutes."""
    five = read_microstructure(conn, day.symbol, day.start, day.end, MICRO_WINDOWS["5m"])
    if five.empty:
        return {}
    plot = microstructure_png(five, f"{day.symbol} VPIN and order flow {day.date}")
    return {"vpin_plot": png_markdown(plot, "VPIN and order flow")}


def fractal_plot(conn: sqlite3.Connection, day: SymbolDay) -> dict:
    bars, up, down = fractal_window(conn, day)
    if not len(bars):
        return {}
    return {"fractal_plot": png_markdown(fractal_png(bars, up, down, f"{day.symbol} 5m fractals up to {day.date}"),
                                         "5m bars with fractals")}


def hurst_plot(conn: sqlite3.Connection, day: SymbolDay) -> dict:
    closes = read_bars(conn, day.symbol, "1m", day.start, day.end)
    rolling = {m: rolling_hurst(closes["close"].to_numpy(), m) for m in ("rs", "dfa")}
    if not len(rolling["rs"]):
        return {}
    ends = closes["timestamp"].to_numpy()[np.arange(HURST_ROLLING_BARS, len(closes) + 1, HURST_STEP_BARS) - 1]
    plot = series_png(ends, {f"H ({m})": v for m, v in rolling.items()},
                      f"{day.symbol} rolling Hurst, {HURST_ROLLING_BARS} 1m bars", "H", reference=0.5)
    return {"rolling_hurst_plot": png_markdown(plot, "rolling Hurst")}


def snapshot_json(conn: sqlite3.Connection, day: SymbolDay) -> dict:
    return {"values": MetadataValue.json(json.loads(json.dumps(snapshot_values(conn, day)))),
            "values_of": MetadataValue.text(f"{day.symbol} {day.date}")}


PLOTS = {"microstructure": vpin_plot, "williams_fractals": fractal_plot, "hurst_exponent": hurst_plot,
         "indicator_snapshot": snapshot_json}
"""Per indicator: what its result shows of the run's showcase symbol-day."""
