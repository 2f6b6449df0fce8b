"""Redis Streams as a source for a `PushPipeline`: read with a consumer group, ack what is final.

This module owns the life of a stream entry from the moment the consumer group delivers it to
the moment its outcome is written back to Redis: XACK once the resource is imported (success or
already_imported); XADD to ``STREAM:dead`` and XACK, in one Lua script so neither happens
without the other, once the resource can never be imported. It must never acknowledge an entry
whose outcome is not final. Redis or Zendesk going away leaves entries pending, and pending
entries come back: re-read by their consumer at start, claimed by any consumer (XAUTOCLAIM) once
idle for ``claim_idle`` seconds. Redelivery is safe because Zendesk answers already_imported for
an external_id it has seen.

redis-py's exceptions are mapped here, at one boundary: connection trouble is retried with a
capped, jittered backoff for as long as it lasts; anything else ends the consumer with
`SourceError`. Outcomes that become final while Redis is down wait in a queue, in memory, and
are written when it is back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import attrs
import orjson

from anychannel_async._errors import (
    AnyChannelError,
    ClosedError,
    MalformedEntryError,
    SourceError,
    ValidationError,
    Verdict,
    verdict,
)
from anychannel_async._models import ExternalResource, PushResult
from anychannel_async._pipeline import PushPipeline
from anychannel_async._serde import resource_from_json

try:
    import redis.asyncio
    import redis.exceptions
    from redis.typing import StreamIdT
except ImportError as exc:  # pragma: no cover - exercised by the CLI test in a clean process
    raise ImportError(
        "the Redis Streams source needs redis-py: pip install 'anychannel-async[redis]'"
    ) from exc

__all__ = [
    "DEAD_SUFFIX",
    "RESOURCE_FIELD",
    "ConsumeStats",
    "MalformedEntryError",
    "SourceError",
    "consume_stream",
]

logger = logging.getLogger("anychannel_async.sources.redis")

#: The entry field that holds one external resource as JSON, with the API's field names.
RESOURCE_FIELD = "resource"
#: Dead letters of stream NAME go to the stream NAME + DEAD_SUFFIX.
DEAD_SUFFIX = ":dead"

# Outcomes written per round trip: one script call acks (and dead-letters) a whole chunk.
_WRITE_CHUNK = 500
# Ids re-claimed per XCLAIM when we tell Redis we still hold them.
_TOUCH_CHUNK = 1_000
# Backoff while Redis is unreachable (seconds): first wait, cap.
_REDIS_FIRST_WAIT = 0.1
_REDIS_MAX_WAIT = 5.0
# Seconds beyond block_ms that a stop waits for a read in progress before cancelling it.
_STOP_GRACE = 5.0
# Pause of reads after Zendesk failed a resource with a retriable error (seconds): first, cap.
# Reading on would only fill the pipeline with resources bound to fail the same way.
_ZENDESK_FIRST_PAUSE = 1.0
_ZENDESK_MAX_PAUSE = 60.0

# KEYS: the stream, its dead stream. ARGV: the group, then per entry its id, the number n of
# dead-letter arguments (0 for a plain ack) and those n field/value arguments. A dead letter is
# written only for an entry still pending in the group, and before its XACK: should the XADD
# fail (the dead key holds another type), the script stops with the entry still pending, never
# acked without its dead letter. An entry another consumer settled first is not dead-lettered
# too, and a script retried after a lost reply adds nothing twice. Redis does not roll a script
# back: entries earlier in the call stay settled when a later one fails. A missing group
# (NOGROUP) means nothing is pending, as XACK itself answers 0 then.
_SETTLE_LUA = """
local acked = 0
local i = 2
while i <= #ARGV do
  local id = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  if n > 0 then
    local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    if type(pending) == 'table' and pending.err then
      if string.sub(pending.err, 1, 7) ~= 'NOGROUP' then
        return redis.error_reply(pending.err)
      end
      pending = {}
    end
    if #pending > 0 then
      redis.call('XADD', KEYS[2], '*', unpack(ARGV, i + 2, i + 1 + n))
      acked = acked + redis.call('XACK', KEYS[1], ARGV[1], id)
    end
  else
    acked = acked + redis.call('XACK', KEYS[1], ARGV[1], id)
  end
  i = i + 2 + n
