"""Shared fixtures and helpers: the package's own emulator over real TCP, clients for it, and
what tests read back from it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import settings

from anychannel_async import AnyChannelClient, Author, ExternalResource, PushResult, RetryPolicy
from anychannel_async.testing import (
    DEFAULT_INSTANCE_PUSH_ID,
    DEFAULT_TOKEN,
    RecordedRequest,
    ZendeskEmulator,
)

# No per-example deadline: a shared 2-core machine can stall one example past any fixed bound,
# and a timing failure there says nothing about correctness. On CI, the examples are derived
# from the test, so a red run can be reproduced exactly.
settings.register_profile("anychannel", deadline=None, derandomize=bool(os.environ.get("CI")))
settings.load_profile("anychannel")

# The account of the package's `zendesk_emulator` fixture, which most tests share.
IPID = DEFAULT_INSTANCE_PUSH_ID
TOKEN = DEFAULT_TOKEN  # distinctive, so a leak into any text is easy to spot
PUSH_PATH = "/api/v2/any_channel/push"

Outcome = PushResult | BaseException
CREATED = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
# Retries at once: tests of retry paths stay fast (Retry-After is still honoured).
FAST_RETRY = RetryPolicy(initial_delay=0.0, max_tries=4, max_time=20.0)


def resource(external_id: str, message: str | None = None, **fields: Any) -> ExternalResource:
    """A valid resource with sensible defaults; keyword arguments override fields."""
    return ExternalResource(
        external_id=external_id,
        message=message if message is not None else f"message {external_id}",
        created_at=CREATED,
        author=fields.pop("author", Author("author-1", name="Ada")),
        **fields,
    )


@pytest.fixture
def emulator(zendesk_emulator: ZendeskEmulator) -> ZendeskEmulator:
    """The package's own fixture, as users get it: one emulator per run, reset per test."""
    return zendesk_emulator


@pytest.fixture
async def client(emulator: ZendeskEmulator) -> AsyncIterator[AnyChannelClient]:
    async with AnyChannelClient(
        token=TOKEN, base_url=emulator.base_url, retry=FAST_RETRY, timeout=5.0
    ) as c:
        yield c


# -- what tests read back ----------------------------------------------------------------


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


# The Redis Streams tests' fixtures (a redis-server per test, a thread-mode emulator) and
# helpers live in their own module; loaded here so pytest rewrites its asserts.
pytest_plugins = ["tests.redis_support"]
