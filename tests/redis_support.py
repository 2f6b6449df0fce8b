"""Support of the Redis Streams tests: a real redis-server per test, entries, the command line.

A pytest plugin, loaded by ``conftest.py``: its fixtures are there for every test, and test
modules import its helpers. Each test gets its own redis-server on a free port in its temporary
directory; tests that kill processes run the real ``anychannel-async`` command against the
shared emulator (which serves from its own thread).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import redis.asyncio

from anychannel_async.testing import ZendeskEmulator

from .conftest import TOKEN, account_options, raw_resource, start_cli

STREAM = "resources"
GROUP = "zendesk"

#: Stream entries as redis-py returns them without decode_responses.
Entries = list[tuple[bytes, dict[bytes, bytes]]]


# -- resources and entries ------------------------------------------------------------------------


def conversations(posts: int, replies_per_post: int = 1) -> list[dict[str, object]]:
    """Posts, each followed at once by its replies (which must land in the post's ticket)."""
    found: list[dict[str, object]] = []
    for n in range(posts):
        found.append(raw_resource(f"post-{n}"))
        found += [
            raw_resource(f"reply-{n}-{r}", parent_id=f"post-{n}") for r in range(replies_per_post)
        ]
    return found


def add(conn: redis.Redis, entries: list[dict[str, object]]) -> list[str]:
    """Append resources as stream entries; returns their ids."""
    with conn.pipeline(transaction=False) as batch:
        for entry in entries:
            batch.xadd(STREAM, {"resource": json.dumps(entry)})
        return [i.decode() for i in batch.execute()]


def xrange(conn: redis.Redis, stream: str) -> Entries:
    return cast(Entries, conn.xrange(stream))


async def axrange(conn: redis.asyncio.Redis, stream: str) -> Entries:
    return cast(Entries, await conn.xrange(stream))


def assert_each_imported_once(emulator: ZendeskEmulator, entries: list[dict[str, object]]) -> None:
    """Zendesk imported each resource exactly once, each reply into its parent's ticket."""
    counts = {str(e["external_id"]): emulator.import_count(str(e["external_id"])) for e in entries}
    assert {k: v for k, v in counts.items() if v != 1} == {}
    for entry in entries:
        if "parent_id" in entry:
            ticket = emulator.ticket_for(str(entry["external_id"]))
            assert ticket is not None
            assert ticket.external_id == entry["parent_id"]


# -- the group's state ----------------------------------------------------------------------------


def group_info(conn: redis.Redis) -> dict[str, Any]:
    [group] = [g for g in conn.xinfo_groups(STREAM) if g["name"] == GROUP.encode()]
    return dict(group)


def delivered(conn: redis.Redis) -> int:
    """Entries the group has delivered so far; 0 before the group exists."""
    try:
        # Nil (None) from group creation until the group's first delivery of new entries.
        return int(group_info(conn)["entries-read"] or 0)
    except (ValueError, redis.exceptions.ResponseError):
        return 0


def drained(conn: redis.Redis) -> bool:
    """Every entry of the stream was delivered to the group and acknowledged."""
    try:
        group = group_info(conn)
    except (ValueError, redis.exceptions.ResponseError):
        return False  # no group yet
    return bool(group["lag"] == 0 and group["pending"] == 0)


async def adrained(conn: redis.asyncio.Redis) -> bool:
    """`drained`, for an asyncio client."""
    groups = await conn.xinfo_groups(STREAM)
    return bool(groups and groups[0]["lag"] == 0 and groups[0]["pending"] == 0)


async def until(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - polling Redis: no event to wait on
            await asyncio.sleep(0.05)


# -- processes ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A redis-server process of the test's own, which the test may kill and start again."""

    def __init__(
        self, directory: Path, *, durable: bool = False, socket_path: Path | None = None
    ) -> None:
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
            *(["--unixsocket", str(socket_path), "--unixsocketperm", "700"] if socket_path else []),
        ]
        self.socket_path = socket_path
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


def start_consumer(
    server: RedisServer, emulator: ZendeskEmulator, name: str, *extra: str, token: str = TOKEN
) -> subprocess.Popen[str]:
    """Start ``anychannel-async consume`` as consumer ``name`` of GROUP on STREAM."""
    return start_cli(
        "consume",
        "--redis",
        server.url,
        "--stream",
        STREAM,
        "--group",
        GROUP,
        "--consumer",
        name,
        *account_options(emulator),
        "--max-latency",
        "0.01",
        "--block-ms",
        "200",
        *extra,
        token=token,
    )


def terminate(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """SIGTERM a consumer and wait for it: its exit status, stdout and stderr."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def socket_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server also listening on a Unix socket (under /tmp: a socket's path has at
    most 107 bytes, and pytest's tmp_path may be longer)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as short:
        server = RedisServer(tmp_path, socket_path=Path(short) / "redis.sock")
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
def rdb(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis(port=redis_server.port) as conn:
        yield conn


@pytest.fixture
async def ardb(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client of the test's redis-server, as consume_stream takes it."""
    conn = redis.asyncio.Redis(port=redis_server.port)
    yield conn
    await conn.aclose()
