"""Fixed-capacity ring buffer of structured numpy records, one per symbol.

Appends are whole-batch copies; reads of the newest records are views into
the buffer whenever the window does not wrap around its end.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """The newest ``capacity`` records of one stream, in arrival order."""

    def __init__(self, capacity: int, dtype: np.dtype) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._buf = np.zeros(capacity, dtype=dtype)
        self._end = 0
        self._size = 0
        self.total = 0
        """Records ever appended."""

    @property
    def capacity(self) -> int:
        return len(self._buf)

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return self._buf.nbytes

    def append(self, records: np.ndarray) -> None:
        """Add records; beyond capacity the oldest are overwritten."""
        cap = self.capacity
        n = len(records)
        self.total += n
        if n >= cap:
            self._buf[:] = records[n - cap:]
            self._end, self._size = 0, cap
            return
        first = min(n, cap - self._end)
        self._buf[self._end:self._end + first] = records[:first]
        self._buf[:n - first] = records[first:]
        self._end = (self._end + n) % cap
        self._size = min(cap, self._size + n)

    def _segments(self) -> tuple[np.ndarray, np.ndarray]:
        """(older, newer): two contiguous views whose concatenation is the content."""
        cap, end, size = self.capacity, self._end, self._size
        if size <= end:
            return self._buf[:0], self._buf[end - size:end]
        if end == 0:
            return self._buf[:0], self._buf[cap - size:]
        return self._buf[cap - (size - end):], self._buf[:end]

    def latest(self, n: int) -> np.ndarray:
        """The newest ``n`` records, oldest first: a view unless they wrap."""
        older, newer = self._segments()
        n = min(max(n, 0), self._size)
        if n <= len(newer):
            return newer[len(newer) - n:]
        return np.concatenate((older[len(older) - (n - len(newer)):], newer))

    def recent(self, seconds: float, ts_field: str = "ts") -> np.ndarray:
        """Records within ``seconds`` of the newest one's timestamp (epoch ms), oldest first."""
        _, newer = self._segments()
        if len(newer) == 0:
            return newer
        return self.since(int(newer[ts_field][-1]) - int(seconds * 1000), ts_field)

    def since(self, cutoff: int, ts_field: str = "ts") -> np.ndarray:
        """Records stamped at or after ``cutoff`` (epoch ms), oldest first.

        A view unless the window wraps. Assumes timestamps do not decrease in
        arrival order (validation keeps them within a small tolerance).
        """
        older, newer = self._segments()
        if len(older) == 0 or older[ts_field][-1] < cutoff:
            return newer[np.searchsorted(newer[ts_field], cutoff, side="left"):]
        return np.concatenate((older[np.searchsorted(older[ts_field], cutoff, side="left"):], newer))
