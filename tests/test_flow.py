"""Flow control: the bound on accepted, unresolved resources."""

from __future__ import annotations

import asyncio

import pytest

from anychannel_async import ClosedError
from anychannel_async._flow import FlowControl


async def test_a_waiter_failed_by_close_and_then_cancelled_gives_nothing_back() -> None:
    """A waiter woken with an error was granted no unit, so cancelling it returns none."""
    flow = FlowControl(1)
    await flow.acquire()
    waiter = asyncio.create_task(flow.acquire())
    await asyncio.sleep(0)
    flow.wake_all(lambda: ClosedError("closed"))
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert flow.used == 1


async def test_a_unit_granted_at_cancellation_is_handed_on() -> None:
    """A waiter cancelled just as it was granted a unit passes the unit to the next waiter."""
    flow = FlowControl(1)
    await flow.acquire()
    first = asyncio.create_task(flow.acquire())
    second = asyncio.create_task(flow.acquire())
    await asyncio.sleep(0)
    flow.release()  # granted to first
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    assert flow.used == 1
