"""`AccountStore("redis://…")`: the accounts and channelback answers that the replicas of a
service share, against a real redis-server; two `serve` processes over one store."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis
from aiohttp import web

from anychannel_async import (
    Account,
    AccountStore,
    AccountStoreError,
    ClosedError,
    ConfigurationError,
    PushPool,
    RedisAccountStore,
)
from anychannel_async.testing import ZendeskEmulator

from .conftest import CLI, FAST_RETRY, IPID, TOKEN, cli_env, resource
from .integration_support import RETURN_PATH, SECRET, ZendeskSide, serving
from .redis_support import RedisServer

#: Distinctive, so its showing up in any text is easy to spot.
PASSWORD = "redis-password-never-shown-3c1d"


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[AccountStore]:
    async with AccountStore(redis_server.url) as opened:
        yield opened


def account(ipid: str = IPID, secret: str = TOKEN, **fields: object) -> Account:
    return Account(ipid, base_url="http://127.0.0.1:1", token=secret, **fields)  # type: ignore[arg-type]


async def test_a_redis_url_selects_the_redis_store_and_a_path_the_sqlite_file(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Both are AccountStores (what PushPool and ChannelIntegration check); a path stays
    SQLite."""
    remote = AccountStore(redis_server.url)
    local = AccountStore(tmp_path / "accounts.sqlite")
    tls = AccountStore("rediss://127.0.0.1:1/0")
    assert type(remote) is RedisAccountStore
    assert type(tls) is RedisAccountStore
    assert type(local) is AccountStore
    assert isinstance(remote, AccountStore)
    await remote.close()
    await tls.close()


async def test_a_unix_socket_url_selects_the_redis_store_and_hides_its_password(
    socket_server: RedisServer,
) -> None:
    """``unix://`` is redis-py's third scheme (a server on this machine, no TCP): the Redis
    store, not a SQLite file named "unix:"; its password is shown as *** as a TCP URL's."""
    assert socket_server.socket_path is not None
    with redis.Redis(unix_socket_path=str(socket_server.socket_path)) as conn:
        conn.config_set("requirepass", PASSWORD)
    for url in (
        f"unix://:{PASSWORD}@{socket_server.socket_path}?db=0",
        f"unix://{socket_server.socket_path}?db=0&password={PASSWORD}",
    ):
        store = AccountStore(url)
        assert type(store) is RedisAccountStore
        async with store:
            await store.put(account())
            assert await store.get(IPID) == account()
        assert PASSWORD not in repr(store)
        assert PASSWORD not in store.path
        assert str(socket_server.socket_path) in store.path
    with pytest.raises(AccountStoreError) as caught:
        async with AccountStore(f"unix://:wrong-{PASSWORD}@{socket_server.socket_path}"):
            pass
    assert PASSWORD not in str(caught.value)


async def test_a_unix_url_that_names_no_absolute_socket_path_is_refused_as_written(
    socket_server: RedisServer,
) -> None:
    """``unix://tmp/…/redis.sock`` (two slashes: the path made relative) reads "tmp" as a host,
    which redis-py drops: it would connect to another socket (``/…/redis.sock``) than the one
    written, and ``unix://`` alone to ``.``. Both are a ConfigurationError at once, saying
    what to write, the password hidden; the same path with three slashes is the store."""
    assert socket_server.socket_path is not None
    absolute = str(socket_server.socket_path)
    relative = absolute.removeprefix("/")
    for url in (
        f"unix://{relative}",
        f"unix://:{PASSWORD}@{relative}?db=0",
        f"unix://{relative}?password={PASSWORD}",
        "unix://",
        f"unix://:{PASSWORD}@",
        f"unix://?password={PASSWORD}",
    ):
        with pytest.raises(
            ConfigurationError, match=re.escape("unix:///path/to/redis.sock")
        ) as bad:
            AccountStore(url)
        assert PASSWORD not in str(bad.value)
        if relative in url:
            assert f"/{relative.partition('/')[2]}" in str(bad.value)  # where it would go
    async with AccountStore(f"unix://{absolute}") as store:
        await store.put(account())
        assert await store.get(IPID) == account()


