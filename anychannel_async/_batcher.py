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

from collections.abc import Iterable

from ._submission import Submission

__all__ = ["Batcher"]


class Batcher:
    """A FIFO of items to send, with keys held by in-flight requests parked aside."""

    __slots__ = (
        "_busy",
        "_max_bytes",
        "_max_size",
        "_parked",
        "_parked_count",
        "_queue",
        "_queued_bytes",
    )

    def __init__(self, *, max_batch_size: int, max_batch_bytes: int) -> None:
        self._max_size = max_batch_size
        # Budget for the resources themselves; the caller subtracts the body's fixed overhead.
        self._max_bytes = max_batch_bytes
        # Lists and dicts, not a deque and a set: a pool holds one batcher per account, and
        # an empty deque costs ~600 bytes, an empty set 216. A cut removes its batch from the
        # head in one slice.
        self._queue: list[Submission] = []
        self._queued_bytes = 0
        # Keys in a request now: None while none is (most accounts of a pool, most of the
        # time; an emptied dict keeps the table it grew to).
        self._busy: dict[str, None] | None = None
        # Made on first use: most accounts of a pool never park anything.
        self._parked: dict[str, list[Submission]] | None = None
        self._parked_count = 0

    @property
    def max_bytes(self) -> int:
        """Bytes of resources a batch may hold (each counted with its comma)."""
        return self._max_bytes

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
        front: list[Submission] = []
        parked: dict[str, list[Submission]] = {}
        busy = self._busy if self._busy is not None else {}
        for item in items:
            item.due = 0.0
            if item.key in busy:
                parked.setdefault(item.key, []).append(item)
            else:
                front.append(item)
                self._queued_bytes += item.size
        self._queue[:0] = front
        for key, group in parked.items():
            self._parked_of(key)[:0] = group
            self._parked_count += len(group)

    def _park(self, item: Submission) -> None:
        self._parked_of(item.key).append(item)
        self._parked_count += 1

    def _parked_of(self, key: str) -> list[Submission]:
        if self._parked is None:
            self._parked = {}
        return self._parked.setdefault(key, [])

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
        busy = self._busy if self._busy is not None else {}
        taken = 0  # items leaving the queue: in the batch, dropped or parked
        taken_bytes = 0
        while taken < len(queue) and len(batch) < self._max_size:
            item = queue[taken]
            if item.future.done():
                dropped.append(item)
            elif item.key in busy:
                self._park(item)
            elif batch and size + item.size > self._max_bytes:
                break
            else:
                size += item.size
                batch.append(item)
            taken += 1
            taken_bytes += item.size
        del queue[:taken]
        self._queued_bytes -= taken_bytes
        if batch:
            for item in batch:
                busy[item.key] = None
            self._busy = busy
        return batch

    def release(self, keys: Iterable[str], requeue: Iterable[Submission] = ()) -> None:
        """The request holding keys completed: requeue (its halted items), then the items
        parked on its keys, go back to the head, in that order, ahead of newer work."""
        unparked: list[Submission] = list(requeue)
        busy = self._busy
        for key in keys:
            if busy is not None:
                busy.pop(key, None)
            parked = self._parked.pop(key, None) if self._parked else None
            if parked:
                self._parked_count -= len(parked)
                unparked.extend(parked)
        if not busy:
            self._busy = None
        if unparked:
            self.add_front(unparked)

    def drain(self) -> list[Submission]:
        """Remove and return every item, queued or parked (used when the pipeline closes)."""
        items = list(self._queue)
        for parked in (self._parked or {}).values():
            items.extend(parked)
        self._queue.clear()
        self._parked = None
        self._parked_count = 0
        self._queued_bytes = 0
        return items
