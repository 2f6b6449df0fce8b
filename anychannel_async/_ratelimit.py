"""When the next request to one Zendesk account may start.

Zendesk limits requests per account (its host) per minute, whatever endpoint, instance or
process sends them, so every pipeline on a client shares the client's pace, and every client of
one host may share one pace (``AnyChannelClient(pace=...)``, as `PushPool` does). It owns three
rules:

- after a 429, no request starts before its ``Retry-After`` has passed;
- with a requests-per-minute budget, requests start evenly spaced, ``60 / budget`` seconds
  apart, so a fixed per-minute window never sees a burst it would answer with 429;
- with no budget given, the budget is learned from the ``X-Rate-Limit`` answer header, so the
  client slows down before the budget runs out instead of after a 429.

It never sends anything itself; it only says when.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping

from ._errors import ConfigurationError

__all__ = ["AccountPace", "parse_retry_after"]

# Retry-After missing or unreadable on a 429: wait this long rather than hammer.
_DEFAULT_RETRY_AFTER = 1.0
# The longest pause a Retry-After may impose: every request to the account waits it out, so a
# broken header (inf, 1e400, a date in year 9999) must not stop the client for good.
_MAX_RETRY_AFTER = 3600.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return _DEFAULT_RETRY_AFTER
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return (
            min(max(0.0, seconds), _MAX_RETRY_AFTER)
            if math.isfinite(seconds)
            else _DEFAULT_RETRY_AFTER
        )
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return _DEFAULT_RETRY_AFTER
    current = time.time() if now is None else now
    try:
        return min(max(0.0, when.timestamp() - current), _MAX_RETRY_AFTER)
    except (OverflowError, ValueError, OSError):  # a naive or far date
        return _DEFAULT_RETRY_AFTER


def _check_budget(requests_per_minute: float | None) -> None:
    if requests_per_minute is not None and not 0 < requests_per_minute < math.inf:
        raise ConfigurationError(
            f"max_requests_per_minute must be a finite number > 0, got {requests_per_minute!r}"
        )


class AccountPace:
    """Decides when a request to the account (host) may start; shared by all its users."""

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_budget(requests_per_minute)
        self._clock = clock
        self._budget = requests_per_minute
        self._learned: float | None = None
        self._paused_until = 0.0
        self._next_slot = 0.0
        #: Number of 429 answers seen.
        self.rate_limited = 0

    @property
    def requests_per_minute(self) -> float | None:
        """The budget in force: the one given, else the one learned, else None (unpaced)."""
        return self._budget if self._budget is not None else self._learned

    def set_budget(self, requests_per_minute: float | None) -> None:
        """Set the budget; the smallest one given wins, as every user shares one account."""
        if requests_per_minute is None:
            return
        _check_budget(requests_per_minute)
        if self._budget is None or requests_per_minute < self._budget:
            self._budget = requests_per_minute

    def pause(self, seconds: float) -> None:
        """Hold every request back for seconds (a 429's Retry-After)."""
        self.rate_limited += 1
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn the account's budget from an answer's ``X-Rate-Limit`` header."""
        limit = headers.get("X-Rate-Limit")
        if limit is None:
            return
        try:
            value = float(limit)
        except ValueError:
            return
        if value > 0:
            self._learned = value

    def delay(self) -> float:
        """Seconds until a request may start; 0 when one may start now."""
        now = self._clock()
        return max(0.0, self._paused_until - now, self._next_slot - now)

    def _interval(self) -> float:
        budget = self.requests_per_minute
        if budget is None:
            return 0.0
        # One request fewer than the budget per minute: evenly spaced starts can otherwise put
        # budget + 1 requests into one fixed window, depending on where the window begins.
        return 60.0 / max(budget - 1.0, 0.5)

    def reserve(self) -> None:
        """Take the slot of a request starting now."""
        now = self._clock()
        self._next_slot = max(now, self._next_slot) + self._interval()

    async def acquire(self) -> None:
        """Wait until a request may start, then take its slot (no suspension when ready now)."""
        # Sleeps to a known deadline; loops only when a 429 moved the deadline meanwhile.
        while (wait := self.delay()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        self.reserve()