async def test_accounts_round_trip_in_one_hash(store: AccountStore, rdb: redis.Redis) -> None:
    """put, get, list, set_active and remove, as the SQLite store does them; the accounts
    are the fields of one hash."""
    first = account("ipid-1", name="Acme", settings={"handle": "@acme"})
    second = Account("ipid-2", subdomain="acme", basic_auth=("me@acme.com/token", "api-secret"))
    await store.put(first)
    await store.put(second)
    assert await store.get("ipid-1") == first
    assert await store.list() == [first, second]
    assert set(rdb.hkeys("anychannel:accounts")) == {b"ipid-1", b"ipid-2"}
    assert await store.set_active("ipid-1", False) is True
    got = await store.get("ipid-1")
    assert got == account("ipid-1", name="Acme", settings={"handle": "@acme"}, active=False)
    assert await store.set_active("nobody", True) is False
    assert await store.remove("ipid-2") is True
    assert await store.remove("ipid-2") is False
    assert await store.get("ipid-2") is None
    assert store.revision == 6  # every change through it, as the SQLite store counts


async def test_set_active_keeps_a_token_another_replica_just_put(
    redis_server: RedisServer, store: AccountStore
) -> None:
    """A deactivation changes the one flag in place: a new token stored meanwhile by another
    replica survives it."""
    await store.put(account(secret="old-token"))
    async with AccountStore(redis_server.url) as other:
        await other.put(account(secret="new-token"))
    assert await store.set_active(IPID, False)
    assert await store.get(IPID) == account(secret="new-token", active=False)


async def test_a_value_that_is_not_an_account_is_refused_by_name(
    store: AccountStore, rdb: redis.Redis
) -> None:
    """Another program's value in the hash: AccountStoreError naming the id, not the value."""
    rdb.hset("anychannel:accounts", "broken", "not json token-in-here")
    with pytest.raises(AccountStoreError, match="'broken' is not an account") as caught:
        await store.get("broken")
    assert "token-in-here" not in str(caught.value)


async def test_the_password_is_never_shown(redis_server: RedisServer, rdb: redis.Redis) -> None:
    """Not in the repr or path, nor in the error of a refused password or an unreachable
    server; with the right one the store works."""
    rdb.config_set("requirepass", PASSWORD)
    good = f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    async with AccountStore(good) as store:
        await store.put(account())
        assert PASSWORD not in repr(store)
        assert PASSWORD not in store.path
        assert "***" in repr(store)
    for url in (
        f"redis://:wrong-{PASSWORD}@127.0.0.1:{redis_server.port}/0",
        f"redis://user:{PASSWORD}@127.0.0.1:1/0",
    ):
        with pytest.raises(AccountStoreError) as caught:
            async with AccountStore(url):
                pass
        assert PASSWORD not in str(caught.value)


async def test_a_store_is_used_open_and_once(redis_server: RedisServer) -> None:
    """Before ``async with``: AccountStoreError; after close: ClosedError (as SQLite's)."""
    store = AccountStore(redis_server.url)
    with pytest.raises(AccountStoreError, match="not open"):
        await store.get(IPID)
    async with store:
        pass
    with pytest.raises(ClosedError):
        await store.get(IPID)
    with pytest.raises(ClosedError):
        await store.__aenter__()


async def test_of_two_stores_claiming_one_key_at_once_exactly_one_owns_it(
    redis_server: RedisServer,
) -> None:
    """One SET NX: one owner; the other sees the claim, then the answer; a released claim is
    claimed again; a claim whose owner gave nothing in its lease is taken over."""
    async with AccountStore(redis_server.url) as a, AccountStore(redis_server.url) as b:
        claims = await asyncio.gather(
            *(s.claim_answer("k1", lease=60, keep=60) for s in (a, b) for _ in range(5))
        )
        assert sum(c.owned for c in claims) == 1
        owner, other = (a, b) if any(c.owned for c in claims[:5]) else (b, a)
        await owner.remember_answer("k1", '{"status": 200}')
        seen = await other.claim_answer("k1", lease=60, keep=60)
        assert (seen.answer, seen.owned) == ('{"status": 200}', False)

        assert (await a.claim_answer("k2", lease=60, keep=60)).owned
        await b.release_claim("k2")  # not b's claim: it stays
        assert not (await b.claim_answer("k2", lease=60, keep=60)).owned
        await a.release_claim("k2")
        assert (await b.claim_answer("k2", lease=60, keep=60)).owned

        assert (await a.claim_answer("k3", lease=0.05, keep=60)).owned
        async with asyncio.timeout(10):
            while not (await b.claim_answer("k3", lease=60, keep=60)).owned:  # noqa: ASYNC110
                await asyncio.sleep(0.02)


