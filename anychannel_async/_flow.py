"""Flow control: a bound on resources accepted but not yet resolved.

Producers wait for room instead of growing a buffer without bound (Pub/Sub #16, KPL #122) or
dropping what does not fit (Segment). Waiters are served first come, first served.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

__all__ = ["FlowControl"]


class FlowControl:
    """Counts accepted resources against a limit; ``acquire`` waits while the limit is reached."""

    __slots__ = ("_limit", "_used", "_waiters")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        # Made on the first wait: a pool holds two per account, mostly never waited on, and
        # an empty deque is ~600 bytes.
        self._waiters: deque[asyncio.Future[None]] | None = None

    @property
    def used(self) -> int:
        """Resources accepted and not yet released."""
        return self._used

    def try_acquire(self) -> bool:
        """Take one unit if one is free and nobody waits; never suspends."""
        if self._used < self._limit and not self._waiters:
            self._used += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take one unit, waiting (in arrival order) while all are taken."""
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = deque()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            # Granted at the moment of cancellation: hand the unit on rather than leak it. (A
            # waiter failed by wake_all was granted nothing, and gives nothing back.)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()
            else:
                with contextlib.suppress(ValueError):  # release() may have popped it already
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give one unit back, waking the longest waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the unit passes straight to the waiter
                return
        self._used -= 1

    def wake_all(self, error: Callable[[], BaseException]) -> None:
        """Fail every waiter, each with its own error (used when the pipeline closes)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error())
