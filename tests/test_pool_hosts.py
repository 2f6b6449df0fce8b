"""PushPool and hosts: a host's pace lives as long as it matters, and no longer; accounts
behind one host under paths of their own (a gateway) each reach their own."""

from __future__ import annotations

import contextlib
import gc
import logging
import weakref
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from anychannel_async import (
    Account,
    AccountStore,
    AnyChannelClient,
    ClosedError,
    PushPool,
    RetryPolicy,
    UnknownAccountError,
)
from anychannel_async._ratelimit import AccountPace
from anychannel_async.testing import Fault, Faults, ZendeskEmulator

from .accounts_support import client_of, token
from .conftest import (
    FAST_RETRY,
    IPID,
    PUSH_PATH,
    REPORT_ERROR_PATH,
    TOKEN,
    VALIDATE_TOKEN_PATH,
    pushes,
    resource,
    wait_until,
)

# One try per request: a 429 ends the request at once (its resource is pushed again later).
ONE_TRY = RetryPolicy(initial_delay=0.0, max_tries=1)


def gone(ref: weakref.ref[AccountPace]) -> bool:
    gc.collect()
    return ref() is None


async def test_a_host_no_account_uses_any_more_leaves_no_pace_behind() -> None:
    """Zendesk gives each account a host of its own: a pool going through many, each account
    closed idle, keeps no pace of theirs (one per host, for as long as the pool runs)."""
    async with contextlib.AsyncExitStack() as stack:
        hosts = {
            f"h{n}": await stack.enter_async_context(
                ZendeskEmulator(accounts={f"h{n}": token(f"h{n}")})
            )
            for n in range(3)
        }
        accounts = {i: Account(i, base_url=e.base_url, token=token(i)) for i, e in hosts.items()}
        async with PushPool(accounts, max_latency=0.0, idle_timeout=0.0, retry=FAST_RETRY) as pool:
            paces = []
            for ipid, account in accounts.items():
                future = await pool.submit(ipid, resource(f"{ipid}-0"))
                paces.append(weakref.ref(client_of(account.base_url).pace))
                assert (await future).imported
                await wait_until(lambda: not pool.stats.accounts)
                await pool.flush()  # its pipeline's close, done
            assert [gone(ref) for ref in paces] == [True, True, True]


async def _close_paused(
    pool: PushPool, store: AccountStore, emu: ZendeskEmulator
) -> weakref.ref[AccountPace]:
    """p1 answered a 429 (Retry-After: the emulator's), then removed from the store: its
    pipeline closes, the last of its host. Returns a reference to the host's pace."""
    emu.script(Fault.RATE_LIMITED)
    first = await pool.submit("p1", resource("p1-0"))
    pace = client_of(emu.base_url).pace
    await wait_until(lambda: pace.rate_limited == 1)
    await store.remove("p1")
    with pytest.raises(UnknownAccountError):
        await pool.submit("p1", resource("p1-1"))
    await pool.flush()  # its pipeline's close (after close_timeout), done
    assert isinstance(first.exception(), ClosedError)
    assert pool.stats.accounts == {}
    return weakref.ref(pace)


@pytest.mark.parametrize("why", ["retry_after", "budget"])
async def test_a_hosts_pace_paused_or_counting_outlives_its_last_account(
    tmp_path: Path, why: str
) -> None:
    """A host's pace paused by a 429's Retry-After, or under a budget whose minute is not
    over, is kept after the host's last open account closed: the next account of the host
    takes it up, and waits out the pause instead of pushing into it."""
    faults = Faults(retry_after=60.0)
    async with (
        ZendeskEmulator(accounts={"p1": token("p1"), "p2": token("p2")}, faults=faults) as emu,
        AccountStore(tmp_path / "accounts.sqlite") as store,
    ):
        for ipid in ("p1", "p2"):
            await store.put(Account(ipid, base_url=emu.base_url, token=token(ipid)))
        async with PushPool(
            store,
            max_latency=0.0,
            idle_timeout=0.0,
            close_timeout=0.1,
            retry=ONE_TRY,
            max_requests_per_minute=6000.0 if why == "budget" else None,
        ) as pool:
            if why == "budget":
                assert (await pool.push("p1", resource("p1-0"))).imported
                pace = weakref.ref(client_of(emu.base_url).pace)
                await wait_until(lambda: not pool.stats.accounts)
                await pool.flush()  # its pipeline's close, done
            else:
                pace = await _close_paused(pool, store, emu)
            assert not gone(pace)
            held = await pool.submit("p2", resource("p2-0"))
            assert client_of(emu.base_url).pace is pace()
            if why == "retry_after":
                assert len(pushes(emu)) == 1  # p2 waits out the pause
                assert not held.done()
            await pool.close(flush=why == "budget")
        if why == "budget":
            assert (await held).imported


