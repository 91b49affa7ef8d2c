"""Where the cold tier lives: a local directory or an object store, through fsspec.

``FRACTAL_COLD_DIR`` is a path or any fsspec URL (``s3://bucket/prefix`` with
s3fs installed; endpoint and credentials from the AWS variables). Both are
read and listed the same way; they differ in how a new version of a file
becomes visible:

- a local directory writes a hidden temporary file, fsyncs it and renames it
  over ``part-N.parquet``: atomic, and a reader that opened the old file
  keeps reading it;
- an object store has no rename, and overwriting a key under a reader tears
  its ranged reads. So every write uploads a new object
  ``part-N.gTTTTTTTTTTTTTTTTTTTT.parquet`` (T: write time in ns) with one
  atomic PUT, the newest generation of a part is its current file, and a
  superseded generation is deleted only ``GRACE_S`` after it was superseded.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
from fsspec.implementations.local import LocalFileSystem

from fractal_assets.filemodes import create_file, make_dirs

if TYPE_CHECKING:
    import duckdb

PART_RE = re.compile(r"^part-(\d+)(?:\.g(\d{20}))?\.parquet$")
"""A part file: part number, and on object stores the generation (write time in ns)."""
GRACE_S = 600.0
"""How long a superseded object stays readable: longer than any read of one partition."""
REMOTE_OPTIONS = {"use_listings_cache": False, "default_cache_type": "none"}
"""Lists must see the newest generation at once; DuckDB's ranged reads need no read-ahead."""


@dataclass(frozen=True)
class FileVersion:
    """What identifies one state of a file: it changes whenever the file is rewritten."""

    identity: str
    mtime_ns: int
    size: int


@dataclass(frozen=True)
class ColdStore:
    """The cold tier's root on its filesystem; paths are '/'-joined strings under ``root``."""

    fs: fsspec.AbstractFileSystem
    root: str

    @property
    def local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def join(self, *parts: str) -> str:
        """``root/part/...``; empty parts (the root's own relative path) are skipped."""
        return "/".join((self.root, *(p for p in parts if p)))

    def uri(self, path: str) -> str:
        """The path as DuckDB names it: plain when local, with the protocol otherwise."""
        return path if self.local else self.fs.unstrip_protocol(path)

    def names(self, directory: str) -> list[str]:
        """Names of the entries of ``directory`` (none when it does not exist)."""
        if self.local:
            try:
                return [entry.name for entry in os.scandir(directory)]
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            return [path.rstrip("/").rsplit("/", 1)[-1] for path in self.fs.ls(directory, detail=False)]
        except FileNotFoundError:
            return []

    def read_bytes(self, path: str) -> bytes:
        return self.fs.cat_file(path)

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def size(self, path: str) -> int:
        return self.fs.size(path)

    def remove(self, path: str) -> None:
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    def version(self, path: str) -> FileVersion | None:
        """Local files are replaced by rename under the same name, so their inode, size and
        mtime tell versions apart; every object-store write has a name of its own."""
        if self.local:
            return file_version(path)
        try:
            return FileVersion(path, 0, self.fs.size(path))
        except FileNotFoundError:
            return None

    def put(self, path: str, data: bytes) -> None:
        """Write a whole file that readers see complete or not at all."""
        if self.local:
            _replace_local(path, data)
        else:
            self.fs.pipe_file(path, data)

    def publish(self, directory: str, part: int, data: bytes) -> str:
        """Make ``data`` the current content of part ``part`` of ``directory``; returns its path."""
        if self.local:
            path = f"{directory}/part-{part}.parquet"
            self.put(path, data)
            return path
        path = f"{directory}/part-{part}.g{time.time_ns():020d}.parquet"
        self.put(path, data)
        self._drop_superseded(directory, part)
        return path

    def files(self) -> list[str]:
        """Every file of the tier but hidden ones (temporary files, health probes), as paths
        relative to the root."""
        found = self.fs.find(self.root) if self.fs.exists(self.root) else []
        relative = (p[len(self.root) + 1:] for p in found)
        return sorted(r for r in relative if not any(part.startswith(".") for part in r.split("/")))

    def sync(self, directory: str) -> None:
        """Make renames and deletions in a local ``directory`` durable (objects already are)."""
        if self.local:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def writable(self) -> bool:
        """Whether files can be written under the root. On disk nothing is created: the root,
        or while it does not exist the nearest directory above it, must be writable. An
        object store is asked by writing and deleting a hidden probe object."""
        if self.local:
            return _writable_dir(Path(self.root))
        probe = self.join(f".health-{uuid.uuid4().hex}")
        try:
            self.fs.pipe_file(probe, b"")
            self.fs.rm_file(probe)
            return True
        except OSError:
            return False

    def sweep(self) -> int:
        """Delete, tier-wide, the generations superseded more than ``GRACE_S`` ago (a write
        only sweeps its own part, so a part never written again would keep its previous
        generation); returns how many. Nothing to do on disk."""
        if self.local:
            return 0
        parts: dict[tuple[str, int], int] = defaultdict(int)
        for path in self.fs.glob(self.join("**", "part-*.parquet")):
            directory, name = path.rsplit("/", 1)
            if m := PART_RE.match(name):
                parts[(directory, int(m[1]))] += 1
        return sum(self._drop_superseded(directory, part) for (directory, part), n in parts.items() if n > 1)

    def _drop_superseded(self, directory: str, part: int) -> int:
        """Delete generations of the part superseded more than ``GRACE_S`` ago; returns how many."""
        generations = sorted(int(m[2] or 0) for name in self.names(directory)
                             if (m := PART_RE.match(name)) and int(m[1]) == part)
        cutoff = time.time_ns() - int(GRACE_S * 1e9)
        dropped = [older for older, newer in zip(generations, generations[1:]) if newer < cutoff]
        for older in dropped:
            suffix = f".g{older:020d}" if older else ""
            self.remove(f"{directory}/part-{part}{suffix}.parquet")
        return len(dropped)


def file_version(path: str) -> FileVersion | None:
    """A local file's inode, size and mtime (None when it does not exist)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return FileVersion(f"{path}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}", st.st_mtime_ns, st.st_size)


def _writable_dir(path: Path) -> bool:
    """Whether ``path``, or the nearest existing directory above it, can take new files."""
    try:
        while not path.exists():
            path = path.parent
        return path.is_dir() and os.access(path, os.W_OK | os.X_OK)
    except OSError:
        return False


def _replace_local(path: str, data: bytes) -> None:
    """Write a hidden temporary file beside ``path``, fsync it and rename it over ``path``
    (private to its owner: ``filemodes``)."""
    directory = os.path.dirname(path)
    make_dirs(Path(directory))
    tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
    try:
        with os.fdopen(create_file(tmp), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@lru_cache(maxsize=8)
def open_cold(location: str) -> ColdStore:
    """The store of ``FRACTAL_COLD_DIR``: a local path, or an fsspec URL such as s3://bucket/prefix."""
    if "://" not in location or location.startswith("file://"):
        return ColdStore(LocalFileSystem(), str(Path(location.removeprefix("file://")).resolve()))
    fs, root = fsspec.url_to_fs(location, **REMOTE_OPTIONS)
    return ColdStore(fs, root.rstrip("/"))


@lru_cache(maxsize=8)
def duckdb_for(store: ColdStore) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that reads the store's files: an object store is registered as an
    fsspec filesystem, so DuckDB needs no extension download."""
    import duckdb

    con = duckdb.connect()
    if not store.local:
        con.register_filesystem(store.fs)
    return con
