"""A chat bot that pushes each message it receives into Zendesk and awaits that message's own
outcome, while a `PushPipeline` batches the messages of every conversation into few requests.

Run it against the emulator it starts itself::

    python examples/bot.py

or against an account (the emulator's, or Zendesk's)::

    export ANYCHANNEL_TOKEN=...              # the integration's access token
    export ANYCHANNEL_INSTANCE_PUSH_ID=...   # the install's instance_push_id
    export ANYCHANNEL_BASE_URL=http://127.0.0.1:8080   # or ANYCHANNEL_SUBDOMAIN=yourcompany
    python examples/bot.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from anychannel_async import (
    AnyChannelClient,
    AnyChannelError,
    Author,
    ExternalResource,
    PushPipeline,
)
from anychannel_async.testing import DEFAULT_INSTANCE_PUSH_ID, DEFAULT_TOKEN, ZendeskEmulator


async def incoming() -> AsyncIterator[ExternalResource]:
    """The messages the bot receives: here, 3 conversations of 4 messages, interleaved, as a
    chat delivers them. The first message of a conversation is a post (a new ticket); the
    others reply to it (comments on that ticket)."""
    for turn in range(4):
        for chat in range(3):
            await asyncio.sleep(0.01)  # messages arrive one by one
            author = Author(f"customer-{chat}", name=f"Customer {chat}")
            yield ExternalResource(
                external_id=f"chat-{chat}-message-{turn}",
                message=f"message {turn} of chat {chat}",
                created_at=datetime.now(UTC),
                author=author,
                parent_id=f"chat-{chat}-message-0" if turn else None,
            )


async def handle(pipeline: PushPipeline, message: ExternalResource) -> None:
    """One message: push it and wait for its own answer; the others go on meanwhile."""
    try:
        result = await pipeline.push(message)
    except AnyChannelError as exc:
        # A definite refusal (ProcessingError, ...) or an outcome still unknown after the
        # pipeline's tries (OutcomeUnknownError: pushing it again later is safe).
        print(f"{message.external_id}: not imported: {type(exc).__name__}: {exc}")
        return
    print(f"{message.external_id}: {result.code}")  # a StatusCode (a str)


async def run(client: AnyChannelClient, instance_push_id: str) -> None:
    # The handlers finish (the task group waits for them) before the pipeline closes.
    pipeline = PushPipeline(client, instance_push_id, max_latency=0.05)
    async with client, pipeline, asyncio.TaskGroup() as handlers:
        async for message in incoming():
            handlers.create_task(handle(pipeline, message))


async def main() -> None:
    token = os.environ.get("ANYCHANNEL_TOKEN")
    if token is None:  # no account given: a Zendesk emulator of the bot's own, default account
        async with ZendeskEmulator() as zendesk:
            client = AnyChannelClient(token=DEFAULT_TOKEN, base_url=zendesk.base_url)
            await run(client, DEFAULT_INSTANCE_PUSH_ID)
            print(f"Zendesk holds {len(zendesk.tickets):,} tickets")
        return
    client = AnyChannelClient(
        token=token,
        base_url=os.environ.get("ANYCHANNEL_BASE_URL"),
        subdomain=os.environ.get("ANYCHANNEL_SUBDOMAIN"),
    )
    await run(client, os.environ["ANYCHANNEL_INSTANCE_PUSH_ID"])


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
