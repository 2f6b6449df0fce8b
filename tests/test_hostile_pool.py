"""What a hostile or careless caller does to a PushPool: ids that are no ids, clashes, cancels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from anychannel_async import (
    Account,
    AccountStore,
    AuthenticationError,
    ConfigurationError,
    PushPool,
    StatusCode,
    ValidationError,
)
from anychannel_async.testing import Faults, ZendeskEmulator

from .accounts_support import token
from .conftest import codes, resource, settle, wait_until
from .test_pool import accounts_on, quick_pool


@pytest.fixture
async def host() -> AsyncIterator[ZendeskEmulator]:
    async with ZendeskEmulator(accounts={"a1": token("a1")}) as emu:
        yield emu


@pytest.mark.parametrize("instance_push_id", [["a1"], {"a1": 1}, b"a1", 12, None])
@pytest.mark.parametrize("kind", ["mapping", "store"])
async def test_an_instance_push_id_that_is_no_string_is_a_validation_error(
    host: ZendeskEmulator, tmp_path: Path, kind: str, instance_push_id: object
) -> None:
    """Not a TypeError from a dict lookup (a list, a dict), nor an unknown account: the call
    is wrong, and says which argument."""
    accounts = accounts_on(host, "a1")
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        await store.put(accounts["a1"])
        pool: PushPool = quick_pool(store if kind == "store" else accounts)
        async with pool:
            with pytest.raises(ValidationError, match="instance_push_id"):
                await pool.submit(instance_push_id, resource("r1"))  # type: ignore[arg-type]
            assert (await pool.push("a1", resource("r1"))).imported


@pytest.mark.parametrize("instance_push_id", ["", "x" * 256])
async def test_an_instance_push_id_no_account_can_have_is_a_validation_error(
    host: ZendeskEmulator, instance_push_id: str
) -> None:
    """Empty or beyond Zendesk's 255 characters: the call is wrong, not the account unknown."""
    async with quick_pool(accounts_on(host, "a1")) as pool:
        with pytest.raises(ValidationError, match=r"^instance_push_id: .*\b255 characters"):
            await pool.submit(instance_push_id, resource("r1"))


async def test_a_resource_refused_as_it_is_admitted_is_told_and_gives_its_room_back(
    host: ZendeskEmulator,
) -> None:
    """The same external id pending in another conversation: the caller's future fails at
    once with ValidationError, its room comes back, and the account still goes idle."""
    host.faults = Faults(latency=0.2)
    async with quick_pool(
        accounts_on(host, "a1"), max_pending_per_account=2, idle_timeout=0.05
    ) as pool:
        first = await pool.submit("a1", resource("r1", thread_id="t1"))
        clash = await pool.submit("a1", resource("r1", thread_id="t2"))
        assert clash.done()
        assert isinstance(clash.exception(), ValidationError)
        assert pool.stats.pending == 1
        later = await pool.submit("a1", resource("r2"))  # the clash's room is free again
        assert codes(await settle([first, later])) == [StatusCode.SUCCESS] * 2
        await wait_until(lambda: "a1" not in pool.stats.accounts)  # idle, closed
        assert pool.stats.pending == 0
        assert pool.stats.failed == {"ValidationError": 1}


async def test_submits_cancelled_while_waiting_for_room_leave_no_unit_behind() -> None:
    """Cancelled while waiting for the account's room or the pool's: each caller's future
    that was handed out is still told, and the pool's room is whole again."""
    async with ZendeskEmulator(accounts={i: token(i) for i in ("a1", "a2")}) as host:
        host.faults = Faults(latency=0.2)
        await _cancel_waiting_submits(accounts_on(host, "a1", "a2"))


async def _cancel_waiting_submits(accounts: dict[str, Account]) -> None:
    async with quick_pool(
        accounts, max_pending=3, max_pending_per_account=2, idle_timeout=0.05
    ) as pool:
        held = [await pool.submit("a1", resource(f"a1-{n}")) for n in range(2)]
        held.append(await pool.submit("a2", resource("a2-0")))
        waiting = [
            asyncio.ensure_future(pool.submit(ipid, resource(f"{ipid}-w"))) for ipid in ("a1", "a2")
        ]
        await asyncio.sleep(0)  # both wait: a1 for its own room, a2 for the pool's
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        assert codes(await settle(held)) == [StatusCode.SUCCESS] * 3
        await wait_until(lambda: pool.stats.accounts == {})  # both idle, closed
        assert pool.stats.pending == 0
        more = [
            await pool.submit(i, resource(f"{i}-{n}")) for i, n in (("a1", 5), ("a1", 6), ("a2", 5))
        ]
        assert codes(await settle(more)) == [StatusCode.SUCCESS] * 3


async def test_a_mapping_that_files_an_account_under_another_id_is_refused(
    host: ZendeskEmulator,
) -> None:
    """``{"a1": Account("a2", …)}``: a resource submitted for a1 must not go to a2's instance
    (nor may the pool lose track of a pipeline filed under one id and closed under the
    other): the mapping is wrong, and the submit says so, sending nothing."""
    accounts = {"a1": Account("a2", base_url=host.base_url, token=token("a2"))}
    async with quick_pool(accounts, idle_timeout=0.01) as pool:
        for _ in range(2):  # once more after the first had time to close idle
            with pytest.raises(ConfigurationError, match=r"'a1'.*'a2'"):
                await pool.submit("a1", resource("r1"))
            await asyncio.sleep(0.05)
        assert pool.stats.accounts == {}
    assert host.requests == []


async def test_a_refused_token_stays_refused_when_only_the_account_s_name_changes(
    host: ZendeskEmulator, tmp_path: Path
) -> None:
    """The store puts the refused account again with the same token (its name or settings
    changed, as an admin page saves them): submits still fail at once, without a request;
    only another token lifts the refusal."""
    refused = Account("a1", base_url=host.base_url, token="wrong-token")
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        await store.put(refused)
        async with quick_pool(store) as pool:
            with pytest.raises(AuthenticationError):
                await pool.push("a1", resource("r1"))
            sent = len(host.requests)
            await store.put(attrs.evolve(refused, name="Acme", settings={"k": "v"}))
            again = await pool.submit("a1", resource("r2"))
            assert again.done()
            assert isinstance(again.exception(), AuthenticationError)
            assert len(host.requests) == sent
            await store.put(accounts_on(host, "a1")["a1"])
            assert (await pool.push("a1", resource("r2"))).imported
