"""The outcome writer: the only code that acknowledges stream entries or writes dead letters.

This module owns the queue of final outcomes and their way into Redis: chunks of up to 500 per
round trip, each one call of the settle script, which writes an entry's dead letter before its
XACK so that neither happens without the other. While Redis is away the queue waits in memory
and a chunk whose call failed goes back to its head, in order, to be written when Redis is back.
It must never decide whether an outcome is final (the consumer does, through `verdict`), nor
acknowledge an entry nobody queued an outcome for.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Callable

from ._link import RedisLink, logger
from ._wire import (
    DEAD_SUFFIX,
    SETTLE_LUA,
    EntryId,
    Fields,
    Outcome,
    dead_letter,
    settle_args,
)

__all__ = ["OutcomeWriter"]

# Outcomes written per round trip: one script call acks (and dead-letters) a whole chunk.
_WRITE_CHUNK = 500


class OutcomeWriter:
    """Queues final outcomes and writes them, in queue order, while `run` runs."""

    def __init__(
        self, link: RedisLink, *, stream: str, group: str, written: Callable[[EntryId], object]
    ) -> None:
        self._link = link
        self._keys = [stream, stream + DEAD_SUFFIX]
        self._group = group
        self._written = written  # told of each entry once its outcome is in Redis
        self._settle = link.client.register_script(SETTLE_LUA)
        self._queue: collections.deque[Outcome] = collections.deque()
        self._queued = asyncio.Event()
        self._progress = asyncio.Event()  # a chunk was written, or run ended
        self._writing = False  # a chunk is on its way to Redis
        self._ended = False
        #: Entries acknowledged after their resource was imported; written here only.
        self.imported = 0
        #: Entries written to the dead stream, then acknowledged; written here only.
        self.dead_lettered = 0

    def ack(self, entry_id: EntryId) -> None:
        """Queue the ack of an entry whose resource was imported."""
        self._put(Outcome(entry_id, ()))

    def dead_letter(self, entry_id: EntryId, fields: Fields | None, error: BaseException) -> None:
        """Queue the dead letter and ack of an entry whose resource can never be imported."""
        self._put(dead_letter(entry_id, fields, error))

    def _put(self, outcome: Outcome) -> None:
        self._queue.append(outcome)
        self._queued.set()

    async def run(self) -> None:
        """Write queued outcomes in chunks until cancelled, retrying while Redis is away."""
        try:
            while True:
                if not self._queue:
                    self._queued.clear()
                    await self._queued.wait()
                    continue
                size = min(_WRITE_CHUNK, len(self._queue))
                await self._write([self._queue.popleft() for _ in range(size)])
                self._progress.set()
        finally:
            self._ended = True
            self._progress.set()  # a drain waiting for this writer must not wait on

    async def _write(self, chunk: list[Outcome]) -> None:
        self._writing = True
        try:
            acked = await self._link.call(
                "XACK/XADD",
                functools.partial(self._settle, self._keys, settle_args(self._group, chunk)),
            )
        except BaseException:
            self._queue.extendleft(reversed(chunk))  # unwritten: keep them, in order
            raise
        finally:
            self._writing = False
        if acked != len(chunk):
            logger.debug("%d of %d entries were acked already", len(chunk) - acked, len(chunk))
        for outcome in chunk:
            if outcome.dead_letter:
                self.dead_lettered += 1
            else:
                self.imported += 1
            self._written(outcome.entry_id)

    async def drain(self, seconds: float) -> None:
        """Wait until every queued outcome is written, or `run` ended, at most ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                while (self._queue or self._writing) and not self._ended:
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            logger.warning(
                "%d outcomes not written to Redis within %g s; their entries stay pending",
                len(self._queue),
                seconds,
            )
