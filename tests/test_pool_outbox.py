"""PushPool's outbox: one file for every account, replayed per account, in order, on opening."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from anychannel_async import (
    Account,
    AccountStore,
    AnyChannelClient,
    AnyChannelError,
    AuthenticationError,
    ConfigurationError,
    ExternalResource,
    OutboxError,
    PushPipeline,
    PushPool,
    PushResult,
    RetryPolicy,
    StatusCode,
)
from anychannel_async._outbox import DEAD, PENDING, RESOLVED, Outbox, Share, connect_read_only
from anychannel_async.testing import Faults, ZendeskEmulator

from .accounts_support import token
from .conftest import cli, comment_ids, pushes, resource, settle, wait_until
from .test_pool import accounts_on, quick_pool, unreachable

ONE_TRY = RetryPolicy(max_tries=1)


@pytest.fixture
async def host_a() -> AsyncIterator[ZendeskEmulator]:
    async with ZendeskEmulator(accounts={i: token(i) for i in ("a1", "a2", "a3")}) as emu:
        yield emu


@pytest.fixture
async def host_b() -> AsyncIterator[ZendeskEmulator]:
    async with ZendeskEmulator(accounts={i: token(i) for i in ("b1", "b2")}) as emu:
        yield emu


def pool_on(accounts: AccountStore | Mapping[str, Account], path: Path, **options: Any) -> PushPool:
    """quick_pool with the outbox at path, and time for close to write every outcome."""
    return quick_pool(accounts, outbox=path, close_timeout=2.0, **options)


def thread(ipid: str, count: int, start: int = 0) -> list[ExternalResource]:
    """count messages of one conversation of that account: their order is what is checked."""
    return [resource(f"{ipid}-{n}", thread_id=f"thread-{ipid}") for n in range(start, count)]


def rows(path: Path) -> list[tuple[str, str, str]]:
    """(instance_push_id, external_id, state) of every row, in submission order."""
    db = connect_read_only(path)
    try:
        return list(
            db.execute("SELECT instance_push_id, external_id, state FROM outbox ORDER BY seq")
        )
    finally:
        db.close()


def pending_of(path: Path, ipid: str) -> list[str]:
    return [e for i, e, state in rows(path) if i == ipid and state == PENDING]


async def leave_pending(path: Path, work: Mapping[str, Sequence[ExternalResource]]) -> None:
    """A run that accepted these resources and pushed none of them (its host refused every
    connection) and stopped: each stays pending in the outbox."""
    pool = pool_on(unreachable(*work), path, retry=ONE_TRY)
    async with pool:
        futures = [await pool.submit(i, r) for i, resources in work.items() for r in resources]
        await pool.close(flush=False)
    assert all(isinstance(o, AnyChannelError) for o in await settle(futures))
    assert [state for _, _, state in rows(path)] == [PENDING] * len(futures)


async def test_a_stopped_pool_s_rows_not_imported_are_replayed_by_the_next_for_each_account(
    host_a: ZendeskEmulator, host_b: ZendeskEmulator, tmp_path: Path
) -> None:
    """A pool stopped without flushing (requests slow, most not sent) leaves pending exactly the
    rows not imported; the next pool pushes those, and only those, each account's in order."""
    path = tmp_path / "outbox.sqlite"
    accounts = accounts_on(host_a, "a1", "a2") | accounts_on(host_b, "b1")
    work = {ipid: thread(ipid, 30) for ipid in accounts}
    for host in (host_a, host_b):
        host.faults = Faults(latency=0.3)
    async with pool_on(accounts, path, max_in_flight=1, max_batch_size=4) as pool:
        futures = [await pool.submit(i, r) for n in range(30) for i, r in _nth(work, n)]
        await wait_until(lambda: len(pushes(host_a)) >= 2 and len(pushes(host_b)) >= 1)
        await pool.close(flush=False)
    await settle(futures)
    imported = {r.external_id for f, r in zip(futures, _order(work), strict=True) if _ok(f)}
    left = {e for _, e, state in rows(path) if state == PENDING}
    assert imported, "nothing was in flight when the pool stopped: the test is moot"
    assert left, "everything was imported: the test is moot"
    assert left == {r.external_id for r in _order(work)} - imported
    assert {e for _, e, state in rows(path) if state == RESOLVED} == imported
    for ipid in accounts:  # what each account left is the tail of its conversation
        tail = pending_of(path, ipid)
        assert tail, f"{ipid} left nothing to replay"
        assert tail == [r.external_id for r in work[ipid]][-len(tail) :]

    hosts = (host_a, host_b)
    for host in hosts:
        host.faults = Faults()
    before = [len(pushes(host)) for host in hosts]
    async with pool_on(accounts, path) as pool:
        newer = [await pool.submit(i, thread(i, 32, start=30)[j]) for i in accounts for j in (0, 1)]
        await pool.flush()
        stats = pool.stats
    assert stats.replayed == len(left)
    assert stats.resolved == {"success": len(left) + len(newer)}  # none was already imported
    assert stats.submitted == len(newer)
    pushed = [
        e
        for host, n in zip(hosts, before, strict=True)
        for r in pushes(host)[n:]
        for e in r.external_ids
    ]
    assert sorted(pushed) == sorted(left | {f"{i}-{n}" for i in accounts for n in (30, 31)})
    host_of = {"a1": host_a, "a2": host_a, "b1": host_b}
    for ipid, host in host_of.items():
        assert comment_ids(host, f"{ipid}-0") == [f"{ipid}-{n}" for n in range(32)]
    assert {state for _, _, state in rows(path)} == {RESOLVED}


