"""PushPipeline: submit resources one by one, push them in batches, resolve one future each.

A resource's path, module by module: ``submit`` here (check, encode, one admission path) →
`Submission` → `Batcher` (queue, order, the cut) → `Sender` (requests in flight, split) →
the client's ``push_batch`` → `Router` (answers to outcomes, the only writer of futures). This
module is the facade: it wires those together, owns the lifecycle (open, flush, close), the
outbox's opening and replay, and the stats. It decides nothing about outcomes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self, Unpack

import attrs

from ._batcher import Batcher
from ._client import PushClient, Pushed
from ._errors import (
    AnyChannelError,
    ClosedError,
    ConfigurationError,
    ValidationError,
    copies,
)
from ._flow import FlowControl
from ._lifecycle import Latch, State, bind_loop
from ._metrics import NO_METRICS, Gauges, Metrics
from ._models import ID_MAX, ExternalResource
from ._outbox import NO_REPLAY, Outbox, Replay, Share
from ._ratelimit import AccountPace
from ._results import PushResult
from ._router import Router
from ._sender import Sender
from ._serde import encode_body, push_body_overhead
from ._settings import PipelineOptions, PipelineSettings, settings_of
from ._submission import Submission
from ._tickets import REQUEST_ID_LENGTH, TicketLedger

__all__ = ["PipelineStats", "PushPipeline", "flush_all"]

logger = logging.getLogger("anychannel_async.pipeline")

_Group = Sequence[tuple[ExternalResource, bytes]]


@attrs.frozen
class PipelineStats:
    """A snapshot of a pipeline's counters."""

    #: Resources accepted by ``submit`` (and replayed from the outbox).
    submitted: int
    #: Resources resolved with a result, by status code (``success``, ``already_imported``).
    resolved: Mapping[str, int]
    #: Resources failed, by exception class name.
    failed: Mapping[str, int]
    #: Push requests started (a split request counts each part).
    requests: int
    #: HTTP tries the client retried for this pipeline's requests.
    retries: int
    #: Resources pushed again: halted, unknown, parent not yet there, or rate limited.
    resent: int
    #: Resources per push request, mean and max.
    mean_batch_size: float
    max_batch_size: int
    #: Push requests in flight now.
    in_flight: int
    #: Resources accepted and not yet resolved.
    pending: int
    #: Resources an earlier run left pending in the outbox, pushed again by this one.
    replayed: int = 0
    #: How the replayed resources ended, by status code or exception class name (as
    #: ``resolved`` and ``failed``); those still pending are not counted yet.
    replay_outcomes: Mapping[str, int] = attrs.field(factory=dict)


