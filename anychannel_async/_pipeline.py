"""PushPipeline: submit resources one by one, push them in batches, resolve one future each.

Data flows one way: ``submit`` → `Batcher` (queue, order, the cut) → a send task per request
(through the client's ``push_encoded``) → `route` (results to outcomes) → futures. This module
owns the lifecycle and every task it starts: the sender loop, one task per request in flight,
and timers for resources waiting for a parent. ``close`` stops each of them; no future is ever
left pending.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import math
import os
import random
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Self

import attrs
import orjson

from ._batcher import Batcher, Item
from ._client import AnyChannelClient
from ._errors import (
    AnyChannelError,
    ClosedError,
    ConfigurationError,
    EventLoopError,
    ParentNotFoundError,
    ValidationError,
    Verdict,
    copies,
    splittable,
    verdict,
)
from ._flow import FlowControl
from ._models import ExternalResource, PushResult
from ._outbox import Outbox, OutboxError
from ._router import Routed, route, route_error
from ._serde import encode_body, push_body_overhead, resource_from_json

__all__ = ["PipelineStats", "PushPipeline"]

logger = logging.getLogger("anychannel_async.pipeline")

# Ids of resources that failed, remembered so their children fail at once instead of waiting
# parent_timeout for a parent that will never come. Bounded: memory must stay flat.
_FAILED_MEMORY = 10_000

# Zendesk's JSON schema for push: at most 256 external_resources in one request.
MAX_RESOURCES_PER_PUSH = 256
# Waits between pushes of a resource whose parent Zendesk could not locate (seconds).
_ORPHAN_FIRST_WAIT = 0.25
_ORPHAN_MAX_WAIT = 5.0


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
    #: Resources pushed again: halted, parent not yet there, or rate limited.
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


class _State(enum.Enum):
    """Lifecycle: OPEN → CLOSING → CLOSED; a closed pipeline is never reopened."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class PushPipeline:
    """Batches submitted resources into push requests for one ``instance_push_id``.

    ``fut = await pipe.submit(resource)`` returns an ``asyncio.Future[PushResult]``;
    ``await pipe.push(resource)`` submits and awaits. ``success`` and ``already_imported``
    resolve the future; other outcomes raise a `ResourceError` (or the request's error) from it.

    Settings, keyword-only:

    - ``max_batch_size``: resources per request (default 100).
    - ``max_batch_bytes``: bytes per request body, measured on the serialised JSON
      (default 4 MiB). A single resource too large for it is refused by ``submit``.
    - ``max_latency``: seconds an idle pipeline waits for a batch to fill (default 0.05). Under
      back-pressure (every request slot busy, rate budget spent) batches fill regardless.
    - ``max_in_flight``: push requests at once (default 4).
    - ``max_pending``: resources accepted and not yet resolved; ``submit`` waits for room
      (default 10,000).
    - ``max_attempts``: a resource halted more than this many times fails with `HaltedError`
      (default 5); the same bound applies to pushes refused with 429 after the client's retries.
    - ``parent_timeout``: seconds to keep retrying a resource whose parent Zendesk cannot
      locate, when that parent is not pending here (default 30).
    - ``max_requests_per_minute``: pace requests evenly to this budget; None (default) learns
      it from Zendesk's ``X-Rate-Limit`` header. The budget is the account's, shared by every
      pipeline on the same client.
    - ``close_timeout``: seconds ``close`` waits for pending resources before failing them
      with `ClosedError` (default 60).
    - ``outbox``: path of a SQLite file (default None: memory only). With it, ``submit``
      returns once the resource is durably written; entering the pipeline first pushes again
      every row left unresolved by an earlier run (a crash), in submission order; resources
      that fail for good stay in it as dead letters with their error (``anychannel-async
      outbox list``). Resources failed by a request-level error (transport, auth, closing)
      stay pending and are pushed again at the next start.
    """

    def __init__(
        self,
        client: AnyChannelClient,
        instance_push_id: str,
        *,
        max_batch_size: int = 100,
        max_batch_bytes: int = 4 * 1024 * 1024,
        max_latency: float = 0.05,
        max_in_flight: int = 4,
        max_pending: int = 10_000,
        max_attempts: int = 5,
        parent_timeout: float = 30.0,
        max_requests_per_minute: float | None = None,
        close_timeout: float = 60.0,
        outbox: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(instance_push_id, str) or not 1 <= len(instance_push_id) <= 255:
            raise ConfigurationError("instance_push_id must be a string of 1..255 characters")
        for name, value, ceiling in (
            ("max_batch_size", max_batch_size, MAX_RESOURCES_PER_PUSH),
            ("max_in_flight", max_in_flight, None),
            ("max_pending", max_pending, None),
            ("max_attempts", max_attempts, None),
        ):
            if type(value) is not int or value < 1 or (ceiling is not None and value > ceiling):
                limit = f"1..{ceiling}" if ceiling is not None else ">= 1"
                raise ConfigurationError(f"{name} must be an int {limit}, got {value!r}")
        for name, seconds in (
            ("max_latency", max_latency),
            ("parent_timeout", parent_timeout),
            ("close_timeout", close_timeout),
        ):
            if not 0 <= seconds < math.inf:  # NaN and infinity fail this too
                raise ConfigurationError(
                    f"{name} must be a finite number of seconds >= 0, got {seconds!r}"
                )
        overhead = push_body_overhead(instance_push_id)
        if type(max_batch_bytes) is not int or max_batch_bytes <= overhead:
            raise ConfigurationError(
                f"max_batch_bytes must be an int above {overhead}, got {max_batch_bytes!r}"
            )
        if outbox is not None and not os.fspath(outbox):
            # SQLite would open a private temporary database: nothing would be durable.
            raise ConfigurationError("outbox must be a file path, got an empty one")
        client.pace.set_budget(max_requests_per_minute)

        self._client = client
        self._instance_push_id = instance_push_id
        self._max_latency = max_latency
        self._max_in_flight = max_in_flight
        self._max_attempts = max_attempts
        self._parent_timeout = parent_timeout
        self._close_timeout = close_timeout
        # Item.size counts a comma per resource; a body has one comma fewer than resources.
        self._max_item_bytes = max_batch_bytes - overhead + 1
        self._batcher = Batcher(max_batch_size=max_batch_size, max_batch_bytes=self._max_item_bytes)
        self._flow = FlowControl(max_pending)
        self._outbox = Outbox(outbox) if outbox is not None else None
        self._opening: asyncio.Task[None] | None = None
        self._replay: asyncio.Task[None] | None = None
        # New work waits until the outbox's leftovers are queued: they were submitted first.
        self._replayed = asyncio.Event()
        if self._outbox is None:
            self._replayed.set()
        self._replayed_count = 0
        self._replay_outcomes: collections.Counter[str] = collections.Counter()

        self._state = _State.OPEN
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outstanding: set[Item] = set()
        self._pending_ids: dict[str, Item] = {}
        self._waiting_children: dict[str, list[Item]] = {}
        # id -> None when it failed for good (its children fail with ParentNotFoundError), or
        # the request-level error that stopped it (its children fail with a copy of that).
        self._failed_ids: collections.OrderedDict[str, AnyChannelError | None] = (
            collections.OrderedDict()
        )
        self._timers: dict[Item, asyncio.TimerHandle] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._sender: asyncio.Task[None] | None = None
        self._broken: AnyChannelError | None = None  # set if the sender died of a bug
        self._wakeup = asyncio.Event()
        self._sender_idle = False
        self._sending = True  # False once close(flush=False) stops new requests
        self._closed = asyncio.Event()
        self._flushing = 0

        self._submitted = 0
        self._resolved: collections.Counter[str] = collections.Counter()
        self._failed: collections.Counter[str] = collections.Counter()
        self._requests = 0
        self._retries = 0
        self._resent = 0
        self._batched = 0
        self._largest_batch = 0

    def __repr__(self) -> str:
        return (
            f"<PushPipeline instance_push_id={self._instance_push_id!r}"
            f" state={self._state.value} pending={self._flow.used}>"
        )

    # -- public face -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._bind_loop()
        self._start()
        try:
            await self._open_outbox()
        except BaseException:
            await self.close()  # no sender task may outlive a pipeline that never opened
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def submit(self, resource: ExternalResource) -> asyncio.Future[PushResult]:
        """Accept a resource; returns the future of its `PushResult`.

        Waits while ``max_pending`` resources are unresolved. Raises `ValidationError` for a
        resource too large for one request, `ClosedError` once the pipeline is closing.
        """
        if self._state is not _State.OPEN:
            raise ClosedError("this PushPipeline is closed")
        if asyncio.get_running_loop() is not self._loop:
            self._bind_loop()
        body = self._encode(resource)
        if self._sender is None or self._broken is not None or not self._replayed.is_set():
            await self._prepare()
        if not self._flow.try_acquire():
            await self._flow.acquire()
            if self._state is not _State.OPEN:  # closed while we waited for room
                self._flow.release()
                raise ClosedError("this PushPipeline is closed")
        seq = None
        if self._outbox is not None:
            try:
                [seq] = await self._outbox.add(
                    self._instance_push_id, [(resource.external_id, body)]
                )
            except BaseException:
                self._flow.release()
                raise
        if self._state is not _State.OPEN:
            # Closed while we waited: not accepted (an outbox row stays pending, for replay).
            self._flow.release()
            raise ClosedError("this PushPipeline is closed")
        return self._accept(resource, body, seq)

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
        if self._state is not _State.OPEN:
            raise ClosedError("this PushPipeline is closed")
        self._bind_loop()
        batch = [(resource, self._encode(resource)) for resource in resources]
        await self._prepare()
        futures: list[asyncio.Future[PushResult]] = []
        start = 0
        try:
            while start < len(batch):
                if not self._flow.try_acquire():
                    await self._flow.acquire()
                end = start + 1
                while end < len(batch) and self._flow.try_acquire():
                    end += 1
                group = batch[start:end]
                seqs: list[int | None] = [None] * len(group)
                try:
                    if self._outbox is not None:
                        seqs = list(
                            await self._outbox.add(
                                self._instance_push_id, [(r.external_id, b) for r, b in group]
                            )
                        )
                    if self._state is not _State.OPEN:
                        raise ClosedError("this PushPipeline is closed")
                except BaseException:
                    for _ in group:
                        self._flow.release()
                    raise
                futures.extend(
                    self._accept(resource, body, seq)
                    for (resource, body), seq in zip(group, seqs, strict=True)
                )
                start = end
        except AnyChannelError as exc:
            loop = asyncio.get_running_loop()
            for _ in batch[start:]:
                refused: asyncio.Future[PushResult] = loop.create_future()
                refused.set_exception(copies(exc, 1)[0])
                futures.append(refused)
        return futures

    async def _prepare(self) -> None:
        """Start the sender if needed, and wait until the outbox's leftovers are queued: they
        were submitted before anything new."""
        if self._sender is None or self._broken is not None:
            self._start()
        if not self._replayed.is_set():
            await self._open_outbox()
            await self._replayed.wait()

    def _encode(self, resource: ExternalResource) -> bytes:
        if not isinstance(resource, ExternalResource):
            raise ValidationError(
                "resource", f"must be an ExternalResource, got {type(resource).__name__}"
            )
        body = encode_body(resource)
        if len(body) + 1 > self._max_item_bytes:
            raise ValidationError(
                "resource",
                f"encoded size {len(body)} bytes does not fit in max_batch_bytes"
                f" ({self._max_item_bytes - 1} bytes once the request's own fields are counted)",
            )
        return body

    def _accept(
        self, resource: ExternalResource, body: bytes, seq: int | None
    ) -> asyncio.Future[PushResult]:
        """Queue a resource whose flow-control unit is taken; returns its future."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PushResult] = loop.create_future()
        due = loop.time() + self._max_latency
        item = Item(resource, body, future, self._key_for(resource), due)
        item.seq = seq
        self._outstanding.add(item)
        self._pending_ids[resource.external_id] = item
        self._submitted += 1
        self._batcher.add(item)
        # The sender needs waking when it sleeps with no deadline (nothing was queued), or
        # when a batch just filled while it waited out max_latency.
        if self._sender_idle or self._batcher.full():
            self._wakeup.set()
        return future

    async def _open_outbox(self) -> None:
        """Open the outbox once (every caller awaits the same opening) and start pushing again
        what an earlier run left pending. If it cannot be opened, every caller gets the error."""
        if self._outbox is None:
            return
        loop = asyncio.get_running_loop()
        if self._opening is None:
            self._opening = loop.create_task(self._outbox.open())
        try:
            await asyncio.shield(self._opening)
        except OutboxError as exc:
            raise copies(exc, 1)[0] from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._opening.cancelled() and task is not None and not task.cancelling():
                # close() stopped the opening; this caller was not cancelled itself.
                raise ClosedError("this PushPipeline is closed") from None
            raise
        if self._state is not _State.OPEN:
            # close() ran while the opening finished: it stopped every task it knew of, so
            # a replay started now would take rows into a pipeline that will never send them.
            raise ClosedError("this PushPipeline is closed")
        if self._replay is None:
            self._replay = loop.create_task(self._replay_outbox())

    async def _replay_outbox(self) -> None:
        """Queue the outbox's pending rows, oldest first, within max_pending; then new work."""
        outbox = self._outbox
        assert outbox is not None
        last = 0
        try:
            while rows := await outbox.pending(self._instance_push_id, after=last):
                for seq, body in rows:
                    last = seq
                    try:
                        resource = resource_from_json(orjson.loads(body))
                        # Encoded again: a row written by an earlier version may hold an
                        # older wire form (display_info data as a string).
                        body = encode_body(resource)
                    except (ValueError, ValidationError) as exc:
                        outbox.bury(seq, f"unreadable row: {exc}")
                        continue
                    await self._flow.acquire()
                    if self._state is not _State.OPEN:
                        self._flow.release()
                        return  # closing: the row stays pending for the next start
                    future = self._accept(resource, body, seq)
                    future.add_done_callback(self._replay_settled)
                    self._replayed_count += 1
            if self._replayed_count:
                logger.info("replayed %d resources from %s", self._replayed_count, outbox.path)
        except ClosedError:
            pass  # closing while waiting for room: the rows stay pending for the next start
        except OutboxError as exc:
            # The rows stay pending in the file: the next start replays them.
            logger.error("replay stopped: %s", exc)
        finally:
            self._replayed.set()

    async def push(self, resource: ExternalResource) -> PushResult:
        """Submit a resource and wait for its result."""
        return await (await self.submit(resource))

    async def flush(self) -> None:
        """Send everything queued now, and wait until every resource submitted so far resolved
        (with an outbox, the rows an earlier run left pending included)."""
        self._bind_loop()
        if self._replay is not None:
            await self._replayed.wait()
        futures = [item.future for item in self._outstanding]
        if not futures:
            return
        self._flushing += 1
        self._wakeup.set()
        try:
            await asyncio.wait(futures)
        finally:
            self._flushing -= 1

    async def close(self, *, flush: bool = True) -> None:
        """Flush (waiting at most ``close_timeout``), then stop every task. Idempotent.

        Resources still unresolved after the bound fail with `ClosedError`. With
        ``flush=False`` (a stop on a signal, or credentials Zendesk refused), no new request
        starts: resources not yet in a request fail with `ClosedError` at once (with an outbox
        their rows stay pending), and only the requests already in flight settle, within the
        same bound.
        """
        self._bind_loop()
        if self._state is not _State.OPEN:
            await self._closed.wait()
            return
        self._state = _State.CLOSING
        self._flow.wake_all(lambda: ClosedError("this PushPipeline is closed"))
        if not flush:
            self._sending = False
            for item in self._batcher.drain():
                self._fail(
                    item, ClosedError("the PushPipeline closed before the resource was sent")
                )
        try:
            async with asyncio.timeout(self._close_timeout):
                if flush:
                    await self.flush()
                elif self._sends:
                    await asyncio.wait(list(self._sends))
        except TimeoutError:
            logger.warning(
                "close: %d resources still unresolved after %g s; failing them",
                len(self._outstanding),
                self._close_timeout,
            )
        finally:
            try:
                await self._stop()
                if self._outbox is not None:
                    await self._outbox.close()
            finally:
                # Even if this close is cancelled mid-way, a later one must not wait forever.
                self._state = _State.CLOSED
                self._closed.set()

    @property
    def stats(self) -> PipelineStats:
        """A snapshot of the pipeline's counters."""
        return PipelineStats(
            submitted=self._submitted,
            resolved=dict(self._resolved),
            failed=dict(self._failed),
            requests=self._requests,
            retries=self._retries,
            resent=self._resent,
            mean_batch_size=self._batched / self._requests if self._requests else 0.0,
            max_batch_size=self._largest_batch,
            in_flight=len(self._sends),
            pending=self._flow.used,
            replayed=self._replayed_count,
            replay_outcomes=dict(self._replay_outcomes),
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def _bind_loop(self) -> None:
        """Tie the pipeline to the running loop on first use; refuse any other loop after.

        Its tasks, futures and events belong to one loop: used from another, it would hang.
        """
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise EventLoopError(
                "this PushPipeline was opened on another event loop; create one per loop"
            )

    def _start(self) -> None:
        if self._state is not _State.OPEN:
            raise ClosedError("this PushPipeline is closed")
        if self._broken is not None:
            raise copies(self._broken, 1)[0]
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._run())
            self._sender.add_done_callback(self._sender_ended)

    def _sender_ended(self, task: asyncio.Task[None]) -> None:
        """The sender only ends by close; if a bug ends it, nothing may wait forever."""
        if task.cancelled() or self._state is not _State.OPEN:
            return
        error = task.exception()
        logger.error("the pipeline's sender stopped: %r; failing pending resources", error)
        self._broken = AnyChannelError(f"internal error: the pipeline's sender stopped: {error!r}")
        for item in [*self._batcher.drain(), *self._outstanding]:
            self._fail(item, copies(self._broken, 1)[0])

    async def _stop(self) -> None:
        def closed() -> ClosedError:
            return ClosedError("the PushPipeline closed before the resource was resolved")

        timers, self._timers = self._timers, {}
        for item, timer in timers.items():
            timer.cancel()
            self._fail(item, closed())
        tasks = list(self._sends)
        if self._sender is not None:
            tasks.append(self._sender)
        if self._replay is not None:
            tasks.append(self._replay)
        if self._opening is not None:
            tasks.append(self._opening)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for item in self._batcher.drain():
            self._fail(item, closed())
        waiting, self._waiting_children = self._waiting_children, {}
        for children in waiting.values():
            for child in children:
                self._fail(child, closed())
        for item in list(self._outstanding):
            self._fail(item, closed())

    # -- the sender --------------------------------------------------------------------------

    async def _run(self) -> None:
        """Cut a batch whenever a request can actually be sent, until cancelled by close."""
        loop = asyncio.get_running_loop()
        batcher = self._batcher
        pace = self._client.pace
        while True:
            wait: float | None = None
            if self._sending and batcher.has_sendable and len(self._sends) < self._max_in_flight:
                wait = pace.delay()
                if wait <= 0:
                    due = batcher.next_due()
                    now = loop.time()
                    if due is None or self._flushing or batcher.full() or due <= now:
                        dropped: list[Item] = []
                        batch = batcher.take(dropped)
                        for item in dropped:  # cancelled by their owners before sending
                            self._finished(item)
                        if batch:
                            self._start_send(batch)
                            # Let the request take its slot of the account's pace before the
                            # next cut: a batch cut now but sent later would leave half full.
                            await asyncio.sleep(0)
                        continue
                    wait = due - now
            self._wakeup.clear()
            # Only an empty queue needs a submit to wake the sender; a full set of requests
            # in flight is woken by the request that completes.
            self._sender_idle = not batcher.has_sendable
            try:
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._sender_idle = False

    def _start_send(self, batch: list[Item]) -> None:
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, batch: list[Item]) -> None:
        """Own one request from cut to completion; always releases the batch's keys."""
        requeue: list[Item] = []
        try:
            requeue = await self._deliver(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("unexpected error while pushing a batch")
            self._fail_all(batch, AnyChannelError(f"internal error: {type(exc).__name__}: {exc}"))
        finally:
            # Leave the in-flight set before waking the sender: its done callback would run a
            # loop iteration late, and the sender would still count this request and sleep.
            self._sends.discard(asyncio.current_task())
            self._batcher.release({item.key for item in batch}, requeue)
            self._wakeup.set()

    async def _deliver(self, items: list[Item]) -> list[Item]:
        """Push items, settle what the answer settles; return the items to push again, in order."""
        items = [item for item in items if not self._doomed(item)]
        if not items:
            return []
        for item in items:
            if item.sends:
                self._resent += 1
            item.sends += 1
        self._requests += 1
        self._batched += len(items)
        self._largest_batch = max(self._largest_batch, len(items))
        try:
            results = await self._client.push_encoded(
                self._instance_push_id,
                items,
                on_retry=self._count_retry,
            )
        except AnyChannelError as exc:
            if len(items) > 1 and splittable(exc):
                # 413 (or a 400 about size): halves may pass. Another 400: bisect down to the
                # resources Zendesk refuses, and push the rest. The second half waits for the
                # first, so nothing overtakes a resource of the first half sent again.
                middle = len(items) // 2
                logger.info("%s for %d resources; splitting", exc, len(items))
                again = await self._deliver(items[:middle])
                if again:
                    return again + items[middle:]
                return await self._deliver(items[middle:])
            logger.warning("push of %d resources: %s", len(items), exc)
            routed = route_error(items, exc, max_attempts=self._max_attempts)
            self._apply(routed)
            return routed.again
        for item, result in zip(items, results, strict=True):
            if item.future.cancelled() and result.imported:
                # Cancelled by its owner while in flight, yet Zendesk took it: its children
                # and its outbox row must know it is there.
                item.imported = True
                if item.seq is not None and self._outbox is not None:
                    self._outbox.resolve(item.seq)
        routed = route(items, results, max_attempts=self._max_attempts)
        self._apply(routed)
        for item in items:
            if item.future.done() and not item.finished:  # cancelled while in flight
                self._finished(item)
        return routed.again

    def _apply(self, routed: Routed) -> None:
        for item, result in routed.resolved:
            self._resolve(item, result)
        for item, error in routed.failed:
            self._fail(item, error)
        for item, result in routed.orphans:
            self._orphan(item, result)

    def _replay_settled(self, future: asyncio.Future[PushResult]) -> None:
        # Nobody awaits a replayed resource: reading its outcome here also keeps asyncio from
        # logging its exception as never retrieved.
        self._replay_outcomes[_outcome_name(future)] += 1

    def _count_retry(self) -> None:
        self._retries += 1

    # -- outcomes ----------------------------------------------------------------------------

    def _key_for(self, resource: ExternalResource) -> str:
        """The ordering key: resources sharing one are never in two requests at once."""
        same = self._pending_ids.get(resource.external_id)
        if same is not None:  # the same id twice must not race into two tickets
            return same.key
        if resource.thread_id is not None:
            return "t:" + resource.thread_id
        if resource.parent_id is not None:
            parent = self._pending_ids.get(resource.parent_id)
            return parent.key if parent is not None else "r:" + resource.parent_id
        return "r:" + resource.external_id

    def _doomed(self, item: Item) -> bool:
        """True (and failed) when the item's parent already failed; False otherwise."""
        if item.future.done():
            self._finished(item)
            return True
        parent_id = item.resource.parent_id
        if (
            parent_id is not None
            and parent_id in self._failed_ids
            and parent_id not in self._pending_ids  # submitted again since: it may pass
        ):
            self._fail(item, self._orphan_error(item, parent_id))
            return True
        return False

    def _orphan_error(
        self, item: Item, parent_id: str, result: PushResult | None = None
    ) -> AnyChannelError:
        """What a child fails with when its parent failed: final, or the parent's own error."""
        cause = self._failed_ids.get(parent_id)
        if cause is None:
            return ParentNotFoundError(item.external_id, f"parent {parent_id} failed", result)
        return copies(cause, 1)[0]

    def _orphan(self, item: Item, result: PushResult) -> None:
        """Zendesk could not locate the item's parent: wait for it, retry later, or fail."""
        parent_id = item.resource.parent_id or ""
        if parent_id in self._pending_ids:
            if self._is_ancestor(item.external_id, parent_id):
                self._fail(
                    item,
                    ParentNotFoundError(
                        item.external_id, f"parent {parent_id} descends from it (a cycle)", result
                    ),
                )
                return
            # Pending here: its outcome will release or fail this child (see _finished).
            self._waiting_children.setdefault(parent_id, []).append(item)
            return
        if parent_id in self._failed_ids:
            self._fail(item, self._orphan_error(item, parent_id, result))
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if item.orphaned_at is None:
            item.orphaned_at = now
        deadline = item.orphaned_at + self._parent_timeout
        if now >= deadline:
            self._fail(
                item,
                ParentNotFoundError(
                    item.external_id,
                    f"parent {parent_id} not found within {self._parent_timeout:g} s",
                    result,
                ),
            )
            return
        # The parent may come from another process: try again later, with jittered backoff.
        wait = min(_ORPHAN_MAX_WAIT, _ORPHAN_FIRST_WAIT * 2**item.orphan_tries)
        wait *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter
        item.orphan_tries += 1
        self._timers[item] = loop.call_later(min(wait, deadline - now), self._orphan_wakes, item)

    def _is_ancestor(self, external_id: str, parent_id: str | None) -> bool:
        """True when external_id is on the chain of pending parents above parent_id: waiting
        for that parent would be waiting for itself."""
        seen: set[str] = set()
        while parent_id is not None and parent_id not in seen:
            if parent_id == external_id:
                return True
            seen.add(parent_id)
            parent = self._pending_ids.get(parent_id)
            parent_id = parent.resource.parent_id if parent is not None else None
        return False

    def _orphan_wakes(self, item: Item) -> None:
        del self._timers[item]
        if item.future.done():
            self._finished(item)
        else:
            self._batcher.add_front([item])
            self._wakeup.set()

    def _resolve(self, item: Item, result: PushResult) -> None:
        if not item.future.done():
            item.future.set_result(result)
            item.imported = True
            self._resolved[str(getattr(result.code, "value", result.code))] += 1
            if item.seq is not None and self._outbox is not None:
                self._outbox.resolve(item.seq)
        self._finished(item)

    def _fail(self, item: Item, error: AnyChannelError) -> None:
        if not item.future.done():
            item.future.set_exception(error)
            self._failed[type(error).__name__] += 1
            # Dead letters are what failed for good; a request-level failure (transport,
            # auth, closing) leaves the row pending, to be pushed again at the next start.
            item.error = error
            if (
                item.seq is not None
                and self._outbox is not None
                and verdict(error) is Verdict.FINAL
            ):
                self._outbox.bury(item.seq, f"{type(error).__name__}: {error}")
        self._finished(item)

    def _fail_all(self, items: list[Item], error: AnyChannelError) -> None:
        for item, own in zip(items, copies(error, len(items)), strict=True):
            self._fail(item, own)

    def _finished(self, item: Item) -> None:
        """Bookkeeping for the end of an item, however its future ended (once per item).

        Called when the pipeline settles the future, or, for a future its owner cancelled,
        when the pipeline next meets the item (at the cut, in an answer, at a timer): no done
        callback per future, which would cost a scheduled call per resource.
        """
        if item.finished:
            return
        item.finished = True
        cancelled = item.future.cancelled()
        if cancelled and not item.imported and item.seq is not None and self._outbox is not None:
            self._outbox.bury(item.seq, "cancelled by its owner before it was pushed")
        self._outstanding.discard(item)
        self._flow.release()
        external_id = item.external_id
        if self._pending_ids.get(external_id) is item:
            del self._pending_ids[external_id]
        if self._timers:
            timer = self._timers.pop(item, None)
            if timer is not None:
                timer.cancel()
        imported = item.imported
        if not imported:
            error = item.error
            self._failed_ids[external_id] = (
                None if cancelled or error is None or verdict(error) is Verdict.FINAL else error
            )
            self._failed_ids.move_to_end(external_id)
            if len(self._failed_ids) > _FAILED_MEMORY:
                self._failed_ids.popitem(last=False)
        elif self._failed_ids:
            self._failed_ids.pop(external_id, None)  # it failed once, and now went through
        if not self._waiting_children:
            return
        children = self._waiting_children.pop(external_id, None)
        if children:
            if imported:
                self._batcher.add_front(children)
                self._wakeup.set()
            else:
                for child in children:
                    self._fail(child, self._orphan_error(child, external_id))


def _outcome_name(future: asyncio.Future[PushResult]) -> str:
    """A settled future's outcome: its status code, or its exception's class name."""
    if future.cancelled():
        return "cancelled"
    error = future.exception()
    if error is not None:
        return type(error).__name__
    return str(future.result().code)
