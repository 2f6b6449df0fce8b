"""PushPipeline and an id submitted again while an older submission of it still waits.

Every submission of one external_id pending at once must share one ordering key and one
conversation, whichever of them finishes first: the latest one may end (cancelled by its
owner, failed) while an older one still waits, in flight, parked behind its thread, or for its
parent. Its id is pending all the same: a submission of it in another conversation is
refused, one in the same conversation waits its turn, and children of it wait for the older
one instead of failing with the latest.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from pathlib import Path

import pytest

from anychannel_async import (
    AnyChannelClient,
    AnyChannelError,
    ClosedError,
    ExternalResource,
    HaltedError,
    ParentNotFoundError,
    ProcessingError,
    PushPipeline,
    PushResult,
    RateLimitedError,
    ResourceError,
    RetryPolicy,
    StatusCode,
    ValidationError,
    Verdict,
    verdict,
)
from anychannel_async._outbox import PENDING
from anychannel_async.testing import Fault, Faults, ZendeskEmulator

from .conftest import IPID, TOKEN, codes, comment_ids, requests_with, resource, settle, wait_until
from .test_outbox import rows


async def _cancel_unsent(pipe: PushPipeline, future: asyncio.Future[PushResult], left: int) -> None:
    """Cancel a queued future and wait until the pipeline dropped it unsent (at most ``left``
    resources still pending after it)."""
    future.cancel()
    await wait_until(lambda: pipe.stats.pending <= left)


async def test_an_id_in_flight_stays_pending_when_its_resubmission_is_cancelled(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """The latest submission of an id in flight is cancelled (dropped unsent): the id is still
    in flight, so the same id in another thread is refused, not pushed beside it (two
    imports of one id, a second ticket for it)."""
    emulator.faults = Faults(latency=0.5)
    async with PushPipeline(client, IPID, max_latency=0, max_batch_size=1, max_in_flight=4) as pipe:
        older = await pipe.submit(resource("dup", thread_id="A"))
        await wait_until(lambda: len(requests_with(emulator, "dup")) == 1)  # in flight
        latest = await pipe.submit(resource("dup", thread_id="A"))
        await _cancel_unsent(pipe, latest, left=1)
        other = await pipe.submit(resource("dup", thread_id="B"))
        outcomes = await settle([older, other])
    assert latest.cancelled()
    assert emulator.import_count("dup") == 1
    assert codes(outcomes) == [StatusCode.SUCCESS, ValidationError]
    assert [ticket.thread_id for ticket in emulator.tickets] == ["A"]
    assert len(requests_with(emulator, "dup")) == 1


async def test_an_id_parked_behind_its_thread_stays_pending_when_its_resubmission_is_cancelled(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """The same, with the older submission parked behind its thread's request in flight: once
    that request is answered it goes, alone; the same id in another thread was refused."""
    emulator.faults = Faults(latency=0.5)
    async with PushPipeline(client, IPID, max_latency=0, max_batch_size=1, max_in_flight=4) as pipe:
        first = await pipe.submit(resource("a1", thread_id="A"))
        await wait_until(lambda: len(requests_with(emulator, "a1")) == 1)  # thread A is busy
        older = await pipe.submit(resource("dup", thread_id="A"))  # parked behind a1
        latest = await pipe.submit(resource("dup", thread_id="A"))
        await _cancel_unsent(pipe, latest, left=2)
        emulator.faults = Faults(latency=1.0)  # whatever goes now is still in flight when
        other = await pipe.submit(resource("dup", thread_id="B"))  # dup leaves the park
        outcomes = await settle([first, older, other])
    assert emulator.import_count("dup") == 1
    assert codes(outcomes) == [StatusCode.SUCCESS, StatusCode.SUCCESS, ValidationError]
    assert comment_ids(emulator, "a1") == ["a1", "dup"]
    assert [ticket.thread_id for ticket in emulator.tickets] == ["A"]


async def test_a_resubmission_in_the_same_conversation_keeps_the_older_ones_key(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """An older child waits for its pending parent (in a thread of its own: another key than
    its children's); its latest resubmission was cancelled. The same child submitted again,
    with the same parent, must still share the older one's key: it never goes in a request
    beside the older one, so the id is imported once."""
    emulator.faults = Faults(latency=0.5)
    async with PushPipeline(
        client, IPID, max_latency=0, max_batch_size=1, max_in_flight=4, parent_timeout=30.0
    ) as pipe:
        older = await pipe.submit(resource("dup", parent_id="p"))  # p not pending: key r:p
        await wait_until(lambda: len(requests_with(emulator, "dup")) == 1)
        emulator.faults = Faults(latency=1.0)
        parent = await pipe.submit(resource("p", thread_id="X"))  # key t:X, in flight
        await wait_until(lambda: len(requests_with(emulator, "p")) == 1)
        # The older one's answer (parent not found) came first: it waits for p.
        await wait_until(lambda: [r.status for r in requests_with(emulator, "dup")] == [200])
        latest = await pipe.submit(resource("dup", parent_id="p"))
        await _cancel_unsent(pipe, latest, left=2)
        again = await pipe.submit(resource("dup", parent_id="p"))
        outcomes = await settle([older, parent, again])
    assert emulator.import_count("dup") == 1
    assert codes(outcomes) == [
        StatusCode.SUCCESS,
        StatusCode.SUCCESS,
        StatusCode.ALREADY_IMPORTED,
    ]
    assert comment_ids(emulator, "p") == ["p", "dup"]


async def _parent_waiting_for_grandparent(
    pipe: PushPipeline, emulator: ZendeskEmulator
) -> tuple[asyncio.Future[PushResult], asyncio.Future[PushResult]]:
    """p (child of g) waits for g, which is in flight for 1.5 s (in a thread of its own)."""
    emulator.faults = Faults(latency=0.3)
    older = await pipe.submit(resource("p", parent_id="g"))
    await wait_until(lambda: len(requests_with(emulator, "p")) == 1)
    emulator.faults = Faults(latency=1.5)
    grandparent = await pipe.submit(resource("g", thread_id="G"))
    await wait_until(lambda: len(requests_with(emulator, "g")) == 1)
    await wait_until(lambda: [r.status for r in requests_with(emulator, "p")] == [200])
    emulator.faults = Faults()  # what goes from now on is answered at once
    return older, grandparent


async def test_children_wait_for_an_older_parent_when_its_resubmission_is_cancelled(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A child waits for its parent; the parent's latest submission is cancelled while an
    older one still waits for its own parent. The child goes on waiting for the older one,
    and lands on its ticket: it is not failed as if its parent had failed."""
    async with PushPipeline(
        client, IPID, max_latency=0, max_in_flight=4, parent_timeout=30.0
    ) as pipe:
        older, grandparent = await _parent_waiting_for_grandparent(pipe, emulator)
        child = await pipe.submit(resource("q", parent_id="p"))
        await wait_until(lambda: [r.status for r in requests_with(emulator, "q")] == [200])
        latest = await pipe.submit(resource("p", parent_id="g"))
        await _cancel_unsent(pipe, latest, left=3)
        outcomes = await settle([older, grandparent, child])
    assert codes(outcomes) == [StatusCode.SUCCESS] * 3
    assert comment_ids(emulator, "g") == ["g", "p", "q"]
    assert emulator.import_count("p") == 1


async def test_children_are_not_doomed_while_an_older_parent_is_pending(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """The latest submission of a parent fails (processing_error) while an older one still
    waits: the parent is pending all the same, so a child submitted then is pushed and waits
    for it (not failed unsent as the child of a failed parent), and lands once it does."""
    async with PushPipeline(
        client, IPID, max_latency=0, max_in_flight=4, parent_timeout=30.0
    ) as pipe:
        older, grandparent = await _parent_waiting_for_grandparent(pipe, emulator)
        emulator.faults = Faults(processing_error_ids={"p"})
        latest = await pipe.submit(resource("p", parent_id="g"))
        [failed] = await settle([latest])
        emulator.faults = Faults()
        child = await pipe.submit(resource("q", parent_id="p"))
        outcomes = await settle([older, grandparent, child])
    assert isinstance(failed, ProcessingError)
    assert codes(outcomes) == [StatusCode.SUCCESS] * 3
    assert comment_ids(emulator, "g") == ["g", "p", "q"]
    assert requests_with(emulator, "q")  # it was pushed


async def test_children_of_an_id_whose_last_submission_was_cancelled_keep_what_may_pass(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """Two submissions of p: the older waits for its parent g, the latest is rate limited
    out (RateLimitedError: it may pass later, its outbox row stays pending); q waits for p.
    Then the older one's owner cancels it (its row is buried). p's row to replay is pending,
    so q must fail with what may pass (RETRY), its row pending too: the next start imports p
    and then q. The rate-limited one's cause was forgotten as it ended beside the older one:
    q failed "parent p failed" (FINAL), a dead letter, lost; had the older one ended first,
    q would have failed RateLimitedError (RETRY): the order of the ends decided."""
    path = tmp_path / "outbox.sqlite"
    async with AnyChannelClient(
        token=TOKEN, base_url=emulator.base_url, retry=RetryPolicy(initial_delay=0.0, max_tries=1)
    ) as client:
        async with PushPipeline(
            client,
            IPID,
            outbox=path,
            max_latency=0,
            max_in_flight=4,
            max_attempts=1,
            parent_timeout=30.0,
        ) as pipe:
            older, grandparent = await _parent_waiting_for_grandparent(pipe, emulator)
            child = await pipe.submit(resource("q", parent_id="p"))
            await wait_until(lambda: [r.status for r in requests_with(emulator, "q")] == [200])
            emulator.faults = Faults(retry_after=0)
            emulator.script(Fault.RATE_LIMITED, Fault.RATE_LIMITED)
            latest = await pipe.submit(resource("p", parent_id="g"))
            [limited] = await settle([latest])
            assert isinstance(limited, RateLimitedError)
            assert not grandparent.done()  # the older p still waits for it
            older.cancel()
            [error, landed] = await settle([child, grandparent])
        assert isinstance(landed, PushResult)
        assert landed.code is StatusCode.SUCCESS
        assert isinstance(error, AnyChannelError)
        assert verdict(error) is Verdict.RETRY, repr(error)
        assert dict((i, s) for i, s, _ in rows(path))["q"] == PENDING
        async with PushPipeline(client, IPID, outbox=path) as pipe:
            await pipe.flush()
    assert comment_ids(emulator, "g") == ["g", "p", "q"]
    assert emulator.import_count("q") == 1


# -- a seeded fuzz: ids submitted again in any conversation, cancels, faults, close --------

_IDS = tuple(f"f{n}" for n in range(4))
_THREADS = (None, None, "T0", "T1")
_PARENTS = (None, None, *_IDS, "nowhere")
# Errors that say Zendesk does not hold the resource (a refusal at admission says nothing of
# Zendesk; OutcomeUnknownError says it does not know).
_NOT_HELD = (ProcessingError, ParentNotFoundError, HaltedError, ClosedError)


@pytest.mark.parametrize("seed", range(30))
async def test_resubmissions_cancels_and_faults_keep_the_promise(
    seed: int,
    client: AnyChannelClient,
    emulator: ZendeskEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ids submitted again (same or another conversation, children of each other) while
    older submissions of them are in flight, parked, waiting for a parent or pushed again;
    owners cancelling; faults; a close with or without a flush. Each future tells the truth,
    none is left pending, no id is imported twice, no thread gets two tickets."""
    rng = random.Random(seed)
    emulator.faults = Faults(
        seed=seed,
        latency=0.02,
        latency_jitter=0.1,
        lost_answer_rate=0.1,
        server_error_rate=0.05,
        drop_rate=0.05,
        processing_error_rate=0.05,
    )
    caplog.set_level(logging.ERROR, logger="anychannel_async")
    submitted: list[tuple[ExternalResource, asyncio.Future[PushResult]]] = []
    pipe = PushPipeline(
        client,
        IPID,
        max_batch_size=rng.choice((1, 2, 5)),
        max_in_flight=rng.choice((1, 2, 4)),
        max_latency=rng.choice((0.0, 0.005)),
        parent_timeout=0.3,
        max_attempts=20,
    )
    flush = rng.random() < 0.7
    async with pipe:
        for _ in range(50):
            dice = rng.random()
            live = [future for _, future in submitted if not future.done()]
            if dice < 0.1 and live:
                rng.choice(live).cancel()
            elif dice < 0.25 and live:
                # A live one again, as it was: often cancelled at once (its owner gave up),
                # while the older one still waits.
                again = rng.choice([s for s, future in submitted if not future.done()])
                future = await pipe.submit(again)
                submitted.append((again, future))
                if rng.random() < 0.6:
                    future.cancel()
            elif dice < 0.35:
                await asyncio.sleep(rng.choice((0.0, 0.01, 0.03)))
            else:
                external_id = rng.choice(_IDS)
                thread_id = rng.choice(_THREADS)
                parent_id = None if thread_id else rng.choice(_PARENTS)
                if parent_id == external_id:
                    parent_id = None
                sent = resource(external_id, thread_id=thread_id, parent_id=parent_id)
                submitted.append((sent, await pipe.submit(sent)))
        if not flush:
            await pipe.close(flush=False)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert all(future.done() for _, future in submitted), "a future left pending"
    assert pipe.stats.pending == 0

    successes: collections.Counter[str] = collections.Counter()
    held: set[str] = set()  # ids some future says Zendesk holds
    maybe: set[str] = set()  # ids some future does not say either way of
    for sent, future in submitted:
        external_id = sent.external_id
        if future.cancelled():
            maybe.add(external_id)
            continue
        error = future.exception()
        if error is None:
            result = future.result()
            assert result.external_id == external_id
            assert result.imported
            held.add(external_id)
            if result.code is StatusCode.SUCCESS:
                successes[external_id] += 1
                ticket = emulator.ticket_for(external_id)
                assert ticket is not None
                if sent.parent_id is not None:  # imported by this push: under its parent
                    assert emulator.ticket_for(sent.parent_id) == ticket
            continue
        assert isinstance(error, AnyChannelError), repr(error)
        if isinstance(error, ResourceError):
            assert error.external_id == external_id
        if not isinstance(error, _NOT_HELD):
            maybe.add(external_id)
    for external_id in _IDS:
        count = emulator.import_count(external_id)
        assert count <= 1, f"{external_id} imported {count} times"
        assert successes[external_id] <= count, f"{external_id}: a success not its own"
        if external_id in held:
            assert count == 1, f"{external_id} resolved, yet not imported"
        elif external_id not in maybe and any(s.external_id == external_id for s, _ in submitted):
            assert count == 0, f"{external_id} failed, yet imported"
    for thread_id in ("T0", "T1"):
        assert len([t for t in emulator.tickets if t.thread_id == thread_id]) <= 1
