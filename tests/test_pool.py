"""PushPool: many accounts on several hosts (one emulator each), one pipeline per account."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from anychannel_async import (
    Account,
    AccountStore,
    AnyChannelClient,
    AuthenticationError,
    ClosedError,
    EventLoopError,
    InactiveAccountError,
    OutcomeUnknownError,
    PushPool,
    PushResult,
    RetryPolicy,
    StatusCode,
    TransportError,
    UnknownAccountError,
)
from anychannel_async.testing import Faults, ZendeskEmulator

from .accounts_support import client_of, closed_port_url, token
from .conftest import FAST_RETRY, pushes, resource, settle, wait_until

# Retries that take seconds: an unreachable host's resources stay pending through a test.
SLOW_RETRY = RetryPolicy(initial_delay=0.5, max_tries=5, max_time=20.0)


def quick_pool(
    accounts: AccountStore | Mapping[str, Account],
    *,
    retry: RetryPolicy = FAST_RETRY,
    max_pending: int = 10_000,
    max_pending_per_account: int = 2_000,
    idle_timeout: float = 60.0,
    close_timeout: float = 0.5,
    **options: Any,
) -> PushPool:
    """A pool with small bounds, so that it settles or gives up fast."""
    return PushPool(
        accounts,
        retry=retry,
        timeout=5.0,
        max_latency=0.01,
        close_timeout=close_timeout,
        max_pending=max_pending,
        max_pending_per_account=max_pending_per_account,
        idle_timeout=idle_timeout,
        **options,
    )


def accounts_on(emulator: ZendeskEmulator, *ipids: str) -> dict[str, Account]:
    """An Account per instance push id, all on that emulator's host, with the right token."""
    return {i: Account(i, base_url=emulator.base_url, token=token(i)) for i in ipids}


@pytest.fixture
async def host_a() -> AsyncIterator[ZendeskEmulator]:
    async with ZendeskEmulator(accounts={i: token(i) for i in ("a1", "a2", "a3")}) as emu:
        yield emu


@pytest.fixture
async def host_b() -> AsyncIterator[ZendeskEmulator]:
    async with ZendeskEmulator(accounts={i: token(i) for i in ("b1", "b2", "b3")}) as emu:
        yield emu


def unreachable(*ipids: str) -> dict[str, Account]:
    url = closed_port_url()
    return {i: Account(i, base_url=url, token=token(i)) for i in ipids}


async def test_each_account_is_pushed_to_its_own_host_and_instance(
    host_a: ZendeskEmulator, host_b: ZendeskEmulator
) -> None:
    """Resources go to their account's host under its instance push id and token."""
    accounts = accounts_on(host_a, "a1", "a2") | accounts_on(host_b, "b1")
    async with quick_pool(accounts) as pool:
        results = [await pool.push(i, resource(f"{i}-1")) for i in accounts]
    assert [r.code for r in results] == [StatusCode.SUCCESS] * 3
    assert {ids for r in pushes(host_a) for ids in r.external_ids} == {"a1-1", "a2-1"}
    assert [list(r.external_ids) for r in pushes(host_b)] == [["b1-1"]]


async def test_the_pools_session_sends_no_cookie_back(host_a: ZendeskEmulator) -> None:
    """A cookie one account's answer sets is sent back to no host, that account's included."""
    host_a.faults = Faults(set_cookie="__cfruid=abc123; Path=/; HttpOnly")
    by_name = host_a.base_url.replace("127.0.0.1", "localhost")
    accounts = {i: Account(i, base_url=by_name, token=token(i)) for i in ("a1", "a2")}
    async with quick_pool(accounts) as pool:
        for n in range(2):
            for ipid in accounts:
                await pool.push(ipid, resource(f"{ipid}-{n}"))
    assert len(pushes(host_a)) == 4
    assert [r.cookie for r in pushes(host_a)] == [None] * 4


async def test_unknown_instance_push_id_raises_from_submit_at_once(
    host_a: ZendeskEmulator,
) -> None:
    """An instance push id the accounts do not hold is an UnknownAccountError, nothing sent."""
    async with quick_pool(accounts_on(host_a, "a1")) as pool:
        with pytest.raises(UnknownAccountError) as caught:
            await pool.submit("nobody", resource("r1"))
    assert isinstance(caught.value, KeyError)
    assert host_a.requests == []


