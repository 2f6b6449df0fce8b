"""TicketLedger: which Zendesk ticket and comment each pushed resource became.

A push's answer says only ``success``; Zendesk names the ticket afterwards, in a
``resources_created_from_external_ids`` event sent to the integration's ``event_callback_url``,
under the push's ``request_id``. The ledger joins the two: a pipeline given a ledger pushes each
request with a ``request_id`` the ledger issued (and remembers whose it is); the integration
hands the ledger each such event; a caller awaits ``ticket_of(instance_push_id, external_id)``.

Zendesk signs nothing it sends: the ledger believes an event only for a request id it issued
itself (122 random bits, sent to Zendesk alone), and files what it says under the account that
request was pushed for, never under one the event claims. Memory is bounded by count and by
age: at most ``max_entries`` requests awaiting their event and ``max_entries`` tickets known,
each forgotten after ``keep`` seconds, least recently used first. It never does I/O.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import TypeVar

import attrs

from ._errors import ConfigurationError, TicketUnknownError, ValidationError

__all__ = ["CREATED_EVENT", "REQUEST_ID_LENGTH", "TicketLedger", "TicketRef"]

logger = logging.getLogger("anychannel_async.tickets")

_K = TypeVar("_K")
_V = TypeVar("_V")

#: The length of the request ids a ledger issues (a uuid4's 32 hex digits; Zendesk allows 64).
REQUEST_ID_LENGTH = 32
#: The event type the ledger reads, and its resource events' types (NOTES, Zendesk's docs).
CREATED_EVENT = "resources_created_from_external_ids"
_KINDS = frozenset(
    {
        "comment_on_new_ticket",
        "comment_on_existing_ticket",
        "comment_on_follow_up_ticket",
        "external_id_associated_with_channelback",
    }
)


@attrs.frozen
class TicketRef:
    """Where Zendesk put one resource: the ticket and the comment it became.

    ``kind`` is the event's ``type_id`` (``comment_on_new_ticket``,
    ``comment_on_existing_ticket``, ``comment_on_follow_up_ticket``, ...); for a follow-up,
    ``follow_up_ticket_id`` is the new ticket. ``request_id`` is the push's.
    """

    ticket_id: int
    comment_id: int | None
    kind: str
    request_id: str
    follow_up_ticket_id: int | None = None


def _positive_int(value: object) -> int | None:
    # Zendesk's ids are integers; a JSON parser may hand a large one over as a float.
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    return None


class TicketLedger:
    """Pairs pushed resources with the tickets Zendesk's events name; share one between a
    `PushPool` (or `PushPipeline`) and a `ChannelIntegration`, in one process.

    Settings (keyword-only): ``max_entries`` (default 100,000): requests awaiting their event,
    and resources whose ticket is known, each kept at most this many (least recently used
    dropped first); ``keep`` (seconds, default 3,600): how long either is kept. Zendesk
    aggregates events before it sends them: a request forgotten before its event came is never
    answered (``ticket_of`` times out).

    Thread-safe: the integration may serve its events on another thread's loop than the one
    awaiting ``ticket_of``.
    """

    def __init__(self, *, max_entries: int = 100_000, keep: float = 3600.0) -> None:
        if type(max_entries) is not int or max_entries < 1:
            raise ConfigurationError(f"max_entries must be an int >= 1, got {max_entries!r}")
        if type(keep) not in (int, float) or not 0 < keep < math.inf:
            raise ConfigurationError(f"keep must be a finite number of seconds > 0, got {keep!r}")
        self._max = max_entries
        self._keep = float(keep)
        self._lock = threading.Lock()
        # request id -> (instance push id, when it is forgotten)
        self._sent: OrderedDict[str, tuple[str, float]] = OrderedDict()
        # (instance push id, external id) -> (where it went, when it is forgotten)
        self._found: OrderedDict[tuple[str, str], tuple[TicketRef, float]] = OrderedDict()
        self._waiters: dict[tuple[str, str], list[asyncio.Future[TicketRef]]] = {}

    def __repr__(self) -> str:
        return f"<TicketLedger awaiting={len(self._sent)} known={len(self._found)}>"

    # -- the pushing side --------------------------------------------------------------------

    def issue(self, instance_push_id: str) -> str:
        """A fresh request id for a push for this account, remembered as its."""
        request_id = uuid.uuid4().hex
        with self._lock:
            self._sent[request_id] = (instance_push_id, time.monotonic() + self._keep)
            self._trim(self._sent)
        return request_id

    # -- the integration's side --------------------------------------------------------------

    def created(self, data: Mapping[str, object], *, instance_push_id: str | None = None) -> int:
        """Read one ``resources_created_from_external_ids`` event's ``data``; returns how many
        resources it placed. An event for a request id this ledger did not issue (or forgot),
        or whose verified ``instance_push_id`` is not the request's, places none; so does a
        resource event of an unknown shape (logged)."""
        request_id = data.get("request_id")
        if not isinstance(request_id, str):
            return 0
        now = time.monotonic()
        with self._lock:
            sent = self._sent.get(request_id)
            if sent is None or sent[1] <= now:
                return 0
            owner = sent[0]
        if instance_push_id is not None and instance_push_id != owner:
            logger.warning("dropped a created-resources event whose instance is not its push's")
            return 0
        events = data.get("resource_events")
        placed: list[tuple[tuple[str, str], TicketRef]] = []
        for item in events if isinstance(events, list) else ():
            found = self._read(item, request_id)
            if found is None:
                logger.warning("skipped a resource event of an unknown shape")
                continue
            placed.append(((owner, found[0]), found[1]))
        ready: list[tuple[asyncio.Future[TicketRef], TicketRef]] = []
        with self._lock:
            for key, ref in placed:
                self._found[key] = (ref, now + self._keep)
                self._found.move_to_end(key)
                ready.extend((future, ref) for future in self._waiters.pop(key, ()))
            self._trim(self._found)
        for future, ref in ready:
            _resolve(future, ref)
        return len(placed)

    @staticmethod
    def _read(item: object, request_id: str) -> tuple[str, TicketRef] | None:
        if not isinstance(item, Mapping):
            return None
        external_id = item.get("external_id")
        kind = item.get("type_id")
        ticket_id = _positive_int(item.get("ticket_id"))
        if not isinstance(external_id, str) or not external_id or kind not in _KINDS:
            return None
        if ticket_id is None:
            return None
        return external_id, TicketRef(
            ticket_id=ticket_id,
            comment_id=_positive_int(item.get("comment_id")),
            kind=str(kind),
            request_id=request_id,
            follow_up_ticket_id=_positive_int(item.get("follow_up_ticket_id")),
        )

    # -- the caller's side -------------------------------------------------------------------

    def known(self, instance_push_id: str, external_id: str) -> TicketRef | None:
        """The ticket of a resource if an event named it already (and it is not forgotten)."""
        with self._lock:
            return self._known((instance_push_id, external_id), time.monotonic())

    async def ticket_of(
        self,
        instance_push_id: str,
        external_id: str,
        *,
        timeout: float = 60.0,  # noqa: ASYNC109 - the wait's end is TicketUnknownError, ours
    ) -> TicketRef:
        """The ticket and comment the resource became, once the integration received the event
        naming it; waits up to ``timeout`` seconds, then raises `TicketUnknownError`."""
        for name, value in (("instance_push_id", instance_push_id), ("external_id", external_id)):
            if not isinstance(value, str) or not value:
                raise ValidationError(name, "must be a non-empty string")
        if type(timeout) not in (int, float) or not 0 <= timeout < math.inf:
            raise ValidationError("timeout", f"must be a finite number of seconds >= 0: {timeout}")
        key = (instance_push_id, external_id)
        future: asyncio.Future[TicketRef] = asyncio.get_running_loop().create_future()
        with self._lock:
            ref = self._known(key, time.monotonic())
            if ref is not None:
                return ref
            self._waiters.setdefault(key, []).append(future)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise TicketUnknownError(instance_push_id, external_id, timeout) from None
        finally:
            with self._lock:
                waiting = self._waiters.get(key)
                if waiting is not None and future in waiting:
                    waiting.remove(future)
                    if not waiting:
                        del self._waiters[key]

    # -- bounds ------------------------------------------------------------------------------

    def _known(self, key: tuple[str, str], now: float) -> TicketRef | None:
        found = self._found.get(key)
        if found is None:
            return None
        if found[1] <= now:
            del self._found[key]
            return None
        self._found.move_to_end(key)
        return found[0]

    def _trim(self, entries: OrderedDict[_K, tuple[_V, float]]) -> None:
        """Forget the expired at the old end, then the least recently used beyond the count."""
        now = time.monotonic()
        while entries:
            _, (_, expires) = next(iter(entries.items()))
            if expires > now and len(entries) <= self._max:
                break
            entries.popitem(last=False)


def _resolve(future: asyncio.Future[TicketRef], ref: TicketRef) -> None:
    """Set a waiter's result on its own loop's thread (the event may come on another)."""

    def settle() -> None:
        if not future.done():
            future.set_result(ref)

    loop = future.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        settle()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(settle)
