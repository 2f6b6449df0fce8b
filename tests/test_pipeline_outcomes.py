"""PushPipeline outcomes: what each answer, and each request-level failure, does to futures."""

from __future__ import annotations

from anychannel_async import (
    AnyChannelClient,
    AuthenticationError,
    HaltedError,
    OutcomeUnknownError,
    ProcessingError,
    ProtocolError,
    PushPipeline,
    StatusCode,
    TransportError,
)
from anychannel_async.testing import Fault, Faults, ZendeskEmulator

from .conftest import (
    FAST_RETRY,
    IPID,
    codes,
    comment_ids,
    pushes,
    resource,
    settle,
)

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