async def test_unknown_instance_push_id_in_a_store_raises_from_submit(
    host_a: ZendeskEmulator, tmp_path: Path
) -> None:
    """The store is asked, and an id it does not hold is an UnknownAccountError."""
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        await store.put(accounts_on(host_a, "a1")["a1"])
        async with quick_pool(store) as pool:
            assert (await pool.push("a1", resource("r1"))).code is StatusCode.SUCCESS
            with pytest.raises(UnknownAccountError):
                await pool.submit("nobody", resource("r2"))


async def test_a_rate_limited_host_pauses_only_its_own_accounts(
    host_a: ZendeskEmulator, host_b: ZendeskEmulator
) -> None:
    """A 429's Retry-After holds every account of that host, and no account of another."""
    host_a.faults = Faults(rate_limited_rate=1.0, retry_after=30.0)
    accounts = accounts_on(host_a, "a1", "a2") | accounts_on(host_b, "b1", "b2")
    async with quick_pool(accounts) as pool:
        first = await pool.submit("a1", resource("a1-1"))
        # Until the pool's client of host_a read the 429: the emulator counts it before.
        await wait_until(lambda: host_a.rate_limited_count == 1)
        await wait_until(lambda: client_of(host_a.base_url).pace.rate_limited >= 1)
        held = await pool.submit("a2", resource("a2-1"))
        others = [await pool.submit(i, resource(f"{i}-{n}")) for i in ("b1", "b2") for n in (1, 2)]
        outcomes = await asyncio.wait_for(settle(others), 10.0)
        assert all(isinstance(o, PushResult) and o.imported for o in outcomes)
        # a2 shares a1's host, so its pace: it waits out the pause without a request.
        assert len(pushes(host_a)) == 1
        assert not first.done()
        assert not held.done()
        await pool.close(flush=False)
    assert isinstance(held.exception(), ClosedError | OutcomeUnknownError)


async def test_an_unreachable_host_does_not_hold_back_other_accounts(
    host_b: ZendeskEmulator,
) -> None:
    """Accounts on a host that refuses connections never resolve; the others resolve at once."""
    accounts = unreachable("x1", "x2") | accounts_on(host_b, "b1", "b2", "b3")
    async with quick_pool(accounts, retry=SLOW_RETRY) as pool:
        bad = [await pool.submit(i, resource(f"{i}-{n}")) for i in ("x1", "x2") for n in range(5)]
        good = [
            await pool.submit(i, resource(f"{i}-{n}")) for i in ("b1", "b2", "b3") for n in range(5)
        ]
        outcomes = await asyncio.wait_for(settle(good), 10.0)
        assert all(isinstance(o, PushResult) and o.imported for o in outcomes)
        assert not any(f.done() and not f.exception() for f in bad)
        await pool.close(flush=False)
    for future in bad:
        assert isinstance(future.exception(), ClosedError | OutcomeUnknownError | TransportError)


async def test_a_refused_token_fails_its_account_and_sends_no_more(
    host_a: ZendeskEmulator,
) -> None:
    """After a 401 an account's submits fail at once without a request; others go on."""
    accounts = accounts_on(host_a, "a1", "a2")
    accounts["a2"] = Account("a2", base_url=host_a.base_url, token="wrong-token")
    async with quick_pool(accounts) as pool:
        with pytest.raises(AuthenticationError):
            await pool.push("a2", resource("a2-1"))
        sent = len(pushes(host_a))
        again = await pool.submit("a2", resource("a2-2"))
        assert again.done()
        assert isinstance(again.exception(), AuthenticationError)
        assert len(pushes(host_a)) == sent
        assert (await pool.push("a1", resource("a1-1"))).code is StatusCode.SUCCESS
        assert pool.stats.failed == {"AuthenticationError": 2}


