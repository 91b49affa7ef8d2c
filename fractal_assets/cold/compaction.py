"""Compaction: merge the ``part-N.parquet`` files of a cold-tier partition into one part-0.

Crash safety comes from the order of the steps and from readers that
deduplicate, not from a manifest:

1. the merged rows are written to a hidden temporary file and fsynced;
2. it is renamed over ``part-0.parquet`` (atomic) and the directory fsynced;
3. the other parts are deleted in ascending N order, then the directory fsynced.

Between 2 and 3, part-0 already holds every merged row while part-1.. still
exist. Readers therefore take a partition as the union of its parts with one
row per key: ticks (and quotes) by ``seq`` (copies are identical), bars by
``timestamp`` with the highest-numbered part winning. Deleting in ascending
order keeps the surviving parts a suffix of the originals, so "the latest
part wins" still gives the merged result at every instant, and re-running
compaction after a crash finishes the job.

Compaction must not race a writer of the same partition (``write_atomic``
replaces part-0 without a lock). Part-0 is re-checked once the merge is
computed and the partition left untouched when it changed, which narrows
but does not close that window: run it on partitions that no longer
receive data.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fractal_assets.cold.parquet import PART, encodings_for, part_files, read_part, write_atomic

SORT_KEYS: dict[str, list[str]] = {"seq": ["ts", "seq"], "timestamp": ["timestamp"], "ts": ["ts"]}
"""Row key of a dataset (the first of these columns it has) -> its sort order."""


def row_key(schema: pa.Schema) -> str:
    """The column that identifies a row: ``seq`` for ticks and quotes, ``timestamp`` for bars."""
    for key in SORT_KEYS:
        if key in schema.names:
            return key
    raise ValueError(f"no row key ({', '.join(SORT_KEYS)}) among columns {schema.names}")


def merge_parts(tables: list[pa.Table]) -> pa.Table:
    """Union of the parts (in part order), one row per key with the latest part winning, sorted."""
    merged = pa.concat_tables(tables, promote_options="default")
    key = row_key(merged.schema)
    values = merged.column(key).to_numpy()[::-1]
    _, last = np.unique(values, return_index=True)
    rows = merged.take(np.sort(len(values) - 1 - last))
    return rows.sort_by([(c, "ascending") for c in SORT_KEYS[key]])


def _fsync_dir(directory: Path) -> None:
    """Make renames and deletions in ``directory`` durable before the next step relies on them."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def compact_partition(directory: Path) -> int:
    """Merge the partition's parts into part-0; returns how many parts were merged
    (0 when there was nothing to do or part-0 was replaced meanwhile)."""
    parts = part_files(directory)
    if len(parts) < 2 and all(p.name == PART for p in parts):
        return 0
    before = _identity(directory / PART)
    merged = merge_parts([read_part(p) for p in parts])
    if _identity(directory / PART) != before:
        return 0
    write_atomic(directory, merged, encodings_for(merged.schema))
    _fsync_dir(directory)
    for part in parts:
        if part.name != PART:
            part.unlink(missing_ok=True)
    _fsync_dir(directory)
    return len(parts)


def compact_all(cold_dir: Path) -> dict[Path, int]:
    """Compact every partition of the cold tier that has more than part-0; returns the
    partitions compacted with their number of merged parts."""
    directories = sorted({p.parent for p in cold_dir.rglob("part-*.parquet") if p.name != PART})
    done = {d: compact_partition(d) for d in directories}
    return {d: n for d, n in done.items() if n}
