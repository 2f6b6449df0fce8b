"""A PushPool's accounts of one base URL share a client: each push still carries its own
account's credentials, and a closed account leaves nothing of its host's client behind."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from anychannel_async import Account, AnyChannelClient, PushPool, StatusCode
from anychannel_async.testing import Fault, Faults, ZendeskEmulator

from .accounts_support import token
from .conftest import FAST_RETRY, resource, wait_until

BASIC = ("agent@example.com/token", "secret-of-k2")


async def test_accounts_of_one_host_each_send_their_own_credentials_through_retries() -> None:
    """Bearer and basic-auth accounts on one host, 5xx, 429 and dropped connections between:
    every try of every push carries its own account's credentials (another's is a 401)."""
    creds: dict[str, str | tuple[str, str]] = {"k1": token("k1"), "k2": BASIC, "k3": token("k3")}
    async with ZendeskEmulator(
        accounts=creds, faults=Faults(latency=0.01, retry_after=0.05)
    ) as emu:
        accounts = {
            "k1": Account("k1", base_url=emu.base_url, token=token("k1")),
            "k2": Account("k2", base_url=emu.base_url, basic_auth=BASIC),
            "k3": Account("k3", base_url=emu.base_url, token=token("k3")),
        }
        emu.script(*[Fault.SERVER_ERROR] * 6, Fault.RATE_LIMITED, Fault.DROP)
        async with PushPool(accounts, max_connections=2, max_latency=0.0, retry=FAST_RETRY) as pool:
            futures = [
                await pool.submit(i, resource(f"{i}-{n}")) for n in range(5) for i in accounts
            ]
            results = await asyncio.gather(*futures)
    assert {r.code for r in results} == {StatusCode.SUCCESS}
    assert 401 not in {r.status for r in emu.requests}


async def test_an_answer_echoing_credentials_on_a_shared_client_shows_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 400 quoting the Authorization header, for accounts other than the one whose token the
    host's client was made with: neither the error, the logs (DEBUG) nor a repr shows any."""
    caplog.set_level(logging.DEBUG)
    creds: dict[str, str | tuple[str, str]] = {"e1": token("e1"), "e2": token("e2"), "e3": BASIC}
    async with ZendeskEmulator(accounts=creds) as emu:
        accounts = {
            "e1": Account("e1", base_url=emu.base_url, token=token("e1")),
            "e2": Account("e2", base_url=emu.base_url, token=token("e2")),
            "e3": Account("e3", base_url=emu.base_url, basic_auth=BASIC),
        }
        async with PushPool(accounts, max_latency=0.0, retry=FAST_RETRY) as pool:
            await pool.push("e1", resource("first"))  # the host's client is made with e1's
            emu.script(Fault.ECHO_CREDENTIALS, Fault.ECHO_CREDENTIALS)
            outcomes = await asyncio.gather(
                pool.push("e2", resource("x2")),
                pool.push("e3", resource("x3")),
                return_exceptions=True,
            )
            texts = [f"{o} {o!r}" for o in outcomes] + [repr(pool), repr(pool.stats)]
    assert all(isinstance(o, Exception) for o in outcomes)
    for text in [*texts, caplog.text]:
        for secret in (token("e1"), token("e2"), BASIC[1]):
            assert secret not in text


def _clients_of(base_url: str) -> list[AnyChannelClient]:
    gc.collect()
    return [
        o for o in gc.get_objects() if isinstance(o, AnyChannelClient) and o.base_url == base_url
    ]


async def test_a_closed_account_leaves_no_client_of_its_host_behind() -> None:
    """Zendesk gives each account a host of its own: a pool going through many accounts, each
    closed idle, keeps no client of theirs (each ~1 KiB, with the account's token) until the
    pool closes. Another account of the host opens a new one."""
    async with ZendeskEmulator(accounts={"i1": token("i1"), "i2": token("i2")}) as emu:
        accounts = {i: Account(i, base_url=emu.base_url, token=token(i)) for i in ("i1", "i2")}
        async with PushPool(accounts, max_latency=0.0, idle_timeout=0.0, retry=FAST_RETRY) as pool:
            assert (await pool.push("i1", resource("r1"))).code is StatusCode.SUCCESS
            await wait_until(lambda: not pool.stats.accounts)
            await pool.flush()  # its pipeline's close, done
            assert _clients_of(emu.base_url) == []
            assert (await pool.push("i2", resource("r2"))).code is StatusCode.SUCCESS
        assert emu.ticket_for("r2") is not None