async def test_a_new_token_in_the_store_lets_a_refused_account_go_on(
    host_a: ZendeskEmulator, tmp_path: Path
) -> None:
    """Once the store holds another token for a refused account, its submits are pushed."""
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        await store.put(Account("a1", base_url=host_a.base_url, token="wrong-token"))
        async with quick_pool(store) as pool:
            with pytest.raises(AuthenticationError):
                await pool.push("a1", resource("r1"))
            await store.put(accounts_on(host_a, "a1")["a1"])
            assert (await pool.push("a1", resource("r1"))).code is StatusCode.SUCCESS
    assert host_a.import_count("r1") == 1


async def test_an_idle_pipeline_closes_after_idle_timeout(host_a: ZendeskEmulator) -> None:
    """An account's pipeline with nothing pending closes after idle_timeout; the next submit
    opens another."""
    async with quick_pool(accounts_on(host_a, "a1"), idle_timeout=0.1) as pool:
        await pool.push("a1", resource("r1"))
        assert set(pool.stats.accounts) == {"a1"}
        await wait_until(lambda: not pool.stats.accounts)
        assert (await pool.push("a1", resource("r2"))).code is StatusCode.SUCCESS
        assert pool.stats.requests == 2


async def test_pool_wide_max_pending_bounds_memory_across_accounts() -> None:
    """With max_pending resources unresolved over many accounts, submit waits for room."""
    accounts = unreachable(*(f"x{n}" for n in range(10)))
    async with quick_pool(accounts, max_pending=5, retry=SLOW_RETRY) as pool:
        accepted = [await pool.submit(f"x{n}", resource(f"r{n}")) for n in range(5)]
        waiting = asyncio.ensure_future(pool.submit("x5", resource("r5")))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        assert pool.stats.pending == 5
        await pool.close(flush=False)
    with pytest.raises(ClosedError):
        await waiting
    await settle(accepted)


async def test_a_full_account_waits_alone_while_others_go_on(host_b: ZendeskEmulator) -> None:
    """An account whose share is full holds only its own submits."""
    accounts = unreachable("x1") | accounts_on(host_b, "b1")
    async with quick_pool(accounts, max_pending_per_account=3, retry=SLOW_RETRY) as pool:
        stuck = [await pool.submit("x1", resource(f"x1-{n}")) for n in range(3)]
        waiting = asyncio.ensure_future(pool.submit("x1", resource("x1-3")))
        results = [await pool.push("b1", resource(f"b1-{n}")) for n in range(5)]
        assert [r.code for r in results] == [StatusCode.SUCCESS] * 5
        assert not waiting.done()
        await pool.close(flush=False)
    with pytest.raises(ClosedError):
        await waiting
    await settle(stuck)


async def test_two_thousand_accounts_on_two_hosts_are_each_imported_once() -> None:
    """2,000 accounts with three resources each: every resource imported exactly once."""
    names = [f"acct-{n}" for n in range(2000)]
    halves = names[:1000], names[1000:]
    async with (
        ZendeskEmulator(accounts={i: token(i) for i in halves[0]}) as one,
        ZendeskEmulator(accounts={i: token(i) for i in halves[1]}) as two,
    ):
        accounts = accounts_on(one, *halves[0]) | accounts_on(two, *halves[1])
        async with quick_pool(accounts) as pool:
            futures = [await pool.submit(i, resource(f"{i}-{n}")) for n in range(3) for i in names]
            await pool.flush()
            stats = pool.stats
        outcomes = await settle(futures)
        assert all(isinstance(o, PushResult) and o.imported for o in outcomes)
        assert stats.resolved == {"success": 6000}
        for i, emulator in zip(names, [one] * 1000 + [two] * 1000, strict=True):
            assert [emulator.import_count(f"{i}-{n}") for n in range(3)] == [1, 1, 1]


async def test_clients_given_one_pace_share_a_retry_after(host_a: ZendeskEmulator) -> None:
    """A 429 answered to one client holds the requests of another client with the same pace."""
    host_a.faults = Faults(rate_limited_rate=1.0, retry_after=30.0)
    one = AnyChannelClient(token=token("a1"), base_url=host_a.base_url, retry=FAST_RETRY)
    two = AnyChannelClient(
        token=token("a2"), base_url=host_a.base_url, retry=FAST_RETRY, pace=one.pace
    )
    async with one, two:
        first = asyncio.ensure_future(one.push("a1", [resource("r1")]))
        # The emulator counts the 429 before the client has read its Retry-After: wait for
        # the pause itself, or the second request may go out in between.
        await wait_until(lambda: host_a.rate_limited_count == 1 and one.pace.delay() > 1.0)
        second = asyncio.ensure_future(two.push("a2", [resource("r2")]))
        await asyncio.sleep(0.2)
        assert len(host_a.requests) == 1
        for task in (first, second):
            task.cancel()
        await asyncio.gather(first, second, return_exceptions=True)


