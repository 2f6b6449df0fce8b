"""PushPipeline behaviour against the emulator over TCP: outcomes, ordering, limits, lifecycle."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence

import pytest

from anychannel_async import (
    AnyChannelClient,
    AnyChannelError,
    AuthenticationError,
    Author,
    ClosedError,
    HaltedError,
    OutcomeUnknownError,
    ParentNotFoundError,
    ProcessingError,
    ProtocolError,
    PushPipeline,
    PushResult,
    RequestRejectedError,
    RetryPolicy,
    StatusCode,
    TransportError,
    ValidationError,
)
from anychannel_async._serde import encode_push_body, encode_resource
from anychannel_async.testing import Fault, Faults, RecordedRequest, ZendeskEmulator

from .conftest import FAST_RETRY, IPID, TOKEN, resource

PUSH_PATH = "/api/v2/any_channel/push"

Outcome = PushResult | BaseException


# -- helpers ----------------------------------------------------------------------------------


def pushes(emulator: ZendeskEmulator) -> list[RecordedRequest]:
    """The push requests the emulator received, in arrival order."""
    return [r for r in emulator.requests if r.path == PUSH_PATH]


def batch_sizes(emulator: ZendeskEmulator) -> list[int]:
    """Resources per push request, in arrival order."""
    return [len(r.external_ids) for r in pushes(emulator)]


def requests_with(emulator: ZendeskEmulator, external_id: str) -> list[RecordedRequest]:
    """The push requests that carried external_id."""
    return [r for r in pushes(emulator) if external_id in r.external_ids]


async def settle(futures: Sequence[asyncio.Future[PushResult]]) -> list[Outcome]:
    """Wait for every future; its result or its exception, in order."""
    return list(await asyncio.gather(*futures, return_exceptions=True))


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll until condition holds (the bound only guards against a hang)."""
    async with asyncio.timeout(10.0):
        while not condition():  # noqa: ASYNC110 - the emulator's log has no event to wait on
            await asyncio.sleep(0.005)


def codes(outcomes: Sequence[Outcome]) -> list[object]:
    """Each outcome's status code, or its exception's class."""
    return [o.code if isinstance(o, PushResult) else type(o) for o in outcomes]


def comment_ids(emulator: ZendeskEmulator, external_id: str) -> list[str]:
    """External ids of the comments of the ticket holding external_id."""
    ticket = emulator.ticket_for(external_id)
    assert ticket is not None, f"{external_id} is on no ticket"
    return [c.external_id for c in ticket.comments]


# -- outcomes ---------------------------------------------------------------------------------


async def test_success_and_already_imported_resolve(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A new resource resolves success and one Zendesk already holds resolves already_imported."""
    await client.push(IPID, [resource("old")])
    async with PushPipeline(client, IPID) as pipe:
        new = await pipe.push(resource("new"))
        old = await pipe.push(resource("old"))
    assert (new.external_id, new.code) == ("new", StatusCode.SUCCESS)
    assert (old.external_id, old.code) == ("old", StatusCode.ALREADY_IMPORTED)
    assert emulator.import_count("new") == 1
    assert emulator.import_count("old") == 1


async def test_processing_error_fails_only_that_resource(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """processing_error raises ProcessingError carrying the result and the external id."""
    emulator.faults = Faults(processing_error_ids={"bad"})
    async with PushPipeline(client, IPID, max_batch_size=3) as pipe:
        futures = [await pipe.submit(resource(i)) for i in ("a", "bad", "c")]
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS, ProcessingError, StatusCode.SUCCESS]
    error = outcomes[1]
    assert isinstance(error, ProcessingError)
    assert error.external_id == "bad"
    assert error.result is not None
    assert error.result.code is StatusCode.PROCESSING_ERROR
    assert error.result.external_id == "bad"
    assert emulator.ticket_for("bad") is None


async def test_halted_resources_are_resent_in_order(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Resources halted behind a processing_error are pushed again in their original order."""
    emulator.faults = Faults(processing_error_ids={"b"})
    ids = ["a", "b", "c", "d", "e"]
    async with PushPipeline(client, IPID, max_batch_size=5) as pipe:
        futures = [await pipe.submit(resource(i, thread_id="chat")) for i in ids]
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS, ProcessingError] + [StatusCode.SUCCESS] * 3
    assert [r.external_ids for r in pushes(emulator)] == [tuple(ids), ("c", "d", "e")]
    assert comment_ids(emulator, "a") == ["a", "c", "d", "e"]
    assert len(emulator.tickets) == 1
    assert pipe.stats.resent == 3


