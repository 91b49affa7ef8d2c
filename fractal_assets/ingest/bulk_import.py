"""Bulk import of tick history straight into ``raw_ticks`` partitions, bypassing Redis.

The same feeds, validation and tick rule as live ingest are used. Each
imported tick gets a negative arrival number made of a per-file base
(reserved once in Redis) plus its record number, so re-importing a file
replaces nothing twice and two files never collide with each other or with
live ticks.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from fractal_assets.cold.archive import hot_table, merge_by_seq
from fractal_assets.cold.parquet import read_ticks, write_ticks
from fractal_assets.cold.store import ColdStore
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.validation import Bounds, SymbolState, Validated, validate
from fractal_assets.market.calendar import SymbolDay
from fractal_assets.market.ticks import FeedChunk, Rejection

IMPORT_SEQ_ORIGIN = -(1 << 62)
FILE_SEQ_SPAN = 1 << 40
"""Record numbers available to one imported file."""


@dataclass
class ImportReport:
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: list[Rejection] = field(default_factory=list)
    partitions: set[SymbolDay] = field(default_factory=set)


def _by_day(v: Validated, seq_base: int) -> Iterable[tuple[SymbolDay, pa.Table]]:
    """Split one symbol's validated ticks into UTC days."""
    dates = v.ticks["ts"].astype("M8[ms]").astype("M8[D]")
    for date in np.unique(dates):
        rows = dates == date
        yield SymbolDay(v.symbol, str(date)), hot_table(v.ticks[rows], seq_base + v.seq[rows])


class _Buffer:
    """Tables waiting per partition; a partition is written once the file has moved past
    its date, so a time-ordered file writes each partition once."""

    def __init__(self, cold: ColdStore) -> None:
        self.cold = cold
        self.tables: dict[SymbolDay, list[pa.Table]] = defaultdict(list)

    def add(self, day: SymbolDay, table: pa.Table) -> None:
        self.tables[day].append(table)

    def flush(self, before: dict[str, str] | None = None) -> list[SymbolDay]:
        """Write partitions dated before ``before[symbol]`` (all when None)."""
        ready = [d for d in self.tables if before is None or d.date < before.get(d.symbol, "")]
        for day in ready:
            new = pa.concat_tables(self.tables.pop(day))
            merged = merge_by_seq(read_ticks(self.cold, day.symbol, day.date), new)
            write_ticks(self.cold, day.symbol, day.date, merged)
        return ready


def import_history(
    chunks: Iterable[FeedChunk], cold: ColdStore, seq_base: int, tolerance_ms: int, bounds: Bounds = Bounds()
) -> ImportReport:
    """Validate chunks and write their ticks into cold-tier day partitions."""
    report = ImportReport()
    states: dict[str, SymbolState] = {}
    buffer = _Buffer(cold)
    for chunk in chunks:
        report.rejected += chunk.rejections
        if chunk.trades is None or not len(chunk.trades):
            continue
        accepted, rejections = validate(chunk.trades, states, tolerance_ms, bounds)
        report.rejected += rejections
        newest: dict[str, str] = {}
        for v in accepted:
            report.accepted[v.symbol] += len(v.ticks)
            for day, table in _by_day(v, seq_base):
                buffer.add(day, table)
                newest[v.symbol] = max(newest.get(v.symbol, ""), day.date)
        report.partitions.update(buffer.flush(before=newest))
    report.partitions.update(buffer.flush())
    return report


def file_seq_base(store: HotStore, source_id: str) -> int:
    """The arrival-number base of an imported file: the same for every import of it."""
    return IMPORT_SEQ_ORIGIN + store.file_index(source_id) * FILE_SEQ_SPAN