def test_a_pool_used_from_another_event_loop_raises_event_loop_error() -> None:
    """A pool belongs to the event loop it was first used on."""
    pool = PushPool({})

    async def enter() -> None:
        await pool.__aenter__()

    async def submit() -> None:
        await pool.submit("a1", resource("r1"))

    asyncio.run(enter())
    with pytest.raises(EventLoopError):
        asyncio.run(submit())


async def test_stats_hold_totals_and_each_open_pipeline(
    host_a: ZendeskEmulator, host_b: ZendeskEmulator
) -> None:
    """pool.stats counts over every account and gives each open pipeline's PipelineStats."""
    accounts = accounts_on(host_a, "a1") | accounts_on(host_b, "b1")
    async with quick_pool(accounts) as pool:
        for n in range(3):
            await pool.push("a1", resource(f"a1-{n}"))
        await pool.push("b1", resource("b1-0"))
        stats = pool.stats
    assert (stats.submitted, stats.pending) == (4, 0)
    assert stats.resolved == {"success": 4}
    assert {i: s.submitted for i, s in stats.accounts.items()} == {"a1": 3, "b1": 1}
    assert stats.requests == sum(s.requests for s in stats.accounts.values())


async def test_cancelled_futures_keep_their_room_until_their_pipeline_lets_go() -> None:
    """Cancelling a pool future lets go of the answer, not of the resource: the pool's bound
    still counts it until its pipeline settled it (memory stays bounded)."""
    accounts = unreachable(*(f"x{n}" for n in range(10)))
    async with quick_pool(accounts, max_pending=5, retry=SLOW_RETRY) as pool:
        accepted = [await pool.submit(f"x{n}", resource(f"r{n}")) for n in range(5)]
        for future in accepted:
            future.cancel()
        await asyncio.sleep(0.05)
        assert pool.stats.pending == 5
        waiting = asyncio.ensure_future(pool.submit("x5", resource("r5")))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await pool.close(flush=False)
    with pytest.raises(ClosedError):
        await waiting
    assert pool.stats.pending == 0


async def test_submits_waiting_on_a_refused_account_go_out_with_its_new_token(
    host_a: ZendeskEmulator,
) -> None:
    """Submits waiting for a refused account's room, when a new token arrives, go out through
    the account's new pipeline instead of failing as if the pool were closed."""
    host_a.faults = Faults(latency=0.3)
    accounts = {"a1": Account("a1", base_url=host_a.base_url, token="wrong")}
    async with PushPool(
        accounts,
        retry=FAST_RETRY,
        max_latency=0.0,
        max_batch_size=1,
        max_in_flight=1,
        max_pending_per_account=2,
        close_timeout=5,
    ) as pool:
        first = [await pool.submit("a1", resource(f"r{n}")) for n in range(2)]
        waiters = [asyncio.ensure_future(pool.submit("a1", resource(f"w{n}"))) for n in range(2)]
        await asyncio.wait(first[:1])
        assert isinstance(first[0].exception(), AuthenticationError)
        accounts["a1"] = Account("a1", base_url=host_a.base_url, token=token("a1"))
        assert (await pool.push("a1", resource("new"))).code is StatusCode.SUCCESS
        outcomes = await settle([await waiter for waiter in waiters])
        await settle(first)
    # One may have taken the room r0 left before the new token, and met the old refusal.
    assert all(isinstance(o, PushResult | AuthenticationError) for o in outcomes), outcomes
    assert [o.code for o in outcomes if isinstance(o, PushResult)] in (
        [StatusCode.SUCCESS],
        [StatusCode.SUCCESS] * 2,
    )


