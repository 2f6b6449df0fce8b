"""`produce` and `consume --accounts` against a real redis-server and several emulators: entries
name their account, an unknown one is a dead letter, a refused token holds only its account."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import cast

import pytest
import redis
import redis.asyncio

from anychannel_async import Account, AccountStore, PushPool, RetryPolicy
from anychannel_async.sources import consume_stream
from anychannel_async.testing import ZendeskEmulator

from .accounts_support import (
    HOST_A,
    closed_port_url,
    imported,
    line,
    store_accounts,
    token,
)
from .conftest import cli, raw_resource, start_cli, wait_for, wait_until
from .redis_support import (
    GROUP,
    STREAM,
    Entries,
    RedisServer,
    adrained,
    axrange,
    terminate,
    until,
    xrange,
)


def produce(server: RedisServer, source: Path) -> tuple[int, str, str]:
    done = cli("produce", str(source), "--redis", server.url, "--stream", STREAM, token=None)
    return done.returncode, done.stdout, done.stderr


def test_produce_writes_both_fields_of_an_accounts_line(
    redis_server: RedisServer, rdb: redis.Redis, tmp_path: Path
) -> None:
    """An account's line becomes an entry with instance_push_id and resource; a bare resource
    line, an entry with resource alone; a line whose account is not a string is skipped."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(
            [
                line("a1", "r-1"),
                json.dumps(raw_resource("bare")),
                json.dumps({"instance_push_id": 7, "resource": raw_resource("x")}),
                line("b1", "r-2", mesage="typo"),
            ]
        )
        + "\n"
    )
    status, out, err = produce(redis_server, source)
    assert status == 1
    assert "appended 2 entries" in out
    assert "line 3: invalid: instance_push_id: must be a non-empty string" in err
    assert "line 4: invalid" in err
    assert "mesage" in err
    entries = [fields for _, fields in xrange(rdb, STREAM)]
    assert entries == [
        {
            b"instance_push_id": b"a1",
            b"resource": json.dumps(raw_resource("r-1"), separators=(",", ":")).encode(),
        },
        {b"resource": json.dumps(raw_resource("bare"), separators=(",", ":")).encode()},
    ]


def test_consume_accounts_pushes_each_entry_to_its_account(
    redis_server: RedisServer,
    rdb: redis.Redis,
    host_a: ZendeskEmulator,
    host_b: ZendeskEmulator,
    tmp_path: Path,
) -> None:
    """Produced from accounts' lines, consumed with --accounts: each entry lands in its
    account on its host; an entry for an unknown account, or without one, is a dead letter
    saying so and keeping the account; a2's refused token leaves its entries pending (not
    dead) while the others are imported, and once the store holds the right token they are
    imported too, without a restart."""
    store = tmp_path / "accounts.sqlite"
    store_accounts(
        store,
        {
            "a1": (host_a.base_url, token("a1")),
            "a2": (host_a.base_url, "wrong"),
            "b1": (host_b.base_url, token("b1")),
        },
    )
    ids = {ipid: [f"{ipid}-{n}" for n in range(30)] for ipid in ("a1", "a2", "b1")}
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join([line(i, ids[i][n]) for n in range(30) for i in ids] + [line("nobody", "lost-1")])
        + "\n"
    )
    assert produce(redis_server, source)[0] == 0
    rdb.xadd(STREAM, {"resource": json.dumps(raw_resource("no-account"))})

    consumer = start_cli(
        "consume",
        "--redis",
        redis_server.url,
        "--stream",
        STREAM,
        "--group",
        GROUP,
        "--consumer",
        "c1",
        "--accounts",
        str(store),
        "--max-latency",
        "0.01",
        "--block-ms",
        "200",
        "--claim-idle",
        "1",
        token=None,
    )
    try:
        wait_for(
            lambda: imported(host_a) >= set(ids["a1"]) and imported(host_b) == set(ids["b1"]),
            "a1's and b1's entries are imported",
        )
        wait_for(lambda: rdb.xlen(STREAM + ":dead") == 2, "two dead letters are written")
        assert not imported(host_a) & set(ids["a2"])
        letters = {f[b"id"]: f for _, f in xrange(rdb, STREAM + ":dead")}
        by_error = {f[b"error"].decode(): f for f in letters.values()}
        unknown = by_error["UnknownAccountError: no account for instance push id 'nobody'"]
        assert unknown[b"instance_push_id"] == b"nobody"
        assert json.loads(unknown[b"resource"])["external_id"] == "lost-1"
        [missing] = [f for e, f in by_error.items() if e.startswith("MalformedEntryError")]
        assert b"instance_push_id" in missing[b"error"]
        assert json.loads(missing[b"resource"])["external_id"] == "no-account"
        # a2's entries, neither acked nor dead letters; the others' all acked
        wait_for(lambda: rdb.xpending(STREAM, GROUP)["pending"] == 30, "only a2's are pending")
        assert not imported(host_a) & set(ids["a2"])

        store_accounts(store, {"a2": (host_a.base_url, token("a2"))})
        wait_for(lambda: imported(host_a) >= set(ids["a2"]), "a2's entries are imported")
        wait_for(lambda: rdb.xpending(STREAM, GROUP)["pending"] == 0, "every entry is acked")
    finally:
        status, out, err = terminate(consumer)
    assert status == 0, out + err
    assert "Traceback" not in err
    assert err.count("instance push id a2: AuthenticationError") == 1, err
    for secret in (token("a1"), token("a2"), token("b1"), "wrong"):
        assert secret not in out + err
    assert rdb.xlen(STREAM + ":dead") == 2
    assert all(host_a.import_count(i) == 1 for i in ids["a1"] + ids["a2"])
    assert all(host_b.import_count(i) == 1 for i in ids["b1"])


