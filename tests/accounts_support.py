"""Support of the many-accounts command-line tests: hosts (one emulator each, serving from its
own thread, as a child process needs), an accounts store, accounts' lines.

A pytest plugin, loaded by ``conftest.py``: its fixtures are there for every test, and test
modules import its helpers.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from anychannel_async import Account, AccountStore, AnyChannelClient
from anychannel_async.testing import ZendeskEmulator

from .conftest import raw_resource

# The installs on each host. Each account's right token is ``token-IPID``: the emulators know
# it, the store may hold another.
HOST_A = ("a1", "a2")
HOST_B = ("b1",)


def token(ipid: str) -> str:
    return f"token-{ipid}"


@pytest.fixture
def host_a() -> Iterator[ZendeskEmulator]:
    """A host (Zendesk account) with two installs."""
    with ZendeskEmulator(accounts={i: token(i) for i in HOST_A}) as emulator:
        yield emulator


@pytest.fixture
def host_b() -> Iterator[ZendeskEmulator]:
    """Another host, with one install."""
    with ZendeskEmulator(accounts={i: token(i) for i in HOST_B}) as emulator:
        yield emulator


def client_of(base_url: str) -> AnyChannelClient:
    """The one client of base_url not closed: a pool's, while an account of it is open (a
    closed one may live on in the traceback of a request its close cut short)."""
    gc.collect()
    [client] = [
        o
        for o in gc.get_objects()
        if isinstance(o, AnyChannelClient)
        and o.base_url == base_url
        and "state=closed" not in repr(o)
    ]
    return client


def closed_port_url() -> str:
    """A loopback URL where nothing listens: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def store_accounts(path: Path, accounts: dict[str, tuple[str, str]]) -> None:
    """Put each instance push id in the store at path: (its base URL, the token to store)."""

    async def put() -> None:
        async with AccountStore(path) as store:
            for ipid, (base_url, secret) in accounts.items():
                await store.put(Account(ipid, base_url=base_url, token=secret))

    asyncio.run(put())


def line(ipid: str, external_id: str, **fields: object) -> str:
    """An account's line, as `push --accounts` and `produce` read it."""
    return json.dumps({"instance_push_id": ipid, "resource": raw_resource(external_id, **fields)})


def imported(host: ZendeskEmulator) -> set[str]:
    """External ids of every comment the host holds."""
    return {c.external_id for t in host.tickets for c in t.comments}
