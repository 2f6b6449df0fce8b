"""The `anychannel-async consume` command as processes: killed, restarted, signalled, refused."""

from __future__ import annotations

import time

import redis

from anychannel_async.testing import Faults, ZendeskEmulator

from .conftest import TOKEN, raw_resource, wait_for
from .redis_support import (
    GROUP,
    STREAM,
    RedisServer,
    add,
    assert_each_imported_once,
    conversations,
    delivered,
    drained,
    group_info,
    start_consumer,
    terminate,
)


def test_a_killed_workers_entries_are_claimed_by_the_survivor(
    redis_server: RedisServer, rdb: redis.Redis, emulator: ZendeskEmulator
) -> None:
    """Two workers share a stream; one is SIGKILLed mid-stream; the other claims its pending
    entries after --claim-idle: every resource imported exactly once, every entry acked."""
    emulator.faults = Faults(latency=0.05)
    entries = conversations(300, replies_per_post=2)
    add(rdb, entries)
    options = ("--claim-idle", "1", "--max-batch-size", "10", "--max-pending", "40")
    doomed = start_consumer(redis_server, emulator, "worker-a", *options)
    survivor = start_consumer(redis_server, emulator, "worker-b", *options)
    try:

        def doomed_holds_entries() -> bool:
            try:
                consumers = rdb.xinfo_consumers(STREAM, GROUP)
            except redis.exceptions.ResponseError:
                return False
            held = {c["name"]: c["pending"] for c in consumers}
            return bool(held.get(b"worker-a", 0) >= 10 and delivered(rdb) >= 100)

        wait_for(doomed_holds_entries, "worker-a holds entries mid-stream", timeout=20)
        doomed.kill()
        doomed.wait(timeout=10)
        assert group_info(rdb)["lag"] > 0  # killed mid-stream, not at its end
        wait_for(lambda: drained(rdb), "the stream is drained", timeout=40)
        status, out, err = terminate(survivor)
    finally:
        for process in (doomed, survivor):
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)
    assert status == 0, err
    claimed = int(out.split("claimed ")[1].split(")")[0])
    assert claimed > 0, out
    assert_each_imported_once(emulator, entries)
    assert rdb.xlen(STREAM + ":dead") == 0
    assert rdb.xpending(STREAM, GROUP)["pending"] == 0


def test_consumer_rides_out_a_redis_restart(
    durable_redis: RedisServer, emulator: ZendeskEmulator
) -> None:
    """Redis killed and started again mid-run: the consumer retries, writes the outcomes that
    became final meanwhile, and finishes: every resource imported once, every entry acked."""
    emulator.faults = Faults(latency=0.1)
    entries = conversations(200)
    with redis.Redis(port=durable_redis.port) as conn:
        add(conn, entries)
    worker = start_consumer(
        durable_redis, emulator, "worker", "--max-batch-size", "10", "--max-pending", "60"
    )
    try:
        with redis.Redis(port=durable_redis.port) as conn:
            wait_for(lambda: delivered(conn) >= 100, "the worker is mid-stream", timeout=20)
        durable_redis.kill()
        time.sleep(1.5)  # pushes in flight finish while Redis is away
        durable_redis.start()
        with redis.Redis(port=durable_redis.port) as conn:
            wait_for(lambda: drained(conn), "the stream is drained", timeout=30)
            status, _, err = terminate(worker)
            assert conn.xpending(STREAM, GROUP)["pending"] == 0
            assert conn.xlen(STREAM + ":dead") == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=10)
    assert status == 0, err
    assert "retrying until it is back" in err
    assert_each_imported_once(emulator, entries)


def test_sigterm_finishes_what_is_in_flight_acks_and_exits_zero(
    redis_server: RedisServer, rdb: redis.Redis, emulator: ZendeskEmulator
) -> None:
    """SIGTERM stops reading; every entry read is pushed and acked before a clean exit."""
    emulator.faults = Faults(latency=0.4)
    entries = [raw_resource(f"slow-{n}") for n in range(300)]
    ids = add(rdb, entries)
    worker = start_consumer(
        redis_server,
        emulator,
        "worker",
        "--max-batch-size",
        "10",
        "--max-in-flight",
        "2",
        "--max-pending",
        "50",
    )
    try:
        wait_for(lambda: len(emulator.requests) >= 2, "pushes are in flight", timeout=20)
        started = time.monotonic()
        status, out, err = terminate(worker)
        took = time.monotonic() - started
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=10)
    assert status == 0, err
    assert took < 15
    group = group_info(rdb)
    assert group["pending"] == 0
    last = group["last-delivered-id"].decode()
    read = [e for i, e in zip(ids, entries, strict=True) if _id_key(i) <= _id_key(last)]
    unread = entries[len(read) :]
    assert 0 < len(read) < len(entries)
    assert_each_imported_once(emulator, read)
    assert all(emulator.import_count(str(e["external_id"])) == 0 for e in unread)
    assert f"imported {len(read)}" in out


def test_a_refused_token_stops_the_consumer_without_acking_anything(
    redis_server: RedisServer, rdb: redis.Redis, emulator: ZendeskEmulator
) -> None:
    """Credentials Zendesk refuses would fail every resource: the consumer exits 1, and what it
    read stays pending instead of being dead-lettered."""
    add(rdb, [raw_resource(f"auth-{n}") for n in range(20)])
    worker = start_consumer(redis_server, emulator, "worker", token=TOKEN + "-wrong")
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 1
    assert "AuthenticationError" in err
    assert delivered(rdb) > 0
    assert group_info(rdb)["pending"] == delivered(rdb)
    assert rdb.xlen(STREAM + ":dead") == 0
    assert TOKEN not in out + err


def _id_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a number pair, so ids compare in stream order."""
    millis, sequence = entry_id.split("-")
    return int(millis), int(sequence)
