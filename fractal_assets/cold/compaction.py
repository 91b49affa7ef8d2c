"""Compaction: merge the ``part-N.parquet`` files of a cold-tier partition into one part-0.

Crash safety comes from the order of the steps and from readers that
deduplicate, not from a manifest:

1. the merged rows are written to a hidden temporary file and fsynced;
2. it becomes the current part-0 (cold.store: renamed over it, or a new
   object generation) and the directory fsynced;
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

import numpy as np
import pyarrow as pa

from fractal_assets.cold.parquet import encodings_for, part_files, part_number, read_part, write_atomic
from fractal_assets.cold.store import PART_RE, ColdStore, FileVersion

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


def part0_version(cold: ColdStore, directory: str) -> FileVersion | None:
    """The version of the partition's current part-0, None when it has none."""
    current = [p for p in part_files(cold, directory) if part_number(p) == 0]
    return cold.version(current[0]) if current else None


def remove_merged(cold: ColdStore, directory: str, numbers: set[int]) -> None:
    """Delete every file of the merged parts but part-0: by part, then (on object stores)
    oldest generation first, so a part's current file goes last and the surviving files
    stay a suffix of the originals."""
    files = [(int(m[1]), int(m[2] or 0), name) for name in cold.names(directory)
             if (m := PART_RE.match(name)) and int(m[1]) in numbers - {0}]
    for _, _, name in sorted(files):
        cold.remove(f"{directory}/{name}")


def compact_partition(cold: ColdStore, directory: str) -> int:
    """Merge the partition's parts into part-0; returns how many parts were merged
    (0 when there was nothing to do or part-0 was replaced meanwhile)."""
    parts = part_files(cold, directory)
    numbers = {part_number(p) for p in parts}
    if numbers <= {0}:
        return 0
    before = part0_version(cold, directory)
    merged = merge_parts([read_part(cold, p) for p in parts])
    if part0_version(cold, directory) != before:
        return 0
    write_atomic(cold, directory, merged, encodings_for(merged.schema))
    cold.sync(directory)
    remove_merged(cold, directory, numbers)
    cold.sync(directory)
    return len(parts)


def compact_all(cold: ColdStore) -> dict[str, int]:
    """Compact every partition of the cold tier that has more than part-0; returns the
    partitions compacted with their number of merged parts."""
    files = cold.fs.glob(cold.join("**", "part-*.parquet"))
    directories = sorted({p.rsplit("/", 1)[0] for p in files if PART_RE.match(p.rsplit("/", 1)[1]) and part_number(p)})
    done = {d: compact_partition(cold, d) for d in directories}
    return {d: n for d, n in done.items() if n}
