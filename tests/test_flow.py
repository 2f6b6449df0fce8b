"""Flow control: the bound on accepted, unresolved resources."""

from __future__ import annotations

import asyncio
import math

import attrs
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


# -- a host's turns (AccountPace.max_in_flight) ------------------------------------------------

from anychannel_async._ratelimit import AccountPace  # noqa: E402


@attrs.define
class Taker:
    """A sender in line for a turn: takes it, noting its name, unless it stopped meanwhile."""

    taken: list[str]
    name: str
    takes: bool = True

    def offered(self) -> bool:
        if self.takes:
            self.taken.append(self.name)
        return self.takes


def taker(taken: list[str], name: str) -> Taker:
    return Taker(taken, name)


STOPPED = Taker([], "stopped", takes=False)  # a sender that stopped meanwhile


def test_turns_are_taken_up_to_the_limit_and_handed_on_in_order() -> None:
    pace = AccountPace(max_in_flight=2)
    assert pace.try_start()
    assert pace.try_start()
    assert not pace.try_start()
    taken: list[str] = []
    pace.wait_turn(taker(taken, "first"))
    pace.wait_turn(taker(taken, "second"))
    assert not pace.try_start()  # nobody cuts in while others wait, even once one frees
    pace.finish()
    assert taken == ["first"]
    pace.finish()
    assert taken == ["first", "second"]
    pace.finish()
    pace.finish()
    assert pace.try_start()
    assert pace.try_start()
    assert not pace.try_start()


def test_a_turn_declined_goes_to_the_next_in_line_or_back_to_the_host() -> None:
    pace = AccountPace(max_in_flight=1)
    assert pace.try_start()
    taken: list[str] = []
    pace.wait_turn(STOPPED)
    pace.wait_turn(taker(taken, "next"))
    pace.finish()
    assert taken == ["next"]
    pace.wait_turn(STOPPED)
    pace.finish()  # declined, nobody else: the turn is free again
    assert pace.try_start()


def test_without_a_limit_every_request_may_start() -> None:
    pace = AccountPace()
    assert all(pace.try_start() for _ in range(1000))
    pace.finish()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_host_limit_is_a_configuration_error(bad: object) -> None:
    from anychannel_async import ConfigurationError

    with pytest.raises(ConfigurationError, match="max_in_flight"):
        AccountPace(max_in_flight=bad)  # type: ignore[arg-type]


def test_a_pace_is_quiet_once_nothing_it_knows_still_matters() -> None:
    """quiet_in: inf while a request is under way or waits for a turn; then the time left of
    a 429's pause, and under a budget of the last request's minute; 0 after."""
    now = [100.0]
    pace = AccountPace(max_in_flight=1, clock=lambda: now[0])
    assert pace.quiet_in() == 0.0
    assert pace.try_start()
    pace.wait_turn(STOPPED)
    assert pace.quiet_in() == math.inf
    pace.finish()  # declined: the turn is free again
    pace.pause(5.0)
    assert pace.quiet_in() == 5.0
    now[0] += 5.0
    assert pace.quiet_in() == 0.0
    pace.set_budget(600.0)
    pace.reserve()  # a request starts, under a budget
    now[0] += 20.0
    assert pace.quiet_in() == 40.0
    now[0] += 40.0
    assert pace.quiet_in() == 0.0
