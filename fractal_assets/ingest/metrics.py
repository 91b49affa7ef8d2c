"""Operational metrics of the ingest process, kept in Redis for `fractal status`, health and Dagster.

Latency is measured from a chunk's receipt from the feed to the moment the
Redis transaction holding its ticks has returned, i.e. until they are
visible to every reader. Samples are per micro-batch, weighted by its ticks.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

PERCENTILES = (50, 95, 99)
WINDOW = 4096
"""Recent samples kept for percentiles."""
PUSH_EVERY_S = 1.0


class Percentiles:
    """Weighted percentiles over the most recent samples."""

    def __init__(self, window: int = WINDOW) -> None:
        self._values: deque[float] = deque(maxlen=window)
        self._weights: deque[int] = deque(maxlen=window)

    def add(self, value: float, weight: int = 1) -> None:
        self._values.append(value)
        self._weights.append(weight)

    def __len__(self) -> int:
        return len(self._values)

    def get(self) -> dict[int, float]:
        """p50/p95/p99 (NaN before any sample): the smallest value whose cumulative weight reaches p%."""
        if not self._values:
            return {p: float("nan") for p in PERCENTILES}
        values = np.fromiter(self._values, dtype=np.float64)
        weights = np.fromiter(self._weights, dtype=np.float64)
        order = np.argsort(values, kind="stable")
        cumulative = np.cumsum(weights[order])
        targets = np.array(PERCENTILES) / 100 * cumulative[-1]
        return {p: float(values[order][np.searchsorted(cumulative, t)]) for p, t in zip(PERCENTILES, targets)}


@dataclass
class IngestMetrics:
    """Counters and samples of one ingest process, pushed to Redis about once a second."""

    latency_ms: Percentiles
    indicator_ms: Percentiles
    ticks: int = 0
    _window_ticks: int = 0
    _window_start: float = 0.0
    _pushed: float = 0.0
    throughput: float = 0.0

    @classmethod
    def start(cls) -> "IngestMetrics":
        now = time.monotonic()
        return cls(Percentiles(), Percentiles(), _window_start=now, _pushed=now)

    def committed(self, received: list[tuple[float, int]]) -> None:
        """Blocks just made visible: (receipt time, ticks) each."""
        now = time.monotonic()
        for at, n in received:
            self.latency_ms.add((now - at) * 1000, n)
            self.ticks += n
            self._window_ticks += n

    def due(self) -> bool:
        return time.monotonic() - self._pushed >= PUSH_EVERY_S

    def snapshot(self) -> dict[str, float | int | str]:
        """Fields of the ``metrics:ingest:<source>`` hash; restarts the throughput window."""
        now = time.monotonic()
        self.throughput = self._window_ticks / max(now - self._window_start, 1e-9)
        self._window_ticks, self._window_start, self._pushed = 0, now, now
        latency, indicator = self.latency_ms.get(), self.indicator_ms.get()
        return {
            "pid": os.getpid(),
            "updated_ms": int(time.time() * 1000),
            "ticks_total": self.ticks,
            "throughput_tps": round(self.throughput, 1),
            **{f"latency_p{p}_ms": round(v, 3) for p, v in latency.items()},
            **{f"indicator_p{p}_ms": round(v, 3) for p, v in indicator.items()},
        }
