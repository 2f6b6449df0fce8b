"""The source's one door to Redis: every command of the consumer and the writer goes through it.

This module owns the boundary where redis-py's exceptions are mapped: connection trouble is
retried with a capped, jittered backoff for as long as it lasts (and counted); a consumer group
that is gone (Redis came back without its data) is created again and the command retried;
anything else ends in `SourceError`. It must never decide what a command is for, nor hold
entries or outcomes: callers hand it a command and get Redis's answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio
import redis.exceptions

from anychannel_async._errors import SourceError

from ._wire import describe, group_exists, group_missing, is_transient

__all__ = ["RedisLink", "logger", "next_wait"]

#: The one logger of the Redis Streams source, whichever module of it speaks.
logger = logging.getLogger("anychannel_async.sources.redis")

# Backoff while Redis is unreachable (seconds): first wait, cap.
_REDIS_FIRST_WAIT = 0.1
_REDIS_MAX_WAIT = 5.0

_T = TypeVar("_T")


def next_wait(previous: float, *, first: float, cap: float) -> float:
    """The wait after ``previous`` in a doubling backoff: ``first``, then twice the last, to cap."""
    return min(cap, max(first, previous * 2))


class RedisLink:
    """A Redis client as one consumer group's source sees it: commands run until Redis answers."""

    def __init__(self, client: redis.asyncio.Redis, *, stream: str, group: str) -> None:
        #: The caller's client; commands are built on it and run through `call`.
        self.client = client
        self._stream = stream
        self._group = group
        #: Commands that failed with connection trouble and were retried; written here only.
        self.retries = 0

    async def call(self, what: str, command: Callable[[], Awaitable[_T]]) -> _T:
        """Run a command until Redis answers; map what retrying cannot cure to SourceError."""
        wait = 0.0
        failing = False
        while True:
            try:
                result = await command()
            except (redis.exceptions.RedisError, OSError) as exc:
                if is_transient(exc):
                    self.retries += 1
                    if not failing:
                        logger.warning("Redis %s failed (%s); retrying until it is back", what, exc)
                        failing = True
                    wait = next_wait(wait, first=_REDIS_FIRST_WAIT, cap=_REDIS_MAX_WAIT)
                    await asyncio.sleep(wait * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
                    continue
                if group_missing(exc):
                    # Redis came back without its data (no persistence): start over.
                    logger.warning("the consumer group is gone; creating it again")
                    await self.ensure_group()
                    continue
                raise SourceError(f"Redis refused {what}: {describe(exc)}") from None
            if failing:
                logger.warning("Redis %s works again", what)
            return result

    async def ensure_group(self) -> None:
        """Create the consumer group, and the stream with it, unless the group exists."""

        async def create() -> None:
            try:
                # Id 0, not $: entries added before the group existed are work too.
                await self.client.xgroup_create(self._stream, self._group, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if not group_exists(exc):
                    raise

        await self.call("XGROUP CREATE", create)
