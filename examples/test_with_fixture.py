"""Tests of your own code against the Zendesk emulator, with the `zendesk_emulator` fixture.

Installing anychannel-async installs the fixture (a pytest plugin): no conftest.py, no import.
It gives a running emulator, reset for each test, holding one account: `DEFAULT_INSTANCE_PUSH_ID`
with the token `DEFAULT_TOKEN`. The fixture is synchronous (the emulator serves from a thread of
its own); async tests need an async plugin, as any async test does:

- pytest-asyncio with ``asyncio_mode = "auto"`` (in pyproject's ``[tool.pytest.ini_options]``):
  nothing more, as here;
- pytest-asyncio in strict mode: mark each async test ``@pytest.mark.asyncio``;
- anyio's plugin: mark each async test ``@pytest.mark.anyio``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from anychannel_async import (
    AnyChannelClient,
    Author,
    ExternalResource,
    ProcessingError,
    PushPipeline,
    StatusCode,
)
from anychannel_async.testing import (
    DEFAULT_INSTANCE_PUSH_ID,
    DEFAULT_TOKEN,
    Faults,
    ZendeskEmulator,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def post(external_id: str, parent_id: str | None = None) -> ExternalResource:
    return ExternalResource(
        external_id, f"text of {external_id}", NOW, Author("ada"), parent_id=parent_id
    )


async def test_a_reply_lands_on_its_post_s_ticket(zendesk_emulator: ZendeskEmulator) -> None:
    async with (
        AnyChannelClient(token=DEFAULT_TOKEN, base_url=zendesk_emulator.base_url) as client,
        PushPipeline(client, DEFAULT_INSTANCE_PUSH_ID) as pipeline,
    ):
        first = await pipeline.push(post("post-1"))
        second = await pipeline.push(post("reply-1", parent_id="post-1"))
    assert first.code is second.code is StatusCode.SUCCESS
    ticket = zendesk_emulator.ticket_for("reply-1")
    assert ticket is not None
    assert [comment.external_id for comment in ticket.comments] == ["post-1", "reply-1"]


async def test_a_resource_zendesk_fails_raises_from_its_future(
    zendesk_emulator: ZendeskEmulator,
) -> None:
    # Faults make the emulator misbehave on purpose: here, it fails to process one post.
    zendesk_emulator.faults = Faults(processing_error_ids={"bad-1"})
    async with (
        AnyChannelClient(token=DEFAULT_TOKEN, base_url=zendesk_emulator.base_url) as client,
        PushPipeline(client, DEFAULT_INSTANCE_PUSH_ID) as pipeline,
    ):
        good = await pipeline.submit(post("good-1"))
        bad = await pipeline.submit(post("bad-1"))
        await pipeline.flush()
    assert good.result().code is StatusCode.SUCCESS
    assert isinstance(bad.exception(), ProcessingError)
    assert zendesk_emulator.import_count("bad-1") == 0


def test_each_test_starts_from_an_empty_zendesk(zendesk_emulator: ZendeskEmulator) -> None:
    # A plain (sync) test can use the fixture too.
    assert zendesk_emulator.tickets == []
    assert zendesk_emulator.requests == []
