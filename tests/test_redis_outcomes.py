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
from .redis_support import GROUP, STREAM, RedisServer, axrange


async def test_a_dead_letter_redis_refuses_leaves_its_entry_pending(
    redis_server: RedisServer,
    emulator: ZendeskEmulator,
    client: AnyChannelClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When the dead letter cannot be written (the dead key holds a string), the entry is not
    acknowledged without it: it stays pending and the consumer stops with SourceError."""
    conn = redis.asyncio.Redis(port=redis_server.port)
    try:
        await conn.set(STREAM + ":dead", "not a stream")
        bad = await conn.xadd(STREAM, {"payload": "no resource field"})
        async with PushPipeline(client, IPID, max_latency=0.01) as pipeline:
            with pytest.raises(SourceError, match="WRONGTYPE"):
                async with asyncio.timeout(10):
                    await consume_stream(
                        pipeline, conn, stream=STREAM, group=GROUP, consumer="c1", block_ms=100
                    )
        held = await conn.xpending_range(STREAM, GROUP, min="-", max="+", count=10)
        assert [(h["message_id"], h["consumer"]) for h in held] == [(bad, b"c1")]
        assert await conn.get(STREAM + ":dead") == b"not a stream"
        assert any("consumer stops: SourceError" in r.getMessage() for r in caplog.records)
    finally:
        await conn.aclose()


async def test_settling_again_after_a_lost_reply_writes_nothing_twice(
    redis_server: RedisServer,
) -> None:
    """The settle script run twice for the same outcomes (its first reply lost) acks and
    dead-letters each entry once; with the group gone it settles nothing and fails nothing."""
    conn = redis.asyncio.Redis(port=redis_server.port)
    try:
        done = await conn.xadd(STREAM, {"resource": "{}"})
        dead = await conn.xadd(STREAM, {"resource": "{}"})
        await conn.xgroup_create(STREAM, GROUP, id="0")
        await conn.xreadgroup(GROUP, "c1", {STREAM: ">"})
        settle = conn.register_script(SETTLE_LUA)
        args = [GROUP, done, 0, dead, 4, "id", dead, "error", "E: x"]
        keys = [STREAM, STREAM + ":dead"]
        assert await settle(keys, args) == 2
        assert await settle(keys, args) == 0
        assert (await conn.xpending(STREAM, GROUP))["pending"] == 0
        letters = await axrange(conn, STREAM + ":dead")
        assert [f[b"id"] for _, f in letters] == [dead]
        await conn.xgroup_destroy(STREAM, GROUP)
        assert await settle(keys, args) == 0
        assert len(await axrange(conn, STREAM + ":dead")) == 1
    finally:
        await conn.aclose()
