"""PushPipeline and conversations: parents before children, one ticket per thread, ids twice."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from anychannel_async import (
    AnyChannelClient,
    AnyChannelError,
    ClosedError,
    HaltedError,
    OutcomeUnknownError,
    ParentNotFoundError,
    ProcessingError,
    PushPipeline,
    PushResult,
    RetryPolicy,
    StatusCode,
    Verdict,
    verdict,
)
from anychannel_async.testing import Fault, Faults, ZendeskEmulator

from .conftest import (
    IPID,
    TOKEN,
    codes,
    comment_ids,
    pushes,
    requests_with,
    resource,
    settle,
    wait_until,
)

# -- parents and children ---------------------------------------------------------------------


def one_try(emulator: ZendeskEmulator) -> AnyChannelClient:
    """A client that tries each request once: every fault is the pipeline's to handle."""
    return AnyChannelClient(
        token=TOKEN, base_url=emulator.base_url, retry=RetryPolicy(initial_delay=0.0, max_tries=1)
    )


async def test_child_submitted_right_after_its_parent_lands_on_its_ticket(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A child submitted right after its parent is never orphaned, even one per request."""
    emulator.faults = Faults(latency=0.01, latency_jitter=0.03)
    async with PushPipeline(client, IPID, max_batch_size=1, max_in_flight=4) as pipe:
        futures: list[asyncio.Future[PushResult]] = []
        for n in range(8):
            futures.append(await pipe.submit(resource(f"post-{n}")))
            futures.append(await pipe.submit(resource(f"reply-{n}", parent_id=f"post-{n}")))
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 16
    for n in range(8):
        assert comment_ids(emulator, f"reply-{n}") == [f"post-{n}", f"reply-{n}"]
        [parent_request] = requests_with(emulator, f"post-{n}")
        [child_request] = requests_with(emulator, f"reply-{n}")
        # The child went out only once the parent's answer (after the latency) was back.
        assert child_request.at >= parent_request.at + 0.01 - 1e-3


async def test_long_chains_split_across_batches_land_on_the_root_ticket(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Reply chains split across concurrent batches are never orphaned and stay on one ticket."""
    emulator.faults = Faults(latency=0.01, latency_jitter=0.03)
    chains = {c: [f"chain{c}-{n}" for n in range(8)] for c in range(4)}
    async with PushPipeline(client, IPID, max_batch_size=3, max_in_flight=4) as pipe:
        futures: list[asyncio.Future[PushResult]] = []
        # Interleave the chains, so every batch mixes them and each chain spans several batches.
        for n in range(8):
            for chain in chains.values():
                parent = chain[n - 1] if n else None
                futures.append(await pipe.submit(resource(chain[n], parent_id=parent)))
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 32
    assert not any(isinstance(o, ParentNotFoundError) for o in outcomes)
    for chain in chains.values():
        assert comment_ids(emulator, chain[0]) == chain
        for parent, child in itertools.pairwise(chain):
            [parent_request] = requests_with(emulator, parent)
            [child_request] = requests_with(emulator, child)
            if child_request is parent_request or child_request == parent_request:
                ids = child_request.external_ids
                assert ids.index(parent) < ids.index(child)
            else:
                assert child_request.at >= parent_request.at + 0.01 - 1e-3
    assert len(pushes(emulator)) > 4  # the chains really were split


async def test_child_of_a_failed_pending_parent_fails_quickly(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A child whose pending parent fails raises ParentNotFoundError without waiting it out."""
    emulator.faults = Faults(processing_error_ids={"parent"})
    async with PushPipeline(client, IPID, parent_timeout=30.0) as pipe:
        parent = await pipe.submit(resource("parent"))
        child = await pipe.submit(resource("child", parent_id="parent"))
        started = time.monotonic()
        outcomes = await asyncio.wait_for(settle([parent, child]), timeout=20.0)
        elapsed = time.monotonic() - started
    assert codes(outcomes) == [ProcessingError, ParentNotFoundError]
    error = outcomes[1]
    assert isinstance(error, ParentNotFoundError)
    assert error.external_id == "child"
    assert elapsed < 20.0  # far below parent_timeout: the child did not wait it out
    assert emulator.ticket_for("child") is None


@pytest.mark.parametrize("parent_fails", [HaltedError, OutcomeUnknownError])
async def test_child_of_a_parent_that_may_yet_pass_fails_with_an_error_of_its_own(
    emulator: ZendeskEmulator, parent_fails: type[AnyChannelError]
) -> None:
    """The child waits for its pending parent, which then fails for a reason that may pass
    (halted, or outcome unknown): the child's error names the child, not the parent, holds the
    parent's as ``parent_error``, and says "push it again" (RETRY: its outbox row or stream
    entry stays pending), for Zendesk answered the child itself: it does not hold it."""
    async with (
        one_try(emulator) as client,
        PushPipeline(
            client, IPID, max_latency=0, max_attempts=1, max_batch_size=2, parent_timeout=30
        ) as pipe,
    ):
        emulator.faults = Faults(latency=0.3)
        child = await pipe.submit(resource("c", parent_id="p"))
        await wait_until(lambda: len(emulator.requests) == 1)  # c's push, answered unfaulted
        if parent_fails is HaltedError:
            # A 429 spends p's one attempt more; then z fails, so p behind it is halted.
            emulator.faults = Faults(latency=0.3, processing_error_ids={"z"}, retry_after=0)
            emulator.script(Fault.RATE_LIMITED)
            first = await pipe.submit(resource("z", thread_id="X"))
        else:  # every push of p is dropped: nothing says whether Zendesk took it
            emulator.script(Fault.DROP, Fault.DROP)
            first = None
        parent = await pipe.submit(resource("p", thread_id="X"))
        futures = [child, parent] if first is None else [child, parent, first]
        error, parent_error, *_ = await asyncio.wait_for(settle(futures), timeout=20.0)
    assert isinstance(parent_error, parent_fails)
    assert isinstance(error, ParentNotFoundError)
    assert error.external_id == "c"
    assert error.args[0].startswith("c: ")
    assert type(error.parent_error) is parent_fails
    assert error.parent_error.args == parent_error.args
    assert error.parent_error is not parent_error  # its own copy, as every future's error
    assert verdict(error) is Verdict.RETRY
    assert emulator.import_count("c") == 0
    assert emulator.import_count("p") == 0


async def test_a_child_imported_by_a_push_of_unknown_outcome_is_not_said_to_be_absent(
    emulator: ZendeskEmulator,
) -> None:
    """p and its child c go in one request whose answer is lost (Zendesk imported both); p had
    one attempt more (a 429), so it fails first, of unknown outcome, and c, due again, is held
    back. Zendesk holds c: its future must not say that it does not (ParentNotFoundError,
    RETRY: "nothing happened"), but that a push of it may have landed, as for p."""
    emulator.faults = Faults(latency=0.3, retry_after=0)
    emulator.script(Fault.RATE_LIMITED, Fault.LOST_ANSWER, Fault.LOST_ANSWER)
    async with (
        one_try(emulator) as client,
        PushPipeline(
            client, IPID, max_latency=0, max_attempts=2, max_batch_size=2, parent_timeout=30
        ) as pipe,
    ):
        parent = await pipe.submit(resource("p"))
        await wait_until(lambda: len(emulator.requests) == 1)  # p alone, rate limited
        child = await pipe.submit(resource("c", parent_id="p"))
        parent_error, error = await asyncio.wait_for(settle([parent, child]), timeout=20.0)
    assert [r.external_ids for r in pushes(emulator)] == [("p",), ("p", "c"), ("p", "c")]
    assert emulator.import_count("c") == 1  # Zendesk holds it
    assert isinstance(parent_error, OutcomeUnknownError)
    assert isinstance(error, OutcomeUnknownError), repr(error)
    assert error.external_id == "c"
    assert verdict(error) is Verdict.UNKNOWN


async def test_a_note_added_to_a_parent_s_error_is_not_on_its_child_s_copy(
    emulator: ZendeskEmulator,
) -> None:
    """Each future's error is its own (aiokafka #246): an owner that annotates its parent's
    error (add_note, as an except block does) changes neither the copy a child submitted later
    holds as ``parent_error``, nor does a note on that copy reach the parent's. Nor does a
    note added in ``on_settled``, which runs as the future is settled."""

    def annotate(future: asyncio.Future[PushResult]) -> None:
        error = None if future.cancelled() else future.exception()
        if error is not None:
            error.add_note("on_settled's note")

    emulator.faults = Faults(server_error_rate=1.0)
    async with (
        one_try(emulator) as client,
        PushPipeline(client, IPID, max_latency=0, max_attempts=1, on_settled=annotate) as pipe,
    ):
        [parent_error] = await settle([await pipe.submit(resource("p"))])
        assert isinstance(parent_error, OutcomeUnknownError)
        parent_error.add_note("the owner's note on p")
        [error] = await settle([await pipe.submit(resource("c", parent_id="p"))])
    assert isinstance(error, ParentNotFoundError)
    assert isinstance(error.parent_error, OutcomeUnknownError)
    assert error.parent_error.args == parent_error.args
    assert error.__notes__ == ["on_settled's note"]  # its own, from the hook
    assert getattr(error.parent_error, "__notes__", []) == []
    error.parent_error.add_note("a note on c's copy")
    assert parent_error.__notes__ == ["on_settled's note", "the owner's note on p"]


async def test_child_of_a_parent_never_submitted_fails_after_parent_timeout(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A child whose parent never appears is retried with backoff, then fails after the timeout."""
    async with PushPipeline(client, IPID, parent_timeout=0.5) as pipe:
        started = time.monotonic()
        child = await pipe.submit(resource("child", parent_id="nowhere"))
        [outcome] = await settle([child])
        elapsed = time.monotonic() - started
    assert isinstance(outcome, ParentNotFoundError)
    assert outcome.external_id == "child"
    assert elapsed >= 0.5
    tries = requests_with(emulator, "child")
    assert len(tries) >= 2
    assert all(later.at > earlier.at for earlier, later in itertools.pairwise(tries))
    assert pipe.stats.resent >= 1


async def test_child_succeeds_once_its_parent_arrives_from_another_process(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A child whose parent is pushed elsewhere within parent_timeout lands on that ticket."""
    async with PushPipeline(client, IPID, parent_timeout=5.0) as pipe:
        child = await pipe.submit(resource("child", parent_id="parent"))
        # Answered once (parent not found): it waits to go again.
        await wait_until(lambda: [r.status for r in requests_with(emulator, "child")] == [200])
        [parent] = await client.push(IPID, [resource("parent")])
        assert parent.code is StatusCode.SUCCESS
        result = await asyncio.wait_for(child, timeout=10.0)
    assert result.code is StatusCode.SUCCESS
    assert comment_ids(emulator, "child") == ["parent", "child"]
    assert len(requests_with(emulator, "child")) >= 2


# -- threads and duplicates -------------------------------------------------------------------


async def test_one_ticket_per_thread_under_concurrency(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Concurrent batches never split a thread: one ticket each, comments in submission order."""
    emulator.faults = Faults(latency=0.01, latency_jitter=0.03)
    threads = [f"thread-{t}" for t in range(5)]
    expected: dict[str, list[str]] = {t: [] for t in threads}
    async with PushPipeline(client, IPID, max_batch_size=7, max_in_flight=4) as pipe:
        futures: list[asyncio.Future[PushResult]] = []
        for n in range(200):
            thread = threads[(n * 3 + n // 7) % 5]  # an irregular mix of threads
            external_id = f"msg-{n:03d}"
            expected[thread].append(external_id)
            futures.append(await pipe.submit(resource(external_id, thread_id=thread)))
            if n % 10 == 0:
                await asyncio.sleep(0)
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 200
    tickets = emulator.tickets
    assert len(tickets) == 5
    assert {t.thread_id: [c.external_id for c in t.comments] for t in tickets} == expected
    assert all(emulator.import_count(f"msg-{n:03d}") == 1 for n in range(200))
    assert len(pushes(emulator)) > 4 * 5  # many batches were really in flight together


async def test_thread_order_survives_a_batch_cut_mid_thread(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A thread cut across batches keeps submission order, whenever later messages arrive."""
    emulator.faults = Faults(latency=0.05)
    async with PushPipeline(client, IPID, max_batch_size=2, max_latency=5.0) as pipe:
        futures = [
            await pipe.submit(resource("a1", thread_id="A")),
            await pipe.submit(resource("b1", thread_id="B")),
            await pipe.submit(resource("a2", thread_id="A")),
        ]
        await asyncio.sleep(0)  # the sender cuts [a1, b1]; a2 waits in the queue for max_latency
        futures.append(await pipe.submit(resource("a3", thread_id="A")))  # thread A is busy now
        await pipe.flush()
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 4
    assert comment_ids(emulator, "a1") == ["a1", "a2", "a3"]
    sent_a = [i for r in pushes(emulator) for i in r.external_ids if i.startswith("a")]
    assert sent_a == ["a1", "a2", "a3"]


async def test_same_external_id_submitted_twice_is_imported_once(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """The same external_id submitted twice at once is imported once; the second is a repeat."""
    emulator.faults = Faults(latency=0.01, latency_jitter=0.03)
    async with PushPipeline(client, IPID, max_batch_size=1, max_in_flight=4) as pipe:
        first = await pipe.submit(resource("twice"))
        second = await pipe.submit(resource("twice"))
        outcomes = await settle([first, second])
    assert codes(outcomes) == [StatusCode.SUCCESS, StatusCode.ALREADY_IMPORTED]
    assert emulator.import_count("twice") == 1
    assert len(emulator.tickets) == 1


async def test_flush_waits_for_an_older_submission_of_an_id_that_outlives_the_latest(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A child whose parent is not there yet waits to be pushed again; the same id submitted
    again once the parent came resolves first. flush waits for the older one too: the
    pipeline keeps every submission of an id, not only the latest."""
    async with PushPipeline(client, IPID, max_latency=0, parent_timeout=30.0) as pipe:
        older = await pipe.submit(resource("late-child", parent_id="late-parent"))
        # Answered (parent not found): it waits to go again.
        await wait_until(lambda: [r.status for r in requests_with(emulator, "late-child")] == [200])
        await client.push(IPID, [resource("late-parent")])  # the parent, from elsewhere
        latest = await pipe.submit(resource("late-child", parent_id="late-parent"))
        await latest
        await pipe.flush()
        assert older.done()
    assert codes(await settle([older, latest])) == [
        StatusCode.ALREADY_IMPORTED,
        StatusCode.SUCCESS,
    ]


async def test_flush_waits_for_every_submission_of_an_id_pending_more_than_once(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """An id submitted again while pending: flush returns once each of its submissions
    resolved (the pipeline keeps the older ones, not only the latest of the id)."""
    emulator.faults = Faults(latency=0.05)
    async with PushPipeline(client, IPID, max_batch_size=1, max_in_flight=1) as pipe:
        futures = [await pipe.submit(resource("again")) for _ in range(3)]
        await pipe.flush()
        assert [future.done() for future in futures] == [True, True, True]
        assert pipe.stats.pending == 0
    outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] + [StatusCode.ALREADY_IMPORTED] * 2


async def test_a_close_leaves_no_submission_of_an_id_pending_more_than_once(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """close(flush=False) with an id pending three times: each submission ends (the one in
    flight by its answer, the queued ones with ClosedError), none stays pending."""
    emulator.faults = Faults(latency=0.3)
    pipe = PushPipeline(client, IPID, max_batch_size=1, max_in_flight=1, max_latency=0)
    async with pipe:
        futures = [await pipe.submit(resource("thrice")) for _ in range(3)]
        await wait_until(lambda: pipe.stats.in_flight == 1)  # the first is in flight
        await pipe.close(flush=False)
    assert [future.done() for future in futures] == [True, True, True]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert codes(outcomes[:1]) == [StatusCode.SUCCESS]
    assert [type(outcome) for outcome in outcomes[1:]] == [ClosedError, ClosedError]
    assert pipe.stats.pending == 0
