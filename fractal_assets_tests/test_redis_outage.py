"""Redis outages under the resident ingest: a real redis-server killed (SIGKILL) and restarted
while ingest runs.

Every kind of Redis call the ingest process makes meets an outage in
``test_every_kind_of_redis_call_survives_an_outage``: the server is killed just before the
chosen call reaches it, and restarted once the retry policy has reported the failure, so
which call meets the outage is fixed, not left to timing. The verdicts are the stored ticks
(each once, none missing) and how the process ended.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from fractal_assets.config import Config
from fractal_assets.feeds import open_feed
from fractal_assets.hot.keys import Keys
from fractal_assets.hot.store import HotStore
from fractal_assets.ingest.ingestor import Ingestor
from fractal_assets_tests.redis_process import RedisProcess
from fractal_assets_tests.support import write_ticks

pytestmark = [pytest.mark.infra, pytest.mark.slow]

SYMBOL = "OUT"
SOURCE = "file:outage"
OUTAGE_S = 1.0
"""How long the server stays down once the call under test has failed."""


class RetryLog(logging.Handler):
    """The retry policy's log lines, and an event set by the first report of a failure."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.failed = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        self.lines.append(line)
        if line.startswith("Redis unreachable"):
            self.failed.set()


@pytest.fixture
def retry_log() -> Any:
    handler = RetryLog()
    logger = logging.getLogger("fractal_assets.hot.retry")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


class OutageAt(HotStore):
    """The real store, whose server is killed just before the ``nth`` call of ``method``; a
    thread restarts it once the retry policy has reported the failure."""

    def __init__(self, server: RedisProcess, keys: Keys, method: str, nth: int, retry_log: RetryLog) -> None:
        super().__init__(redis.Redis.from_url(server.url), keys)
        self.server, self.method, self.nth, self.retry_log = server, method, nth, retry_log
        self.calls = 0
        self.restarter: threading.Thread | None = None
        setattr(self, method, self._outage_before(getattr(self, method)))

    def _outage_before(self, original: Any) -> Any:
        def call(*args: Any) -> Any:
            self.calls += 1
            if self.calls == self.nth:
                self.server.kill()
                self.restarter = threading.Thread(target=self._restart_after_failure)
                self.restarter.start()
            return original(*args)
        call.__name__ = original.__name__
        return call

    def _restart_after_failure(self) -> None:
        self.retry_log.failed.wait(timeout=30)
        time.sleep(OUTAGE_S)
        self.server.start()


KILL_POINTS = [
    ("source_checkpoint", 1, "source_checkpoint"),  # the first read of a (re)started process
    ("checkpoints", 1, "checkpoints"),
    ("commit", 1, "commit"),
    ("commit", 5, "commit"),
    ("_advance_source", 4, "commit"),  # inside a commit: symbol entries stored, source checkpoint not
    ("_send", 6, "commit"),  # inside a commit, before its symbol entries
    ("write_indicators", 1, "write_indicators"),  # right after the first commit of a full batch
    ("write_indicators", 7, "write_indicators"),
    ("write_metrics", 1, "write_metrics"),  # the first heartbeat
    ("write_metrics", 2, "write_metrics"),
    ("drop_process_metrics", 1, "drop_process_metrics"),  # the run's last call
]


@pytest.mark.parametrize(("method", "nth", "outer"), KILL_POINTS, ids=[f"{m}-{n}" for m, n, _ in KILL_POINTS])
def test_every_kind_of_redis_call_survives_an_outage(
    tmp_path: Path, retry_log: RetryLog, method: str, nth: int, outer: str
) -> None:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    try:
        config = Config.from_env(data_dir=tmp_path / "data", redis_url=server.url, key_prefix="",
                                 batch_size=250, indicator_every=250, redis_retry_s=60)
        path = tmp_path / "ticks.csv"
        frame = write_ticks(path, 20_000, symbols=(SYMBOL,))
        head = tmp_path / "head.csv"
        frame.iloc[:3_000].to_csv(head, index=False)
        Ingestor(config, HotStore(redis.Redis.from_url(server.url), Keys()), SOURCE).run(open_feed(head))

        store = OutageAt(server, Keys(), method, nth, retry_log)
        report = Ingestor(config, store, SOURCE).run(open_feed(path, chunk_rows=1_000))
        store.restarter.join()

        assert server.starts == 2, "the server was killed and started again"
        assert retry_log.lines[0].startswith(f"Redis unreachable during {outer} ("), retry_log.lines
        assert retry_log.lines[-1] == f"Redis answers again; {outer} went through"
        assert report.total_accepted == 17_000 and report.skipped == 3_000
        stored = store.read_ticks(SYMBOL)
        assert stored.ticks["ts"].tolist() == frame["ts"].tolist(), "every tick once, in order"
        assert stored.seq.tolist() == list(range(20_000))
        assert store.read_indicator(SYMBOL, "tick_imbalance", "5m") is not None
        assert not store.client.exists(store.keys.ingest_metrics(SOURCE)), "an ended process leaves no metrics"
    finally:
        server.close()


