"""PushPipeline batching: how resources are cut into requests."""

from __future__ import annotations

import asyncio
import itertools
import math

from anychannel_async import (
    AnyChannelClient,
    PushPipeline,
    StatusCode,
)
from anychannel_async._serde import encode_push_body, encode_resource
from anychannel_async.testing import Faults, ZendeskEmulator

from .conftest import (
    IPID,
    batch_sizes,
    codes,
    pushes,
    resource,
    settle,
    wait_until,
)

# -- batching ---------------------------------------------------------------------------------


async def test_resources_within_max_latency_share_one_request(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Resources submitted within max_latency of the first go out in a single request."""
    async with PushPipeline(client, IPID, max_latency=0.5) as pipe:  # a slow machine's too
        futures = []
        for n in range(10):
            futures.append(await pipe.submit(resource(f"r{n}")))
            await asyncio.sleep(0)  # let the sender look: it must wait, not send
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 10
    assert batch_sizes(emulator) == [10]


async def test_max_batch_size_closes_batches(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Batches hold at most max_batch_size resources; flush sends the remainder."""
    async with PushPipeline(client, IPID, max_batch_size=5, max_latency=30.0) as pipe:
        futures = [await pipe.submit(resource(f"r{n:02d}")) for n in range(12)]
        await pipe.flush()
        assert all(f.done() for f in futures)
    assert sorted(batch_sizes(emulator)) == [2, 5, 5]
    sent = sorted(i for r in pushes(emulator) for i in r.external_ids)
    assert sent == [f"r{n:02d}" for n in range(12)]


async def test_max_batch_bytes_closes_batches(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """No request body exceeds max_batch_bytes, and batches are cut by bytes, not count."""
    limit = 2000
    resources = {f"r{n}": resource(f"r{n}", "m" * 500) for n in range(10)}
    async with PushPipeline(client, IPID, max_batch_bytes=limit, max_latency=30.0) as pipe:
        futures = [await pipe.submit(r) for r in resources.values()]
        await pipe.flush()
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 10
    bodies = [
        len(encode_push_body(IPID, [encode_resource(resources[i]) for i in r.external_ids]))
        for r in pushes(emulator)
    ]
    assert all(size <= limit for size in bodies)
    one = len(encode_resource(resources["r0"]).body)
    assert len(bodies) >= math.ceil(10 * one / limit)
    assert all(len(r.external_ids) >= 2 for r in pushes(emulator)[:-1])


async def test_back_pressure_fills_batches(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """While every request slot is busy, waiting resources fill the next batch to the brim."""
    # The 150 submits below must all come before the first answer: 0.5 s away, however slow
    # the machine.
    emulator.faults = Faults(latency=0.5)
    async with PushPipeline(
        client, IPID, max_in_flight=1, max_batch_size=50, max_latency=0.0, close_timeout=2.0
    ) as pipe:
        futures = [await pipe.submit(resource("first"))]
        await wait_until(lambda: len(pushes(emulator)) == 1)
        for n in range(150):
            futures.append(await pipe.submit(resource(f"r{n:03d}")))
            await asyncio.sleep(0)  # the sender may run between submits: max_latency is 0
        outcomes = await asyncio.wait_for(settle(futures), timeout=10.0)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 151
    assert batch_sizes(emulator) == [1, 50, 50, 50]


async def test_one_request_in_flight_sends_every_batch_in_turn(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """With max_in_flight=1 each batch goes out once the previous answer is back, to the last."""
    emulator.faults = Faults(latency=0.05)
    async with PushPipeline(
        client, IPID, max_in_flight=1, max_batch_size=2, close_timeout=2.0
    ) as pipe:
        futures = [await pipe.submit(resource(f"r{n}")) for n in range(6)]
        outcomes = await asyncio.wait_for(settle(futures), timeout=10.0)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 6
    requests = pushes(emulator)
    assert [r.external_ids for r in requests] == [("r0", "r1"), ("r2", "r3"), ("r4", "r5")]
    assert all(b.at >= a.at + 0.05 - 1e-3 for a, b in itertools.pairwise(requests))


async def test_at_most_max_in_flight_requests_at_once(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """No more than max_in_flight requests are ever outstanding together."""
    emulator.faults = Faults(latency=0.1)
    async with PushPipeline(
        client, IPID, max_in_flight=2, max_batch_size=2, close_timeout=2.0
    ) as pipe:
        futures = [await pipe.submit(resource(f"r{n:02d}")) for n in range(12)]
        outcomes = await asyncio.wait_for(settle(futures), timeout=10.0)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 12
    arrivals = [r.at for r in pushes(emulator)]
    assert len(arrivals) == 6
    # A third request can only start once one of the two before it has been answered.
    assert all(c >= a + 0.1 - 1e-3 for a, c in zip(arrivals, arrivals[2:], strict=False))
