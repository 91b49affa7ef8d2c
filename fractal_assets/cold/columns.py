"""Tick part files read straight into one contiguous numpy array per column.

The read path's tick reads decode the row groups of every part file on a pool of
threads (pyarrow releases the GIL while it decodes) and copy each row group into its
slice of arrays allocated once for the whole result; decimal columns are divided by
their scale on the way, the same correctly rounded division as ``cold.decimals``. A
DuckDB query into pandas converts every column twice more (to Arrow, then to one
block), and ArcticDB's ``lib.read`` of the same ticks was twice as fast as that
(bench/access.py). A row group wholly outside [t0, t1) is skipped by its ts statistics;
rows outside it in the others are dropped afterwards.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fractal_assets.cold import decimals
from fractal_assets.cold.store import ColdStore
from fractal_assets.market import schema

TICK_COLUMNS = dict(schema.STORED_TICK.columns)
"""Column -> numpy type of the arrays returned."""


@dataclass(frozen=True)
class RowGroup:
    """One row group of a part file and where its rows go in the result."""

    source: str | pa.Buffer
    """The local path, or the whole file read from an object store."""
    metadata: pq.FileMetaData
    index: int
    offset: int
    inside: bool
    """Whether its ts statistics put every row inside [t0, t1)."""


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="cold-columns")


def read_tick_columns(cold: ColdStore, paths: list[str], t0: int, t1: int) -> dict[str, np.ndarray]:
    """The ticks with t0 <= ts < t1 of the part files, in file then row order, one array per
    column. A part file that vanished raises FileNotFoundError (see access.tier_reads)."""
    groups, rows = _plan(cold, paths, t0, t1)
    out = {name: np.empty(rows, kind) for name, kind in TICK_COLUMNS.items()}
    for done in [_pool().submit(_fill, out, group) for group in groups]:
        done.result()
    if all(group.inside for group in groups):
        return out
    keep = (out["ts"] >= t0) & (out["ts"] < t1)
    return {name: values[keep] for name, values in out.items()}


def _plan(cold: ColdStore, paths: list[str], t0: int, t1: int) -> tuple[list[RowGroup], int]:
    """The row groups that may hold ticks in [t0, t1) and the number of rows they hold."""
    groups: list[RowGroup] = []
    rows = 0
    for path in paths:
        source = path if cold.local else pa.py_buffer(cold.read_bytes(path))
        metadata = pq.read_metadata(source if cold.local else pa.BufferReader(source))
        ts = metadata.schema.to_arrow_schema().get_field_index("ts")
        for index in range(metadata.num_row_groups):
            group = metadata.row_group(index)
            stats = group.column(ts).statistics
            bounded = stats is not None and stats.has_min_max
            if bounded and (stats.max < t0 or stats.min >= t1):
                continue
            inside = bounded and stats.min >= t0 and stats.max < t1
            groups.append(RowGroup(source, metadata, index, rows, inside))
            rows += group.num_rows
    return groups, rows


def _fill(out: dict[str, np.ndarray], group: RowGroup) -> None:
    """Decode one row group into its slice of every column."""
    source = group.source if isinstance(group.source, str) else pa.BufferReader(group.source)
    table = pq.ParquetFile(source, metadata=group.metadata).read_row_group(
        group.index, columns=list(TICK_COLUMNS), use_threads=False)
    for name in TICK_COLUMNS:
        start = group.offset
        for chunk in table.column(name).chunks:
            end = start + len(chunk)
            if pa.types.is_decimal(chunk.type):
                np.divide(decimals.chunk_unscaled(chunk), 10.0**chunk.type.scale, out=out[name][start:end])
            else:
                out[name][start:end] = chunk.to_numpy(zero_copy_only=False)
            start = end
