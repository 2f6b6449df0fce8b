"""What every long-lived object of the package shares: its state, and the one event loop it
belongs to (its tasks, futures and events are that loop's: used from another, it would hang).
"""

from __future__ import annotations

import asyncio
import enum

from ._errors import EventLoopError

__all__ = ["Latch", "State", "bind_loop"]


class State(enum.Enum):
    """OPEN → CLOSING → CLOSED; a closed object is never reopened."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


def bind_loop(bound: asyncio.AbstractEventLoop | None, what: str) -> asyncio.AbstractEventLoop:
    """The running loop, which must be ``bound`` once an object is bound to one;
    `EventLoopError` naming ``what`` otherwise."""
    loop = asyncio.get_running_loop()
    if bound is not None and loop is not bound:
        raise EventLoopError(f"this {what} was opened on another event loop; create one per loop")
    return loop


class Latch:
    """An `asyncio.Event` that is set once and never cleared, and costs nothing until someone
    waits on it (an Event holds a ~600-byte deque from the start: a pool holds two per
    account, mostly never waited on)."""

    __slots__ = ("_future", "_set")

    def __init__(self) -> None:
        self._set = False
        self._future: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    async def wait(self) -> None:
        if self._set:
            return
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        # Shielded: one waiter cancelled must not cancel the future the others wait on.
        await asyncio.shield(self._future)
