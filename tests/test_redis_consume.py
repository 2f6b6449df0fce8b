"""`consume_stream` against a real redis-server: acks, dead letters, own pending, renewals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

import redis.asyncio

from anychannel_async import AnyChannelClient, PushPipeline, RetryPolicy
from anychannel_async.sources import ConsumeStats, consume_stream
from anychannel_async.testing import Faults, ZendeskEmulator

from .conftest import IPID, TOKEN, raw_resource
from .redis_support import (
    GROUP,
    STREAM,
    RedisServer,
    adrained,
    assert_each_imported_once,
    axrange,
    conversations,
    until,
)


async def consume_until_drained(
    client: AnyChannelClient,
    conn: redis.asyncio.Redis,
    seconds: float,
    *,
    meanwhile: Callable[[asyncio.Task[ConsumeStats]], Awaitable[None]] | None = None,
    **settings: Any,
) -> ConsumeStats:
    """Run consume_stream as consumer c1 until every entry is acked (within seconds), then
    stop it; ``meanwhile`` runs first, while it consumes."""
    stop = asyncio.Event()
    async with PushPipeline(client, IPID, max_latency=0.01) as pipeline:
        task = asyncio.create_task(
            consume_stream(
                pipeline, conn, stream=STREAM, group=GROUP, consumer="c1", stop=stop, **settings
            )
        )
        if meanwhile is not None:
            await meanwhile(task)
        await until(lambda: adrained(conn), seconds)
        stop.set()
        return await task


async def test_consume_imports_each_entry_once_and_dead_letters_the_rest(
    ardb: redis.asyncio.Redis, emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """Good entries are imported once and acked; malformed, invalid and refused ones are
    dead-lettered with their error and the original entry, and acked."""
    emulator.faults = Faults(processing_error_ids=frozenset({"refused-1"}))
    good = conversations(20)
    ids = [await ardb.xadd(STREAM, {"resource": json.dumps(r)}) for r in good]
    await ardb.xadd(STREAM, {"resource": json.dumps(good[0])})  # a duplicate
    bad = [
        await ardb.xadd(STREAM, {"payload": "no resource field"}),
        await ardb.xadd(STREAM, {"resource": "{not json"}),
        await ardb.xadd(STREAM, {"resource": json.dumps(raw_resource("typo", mesage="x"))}),
        await ardb.xadd(STREAM, {"resource": json.dumps(raw_resource("refused-1"))}),
    ]
    stats = await consume_until_drained(client, ardb, 20, block_ms=100)
    assert (stats.read, stats.imported, stats.dead_lettered) == (len(ids) + 5, len(ids) + 1, 4)
    assert (await ardb.xpending(STREAM, GROUP))["pending"] == 0
    dead = await axrange(ardb, STREAM + ":dead")
    letters: dict[bytes | str, dict[bytes, bytes]] = {f[b"id"]: f for _, f in dead}
    assert sorted(letters) == sorted(bad)
    errors = [letters[i][b"error"].decode() for i in bad]
    assert errors[0].startswith("MalformedEntryError: ")
    assert "resource" in errors[0]
    assert json.loads(letters[bad[0]][b"fields"]) == {"payload": "no resource field"}
    assert errors[1].startswith("MalformedEntryError: ")
    assert "not JSON" in errors[1]
    assert letters[bad[1]][b"resource"] == b"{not json"
    assert errors[2].startswith("ValidationError: ")
    assert "mesage" in errors[2]
    assert errors[3].startswith("ProcessingError: ")
    assert json.loads(letters[bad[3]][b"resource"])["external_id"] == "refused-1"
    assert_each_imported_once(emulator, good)
    assert emulator.import_count("refused-1") == 0


async def test_own_pending_entries_from_an_earlier_life_are_read_first(
    ardb: redis.asyncio.Redis, emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """Entries delivered to a consumer name that died before acking are handled when a
    consumer of the same name starts, without waiting for claim_idle."""
    entries = conversations(5)
    for entry in entries:
        await ardb.xadd(STREAM, {"resource": json.dumps(entry)})
    await ardb.xgroup_create(STREAM, GROUP, id="0")
    await ardb.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=4)  # then "crashed"
    stats = await consume_until_drained(client, ardb, 10, claim_idle=3600, block_ms=100)
    assert (stats.read, stats.claimed, stats.imported) == (len(entries), 0, len(entries))
    assert_each_imported_once(emulator, entries)


async def test_resp3_and_decoded_responses_work_alike(
    redis_server: RedisServer, emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """A client speaking RESP3 with decode_responses=True gets the same acks and dead letters."""
    entries = conversations(3)
    conn = redis.asyncio.Redis(port=redis_server.port, protocol=3, decode_responses=True)
    try:
        for entry in entries:
            await conn.xadd(STREAM, {"resource": json.dumps(entry)})
        bad = await conn.xadd(STREAM, {"resource": "[1, 2]"})
        stats = await consume_until_drained(client, conn, 10)
        assert (stats.imported, stats.dead_lettered) == (len(entries), 1)
        [(_, letter)] = cast(list[tuple[str, dict[str, str]]], await conn.xrange(STREAM + ":dead"))
        assert letter["id"] == bad
        assert letter["error"].startswith("ValidationError: ")
    finally:
        await conn.aclose()
    assert_each_imported_once(emulator, entries)


async def test_entries_held_while_the_hand_is_full_stay_owned_when_outcomes_stall(
    ardb: redis.asyncio.Redis, emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """With the hand full (max_unacked) and Zendesk answering later than claim_idle, the
    consumer goes on touching the entries it holds: another consumer's XAUTOCLAIM takes none,
    so no other process pushes them at the same time."""
    # The consumer renews what it holds every claim_idle / 2 (0.5 s here): a loaded machine
    # may be that much late now and then without another consumer's claim succeeding.
    claim_idle = 1.0
    emulator.faults = Faults(latency=3.5)  # outcomes stall for over three times claim_idle
    entries = [raw_resource("held-1"), raw_resource("held-2")]
    loop = asyncio.get_running_loop()
    for entry in entries:
        await ardb.xadd(STREAM, {"resource": json.dumps(entry)})
    await ardb.xgroup_create(STREAM, GROUP, id="0")

    async def held_by_c1() -> list[dict[str, Any]]:
        held = await ardb.xpending_range(STREAM, GROUP, min="-", max="+", count=10)
        return [dict(h) for h in held]

    async def hand_full() -> bool:
        return len(await held_by_c1()) == len(entries)

    async def watch(task: asyncio.Task[ConsumeStats]) -> None:
        await until(hand_full, 5)
        # Watch past twice claim_idle, well before Zendesk answers.
        deadline = loop.time() + 2 * claim_idle
        while loop.time() < deadline:
            await asyncio.sleep(0.1)
            taken = await ardb.xautoclaim(STREAM, GROUP, "c2", int(claim_idle * 1000), justid=True)
            assert taken == []  # the ids claimed, with justid
            held = await held_by_c1()
            assert [h["consumer"] for h in held] == [b"c1"] * len(entries)
            assert all(h["time_since_delivered"] < claim_idle * 1000 for h in held), held
        assert not task.done()

    stats = await consume_until_drained(
        client,
        ardb,
        10,
        meanwhile=watch,
        claim_idle=claim_idle,
        block_ms=100,
        max_unacked=len(entries),
    )
    assert (stats.read, stats.claimed, stats.imported) == (len(entries), 0, len(entries))
    assert_each_imported_once(emulator, entries)


async def test_a_reply_chain_whose_root_ends_unknown_stays_pending_and_lands_later(
    ardb: redis.asyncio.Redis, emulator: ZendeskEmulator
) -> None:
    """The root of a reply chain ends of unknown outcome (every push answered 503): its
    replies, held back behind it, fail with errors that may pass (RETRY), so no entry is
    dead-lettered: all stay pending, come back through XAUTOCLAIM once Zendesk answers, and
    the chain lands in one ticket, in order, each reply once."""
    chain = [raw_resource("p")] + [
        raw_resource(f"c{n}", parent_id="p" if n == 0 else f"c{n - 1}") for n in range(5)
    ]
    for entry in chain:
        await ardb.xadd(STREAM, {"resource": json.dumps(entry)})
    emulator.faults = Faults(server_error_rate=1.0)
    stop = asyncio.Event()
    async with (
        AnyChannelClient(
            token=TOKEN, base_url=emulator.base_url, retry=RetryPolicy(initial_delay=0, max_tries=1)
        ) as client,
        PushPipeline(client, IPID, max_latency=0, max_batch_size=1, max_attempts=1) as pipeline,
    ):
        task = asyncio.create_task(
            consume_stream(
                pipeline,
                ardb,
                stream=STREAM,
                group=GROUP,
                consumer="c1",
                stop=stop,
                claim_idle=0.5,
                block_ms=100,
            )
        )

        async def all_failed_once() -> bool:
            return pipeline.stats.failed.get("ParentNotFoundError", 0) == len(chain) - 1

        await until(all_failed_once, 20)
        assert pipeline.stats.failed == {"OutcomeUnknownError": 1, "ParentNotFoundError": 5}
        assert await ardb.xlen(STREAM + ":dead") == 0
        emulator.faults = Faults()
        await until(lambda: adrained(ardb), 30)
        stop.set()
        stats = await task
    assert stats.dead_lettered == 0
    assert await ardb.xlen(STREAM + ":dead") == 0
    assert_each_imported_once(emulator, chain[:2])
    assert [[c.external_id for c in t.comments] for t in emulator.tickets] == [
        [str(e["external_id"]) for e in chain]
    ]
