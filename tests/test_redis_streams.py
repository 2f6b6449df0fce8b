"""The Redis Streams source against a real redis-server: acks, dead letters, claims, restarts.

Each test starts its own redis-server on a free port in a temporary directory. Tests that kill
processes run the real `anychannel-async consume` command against a thread-mode emulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import redis.asyncio

from anychannel_async import AnyChannelClient, PushPipeline
from anychannel_async.sources import SourceError, consume_stream
from anychannel_async.sources._wire import SETTLE_LUA
from anychannel_async.testing import Faults, ZendeskEmulator

from .conftest import IPID, TOKEN

STREAM = "resources"
GROUP = "zendesk"


def _resource(external_id: str, **fields: object) -> dict[str, object]:
    resource: dict[str, object] = {
        "external_id": external_id,
        "message": f"message {external_id}",
        "created_at": "2026-11-25T10:00:00Z",
        "author": {"external_id": "author-1", "name": "Ada"},
    }
    resource.update(fields)
    return resource


def _conversations(posts: int, replies_per_post: int = 1) -> list[dict[str, object]]:
    """Posts, each followed at once by its replies (which must land in the post's ticket)."""
    found: list[dict[str, object]] = []
    for n in range(posts):
        found.append(_resource(f"post-{n}"))
        found += [
            _resource(f"reply-{n}-{r}", parent_id=f"post-{n}") for r in range(replies_per_post)
        ]
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A redis-server process of the test's own, which the test may kill and start again."""

    def __init__(self, directory: Path, *, durable: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed; `make test` installs it"
                " (or: apt-get install redis-server)"
            )
        self.port = _free_port()
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if durable
            else ["--appendonly", "no"]
        )
        self._command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(directory),
            *persistence,
        ]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        with redis.Redis(port=self.port) as probe:
            while True:
                try:
                    if probe.ping():
                        return
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    if self._process.poll() is not None:
                        pytest.fail(f"redis-server exited with {self._process.returncode}")
                if time.monotonic() > deadline:
                    pytest.fail("redis-server did not answer within 10 s")
                time.sleep(0.02)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server whose data survives a restart: append-only file, fsync on every write."""
    server = RedisServer(tmp_path, durable=True)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def zendesk() -> Iterator[ZendeskEmulator]:
    """An emulator in its own thread, so blocking test code and subprocesses can use it."""
    with ZendeskEmulator(accounts={IPID: TOKEN}) as emu:
        yield emu


@pytest.fixture
def rdb(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis(port=redis_server.port) as conn:
        yield conn


def _add(conn: redis.Redis, entries: list[dict[str, object]]) -> list[str]:
    """Append resources as stream entries; returns their ids."""
    with conn.pipeline(transaction=False) as batch:
        for entry in entries:
            batch.xadd(STREAM, {"resource": json.dumps(entry)})
        return [i.decode() for i in batch.execute()]


Entries = list[tuple[bytes, dict[bytes, bytes]]]


def _xrange(conn: redis.Redis, stream: str, **options: Any) -> Entries:
    return cast(Entries, conn.xrange(stream, **options))


def _group(conn: redis.Redis) -> dict[str, Any]:
    [group] = [g for g in conn.xinfo_groups(STREAM) if g["name"] == GROUP.encode()]
    return dict(group)


async def _until(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - polling Redis: no event to wait on
            await asyncio.sleep(0.05)


async def _adrained(conn: redis.asyncio.Redis) -> bool:
    groups = await conn.xinfo_groups(STREAM)
    return bool(groups and groups[0]["lag"] == 0 and groups[0]["pending"] == 0)


def _delivered(conn: redis.Redis) -> int:
    """Entries the group has delivered so far; 0 before the group exists."""
    try:
        # Nil (None) from group creation until the group's first delivery of new entries.
        return int(_group(conn)["entries-read"] or 0)
    except (ValueError, redis.exceptions.ResponseError):
        return 0


def _drained(conn: redis.Redis) -> bool:
    """Every entry of the stream was delivered to the group and acknowledged."""
    try:
        group = _group(conn)
    except (ValueError, redis.exceptions.ResponseError):
        return False  # no group yet
    return bool(group["lag"] == 0 and group["pending"] == 0)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.05)


def _consumer(
    server: RedisServer, zendesk: ZendeskEmulator, name: str, *extra: str, token: str = TOKEN
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYCHANNEL_")}
    env["ANYCHANNEL_TOKEN"] = token
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anychannel_async",
            "consume",
            "--redis",
            server.url,
            "--stream",
            STREAM,
            "--group",
            GROUP,
            "--consumer",
            name,
            "--base-url",
            zendesk.base_url,
            "--instance-push-id",
            IPID,
            "--max-latency",
            "0.01",
            "--block-ms",
            "200",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _terminate(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


def _assert_each_imported_once(zendesk: ZendeskEmulator, entries: list[dict[str, object]]) -> None:
    counts = {str(e["external_id"]): zendesk.import_count(str(e["external_id"])) for e in entries}
    assert {k: v for k, v in counts.items() if v != 1} == {}
    for entry in entries:
        if "parent_id" in entry:
            ticket = zendesk.ticket_for(str(entry["external_id"]))
            assert ticket is not None
            assert ticket.external_id == entry["parent_id"]


# -- the library coroutine ----------------------------------------------------------------------


async def test_consume_imports_each_entry_once_and_dead_letters_the_rest(
    redis_server: RedisServer, emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """Good entries are imported once and acked; malformed, invalid and refused ones are
    dead-lettered with their error and the original entry, and acked."""
    emulator.faults = Faults(processing_error_ids=frozenset({"refused-1"}))
    good = _conversations(20)
    conn = redis.asyncio.Redis(port=redis_server.port)
    try:
        ids = [await conn.xadd(STREAM, {"resource": json.dumps(r)}) for r in good]
        await conn.xadd(STREAM, {"resource": json.dumps(good[0])})  # a duplicate
        bad = [
            await conn.xadd(STREAM, {"payload": "no resource field"}),
            await conn.xadd(STREAM, {"resource": "{not json"}),
            await conn.xadd(STREAM, {"resource": json.dumps(_resource("typo", mesage="x"))}),
            await conn.xadd(STREAM, {"resource": json.dumps(_resource("refused-1"))}),
        ]
        stop = asyncio.Event()
        async with PushPipeline(client, IPID, max_latency=0.01) as pipeline:
            task = asyncio.create_task(
                consume_stream(
                    pipeline,
                    conn,
                    stream=STREAM,
                    group=GROUP,
                    consumer="c1",
                    block_ms=100,
                    stop=stop,
                )
            )
            await _until(lambda: _adrained(conn), 20)
            stop.set()
            stats = await task
        assert (stats.read, stats.imported, stats.dead_lettered) == (len(ids) + 5, len(ids) + 1, 4)
        assert (await conn.xpending(STREAM, GROUP))["pending"] == 0
        dead = cast(Entries, await conn.xrange(STREAM + ":dead"))
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
    finally:
        await conn.aclose()
    _assert_each_imported_once(emulator, good)
    assert emulator.import_count("refused-1") == 0


async def test_own_pending_entries_from_an_earlier_life_are_read_first(
    redis_server: RedisServer, emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """Entries delivered to a consumer name that died before acking are handled when a
    consumer of the same name starts, without waiting for claim_idle."""
    entries = _conversations(5)
    conn = redis.asyncio.Redis(port=redis_server.port)
    try:
        for entry in entries:
            await conn.xadd(STREAM, {"resource": json.dumps(entry)})
        await conn.xgroup_create(STREAM, GROUP, id="0")
        await conn.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=4)  # then "crashed"
        stop = asyncio.Event()
        async with PushPipeline(client, IPID, max_latency=0.01) as pipeline:
            task = asyncio.create_task(
                consume_stream(
                    pipeline,
                    conn,
                    stream=STREAM,
                    group=GROUP,
                    consumer="c1",
                    claim_idle=3600,
                    block_ms=100,
                    stop=stop,
                )
            )
            await _until(lambda: _adrained(conn), 10)
            stop.set()
            stats = await task
        assert (stats.read, stats.claimed, stats.imported) == (len(entries), 0, len(entries))
    finally:
        await conn.aclose()
    _assert_each_imported_once(emulator, entries)


async def test_resp3_and_decoded_responses_work_alike(
    redis_server: RedisServer, emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """A client speaking RESP3 with decode_responses=True gets the same acks and dead letters."""
    entries = _conversations(3)
    conn = redis.asyncio.Redis(port=redis_server.port, protocol=3, decode_responses=True)
    try:
        for entry in entries:
            await conn.xadd(STREAM, {"resource": json.dumps(entry)})
        bad = await conn.xadd(STREAM, {"resource": "[1, 2]"})
        stop = asyncio.Event()
        async with PushPipeline(client, IPID, max_latency=0.01) as pipeline:
            task = asyncio.create_task(
                consume_stream(pipeline, conn, stream=STREAM, group=GROUP, consumer="c1", stop=stop)
            )
            await _until(lambda: _adrained(conn), 10)
            stop.set()
            stats = await task
        assert (stats.imported, stats.dead_lettered) == (len(entries), 1)
        [(_, letter)] = cast(list[tuple[str, dict[str, str]]], await conn.xrange(STREAM + ":dead"))
        assert letter["id"] == bad
        assert letter["error"].startswith("ValidationError: ")
    finally:
        await conn.aclose()
    _assert_each_imported_once(emulator, entries)


async def test_entries_held_while_the_hand_is_full_stay_owned_when_outcomes_stall(
    redis_server: RedisServer, emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """With the hand full (max_unacked) and Zendesk answering later than claim_idle, the
    consumer goes on touching the entries it holds: another consumer's XAUTOCLAIM takes none,
    so no other process pushes them at the same time."""
    claim_idle = 0.6
    emulator.faults = Faults(latency=2.0)  # outcomes stall for over three times claim_idle
    entries = [_resource("held-1"), _resource("held-2")]
    conn = redis.asyncio.Redis(port=redis_server.port)
    loop = asyncio.get_running_loop()
    try:
        for entry in entries:
            await conn.xadd(STREAM, {"resource": json.dumps(entry)})
        await conn.xgroup_create(STREAM, GROUP, id="0")

        async def held_by_c1() -> list[dict[str, Any]]:
            held = await conn.xpending_range(STREAM, GROUP, min="-", max="+", count=10)
            return [dict(h) for h in held]

        async def hand_full() -> bool:
            return len(await held_by_c1()) == len(entries)

        stop = asyncio.Event()
        async with PushPipeline(client, IPID, max_latency=0.01) as pipeline:
            task = asyncio.create_task(
                consume_stream(
                    pipeline,
                    conn,
                    stream=STREAM,
                    group=GROUP,
                    consumer="c1",
                    claim_idle=claim_idle,
                    block_ms=100,
                    max_unacked=len(entries),
                    stop=stop,
                )
            )
            await _until(hand_full, 5)
            # Watch past twice claim_idle, well before Zendesk answers.
            deadline = loop.time() + 2 * claim_idle
            while loop.time() < deadline:
                await asyncio.sleep(0.1)
                taken = await conn.xautoclaim(
                    STREAM, GROUP, "c2", int(claim_idle * 1000), justid=True
                )
                assert taken == []  # the ids claimed, with justid
                held = await held_by_c1()
                assert [h["consumer"] for h in held] == [b"c1"] * len(entries)
                assert all(h["time_since_delivered"] < claim_idle * 1000 for h in held), held
            assert not task.done()
            await _until(lambda: _adrained(conn), 10)
            stop.set()
            stats = await task
        assert (stats.read, stats.claimed, stats.imported) == (len(entries), 0, len(entries))
    finally:
        await conn.aclose()
    _assert_each_imported_once(emulator, entries)


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
        letters = await _xrange_async(conn, STREAM + ":dead")
        assert [f[b"id"] for _, f in letters] == [dead]
        await conn.xgroup_destroy(STREAM, GROUP)
        assert await settle(keys, args) == 0
        assert len(await _xrange_async(conn, STREAM + ":dead")) == 1
    finally:
        await conn.aclose()


async def _xrange_async(conn: redis.asyncio.Redis, stream: str) -> Entries:
    return cast(Entries, await conn.xrange(stream))


# -- the command, as processes ----------------------------------------------------------------


def test_a_killed_workers_entries_are_claimed_by_the_survivor(
    redis_server: RedisServer, rdb: redis.Redis, zendesk: ZendeskEmulator
) -> None:
    """Two workers share a stream; one is SIGKILLed mid-stream; the other claims its pending
    entries after --claim-idle: every resource imported exactly once, every entry acked."""
    zendesk.faults = Faults(latency=0.05)
    entries = _conversations(300, replies_per_post=2)
    _add(rdb, entries)
    options = ("--claim-idle", "1", "--max-batch-size", "10", "--max-pending", "40")
    doomed = _consumer(redis_server, zendesk, "worker-a", *options)
    survivor = _consumer(redis_server, zendesk, "worker-b", *options)
    try:

        def doomed_holds_entries() -> bool:
            try:
                consumers = rdb.xinfo_consumers(STREAM, GROUP)
            except redis.exceptions.ResponseError:
                return False
            held = {c["name"]: c["pending"] for c in consumers}
            return bool(held.get(b"worker-a", 0) >= 10 and _delivered(rdb) >= 100)

        _wait(doomed_holds_entries, 20, "worker-a holds entries mid-stream")
        doomed.kill()
        doomed.wait(timeout=10)
        assert _group(rdb)["lag"] > 0  # killed mid-stream, not at its end
        _wait(lambda: _drained(rdb), 40, "the stream is drained")
        status, out, err = _terminate(survivor)
    finally:
        for process in (doomed, survivor):
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)
    assert status == 0, err
    claimed = int(out.split("claimed ")[1].split(")")[0])
    assert claimed > 0, out
    _assert_each_imported_once(zendesk, entries)
    assert rdb.xlen(STREAM + ":dead") == 0
    assert rdb.xpending(STREAM, GROUP)["pending"] == 0


def test_consumer_rides_out_a_redis_restart(
    durable_redis: RedisServer, zendesk: ZendeskEmulator
) -> None:
    """Redis killed and started again mid-run: the consumer retries, writes the outcomes that
    became final meanwhile, and finishes: every resource imported once, every entry acked."""
    zendesk.faults = Faults(latency=0.1)
    entries = _conversations(200)
    with redis.Redis(port=durable_redis.port) as conn:
        _add(conn, entries)
    worker = _consumer(
        durable_redis, zendesk, "worker", "--max-batch-size", "10", "--max-pending", "60"
    )
    try:
        with redis.Redis(port=durable_redis.port) as conn:
            _wait(lambda: _delivered(conn) >= 100, 20, "the worker is mid-stream")
        durable_redis.kill()
        time.sleep(1.5)  # pushes in flight finish while Redis is away
        durable_redis.start()
        with redis.Redis(port=durable_redis.port) as conn:
            _wait(lambda: _drained(conn), 30, "the stream is drained")
            status, _, err = _terminate(worker)
            assert conn.xpending(STREAM, GROUP)["pending"] == 0
            assert conn.xlen(STREAM + ":dead") == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=10)
    assert status == 0, err
    assert "retrying until it is back" in err
    _assert_each_imported_once(zendesk, entries)


def test_sigterm_finishes_what_is_in_flight_acks_and_exits_zero(
    redis_server: RedisServer, rdb: redis.Redis, zendesk: ZendeskEmulator
) -> None:
    """SIGTERM stops reading; every entry read is pushed and acked before a clean exit."""
    zendesk.faults = Faults(latency=0.4)
    entries = [_resource(f"slow-{n}") for n in range(300)]
    ids = _add(rdb, entries)
    worker = _consumer(
        redis_server,
        zendesk,
        "worker",
        "--max-batch-size",
        "10",
        "--max-in-flight",
        "2",
        "--max-pending",
        "50",
    )
    try:
        _wait(lambda: len(zendesk.requests) >= 2, 20, "pushes are in flight")
        started = time.monotonic()
        status, out, err = _terminate(worker)
        took = time.monotonic() - started
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=10)
    assert status == 0, err
    assert took < 15
    group = _group(rdb)
    assert group["pending"] == 0
    last = group["last-delivered-id"].decode()
    read = [e for i, e in zip(ids, entries, strict=True) if _id_key(i) <= _id_key(last)]
    unread = entries[len(read) :]
    assert 0 < len(read) < len(entries)
    _assert_each_imported_once(zendesk, read)
    assert all(zendesk.import_count(str(e["external_id"])) == 0 for e in unread)
    assert f"imported {len(read)}" in out


def test_a_refused_token_stops_the_consumer_without_acking_anything(
    redis_server: RedisServer, rdb: redis.Redis, zendesk: ZendeskEmulator
) -> None:
    """Credentials Zendesk refuses would fail every resource: the consumer exits 1, and what it
    read stays pending instead of being dead-lettered."""
    _add(rdb, [_resource(f"auth-{n}") for n in range(20)])
    worker = _consumer(redis_server, zendesk, "worker", token=TOKEN + "-wrong")
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 1
    assert "AuthenticationError" in err
    assert _delivered(rdb) > 0
    assert _group(rdb)["pending"] == _delivered(rdb)
    assert rdb.xlen(STREAM + ":dead") == 0
    assert TOKEN not in out + err


def _id_key(entry_id: str) -> tuple[int, int]:
    millis, sequence = entry_id.split("-")
    return int(millis), int(sequence)


# -- produce ----------------------------------------------------------------------------------


def _produce(
    server: RedisServer, source: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "anychannel_async",
            "produce",
            source,
            "--redis",
            server.url,
            "--stream",
            STREAM,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_produce_appends_each_line_and_reports_bad_ones(
    redis_server: RedisServer, rdb: redis.Redis, tmp_path: Path
) -> None:
    """Each valid line becomes one entry holding the resource; bad lines are reported by
    number and skipped, and the exit status is 1."""
    good = [_resource(f"p-{n}") for n in range(1_200)]  # more than one pipelined chunk
    lines = [json.dumps(r, indent=None) for r in good]
    lines[3:3] = ["{not json", "", json.dumps(_resource("typo", mesage="x"))]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    done = _produce(redis_server, str(source))
    assert done.returncode == 1
    assert "line 4: not JSON" in done.stderr
    assert "line 6: invalid" in done.stderr
    assert "appended 1200" in done.stdout
    stored = _xrange(rdb, STREAM)
    assert [json.loads(fields[b"resource"]) for _, fields in stored] == good
    first = stored[0][1][b"resource"]
    assert first == json.dumps(good[0], separators=(",", ":")).encode()  # compact


def test_produce_reads_standard_input_and_exits_zero_when_all_lines_are_good(
    redis_server: RedisServer, rdb: redis.Redis
) -> None:
    """`produce -` reads standard input; exit status 0 when nothing was skipped."""
    stdin = "".join(json.dumps(_resource(f"s-{n}")) + "\n" for n in range(3))
    done = _produce(redis_server, "-", stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert rdb.xlen(STREAM) == 3


def test_commands_say_how_to_install_redis_support_when_it_is_missing() -> None:
    """Without redis-py, consume and produce exit 2 naming the extra to install."""
    script = (
        "import sys; sys.modules['redis'] = None\n"
        "from anychannel_async.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "produce", "-", "--redis", "redis://x", "--stream", "s"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "pip install 'anychannel-async[redis]'" in done.stderr
