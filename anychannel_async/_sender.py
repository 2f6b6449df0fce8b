"""Sender: cuts batches when a request can go, owns the requests in flight, splits refusals.

It decides *when* to send (a free slot of ``max_in_flight``, the account's pace and a turn of
its host's requests, a full batch or a due one) and *what* to send again after a refusal of
the size (split, bisect). What an answer means for each resource is the router's to say; the
sender only hands the answer over and queues again what the router gives back. It knows the
client only through the two things it is given: ``pace`` (may a request start now) and
its ``owner``'s ``_push`` (send one request, report how it went by return value).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Protocol

from ._batcher import Batcher
from ._client import Pushed
from ._errors import AnyChannelError, splittable
from ._metrics import NO_METRICS, Recorder
from ._ratelimit import AccountPace
from ._router import Router
from ._submission import Submission

__all__ = ["Pushes", "Sender"]

logger = logging.getLogger("anychannel_async.pipeline")


class Pushes(Protocol):
    """Who sends the sender's requests: its pipeline. An object, not a bound method (~64 bytes
    each, and a pool holds a sender per account)."""

    def _push(self, batch: Sequence[Submission]) -> Awaitable[Pushed]: ...


class Sender:
    """The sending of one pipeline: when to cut a batch, and every request task it starts.

    It has no task of its own. Whatever may let a request go (a submit, a request ending, a
    turn of the host offered, a batch coming due) calls `wake`, which schedules one look
    (`_poll`) on the loop; a look that finds a batch due later leaves a timer for then. A pool
    of thousands of accounts so holds no sleeping task per account: each costs a frame, a
    future and a weak reference, and the cyclic GC walks them all (a third of a pool's CPU at
    1,000 accounts went to the GC).
    """

    __slots__ = (
        "_batcher",
        "_hurry",
        "_idle",
        "_loop",
        "_max_in_flight",
        "_metrics",
        "_owner",
        "_pace",
        "_queued",
        "_router",
        "_scheduled",
        "_sending",
        "_sends",
        "_stopped",
        "_timer",
        "_turn",
        "batched",
        "broken",
        "largest",
        "requests",
        "resent",
        "retries",
    )

    def __init__(
        self,
        *,
        batcher: Batcher,
        router: Router,
        pace: AccountPace,
        owner: Pushes,
        max_in_flight: int,
        metrics: Recorder = NO_METRICS,
    ) -> None:
        self._metrics = metrics
        self._batcher = batcher
        self._router = router
        self._pace = pace
        self._owner = owner
        self._max_in_flight = max_in_flight
        self._loop: asyncio.AbstractEventLoop | None = None
        # Requests in flight: a list, at most max_in_flight long. A pool holds a sender per
        # account and few of them have a request in flight at any time; a set or dict keeps
        # the table it grew to (~220 bytes), an emptied list frees its items.
        self._sends: list[asyncio.Task[None]] = []
        # A look scheduled (call_soon), and the timer of a batch due later.
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._idle = False
        self._hurry = 0
        self._sending = True
        self._stopped = False
        # A turn of the host's requests (pace.try_start / wait_turn): held from when it is
        # granted until a request takes it over, or handed back unused; queued while waiting.
        self._turn = False
        self._queued = False
        #: Set when a look failed with a bug: the pipeline refuses new work with it.
        self.broken: AnyChannelError | None = None
        #: Push requests started (a split request counts each part), resources in them,
        #: the largest, resources pushed again, and tries the client retried.
        self.requests = 0
        self.batched = 0
        self.largest = 0
        self.resent = 0
        self.retries = 0

    @property
    def in_flight(self) -> int:
        return len(self._sends)

    @property
    def ready(self) -> bool:
        """True once started, unless a look failed with a bug."""
        return self._loop is not None and self.broken is None

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self.wake()

    def queued(self, full: bool) -> None:
        """A resource was queued (``full``: the queue now holds a full batch): look again if
        nothing else would (the queue was empty), or if a batch filled while it waited out
        max_latency."""
        if full or self._idle:
            self.wake()

    def wake(self) -> None:
        """Look again soon (once, however many wakes come before the look)."""
        if not self._scheduled and self._loop is not None and not self._stopped:
            self._scheduled = True
            self._loop.call_soon(self._poll)

    def hurry(self, on: bool) -> None:
        """From ``hurry(True)`` to its ``hurry(False)``, queued resources go at once instead of
        waiting out max_latency (calls nest). Two calls, not a context manager: a pool's flush
        hurries thousands of senders at once, and a generator context manager is ~500 bytes."""
        if on:
            self._hurry += 1
            # Only a look waiting out max_latency (or the pace) on its timer needs a wake: one
            # queued for a turn of the host sees the hurry when the turn comes, one at
            # max_in_flight when a request ends, an idle one at the next submit. (A pool's
            # flush hurries every open account at once: a scheduled look each was ~1 MiB.)
            if self._timer is not None:
                self.wake()
        else:
            self._hurry -= 1

    def stop_sending(self) -> None:
        """No new request starts from now on; those in flight finish."""
        self._sending = False
        self._hand_back()

    async def settle(self) -> None:
        """Wait for the requests in flight."""
        while self._sends:
            await asyncio.wait(list(self._sends))

    async def stop(self) -> None:
        """No look from now on; cancel every request in flight, and wait for them."""
        self._stopped = True
        # Before the wait, not after: a turn offered just now (its look not run yet) has no
        # look left to use it, and a stop cancelled in the wait (a cancelled close of a pool
        # or a pipeline) would keep it for ever, the host a request fewer. Once stopped, the
        # sender declines every offer (`offered`), so none can come back to it.
        self._hand_back()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._sends)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the look ----------------------------------------------------------------------------

    def _poll(self) -> None:
        """Cut batches while requests can go; then wait for a wake, or set a timer."""
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stopped:
            return
        if self.broken is not None:
            # What came back to the queue since the break (pushed again after an answer in
            # flight, a child released, a replayed row): nothing will send it.
            self._router.give_up(self._batcher.drain(), self.broken)
            return
        try:
            wait = self._look()
        except Exception as exc:  # noqa: BLE001 - a bug: nothing may wait forever on a failed look
            self._break(exc)
            return
        self._hand_back()  # a turn granted but not usable now (paused, nothing to send)
        # Only an empty queue needs a submit to wake it; a full set of requests in flight is
        # woken by the request that completes, a queued turn by its offer.
        self._idle = not self._batcher.has_sendable
        if wait is not None:
            assert self._loop is not None
            if wait <= 0:
                # A batch was cut: look again once its request took its slot of the pace (its
                # task runs first); a batch cut now and sent later would leave half full.
                self.wake()
            else:
                self._timer = self._loop.call_later(wait, self.wake)

    def _look(self) -> float | None:
        """Cut a batch if a request can go now. Returns when to look again: 0 (a batch was
        cut), in so many seconds (the pace, or the oldest resource's max_latency), or None
        (a wake will come: a submit, a request ending, a turn offered)."""
        batcher = self._batcher
        if not (self._sending and batcher.has_sendable and len(self._sends) < self._max_in_flight):
            return None
        pace = self._pace
        wait = pace.delay()
        if wait > 0:
            return wait
        due = batcher.next_due()
        assert self._loop is not None
        now = self._loop.time()
        if not (due is None or self._hurry or batcher.full() or due <= now):
            return due - now
        if self._turn or pace.try_start():
            # Held until a request takes it over: if none is cut (or cutting raises), the
            # caller hands it back (`_poll`, `_break`).
            self._turn = True
            if self._cut():
                self._turn = False  # the request finishes the turn
            return 0.0
        # The host's requests are all under way: the batch stays open and fills until a
        # request ends and the turn comes here.
        if not self._queued:
            self._queued = True
            pace.wait_turn(self)
        return None

    def _cut(self) -> bool:
        """Take a batch and start its request; False if none was left (all cancelled by their
        owners)."""
        dropped: list[Submission] = []
        batch = self._batcher.take(dropped)
        for submission in dropped:  # cancelled by their owners before sending
            self._router.dropped(submission)
        if not batch:
            return False
        self._start_send(batch)
        return True

    def offered(self) -> bool:
        """The host offers a turn: take it unless this sender stopped or may not send."""
        self._queued = False
        if not self._sending or self._stopped or self._loop is None or self.broken is not None:
            return False
        self._turn = True
        self.wake()
        return True

    def _hand_back(self) -> None:
        if self._turn:
            self._turn = False
            self._pace.finish()

    def _break(self, error: Exception) -> None:
        """A look failed with a bug: fail what is queued, refuse new work.

        The requests in flight are left to finish: Zendesk may import what they carry, so
        their answers settle those futures. Whatever would then be pushed again fails at the
        next look instead (`_poll`), as unknown if a push of it may have reached Zendesk.
        """
        self._hand_back()
        logger.error("the pipeline's sender stopped: %r; failing queued resources", error)
        self.broken = AnyChannelError(f"internal error: the pipeline's sender stopped: {error!r}")
        self._idle = True  # whatever is queued from now on wakes a look, which fails it
        self._router.give_up([*self._router.stop_timers(), *self._batcher.drain()], self.broken)

    def _start_send(self, batch: list[Submission]) -> None:
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sends.append(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        # A request cancelled before it began never ran its ``finally``: its turn ends here.
        if task in self._sends:
            self._sends.remove(task)
            self._pace.finish()

    async def _send(self, batch: list[Submission]) -> None:
        """Own one request from cut to completion; always releases the batch's keys."""
        again: list[Submission] = []
        try:
            again = await self._deliver(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("unexpected error while pushing a batch")
            internal = AnyChannelError(f"internal error: {type(exc).__name__}: {exc}")
            self._router.fail_all(batch, internal)
        finally:
            # Leave the in-flight set and end the turn before the wake: the done callback
            # runs a loop iteration late, and the look would still count this request and
            # wait (and the host's next sender with it).
            current = asyncio.current_task()
            if current is not None and current in self._sends:
                self._sends.remove(current)
            self._pace.finish()
            self._batcher.release({submission.key for submission in batch}, again)
            self.wake()

    async def _deliver(self, batch: list[Submission]) -> list[Submission]:
        """Push a batch and hand the answer to the router; returns what to push again."""
        batch = [submission for submission in batch if not self._router.doomed(submission)]
        if not batch or self.broken is not None:
            return batch  # broken (a split's next half): no new push, the next look fails it
        for submission in batch:
            if submission.sends:
                self.resent += 1
                self._metrics.resent()
            submission.sends += 1
        self.requests += 1
        self.batched += len(batch)
        self.largest = max(self.largest, len(batch))
        started = time.monotonic()
        try:
            pushed = await self._owner._push(batch)
        except asyncio.CancelledError:
            self._router.cut_short(batch)  # close cut it short: Zendesk may have it
            raise
        self.retries += max(0, pushed.tries - 1)
        self._metrics.request(
            pushed.error,
            seconds=time.monotonic() - started,
            size=len(batch),
            retries=max(0, pushed.tries - 1),
            rate_limited=pushed.rate_limited,
        )
        error = pushed.error
        if error is None:
            return self._router.results(batch, pushed.results)
        if len(batch) > 1 and splittable(error):
            # 413 (or a 400 about size): halves may pass. Another 400: bisect down to the
            # resources Zendesk refuses, and push the rest. The second half waits for the
            # first, so nothing overtakes a resource of the first half sent again.
            middle = len(batch) // 2
            logger.info("%s for %d resources; splitting", error, len(batch))
            again = await self._deliver(batch[:middle])
            if again:
                return again + batch[middle:]
            return await self._deliver(batch[middle:])
        logger.warning("push of %d resources: %s", len(batch), error)
        return self._router.error(batch, error)
