"""The outbox under faults: an unusable file, closing mid-submit, parents that fail for now."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from anychannel_async import (
    AnyChannelClient,
    ClosedError,
    OutboxError,
    OutcomeUnknownError,
    PushPipeline,
    RetryPolicy,
)
from anychannel_async._outbox import PENDING, RESOLVED
from anychannel_async.testing import Faults, ZendeskEmulator

from .conftest import IPID, TOKEN, resource
from .test_outbox import rows


async def test_an_outbox_that_cannot_open_fails_every_waiting_submit(
    client: AnyChannelClient,
) -> None:
    """A path SQLite refuses gives OutboxError to each concurrent submit; none hangs."""
    pipe = PushPipeline(client, IPID, outbox="bad\0name.sqlite")
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(pipe.submit(resource(f"x{n}")) for n in range(2)), return_exceptions=True),
        timeout=5,
    )
    assert [type(o) for o in outcomes] == [OutboxError, OutboxError]
    await pipe.close()


async def test_submit_racing_close_is_refused_and_its_row_replayed_later(
    client: AnyChannelClient, emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """A submit still writing when close() starts raises ClosedError; its row is pushed at the
    next start rather than lost."""
    path = tmp_path / "outbox.sqlite"
    pipe = PushPipeline(client, IPID, outbox=path)
    await pipe.__aenter__()
    submitting = asyncio.create_task(pipe.submit(resource("late")))
    await asyncio.sleep(0)  # it is waiting for its row to be written
    await pipe.close()
    with pytest.raises(ClosedError):
        await submitting
    async with PushPipeline(client, IPID, outbox=path) as again:
        await again.flush()
    assert emulator.import_count("late") == 1
    assert rows(path) == [("late", RESOLVED, None)]


async def test_children_of_a_parent_of_unknown_outcome_stay_pending(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """A parent that failed for now keeps its children pending too; the next start imports both."""
    path = tmp_path / "outbox.sqlite"
    async with AnyChannelClient(
        token=TOKEN, base_url=emulator.base_url, retry=RetryPolicy(max_tries=1)
    ) as client:
        emulator.faults = Faults(server_error_rate=1.0)
        async with PushPipeline(client, IPID, outbox=path, max_latency=0, max_batch_size=1) as pipe:
            parent = await pipe.submit(resource("p"))
            child = await pipe.submit(resource("c", parent_id="p"))
            await pipe.flush()
        assert isinstance(parent.exception(), OutcomeUnknownError)
        assert isinstance(child.exception(), OutcomeUnknownError)
        assert [state for _, state, _ in rows(path)] == [PENDING, PENDING]

        emulator.faults = Faults()
        async with PushPipeline(client, IPID, outbox=path) as pipe:
            await pipe.flush()
    assert [state for _, state, _ in rows(path)] == [RESOLVED, RESOLVED]
    ticket = emulator.ticket_for("c")
    assert ticket is not None
    assert ticket.external_id == "p"
