"""When the next request to one Zendesk account may start.

Zendesk limits requests per account (its host) per minute, whatever endpoint, instance or
process sends them, so every pipeline on a client shares the client's pace, and every client of
one host may share one pace (``AnyChannelClient(pace=...)``, as `PushPool` does). It owns four
rules:

- after a 429, no request starts before its ``Retry-After`` has passed;
- with a requests-per-minute budget, requests start evenly spaced, ``60 / budget`` seconds
  apart, so a fixed per-minute window never sees a burst it would answer with 429;
- with no budget given, the budget is learned from the ``X-Rate-Limit`` answer header, so the
  client slows down before the budget runs out instead of after a 429;
- with ``max_in_flight`` given, at most that many requests are under way to the host at once,
  and senders waiting for one take turns in the order they asked. A pool's many pipelines
  wait here, with their batches still open and filling, rather than in the connection pool
  with one small batch each already cut.

It never sends anything itself; it only says when.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable, Mapping
from typing import Protocol

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


class TurnTaker(Protocol):
    """One in line for a turn of a host's requests (a pipeline's sender). An object, not a
    bound method: a pool's accounts wait in line by the thousand, ~64 bytes each."""

    def offered(self) -> bool: ...


class AccountPace:
    """Decides when a request to the account (host) may start; shared by all its users."""

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        max_in_flight: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_budget(requests_per_minute)
        if max_in_flight is not None and (type(max_in_flight) is not int or max_in_flight < 1):
            raise ConfigurationError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        self._limit = max_in_flight
        self._in_flight = 0
        # Senders waiting for a turn: each is offered one (`offered()`) when a request ends
        # and says whether it took it (one that stopped meanwhile declines, the next is asked).
        self._turns: collections.deque[TurnTaker] = collections.deque()
        self._clock = clock
        self._budget = requests_per_minute
        self._learned: float | None = None
        self._paused_until = 0.0
        self._next_slot = 0.0
        self._last_start = -math.inf
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
        self._last_start = now
        self._next_slot = max(now, self._next_slot) + self._interval()

    def quiet_in(self) -> float:
        """Seconds until this pace knows nothing a new one would not: 0 when a fresh pace
        would let the host's next request go as this one does; inf while a request is under
        way or waits for a turn. Until then, a 429's pause is still running, or the budget's
        spacing, or (under a budget) the minute of the last request is not over: Zendesk
        counts per minute, and a fresh pace, learning the budget only from its first answer,
        could start a burst into a window already spent."""
        if self._in_flight or self._turns:
            return math.inf
        until = max(self._paused_until, self._next_slot)
        if self.requests_per_minute is not None:
            until = max(until, self._last_start + 60.0)
        return max(0.0, until - self._clock())

    async def acquire(self) -> None:
        """Wait until a request may start, then take its slot (no suspension when ready now)."""
        # Sleeps to a known deadline; loops only when a 429 moved the deadline meanwhile.
        while (wait := self.delay()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        self.reserve()

    # -- turns: requests under way to the host at once ---------------------------------------

    def try_start(self) -> bool:
        """Take a turn if one is free and nobody waits for one (no cutting in)."""
        if self._limit is None:
            return True
        if self._in_flight < self._limit and not self._turns:
            self._in_flight += 1
            return True
        return False

    def wait_turn(self, taker: TurnTaker) -> None:
        """Queue for a turn: ``taker.offered()`` is called when one is free; returning True
        takes it (the taker must `finish` it), False passes it to the next in line."""
        self._turns.append(taker)

    def finish(self) -> None:
        """A turn ends (its request completed, or it went unused): hand it to the next in
        line, else free it."""
        if self._limit is None:
            return
        while self._turns:
            if self._turns.popleft().offered():
                return
        self._in_flight -= 1
