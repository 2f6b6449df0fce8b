"""Shared fixtures: an emulator over real TCP in the test's own loop, and clients for it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import settings

from anychannel_async import AnyChannelClient, Author, ExternalResource, RetryPolicy
from anychannel_async.testing import ZendeskEmulator

# No per-example deadline: a shared 2-core machine can stall one example past any fixed bound,
# and a timing failure there says nothing about correctness. On CI, the examples are derived
# from the test, so a red run can be reproduced exactly.
settings.register_profile("anychannel", deadline=None, derandomize=bool(os.environ.get("CI")))
settings.load_profile("anychannel")

IPID = "test-instance"
TOKEN = "test-token-5f1c9e0b7a"  # distinctive, so a leak into any text is easy to spot
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
async def emulator() -> AsyncIterator[ZendeskEmulator]:
    async with ZendeskEmulator(accounts={IPID: TOKEN}) as emu:
        yield emu


@pytest.fixture
async def client(emulator: ZendeskEmulator) -> AsyncIterator[AnyChannelClient]:
    async with AnyChannelClient(
        token=TOKEN, base_url=emulator.base_url, retry=FAST_RETRY, timeout=5.0
    ) as c:
        yield c


# The Redis Streams tests' fixtures (a redis-server per test, a thread-mode emulator) and
# helpers live in their own module; loaded here so pytest rewrites its asserts.
pytest_plugins = ["tests.redis_support"]
