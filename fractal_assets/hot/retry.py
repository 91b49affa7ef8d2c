"""One retry policy for every Redis call of the resident ingest process.

A Redis restart or a network cut must not end a process meant to run for weeks:
each call it makes to the hot tier is sent again, after pauses growing from 50 ms
to 1 s, until the server answers or ``FRACTAL_REDIS_RETRY_S`` (60 s) have passed
since the call began. Then the call raises :class:`RedisUnavailable`,
whose message is the one line the command ends with.

Sending a call again is safe because each of them is idempotent: a commit's
writes are guarded by the checkpoint watermarks they advance (``hot.store``),
indicator and metric writes overwrite values, and reads change nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis
from redis.exceptions import AuthorizationError, ClusterDownError, ExternalAuthProviderError

T = TypeVar("T")

TRANSIENT = (redis.ConnectionError, redis.TimeoutError, ClusterDownError)
"""Errors of a server that is down, restarting (``LOADING`` is a ConnectionError) or
unreachable, or of a cluster failing over: worth waiting for."""
LASTING = (redis.AuthenticationError, AuthorizationError, ExternalAuthProviderError)
"""ConnectionErrors that waiting does not cure (wrong credentials or rights): raised at once."""

log = logging.getLogger(__name__)


class RedisUnavailable(redis.ConnectionError):
    """Redis did not answer within the retry window."""


@dataclass(frozen=True)
class RetryPolicy:
    """Send a call again while Redis is unreachable, for at most ``window_s`` seconds."""

    window_s: float
    first_pause_s: float = 0.05
    max_pause_s: float = 1.0

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)``, sent again after each transient failure until ``window_s`` after the
        call began (an attempt may itself take a few seconds: redis-py reconnects within it)."""
        began = time.monotonic()
        pause = self.first_pause_s
        failures = 0
        while True:
            try:
                result = fn(*args)
                break
            except LASTING:
                raise
            except TRANSIENT as exc:
                failures += 1
                if failures == 1:
                    log.warning("Redis unreachable during %s (%s); retrying for up to %g s",
                                _name(fn), _failure(exc), self.window_s)
                elapsed = time.monotonic() - began
                if elapsed >= self.window_s:
                    raise RedisUnavailable(
                        f"Redis did not answer for {elapsed:.0f} s (FRACTAL_REDIS_RETRY_S={self.window_s:g}) "
                        f"during {_name(fn)}; last error {_failure(exc)}"
                    ) from exc
                time.sleep(min(pause, self.window_s - elapsed))
                pause = min(2 * pause, self.max_pause_s)
        if failures:
            log.warning("Redis answers again; %s went through", _name(fn))
        return result


def _name(fn: Callable[..., object]) -> str:
    return getattr(fn, "__name__", repr(fn))


def _failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