async def test_idle_pipelines_beyond_the_cap_close_longest_idle_first(
    host_a: ZendeskEmulator,
) -> None:
    """Touching more accounts than max_open_accounts closes the longest idle pipelines:
    memory stays bounded by a count, not only by time."""
    accounts = accounts_on(host_a, "a1", "a2", "a3")
    async with PushPool(accounts, max_open_accounts=2, retry=FAST_RETRY) as pool:
        for ipid in ("a1", "a2", "a3"):
            await pool.push(ipid, resource(f"r-{ipid}"))
        assert sorted(pool.stats.accounts) == ["a2", "a3"]
        assert (await pool.push("a1", resource("again"))).imported
    assert all(host_a.import_count(f"r-{i}") == 1 for i in ("a1", "a2", "a3"))


async def test_with_every_open_account_busy_a_new_one_waits_for_a_place() -> None:
    """max_open_accounts pipelines busy (a slow host): a submit for another account waits
    until one is idle, then goes; one cancelled while it waits takes no place."""
    ipids = [f"w{n}" for n in range(5)]
    # Answers 1 s away: the checks and the cancel below come before a place frees, however
    # slow the machine.
    async with ZendeskEmulator(
        accounts={i: token(i) for i in ipids}, faults=Faults(latency=1.0)
    ) as emu:
        async with PushPool(
            accounts_on(emu, *ipids), max_open_accounts=2, max_latency=0.0, retry=FAST_RETRY
        ) as pool:
            first = [await pool.submit(i, resource(f"{i}-0")) for i in ipids[:2]]
            waiting = asyncio.create_task(pool.submit("w2", resource("w2-0")))
            cancelled = asyncio.create_task(pool.submit("w3", resource("w3-0")))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            assert not cancelled.done()
            assert len(pool.stats.accounts) == 2
            cancelled.cancel()
            emu.faults = Faults()  # what follows needs no delay
            later = await waiting  # a place freed once w0 or w1 settled
            assert {r.code for r in await asyncio.gather(*first, later)} == {StatusCode.SUCCESS}
            assert (await pool.push("w4", resource("w4-0"))).imported
            assert len(pool.stats.accounts) <= 2
        assert emu.ticket_for("w3-0") is None


async def test_accounts_of_one_host_take_turns_and_send_fuller_requests() -> None:
    """At most max_connections requests are under way to a host at once; the accounts waiting
    for a turn keep their batches open, so 40 accounts x 10 resources go in few requests."""
    ipids = [f"t{n:02d}" for n in range(40)]
    faults = Faults(latency=0.02)
    async with ZendeskEmulator(accounts={i: token(i) for i in ipids}, faults=faults) as emu:
        accounts = accounts_on(emu, *ipids)
        async with PushPool(accounts, max_connections=3, max_latency=0.0, retry=FAST_RETRY) as pool:
            futures = []
            for n in range(10):  # one resource per account in turn, as posts arrive
                futures += [await pool.submit(i, resource(f"{i}-{n}")) for i in ipids]
                await asyncio.sleep(0.005)
            results = await asyncio.gather(*futures)
        assert {r.code for r in results} == {StatusCode.SUCCESS}
        assert emu.peak_concurrent_requests <= 3
        # One resource per request would be 400; turns leave each account's batch open.
        assert len(pushes(emu)) <= 120


async def test_a_turn_is_given_back_when_its_account_closes() -> None:
    """A pipeline closed while it waits for a turn of its host does not take the turn with
    it: the host's other accounts still get all their requests through."""
    ipids = [f"u{n}" for n in range(6)]
    async with ZendeskEmulator(
        accounts={i: token(i) for i in ipids}, faults=Faults(latency=0.05)
    ) as emu:
        accounts = accounts_on(emu, *ipids)
        async with PushPool(
            accounts, max_connections=1, max_latency=0.0, idle_timeout=0.0, retry=FAST_RETRY
        ) as pool:
            for _ in range(3):
                futures = [await pool.submit(i, resource(f"{i}-{_}")) for i in ipids]
                assert {r.code for r in await asyncio.gather(*futures)} == {StatusCode.SUCCESS}
            assert emu.peak_concurrent_requests == 1


