"""The consumer: `consume_stream`, and an entry's path from delivery to its queued outcome.

This module owns what happens to an entry in this process: read with the consumer group (first
this consumer's own pending entries, then new ones) or claimed with XAUTOCLAIM once idle at
another consumer; held in hand, and renewed in Redis while held so that no other consumer claims
it; submitted to the pipeline; and, once its future is done, handed to the outcome writer when
the outcome is final, or let go to stay pending for redelivery when it is not. It also owns the
pause of reads while Zendesk fails (with a pool, of the failing account's entries alone), the
tasks of one run, and the order of a shutdown. It must
never write an ack or a dead letter itself (the outcome writer does), nor judge a resource's
fate other than through `verdict`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Sequence
from typing import Any

import attrs
import redis.asyncio
from redis.typing import StreamIdT

from anychannel_async._errors import (
    AccountStoreError,
    AnyChannelError,
    ClosedError,
    MalformedEntryError,
    SourceError,
    UnknownAccountError,
    ValidationError,
    Verdict,
    verdict,
)
from anychannel_async._metrics import NO_METRICS, Metrics, Recorder
from anychannel_async._pipeline import PushPipeline
from anychannel_async._pool import PushPool
from anychannel_async._results import PushResult

from ._link import RedisLink, logger, next_wait
from ._outcomes import OutcomeWriter
from ._wire import (
    Entry,
    EntryId,
    Fields,
    claimed_entries,
    describe,
    instance_push_id_of,
    read_entries,
    resource_of,
)

__all__ = ["ConsumeStats", "consume_stream"]

# Ids re-claimed per XCLAIM when we tell Redis we still hold them.
_RENEW_CHUNK = 1_000
# Seconds beyond block_ms that a stop waits for a read in progress before cancelling it.
_STOP_GRACE = 5.0
# Pause of reads after Zendesk failed a resource with a retriable error (seconds): first, cap.
# Reading on would only fill the pipeline with resources bound to fail the same way.
_ZENDESK_FIRST_PAUSE = 1.0
_ZENDESK_MAX_PAUSE = 60.0
# Seconds between reads of the group's pending entries and lag, with metrics.
_LAG_EVERY = 1.0


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


async def consume_stream(
    pipeline: PushPipeline | PushPool,
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
    metrics: Metrics | None = None,
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

    With a `PushPool` in place of the pipeline, each entry also names its account in the
    field ``instance_push_id`` (kept in its dead letter). An entry without one, or for an
    account the pool does not know (`UnknownAccountError`), is dead-lettered. One account's
    trouble is that account's: a token Zendesk refuses, or a failure worth retrying, leaves
    its entries pending and pauses that account alone (its entries read meanwhile are left
    pending at once, to come back through XAUTOCLAIM), while the others go on; the pool's
    accounts store failing (`AccountStoreError`) leaves every entry pending and pauses reads,
    as Zendesk failing does. Entries are submitted in stream order, so an account that is slow
    but working (its share of the pool full) holds up the reads until it has room, as one
    pipeline does.

    When ``stop`` is set: stop reading, flush the pipeline, write the outcomes, return. Redis
    connection trouble is retried for as long as it lasts (give ``redis`` a ``socket_timeout``
    above ``block_ms`` so a silent network cannot hang a read). Raises `SourceError` when Redis
    refuses for good, and the pipeline's `AuthenticationError` (or `RequestRejectedError` for a
    4xx other than 400/413/422) when Zendesk would refuse every resource; entries not settled
    are left pending then.

    Settings, keyword-only:

    - ``claim_idle``: seconds a pending entry must sit idle before this consumer claims it from
      another (default 60); claims run at start and every ``claim_idle / 2`` seconds, and the
      entries this consumer holds are renewed (touched with XCLAIM) as often, so a live
      consumer keeps its own.
    - ``block_ms``: milliseconds one read waits for new entries (default 1000); a stop waits
      for a read in progress, so this bounds how long a stop takes to begin.
    - ``count``: entries per read or claim at most (default 100).
    - ``max_unacked``: entries in hand (read and not yet acknowledged) at most; reads take no
      more than the free room (default 10,000, the pipeline's default ``max_pending``).
    - ``drain_timeout``: seconds to keep trying to write outcomes to Redis after ``stop``
      (default 30); entries whose outcome could not be written stay pending.
    - ``metrics``: a `Metrics` (default None) where the group's entries pending and not yet
      delivered are recorded every second (give the pipeline or pool the same one).

    Raises `ValueError` for a setting out of its range, before any command is sent.
    """
    settings = _Settings(
        block_ms=block_ms,
        count=count,
        max_unacked=max_unacked,
        claim_idle=claim_idle,
        drain_timeout=drain_timeout,
        stream=stream,
        group=group,
        consumer=consumer,
    )
    if metrics is not None and not isinstance(metrics, Metrics):
        raise ValueError(f"metrics must be a Metrics, got {type(metrics).__name__}")
    source = _StreamConsumer(
        pipeline, redis, settings, metrics.recorder() if metrics is not None else NO_METRICS
    )
    return await source.run(stop if stop is not None else asyncio.Event())


