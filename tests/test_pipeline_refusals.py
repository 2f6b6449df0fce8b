"""PushPipeline under Zendesk's limits: 429, 413 and 400, and the account's pace."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator

import pytest

from anychannel_async import (
    AnyChannelClient,
    Author,
    PushPipeline,
    RequestRejectedError,
    StatusCode,
)
from anychannel_async._ratelimit import AccountPace
from anychannel_async.testing import Fault, Faults, ZendeskEmulator

from .conftest import (
    FAST_RETRY,
    IPID,
    TOKEN,
    codes,
    pushes,
    requests_with,
    resource,
    settle,
    wait_until,
)

# -- 429, 413 and 400 -------------------------------------------------------------------------


async def test_rate_limited_pipeline_waits_for_retry_after(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """After a 429 no request arrives before Retry-After has passed, and everything succeeds."""
    emulator.faults = Faults(retry_after=1)
    emulator.script(Fault.RATE_LIMITED)
    async with PushPipeline(client, IPID, max_batch_size=2) as pipe:
        futures = [await pipe.submit(resource("first"))]
        await wait_until(lambda: client.pace.rate_limited == 1)
        # Submitted during the pause: these batches must wait it out as well.
        futures += [await pipe.submit(resource(f"r{n}")) for n in range(6)]
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 7
    requests = pushes(emulator)
    [limited] = [r for r in requests if r.status == 429]
    assert limited is requests[0] or limited == requests[0]
    assert len(requests) >= 1 + 1 + 3  # the 429, "first" again, three batches of two
    assert all(r.at >= limited.at + 1.0 - 0.01 for r in requests[1:])
    assert emulator.rate_limited_count == 1


async def test_too_large_batch_is_split(
    emulator: ZendeskEmulator,
) -> None:
    """A 413 for too many resources splits the batch until every part is accepted."""
    async with (
        ZendeskEmulator(accounts={IPID: TOKEN}, max_resources_per_request=10) as small,
        AnyChannelClient(token=TOKEN, base_url=small.base_url, retry=FAST_RETRY) as client,
        PushPipeline(client, IPID, max_batch_size=40) as pipe,
    ):
        futures = [await pipe.submit(resource(f"r{n:02d}")) for n in range(40)]
        outcomes = await settle(futures)
        stats = pipe.stats
        accepted = [r for r in pushes(small) if r.status == 200]
        refused = [r for r in pushes(small) if r.status == 413]
        imports = [small.import_count(f"r{n:02d}") for n in range(40)]
    assert codes(outcomes) == [StatusCode.SUCCESS] * 40
    assert imports == [1] * 40
    assert all(len(r.external_ids) <= 10 for r in accepted)
    assert sum(len(r.external_ids) for r in accepted) == 40
    assert refused
    assert len(refused[0].external_ids) == 40
    assert stats.requests == len(accepted) + len(refused)
    assert stats.max_batch_size == 40
    assert stats.failed == {}
    assert emulator.requests == []  # the default emulator was not used


async def test_bad_resources_are_found_by_bisection(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A 400 caused by one resource fails only it, with RequestRejectedError; the rest land."""
    # Zendesk checks an author's locale against the account's supported locales, which the
    # client cannot know: a well-formed resource that gets the whole request a 400.
    bad = resource("r5", author=Author("a-5", locale="xx-klingon"))
    ids = [f"r{n}" for n in range(8)]
    async with PushPipeline(client, IPID, max_batch_size=8) as pipe:
        futures = [await pipe.submit(bad if i == "r5" else resource(i)) for i in ids]
        outcomes = await settle(futures)
    expected: list[object] = [StatusCode.SUCCESS] * 8
    expected[5] = RequestRejectedError
    assert codes(outcomes) == expected
    error = outcomes[5]
    assert isinstance(error, RequestRejectedError)
    assert error.status == 400
    assert all(emulator.import_count(i) == 1 for i in ids if i != "r5")
    assert emulator.ticket_for("r5") is None
    assert pipe.stats.failed == {"RequestRejectedError": 1}
    # Bisection: 8 (400) -> 0-3 ok, 4-7 (400) -> 4-5 (400) -> 4 ok, 5 (400); then 6-7 ok.
    assert [r.status for r in pushes(emulator)] == [400, 200, 400, 400, 200, 400, 200]
    assert pipe.stats.requests == 7


