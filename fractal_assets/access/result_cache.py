"""The Redis cache of backtest data.

Results go to Redis under ``Keys.backtest`` (Arrow IPC, 24 h TTL) only for
*final* ranges: the range ends before today (UTC) and before the symbol's
newest tick minus the ingest tolerance, so ingest can no longer add a tick to
it (older ticks are rejected as ``ts_backwards``). Anything else that changes
a final range rewrites files: imports and archives replace the cold Parquet
parts, materializations write the warm database. Each entry therefore
carries a data version: the inode, size and mtime of every cold part file in
range and, for bars, of the warm database and its WAL. A lookup whose
version differs is a miss and is recomputed. So that equal mtimes cannot
hide a rewrite on a filesystem with coarse timestamps, nothing is cached
while a source file is younger than ``SETTLE_S``. Counters in the
``stats:cache`` hash: ``hit``, ``miss`` and ``skip`` (range not final or
sources not settled).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from fractal_assets.access.request import Request
from fractal_assets.access.tier_reads import compute
from fractal_assets.cold.store import ColdStore, file_version
from fractal_assets.config import Config
from fractal_assets.hot.store import HotStore

CACHE_TTL_S = 24 * 3600


CACHE_MAX_BYTES = 32 << 20
"""Larger results are not cached: DuckDB rereads them from Parquet about as fast as Redis returns them."""


VERSION_FIELD = b"fractal:data_version"


SETTLE_S = 2.0
"""Sources modified more recently than this are not cached (coarsest common mtime resolution)."""


CACHE_OUTCOMES = ("hit", "miss", "skip")


def is_final(req: Request, newest_ts: bytes | None, tolerance_ms: int) -> bool:
    """Whether ingest can no longer add a tick to the range (see the module docstring)."""
    if req.end >= datetime.now(UTC).date().isoformat():
        return False
    return newest_ts is None or req.end_ms <= int(newest_ts) - tolerance_ms


@dataclass(frozen=True)
class DataVersion:
    """What a cached result was computed from."""

    digest: bytes
    newest_mtime_ns: int

    def settled(self) -> bool:
        """Whether every source file is older than ``SETTLE_S``, so that any later rewrite
        gets a different mtime even on a filesystem with coarse timestamps."""
        return self.newest_mtime_ns < time.time_ns() - int(SETTLE_S * 1e9)


def data_version(cold: ColdStore, files: list[str], warm_db: Path | None) -> DataVersion:
    """The version of every cold part file (cold.store) and, when given, the identity, size
    and mtime of the warm database and its WAL: a SQLite commit writes the WAL or (rollback
    journal, checkpoint) the database. An empty WAL holds no commits and counts as absent."""
    digest = hashlib.sha1()
    newest = 0
    wal = [warm_db, warm_db.with_name(warm_db.name + "-wal")] if warm_db is not None else []
    versions = [cold.version(p) for p in files] + [file_version(str(p)) for p in wal]
    for path, version in zip([*files, *map(str, wal)], versions):
        if version is None or (path.endswith("-wal") and version.size == 0):
            digest.update(f"{path}|-\n".encode())
            continue
        digest.update(f"{version.identity}\n".encode())
        newest = max(newest, version.mtime_ns)
    return DataVersion(digest.hexdigest().encode(), newest)


def encode_frame(frame: pd.DataFrame, version: bytes) -> pa.Buffer:
    """Arrow IPC stream of the frame with its data version as the schema metadata (in place of
    pandas' own: the frames are plain typed columns on a range index)."""
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata({VERSION_FIELD: version})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def decode_frame(blob: bytes | None, version: bytes) -> pd.DataFrame | None:
    """The cached frame when the entry exists and has this data version, else None."""
    if blob is None:
        return None
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(blob))
    except pa.ArrowInvalid:
        return None
    if (reader.schema.metadata or {}).get(VERSION_FIELD) != version:
        return None
    return reader.read_all().to_pandas(use_threads=False, ignore_metadata=True)  # small: threads cost more


def through_cache(config: Config, store: HotStore, req: Request, files: tuple[list[str], list[str]]) -> pd.DataFrame:
    """The cached result when there is a valid one, else the computed one (cached when allowed).

    Every lookup is counted as a hit in the round trip that fetches the
    entry and moved to ``miss`` or ``skip`` when it was not, so that a hit
    costs a single round trip to Redis.
    """
    key = store.keys.backtest(req.symbol, req.start, req.end, req.kind, req.timeframe)
    stats = store.keys.cache_stats()
    pipe = store.client.pipeline(transaction=False)
    pipe.hget(store.keys.checkpoint(req.symbol), "max_ts")
    pipe.get(key)
    pipe.hincrby(stats, "hit", 1)
    newest_ts, blob, _ = pipe.execute()
    version = data_version(config.cold, files[0] + files[1], config.warm_db if req.kind == "bars" else None)
    cacheable = is_final(req, newest_ts, config.ts_tolerance_ms) and version.settled()
    cached = decode_frame(blob, version.digest) if cacheable else None
    if cached is not None:
        return cached
    pipe = store.client.pipeline(transaction=False)
    pipe.hincrby(stats, "hit", -1)
    pipe.hincrby(stats, "miss" if cacheable else "skip", 1)
    pipe.execute()
    frame = compute(config, store, req, files)
    if cacheable and frame.memory_usage(index=False).sum() <= CACHE_MAX_BYTES:
        store.client.set(key, memoryview(encode_frame(frame, version.digest)), ex=CACHE_TTL_S)
    return frame


def cache_stats(store: HotStore) -> dict[str, int]:
    """Backtest-data cache lookups so far: hit, miss, skip."""
    counts = store.client.hmget(store.keys.cache_stats(), CACHE_OUTCOMES)
    return {name: int(n or 0) for name, n in zip(CACHE_OUTCOMES, counts)}
