"""Modes of the files and directories fractal-alpha creates: private to their owner.

Market data, checkpoints and backups are nobody else's to read, so every directory the
project creates is 0700 and every file 0600, whatever the process umask;
``FRACTAL_GROUP_ACCESS=1`` makes them 0750 and 0640, for services that share a group.
The modes are set where each file is created, because a library must not change its host
application's umask; the ``fractal`` command, an application, also sets its own umask
(:func:`umask`) so that what the libraries it drives create (Dagster's instance under
``DAGSTER_HOME``, an ``--out`` file) is as private. Existing files and directories keep
the modes they have.
"""

from __future__ import annotations

import os
from pathlib import Path

from fractal_assets.config import env_value

TRUE = ("1", "true", "yes", "on")


def group_access() -> bool:
    """Whether ``FRACTAL_GROUP_ACCESS`` grants the owner's group read access."""
    return env_value("FRACTAL_GROUP_ACCESS").strip().lower() in TRUE


def dir_mode() -> int:
    return 0o750 if group_access() else 0o700


def file_mode() -> int:
    return 0o640 if group_access() else 0o600


def umask() -> int:
    """The umask that gives new files and directories at most :func:`file_mode` / :func:`dir_mode`."""
    return 0o027 if group_access() else 0o077


def make_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents with :func:`dir_mode`; existing ones are left
    as they are."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=dir_mode())
        except FileExistsError:
            continue
        os.chmod(directory, dir_mode())


def make_dir(path: Path) -> None:
    """Create one directory with :func:`dir_mode`; FileExistsError when it exists."""
    path.mkdir(mode=dir_mode())
    os.chmod(path, dir_mode())


def create_file(path: Path | str) -> int:
    """Create a new file (an existing one is an error) with :func:`file_mode`; returns its
    descriptor, open for writing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode())
    os.fchmod(fd, file_mode())
    return fd


def write_file(path: Path, data: bytes) -> None:
    """Write a new file with :func:`file_mode` (replacing none)."""
    with os.fdopen(create_file(path), "wb") as handle:
        handle.write(data)
