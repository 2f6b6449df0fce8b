"""What a hostile caller does to the push path: hooks that raise, cancellations mid-way."""

from __future__ import annotations

import asyncio

import pytest

from anychannel_async import (
    AnyChannelClient,
    PushPipeline,
    PushResult,
    StatusCode,
)
from anychannel_async.testing import ZendeskEmulator

from .conftest import IPID, codes, resource, settle


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