async def test_resource_too_large_alone_is_rejected_and_the_rest_land(
    emulator: ZendeskEmulator,
) -> None:
    """A resource the server refuses with 413 even alone fails; its batch neighbours land."""
    async with (
        ZendeskEmulator(accounts={IPID: TOKEN}, max_body_bytes=4000) as small,
        AnyChannelClient(token=TOKEN, base_url=small.base_url, retry=FAST_RETRY) as client,
        PushPipeline(client, IPID, max_batch_size=6) as pipe,
    ):
        ids = [f"r{n}" for n in range(6)]
        futures = [await pipe.submit(resource(i, "x" * 5000 if i == "r2" else None)) for i in ids]
        outcomes = await settle(futures)
        imports = {i: small.import_count(i) for i in ids}
    expected: list[object] = [StatusCode.SUCCESS] * 6
    expected[2] = RequestRejectedError
    assert codes(outcomes) == expected
    error = outcomes[2]
    assert isinstance(error, RequestRejectedError)
    assert error.status == 413
    assert imports == {i: 0 if i == "r2" else 1 for i in ids}


# -- pace -------------------------------------------------------------------------------------
#
# The pace decides when a request may start; what happens after (aiohttp's own start of the
# request, the connection, the arrival at the emulator) adds however long the machine takes: on
# a loaded CI machine a first connection took ~85 ms, and aiohttp's request-start signal lagged
# the pace's decision by a few ms, unevenly. So the spacing is read where the pace acts: the
# moment it lets a request go (`AccountPace.reserve`), on the pace's own clock.


class _RecordingPace(AccountPace):
    """An account's pace that notes the time (its clock) each time it lets a request go."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[float] = []

    def reserve(self) -> None:
        # Read after `delay()` said 0, before the slot is taken: never earlier than the slot.
        self.starts.append(time.monotonic())
        super().reserve()


@pytest.fixture
async def starts(emulator: ZendeskEmulator) -> AsyncIterator[tuple[AnyChannelClient, list[float]]]:
    """A client whose requests' start times (as its pace lets them go) are recorded."""
    pace = _RecordingPace()
    async with AnyChannelClient(
        token=TOKEN, base_url=emulator.base_url, retry=FAST_RETRY, pace=pace
    ) as client:
        yield client, pace.starts


def spaced(started: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(started)]


INTERVAL = 60 / (600 - 1)  # a budget of 600 a minute: one request fewer, evenly spaced


async def test_max_requests_per_minute_paces_requests_evenly(
    starts: tuple[AnyChannelClient, list[float]], emulator: ZendeskEmulator
) -> None:
    """With a budget, requests start evenly spaced and the server never answers 429."""
    client, started = starts
    emulator.faults = Faults(rate_limit=6, rate_window=1.0)
    async with PushPipeline(
        client, IPID, max_requests_per_minute=600, max_batch_size=10, max_in_flight=4
    ) as pipe:
        futures = [await pipe.submit(resource(f"r{n:02d}")) for n in range(60)]
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 60
    assert emulator.rate_limited_count == 0
    requests = pushes(emulator)
    assert [len(r.external_ids) for r in requests] == [10] * 6
    assert len(started) == 6
    assert all(gap >= INTERVAL - 1e-6 for gap in spaced(started)), spaced(started)


async def test_budget_is_learned_from_rate_limit_headers(
    starts: tuple[AnyChannelClient, list[float]], emulator: ZendeskEmulator
) -> None:
    """With no budget given, X-Rate-Limit sets the pace after the first answer; no 429."""
    client, started = starts
    emulator.faults = Faults(rate_limit=600, rate_window=60.0)
    async with PushPipeline(client, IPID, max_batch_size=10, max_in_flight=4) as pipe:
        first = await pipe.push(resource("first"))
        futures = [await pipe.submit(resource(f"r{n:02d}")) for n in range(40)]
        outcomes = await settle(futures)
    assert first.code is StatusCode.SUCCESS
    assert codes(outcomes) == [StatusCode.SUCCESS] * 40
    assert emulator.rate_limited_count == 0
    assert len(pushes(emulator)) == len(started) == 5
    later = started[1:]
    assert all(gap >= INTERVAL - 1e-6 for gap in spaced(later)), spaced(later)


async def test_pipelines_sharing_a_client_share_the_429_pause(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A 429 met by one pipeline holds back the requests of another on the same client."""
    emulator.faults = Faults(retry_after=1)
    emulator.script(Fault.RATE_LIMITED)
    async with PushPipeline(client, IPID) as first, PushPipeline(client, IPID) as second:
        limited = await first.submit(resource("a"))
        await wait_until(lambda: client.pace.rate_limited == 1)
        [limited_request] = [r for r in pushes(emulator) if r.status == 429]
        other = await second.push(resource("b"))
        result = await limited
    assert (result.code, other.code) == (StatusCode.SUCCESS, StatusCode.SUCCESS)
    [b_request] = requests_with(emulator, "b")
    assert b_request.at >= limited_request.at + 1.0 - 0.01
    assert emulator.rate_limited_count == 1
