"""What a hostile caller does to the push path: hooks that raise, halts and parked keys with
requests in flight, rate-limit pauses, hurries."""

from __future__ import annotations

import asyncio

import pytest

from anychannel_async import (
    AnyChannelClient,
    PushPipeline,
    PushResult,
    RetryPolicy,
    StatusCode,
)
from anychannel_async.testing import Fault, Faults, ZendeskEmulator

from .conftest import IPID, TOKEN, codes, comment_ids, pushes, resource, settle, wait_until


async def test_an_on_settled_hook_that_raises_leaves_nothing_pending(
    client: AnyChannelClient, emulator: ZendeskEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the hook is logged; every future still settles with its own outcome, and the
    hook still hears of each resource (a parent's children included)."""
    heard: list[asyncio.Future[PushResult]] = []

    def hook(future: asyncio.Future[PushResult]) -> None:
        heard.append(future)
        raise RuntimeError("a bug in the hook")

    async with PushPipeline(client, IPID, max_latency=0.01, on_settled=hook) as pipeline:
        futures = [await pipeline.submit(resource("p"))]
        futures += [await pipeline.submit(resource(f"c{n}", parent_id="p")) for n in range(3)]
        futures += [await pipeline.submit(resource(f"r{n}")) for n in range(3)]
        async with asyncio.timeout(10.0):
            outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 7
    assert sorted(map(id, heard)) == sorted(map(id, futures))
    assert "a bug in the hook" in caplog.text


@pytest.mark.parametrize("seed", range(4))
async def test_halts_and_parked_keys_keep_each_conversation_in_order(
    client: AnyChannelClient, emulator: ZendeskEmulator, seed: int
) -> None:
    """Processing errors halt the rest of their request while other requests of the same
    conversations are in flight, and latency reorders answers: every conversation's comments
    still land in submission order, every future settles, nothing stays counted."""
    failing = {f"t{t}-{n}" for t in range(6) for n in range(0, 40, 7)}
    emulator.faults = Faults(seed=seed, latency=0.01, latency_jitter=0.05)
    emulator.faults.processing_error_ids = frozenset(failing)
    heard: list[asyncio.Future[PushResult]] = []
    async with PushPipeline(
        client,
        IPID,
        max_in_flight=4,
        max_batch_size=7,
        max_latency=0.005,
        on_settled=heard.append,
    ) as pipeline:
        futures = []
        for n in range(40):
            for t in range(6):
                futures.append(await pipeline.submit(resource(f"t{t}-{n}", thread_id=f"t{t}")))
            if n % 5 == 0:
                await asyncio.sleep(0.01)
        async with asyncio.timeout(30.0):
            outcomes = await settle(futures)
        assert pipeline.stats.pending == 0
        assert pipeline.stats.resent > 0  # halted resources went again
    expected = {
        f"t{t}": [f"t{t}-{n}" for n in range(40) if f"t{t}-{n}" not in failing] for t in range(6)
    }
    for thread, ids in expected.items():
        assert comment_ids(emulator, f"{thread}-1") == ids
    assert sum(isinstance(o, PushResult) for o in outcomes) == sum(map(len, expected.values()))
    assert len(heard) == len(futures)


@pytest.mark.parametrize("max_in_flight", [1, 3])
async def test_the_sender_goes_on_after_a_rate_limit_pause_and_a_hurry(
    emulator: ZendeskEmulator, max_in_flight: int
) -> None:
    """A 429 the client does not retry itself pauses the account: what is queued then, and
    what comes during the pause, goes once it ends; a batch left waiting out max_latency
    after a flush still goes at its time (its timer is not lost to the hurry)."""
    emulator.faults = Faults(retry_after=0.2)
    emulator.script(Fault.RATE_LIMITED)
    async with (
        AnyChannelClient(
            token=TOKEN, base_url=emulator.base_url, retry=RetryPolicy(max_tries=1)
        ) as client,
        PushPipeline(client, IPID, max_in_flight=max_in_flight, max_latency=0.05) as pipeline,
    ):
        first = [await pipeline.submit(resource(f"a{n}")) for n in range(3)]
        await wait_until(lambda: len(pushes(emulator)) == 1)  # the 429
        during = [await pipeline.submit(resource(f"b{n}")) for n in range(3)]
        async with asyncio.timeout(10.0):
            await pipeline.flush()
        assert codes(await settle(first + during)) == [StatusCode.SUCCESS] * 6
        late = await pipeline.submit(resource("late"))  # no flush: max_latency sends it
        async with asyncio.timeout(10.0):
            assert (await late).code is StatusCode.SUCCESS
        assert pipeline.stats.pending == 0
