"""The send queue and the cut of a batch: sizes, and the order Zendesk depends on.

Each queued resource carries an ordering key: its thread (``thread_id``), or the conversation
its parent belongs to, or its own id for a new conversation. One rule keeps Zendesk's order
with many requests in flight: **a key is in at most one request at a time**, and its resources
go out in the order they came. So a child is never sent before its parent's push has
completed (it can ride in the same request, after the parent), and two requests never race to
open two tickets for one thread. A resource whose key is busy is parked, out of the way of
independent resources, until the request holding its key completes.

The batcher owns the queue, and of a `Submission` only its ``due`` time: it never sends, and
never resolves a future.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from ._submission import Submission

__all__ = ["Batcher"]


class Batcher:
    """A FIFO of items to send, with keys held by in-flight requests parked aside."""

    def __init__(self, *, max_batch_size: int, max_batch_bytes: int) -> None:
        self._max_size = max_batch_size
        # Budget for the resources themselves; the caller subtracts the body's fixed overhead.
        self._max_bytes = max_batch_bytes
        self._queue: deque[Submission] = deque()
        self._queued_bytes = 0
        self._busy: set[str] = set()
        self._parked: dict[str, deque[Submission]] = {}
        self._parked_count = 0

    def __len__(self) -> int:
        """Submissions queued or parked."""
        return len(self._queue) + self._parked_count

    @property
    def has_sendable(self) -> bool:
        return bool(self._queue)

    def add(self, item: Submission, due: float) -> bool:
        """Queue a new item at the tail, to be sent by due (monotonic time) at the latest;
        True when the queue now holds a full batch.

        It is not parked here even when its key is busy: older items of its key may still
        wait in the queue, and parking it now would let it overtake them on release. `take`
        parks items as it reaches them, so parked items are always older than queued ones.
        """
        item.due = due
        queue = self._queue
        queue.append(item)
        self._queued_bytes += item.size
        return len(queue) >= self._max_size or self._queued_bytes >= self._max_bytes

    def add_front(self, items: Iterable[Submission]) -> None:
        """Queue items at the head, in the given order, due at once (halted, released ones)."""
        batch = list(items)
        for item in reversed(batch):
            item.due = 0.0
            if item.key in self._busy:
                self._park(item, front=True)
            else:
                self._queue.appendleft(item)
                self._queued_bytes += item.size

    def _park(self, item: Submission, *, front: bool = False) -> None:
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

    def take(self, dropped: list[Submission]) -> list[Submission]:
        """Cut a batch from the head: at most max_batch_size items and max_batch_bytes.

        Submissions whose future is already done (cancelled by the user) are removed unsent and
        appended to dropped. The batch's keys become busy until `release` is called with them.
        """
        batch: list[Submission] = []
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

    def release(self, keys: Iterable[str], requeue: Iterable[Submission] = ()) -> None:
        """The request holding keys completed: requeue (its halted items), then the items
        parked on its keys, go back to the head, in that order, ahead of newer work."""
        unparked: list[Submission] = list(requeue)
        for key in keys:
            self._busy.discard(key)
            parked = self._parked.pop(key, None)
            if parked:
                self._parked_count -= len(parked)
                unparked.extend(parked)
        if unparked:
            self.add_front(unparked)

    def drain(self) -> list[Submission]:
        """Remove and return every item, queued or parked (used when the pipeline closes)."""
        items = list(self._queue)
        for parked in self._parked.values():
            items.extend(parked)
        self._queue.clear()
        self._parked.clear()
        self._parked_count = 0
        self._queued_bytes = 0
        return items
