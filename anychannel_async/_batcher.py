"""The send queue and the cut of a batch: sizes, and the order Zendesk depends on.

Each queued resource carries an ordering key: its thread (``thread_id``), or the conversation
its parent belongs to, or its own id for a new conversation. One rule keeps Zendesk's order
with many requests in flight: **a key is in at most one request at a time**, and its resources
go out in the order they came. So a child is never sent before its parent's push has
completed (it can ride in the same request, after the parent), and two requests never race to
open two tickets for one thread. A resource whose key is busy is parked, out of the way of
independent resources, until the request holding its key completes.

The batcher owns the queue and nothing else: it never sends, and never resolves a future.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

from ._errors import AnyChannelError
from ._models import ExternalResource, PushResult

__all__ = ["Batcher", "Item"]


class Item:
    """Internal bookkeeping of one submitted resource; the user's resource is never mutated.

    It carries the resource's JSON body itself (it is an `_serde.Encoded`), so a resource in
    the pipeline costs one record, not two.
    """

    __slots__ = (
        "attempts",
        "body",
        "due",
        "error",
        "external_id",
        "finished",
        "future",
        "imported",
        "key",
        "orphan_tries",
        "orphaned_at",
        "resource",
        "sends",
        "seq",
        "size",
    )

    def __init__(
        self,
        resource: ExternalResource,
        body: bytes,
        future: asyncio.Future[PushResult],
        key: str,
        due: float,
    ) -> None:
        self.resource = resource
        self.external_id = resource.external_id
        self.body = body
        self.future = future
        self.key = key
        #: Bytes this resource adds to a push body (its JSON and a separating comma).
        self.size = len(body) + 1
        #: Monotonic time by which it should be sent: queued time plus max_latency.
        self.due = due
        #: Pushes that told nothing definite of it: halted, rate limited, or unknown.
        self.attempts = 0
        self.sends = 0
        self.orphan_tries = 0
        #: When Zendesk first could not locate its parent; None while it has not happened.
        self.orphaned_at: float | None = None
        #: Set once its future resolved with a result (read by the pipeline for its children).
        self.imported = False
        #: Set once the pipeline has done its bookkeeping for the end of this item.
        self.finished = False
        #: Its row in the pipeline's outbox, when there is one.
        self.seq: int | None = None
        #: The error its future was failed with, when it was.
        self.error: AnyChannelError | None = None


class Batcher:
    """A FIFO of items to send, with keys held by in-flight requests parked aside."""

    def __init__(self, *, max_batch_size: int, max_batch_bytes: int) -> None:
        self._max_size = max_batch_size
        # Budget for the resources themselves; the caller subtracts the body's fixed overhead.
        self._max_bytes = max_batch_bytes
        self._queue: deque[Item] = deque()
        self._queued_bytes = 0
        self._busy: set[str] = set()
        self._parked: dict[str, deque[Item]] = {}
        self._parked_count = 0

    def __len__(self) -> int:
        """Items queued or parked."""
        return len(self._queue) + self._parked_count

    @property
    def has_sendable(self) -> bool:
        return bool(self._queue)

    def add(self, item: Item) -> None:
        """Queue a new item at the tail.

        It is not parked here even when its key is busy: older items of its key may still
        wait in the queue, and parking it now would let it overtake them on release. `take`
        parks items as it reaches them, so parked items are always older than queued ones.
        """
        self._queue.append(item)
        self._queued_bytes += item.size

    def add_front(self, items: Iterable[Item]) -> None:
        """Queue items at the head, in the given order, due at once (halted, released ones)."""
        batch = list(items)
        for item in reversed(batch):
            item.due = 0.0
            if item.key in self._busy:
                self._park(item, front=True)
            else:
                self._queue.appendleft(item)
                self._queued_bytes += item.size

    def _park(self, item: Item, *, front: bool = False) -> None:
        parked = self._parked.setdefault(item.key, deque())
        if front:
            parked.appendleft(item)
        else:
            parked.append(item)
        self._parked_count += 1

    def full(self) -> bool:
        """True when the queue holds at least one full batch."""
        return len(self._queue) >= self._max_size or self._queued_bytes >= self._max_bytes

    def next_due(self) -> float | None:
        """When the oldest queued item should go out; None when nothing is queued."""
        return self._queue[0].due if self._queue else None

    def take(self, dropped: list[Item]) -> list[Item]:
        """Cut a batch from the head: at most max_batch_size items and max_batch_bytes.

        Items whose future is already done (cancelled by the user) are removed unsent and
        appended to dropped. The batch's keys become busy until `release` is called with them.
        """
        batch: list[Item] = []
        size = 0
        queue = self._queue
        busy = self._busy
        while queue and len(batch) < self._max_size:
            item = queue[0]
            if item.future.done():
                queue.popleft()
                self._queued_bytes -= item.size
                dropped.append(item)
                continue
            if item.key in busy:
                queue.popleft()
                self._queued_bytes -= item.size
                self._park(item)
                continue
            if batch and size + item.size > self._max_bytes:
                break
            queue.popleft()
            self._queued_bytes -= item.size
            size += item.size
            batch.append(item)
        busy.update(item.key for item in batch)
        return batch

    def release(self, keys: Iterable[str], requeue: Iterable[Item] = ()) -> None:
        """The request holding keys completed: requeue (its halted items), then the items
        parked on its keys, go back to the head, in that order, ahead of newer work."""
        unparked: list[Item] = list(requeue)
        for key in keys:
            self._busy.discard(key)
            parked = self._parked.pop(key, None)
            if parked:
                self._parked_count -= len(parked)
                unparked.extend(parked)
        if unparked:
            self.add_front(unparked)

    def drain(self) -> list[Item]:
        """Remove and return every item, queued or parked (used when the pipeline closes)."""
        items = list(self._queue)
        for parked in self._parked.values():
            items.extend(parked)
        self._queue.clear()
        self._parked.clear()
        self._parked_count = 0
        self._queued_bytes = 0
        return items