async def test_a_pool_over_the_redis_store_pushes_to_the_emulator(
    redis_server: RedisServer, emulator: ZendeskEmulator
) -> None:
    """The token comes from Redis; the resource lands."""
    async with AccountStore(redis_server.url) as store:
        await store.put(Account(IPID, base_url=emulator.base_url, token=TOKEN))
        async with PushPool(store, max_latency=0.01, retry=FAST_RETRY) as pool:
            result = await pool.push(IPID, resource("from-redis-store"))
    assert result.imported
    assert emulator.import_count("from-redis-store") == 1


# -- two integration processes over one store ----------------------------------------------------

REPLICA = """
import asyncio
import os

import redis.asyncio

from anychannel_async import AccountStore
from anychannel_async.integration import ChannelbackRequest, ChannelIntegration

URL = os.environ["ACCOUNTS_URL"]


def make() -> ChannelIntegration:
    integration = ChannelIntegration(
        name="Replicated", integration_id="com.replicated", base_url="https://b.example.com",
        secret={secret!r}, accounts=AccountStore(URL), zendesk_url={zendesk!r},
        admin_fields={{"handle": "Social handle"}},
    )
    counter = redis.asyncio.from_url(URL)

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        runs = await counter.incr("test:handler-runs")
        await asyncio.sleep(1.0)  # both requests arrive while the first runs
        return "reply-" + str(runs)

    return integration
"""


def start_replica(cwd: Path, redis_url: str) -> tuple[subprocess.Popen[str], str]:
    env = cli_env(None)
    env["ACCOUNTS_URL"] = redis_url
    process = subprocess.Popen(
        [*CLI, "serve", "replica:make", "--host", "127.0.0.1", "--port", "0"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"on (http://\S+)", line)
    if found is None:
        process.kill()
        pytest.fail(f"no URL in {line!r}: {process.communicate()[1]}")
    return process, found.group(1)


@pytest.fixture
def replicas(
    tmp_path: Path, redis_server: RedisServer, emulator: ZendeskEmulator
) -> Iterator[list[str]]:
    """Two `serve` processes of one integration over one Redis store."""
    (tmp_path / "replica.py").write_text(REPLICA.format(secret=SECRET, zendesk=emulator.base_url))
    started = [start_replica(tmp_path, redis_server.url) for _ in range(2)]
    try:
        yield [url for _, url in started]
    finally:
        for process, _ in started:
            process.terminate()
            _, stderr = process.communicate(timeout=30)
            assert TOKEN not in stderr
            assert SECRET not in stderr


async def test_two_replicas_share_installs_and_run_a_channelback_once(
    replicas: list[str], rdb: redis.Redis
) -> None:
    """An install through one replica is seen by the other; the same channelback sent to
    both at once runs the handler once, and both answer with its reply."""
    first_url, second_url = replicas

    async def finalizer(request: web.Request) -> web.Response:
        return web.Response(text="saved")

    zendesk_app = web.Application()
    zendesk_app.router.add_post(RETURN_PATH, finalizer)
    async with serving(zendesk_app) as zendesk_url, aiohttp.ClientSession() as session:
        first = ZendeskSide(session, first_url, f"{zendesk_url}{RETURN_PATH}")
        second = ZendeskSide(session, second_url, f"{zendesk_url}{RETURN_PATH}")
        installed = await first.install(typed={"handle": "@acme"})
        assert json.loads(rdb.hget("anychannel:accounts", IPID) or b"{}")["name"]
        answers = await asyncio.gather(
            first.channelback(installed.metadata, request_unique_identifier="rui-shared"),
            second.channelback(installed.metadata, request_unique_identifier="rui-shared"),
        )
        other = await second.channelback(installed.metadata, request_unique_identifier="rui-2")
    reply = (200, {"external_id": "reply-1", "allow_channelback": True})
    assert list(answers) == [reply, reply]
    assert other == (200, {"external_id": "reply-2", "allow_channelback": True})
    assert rdb.get("test:handler-runs") == b"2"


def test_a_replica_whose_redis_is_unreachable_fails_without_showing_the_password(
    tmp_path: Path,
) -> None:
    """A replica whose Redis is unreachable fails at start without showing the password."""
    (tmp_path / "replica.py").write_text(
        REPLICA.format(secret=SECRET, zendesk="http://127.0.0.1:1")
    )
    env = cli_env(None)
    env["ACCOUNTS_URL"] = f"redis://user:{PASSWORD}@127.0.0.1:1/0"
    done = subprocess.run(
        [*CLI, "serve", "replica:make", "--host", "127.0.0.1", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert PASSWORD not in done.stdout + done.stderr
    assert "AccountStoreError" in done.stderr
