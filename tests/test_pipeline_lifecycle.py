"""PushPipeline lifecycle: close, cancellation, validation, flow control and stats."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from anychannel_async import (
    AnyChannelClient,
    AnyChannelError,
    ClosedError,
    OutcomeUnknownError,
    ParentNotFoundError,
    ProcessingError,
    PushPipeline,
    RetryPolicy,
    StatusCode,
    ValidationError,
    Verdict,
    verdict,
)
from anychannel_async._batcher import Batcher
from anychannel_async._ratelimit import AccountPace
from anychannel_async._submission import Submission
from anychannel_async.testing import Fault, Faults, ZendeskEmulator

from .conftest import (
    FAST_RETRY,
    IPID,
    TOKEN,
    codes,
    pushes,
    requests_with,
    resource,
    settle,
    wait_until,
)

# -- close, cancellation, validation ----------------------------------------------------------


async def test_close_flushes_without_waiting_for_max_latency(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """close sends what is queued at once, resolves every future and leaves no task behind."""
    before = asyncio.all_tasks()
    pipe = PushPipeline(client, IPID, max_latency=30.0)
    futures = [await pipe.submit(resource(f"r{n}")) for n in range(5)]
    started = time.monotonic()
    await pipe.close()
    assert time.monotonic() - started < 5.0
    assert all(f.done() for f in futures)
    assert codes(await settle(futures)) == [StatusCode.SUCCESS] * 5
    await pipe.close()  # idempotent
    with pytest.raises(ClosedError):
        await pipe.submit(resource("late"))
    leftovers = [
        t
        for t in asyncio.all_tasks() - before
        if getattr(t.get_coro(), "__qualname__", "").startswith("PushPipeline")
    ]
    assert leftovers == []
    assert pipe.stats.in_flight == 0
    assert pipe.stats.pending == 0
    assert len(pushes(emulator)) == 1


async def test_close_gives_up_after_close_timeout(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """close waits at most close_timeout, then fails what is unresolved: a request it cut
    short leaves its resources unknown (Zendesk may still take them), never "not sent"."""
    emulator.faults = Faults(latency=4.0)  # below the client's timeout (5 s): one try
    pipe = PushPipeline(client, IPID, close_timeout=0.3)
    futures = [await pipe.submit(resource(f"r{n}")) for n in range(3)]
    await wait_until(lambda: len(pushes(emulator)) == 1)
    started = time.monotonic()
    await pipe.close()
    elapsed = time.monotonic() - started
    assert elapsed >= 0.3 - 0.01
    # Not a bound on the machine's speed: close returned while the answer was still due.
    assert [r.status for r in pushes(emulator)] == [0]
    outcomes = await settle(futures)
    unknown = [o for o in outcomes if isinstance(o, OutcomeUnknownError)]
    assert len(unknown) == 3
    assert all(isinstance(o.last_error, ClosedError) for o in unknown)
    assert pipe.stats.pending == 0
    assert pipe.stats.in_flight == 0


async def test_close_without_flush_sends_nothing_new_and_lets_requests_in_flight_settle(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """close(flush=False) fails what is queued at once, unsent, and waits for what is in flight."""
    emulator.faults = Faults(latency=0.6)  # the close below comes before the first answer
    pipe = PushPipeline(client, IPID, max_batch_size=2, max_in_flight=1, max_latency=0.0)
    futures = [await pipe.submit(resource(f"r{n}")) for n in range(6)]
    await wait_until(lambda: len(pushes(emulator)) == 1)
    await pipe.close(flush=False)
    outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 2 + [ClosedError] * 4
    assert all("sent" in str(o) for o in outcomes[2:])
    assert len(pushes(emulator)) == 1
    assert pipe.stats.pending == 0


async def test_cancelled_future_is_never_sent(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A future cancelled before its batch is cut is not sent; its neighbours succeed."""
    async with PushPipeline(client, IPID, max_latency=30.0) as pipe:
        futures = [await pipe.submit(resource(f"r{n}")) for n in range(5)]
        futures[2].cancel()
        await pipe.flush()
        outcomes = await settle([f for n, f in enumerate(futures) if n != 2])
    assert codes(outcomes) == [StatusCode.SUCCESS] * 4
    assert all("r2" not in r.external_ids for r in emulator.requests)
    assert pushes(emulator)[0].external_ids == ("r0", "r1", "r3", "r4")
    assert pipe.stats.pending == 0


