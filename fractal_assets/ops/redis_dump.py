"""A portable snapshot of one deployment's Redis keys: DUMP payloads with their TTLs.

DUMP/PTTL/RESTORE need no access to the server's files, and keys are stored
without the deployment's prefix so a snapshot can be restored under another.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import redis

from fractal_assets.filemodes import create_file

REDIS_MAGIC = b"FRACTAL-REDIS-DUMP\x00\x01"
RECORD_HEADER = struct.Struct("<IqQ")
"""Per key: name length, TTL in ms (0: none), DUMP payload length; then name and payload."""
KEY_BATCH = 100
"""Keys dumped or restored per round trip; with RESTORE_BATCH_BYTES this bounds memory."""
RESTORE_BATCH_BYTES = 64 << 20


class SnapshotError(ValueError):
    """A Redis snapshot file that is not one, or is cut short."""


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _batched(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def export_redis(client: redis.Redis, prefix: str, target: Path) -> int:
    """Write every key under ``prefix`` (without the prefix) with its DUMP payload and TTL;
    returns how many keys were written. Each key is consistent on its own, the set of keys is
    not a point-in-time snapshot."""
    raw_prefix = prefix.encode()
    seen: set[bytes] = set()
    with os.fdopen(create_file(target), "wb") as out:
        out.write(REDIS_MAGIC)
        for batch in _batched(client.scan_iter(match=glob_escape(prefix) + "*", count=1000), KEY_BATCH):
            batch = [k for k in dict.fromkeys(batch) if k not in seen]
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.dump(key)
                pipe.pttl(key)
            results = pipe.execute()
            for key, payload, ttl in zip(batch, results[::2], results[1::2]):
                if payload is None or ttl == -2:
                    continue
                name = key[len(raw_prefix):]
                out.write(RECORD_HEADER.pack(len(name), max(ttl, 0), len(payload)))
                out.write(name)
                out.write(payload)
                seen.add(key)
        out.flush()
        os.fsync(out.fileno())
    return len(seen)


def _read_exactly(handle: BinaryIO, n: int) -> bytes:
    data = handle.read(n)
    if len(data) != n:
        raise SnapshotError("Redis snapshot is truncated")
    return data


def import_redis(client: redis.Redis, prefix: str, source: Path) -> int:
    """RESTORE ... REPLACE every key of the snapshot under ``prefix``; returns how many."""
    restored, pending = 0, 0
    pipe = client.pipeline(transaction=False)
    with open(source, "rb") as handle:
        if handle.read(len(REDIS_MAGIC)) != REDIS_MAGIC:
            raise SnapshotError(f"{source} is not a fractal Redis snapshot")
        while header := handle.read(RECORD_HEADER.size):
            if len(header) != RECORD_HEADER.size:
                raise SnapshotError("Redis snapshot is truncated")
            name_len, ttl, size = RECORD_HEADER.unpack(header)
            name, payload = _read_exactly(handle, name_len), _read_exactly(handle, size)
            pipe.restore(prefix.encode() + name, ttl, payload, replace=True)
            restored += 1
            pending += size
            if len(pipe) >= KEY_BATCH or pending >= RESTORE_BATCH_BYTES:
                pipe.execute()
                pending = 0
    pipe.execute()
    return restored
