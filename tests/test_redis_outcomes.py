"""Writing outcomes to a real redis-server: a dead letter is never lost, nothing written twice."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from anychannel_async import AnyChannelClient, PushPipeline
from anychannel_async.sources import SourceError, consume_stream
from anychannel_async.sources._wire import SETTLE_LUA
from anychannel_async.testing import ZendeskEmulator

from .conftest import IPID
from .redis_support import GROUP, STREAM, axrange


async def test_a_dead_letter_redis_refuses_leaves_its_entry_pending(
    ardb: redis.asyncio.Redis,
    emulator: ZendeskEmulator,
    client: AnyChannelClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When the dead letter cannot be written (the dead key holds a string), the entry is not
    acknowledged without it: it stays pending and the consumer stops with SourceError."""
    await ardb.set(STREAM + ":dead", "not a stream")
    bad = await ardb.xadd(STREAM, {"payload": "no resource field"})
    async with PushPipeline(client, IPID, max_latency=0.01) as pipeline:
        with pytest.raises(SourceError, match="WRONGTYPE"):
            async with asyncio.timeout(10):
                await consume_stream(
                    pipeline, ardb, stream=STREAM, group=GROUP, consumer="c1", block_ms=100
                )
    held = await ardb.xpending_range(STREAM, GROUP, min="-", max="+", count=10)
    assert [(h["message_id"], h["consumer"]) for h in held] == [(bad, b"c1")]
    assert await ardb.get(STREAM + ":dead") == b"not a stream"
    assert any("consumer stops: SourceError" in r.getMessage() for r in caplog.records)


async def test_settling_again_after_a_lost_reply_writes_nothing_twice(
    ardb: redis.asyncio.Redis,
) -> None:
    """The settle script run twice for the same outcomes (its first reply lost) acks and
    dead-letters each entry once; with the group gone it settles nothing and fails nothing."""
    done = await ardb.xadd(STREAM, {"resource": "{}"})
    dead = await ardb.xadd(STREAM, {"resource": "{}"})
    await ardb.xgroup_create(STREAM, GROUP, id="0")
    await ardb.xreadgroup(GROUP, "c1", {STREAM: ">"})
    settle = ardb.register_script(SETTLE_LUA)
    args = [GROUP, done, 0, dead, 4, "id", dead, "error", "E: x"]
    keys = [STREAM, STREAM + ":dead"]
    assert await settle(keys, args) == 2
    assert await settle(keys, args) == 0
    assert (await ardb.xpending(STREAM, GROUP))["pending"] == 0
    letters = await axrange(ardb, STREAM + ":dead")
    assert [f[b"id"] for _, f in letters] == [dead]
    await ardb.xgroup_destroy(STREAM, GROUP)
    assert await settle(keys, args) == 0
    assert len(await axrange(ardb, STREAM + ":dead")) == 1
