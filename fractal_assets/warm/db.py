"""SQLite connections of the warm tier: WAL mode, a busy timeout, explicit write transactions.

WAL is a persistent property of the database file, so it is switched on only
for a database this project creates; an existing (host application's)
database keeps the journal mode its owner chose, and synchronous=NORMAL
(safe only under WAL) is then not used either. A database this project
creates is private to its owner (``filemodes``); SQLite gives its WAL and
shared-memory files the database file's mode.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fractal_assets.filemodes import create_file, make_dirs

BUSY_TIMEOUT_MS = 60_000
PAGE_SIZE = 16_384
"""Pages of a database the project creates: bar upserts touch long runs of adjacent keys, and
larger pages mean fewer B-tree pages to split and write (measured +6 % rows/s over 4 KiB)."""


def create_wal_database(path: Path) -> None:
    """Create an empty database in WAL mode at ``path`` unless a file is there.

    It is prepared under a temporary name and linked into place, so of
    processes racing to create it exactly one wins and none has to switch
    the journal mode of a database another one already uses.
    """
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    os.close(create_file(tmp))
    conn = sqlite3.connect(tmp)
    try:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode; writes go through :func:`write_transaction`."""
    if not path.exists():
        create_wal_database(path)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")
    return conn


def connect_readonly(path: Path) -> sqlite3.Connection | None:
    """A read-only connection for queries, or None when the database does not exist
    (reading must not create it)."""
    if not path.exists():
        return None
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the table exists (a host database may not have been migrated yet)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE takes the write lock up front, so concurrent writers queue on the
    busy timeout instead of failing halfway through with SQLITE_BUSY."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
