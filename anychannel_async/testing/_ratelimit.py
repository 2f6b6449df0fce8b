"""The emulated account's request budget: fixed windows of `rate_window` seconds.

It counts every request to any endpoint, as Zendesk's account-wide limit does, and only says
whether a request fits; the HTTP layer turns that into headers and a 429.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import attrs

__all__ = ["Admission", "FixedWindow"]


@attrs.frozen
class Admission:
    """The verdict for one request: its headers' values and, when refused, how long to wait."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: int


class FixedWindow:
    """Counts requests in fixed windows; a window opens with the first request after the last
    one ended, so an idle emulator starts every burst with a full budget."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start: float | None = None
        self._count = 0

    def reset(self) -> None:
        """Forget the current window."""
        with self._lock:
            self._window_start = None
            self._count = 0

    def admit(self, limit: int, window: float) -> Admission:
        """Count one request against `limit` requests per `window` seconds."""
        with self._lock:
            now = self._clock()
            if self._window_start is None or now >= self._window_start + window:
                self._window_start = now
                self._count = 0
            self._count += 1
            # Retry-After is whole seconds; rounding down could send the client back too early.
            retry_after = max(1, math.ceil(self._window_start + window - now))
            return Admission(
                allowed=self._count <= limit,
                limit=limit,
                remaining=max(0, limit - self._count),
                retry_after=retry_after,
            )