async def test_an_open_account_removed_or_moved_in_the_store_is_read_again(
    tmp_path: Path,
) -> None:
    """A change through the store the pool reads takes effect on the account's next submit,
    its pipeline open or not: moved to another host, its resources go there; removed, submit
    raises UnknownAccountError."""
    async with (
        ZendeskEmulator(accounts={"m1": token("m1")}) as old_host,
        ZendeskEmulator(accounts={"m1": token("m1")}) as new_host,
        AccountStore(tmp_path / "accounts.sqlite") as store,
    ):
        await store.put(accounts_on(old_host, "m1")["m1"])
        async with quick_pool(store) as pool:
            assert (await pool.push("m1", resource("before"))).imported
            await store.put(accounts_on(new_host, "m1")["m1"])
            assert (await pool.push("m1", resource("after"))).imported
            await store.set_active("m1", False)
            with pytest.raises(InactiveAccountError):
                await pool.submit("m1", resource("inactive"))
            await store.set_active("m1", True)
            assert (await pool.push("m1", resource("active again"))).imported
            await store.remove("m1")
            with pytest.raises(UnknownAccountError):
                await pool.submit("m1", resource("gone"))
            assert "m1" not in pool.stats.accounts
        assert [r.external_ids for r in pushes(old_host)] == [("before",)]
        assert [r.external_ids for r in pushes(new_host)] == [("after",), ("active again",)]


@pytest.mark.parametrize("change", ["moved", "removed"])
async def test_flush_waits_for_what_a_replaced_or_removed_accounts_pipeline_holds(
    tmp_path: Path, change: str
) -> None:
    """An account moved (a new token, another host) or removed while its pipeline holds
    resources: that pipeline closes apart, and flush still returns only once they resolved."""
    async with (
        ZendeskEmulator(accounts={"m1": token("m1")}) as old_host,
        ZendeskEmulator(accounts={"m1": token("m1")}) as new_host,
        AccountStore(tmp_path / "accounts.sqlite") as store,
    ):
        old_host.faults = Faults(latency=0.3)
        await store.put(accounts_on(old_host, "m1")["m1"])
        async with quick_pool(store, close_timeout=5.0) as pool:
            before = await pool.submit("m1", resource("before"))
            await wait_until(lambda: len(old_host.requests) == 1)  # in flight
            if change == "moved":
                await store.put(accounts_on(new_host, "m1")["m1"])
                after = await pool.submit("m1", resource("after"))
            else:
                await store.remove("m1")
                with pytest.raises(UnknownAccountError):
                    await pool.submit("m1", resource("after"))
            await pool.flush()
            assert before.done()
            assert (await before).code is StatusCode.SUCCESS
            if change == "moved":
                assert after.done()
            assert pool.stats.pending == 0


@pytest.mark.parametrize("change", ["renamed", "moved"])
async def test_an_account_changed_mid_thread_keeps_the_thread_on_one_ticket(
    tmp_path: Path, change: str
) -> None:
    """A thread's first message in flight when its account changes (renamed by an admin page,
    or moved to another URL of the same host): the thread's next message does not go out
    beside it from a second pipeline, which Zendesk would turn into a second ticket."""
    async with (
        ZendeskEmulator(accounts={"m1": token("m1")}, faults=Faults(latency=0.3)) as host,
        AccountStore(tmp_path / "accounts.sqlite") as store,
    ):
        await store.put(Account("m1", base_url=host.base_url, token=token("m1")))
        if change == "renamed":
            changed = Account("m1", base_url=host.base_url, token=token("m1"), name="Acme")
        else:
            by_name = host.base_url.replace("127.0.0.1", "localhost")
            changed = Account("m1", base_url=by_name, token=token("m1"))
        async with quick_pool(store, close_timeout=5.0) as pool:
            opener = await pool.submit("m1", resource("m-1", thread_id="t1"))
            await wait_until(lambda: len(host.requests) == 1)  # in flight
            await store.put(changed)
            reply = await pool.submit("m1", resource("m-2", thread_id="t1"))
            results = await asyncio.gather(opener, reply)
    assert [r.code for r in results] == [StatusCode.SUCCESS] * 2
    assert len(host.tickets) == 1