async def test_cancelling_an_in_flight_future_spares_its_neighbours(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Cancelling a future whose request is in flight leaves the rest of the request intact."""
    emulator.faults = Faults(latency=0.5)  # the cancel below must come before the answer
    async with PushPipeline(client, IPID) as pipe:
        futures = [await pipe.submit(resource(f"r{n}")) for n in range(5)]
        await wait_until(lambda: len(pushes(emulator)) == 1)
        futures[2].cancel()
        emulator.faults = Faults()  # what follows needs no delay
        outcomes = await settle([f for n, f in enumerate(futures) if n != 2])
        after = await pipe.push(resource("after"))
    assert codes(outcomes) == [StatusCode.SUCCESS] * 4
    assert after.code is StatusCode.SUCCESS
    assert futures[2].cancelled()
    assert pipe.stats.pending == 0


async def test_submit_refuses_a_resource_too_large_for_a_batch(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """submit raises ValidationError for a resource over max_batch_bytes; others go on."""
    emulator.faults = Faults(latency=0.05)
    async with PushPipeline(client, IPID, max_batch_bytes=2000) as pipe:
        good = [await pipe.submit(resource(f"ok{n}")) for n in range(3)]
        with pytest.raises(ValidationError):
            await pipe.submit(resource("huge", "x" * 3000))
        outcomes = await settle(good)
        assert pipe.stats.submitted == 3
    assert codes(outcomes) == [StatusCode.SUCCESS] * 3
    assert all("huge" not in r.external_ids for r in emulator.requests)


async def test_submit_refuses_what_is_not_an_external_resource(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """submit raises ValidationError for a non-ExternalResource; others go on."""
    emulator.faults = Faults(latency=0.05)
    async with PushPipeline(client, IPID) as pipe:
        good = [await pipe.submit(resource(f"ok{n}")) for n in range(3)]
        with pytest.raises(ValidationError):
            await pipe.submit({"external_id": "dict"})  # type: ignore[arg-type]
        outcomes = await settle(good)
        assert pipe.stats.submitted == 3
    assert codes(outcomes) == [StatusCode.SUCCESS] * 3


# -- flow control and stats -------------------------------------------------------------------


async def test_submit_waits_while_max_pending_are_unresolved(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """The submit past max_pending blocks until a resource resolves, then proceeds."""
    emulator.faults = Faults(latency=0.3)
    async with PushPipeline(client, IPID, max_pending=5) as pipe:
        futures = [await pipe.submit(resource(f"r{n}")) for n in range(5)]
        assert pipe.stats.pending == 5
        sixth = asyncio.ensure_future(pipe.submit(resource("r5")))
        # How many of the five had resolved when the sixth got in: read as it gets in, not
        # after a sleep (however long, a slow machine may answer the five within it).
        resolved_then: list[int] = []
        sixth.add_done_callback(lambda _: resolved_then.append(sum(f.done() for f in futures)))
        peak = 0

        def sample() -> bool:
            nonlocal peak
            peak = max(peak, pipe.stats.pending)
            return sixth.done()

        await wait_until(sample)
        await asyncio.sleep(0)  # its done callback runs
        assert len(resolved_then) == 1
        assert resolved_then[0] >= 1  # it waited for one to resolve
        futures.append(sixth.result())
        outcomes = await settle(futures)
        assert max(peak, pipe.stats.pending) <= 5
    assert codes(outcomes) == [StatusCode.SUCCESS] * 6


async def test_stats_count_a_known_workload(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """stats count submissions, results by code, failures by type and batch sizes."""
    emulator.faults = Faults(processing_error_ids={"bad"})
    async with PushPipeline(client, IPID, max_batch_size=10, max_latency=30.0) as pipe:
        futures = [await pipe.submit(resource(i)) for i in ("a", "b", "a", "bad")]
        await pipe.flush()
        outcomes = await settle(futures)
        stats = pipe.stats
    assert codes(outcomes) == [
        StatusCode.SUCCESS,
        StatusCode.SUCCESS,
        StatusCode.ALREADY_IMPORTED,
        ProcessingError,
    ]
    assert stats.submitted == 4
    assert stats.resolved == {"success": 2, "already_imported": 1}
    assert stats.failed == {"ProcessingError": 1}
    assert stats.requests == 1
    assert stats.retries == 0
    assert stats.resent == 0
    assert stats.mean_batch_size == 4.0
    assert stats.max_batch_size == 4
    assert stats.in_flight == 0
    assert stats.pending == 0


async def test_token_never_appears_in_logs(
    client: AnyChannelClient, emulator: ZendeskEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """No log record, even at DEBUG during retries, contains the token."""
    caplog.set_level(logging.DEBUG)
    emulator.script(Fault.SERVER_ERROR, Fault.DROP)
    async with PushPipeline(client, IPID) as pipe:
        result = await pipe.push(resource("r0"))
        assert pipe.stats.retries == 2
    assert result.code is StatusCode.SUCCESS
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in repr(record.args)
        assert TOKEN not in repr(record.__dict__)
    assert TOKEN not in caplog.text


async def test_a_bug_in_the_sender_fails_futures_instead_of_hanging(
    client: AnyChannelClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the sender loop dies of a bug, pending futures fail with AnyChannelError, none hang."""
    async with PushPipeline(client, IPID, max_latency=0.01) as pipe:

        def broken_take(self: Batcher, dropped: list[object]) -> list[object]:
            raise RuntimeError("simulated bug")

        # On the class: a Batcher has __slots__ (a pool holds one per account).
        monkeypatch.setattr(Batcher, "take", broken_take)
        future = await pipe.submit(resource("bug-1"))
        with pytest.raises(AnyChannelError, match="simulated bug"):
            await asyncio.wait_for(future, 5)
        with pytest.raises(AnyChannelError):
            await pipe.submit(resource("bug-2"))


def _take_breaks_from_second_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batcher.take works once (a request goes in flight), then fails like a bug would."""
    take = Batcher.take
    calls = 0

    def take_then_break(self: Batcher, dropped: list[Submission]) -> list[Submission]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("simulated bug")
        return take(self, dropped)

    # On the class: a Batcher has __slots__ (a pool holds one per account).
    monkeypatch.setattr(Batcher, "take", take_then_break)


@pytest.mark.parametrize("garbled", [False, True])
async def test_a_bug_in_the_sender_lets_the_request_in_flight_tell_its_outcome(
    emulator: ZendeskEmulator,
    client: AnyChannelClient,
    monkeypatch: pytest.MonkeyPatch,
    garbled: bool,
) -> None:
    """The sender breaks while a request is in flight: what was queued fails at once, but the
    resource in flight is not abandoned as "closed" (Zendesk may import it): its future waits
    for the answer and resolves with it. An answer that says nothing (garbled, though Zendesk
    imported it) cannot be pushed again by the broken sender: OutcomeUnknownError, never
    ClosedError ("nothing happened")."""
    emulator.faults = Faults(latency=0.6)  # the queued one fails before this answer
    if garbled:
        emulator.script(Fault.GARBAGE)
    _take_breaks_from_second_call(monkeypatch)
    async with PushPipeline(client, IPID, max_latency=0) as pipe:
        sent = await pipe.submit(resource("sent"))
        await wait_until(lambda: pipe.stats.in_flight == 1)
        queued = await pipe.submit(resource("queued"))
        with pytest.raises(AnyChannelError, match="simulated bug"):
            await asyncio.wait_for(queued, 5)
        assert not sent.done()  # its request is still in flight
        if garbled:
            with pytest.raises(OutcomeUnknownError):
                await asyncio.wait_for(sent, 5)
        else:
            assert (await asyncio.wait_for(sent, 5)).code is StatusCode.SUCCESS
        assert pipe.stats.pending == 0
    assert emulator.import_count("sent") == 1
    assert emulator.import_count("queued") == 0


async def test_close_bound_with_children_waiting_on_children_resolves_everything(
    emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """Two levels of children waiting for a slow root: close() still fails each future cleanly."""
    emulator.faults = Faults(latency=0.1)
    pipe = PushPipeline(client, IPID, close_timeout=1.0, max_latency=0)
    await pipe.__aenter__()
    child, grandchild = await pipe.submit_many(
        [resource("y", parent_id="z"), resource("x", parent_id="y")]
    )
    # y's request read its faults (the emulator takes them as a request arrives): it is
    # answered (parent not found) in 0.1 s, well within close_timeout. Every later request,
    # the root's among them, is answered in 5 s: in flight when close gives up.
    await wait_until(lambda: len(requests_with(emulator, "y")) == 1)
    emulator.faults = Faults(latency=5.0)
    root = await pipe.submit(resource("z"))
    await pipe.close()
    assert isinstance(root.exception(), OutcomeUnknownError)  # in flight, cut short
    for future in (child, grandchild):  # waiting for their parents: never pushed again
        assert isinstance(future.exception(), ClosedError)
    assert pipe.stats.pending == 0


async def test_a_parent_cycle_fails_fast_instead_of_waiting_forever(
    client: AnyChannelClient,
) -> None:
    """a replies to b and b to a: both fail with ParentNotFoundError, well before close."""
    async with PushPipeline(client, IPID, parent_timeout=30, max_latency=0) as pipe:
        futures = await pipe.submit_many(
            [resource("a", parent_id="b"), resource("b", parent_id="a")]
        )
        done, _ = await asyncio.wait(futures, timeout=5)
    assert len(done) == 2
    assert all(isinstance(f.exception(), ParentNotFoundError) for f in futures)


async def test_a_parent_cancelled_in_flight_but_imported_spares_its_child(
    emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """Cancelling a future never breaks its neighbours: the child of a cancelled-but-imported
    parent still lands on the parent's ticket."""
    emulator.faults = Faults(latency=0.2)
    async with PushPipeline(client, IPID, max_latency=0, max_batch_size=1) as pipe:
        parent = await pipe.submit(resource("p"))
        child = await pipe.submit(resource("c", parent_id="p"))
        await wait_until(lambda: len(pushes(emulator)) == 1)  # the parent is in flight
        parent.cancel()
        result = await child
    assert result.imported
    ticket = emulator.ticket_for("c")
    assert ticket is not None
    assert ticket.external_id == "p"


async def test_a_parent_of_unknown_outcome_fails_children_with_the_same_error(
    emulator: ZendeskEmulator,
) -> None:
    """A parent whose outcome stayed unknown is not failed for good: its child (held back, never
    sent) fails with an error naming itself that holds the parent's unknown, RETRY, not FINAL."""
    emulator.faults = Faults(server_error_rate=1.0)
    async with (
        AnyChannelClient(
            token=TOKEN, base_url=emulator.base_url, retry=RetryPolicy(max_tries=1)
        ) as client,
        PushPipeline(client, IPID, max_latency=0, max_batch_size=1, max_attempts=1) as pipe,
    ):
        parent = await pipe.submit(resource("p"))
        child = await pipe.submit(resource("c", parent_id="p"))
        await pipe.flush()
    assert isinstance(parent.exception(), OutcomeUnknownError)
    error = child.exception()
    assert isinstance(error, ParentNotFoundError)
    assert error.external_id == "c"
    assert isinstance(error.parent_error, OutcomeUnknownError)
    assert verdict(error) is Verdict.RETRY
    assert [r.external_ids for r in pushes(emulator)] == [("p",), ("p",)]  # c never went


async def test_submit_many_interrupted_by_close_gives_every_resource_a_future(
    emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """Resources not accepted before close get futures failed with ClosedError; none is lost."""
    emulator.faults = Faults(latency=0.3)
    pipe = PushPipeline(client, IPID, max_pending=2, close_timeout=5)
    await pipe.__aenter__()
    task = asyncio.create_task(pipe.submit_many([resource(f"s{n}") for n in range(5)]))
    # Two accepted, the third waits for room: close now, long before their answer frees any.
    await wait_until(lambda: pipe.stats.submitted == 2)
    await pipe.close()
    futures = await task
    assert len(futures) == 5
    assert all(f.done() for f in futures)
    accepted = [f for f in futures if not isinstance(f.exception(), ClosedError)]
    assert all(f.result().imported for f in accepted)
    assert len(accepted) == 2
    assert [emulator.import_count(f"s{n}") for n in range(5)] == [1, 1, 0, 0, 0]


async def test_a_batch_is_cut_only_when_its_request_can_go(
    emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """Under a requests-per-minute budget, resources arriving while the budget is spent join
    the waiting batch instead of leaving in a half-full request cut too early."""
    # A budget of 60 a minute: requests ~1 s apart, so the b's below are submitted well
    # within the wait for the next slot, however slow the machine.
    async with PushPipeline(
        client,
        IPID,
        max_requests_per_minute=60,
        max_batch_size=50,
        max_in_flight=4,
        max_latency=0.01,
    ) as pipe:
        await pipe.push(resource("warm-up"))
        futures = await pipe.submit_many([resource(f"a{n}") for n in range(60)])
        # Fifty a's went at the next slot; the ten left wait (past max_latency) for the next.
        await wait_until(lambda: len(emulator.requests) == 2)
        futures += await pipe.submit_many([resource(f"b{n}") for n in range(40)])
        await asyncio.gather(*futures)
    assert [len(r.external_ids) for r in emulator.requests[1:]] == [50, 50]


async def test_a_turn_offered_as_its_close_is_cancelled_goes_back_to_the_host(
    emulator: ZendeskEmulator,
) -> None:
    """A close cancelled twice (a pool's close cancelled reaches its pipelines' closes so)
    while its sender holds a turn of the host just offered to it, its request not cut yet:
    the turn goes back to the host, which keeps every one of its requests at once."""
    emulator.faults = Faults(latency=2.0)
    pace = AccountPace(max_in_flight=2)
    async with AnyChannelClient(
        token=TOKEN, base_url=emulator.base_url, retry=FAST_RETRY, timeout=5.0, pace=pace
    ) as client:
        assert pace.try_start()  # the host's other turn: another account's request
        pipe = PushPipeline(client, IPID, max_batch_size=1, max_in_flight=2, max_latency=0.0)
        first = await pipe.submit(resource("r0"))
        await wait_until(lambda: len(pushes(emulator)) == 1)
        second = await pipe.submit(resource("r1"))
        await asyncio.sleep(0)  # its sender looks, and waits for a turn of the host
        closing = asyncio.create_task(pipe.close())
        await asyncio.sleep(0)  # the close flushes: it waits for r0 and r1
        # In one step, as a pool's close cancelled reaches it: the close is cut short, and
        # the other account's request ends, its turn offered to this sender (a look on it
        # comes after the close's step, which stops the sender).
        closing.cancel()
        pace.finish()
        await asyncio.sleep(0)  # the close stops the sender: it waits for r0's task
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        outcomes = await settle([first, second])
    assert codes(outcomes) == [OutcomeUnknownError, ClosedError]
    assert [pace.try_start() for _ in range(3)] == [True, True, False]
