"""What every long-lived object of the package shares: its state, and the one event loop it
belongs to (its tasks, futures and events are that loop's: used from another, it would hang).
"""

from __future__ import annotations

import asyncio
import enum

from ._errors import EventLoopError

__all__ = ["State", "bind_loop"]


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