async def test_halted_more_than_max_attempts_raises_halted_error(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A resource halted more than max_attempts times fails with HaltedError."""
    # Each of f, h1, h2 fails the first time it is not itself halted; x, behind all three, is
    # halted by each of them in turn: three halts, one more than max_attempts allows.
    emulator.faults = Faults(processing_error_ids={"f", "h1", "h2"})
    async with PushPipeline(client, IPID, max_batch_size=4, max_attempts=2) as pipe:
        futures = [await pipe.submit(resource(i)) for i in ("f", "h1", "h2", "x")]
        outcomes = await settle(futures)
    assert codes(outcomes) == [ProcessingError, ProcessingError, ProcessingError, HaltedError]
    halted = outcomes[3]
    assert isinstance(halted, HaltedError)
    assert halted.external_id == "x"
    assert halted.result is not None
    assert halted.result.code is StatusCode.HALTED
    assert [r.external_ids for r in pushes(emulator)] == [
        ("f", "h1", "h2", "x"),
        ("h1", "h2", "x"),
        ("h2", "x"),
    ]
    assert emulator.ticket_for("x") is None


# -- parents and children ---------------------------------------------------------------------


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
        await asyncio.sleep(0.3)
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


# -- request-level failures -------------------------------------------------------------------


async def test_authentication_failure_fails_every_future_with_its_own_error(
    emulator: ZendeskEmulator,
) -> None:
    """A refused token fails each future of the batch with a distinct AuthenticationError."""
    async with (
        AnyChannelClient(token="wrong", base_url=emulator.base_url, retry=FAST_RETRY) as client,
        PushPipeline(client, IPID) as pipe,
    ):
        futures = [await pipe.submit(resource(f"r{n}")) for n in range(5)]
        outcomes = await settle(futures)
    assert all(isinstance(o, AuthenticationError) and o.status == 401 for o in outcomes)
    assert len({id(o) for o in outcomes}) == 5
    assert len(pushes(emulator)) == 1
    assert pipe.stats.failed == {"AuthenticationError": 5}


async def test_server_errors_past_max_attempts_fail_the_batch_as_unknown(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A batch whose every push gets 5xx fails with OutcomeUnknownError, once per future."""
    emulator.script(*[Fault.SERVER_ERROR] * FAST_RETRY.max_tries * 2)
    async with PushPipeline(client, IPID, max_attempts=1) as pipe:
        futures = [await pipe.submit(resource(f"r{n}")) for n in range(3)]
        outcomes = await settle(futures)
        after = await pipe.push(resource("after"))
    unknown = [o for o in outcomes if isinstance(o, OutcomeUnknownError)]
    assert len(unknown) == 3
    assert all(isinstance(o.last_error, TransportError) for o in unknown)
    assert all(getattr(o.last_error, "status", None) == 503 for o in unknown)
    assert len({id(o) for o in outcomes}) == 3
    assert after.code is StatusCode.SUCCESS
    assert len(pushes(emulator)) == FAST_RETRY.max_tries * 2 + 1
    assert pipe.stats.retries == (FAST_RETRY.max_tries - 1) * 2


async def test_garbage_answers_past_max_attempts_fail_the_batch_as_unknown(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Answers that are not JSON, every time: OutcomeUnknownError whose last error is the
    ProtocolError, once per future."""
    emulator.faults = Faults(garbage_rate=1.0)
    async with PushPipeline(client, IPID, max_attempts=1) as pipe:
        futures = [await pipe.submit(resource(f"r{n}")) for n in range(3)]
        outcomes = await settle(futures)
    unknown = [o for o in outcomes if isinstance(o, OutcomeUnknownError)]
    assert len(unknown) == 3
    assert all(isinstance(o.last_error, ProtocolError) for o in unknown)
    assert len({id(o) for o in outcomes}) == 3
    assert len(pushes(emulator)) == 2


# -- 429, 413 and 400 -------------------------------------------------------------------------


async def test_rate_limited_pipeline_waits_for_retry_after(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """After a 429 no request arrives before Retry-After has passed, and everything succeeds."""
    emulator.faults = Faults(retry_after=1)
    emulator.script(Fault.RATE_LIMITED)
    async with PushPipeline(client, IPID, max_batch_size=2) as pipe:
        futures = [await pipe.submit(resource("first"))]
        await wait_until(lambda: client.pace.rate_limited == 1)
        # Submitted during the pause: these batches must wait it out as well.
        futures += [await pipe.submit(resource(f"r{n}")) for n in range(6)]
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 7
    requests = pushes(emulator)
    [limited] = [r for r in requests if r.status == 429]
    assert limited is requests[0] or limited == requests[0]
    assert len(requests) >= 1 + 1 + 3  # the 429, "first" again, three batches of two
    assert all(r.at >= limited.at + 1.0 - 0.01 for r in requests[1:])
    assert emulator.rate_limited_count == 1


async def test_too_large_batch_is_split(
    emulator: ZendeskEmulator,
) -> None:
    """A 413 for too many resources splits the batch until every part is accepted."""
    async with (
        ZendeskEmulator(accounts={IPID: TOKEN}, max_resources_per_request=10) as small,
        AnyChannelClient(token=TOKEN, base_url=small.base_url, retry=FAST_RETRY) as client,
        PushPipeline(client, IPID, max_batch_size=40) as pipe,
    ):
        futures = [await pipe.submit(resource(f"r{n:02d}")) for n in range(40)]
        outcomes = await settle(futures)
        stats = pipe.stats
        accepted = [r for r in pushes(small) if r.status == 200]
        refused = [r for r in pushes(small) if r.status == 413]
        imports = [small.import_count(f"r{n:02d}") for n in range(40)]
    assert codes(outcomes) == [StatusCode.SUCCESS] * 40
    assert imports == [1] * 40
    assert all(len(r.external_ids) <= 10 for r in accepted)
    assert sum(len(r.external_ids) for r in accepted) == 40
    assert refused
    assert len(refused[0].external_ids) == 40
    assert stats.requests == len(accepted) + len(refused)
    assert stats.max_batch_size == 40
    assert stats.failed == {}
    assert emulator.requests == []  # the default emulator was not used


async def test_bad_resources_are_found_by_bisection(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A 400 caused by one resource fails only it, with RequestRejectedError; the rest land."""
    # Zendesk checks an author's locale against the account's supported locales, which the
    # client cannot know: a well-formed resource that gets the whole request a 400.
    bad = resource("r5", author=Author("a-5", locale="xx-klingon"))
    ids = [f"r{n}" for n in range(8)]
    async with PushPipeline(client, IPID, max_batch_size=8) as pipe:
        futures = [await pipe.submit(bad if i == "r5" else resource(i)) for i in ids]
        outcomes = await settle(futures)
    expected: list[object] = [StatusCode.SUCCESS] * 8
    expected[5] = RequestRejectedError
    assert codes(outcomes) == expected
    error = outcomes[5]
    assert isinstance(error, RequestRejectedError)
    assert error.status == 400
    assert all(emulator.import_count(i) == 1 for i in ids if i != "r5")
    assert emulator.ticket_for("r5") is None
    assert pipe.stats.failed == {"RequestRejectedError": 1}
    # Bisection: 8 (400) -> 0-3 ok, 4-7 (400) -> 4-5 (400) -> 4 ok, 5 (400); then 6-7 ok.
    assert [r.status for r in pushes(emulator)] == [400, 200, 400, 400, 200, 400, 200]
    assert pipe.stats.requests == 7


async def test_resource_too_large_alone_is_rejected_and_the_rest_land(
    emulator: ZendeskEmulator,
) -> None:
    """A resource the server refuses with 413 even alone fails; its batch neighbours land."""
    async with (
        ZendeskEmulator(accounts={IPID: TOKEN}, max_body_bytes=4000) as small,
        AnyChannelClient(token=TOKEN, base_url=small.base_url, retry=FAST_RETRY) as client,
        PushPipeline(client, IPID, max_batch_size=6) as pipe,
    ):
        ids = [f"r{n}" for n in range(6)]
        futures = [await pipe.submit(resource(i, "x" * 5000 if i == "r2" else None)) for i in ids]
        outcomes = await settle(futures)
        imports = {i: small.import_count(i) for i in ids}
    expected: list[object] = [StatusCode.SUCCESS] * 6
    expected[2] = RequestRejectedError
    assert codes(outcomes) == expected
    error = outcomes[2]
    assert isinstance(error, RequestRejectedError)
    assert error.status == 413
    assert imports == {i: 0 if i == "r2" else 1 for i in ids}


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
    """close waits at most close_timeout, then fails what is unresolved with ClosedError."""
    emulator.faults = Faults(latency=2.0)
    pipe = PushPipeline(client, IPID, close_timeout=0.3)
    futures = [await pipe.submit(resource(f"r{n}")) for n in range(3)]
    await wait_until(lambda: len(pushes(emulator)) == 1)
    started = time.monotonic()
    await pipe.close()
    elapsed = time.monotonic() - started
    assert elapsed >= 0.3 - 0.01
    assert elapsed < 1.9
    outcomes = await settle(futures)
    assert all(isinstance(o, ClosedError) for o in outcomes)
    assert pipe.stats.pending == 0
    assert pipe.stats.in_flight == 0


async def test_close_without_flush_sends_nothing_new_and_lets_requests_in_flight_settle(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """close(flush=False) fails what is queued at once, unsent, and waits for what is in flight."""
    emulator.faults = Faults(latency=0.3)
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
    emulator.faults = Faults(latency=0.2)
    async with PushPipeline(client, IPID) as pipe:
        futures = [await pipe.submit(resource(f"r{n}")) for n in range(5)]
        await wait_until(lambda: len(pushes(emulator)) == 1)
        futures[2].cancel()
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


# -- batching ---------------------------------------------------------------------------------


async def test_resources_within_max_latency_share_one_request(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Resources submitted within max_latency of the first go out in a single request."""
    async with PushPipeline(client, IPID, max_latency=0.2) as pipe:
        futures = []
        for n in range(10):
            futures.append(await pipe.submit(resource(f"r{n}")))
            await asyncio.sleep(0)  # let the sender look: it must wait, not send
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 10
    assert batch_sizes(emulator) == [10]


async def test_max_batch_size_closes_batches(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Batches hold at most max_batch_size resources; flush sends the remainder."""
    async with PushPipeline(client, IPID, max_batch_size=5, max_latency=30.0) as pipe:
        futures = [await pipe.submit(resource(f"r{n:02d}")) for n in range(12)]
        await pipe.flush()
        assert all(f.done() for f in futures)
    assert sorted(batch_sizes(emulator)) == [2, 5, 5]
    sent = sorted(i for r in pushes(emulator) for i in r.external_ids)
    assert sent == [f"r{n:02d}" for n in range(12)]


async def test_max_batch_bytes_closes_batches(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """No request body exceeds max_batch_bytes, and batches are cut by bytes, not count."""
    limit = 2000
    resources = {f"r{n}": resource(f"r{n}", "m" * 500) for n in range(10)}
    async with PushPipeline(client, IPID, max_batch_bytes=limit, max_latency=30.0) as pipe:
        futures = [await pipe.submit(r) for r in resources.values()]
        await pipe.flush()
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 10
    bodies = [
        len(encode_push_body(IPID, [encode_resource(resources[i]) for i in r.external_ids]))
        for r in pushes(emulator)
    ]
    assert all(size <= limit for size in bodies)
    one = len(encode_resource(resources["r0"]).body)
    assert len(bodies) >= math.ceil(10 * one / limit)
    assert all(len(r.external_ids) >= 2 for r in pushes(emulator)[:-1])


async def test_back_pressure_fills_batches(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """While every request slot is busy, waiting resources fill the next batch to the brim."""
    emulator.faults = Faults(latency=0.2)
    async with PushPipeline(
        client, IPID, max_in_flight=1, max_batch_size=50, max_latency=0.0, close_timeout=2.0
    ) as pipe:
        futures = [await pipe.submit(resource("first"))]
        await wait_until(lambda: len(pushes(emulator)) == 1)
        for n in range(150):
            futures.append(await pipe.submit(resource(f"r{n:03d}")))
            await asyncio.sleep(0)  # the sender may run between submits: max_latency is 0
        outcomes = await asyncio.wait_for(settle(futures), timeout=10.0)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 151
    assert batch_sizes(emulator) == [1, 50, 50, 50]


async def test_one_request_in_flight_sends_every_batch_in_turn(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """With max_in_flight=1 each batch goes out once the previous answer is back, to the last."""
    emulator.faults = Faults(latency=0.05)
    async with PushPipeline(
        client, IPID, max_in_flight=1, max_batch_size=2, close_timeout=2.0
    ) as pipe:
        futures = [await pipe.submit(resource(f"r{n}")) for n in range(6)]
        outcomes = await asyncio.wait_for(settle(futures), timeout=10.0)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 6
    requests = pushes(emulator)
    assert [r.external_ids for r in requests] == [("r0", "r1"), ("r2", "r3"), ("r4", "r5")]
    assert all(b.at >= a.at + 0.05 - 1e-3 for a, b in itertools.pairwise(requests))


async def test_at_most_max_in_flight_requests_at_once(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """No more than max_in_flight requests are ever outstanding together."""
    emulator.faults = Faults(latency=0.1)
    async with PushPipeline(
        client, IPID, max_in_flight=2, max_batch_size=2, close_timeout=2.0
    ) as pipe:
        futures = [await pipe.submit(resource(f"r{n:02d}")) for n in range(12)]
        outcomes = await asyncio.wait_for(settle(futures), timeout=10.0)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 12
    arrivals = [r.at for r in pushes(emulator)]
    assert len(arrivals) == 6
    # A third request can only start once one of the two before it has been answered.
    assert all(c >= a + 0.1 - 1e-3 for a, c in zip(arrivals, arrivals[2:], strict=False))


# -- pace -------------------------------------------------------------------------------------


async def test_max_requests_per_minute_paces_requests_evenly(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """With a budget, requests start evenly spaced and the server never answers 429."""
    emulator.faults = Faults(rate_limit=6, rate_window=1.0)
    async with PushPipeline(
        client, IPID, max_requests_per_minute=600, max_batch_size=10, max_in_flight=4
    ) as pipe:
        futures = [await pipe.submit(resource(f"r{n:02d}")) for n in range(60)]
        outcomes = await settle(futures)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 60
    assert emulator.rate_limited_count == 0
    requests = pushes(emulator)
    assert [len(r.external_ids) for r in requests] == [10] * 6
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert all(gap >= 0.08 for gap in gaps), gaps


async def test_budget_is_learned_from_rate_limit_headers(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """With no budget given, X-Rate-Limit sets the pace after the first answer; no 429."""
    emulator.faults = Faults(rate_limit=600, rate_window=60.0)
    async with PushPipeline(client, IPID, max_batch_size=10, max_in_flight=4) as pipe:
        first = await pipe.push(resource("first"))
        futures = [await pipe.submit(resource(f"r{n:02d}")) for n in range(40)]
        outcomes = await settle(futures)
    assert first.code is StatusCode.SUCCESS
    assert codes(outcomes) == [StatusCode.SUCCESS] * 40
    assert emulator.rate_limited_count == 0
    later = pushes(emulator)[1:]
    assert len(later) == 4
    gaps = [b.at - a.at for a, b in itertools.pairwise(later)]
    assert all(gap >= 0.08 for gap in gaps), gaps  # 60 / (600 - 1) s apart


async def test_pipelines_sharing_a_client_share_the_429_pause(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A 429 met by one pipeline holds back the requests of another on the same client."""
    emulator.faults = Faults(retry_after=1)
    emulator.script(Fault.RATE_LIMITED)
    async with PushPipeline(client, IPID) as first, PushPipeline(client, IPID) as second:
        limited = await first.submit(resource("a"))
        await wait_until(lambda: client.pace.rate_limited == 1)
        [limited_request] = [r for r in pushes(emulator) if r.status == 429]
        other = await second.push(resource("b"))
        result = await limited
    assert (result.code, other.code) == (StatusCode.SUCCESS, StatusCode.SUCCESS)
    [b_request] = requests_with(emulator, "b")
    assert b_request.at >= limited_request.at + 1.0 - 0.01
    assert emulator.rate_limited_count == 1


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
        await asyncio.sleep(0.1)
        assert not sixth.done()
        assert pipe.stats.pending == 5
        peak = 0

        def sample() -> bool:
            nonlocal peak
            peak = max(peak, pipe.stats.pending)
            return sixth.done()

        await wait_until(sample)
        assert any(f.done() for f in futures)
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

        def broken_take(dropped: list[object]) -> list[object]:
            raise RuntimeError("simulated bug")

        monkeypatch.setattr(pipe._batcher, "take", broken_take)
        future = await pipe.submit(resource("bug-1"))
        with pytest.raises(AnyChannelError, match="simulated bug"):
            await asyncio.wait_for(future, 5)
        with pytest.raises(AnyChannelError):
            await pipe.submit(resource("bug-2"))


async def test_close_bound_with_children_waiting_on_children_resolves_everything(
    emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """Two levels of children waiting for a slow root: close() still fails each future cleanly."""
    emulator.faults = Faults(latency=0.3)
    pipe = PushPipeline(client, IPID, close_timeout=0.5, max_latency=0)
    await pipe.__aenter__()
    child, grandchild = await pipe.submit_many(
        [resource("y", parent_id="z"), resource("x", parent_id="y")]
    )
    await asyncio.sleep(0.05)
    root = await pipe.submit(resource("z"))
    await asyncio.sleep(0.1)
    emulator.faults.latency = 5.0
    await pipe.close()
    for future in (root, child, grandchild):
        assert future.done()
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
        await asyncio.sleep(0.05)  # the parent is in flight
        parent.cancel()
        result = await child
    assert result.imported
    ticket = emulator.ticket_for("c")
    assert ticket is not None
    assert ticket.external_id == "p"


async def test_a_parent_of_unknown_outcome_fails_children_with_the_same_error(
    emulator: ZendeskEmulator,
) -> None:
    """A parent whose outcome stayed unknown is not 'not found': its child gets that error too."""
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
    assert isinstance(child.exception(), OutcomeUnknownError)


async def test_submit_many_interrupted_by_close_gives_every_resource_a_future(
    emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """Resources not accepted before close get futures failed with ClosedError; none is lost."""
    emulator.faults = Faults(latency=0.3)
    pipe = PushPipeline(client, IPID, max_pending=2, close_timeout=5)
    await pipe.__aenter__()
    task = asyncio.create_task(pipe.submit_many([resource(f"s{n}") for n in range(5)]))
    await asyncio.sleep(0.05)
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
    async with PushPipeline(
        client,
        IPID,
        max_requests_per_minute=240,
        max_batch_size=50,
        max_in_flight=4,
        max_latency=0.01,
    ) as pipe:
        await pipe.push(resource("warm-up"))
        futures = await pipe.submit_many([resource(f"a{n}") for n in range(60)])
        await asyncio.sleep(0.35)
        futures += await pipe.submit_many([resource(f"b{n}") for n in range(40)])
        await asyncio.gather(*futures)
    assert [len(r.external_ids) for r in emulator.requests[1:]] == [50, 50]