end
return acked
"""

_T = TypeVar("_T")
# redis-py gives bytes, or str with decode_responses=True; both are accepted throughout.
_Id = bytes | str
_Fields = Mapping[bytes | str, bytes | str]


@attrs.frozen
class ConsumeStats:
    """What one `consume_stream` call did; counts of stream entries."""

    #: Entries taken in hand: read by this consumer (new or its own pending) or claimed.
    read: int
    #: Of those, entries claimed from an idle consumer with XAUTOCLAIM.
    claimed: int
    #: Entries acknowledged after their resource was imported (success or already_imported).
    imported: int
    #: Entries written to the dead stream with their error, then acknowledged.
    dead_lettered: int
    #: Entries left pending, unacknowledged, for a later delivery: a retriable failure
    #: (Zendesk unreachable), or shutdown before their outcome was final or written.
    left_pending: int
    #: Redis commands that failed with connection trouble and were retried.
    redis_retries: int


def _is_transient(exc: BaseException) -> bool:
    """Connection trouble that retrying the same command may cure."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return False  # subclasses of ConnectionError, but retrying will not change the answer
    return isinstance(
        exc,
        redis.exceptions.ConnectionError  # includes BusyLoadingError: restarting, loading data
        | redis.exceptions.TimeoutError
        | redis.exceptions.ReadOnlyError  # a replica promoted during failover
        | redis.exceptions.TryAgainError
        | redis.exceptions.ClusterDownError
        | OSError,
    )


@attrs.define
class _Outcome:
    """A final outcome waiting to be written: an ack, or a dead letter and an ack."""

    entry_id: _Id
    #: Field/value arguments of the dead letter; empty for a plain ack.
    dead_letter: list[bytes | str]


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _field(fields: _Fields, name: str) -> bytes | str | None:
    value = fields.get(name.encode())
    return fields.get(name) if value is None else value


def _resource_of(fields: _Fields | None) -> ExternalResource:
    """The entry's resource; raises MalformedEntryError or ValidationError."""
    if not fields:
        raise MalformedEntryError("the entry is empty: it was deleted from the stream (XDEL)")
    raw = _field(fields, RESOURCE_FIELD)
    if raw is None:
        raise MalformedEntryError(f"the entry has no {RESOURCE_FIELD!r} field")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedEntryError(f"the {RESOURCE_FIELD!r} field is not JSON: {exc}") from None
    return resource_from_json(obj)


def _dead_letter(entry_id: _Id, fields: _Fields | None, error: BaseException) -> list[bytes | str]:
    """The dead letter's fields: the entry's id, the error, and the resource as it came."""
    letter: list[bytes | str] = ["id", entry_id, "error", _describe(error)]
    raw = _field(fields, RESOURCE_FIELD) if fields else None
    if raw is not None:
        letter += [RESOURCE_FIELD, raw]
    else:  # keep whatever the entry held instead, so nothing of it is lost
        entry = {
            (k.decode(errors="replace") if isinstance(k, bytes) else k): (
                v.decode(errors="replace") if isinstance(v, bytes) else v
            )
            for k, v in (fields or {}).items()
        }
        letter += ["fields", orjson.dumps(entry)]
    return letter


