"""A one-line progress display for long CLI runs, written to stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from fractal_assets.ingest.ingestor import IngestReport


class Progress:
    """Redraws at most ten times a second; a bar when the total is known, counts otherwise."""

    def __init__(self, total: int | None = None, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        """Looked up when the display is made: sys.stderr may have been replaced since import."""
        self.width = width
        self._started = time.monotonic()
        self._drawn = 0.0

    def __call__(self, done: int, report: IngestReport) -> None:
        now = time.monotonic()
        if now - self._drawn < 0.1:
            return
        self._drawn = now
        rate = report.total_accepted / max(now - self._started, 1e-9)
        counts = f"{report.total_accepted:,} accepted, {report.total_rejected:,} rejected, {rate:,.0f} ticks/s"
        if self.total:
            filled = min(self.width, int(self.width * done / self.total))
            bar = "#" * filled + "." * (self.width - filled)
            line = f"[{bar}] {min(100, 100 * done // self.total):3d}%  {counts}"
        else:
            line = f"{done:,} records  {counts}"
        self.stream.write("\r" + line)
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