def _nth(
    work: Mapping[str, Sequence[ExternalResource]], n: int
) -> list[tuple[str, ExternalResource]]:
    return [(ipid, resources[n]) for ipid, resources in work.items()]


def _order(work: Mapping[str, Sequence[ExternalResource]]) -> list[ExternalResource]:
    """The resources in the order the test submits them: round robin over the accounts."""
    return [r for n in range(30) for _, r in _nth(work, n)]


def _ok(future: asyncio.Future[PushResult]) -> bool:
    return not future.cancelled() and future.exception() is None


async def test_rows_of_an_unknown_account_and_of_a_refused_token_stay_pending(
    host_a: ZendeskEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The account the store no longer holds: its rows stay pending, said once in the log. A
    token Zendesk refuses: AuthenticationError, the replay stops, the rows stay pending, and
    they are pushed once the store holds a good token. The other account is not held up."""
    path = tmp_path / "outbox.sqlite"
    await leave_pending(path, {i: thread(i, 20) for i in ("a1", "a2", "gone")})
    accounts = accounts_on(host_a, "a1") | {
        "a2": Account("a2", base_url=host_a.base_url, token="wrong-secret-token")
    }
    caplog.set_level(logging.INFO, logger="anychannel_async")
    async with pool_on(accounts, path, max_pending_per_account=4, max_batch_size=4) as pool:
        await pool.flush()
        stats = pool.stats
        assert len(pending_of(path, "a2")) == 20
        assert len(pending_of(path, "gone")) == 20
        a2_pushes = [r for r in pushes(host_a) if r.instance_push_id == "a2"]
        assert {r.status for r in a2_pushes} == {401}
        assert len(a2_pushes) < 20 // 4  # the replay stopped at the refusal
        refused = await pool.submit("a2", resource("a2-new"))
        assert isinstance(refused.exception(), AuthenticationError)

        accounts["a2"] = accounts_on(host_a, "a2")["a2"]  # the store now holds a good token
        result = await pool.push("a2", resource("a2-20", thread_id="thread-a2"))
        assert result.imported
        await pool.flush()
    assert stats.resolved == {"success": 20}
    assert stats.failed["AuthenticationError"] >= 1
    assert comment_ids(host_a, "a1-0") == [f"a1-{n}" for n in range(20)]
    assert comment_ids(host_a, "a2-0") == [f"a2-{n}" for n in range(21)]
    assert pending_of(path, "a1") == []
    assert pending_of(path, "a2") == []  # a2-new was refused at once: never accepted
    assert "a2-new" not in {e for _, e, _ in rows(path)}
    assert len(pending_of(path, "gone")) == 20
    unknown = [r.getMessage() for r in caplog.records if "gone" in r.getMessage()]
    assert len(unknown) == 1, unknown
    assert "20 rows" in unknown[0]
    assert "no such account" in unknown[0]
    assert "wrong-secret-token" not in caplog.text
    assert "wrong-secret-token" not in repr(stats)


async def test_new_submits_of_an_account_follow_its_replayed_rows_even_before_entering(
    host_a: ZendeskEmulator, tmp_path: Path
) -> None:
    """A pool used without `async with` opens its outbox at the first submit: the account's
    leftovers go before that submit, in one conversation, whatever the pool's room."""
    path = tmp_path / "outbox.sqlite"
    await leave_pending(path, {"a1": thread("a1", 50), "a2": thread("a2", 5)})
    pool = pool_on(accounts_on(host_a, "a1", "a2"), path, max_pending=8, max_pending_per_account=3)
    try:
        result = await pool.push("a1", thread("a1", 51, start=50)[0])
        assert result.imported
        assert pool.stats.replayed >= 50
        await pool.flush()
        assert pool.stats.replayed == 55
    finally:
        await pool.close()
    assert comment_ids(host_a, "a1-0") == [f"a1-{n}" for n in range(51)]
    assert comment_ids(host_a, "a2-0") == [f"a2-{n}" for n in range(5)]
    assert {state for _, _, state in rows(path)} == {RESOLVED}


async def test_a_pipeline_closed_idle_leaves_the_pool_s_outbox_open(
    host_a: ZendeskEmulator, tmp_path: Path
) -> None:
    """Pipelines closed once idle do not close the outbox they share: later submits still
    write their rows, and every row ends resolved. The leftovers replay once, not again with
    each pipeline the account opens."""
    path = tmp_path / "outbox.sqlite"
    await leave_pending(path, {"a1": [resource(f"old-{n}") for n in range(5)]})
    async with pool_on(accounts_on(host_a, "a1", "a2"), path, idle_timeout=0) as pool:
        await pool.flush()
        for n in range(3):
            await wait_until(lambda: not pool.stats.accounts)  # closed idle
            for ipid in ("a1", "a2"):
                assert (await pool.push(ipid, resource(f"{ipid}-{n}"))).imported
        await wait_until(lambda: not pool.stats.accounts)
        assert pool.stats.replayed == 5
    assert [(i, e) for i, e, _ in rows(path)][5:] == [
        (i, f"{i}-{n}") for n in range(3) for i in ("a1", "a2")
    ]
    assert {state for _, _, state in rows(path)} == {RESOLVED}
    assert [host_a.import_count(f"old-{n}") for n in range(5)] == [1] * 5
    assert sum(len(r.external_ids) for r in pushes(host_a)) == 5 + 6  # none pushed twice


async def test_the_outbox_has_one_writer_and_a_bad_path_is_refused(
    host_a: ZendeskEmulator, tmp_path: Path
) -> None:
    """A second pool or a pipeline on a pool's file is refused (they could push one row at
    once); so is an outbox path that is not one, before anything opens."""
    path = tmp_path / "outbox.sqlite"
    accounts = accounts_on(host_a, "a1")
    async with pool_on(accounts, path) as pool:
        await pool.push("a1", resource("r1"))
        second = pool_on(accounts, path)
        with pytest.raises(OutboxError, match="in use"):
            await second.__aenter__()
        with pytest.raises(OutboxError, match="in use"):
            await pool_on(accounts, path).submit("a1", resource("r2"))
        async with AnyChannelClient(token=token("a1"), base_url=host_a.base_url) as client:
            pipe = PushPipeline(client, "a1", outbox=path)
            with pytest.raises(OutboxError, match="in use"):
                await pipe.__aenter__()
            await pipe.close()
        assert (await pool.push("a1", resource("r3"))).imported
    with pytest.raises(ConfigurationError, match="outbox"):
        PushPool(accounts, outbox="")
    async with AnyChannelClient(token=token("a1"), base_url=host_a.base_url) as client:
        share = Share(Outbox(path), 0, _never_admit)
        with pytest.raises(ConfigurationError, match="not both"):
            PushPipeline(client, "a1", outbox=path, shared_outbox=share)


async def _never_admit(
    admit: Callable[[], Awaitable[asyncio.Future[PushResult]]],
) -> asyncio.Future[PushResult]:
    raise AssertionError("no row is replayed here")


async def test_outbox_list_and_retry_on_a_pool_s_file(
    host_a: ZendeskEmulator, tmp_path: Path
) -> None:
    """`outbox list` shows each account's rows and each dead letter's instance push id;
    `outbox retry` with one account's connection pushes that account's rows only."""
    path = tmp_path / "outbox.sqlite"
    await leave_pending(path, {"a3": thread("a3", 3)})
    host_a.faults = Faults(processing_error_ids=frozenset({"a2-bad"}))
    async with pool_on(accounts_on(host_a, "a1", "a2"), path, max_batch_size=1) as pool:
        assert (await pool.push("a1", resource("a1-ok"))).imported
        failed = await pool.submit("a2", resource("a2-bad"))
        await pool.flush()
        assert failed.exception() is not None
    host_a.faults = Faults()

    listed = await asyncio.to_thread(cli, "outbox", "list", str(path), token=None)
    assert listed.returncode == 0, listed.stderr
    assert "pending           3" in listed.stdout
    assert "by instance push id (2 with rows pending or dead):" in listed.stdout
    assert "  a3: 3 pending, 0 dead" in listed.stdout
    assert "  a2: 0 pending, 1 dead" in listed.stdout
    assert "[a2] a2-bad: ProcessingError" in listed.stdout

    retried = await asyncio.to_thread(
        cli,
        "outbox",
        "retry",
        str(path),
        "--base-url",
        host_a.base_url,
        "--instance-push-id",
        "a2",
        token=token("a2"),
    )
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "1 dead letters are pending again" in retried.stdout
    assert "stay pending" not in retried.stdout  # a3's rows are not a2's
    assert host_a.import_count("a2-bad") == 1
    assert [(i, e, s) for i, e, s in rows(path) if i == "a2"] == [("a2", "a2-bad", RESOLVED)]
    assert pending_of(path, "a3") == ["a3-0", "a3-1", "a3-2"]
    assert not [r for r in pushes(host_a) if r.instance_push_id == "a3"]


CHILD = """
import asyncio, sys
from anychannel_async import Account, PushPool, RetryPolicy
from tests.test_pool_outbox import thread, token

async def main(base_url, outbox, ipids, count):
    accounts = {{i: Account(i, base_url=base_url, token=token(i)) for i in ipids}}
    async with PushPool(accounts, outbox=outbox, max_latency=0.01, max_batch_size=5,
                        max_in_flight=2, retry=RetryPolicy(initial_delay=0.01)) as pool:
        work = {{i: thread(i, count) for i in ipids}}
        for n in range(count):
            for i in ipids:
                await pool.submit(i, work[i][n])
                print(work[i][n].external_id, flush=True)
        await pool.flush()

asyncio.run(main({base_url!r}, {outbox!r}, {ipids!r}, {count}))
"""


async def test_a_killed_process_s_accepted_resources_are_each_imported_once_by_the_next_pool(
    host_a: ZendeskEmulator, tmp_path: Path
) -> None:
    """A process pushing to three accounts through a pool is SIGKILLed: the next pool imports
    every resource it had accepted, once, each conversation in order."""
    path = tmp_path / "outbox.sqlite"
    ipids = ("a1", "a2", "a3")
    count = 400
    host_a.faults = Faults(seed=5, latency=0.01, latency_jitter=0.02)
    script = CHILD.format(base_url=host_a.base_url, outbox=str(path), ipids=ipids, count=count)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(script),
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    assert child.stdout is not None
    printed: list[str] = []
    async with asyncio.timeout(60):
        while len(printed) < 300:
            line = await child.stdout.readline()
            assert line, "the child ended before it was killed"
            printed.append(line.decode().strip())
        child.send_signal(signal.SIGKILL)
        rest, _ = await child.communicate()
    assert child.returncode == -signal.SIGKILL
    printed += rest.decode().split()
    left = [e for _, e, state in rows(path) if state == PENDING]
    assert left, "the kill left nothing to replay: the test is moot"

    # The dead process's requests still in flight end first, as they would while a real
    # process restarts: one pushed again meanwhile could race it into two tickets (the
    # outbox's lock keeps two live writers apart, not a dead one's requests).
    await wait_until(lambda: all(r.status != 0 or not r.external_ids for r in host_a.requests))
    host_a.faults = Faults()
    async with pool_on(accounts_on(host_a, *ipids), path) as pool:
        await pool.flush()
        assert pool.stats.replayed == len(left)
    for external_id in printed:
        assert host_a.import_count(external_id) == 1, external_id
    for ipid in ipids:
        ids = comment_ids(host_a, f"{ipid}-0")
        assert ids == [f"{ipid}-{n}" for n in range(len(ids))]
        assert set(ids) >= {e for e in printed if e.startswith(f"{ipid}-")}
    assert {state for _, _, state in rows(path)} == {RESOLVED}
    assert DEAD not in {state for _, _, state in rows(path)}


def second_page_held(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Replays read the outbox two rows at a time, and each page after the first waits until
    the returned event is set."""
    gate = asyncio.Event()
    read = Outbox.pending

    async def two_at_a_time(
        self: Outbox, instance_push_id: str, *, after: int = 0, through: int | None = None
    ) -> list[tuple[int, bytes]]:
        found = await read(self, instance_push_id, after=after, through=through, limit=2)
        if after:
            await gate.wait()
        return found

    monkeypatch.setattr(Outbox, "pending", two_at_a_time)
    return gate


async def test_a_replay_of_a_replaced_pipeline_takes_no_room_of_its_successor(
    host_a: ZendeskEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused token's pipeline reads its next rows as a new token replaces it: those rows
    are not admitted through the successor's room (its pipeline settles them, and the units
    would never come back: the account would never go idle), and only the new pipeline
    replays them."""
    path = tmp_path / "outbox.sqlite"
    await leave_pending(path, {"a1": [resource(f"a1-{n}") for n in range(4)]})
    gate = second_page_held(monkeypatch)
    accounts = {"a1": Account("a1", base_url=host_a.base_url, token="wrong-token")}
    async with pool_on(accounts, path, idle_timeout=0.05) as pool:
        await wait_until(lambda: pool.stats.failed.get("AuthenticationError", 0) == 2)
        gate.set()  # the old replay reads its next rows as the new token comes
        accounts["a1"] = accounts_on(host_a, "a1")["a1"]
        assert (await pool.push("a1", resource("new"))).imported
        await pool.flush()
        await wait_until(lambda: "a1" not in pool.stats.accounts)  # idle, closed
        assert pool.stats.pending == 0
    ids = ["a1-0", "a1-1", "a1-2", "a1-3", "new"]
    assert [host_a.import_count(i) for i in ids] == [1] * 5
    assert pending_of(path, "a1") == []


async def test_an_account_changed_during_its_replay_still_has_every_row_pushed(
    host_a: ZendeskEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store changes an account (another URL of its host, here; a new name alone keeps
    its pipeline) while its pipeline replays its rows: that pipeline is replaced, and the rows
    it had not read yet are pushed by the new one, in this run and before the account's new
    submits: once flush returns, every row is imported, each once, in order, none pending."""
    path = tmp_path / "outbox.sqlite"
    await leave_pending(path, {"a1": [resource(f"a1-{n}") for n in range(4)]})
    gate = second_page_held(monkeypatch)
    account = accounts_on(host_a, "a1")["a1"]
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        await store.put(account)
        async with pool_on(store, path) as pool:
            await wait_until(lambda: pool.stats.resolved.get("success", 0) == 2)
            by_name = host_a.base_url.replace("127.0.0.1", "localhost")
            await store.put(Account("a1", base_url=by_name, token=account.token))
            new = asyncio.ensure_future(pool.push("a1", resource("new")))
            # Until the pipeline that replayed two rows is no longer the account's.
            await wait_until(lambda: getattr(pool.stats.accounts.get("a1"), "replayed", 0) == 0)
            gate.set()  # the old replay reads its next rows once replaced
            assert (await new).imported
            await pool.flush()
            assert pool.stats.pending == 0
    ids = ["a1-0", "a1-1", "a1-2", "a1-3", "new"]
    assert [host_a.import_count(i) for i in ids] == [1] * 5
    assert [e for r in pushes(host_a) for e in r.external_ids] == ids  # the new one last
    assert pending_of(path, "a1") == []


async def test_an_outbox_given_the_accounts_store_s_file_is_refused_and_leaves_it_unchanged(
    host_a: ZendeskEmulator, tmp_path: Path
) -> None:
    """``PushPool(store, outbox=<the store's own file>)``: the outbox refuses a SQLite file of
    something else (as the store refuses an outbox), rather than add its table to the file
    of tokens; entering the pool says so, and nothing is pushed."""
    path = tmp_path / "accounts.sqlite"
    async with AccountStore(path) as store:
        await store.put(accounts_on(host_a, "a1")["a1"])
        with pytest.raises(OutboxError, match="not an outbox"):
            async with pool_on(store, path):
                pass
    db = sqlite3.connect(path)
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()
    assert "outbox" not in tables
    assert pushes(host_a) == []


@pytest.mark.parametrize("change", ["name", "base_url"])
async def test_a_submit_writing_its_row_as_its_account_changes_is_pushed_not_refused(
    host_a: ZendeskEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """A submit whose row is being written when another submit finds the account changed (its
    base URL: its pipeline replaced; its name alone: the pipeline kept): the pool is open and
    the account known, so it is pushed, once, and its row resolved. It failed with the
    replaced pipeline's ClosedError, its row left pending: the caller told it failed, the
    next run pushed it."""
    path = tmp_path / "outbox.sqlite"
    gate = asyncio.Event()
    write = Outbox.add

    async def held(self: Outbox, instance_push_id: str, items: Any) -> list[int]:
        seqs = await write(self, instance_push_id, items)
        if items[0][0] == "first":
            await gate.wait()  # written, and its submit not back yet
        return seqs

    monkeypatch.setattr(Outbox, "add", held)
    account = accounts_on(host_a, "a1")["a1"]
    changed = attrs.evolve(account, name="Acme")
    if change == "base_url":  # another client, of the same host
        changed = Account("a1", base_url=f"{host_a.base_url}/", token=token("a1"))
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        await store.put(account)
        async with pool_on(store, path) as pool:
            first = asyncio.ensure_future(pool.submit("a1", resource("first")))
            await wait_until(lambda: rows(path) != [])
            await store.put(changed)
            second = asyncio.ensure_future(pool.submit("a1", resource("second")))
            await asyncio.sleep(0.05)  # the second found the change, and replaced the pipeline
            gate.set()
            outcomes = await settle([await first, await second])
            assert pool.stats.pending == 0
    assert [o.code if isinstance(o, PushResult) else o for o in outcomes] == [
        StatusCode.SUCCESS
    ] * 2
    assert sorted(e for r in pushes(host_a) for e in r.external_ids) == ["first", "second"]
    assert pending_of(path, "a1") == []


@pytest.mark.parametrize("turns", range(8))
async def test_a_close_cancelled_at_any_turn_still_closes_the_outbox_and_the_session(
    host_a: ZendeskEmulator, tmp_path: Path, turns: int
) -> None:
    """close() cancelled after a few loop turns, wherever it then is (waiting for the
    pipelines' closes, or for its outbox's): the outbox still closes (another pool may open
    the file: its lock is let go) and so does the session (no connection left open, which
    the test's warnings-as-errors would report), the second close returning at once."""
    path = tmp_path / "outbox.sqlite"
    accounts = accounts_on(host_a, "a1")
    pool = pool_on(accounts, path, idle_timeout=0.0)
    async with pool:
        assert (await pool.push("a1", resource("r1"))).imported
        await wait_until(lambda: pool.stats.accounts == {})  # closed idle: nothing to wait on
        closing = asyncio.ensure_future(pool.close())
        for _ in range(turns):
            await asyncio.sleep(0)
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
    async with pool_on(accounts, path) as again:
        assert (await again.push("a1", resource("r2"))).imported
    assert pending_of(path, "a1") == []