def _entries(reply: object) -> list[tuple[_Id, _Fields | None]]:
    """The entries of an XREADGROUP reply for one stream (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    # RESP2: [[stream, entries]]; RESP3: {stream: [entries]}.
    streams = list(reply.items()) if isinstance(reply, dict) else cast(list[Any], reply)
    found: list[tuple[_Id, _Fields | None]] = []
    for _name, messages in streams:
        if messages and isinstance(messages[0], list) and len(messages) == 1:
            messages = messages[0]
        found.extend((entry_id, fields) for entry_id, fields in messages)
    return found


async def consume_stream(
    pipeline: PushPipeline,
    redis: redis.asyncio.Redis,
    *,
    stream: str,
    group: str,
    consumer: str,
    claim_idle: float = 60.0,
    block_ms: int = 1_000,
    count: int = 100,
    max_unacked: int = 10_000,
    drain_timeout: float = 30.0,
    stop: asyncio.Event | None = None,
) -> ConsumeStats:
    """Push the resources of a Redis stream through ``pipeline`` until ``stop`` is set.

    Entries hold one resource as JSON in the field ``resource``. They are read as ``consumer``
    of consumer group ``group`` (created at the stream's start, and the stream with it, when
    missing): first this consumer's own pending entries, left by an earlier run under the same
    name, then new ones. Each entry is acknowledged once its resource is imported; a resource
    that can never be imported (Zendesk refused it, the entry is malformed or invalid) is
    written to the stream ``stream + ":dead"`` with fields ``id``, ``error`` (type and message)
    and ``resource`` (or ``fields``, when the entry had no resource), then acknowledged.
    Retriable failures are left pending and come back through XAUTOCLAIM.

    When ``stop`` is set: stop reading, flush the pipeline, write the outcomes, return. Redis
    connection trouble is retried for as long as it lasts (give ``redis`` a ``socket_timeout``
    above ``block_ms`` so a silent network cannot hang a read). Raises `SourceError` when Redis
    refuses for good, and the pipeline's `AuthenticationError` (or `RequestRejectedError` for a
    4xx other than 400/413/422) when Zendesk would refuse every resource; entries not settled
    are left pending then.

    Settings, keyword-only:

    - ``claim_idle``: seconds a pending entry must sit idle before this consumer claims it from
      another (default 60); claims run at start and every ``claim_idle / 2`` seconds, and the
      entries this consumer holds are touched as often, so a live consumer keeps its own.
    - ``block_ms``: milliseconds one read waits for new entries (default 1000); a stop waits
      for a read in progress, so this bounds how long a stop takes to begin.
    - ``count``: entries per read or claim at most (default 100).
    - ``max_unacked``: entries in hand (read and not yet acknowledged) at most; reads take no
      more than the free room (default 10,000, the pipeline's default ``max_pending``).
    - ``drain_timeout``: seconds to keep trying to write outcomes to Redis after ``stop``
      (default 30); entries whose outcome could not be written stay pending.
    """
    for name, value in (("block_ms", block_ms), ("count", count), ("max_unacked", max_unacked)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not claim_idle > 0:
        raise ValueError(f"claim_idle must be > 0 seconds, got {claim_idle!r}")
    if not drain_timeout >= 0:
        raise ValueError(f"drain_timeout must be >= 0 seconds, got {drain_timeout!r}")
    for name, text in (("stream", stream), ("group", group), ("consumer", consumer)):
        if not isinstance(text, str) or not text:
            raise ValueError(f"{name} must be a non-empty string")
    source = _StreamConsumer(
        pipeline,
        redis,
        stream=stream,
        group=group,
        consumer=consumer,
        claim_idle=claim_idle,
        block_ms=block_ms,
        count=count,
        max_unacked=max_unacked,
        drain_timeout=drain_timeout,
    )
    return await source.run(stop if stop is not None else asyncio.Event())


class _StreamConsumer:
    """One consume_stream call: reader, claimer, toucher and writer tasks, and the entries in hand.

    An entry is in hand from its delivery until its outcome is written (or it is left pending
    for redelivery); the writer alone removes settled entries, so the room the reader sees is
    what memory holds.
    """

    def __init__(
        self,
        pipeline: PushPipeline,
        redis: redis.asyncio.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        claim_idle: float,
        block_ms: int,
        count: int,
        max_unacked: int,
        drain_timeout: float,
    ) -> None:
        self._pipeline = pipeline
        self._redis = redis
        self._stream = stream
        self._dead = stream + DEAD_SUFFIX
        self._group = group
        self._consumer = consumer
        self._claim_idle = claim_idle
        self._block_ms = block_ms
        self._count = count
        self._max_unacked = max_unacked
        self._drain_timeout = drain_timeout
        self._settle = redis.register_script(_SETTLE_LUA)

        loop = asyncio.get_running_loop()
        self._loop = loop
        # Entry id -> when Redis last heard we hold it (loop time): delivery, claim or touch.
        self._in_hand: dict[_Id, float] = {}
        self._outcomes: collections.deque[_Outcome] = collections.deque()
        self._room = asyncio.Event()  # set whenever entries leave the hand
        self._outcome_ready = asyncio.Event()
        self._halt = asyncio.Event()  # set on a fatal error
        self._stopping = asyncio.Event()  # reads end
        self._fatal: BaseException | None = None
        self._pause_until = 0.0
        self._pause = 0.0
        self._writing = False  # a chunk of outcomes is on its way to Redis

        self._read = 0
        self._claimed = 0
        self._imported = 0
        self._dead_lettered = 0
        self._left_pending = 0
        self._redis_retries = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> ConsumeStats:
        stopped = self._loop.create_task(stop.wait())
        # Redis may be away at start: a stop must not wait for it to come back.
        ready = self._loop.create_task(self._ensure_group())
        await asyncio.wait([ready, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            await self._cancel([ready, stopped])
            return self._stats()
        if ready.exception() is not None:  # Redis refused: SourceError
            await self._cancel([stopped])
            ready.result()
        writer = self._loop.create_task(self._guard(self._write_outcomes()))
        # Touching runs apart from reading and claiming, which wait for room: entries held
        # while the hand is full, or while the pipeline flushes at stop, stay ours in Redis.
        keeper = self._loop.create_task(self._guard(self._touch_entries()))
        inputs = [
            self._loop.create_task(self._guard(self._read_entries())),
            self._loop.create_task(self._guard(self._claim_entries())),
        ]
        halted = self._loop.create_task(self._halt.wait())
        try:
            await asyncio.wait([stopped, halted], return_when=asyncio.FIRST_COMPLETED)
            logger.info("stopping: no more reads; finishing what is in flight")
            # Let a read in progress end on its own (a blocking read within block_ms): a reply
            # cut off by a cancel would leave its entries delivered here and never handled.
            self._stopping.set()
            self._room.set()
            await asyncio.wait(inputs, timeout=self._block_ms / 1000 + _STOP_GRACE)
            await self._cancel(inputs)
            await self._pipeline.flush()
            await asyncio.sleep(0)  # let the futures' done callbacks queue their outcomes
            await self._drain(writer)
        finally:
            await self._cancel([*inputs, writer, keeper, stopped, halted])
            # Whatever is still in hand was not written: it stays pending in Redis.
            self._left_pending += len(self._in_hand)
            self._in_hand.clear()
        if self._fatal is not None:
            raise self._fatal
        return self._stats()

    async def _guard(self, work: Awaitable[None]) -> None:
        """Run a task's loop; an error ends the consumer instead of dying unseen."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, AnyChannelError):
                logger.exception("unexpected error in the Redis stream consumer")
                exc = SourceError(f"internal error: {_describe(exc)}")
            self._fail(exc)

    def _fail(self, error: BaseException) -> None:
        if self._fatal is None:
            logger.error("consumer stops: %s", _describe(error))
            self._fatal = error
        self._halt.set()
        self._room.set()  # wake _drain: the writer may be the task that died

    @staticmethod
    async def _cancel(tasks: Sequence[asyncio.Task[Any]]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, writer: asyncio.Task[None]) -> None:
        """Wait until every outcome is written, at most drain_timeout."""
        try:
            async with asyncio.timeout(self._drain_timeout):
                while (self._outcomes or self._writing) and not writer.done():
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            logger.warning(
                "%d outcomes not written to Redis within %g s; their entries stay pending",
                len(self._outcomes),
                self._drain_timeout,
            )

    def _stats(self) -> ConsumeStats:
        return ConsumeStats(
            read=self._read,
            claimed=self._claimed,
            imported=self._imported,
            dead_lettered=self._dead_lettered,
            left_pending=self._left_pending,
            redis_retries=self._redis_retries,
        )

    # -- the Redis boundary --------------------------------------------------------------------

    async def _call(self, what: str, command: Callable[[], Awaitable[_T]]) -> _T:
        """Run a command until Redis answers; map what retrying cannot cure to SourceError."""
        wait = _REDIS_FIRST_WAIT
        failing = False
        while True:
            try:
                result = await command()
            except (redis.exceptions.RedisError, OSError) as exc:
                if _is_transient(exc):
                    self._redis_retries += 1
                    if not failing:
                        logger.warning("Redis %s failed (%s); retrying until it is back", what, exc)
                        failing = True
                    await asyncio.sleep(wait * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
                    wait = min(wait * 2, _REDIS_MAX_WAIT)
                    continue
                if isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(
                    "NOGROUP"
                ):
                    # Redis came back without its data (no persistence): start over.
                    logger.warning("the consumer group is gone; creating it again")
                    await self._ensure_group()
                    continue
                raise SourceError(f"Redis refused {what}: {_describe(exc)}") from None
            if failing:
                logger.warning("Redis %s works again", what)
            return result

    async def _ensure_group(self) -> None:
        async def create() -> None:
            try:
                # Id 0, not $: entries added before the group existed are work too.
                await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise

        await self._call("XGROUP CREATE", create)

    # -- entries in ----------------------------------------------------------------------------

    async def _wait_for_room(self) -> int:
        """Wait until reads may go on; returns how many entries may be taken, 0 to stop."""
        while not self._stopping.is_set():
            pause = self._pause_until - self._loop.time()
            if pause > 0:
                await self._sleep(pause)
                continue
            room = self._max_unacked - len(self._in_hand)
            if room > 0:
                return min(room, self._count)
            self._room.clear()
            await self._room.wait()
        return 0

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when reads end."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _read_entries(self) -> None:
        # Own pending entries first: left by an earlier run under this name, or delivered in a
        # reply lost with a connection. Reading from id 0 pages through them.
        backlog_from: _Id | None = "0"
        while room := await self._wait_for_room():
            retries = self._redis_retries
            start = backlog_from if backlog_from is not None else ">"
            reply = await self._call(
                "XREADGROUP",
                functools.partial(
                    self._redis.xreadgroup,
                    self._group,
                    self._consumer,
                    {self._stream: start},
                    count=room,
                    block=None if backlog_from is not None else self._block_ms,
                ),
            )
            entries = _entries(reply)
            if backlog_from is not None:
                backlog_from = entries[-1][0] if entries else None
            elif self._redis_retries != retries:
                backlog_from = "0"  # Redis was away: a reply may have been lost with it
            await self._take(entries, claimed=False)

    async def _claim_entries(self) -> None:
        period = self._claim_idle / 2
        while not self._stopping.is_set():
            await self._claim()
            await self._sleep(period)

    async def _touch_entries(self) -> None:
        """Touch the entries in hand every claim_idle / 2 seconds, until cancelled.

        Never waits for room, and goes on after reads end, so an entry is not claimed by
        another consumer while its outcome is pending here."""
        period = self._claim_idle / 2
        while True:
            await asyncio.sleep(period)
            await self._touch()

    async def _claim(self) -> None:
        """Claim entries idle for claim_idle: their consumer died, or gave them up."""
        cursor: _Id = "0-0"
        while room := await self._wait_for_room():
            reply = await self._call(
                "XAUTOCLAIM",
                functools.partial(
                    self._redis.xautoclaim,
                    self._stream,
                    self._group,
                    self._consumer,
                    int(self._claim_idle * 1000),
                    start_id=cursor,
                    count=room,
                ),
            )
            cursor, entries = reply[0], reply[1]
            if len(reply) > 2 and reply[2]:
                logger.warning(
                    "%d pending entries were deleted from the stream before they were handled",
                    len(reply[2]),
                )
            await self._take(entries, claimed=True)
            if cursor in ("0-0", b"0-0"):
                return

    async def _touch(self) -> None:
        """Tell Redis we still hold our entries, so no other consumer claims them as idle."""
        now = self._loop.time()
        stale = [i for i, seen in self._in_hand.items() if now - seen >= self._claim_idle / 4]
        for start in range(0, len(stale), _TOUCH_CHUNK):
            chunk = stale[start : start + _TOUCH_CHUNK]
            await self._call(
                "XCLAIM",
                functools.partial(
                    self._redis.xclaim,
                    self._stream,
                    self._group,
                    self._consumer,
                    0,
                    list[StreamIdT](chunk),
                    justid=True,
                ),
            )
            now = self._loop.time()
            for entry_id in chunk:
                if entry_id in self._in_hand:
                    self._in_hand[entry_id] = now

    async def _take(self, entries: Sequence[tuple[_Id, _Fields | None]], *, claimed: bool) -> None:
        """Submit the entries' resources; settle at once those that hold none."""
        for entry_id, fields in entries:
            if entry_id in self._in_hand:
                continue  # already being handled here (a backlog read, a claim of our own)
            self._in_hand[entry_id] = self._loop.time()
            self._read += 1
            self._claimed += int(claimed)
            try:
                resource = _resource_of(fields)
                future = await self._pipeline.submit(resource)
            except (MalformedEntryError, ValidationError) as exc:
                logger.info("entry %r dead-lettered: %s", entry_id, _describe(exc))
                self._queue(_Outcome(entry_id, _dead_letter(entry_id, fields, exc)))
                continue
            except BaseException:
                self._leave(entry_id)  # e.g. cancelled while waiting for room: still pending
                raise
            future.add_done_callback(functools.partial(self._settled, entry_id, fields))

    def _settled(
        self, entry_id: _Id, fields: _Fields | None, future: asyncio.Future[PushResult]
    ) -> None:
        """A resource's future is done: queue the entry's outcome, or leave it pending."""
        if future.cancelled():  # by whoever owns the pipeline: not an outcome
            self._leave(entry_id)
            return
        error = future.exception()
        if error is None:
            self._pause = 0.0
            self._queue(_Outcome(entry_id, []))
            return
        # The pipeline's own verdict: final outcomes are dead-lettered; a refusal of every
        # request (credentials, a wrong URL) stops the consumer rather than empty the stream
        # into the dead one; an unknown outcome or a retry is left pending for redelivery.
        fate = verdict(error)
        if fate is Verdict.FINAL:
            self._queue(_Outcome(entry_id, _dead_letter(entry_id, fields, error)))
            return
        self._leave(entry_id)
        if fate is Verdict.REFUSED:
            self._fail(error)
        elif not isinstance(error, ClosedError):
            now = self._loop.time()
            if now < self._pause_until:
                return  # one outage fails many resources: pause (and log) once for them
            self._pause = min(_ZENDESK_MAX_PAUSE, max(_ZENDESK_FIRST_PAUSE, self._pause * 2))
            self._pause_until = now + self._pause
            logger.warning(
                "%s; its entry and others left pending, reads paused %g s", error, self._pause
            )

    def _leave(self, entry_id: _Id) -> None:
        """Let go of an entry without acking it: it stays pending, to be claimed later."""
        if self._in_hand.pop(entry_id, None) is not None:
            self._left_pending += 1
            self._room.set()

    # -- outcomes out ------------------------------------------------------------------------

    def _queue(self, outcome: _Outcome) -> None:
        self._outcomes.append(outcome)
        self._outcome_ready.set()

    async def _write_outcomes(self) -> None:
        """Write queued outcomes in chunks, retrying while Redis is away; owns _outcomes."""
        while True:
            if not self._outcomes:
                self._outcome_ready.clear()
                await self._outcome_ready.wait()
                continue
            size = min(_WRITE_CHUNK, len(self._outcomes))
            chunk = [self._outcomes.popleft() for _ in range(size)]
            args: list[bytes | str | int] = [self._group]
            for outcome in chunk:
                args += [outcome.entry_id, len(outcome.dead_letter), *outcome.dead_letter]
            self._writing = True
            try:
                acked = await self._call(
                    "XACK/XADD", functools.partial(self._settle, [self._stream, self._dead], args)
                )
            except BaseException:
                self._outcomes.extendleft(reversed(chunk))  # unwritten: keep them, in order
                raise
            finally:
                self._writing = False
            if acked != len(chunk):
                logger.debug("%d of %d entries were acked already", len(chunk) - acked, len(chunk))
            for outcome in chunk:
                if outcome.dead_letter:
                    self._dead_lettered += 1
                else:
                    self._imported += 1
                self._in_hand.pop(outcome.entry_id, None)
            self._room.set()