class PushPipeline:
    """Batches submitted resources into push requests for one ``instance_push_id``.

    ``fut = await pipe.submit(resource)`` returns an ``asyncio.Future[PushResult]``;
    ``await pipe.push(resource)`` submits and awaits. ``success`` and ``already_imported``
    resolve the future; a definite refusal raises a `ResourceError` (or the request's error)
    from it; an outcome that stays unknown past ``max_attempts`` raises `OutcomeUnknownError`.

    Settings are keyword arguments, or a `PipelineSettings` (``settings=``), which documents
    each with its default and range. With ``outbox`` (a SQLite file path), ``submit`` returns
    once the resource is durably written; entering the pipeline first pushes again every row
    left unresolved by an earlier run (a crash), in submission order; resources that fail for
    good stay in it as dead letters with their error (``anychannel-async outbox list``);
    anything else (credentials, unknown outcomes, closing) stays pending for the next start.

    ``shared_outbox`` (instead of ``outbox``) is a `PushPool`'s: an outbox the pool opened
    for all its accounts, which this pipeline writes but never opens or closes.

    ``metrics`` (a `Metrics`, default None) records what the pipeline does, labelled with its
    instance push id.
    ``tickets``: a `TicketLedger`; each push request then carries a ``request_id`` it issued,
    so the ticket each resource became can be learnt from Zendesk's event (`TicketLedger`).
    ``on_settled``: called with each resource's future once the pipeline is done with it (the
    future settled, or cancelled by its owner and out of every request), synchronously, as its
    unit of ``max_pending`` is freed; a `PushPool` counts its own room and outcomes with it,
    without a callback per future. What it raises is logged, and the pipeline goes on.
    """

    # A pool holds one per busy account: no instance dict (~100-200 bytes each).
    __slots__ = (
        "__weakref__",
        "_batcher",
        "_client",
        "_closed",
        "_flow",
        "_instance_push_id",
        "_loop",
        "_max_latency",
        "_metrics",
        "_outbox",
        "_pace",
        "_replay",
        "_router",
        "_sender",
        "_share",
        "_state",
        "_submitted",
        "_tickets",
        "settings",
    )

    def __init__(
        self,
        client: PushClient,
        instance_push_id: str,
        *,
        settings: PipelineSettings | None = None,
        shared_outbox: Share | None = None,
        metrics: Metrics | None = None,
        tickets: TicketLedger | None = None,
        on_settled: Callable[[asyncio.Future[PushResult]], None] | None = None,
        **options: Unpack[PipelineOptions],
    ) -> None:
        if metrics is not None and not isinstance(metrics, Metrics):
            raise ConfigurationError(f"metrics must be a Metrics, got {type(metrics).__name__}")
        if not isinstance(getattr(client, "pace", None), AccountPace) or not callable(
            getattr(client, "push_batch", None)
        ):
            raise ConfigurationError(
                f"client must be an AnyChannelClient, got {type(client).__name__}"
            )
        if not isinstance(instance_push_id, str) or not 0 < len(instance_push_id) <= ID_MAX:
            raise ConfigurationError(f"instance_push_id must be a string of 1..{ID_MAX} characters")
        settings = settings_of(settings, options)
        if shared_outbox is not None and settings.outbox is not None:
            raise ConfigurationError("outbox: give a path or a shared outbox, not both")
        if tickets is not None and not isinstance(tickets, TicketLedger):
            raise ConfigurationError(
                f"tickets must be a TicketLedger, got {type(tickets).__name__}"
            )
        # A request id the ledger issues is part of each body: room is left for it.
        overhead = push_body_overhead(
            instance_push_id, None if tickets is None else "x" * REQUEST_ID_LENGTH
        )
        if settings.max_batch_bytes <= overhead:
            raise ConfigurationError(
                f"max_batch_bytes must be above {overhead}, got {settings.max_batch_bytes}"
            )
        client.pace.set_budget(settings.max_requests_per_minute)
        self.settings = settings
        self._instance_push_id = instance_push_id
        self._max_latency = settings.max_latency
        self._flow = FlowControl(settings.max_pending)
        self._share = shared_outbox
        recorder = metrics.recorder(instance_push_id) if metrics is not None else NO_METRICS
        self._metrics = recorder
        if shared_outbox is not None:
            self._outbox: Outbox | None = shared_outbox.outbox
        elif settings.outbox is not None:
            self._outbox = Outbox(settings.outbox, metrics=recorder)
        else:
            self._outbox = None
        # Submission.size counts a comma per resource; a body has one comma fewer.
        self._batcher = Batcher(
            max_batch_size=settings.max_batch_size,
            max_batch_bytes=settings.max_batch_bytes - overhead + 1,
        )
        self._router = Router(
            flow=self._flow,
            outbox=self._outbox,
            max_attempts=settings.max_attempts,
            parent_timeout=settings.parent_timeout,
            owner=self,
            metrics=recorder,
            on_finished=on_settled,
        )
        self._client = client
        self._tickets = tickets
        self._sender = Sender(
            batcher=self._batcher,
            router=self._router,
            pace=client.pace,
            owner=self,
            max_in_flight=settings.max_in_flight,
            metrics=recorder,
        )
        self._state = State.OPEN
        # Made when the close begins: what a later close waits on (a pool holds a pipeline
        # per account, and most close once).
        self._closed: Latch | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._submitted = 0
        # The outbox: opened once, then its leftovers queued before any new work.
        if self._outbox is None:
            self._replay = NO_REPLAY  # nothing to replay, nothing that changes: one for all
        elif shared_outbox is None:
            self._replay = Replay(self._outbox, instance_push_id, self._admit_replayed)
        else:
            self._replay = Replay(
                self._outbox,
                instance_push_id,
                self._admit_shared,
                owned=False,
                through=shared_outbox.replay_through,
            )
        self._pace = client.pace
        recorder.watch(self, self._gauges)  # read at each scrape until close

    def __repr__(self) -> str:
        return (
            f"<PushPipeline instance_push_id={self._instance_push_id!r}"
            f" state={self._state.value} pending={self._flow.used}>"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._check_open()
        self._start()
        try:
            await self._replay.open(self._is_open)
        except BaseException:
            await self.close()  # no task may outlive a pipeline that never opened
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _is_open(self) -> bool:
        return self._state is State.OPEN

    def _check_open(self) -> None:
        """Refuse use after close, and from another event loop than the first one used.

        Its tasks, futures and events belong to one loop: used from another, it would hang.
        """
        if self._state is not State.OPEN:
            raise ClosedError("this PushPipeline is closed")
        self._bind_loop()

    def _bind_loop(self) -> None:
        self._loop = bind_loop(self._loop, "PushPipeline")

    def _start(self) -> None:
        if self._sender.broken is not None:
            raise copies(self._sender.broken, 1)[0]
        self._sender.start()

    async def _prepare(self) -> None:
        """Start the sender if needed, and wait until the outbox's leftovers are queued: they
        were submitted before anything new."""
        self._start()
        if not self._replay.queued:
            await self._replay.open(self._is_open)
            await self._replay.wait()

    async def replayed(self) -> None:
        """Start the replay of the rows the outbox holds pending for this instance (if not
        started yet), and wait until they are all queued. ``submit`` does this itself; a pool
        calls it to replay an account nobody submits to yet, or to hold its own submits until
        then. Raises `ClosedError` once the pipeline is closed."""
        self._check_open()
        if not self._sender.ready or not self._replay.queued:
            await self._prepare()

    async def flush(self) -> None:
        """Send everything queued now, and wait until every resource submitted so far resolved
        (with an outbox, the rows an earlier run left pending included)."""
        self._bind_loop()
        await flush_all((self,))

    async def close(self, *, flush: bool = True) -> None:
        """Flush (waiting at most ``close_timeout``), then stop every task. Idempotent.

        Resources still unresolved after the bound fail with `ClosedError`. With
        ``flush=False`` (a stop on a signal, or credentials Zendesk refused), no new request
        starts: resources not yet in a request fail with `ClosedError` at once (with an outbox
        their rows stay pending), and only the requests already in flight settle, within the
        same bound.
        """
        self._bind_loop()
        if self._state is not State.OPEN:
            assert self._closed is not None  # made with the CLOSING state
            await self._closed.wait()
            return
        self._state = State.CLOSING
        closed = self._closed = Latch()
        self._flow.wake_all(lambda: ClosedError("this PushPipeline is closed"))
        if not flush:
            self._sender.stop_sending()
            self._router.abandon(
                self._batcher.drain(), "the PushPipeline closed before it was sent"
            )
        try:
            async with asyncio.timeout(self.settings.close_timeout):
                await (self.flush() if flush else self._sender.settle())
        except TimeoutError:
            logger.warning(
                "close: %d resources still unresolved after %g s; failing them",
                len(self._router.outstanding()),
                self.settings.close_timeout,
            )
        finally:
            try:
                await self._stop()
            finally:
                # Even if this close is cancelled mid-way, nothing may stay pending, and a
                # later close must not wait forever.
                reason = "the PushPipeline closed before it was resolved"
                self._router.abandon(self._batcher.drain(), reason)
                self._router.close(reason)
                self._state = State.CLOSED
                closed.set()
                self._metrics.unwatch(self)
                if self._outbox is not None and self._share is None:
                    await self._outbox.close()  # a shared outbox is its owner's to close

    async def _stop(self) -> None:
        """Stop the sender, cancel every task (requests in flight, the replay) and wait."""
        tasks = self._replay.tasks()
        for task in tasks:
            task.cancel()
        await self._sender.stop()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- admission ---------------------------------------------------------------------------

    async def submit(self, resource: ExternalResource) -> asyncio.Future[PushResult]:
        """Accept a resource; returns the future of its `PushResult`.

        Waits while ``max_pending`` resources are unresolved. Raises `ValidationError` for a
        resource too large for one request, `ClosedError` once the pipeline is closing.
        """
        if self._state is not State.OPEN or asyncio.get_running_loop() is not self._loop:
            self._check_open()
        body = self._encode(resource)
        if not self._sender.ready or not self._replay.queued:
            await self._prepare()
        if not self._flow.try_acquire():
            await self._acquire()
        seq = None
        if self._outbox is not None:
            [seq] = await self._write_outbox(((resource, body),))
        self._still_open(1)
        return self._admit(resource, body, seq)

    async def submit_many(
        self, resources: Iterable[ExternalResource]
    ) -> list[asyncio.Future[PushResult]]:
        """Accept many resources; one future each, in order.

        Every resource is checked before any is accepted, so a `ValidationError` leaves
        nothing half-submitted. With an outbox, each group that fits in ``max_pending`` is
        written in one transaction, which is far faster than one ``submit`` at a time.
        If the pipeline closes or the outbox fails part-way, the resources not accepted get
        futures already failed with that error (`ClosedError`, `OutboxError`): every resource
        still has its one future, and none is lost from view.
        """
        self._check_open()
        batch = [(resource, self._encode(resource)) for resource in resources]
        await self._prepare()
        futures: list[asyncio.Future[PushResult]] = []
        start = 0
        try:
            while start < len(batch):
                if not self._flow.try_acquire():
                    await self._acquire()
                end = start + 1
                while end < len(batch) and self._flow.try_acquire():
                    end += 1
                group = batch[start:end]
                seqs = await self._write_outbox(group) if self._outbox is not None else None
                self._still_open(len(group))
                futures.extend(
                    self._admit(resource, body, seqs[index] if seqs is not None else None)
                    for index, (resource, body) in enumerate(group)
                )
                start = end
        except AnyChannelError as exc:
            loop = asyncio.get_running_loop()
            for _ in batch[start:]:
                refused: asyncio.Future[PushResult] = loop.create_future()
                refused.set_exception(copies(exc, 1)[0])
                futures.append(refused)
        return futures

    async def push(self, resource: ExternalResource) -> PushResult:
        """Submit a resource and wait for its result."""
        return await (await self.submit(resource))

    def _encode(self, resource: ExternalResource) -> bytes:
        if type(resource) is not ExternalResource and not isinstance(resource, ExternalResource):
            raise ValidationError(
                "resource", f"must be an ExternalResource, got {type(resource).__name__}"
            )
        body = encode_body(resource)
        room = self._batcher.max_bytes
        if len(body) + 1 > room:
            raise ValidationError(
                "resource",
                f"encoded size {len(body)} bytes does not fit in max_batch_bytes"
                f" ({room - 1} bytes once the request's own fields are counted)",
            )
        return body

    async def _acquire(self) -> None:
        """Wait for a flow-control unit; refused once the pipeline is closing."""
        await self._flow.acquire()
        if self._state is not State.OPEN:  # closed while we waited for room
            self._flow.release()
            raise ClosedError("this PushPipeline is closed")

    async def _write_outbox(self, group: _Group) -> list[int]:
        """Write a group whose flow units are taken to the outbox, in one transaction."""
        assert self._outbox is not None
        try:
            return list(
                await self._outbox.add(
                    self._instance_push_id, [(r.external_id, body) for r, body in group]
                )
            )
        except BaseException:
            for _ in group:
                self._flow.release()
            raise

    def _still_open(self, units: int) -> None:
        """Refuse what is admitted after a wait (for room, for the outbox) that close ended;
        its flow units go back (an outbox row stays pending, for replay)."""
        if self._state is not State.OPEN:
            for _ in range(units):
                self._flow.release()
            raise ClosedError("this PushPipeline is closed")

    def _admit(
        self, resource: ExternalResource, body: bytes, seq: int | None
    ) -> asyncio.Future[PushResult]:
        """The one admission path (submit, submit_many, replay): queue a resource whose flow
        unit is taken and, with an outbox, whose row is written; returns its future."""
        loop = self._loop
        assert loop is not None  # bound by every caller's first check
        future: asyncio.Future[PushResult] = loop.create_future()
        router = self._router
        key = router.key_for(resource.external_id, resource.thread_id, resource.parent_id)
        submission = Submission(resource, body, future, key, seq)
        router.admit(submission)
        self._submitted += 1
        self._sender.queued(self._batcher.add(submission, loop.time() + self._max_latency))
        return future

    def _requeue(self, submissions: list[Submission]) -> None:
        """The router's way back to the queue: released children, woken orphans."""
        self._batcher.add_front(submissions)
        self._sender.wake()

    async def _admit_replayed(
        self, resource: ExternalResource, body: bytes, seq: int
    ) -> asyncio.Future[PushResult]:
        await self._acquire()
        return self._admit(resource, body, seq)

    async def _admit_shared(
        self, resource: ExternalResource, body: bytes, seq: int
    ) -> asyncio.Future[PushResult]:
        """A replayed row of a shared outbox: admitted through its owner, who counts it."""
        assert self._share is not None
        return await self._share.admit(functools.partial(self._admit_replayed, resource, body, seq))

    def _push(self, batch: Sequence[Submission]) -> Awaitable[Pushed]:
        """The sender's one request (a method, not a partial: a pool holds one per account)."""
        if self._tickets is None:
            return self._client.push_batch(self._instance_push_id, batch)
        return _push_issued(self._client, self._instance_push_id, self._tickets, batch)

    # -- stats -------------------------------------------------------------------------------

    def _gauges(self) -> Gauges:
        """The metrics' gauges (called from the scrape's thread: reads only)."""
        pace = self._pace
        return Gauges(
            pending=self._flow.used,
            in_flight=self._sender.in_flight,
            budget=pace.requests_per_minute,
            wait=pace.delay(),
        )

    @property
    def stats(self) -> PipelineStats:
        """A snapshot of the pipeline's counters."""
        sender = self._sender
        router = self._router
        return PipelineStats(
            submitted=self._submitted,
            resolved=router.resolved(),
            failed=dict(router.failed or {}),
            requests=sender.requests,
            retries=sender.retries,
            resent=sender.resent,
            mean_batch_size=sender.batched / sender.requests if sender.requests else 0.0,
            max_batch_size=sender.largest,
            in_flight=sender.in_flight,
            pending=self._flow.used,
            replayed=self._replay.count,
            replay_outcomes=dict(self._replay.outcomes),
        )


async def flush_all(pipelines: Collection[PushPipeline]) -> None:
    """Flush pipelines with one wait: each one's queue goes at once (its replay queued
    first), and this returns when every resource they held when it began has resolved.

    One wait, not a task per pipeline: a pool flushing 5,000 accounts at once held a task,
    two coroutine frames and a waiter each, its peak memory's largest part.
    """
    for pipeline in pipelines:
        await pipeline._replay.wait()
    futures = [
        submission.future for pipeline in pipelines for submission in pipeline._router.outstanding()
    ]
    if not futures:
        return
    for pipeline in pipelines:
        pipeline._sender.hurry(True)
    try:
        await asyncio.wait(futures)
    finally:
        for pipeline in pipelines:
            pipeline._sender.hurry(False)


async def _push_issued(
    client: PushClient,
    instance_push_id: str,
    tickets: TicketLedger,
    batch: Sequence[Submission],
) -> Pushed:
    """One push with a request id the ledger issued (the client's retries send it again)."""
    request_id = tickets.issue(instance_push_id)
    return await client.push_batch(instance_push_id, batch, request_id=request_id)
