"""Backups of the warm, cold and (optionally) hot tier, and restoring them.

A backup is a new directory ``DEST/fractal-backup-YYYYMMDDTHHMMSSZ`` holding
``warm.db`` (SQLite online backup API, consistent while writers run),
``cold/...`` (a copy of every cold-tier file: never a link, which would share
the live file's fate), ``redis.dump`` with ``--redis`` and, written last,
``manifest.json`` with the size and sha256 of every file. A backup without a
manifest is incomplete. Like everything the project creates, a backup is
private to its owner (``filemodes``).

The tiers are copied hot, then warm, then cold: ticks archived meanwhile are
then in both the Redis snapshot and the Parquet copy (restoring merges them
by arrival number) instead of in neither.

Redis keys are exported with DUMP/PTTL, so no filesystem access to the server
is needed. They are stored without the deployment's key prefix and restored
under the target's prefix, which lets a backup move between deployments.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO

import redis

from fractal_assets.cold.store import ColdStore
from fractal_assets.config import Config
from fractal_assets.filemodes import create_file, make_dir, make_dirs, write_file
from fractal_assets.hot.connection import connect as connect_redis
from fractal_assets.ops.redis_dump import export_redis, glob_escape, import_redis
from fractal_assets.warm.db import connect as connect_sqlite
from fractal_assets.warm.schema import MIGRATIONS, current_version

MANIFEST = "manifest.json"
WARM_FILE = "warm.db"
COLD_DIR = "cold"
REDIS_FILE = "redis.dump"
FORMAT_VERSION = 1
NAME_PREFIX = "fractal-backup-"

HASH_CHUNK = 1 << 20
COPY_ATTEMPTS = 3


class BackupError(ValueError):
    """A backup that is incomplete or corrupted, or a restore that would overwrite data."""


@dataclass(frozen=True)
class FileEntry:
    path: str
    """POSIX path relative to the backup directory."""
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    created: str
    schema_version: int | None
    """Warm-tier schema version; None when there was no warm database to back up."""
    key_prefix: str | None
    """The source deployment's Redis key prefix; None when Redis was not exported."""
    redis_keys: int
    files: tuple[FileEntry, ...]

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT_VERSION, **asdict(self)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        try:
            doc = json.loads(text)
            version = doc.pop("format")
            files = tuple(FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in doc.pop("files"))
            manifest = cls(files=files, **doc)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupError(f"manifest is not valid: {exc!r}") from exc
        if version != FORMAT_VERSION:
            raise BackupError(f"manifest has format version {version!r}, this code reads {FORMAT_VERSION}")
        return manifest

    def cold_files(self) -> list[FileEntry]:
        return [f for f in self.files if f.path.startswith(COLD_DIR + "/")]

    def has(self, path: str) -> bool:
        return any(f.path == path for f in self.files)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def safe_parts(relative: str) -> list[str]:
    """The parts of a relative POSIX path, refusing absolute paths, ``..`` and empty parts."""
    parts = relative.split("/")
    if not relative or "\\" in relative or PurePosixPath(relative).is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise BackupError(f"unsafe path in backup: {relative!r}")
    return parts


def inside(root: Path, relative: str) -> Path:
    """``root/relative``, refusing absolute paths, ``..`` and anything resolving outside root
    (a manifest is not trusted to name where files go)."""
    path = root.joinpath(*safe_parts(relative))
    if not path.resolve().is_relative_to(root.resolve()):
        raise BackupError(f"path escapes its directory: {relative!r}")
    return path


def _entry(root: Path, path: Path) -> FileEntry:
    return FileEntry(path.relative_to(root).as_posix(), path.stat().st_size, sha256_of(path))


def _new_backup_dir(dest: Path) -> Path:
    """A directory that did not exist before: an existing backup is never written into."""
    make_dirs(dest)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        candidate = dest / (NAME_PREFIX + stamp + (f".{n}" if n else ""))
        try:
            make_dir(candidate)
            return candidate
        except FileExistsError:
            continue
    raise BackupError(f"no free backup directory name under {dest}")


def backup_warm(db: Path, target: Path) -> int | None:
    """Copy the warm database with the online backup API; returns its schema version
    (None when there is no database yet)."""
    if not db.exists():
        return None
    source = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    os.close(create_file(target))
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")
        return current_version(copy)
    finally:
        copy.close()
        source.close()