async def test_consume_stream_with_a_pool_and_an_unreachable_host_goes_on_for_the_others(
    ardb: redis.asyncio.Redis, host_a: ZendeskEmulator
) -> None:
    """A pool whose account b1 is on a host that is down: b1's entries stay pending, the
    host A accounts' entries are imported and acked meanwhile."""
    accounts = {i: Account(i, base_url=host_a.base_url, token=token(i)) for i in HOST_A}
    accounts["b1"] = Account("b1", base_url=closed_port_url(), token=token("b1"))
    for n in range(20):
        for ipid in (*HOST_A, "b1"):
            await ardb.xadd(
                STREAM,
                {"instance_push_id": ipid, "resource": json.dumps(raw_resource(f"{ipid}-{n}"))},
            )
    stop = asyncio.Event()
    retry = RetryPolicy(initial_delay=0.05, max_tries=2)
    async with PushPool(accounts, max_latency=0.01, timeout=2.0, retry=retry) as pool:
        task = asyncio.create_task(
            consume_stream(
                pool, ardb, stream=STREAM, group=GROUP, consumer="c1", block_ms=100, stop=stop
            )
        )

        async def host_a_done() -> bool:
            return imported(host_a) == {f"{i}-{n}" for i in HOST_A for n in range(20)}

        await until(host_a_done, 30)
        stop.set()
        stats = await task
    assert stats.imported == 40
    assert stats.dead_lettered == 0
    held = await ardb.xpending_range(STREAM, GROUP, min="-", max="+", count=100)
    assert len(held) == 20  # b1's, left for a later delivery
    assert not await adrained(ardb)
    assert await axrange(ardb, STREAM + ":dead") == []


@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "str"])
async def test_an_entry_for_an_unknown_account_is_a_dead_letter_saying_so(
    redis_server: RedisServer, host_a: ZendeskEmulator, tmp_path: Path, decode: bool
) -> None:
    """Through consume_stream with a pool over a store: the unknown account's entry is
    dead-lettered with UnknownAccountError and its instance push id, the known one acked."""
    conn = redis.asyncio.Redis(port=redis_server.port, decode_responses=decode)
    try:
        await conn.xadd(
            STREAM, {"instance_push_id": "ghost", "resource": json.dumps(raw_resource("g"))}
        )
        await conn.xadd(
            STREAM, {"instance_push_id": "a1", "resource": json.dumps(raw_resource("k"))}
        )
        stop = asyncio.Event()
        async with (
            AccountStore(tmp_path / "accounts.sqlite") as store,
            PushPool(store, max_latency=0.01) as pool,
        ):
            await store.put(Account("a1", base_url=host_a.base_url, token=token("a1")))
            task = asyncio.create_task(
                consume_stream(
                    pool, conn, stream=STREAM, group=GROUP, consumer="c1", block_ms=100, stop=stop
                )
            )
            await until(lambda: adrained(conn), 20)
            stop.set()
            stats = await task
        assert (stats.imported, stats.dead_lettered) == (1, 1)
        [(_, letter)] = cast(Entries, await conn.xrange(STREAM + ":dead"))
        fields = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in letter.items()
        }
        assert fields["error"] == "UnknownAccountError: no account for instance push id 'ghost'"
        assert fields["instance_push_id"] == "ghost"
        assert imported(host_a) == {"k"}
    finally:
        await conn.aclose()


async def test_an_accounts_store_away_for_a_while_leaves_entries_pending_and_the_consumer_on(
    ardb: redis.asyncio.Redis,
    host_a: ZendeskEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The accounts in a Redis of their own, which goes away: the entry whose account the
    pool must look up is left pending (no dead letter: nothing is wrong with it), reads
    pause, and once the store is back the entry is imported; the consumer never stops."""
    (tmp_path / "accounts").mkdir()
    accounts = RedisServer(tmp_path / "accounts")
    accounts.start()
    try:
        async with AccountStore(accounts.url) as store:
            stop = asyncio.Event()
            async with PushPool(store, max_latency=0.01) as pool:
                accounts.kill()
                await ardb.xadd(
                    STREAM, {"instance_push_id": "a1", "resource": json.dumps(raw_resource("k"))}
                )
                task = asyncio.create_task(
                    consume_stream(
                        pool,
                        ardb,
                        stream=STREAM,
                        group=GROUP,
                        consumer="c1",
                        block_ms=100,
                        claim_idle=0.5,
                        stop=stop,
                    )
                )

                def tried() -> bool:  # its submit failed: said so, or the end
                    return task.done() or any(
                        "accounts store" in r.getMessage() for r in caplog.records
                    )

                await wait_until(tried)
                accounts.start()  # empty again: the account is put back
                await store.put(Account("a1", base_url=host_a.base_url, token=token("a1")))

                async def done() -> bool:
                    return task.done() or await adrained(ardb)

                await until(done, 30)
                assert not task.done()  # the consumer went on
                stop.set()
                stats = await task
    finally:
        accounts.kill()
    assert (stats.imported, stats.dead_lettered) == (1, 0)
    assert stats.left_pending >= 1
    assert imported(host_a) == {"k"}
    assert await axrange(ardb, STREAM + ":dead") == []