async def test_a_submit_cancelled_while_it_waits_for_the_old_pipeline_cancels_nothing_else(
    tmp_path: Path,
) -> None:
    """A submit waiting for the changed account's old pipeline to close, cancelled: that close
    goes on (what the old pipeline holds still resolves), the cancelled submit holds no room,
    and the account's next submit still waits its turn (the thread stays on one ticket)."""
    async with (
        # The opener's answer is 1 s away: the submit still waits for it when checked.
        ZendeskEmulator(accounts={"m1": token("m1")}, faults=Faults(latency=1.0)) as host,
        AccountStore(tmp_path / "accounts.sqlite") as store,
    ):
        await store.put(Account("m1", base_url=host.base_url, token=token("m1")))
        by_name = host.base_url.replace("127.0.0.1", "localhost")
        async with quick_pool(store, close_timeout=5.0) as pool:
            opener = await pool.submit("m1", resource("m-1", thread_id="t1"))
            await wait_until(lambda: len(host.requests) == 1)  # in flight
            await store.put(Account("m1", base_url=by_name, token=token("m1")))
            waiting = asyncio.create_task(pool.submit("m1", resource("gone", thread_id="t1")))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            waiting.cancel()
            host.faults = Faults()  # what follows needs no delay
            reply = await pool.submit("m1", resource("m-2", thread_id="t1"))
            results = await asyncio.gather(opener, reply)
            await pool.flush()
            assert pool.stats.pending == 0
        assert waiting.cancelled()
    assert [r.code for r in results] == [StatusCode.SUCCESS] * 2
    assert len(host.tickets) == 1
    assert host.ticket_for("gone") is None


async def test_what_a_refused_account_holds_fails_without_a_request_more(
    host_a: ZendeskEmulator,
) -> None:
    """Resources queued behind the request Zendesk refused fail with it; none goes out."""
    accounts = {"a2": Account("a2", base_url=host_a.base_url, token="wrong-token")}
    async with PushPool(accounts, max_in_flight=1, max_batch_size=5, retry=FAST_RETRY) as pool:
        futures = [await pool.submit("a2", resource(f"a2-{n}")) for n in range(50)]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(o, AuthenticationError) for o in outcomes)
    assert len(pushes(host_a)) == 1


async def test_a_submit_waiting_for_a_place_fails_with_closed_error_when_the_pool_closes() -> None:
    """Closing the pool while a submit waits for max_open_accounts to free a place: the submit
    raises ClosedError, and what the open account held still settles."""
    ipids = ["c0", "c1"]
    async with ZendeskEmulator(
        accounts={i: token(i) for i in ipids},
        faults=Faults(latency=1.0),  # no place frees
    ) as emu:
        pool = PushPool(
            accounts_on(emu, *ipids), max_open_accounts=1, max_latency=0.0, retry=FAST_RETRY
        )
        held = await pool.submit("c0", resource("c0-0"))
        waiting = asyncio.create_task(pool.submit("c1", resource("c1-0")))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await pool.close()
        with pytest.raises(ClosedError):
            await waiting
        assert (await held).imported
        assert emu.ticket_for("c1-0") is None


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_a_cancelled_close_leaves_no_pipeline_open(turns: int) -> None:
    """close() cancelled after a few loop turns (before, or just after, its per-account
    closes start), then close() again: every future is done, nothing is pending, and no task
    of the library is left running."""
    ipids = ["d1", "d2", "d3"]
    # In its own thread: its tasks are not on this loop.
    with ZendeskEmulator(accounts={i: token(i) for i in ipids}, faults=Faults(latency=0.5)) as emu:
        ours = asyncio.all_tasks()
        pool = PushPool(accounts_on(emu, *ipids), retry=FAST_RETRY, max_latency=0.0)
        futures = [await pool.submit(i, resource(f"{i}-{n}")) for i in ipids for n in range(3)]
        await wait_until(lambda: all(s.in_flight for s in pool.stats.accounts.values()))
        closing = asyncio.create_task(pool.close())
        for _ in range(turns):
            await asyncio.sleep(0)
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        await pool.close()
        assert [f for f in futures if not f.done()] == []
        assert pool.stats.pending == 0
        assert asyncio.all_tasks() - ours == set()
        await settle(futures)  # each outcome retrieved