def restore_warm(backup_db: Path, db: Path) -> None:
    """Replace the warm database's contents through the backup API, so connections that
    other processes hold see either the old or the restored database."""
    source = sqlite3.connect(f"{backup_db.resolve().as_uri()}?mode=ro", uri=True)
    target = connect_sqlite(db)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _copy_all(names: list[str], open_source: Callable[[str], IO[bytes]], out: Path) -> list[Path]:
    """Copy the named files into ``out`` as independent files, private to their owner. When
    one has vanished (FileNotFoundError), this attempt's copies are taken back first."""
    done: list[Path] = []
    try:
        for name in names:
            with open_source(name) as source:
                _copy_file(source, out / name)
            done.append(out / name)
    except FileNotFoundError:
        for path in done:
            path.unlink()
        raise
    return done


def _copy_file(source: IO[bytes], target: Path) -> None:
    try:
        with os.fdopen(create_file(target), "wb") as copy:
            shutil.copyfileobj(source, copy, HASH_CHUNK)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _snapshot_directory(source: Path, target: Path) -> list[Path]:
    """Copy the regular, non-hidden files of one directory. A file vanishing midway means a
    compaction merged it into part-0, so the whole directory is taken again."""
    for _ in range(COPY_ATTEMPTS):
        names = sorted(e.name for e in os.scandir(source) if e.is_file(follow_symlinks=False) and not e.name.startswith("."))
        try:
            return _copy_all(names, lambda name: open(source / name, "rb"), target)
        except FileNotFoundError:
            continue
    raise BackupError(f"{source} kept changing while it was copied")


def backup_cold(cold: ColdStore, target: Path) -> list[Path]:
    """Copy the cold tier's files under ``target``, keeping their relative paths."""
    if not cold.local:
        return _download_cold(cold, target)
    copied: list[Path] = []
    cold_dir = Path(cold.root)
    if not cold_dir.is_dir():
        return copied
    for directory, subdirs, _ in os.walk(cold_dir):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        relative = Path(directory).relative_to(cold_dir).as_posix()
        out = target if relative == "." else inside(target, relative)
        make_dirs(out)
        copied.extend(_snapshot_directory(Path(directory), out))
    return copied


def _download_cold(cold: ColdStore, target: Path) -> list[Path]:
    """Download an object-store cold tier, one partition directory at a time. Objects are
    never overwritten (cold.store); one vanishing midway was merged by a compaction, so the
    directory is listed and taken again."""
    by_directory: dict[str, list[str]] = {}
    for relative in cold.files():
        directory, _, name = relative.rpartition("/")
        by_directory.setdefault(directory, []).append(name)
    copied: list[Path] = []
    for directory, names in by_directory.items():
        out = inside(target, directory) if directory else target
        make_dirs(out)
        for _ in range(COPY_ATTEMPTS):
            try:
                copied.extend(_copy_all(names, lambda name: cold.fs.open(cold.join(directory, name), "rb"), out))
                break
            except FileNotFoundError:
                names = sorted(n for n in cold.names(cold.join(directory)) if not n.startswith("."))
        else:
            raise BackupError(f"{cold.uri(cold.join(directory))} kept changing while it was copied")
    return copied


def backup(config: Config, dest: Path, with_redis: bool = False) -> Path:
    """Back the deployment up into a new directory under ``dest``; returns that directory."""
    dest = dest.resolve()
    if config.cold.local and dest.is_relative_to(Path(config.cold.root)):
        raise BackupError(f"backup destination {dest} is inside the cold tier {config.cold_dir}")
    target = _new_backup_dir(dest)
    try:
        manifest = _write_backup(config, target, with_redis)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    tmp = target / f".{MANIFEST}.tmp"
    write_file(tmp, manifest.to_json().encode())
    os.replace(tmp, target / MANIFEST)
    return target