def ckpt_count(client: redis.Redis) -> int:
    """Ticks committed so far (0 while the server is down)."""
    try:
        return int(client.hget(Keys().checkpoint(SYMBOL), "count") or 0)
    except redis.ConnectionError:
        return 0


def wait_for_count(client: redis.Redis, proc: subprocess.Popen, count: int) -> None:
    while ckpt_count(client) < count:
        assert proc.poll() is None, "ingest ended before reaching the kill point"
        time.sleep(0.01)


def start_ingest(server: RedisProcess, tmp_path: Path, path: Path, speed: str, retry_s: str) -> subprocess.Popen:
    env = {**os.environ, "FRACTAL_REDIS_URL": server.url, "FRACTAL_KEY_PREFIX": "", "FRACTAL_REDIS_RETRY_S": retry_s}
    cmd = [sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(tmp_path / "data"), "ingest",
           "--source", str(path), "--speed", speed]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_paced_ingest_survives_repeated_three_second_outages(tmp_path: Path) -> None:
    """The reported probe, three times in one run: the server killed mid-replay at 15 %, 40 %
    and 65 % of the ticks, each time restarted 3 s later."""
    server = RedisProcess(tmp_path / "redis")
    server.start()
    path = tmp_path / "paced.csv"
    frame = write_ticks(path, 60_000, symbols=(SYMBOL,))
    proc = start_ingest(server, tmp_path, path, speed="300", retry_s="60")
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1)
    try:
        for share in (0.15, 0.40, 0.65):
            wait_for_count(client, proc, int(share * len(frame)))
            server.kill()
            time.sleep(3.0)
            server.start()
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
        assert "accepted 60000 ticks" in out
        stored = HotStore(client, Keys()).read_ticks(SYMBOL)
        assert stored.ticks["ts"].tolist() == frame["ts"].tolist()
        assert np.array_equal(stored.seq, np.arange(60_000))
        assert err.count("Redis unreachable during") == 3
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()


def test_an_outage_longer_than_the_window_ends_ingest_with_one_line_and_resumes_exactly(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    path = tmp_path / "paced.csv"
    frame = write_ticks(path, 30_000, symbols=(SYMBOL,))
    proc = start_ingest(server, tmp_path, path, speed="300", retry_s="2")
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1)
    try:
        wait_for_count(client, proc, 9_000)
        server.kill()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1
        assert "Traceback" not in err
        last = err.strip().splitlines()[-1]
        assert last.startswith("fractal: error: Redis at FRACTAL_REDIS_URL: RedisUnavailable: "
                               "Redis did not answer for "), err[-2000:]
        assert "s (FRACTAL_REDIS_RETRY_S=2) during " in last

        server.start()
        partial = HotStore(client, Keys()).read_ticks(SYMBOL)
        assert 9_000 <= len(partial.ticks) < len(frame)
        assert partial.ticks["ts"].tolist() == frame["ts"].iloc[:len(partial.ticks)].tolist()
        resumed = start_ingest(server, tmp_path, path, speed="0", retry_s="60")
        _, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err[-2000:]
        stored = HotStore(client, Keys()).read_ticks(SYMBOL)
        assert stored.ticks["ts"].tolist() == frame["ts"].tolist()
        assert np.array_equal(stored.seq, np.arange(len(frame)))
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()


def test_a_wrong_password_is_not_waited_for(tmp_path: Path, retry_log: RetryLog) -> None:
    """Credentials do not heal with time: the policy raises an AuthenticationError at once."""
    server = RedisProcess(tmp_path / "redis", password="right")
    server.start()
    try:
        url = f"unix://:wrong@{server.socket}"
        config = Config.from_env(data_dir=tmp_path / "data", redis_url=url, key_prefix="")
        with pytest.raises(redis.AuthenticationError):
            Ingestor(config, HotStore(redis.Redis.from_url(url), Keys()), SOURCE)
        assert retry_log.lines == []
    finally:
        server.close()