async def test_a_paused_hosts_pace_goes_once_its_pause_is_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A pace kept past its host's last account for a 429's pause is forgotten once the
    pause is over."""
    # A warning's record would hold the 429, its traceback the closed client, and so the pace.
    caplog.set_level(logging.ERROR, logger="anychannel_async")
    async with (
        ZendeskEmulator(accounts={"p1": token("p1")}, faults=Faults(retry_after=0.3)) as emu,
        AccountStore(tmp_path / "accounts.sqlite") as store,
    ):
        await store.put(Account("p1", base_url=emu.base_url, token=token("p1")))
        async with PushPool(
            store, max_latency=0.0, idle_timeout=0.0, close_timeout=0.1, retry=ONE_TRY
        ) as pool:
            pace = await _close_paused(pool, store, emu)
            await wait_until(lambda: gone(pace))


# -- base URLs with a path ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def gateway(behind: Mapping[str, ZendeskEmulator]) -> AsyncIterator[str]:
    """A gateway on loopback serving each emulator under a path prefix of its own, as a proxy
    in front of Zendesk may: ``POST /PREFIX/ROUTE`` goes to that emulator's ``/ROUTE``, and
    its answer comes back as it was; another prefix is a 404. Yields the gateway's URL."""
    async with aiohttp.ClientSession() as session:

        async def forward(request: web.Request) -> web.Response:
            emulator = behind.get(request.match_info["prefix"])
            if emulator is None:
                return web.Response(status=404, text="no such prefix")
            headers = {k: v for k, v in request.headers.items() if k in _FORWARDED}
            async with session.post(
                f"{emulator.base_url}/{request.match_info['route']}",
                data=await request.read(),
                headers=headers,
            ) as answer:
                return web.Response(
                    status=answer.status, body=await answer.read(), content_type=answer.content_type
                )

        app = web.Application()
        app.router.add_post("/{prefix}/{route:.+}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            yield f"http://{host}:{port}"
        finally:
            await runner.cleanup()


_FORWARDED = {"Authorization", "Content-Type", "Accept"}


async def test_a_client_sends_every_call_under_its_base_urls_path() -> None:
    """A base URL with a path: each call goes to that path followed by its route."""
    async with ZendeskEmulator() as zendesk, gateway({"zd": zendesk}) as url:
        async with AnyChannelClient(token=TOKEN, base_url=f"{url}/zd", retry=FAST_RETRY) as client:
            await client.validate_token(IPID)
            [result] = await client.push(IPID, [resource("r1")])
            await client.report_channelback_error(IPID, "r1")
        assert result.imported
        assert [r.path for r in zendesk.requests] == [
            VALIDATE_TOKEN_PATH,
            PUSH_PATH,
            REPORT_ERROR_PATH,
        ]


@pytest.mark.parametrize("slash", ["", "/"])
async def test_accounts_behind_one_gateway_push_under_their_own_paths(slash: str) -> None:
    """Accounts at host/a and host/b (a gateway routing by path to two Zendesk accounts):
    each pushes to its own, the two sharing the host's pace (its connections)."""
    async with (
        ZendeskEmulator(accounts={"a1": token("a1")}) as zendesk_a,
        ZendeskEmulator(accounts={"b1": token("b1")}) as zendesk_b,
        gateway({"a": zendesk_a, "b": zendesk_b}) as url,
    ):
        accounts = {
            i: Account(i, base_url=f"{url}/{i[0]}{slash}", token=token(i)) for i in ("a1", "b1")
        }
        async with PushPool(accounts, max_latency=0.0, retry=FAST_RETRY) as pool:
            results = [await pool.push(i, resource(f"{i}-0")) for i in accounts]
            assert client_of(f"{url}/a{slash}").pace is client_of(f"{url}/b{slash}").pace
        assert all(r.imported for r in results)
        assert [r.external_ids for r in pushes(zendesk_a)] == [("a1-0",)]
        assert [r.external_ids for r in pushes(zendesk_b)] == [("b1-0",)]