def _write_backup(config: Config, target: Path, with_redis: bool) -> Manifest:
    """Copy the tiers into ``target`` (hot, warm, cold: see the module docstring)."""
    files: list[Path] = []
    redis_keys = 0
    if with_redis:
        redis_keys = export_redis(connect_redis(config), config.key_prefix, target / REDIS_FILE)
        files.append(target / REDIS_FILE)
    schema_version = backup_warm(config.warm_db, target / WARM_FILE)
    if schema_version is not None:
        files.append(target / WARM_FILE)
    files.extend(backup_cold(config.cold, target / COLD_DIR))
    return Manifest(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        schema_version=schema_version,
        key_prefix=config.key_prefix if with_redis else None,
        redis_keys=redis_keys,
        files=tuple(_entry(target, p) for p in files),
    )


def read_manifest(src: Path) -> Manifest:
    path = src / MANIFEST
    if not path.is_file():
        raise BackupError(f"no {MANIFEST} in {src}: not a complete fractal backup")
    return Manifest.from_json(path.read_text())


def verify(src: Path) -> Manifest:
    """The backup's manifest, once every file it lists is present with its size and sha256."""
    manifest = read_manifest(src)
    problems = []
    for entry in manifest.files:
        if entry.path not in (WARM_FILE, REDIS_FILE) and not entry.path.startswith(COLD_DIR + "/"):
            raise BackupError(f"unexpected file in manifest: {entry.path!r}")
        path = inside(src, entry.path)
        if not path.is_file():
            problems.append(f"missing: {entry.path}")
        elif path.stat().st_size != entry.size or sha256_of(path) != entry.sha256:
            problems.append(f"checksum mismatch: {entry.path}")
    if problems:
        raise BackupError(f"backup {src} is damaged, nothing restored: " + "; ".join(problems))
    newest = max(m.version for m in MIGRATIONS)
    if (manifest.schema_version or 0) > newest:
        raise BackupError(f"backup has warm schema version {manifest.schema_version}, this code knows {newest}")
    return manifest


def _warm_in_use(db: Path) -> bool:
    if not db.exists() or db.stat().st_size == 0:
        return False
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] > 0
    finally:
        conn.close()


def _occupied(config: Config, manifest: Manifest, client: redis.Redis | None) -> list[str]:
    """What a restore would overwrite."""
    found = []
    if manifest.schema_version is not None and _warm_in_use(config.warm_db):
        found.append(f"warm database {config.warm_db} has tables")
    if config.cold.files():
        found.append(f"cold tier {config.cold_dir} has files")
    if client is not None and next(client.scan_iter(match=glob_escape(config.key_prefix) + "*", count=1000), None):
        found.append(f"Redis has keys with prefix {config.key_prefix!r}")
    return found


def _copy_verified(source: Path, cold: ColdStore, relative: str, entry: FileEntry) -> None:
    """Check the bytes against the manifest before the cold tier sees them (cold.store's
    ``put`` makes a file visible only once it is complete)."""
    data = source.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise BackupError(f"checksum mismatch while restoring {entry.path}")
    target = str(inside(Path(cold.root), relative)) if cold.local else cold.join(*safe_parts(relative))
    cold.put(target, data)


def restore(config: Config, src: Path, with_redis: bool = False, force: bool = False) -> Manifest:
    """Restore a verified backup into the configured tiers; returns its manifest.

    Refuses before writing anything when a file is missing or corrupted, or (without
    ``force``) when a tier to restore already holds data. Redis keys go under the target's
    own key prefix. With ``force`` the warm database is replaced as a whole, cold files of
    the same path are overwritten (others are kept) and keys are restored with REPLACE.
    """
    src = src.resolve()
    manifest = verify(src)
    if with_redis and not manifest.has(REDIS_FILE):
        raise BackupError(f"backup {src} has no Redis snapshot (it was made without --redis)")
    client = connect_redis(config) if with_redis else None
    occupied = [] if force else _occupied(config, manifest, client)
    if occupied:
        raise BackupError("refusing to overwrite existing data (use --force): " + "; ".join(occupied))
    if manifest.schema_version is not None:
        restore_warm(src / WARM_FILE, config.warm_db)
    for entry in manifest.cold_files():
        relative = entry.path[len(COLD_DIR) + 1:]
        _copy_verified(inside(src, entry.path), config.cold, relative, entry)
    if client is not None:
        import_redis(client, config.key_prefix, src / REDIS_FILE)
    return manifest