def _int_at_least_1(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, got {value!r}")


def _name(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


@attrs.frozen
class _Settings:
    """consume_stream's settings, checked once, in the order of its fields (see its docstring)."""

    block_ms: int = attrs.field(validator=_int_at_least_1)
    count: int = attrs.field(validator=_int_at_least_1)
    max_unacked: int = attrs.field(validator=_int_at_least_1)
    claim_idle: float = attrs.field()
    drain_timeout: float = attrs.field()
    stream: str = attrs.field(validator=_name)
    group: str = attrs.field(validator=_name)
    consumer: str = attrs.field(validator=_name)

    @claim_idle.validator
    def _check_claim_idle(self, _: attrs.Attribute[float], value: float) -> None:
        if not value > 0:  # written so that NaN fails too
            raise ValueError(f"claim_idle must be > 0 seconds, got {value!r}")

    @drain_timeout.validator
    def _check_drain_timeout(self, _: attrs.Attribute[float], value: float) -> None:
        if not value >= 0:
            raise ValueError(f"drain_timeout must be >= 0 seconds, got {value!r}")

    @property
    def renew_every(self) -> float:
        """Seconds between claims, and between renewals of the entries held: half of
        claim_idle, so a live consumer renews its own before another may claim them."""
        return self.claim_idle / 2


class _Hand:
    """The entries this consumer holds: from delivery until their outcome is written, or they
    are let go. Their number is what memory holds, so it bounds the reads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop = loop
        self._size = size
        # Entry id -> when Redis last heard we hold it (loop time): delivery, claim or renewal.
        self._heard: dict[EntryId, float] = {}
        self._changed = asyncio.Event()  # set whenever entries leave, or on wake()

    def __len__(self) -> int:
        return len(self._heard)

    def take(self, entry_id: EntryId) -> bool:
        """Hold a delivered entry; False when it is held already (a backlog read, a claim of
        our own)."""
        if entry_id in self._heard:
            return False
        self._heard[entry_id] = self._loop.time()
        return True

    def release(self, entry_id: EntryId) -> bool:
        """Stop holding an entry: its outcome is written, or it is let go; False if not held."""
        if self._heard.pop(entry_id, None) is None:
            return False
        self._changed.set()
        return True

    def release_all(self) -> int:
        """Stop holding every entry; how many there were."""
        held = len(self._heard)
        self._heard.clear()
        return held

    def room(self) -> int:
        return self._size - len(self._heard)

    async def wait(self) -> None:
        """Wait until entries leave the hand, or `wake` is called."""
        self._changed.clear()
        await self._changed.wait()

    def wake(self) -> None:
        self._changed.set()

    def unheard_for(self, seconds: float) -> list[EntryId]:
        """Entries Redis has not heard of from us for ``seconds`` or longer."""
        now = self._loop.time()
        return [i for i, heard in self._heard.items() if now - heard >= seconds]

    def heard(self, entry_ids: Sequence[EntryId]) -> None:
        """Redis was just told we hold these entries."""
        now = self._loop.time()
        for entry_id in entry_ids:
            if entry_id in self._heard:
                self._heard[entry_id] = now


class _StreamConsumer:
    """One consume_stream call: reader, claimer, renewer and writer tasks, and the hand."""

    def __init__(
        self,
        pipeline: PushPipeline | PushPool,
        client: redis.asyncio.Redis,
        settings: _Settings,
        metrics: Recorder = NO_METRICS,
    ) -> None:
        self._metrics = metrics
        self._pipeline = pipeline
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self._link = RedisLink(client, stream=settings.stream, group=settings.group)
        self._hand = _Hand(self._loop, settings.max_unacked)
        # The writer alone releases entries whose outcome is written, so the room the reader
        # sees counts what memory holds.
        self._writer = OutcomeWriter(
            self._link, stream=settings.stream, group=settings.group, written=self._hand.release
        )
        self._halt = asyncio.Event()  # set on a fatal error
        self._stopping = asyncio.Event()  # reads end
        self._fatal: BaseException | None = None
        self._pause_until = 0.0
        self._pause = 0.0
        # With a pool: accounts whose entries wait, by instance push id: the pause, and until
        # when (loop time). Only accounts failing now are here.
        self._paused: dict[str, tuple[float, float]] = {}

        self._read = 0
        self._claimed = 0
        self._left_pending = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> ConsumeStats:
        stopped = self._loop.create_task(stop.wait())
        # Redis may be away at start: a stop must not wait for it to come back.
        ready = self._loop.create_task(self._link.ensure_group())
        await asyncio.wait([ready, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            await self._cancel([ready, stopped])
            return self._stats()
        if ready.exception() is not None:  # Redis refused: SourceError
            await self._cancel([stopped])
            ready.result()
        writer = self._loop.create_task(self._guard(self._writer.run()))
        # Renewals run apart from reading and claiming, which wait for room: entries held
        # while the hand is full, or while the pipeline flushes at stop, stay ours in Redis.
        keeper = self._loop.create_task(self._guard(self._renew_held()))
        lag = self._loop.create_task(self._watch_lag())
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
            self._hand.wake()  # reads waiting for room see the stop
            await asyncio.wait(inputs, timeout=self._settings.block_ms / 1000 + _STOP_GRACE)
            await self._cancel(inputs)
            await self._pipeline.flush()
            await asyncio.sleep(0)  # let the futures' done callbacks queue their outcomes
            await self._writer.drain(self._settings.drain_timeout)
        finally:
            await self._cancel([*inputs, writer, keeper, lag, stopped, halted])
            # Whatever is still in hand was not written: it stays pending in Redis.
            self._left_pending += self._hand.release_all()
        if self._fatal is not None:
            raise self._fatal
        return self._stats()

    async def _guard(self, work: Awaitable[None]) -> None:
        """Run a task's loop; an error ends the consumer instead of dying unseen."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any error ends the consumer, logged
            if not isinstance(exc, AnyChannelError):
                logger.exception("unexpected error in the Redis stream consumer")
                exc = SourceError(f"internal error: {describe(exc)}")
            self._fail(exc)

    def _fail(self, error: BaseException) -> None:
        if self._fatal is None:
            logger.error("consumer stops: %s", describe(error))
            self._fatal = error
        self._halt.set()

    @staticmethod
    async def _cancel(tasks: Sequence[asyncio.Task[Any]]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stats(self) -> ConsumeStats:
        return ConsumeStats(
            read=self._read,
            claimed=self._claimed,
            imported=self._writer.imported,
            dead_lettered=self._writer.dead_lettered,
            left_pending=self._left_pending,
            redis_retries=self._link.retries,
        )

    # -- entries in ----------------------------------------------------------------------------

    async def _wait_for_room(self) -> int:
        """Wait until reads may go on; returns how many entries may be taken, 0 to stop."""
        while not self._stopping.is_set():
            pause = self._pause_until - self._loop.time()
            if pause > 0:
                await self._sleep(pause)
                continue
            room = self._hand.room()
            if room > 0:
                return min(room, self._settings.count)
            await self._hand.wait()
        return 0

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when reads end."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _read_entries(self) -> None:
        # Own pending entries first: left by an earlier run under this name, or delivered in a
        # reply lost with a connection. Reading from id 0 pages through them.
        backlog_from: EntryId | None = "0"
        while room := await self._wait_for_room():
            retries = self._link.retries
            start = backlog_from if backlog_from is not None else ">"
            reply = await self._link.call(
                "XREADGROUP",
                functools.partial(
                    self._link.client.xreadgroup,
                    self._settings.group,
                    self._settings.consumer,
                    {self._settings.stream: start},
                    count=room,
                    block=None if backlog_from is not None else self._settings.block_ms,
                ),
            )
            entries = read_entries(reply)
            if backlog_from is not None:
                backlog_from = entries[-1][0] if entries else None
            elif self._link.retries != retries:
                backlog_from = "0"  # Redis was away: a reply may have been lost with it
            await self._take(entries, claimed=False)

    async def _claim_entries(self) -> None:
        while not self._stopping.is_set():
            await self._claim()
            await self._sleep(self._settings.renew_every)

    async def _claim(self) -> None:
        """Claim entries idle for claim_idle: their consumer died, or gave them up."""
        start: EntryId | None = "0-0"  # the scan starts at the group's first pending entry
        while start is not None and (room := await self._wait_for_room()):
            reply = await self._link.call(
                "XAUTOCLAIM",
                functools.partial(
                    self._link.client.xautoclaim,
                    self._settings.stream,
                    self._settings.group,
                    self._settings.consumer,
                    int(self._settings.claim_idle * 1000),
                    start_id=start,
                    count=room,
                ),
            )
            start, entries, deleted = claimed_entries(reply)
            if deleted:
                logger.warning(
                    "%d pending entries were deleted from the stream before they were handled",
                    deleted,
                )
            await self._take(entries, claimed=True)

    async def _take(self, entries: Sequence[Entry], *, claimed: bool) -> None:
        """Submit the entries' resources; settle at once those that hold none."""
        store_failed = False
        for entry_id, fields in entries:
            if not self._hand.take(entry_id):
                continue
            self._read += 1
            self._claimed += int(claimed)
            if store_failed:
                self._leave(entry_id)  # each would wait for the store to fail again
                continue
            account: str | None = None
            try:
                resource = resource_of(fields)
                if isinstance(self._pipeline, PushPipeline):
                    future = await self._pipeline.submit(resource)
                else:
                    account = instance_push_id_of(fields)
                    if self._is_paused(account):
                        self._leave(entry_id)  # claimed again once idle, as any entry left
                        continue
                    future = await self._pipeline.submit(account, resource)
            except (MalformedEntryError, ValidationError, UnknownAccountError) as exc:
                logger.info("entry %r dead-lettered: %s", entry_id, describe(exc))
                self._writer.dead_letter(entry_id, fields, exc)
                continue
            except AccountStoreError as exc:
                # The pool's accounts store failing (its Redis away, its file locked) says
                # nothing of the entry, nor of any account: every entry stays pending, and
                # reads pause, as while Zendesk fails.
                self._leave(entry_id)
                self._pause_reads(exc)
                store_failed = True
                continue
            except BaseException:
                self._leave(entry_id)  # e.g. cancelled while waiting for room: still pending
                raise
            future.add_done_callback(functools.partial(self._settled, entry_id, fields, account))

    # -- entries held --------------------------------------------------------------------------

    async def _renew_held(self) -> None:
        """Renew the entries in hand every claim_idle / 2 seconds, until cancelled.

        Never waits for room, and goes on after reads end, so an entry is not claimed by
        another consumer while its outcome is pending here."""
        while True:
            await asyncio.sleep(self._settings.renew_every)
            await self._renew()

    async def _renew(self) -> None:
        """Tell Redis we still hold our entries, so no other consumer claims them as idle."""
        # Entries Redis heard of within the last half period need nothing yet: the next round
        # renews them, still well within claim_idle.
        stale = self._hand.unheard_for(self._settings.renew_every / 2)
        for start in range(0, len(stale), _RENEW_CHUNK):
            chunk = stale[start : start + _RENEW_CHUNK]
            await self._link.call(
                "XCLAIM",
                functools.partial(
                    self._link.client.xclaim,
                    self._settings.stream,
                    self._settings.group,
                    self._settings.consumer,
                    0,
                    list[StreamIdT](chunk),
                    justid=True,
                ),
            )
            self._hand.heard(chunk)

    async def _watch_lag(self) -> None:
        """With metrics: record the group's entries pending and not yet delivered, every
        second, until cancelled. A refusal (an ACL without XINFO) ends the watch, not the
        consumer."""
        if self._metrics is NO_METRICS:
            return
        stream, group = self._settings.stream, self._settings.group
        while True:
            try:
                groups = await self._link.call(
                    "XINFO GROUPS", functools.partial(self._link.client.xinfo_groups, stream)
                )
            except SourceError as exc:
                logger.warning("metrics: the group's lag is not recorded: %s", exc)
                return
            for found in groups:
                if found.get("name") in (group, group.encode()):
                    lag = found.get("lag")  # Redis 7: None when it cannot tell
                    self._metrics.stream(
                        stream,
                        group,
                        pending=int(found.get("pending") or 0),
                        lag=None if lag is None else int(lag),
                    )
            await asyncio.sleep(_LAG_EVERY)

    # -- outcomes ------------------------------------------------------------------------------

    def _settled(
        self,
        entry_id: EntryId,
        fields: Fields | None,
        account: str | None,
        future: asyncio.Future[PushResult],
    ) -> None:
        """A resource's future is done: queue the entry's outcome, or leave it pending."""
        if future.cancelled():  # by whoever owns the pipeline: not an outcome
            self._leave(entry_id)
            return
        error = future.exception()
        if error is None:
            self._pause = 0.0
            if account is not None:
                self._paused.pop(account, None)
            self._writer.ack(entry_id)
            return
        # The pipeline's own verdict: final outcomes are dead-lettered; a refusal of every
        # request (credentials, a wrong URL) stops the consumer rather than empty the stream
        # into the dead one; an unknown outcome or a retry is left pending for redelivery.
        fate = verdict(error)
        if fate is Verdict.FINAL:
            self._writer.dead_letter(entry_id, fields, error)
            return
        self._leave(entry_id)
        if account is not None:
            if not isinstance(error, ClosedError):
                self._pause_account(account, error, refused=fate is Verdict.REFUSED)
            return
        if fate is Verdict.REFUSED:
            self._fail(error)
        elif not isinstance(error, ClosedError):
            self._pause_reads(error)

    def _pause_reads(self, error: BaseException) -> None:
        """Zendesk, or with a pool its accounts store, failed: reads pause (doubling, to a cap,
        until an import succeeds); the entries stay pending, to come back through XAUTOCLAIM."""
        now = self._loop.time()
        if now < self._pause_until:
            return  # one outage fails many resources: pause (and log) once for them
        self._pause = next_wait(self._pause, first=_ZENDESK_FIRST_PAUSE, cap=_ZENDESK_MAX_PAUSE)
        self._pause_until = now + self._pause
        logger.warning("%s; entries left pending, reads paused %g s", error, self._pause)

    def _is_paused(self, account: str) -> bool:
        paused = self._paused.get(account)
        return paused is not None and self._loop.time() < paused[1]

    def _pause_account(self, account: str, error: BaseException, *, refused: bool) -> None:
        """With a pool: one account failed a resource, not for good. Its entries are left
        pending, it alone pauses (doubling, to a cap), and the consumer goes on: a refused
        token (which the pool stops sending with until the store holds another) or an
        unreachable host is that account's trouble, not the others'."""
        if self._is_paused(account):
            return  # one outage fails many resources: pause (and log) once for them
        previous = self._paused.get(account)
        pause = next_wait(
            previous[0] if previous else 0.0, first=_ZENDESK_FIRST_PAUSE, cap=_ZENDESK_MAX_PAUSE
        )
        self._paused[account] = (pause, self._loop.time() + pause)
        if refused and previous is None:
            logger.warning(
                "instance push id %s: %s; its entries stay pending until the accounts hold"
                " another token for it, the other accounts go on",
                account,
                describe(error),
            )
        elif not refused:
            logger.warning(
                "instance push id %s: %s; its entries left pending, it pauses %g s",
                account,
                error,
                pause,
            )

    def _leave(self, entry_id: EntryId) -> None:
        """Let go of an entry without acking it: it stays pending, to be claimed later."""
        if self._hand.release(entry_id):
            self._left_pending += 1
