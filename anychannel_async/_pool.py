"""PushPool: push to many accounts (installs of the integration) from one process.

It owns one aiohttp session for every request, one `AccountPace` per host (Zendesk's rate
limit is the Zendesk account's, shared by every instance on it) while it is used or still
holds a pause or a budget's minute, one `AnyChannelClient` per
base URL while an account of it is open, and per instance push id a `PushPipeline` whose
client is the account's `_Member` (its own credentials on its host's client), opened on first
use and closed once idle. It bounds memory twice: ``max_pending`` for the whole pool, and
``max_pending_per_account`` for each account, so an account that is slow, unreachable or rate
limited fills only its own share.

It decides nothing about a resource's outcome: the pipelines do. It hears one thing from each
account's member: a refusal of its token (`push_until_refused`), after which further submits
for it fail at once until the accounts hold another token. It never shows a credential.

With an outbox, it owns one `Outbox` for every account (each row carries its instance push
id): it opens it first, hands each pipeline a `Share` of it, closes it last, and replays what
an earlier run left pending, each account's rows through that account's pipeline, in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Self, TypedDict, Unpack, cast

import aiohttp
import attrs
from yarl import URL

from ._accounts import Account, AccountStore
from ._client import AnyChannelClient, Pushed, RetryPolicy, no_cookies, push_until_refused
from ._credentials import Credentials
from ._errors import (
    AnyChannelError,
    AuthenticationError,
    ClosedError,
    ConfigurationError,
    InactiveAccountError,
    OutboxError,
    UnknownAccountError,
    copies,
)
from ._flow import FlowControl
from ._lifecycle import Latch, State, bind_loop
from ._metrics import NO_METRICS, Metrics
from ._models import ExternalResource, check_id
from ._outbox import Outbox, Share
from ._pipeline import PipelineStats, PushPipeline, flush_all
from ._ratelimit import AccountPace
from ._results import PushResult
from ._serde import Encoded
from ._settings import PipelineOptions, PipelineSettings, settings_of
from ._tickets import TicketLedger, TicketRef

__all__ = ["PoolStats", "PushPool"]

logger = logging.getLogger("anychannel_async.pool")


class PoolPipelineOptions(TypedDict, total=False):
    """The `PipelineSettings` a pool passes on to each of its pipelines as they are (the pool
    takes ``max_in_flight``, ``max_pending`` and ``outbox`` itself)."""

    max_batch_size: int
    max_batch_bytes: int
    max_latency: float
    max_attempts: int
    parent_timeout: float
    max_requests_per_minute: float | None
    close_timeout: float


@attrs.frozen
class PoolStats:
    """A snapshot of a pool's counters: totals since it opened, and each open pipeline's."""

    #: Resources accepted by ``submit`` (those failed at once for a refused token included).
    submitted: int
    #: Resources resolved with a result, by status code.
    resolved: Mapping[str, int]
    #: Resources failed, by exception class name.
    failed: Mapping[str, int]
    #: Push requests started, by every pipeline the pool opened (closed ones included).
    requests: int
    #: Resources accepted and not yet resolved, in the whole pool.
    pending: int
    #: The stats of each open pipeline, by instance push id (an idle one closed is not here).
    accounts: Mapping[str, PipelineStats]
    #: Resources an earlier run left pending in the outbox, pushed again by this pool (not in
    #: ``submitted``; their outcomes are in ``resolved`` and ``failed``).
    replayed: int = 0


class _Member:
    """One instance push id's pipeline and share of the pool, while it is open; and its
    pipeline's client: its own credentials on its host's client (a client per account was
    ~200 bytes more), sending nothing more once Zendesk refused them."""

    __slots__ = (
        "account",
        "admitted",
        "admitting",
        "busy",
        "credentials",
        "flow",
        "host",
        "pipeline",
        "pool",
        "refusal",
        "retired",
        "revision",
        "timer",
    )

    #: Set by the pool right after: its on_settled hook names this member.
    pipeline: PushPipeline

    def __init__(
        self, pool: PushPool, account: Account, host: AnyChannelClient, limit: int, revision: int
    ) -> None:
        self.pool = pool
        self.account = account
        #: The store's revision when the account was last read: another means read it again.
        self.revision = revision
        self.host = host
        self.credentials = Credentials(token=account.token, basic_auth=account.basic_auth)
        #: Zendesk's refusal of the credentials, once it came (see `push_until_refused`).
        self.refusal: AuthenticationError | None = None
        self.flow = FlowControl(limit)
        #: Submits under way plus futures not yet settled: idle when 0.
        self.busy = 0
        #: Submits inside its pipeline's submit (writing their outbox rows), and what its
        #: close, once replaced, waits on until they are in (`_close_member`).
        self.admitting = 0
        self.admitted: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        #: Set once the pool dropped it (idle, a new token, closing): never used again.
        self.retired = False

    def admission_ended(self) -> None:
        """A submit came out of its pipeline's submit: the close waiting on the last goes on."""
        self.admitting -= 1
        if not self.admitting and self.admitted is not None and not self.admitted.done():
            self.admitted.set_result(None)

    # The pipeline's on_settled hook is the member itself (a pool holds one member per busy
    # account, and a bound method kept is ~64 bytes more).
    def __call__(self, future: asyncio.Future[PushResult]) -> None:
        self.pool._settled(self, future)

    # -- its pipeline's client (`PushClient`) --

    @property
    def pace(self) -> AccountPace:
        return self.host.pace

    async def push_batch(
        self, instance_push_id: str, resources: Sequence[Encoded], *, request_id: str | None = None
    ) -> Pushed:
        return await push_until_refused(
            self,
            lambda: self.host.push_batch(
                instance_push_id, resources, request_id=request_id, credentials=self.credentials
            ),
        )

    def refused(self, error: AuthenticationError) -> None:
        self.pool._refused_token(self, error)


# Without max_open_accounts, idle pipelines beyond this many close, longest idle first.
_MAX_IDLE_OPEN = 1_000
# Accounts whose outbox rows are being queued at once when the pool opens: an account whose
# rows wait for room (its host down) holds one of these, not the others' replay.
_REPLAYS_AT_ONCE = 64


class _Retired(Exception):  # noqa: N818 - internal signal, never leaves the pool
    """A member was replaced while a submit waited for its room: look it up again."""


def _check_count(name: str, value: object) -> None:
    if type(value) is not int or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")


class PushPool:
    """Pushes resources to many accounts, each through a pipeline of its own.

    ``accounts`` is an open `AccountStore` or a plain ``Mapping[str, Account]``, by instance
    push id. ``fut = await pool.submit(instance_push_id, resource)`` returns the resource's
    future, as `PushPipeline.submit` does; ``await pool.push(...)`` submits and awaits.

    Settings (keyword-only):

    - ``max_in_flight``: push requests at once, per account (default 4).
    - ``max_pending``: resources accepted and not yet resolved in the whole pool, whatever
      the number of accounts (default 10,000); ``submit`` waits for room.
    - ``max_pending_per_account``: the same, per account (default 2,000): an account that is
      slow, unreachable or rate limited fills only this share, and submits for the others go
      on while the pool has room.
    - ``idle_timeout``: seconds an account's pipeline stays open with nothing pending
      (default 60); the next submit opens a new one.
    - ``max_open_accounts``: pipelines open at once (default None: as many as have work,
      at most ``max_pending``; idle ones beyond 1,000 close, longest idle first). Given, memory
      stays flat whatever the number of accounts (a busy pipeline holds ~2 KiB): beyond it,
      idle ones close and a submit for another account waits until one is idle. That costs
      throughput when more accounts than that are busy at once (each waits for another to
      empty), so give it where memory matters more, above the number of accounts busy at once.
    - ``outbox``: a SQLite file for every account (default None): ``submit`` returns once the
      resource is in it, each row with its instance push id; opening the pool (``async with``,
      or the first submit) replays what an earlier run left pending, each account's rows
      through its pipeline in order, before that account's new submits. Rows of an account
      the accounts no longer hold, or whose token Zendesk refuses, stay pending.
    - every other `PipelineSettings` field, as keywords or ``settings=``;
      ``max_requests_per_minute`` is each host's budget, shared by the accounts on it.
    - the client's ``timeout`` and ``retry``, and ``max_connections``: connections per host
      of the pool's one session (default 32).
    - ``metrics``: a `Metrics` (default None): each pipeline records labelled with its
      instance push id (bounded, see `Metrics`), and the outbox its rows.
    - ``tickets``: a `TicketLedger` shared with the `ChannelIntegration` whose event callback
      Zendesk calls (default None): each push carries a request id it issued, and
      ``ticket_of`` answers which ticket a resource became.

    Zendesk's rate limit is per host: the accounts of one host share one pace (a 429's
    ``Retry-After`` pauses them all, and them only). A token Zendesk refuses (401, 403) fails
    that account's resources with `AuthenticationError`; further submits for it get futures
    already failed with a copy of that error, without a request, until the accounts hold a
    different token for it (they are read again on each such submit). An account the accounts
    hold changed (a new token, another base URL) gets a new pipeline once its old one has
    settled what it held, so that one thread never goes out from two pipelines at once (which
    Zendesk can make two tickets of); a new name or new settings alone keep its pipeline.
    That wait is the old pipeline's close, bounded by ``close_timeout``: a request it cuts
    then fails with `OutcomeUnknownError`, and Zendesk may still import it beside the next.

    Use it as ``async with PushPool(...) as pool:``, or call ``await pool.close()``; it belongs
    to the event loop it was first used on (`EventLoopError` from another).
    """

    def __init__(
        self,
        accounts: AccountStore | Mapping[str, Account],
        *,
        max_in_flight: int = 4,
        max_pending: int = 10_000,
        max_pending_per_account: int = 2_000,
        idle_timeout: float = 60.0,
        max_open_accounts: int | None = None,
        outbox: str | os.PathLike[str] | None = None,
        settings: PipelineSettings | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 32,
        metrics: Metrics | None = None,
        tickets: TicketLedger | None = None,
        **options: Unpack[PoolPipelineOptions],
    ) -> None:
        if not isinstance(accounts, AccountStore | Mapping):
            raise ConfigurationError(
                f"accounts must be an AccountStore or a Mapping, got {type(accounts).__name__}"
            )
        _check_count("max_pending", max_pending)
        _check_count("max_pending_per_account", max_pending_per_account)
        if max_open_accounts is not None:
            _check_count("max_open_accounts", max_open_accounts)
        if type(idle_timeout) not in (int, float) or not 0 <= idle_timeout < math.inf:
            raise ConfigurationError(
                f"idle_timeout must be a finite number of seconds >= 0, got {idle_timeout!r}"
            )
        # The pool's own per-account bound is the pipeline's: the pipeline never waits.
        every = {**options, "max_in_flight": max_in_flight, "max_pending": max_pending_per_account}
        self._settings = settings_of(settings, cast(PipelineOptions, every))
        if outbox is not None:
            self._settings = attrs.evolve(self._settings, outbox=outbox)  # checks the path
        # One Outbox for every pipeline (its lock refuses a second writer of the file): the
        # pipelines get a Share of it, not the path.
        path = self._settings.outbox
        if metrics is not None and not isinstance(metrics, Metrics):
            raise ConfigurationError(f"metrics must be a Metrics, got {type(metrics).__name__}")
        self._metrics = metrics
        recorder = metrics.recorder() if metrics is not None else NO_METRICS
        self._outbox = Outbox(path, metrics=recorder) if path is not None else None
        self._settings = attrs.evolve(self._settings, outbox=None)
        self._outbox_opening: asyncio.Task[None] | None = None
        self._outbox_open = False
        self._replayer: asyncio.Task[None] | None = None
        # Accounts whose rows up to seq _replay_through an earlier run left pending, not yet
        # handed to a pipeline; and those that were (a refused token's go back, see _settled).
        self._to_replay: set[str] = set()
        self._replays: set[str] = set()
        # The close of such an account's pipeline taken out of use, by instance push id: its
        # replay may end there with rows not read, which the next pipeline replays once it
        # is done (never two pipelines at one row), so the next waits to open until then.
        self._handovers: dict[str, asyncio.Task[None]] = {}
        self._replay_through = 0
        self._replayed = 0
        # The client's own checks of its settings, once, here rather than at the first submit.
        AnyChannelClient(
            token="check",  # noqa: S106 - never sent: this client is never opened
            base_url="http://127.0.0.1",
            timeout=timeout,
            retry=retry,
            max_connections=max_connections,
        )
        self._accounts = accounts
        # The store whose revision every submit compares (a Mapping has none: read on open).
        self._store = accounts if isinstance(accounts, AccountStore) else None
        if tickets is not None and not isinstance(tickets, TicketLedger):
            raise ConfigurationError(
                f"tickets must be a TicketLedger, got {type(tickets).__name__}"
            )
        self._tickets = tickets
        self._timeout = timeout
        # One policy (frozen) for every account's client, not a default one each.
        self._retry = retry if retry is not None else RetryPolicy()
        self._max_connections = max_connections
        self._max_open = max_open_accounts
        # Idle pipelines kept open beyond this many are closed, longest idle first.
        self._max_idle_open = _MAX_IDLE_OPEN if max_open_accounts is None else max_open_accounts
        # Submits (and replays) waiting for a pipeline to open, max_open_accounts being open.
        self._openers: collections.deque[asyncio.Future[None]] = collections.deque()
        self._max_pending_per_account = max_pending_per_account
        self._idle_timeout = float(idle_timeout)
        self._flow = FlowControl(max_pending)
        self._members: dict[str, _Member] = {}
        # The open members with nothing pending, longest idle first (dicts keep insertion
        # order): closing beyond the cap takes from the front, without scanning every member.
        self._idle_members: dict[str, _Member] = {}
        self._paces: dict[str, AccountPace] = {}
        # Clients open per host (its pace is forgotten after the last: `_forget_pace`), and
        # the timer of each pace kept past its last client until it is quiet.
        self._pace_users: collections.Counter[str] = collections.Counter()
        self._pace_timers: dict[str, asyncio.TimerHandle] = {}
        # A client per base URL (its host's pace, the pool's session), shared by its accounts
        # whose pipelines are not closed yet (counted), and dropped with the last of them:
        # Zendesk gives each account a host of its own, and a pool going through many would
        # keep a client (~1 KiB, the token of an account maybe gone) of each until it closes.
        self._clients: dict[str, AnyChannelClient] = {}
        self._client_users: collections.Counter[str] = collections.Counter()
        # Tokens Zendesk refused, by instance push id: the account as refused, and the error.
        self._refusals: dict[str, tuple[Account, AuthenticationError]] = {}
        # The caller's future of each resource a pipeline holds, by the pipeline's future.
        self._outers: dict[asyncio.Future[PushResult], asyncio.Future[PushResult]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._state = State.OPEN
        self._closed = Latch()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._submitted = 0
        self._requests_closed = 0
        self._resolved: collections.Counter[str] = collections.Counter()
        self._failed: collections.Counter[str] = collections.Counter()

    def __repr__(self) -> str:
        return (
            f"<PushPool state={self._state.value} accounts_open={len(self._members)}"
            f" pending={self._flow.used}>"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._check_open()
        if self._outbox is not None:
            try:
                await self._open_outbox()
            except BaseException:
                await self.close()
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._state is not State.OPEN:
            raise ClosedError("this PushPool is closed")
        self._bind_loop()

    def _bind_loop(self) -> None:
        self._loop = bind_loop(self._loop, "PushPool")

    async def flush(self) -> None:
        """Wait until every resource submitted so far resolved (and every row replayed from
        the outbox): those of the pipelines closing apart (an account moved, removed or idle)
        too, which their close resolves (or fails, after ``close_timeout``)."""
        self._bind_loop()
        if self._replayer is not None:
            await asyncio.wait([self._replayer])  # not cancelled with it when close() stops it
        closing = list(self._closing)
        await flush_all([member.pipeline for member in self._members.values()])
        if closing:
            await asyncio.wait(closing)  # not cancelled with this flush: each its own

    async def close(self, *, flush: bool = True) -> None:
        """Close every pipeline (each as `PushPipeline.close`, with ``flush``), then the
        session. Submits waiting for room fail with `ClosedError`. Idempotent."""
        self._bind_loop()
        if self._state is not State.OPEN:
            await self._closed.wait()
            return
        self._state = State.CLOSING
        self._flow.wake_all(lambda: ClosedError("this PushPool is closed"))
        while self._openers:
            opener = self._openers.popleft()
            if not opener.done():
                opener.set_exception(ClosedError("this PushPool is closed"))
        if self._replayer is not None:
            self._replayer.cancel()  # the rows it did not queue stay pending
        members = list(self._members.values())
        self._members.clear()
        for member in members:
            member.flow.wake_all(lambda: ClosedError("this PushPool is closed"))
            self._drop(member)
        loop = asyncio.get_running_loop()
        closes = [loop.create_task(self._close_member(m, flush=flush)) for m in members]
        closes.extend(self._closing)
        try:
            # Not gather: cancelled, it would cancel these tasks before their first step, and
            # a task cancelled then never runs its body: its pipeline would stay open, its
            # futures pending, and a second close would return at once. By the time a
            # cancelled close wakes up here, every one of them has started.
            if closes:
                await asyncio.wait(closes)
        finally:
            try:
                # This close was cancelled: each pipeline's close is cut short as a cancelled
                # PushPipeline.close is (requests in flight cut, nothing left pending).
                for task in closes:
                    task.cancel()
                if closes:
                    await asyncio.wait(closes)
                await self._close_outbox()  # last: the pipelines wrote their outcomes to it
            finally:
                # Even if this close was cancelled in the waits above (its one cancel spent
                # there): no connection, nor client, left open.
                try:
                    for timer in self._pace_timers.values():
                        timer.cancel()
                    for client in self._clients.values():
                        await client.close()  # the session is the pool's: closed next
                    if self._session is not None:
                        await self._session.close()
                finally:
                    self._state = State.CLOSED
                    self._closed.set()

    # -- admission ---------------------------------------------------------------------------

    async def submit(
        self, instance_push_id: str, resource: ExternalResource
    ) -> asyncio.Future[PushResult]:
        """Accept a resource for an account; returns the future of its `PushResult`.

        Raises `ValidationError` when ``instance_push_id`` is not a string of 1..255
        characters, `UnknownAccountError` at once when the accounts hold no account for it,
        `ClosedError` once the pool is closing, and what `PushPipeline.submit` raises. Waits
        while the account's share or the pool is full (or, with ``max_open_accounts``, for a
        place to open the account's pipeline; or, the account changed while its pipeline held
        resources, until that pipeline has closed: at most ``close_timeout``).
        """
        if self._state is not State.OPEN or asyncio.get_running_loop() is not self._loop:
            self._check_open()
        if self._outbox is not None and not self._outbox_open:
            await self._open_outbox()
        while True:
            # An open member's id was checked when it opened; checked here only if not found
            # (and a list, say, is never looked up: a dict would raise TypeError).
            member = self._members.get(instance_push_id) if type(instance_push_id) is str else None
            if member is None:
                # Not a KeyError of an unknown account (nor a TypeError of a dict, for a
                # list): the call is wrong, and no account can have such an id.
                check_id("instance_push_id", instance_push_id)
            if (
                member is None
                or member.revision != self._revision()
                or instance_push_id in self._refusals
            ):
                found = await self._member(instance_push_id)
                if isinstance(found, AuthenticationError):
                    return self._refused(found, instance_push_id)
                member = found
            # From here to the future, nothing may await before the member counts as busy: an
            # idle timer firing meanwhile would close its pipeline under this submit.
            self._hold(member)
            try:
                if self._outbox is not None:
                    await self._wait_replayed(member)  # the account's leftovers go first
                if not self._took_room(member):
                    await self._room(member)
                member.admitting += 1
                try:
                    inner = await member.pipeline.submit(resource)
                except BaseException:
                    self._give_room(member)
                    raise
                finally:
                    member.admission_ended()
            except _Retired:
                self._settled(member, None)
                continue  # replaced (a new token) while this submit waited: use the new one
            except BaseException:
                self._settled(member, None)
                raise
            break
        self._submitted += 1
        # The caller gets a future of its own: cancelling it lets go of the answer, not of
        # the resource, whose units the pool holds until its pipeline has settled it (the
        # pipeline's on_settled hook, `_settled`, tells the caller's future then).
        assert self._loop is not None
        outer: asyncio.Future[PushResult] = self._loop.create_future()
        if inner.done():  # settled as it was admitted (refused): the hook found no answer yet
            _tell(outer, inner)
        else:
            self._outers[inner] = outer
        return outer

    async def push(self, instance_push_id: str, resource: ExternalResource) -> PushResult:
        """Submit a resource for an account and wait for its result."""
        return await (await self.submit(instance_push_id, resource))

    async def ticket_of(
        self,
        instance_push_id: str,
        external_id: str,
        *,
        timeout: float = 60.0,  # noqa: ASYNC109 - the wait's end is TicketUnknownError, ours
    ) -> TicketRef:
        """The ticket and comment a resource pushed by this pool became, as Zendesk's
        ``resources_created_from_external_ids`` event names them; waits up to ``timeout``
        seconds, then raises `TicketUnknownError`. Only with ``tickets=`` a `TicketLedger` that
        the integration's event callback, served in this process, is given too."""
        if self._tickets is None:
            raise ConfigurationError("ticket_of needs PushPool(..., tickets=TicketLedger())")
        return await self._tickets.ticket_of(instance_push_id, external_id, timeout=timeout)

    def _took_room(self, member: _Member) -> bool:
        """`_room` when nothing needs a wait: both units free, the pool open and the member
        in use. False means: go through `_room`, which waits, or says why not."""
        if self._state is State.OPEN and not member.retired and member.flow.try_acquire():
            if self._flow.try_acquire():
                return True
            member.flow.release()
        return False

    async def _room(self, member: _Member) -> None:
        """Take the account's unit, then the pool's (never the pool's while waiting for the
        account's: a full account must not hold the others' room), for a submit or a row
        replayed from the outbox. `ClosedError` once the pool is closing, `_Retired` once the
        member was replaced: nothing is held then."""
        if not member.flow.try_acquire():
            await member.flow.acquire()
        try:
            if not self._flow.try_acquire():
                await self._flow.acquire()
        except BaseException:
            member.flow.release()
            raise
        if self._state is not State.OPEN:
            self._give_room(member)
            raise ClosedError("this PushPool is closed")
        if member.retired:
            self._give_room(member)
            raise _Retired

    def _give_room(self, member: _Member) -> None:
        """Give back a resource's units: the account's and the pool's."""
        member.flow.release()
        self._flow.release()

    def _settled(self, member: _Member, future: asyncio.Future[PushResult] | None) -> None:
        """A submit or replayed row ended: its pipeline let go of the resource (its
        on_settled hook: units back, tallied) or the submit raised (no future)."""
        member.busy -= 1
        if future is not None:
            self._give_room(member)
            outer = self._outers.pop(future, None)  # None: a replayed row, or told by submit
            if outer is not None:
                _tell(outer, future)
            if not future.cancelled():
                error = future.exception()
                if error is None:
                    self._resolved[future.result().code] += 1  # a str: named at the snapshot
                else:
                    self._failed[type(error).__name__] += 1
        if member.busy == 0 and not member.retired and self._loop is not None:
            if self._openers and self._state is State.OPEN:
                self._retire(member)  # its place goes to an account waiting to open
                return
            member.timer = self._loop.call_later(self._idle_timeout, self._idle, member)
            self._idle_members[member.account.instance_push_id] = member

    def _refused_token(self, member: _Member, error: AuthenticationError) -> None:
        """Zendesk refused a member's token (its client saw the 401/403, and sends nothing
        more with it): further submits fail at once, until the accounts hold another."""
        if member.retired:
            return  # a token already replaced
        ipid = member.account.instance_push_id
        self._refusals.setdefault(ipid, (member.account, error))
        if ipid in self._replays:
            # Its rows stay pending: the pipeline of the next token replays them.
            self._to_replay.add(ipid)

    def _refused(
        self, error: AuthenticationError, instance_push_id: str
    ) -> asyncio.Future[PushResult]:
        """A future already failed with a copy of a refusal: nothing is sent."""
        assert self._loop is not None
        future: asyncio.Future[PushResult] = self._loop.create_future()
        future.set_exception(copies(error, 1)[0])
        self._submitted += 1
        self._failed[type(error).__name__] += 1
        if self._metrics is not None:  # no pipeline saw it: counted here
            self._metrics.recorder(instance_push_id).outcome(type(error).__name__)
        return future

    # -- accounts ----------------------------------------------------------------------------

    async def _lookup(self, instance_push_id: str) -> Account:
        accounts = self._accounts
        if isinstance(accounts, AccountStore):
            account = await accounts.get(instance_push_id)
        else:
            account = accounts.get(instance_push_id)
        if not isinstance(account, Account):
            raise UnknownAccountError(instance_push_id)
        if account.instance_push_id != instance_push_id:
            # A Mapping filing an account under another id (a store's rows cannot): pushing
            # it would send this id's resources to that instance.
            raise ConfigurationError(
                f"accounts hold under {instance_push_id!r} the account of"
                f" {account.instance_push_id!r}"
            )
        if not account.active:  # Zendesk deactivated the install: its token is of no use
            raise InactiveAccountError(instance_push_id)
        return account

    def _revision(self) -> int:
        return self._store.revision if self._store is not None else 0

    async def _member(self, instance_push_id: str) -> _Member | AuthenticationError:
        """The account's member, opened if needed; or the refusal still in force for it (the
        account read again: a new token lifts it, a removal closes its open pipeline)."""
        revision = self._revision()
        try:
            account = await self._lookup(instance_push_id)
        except UnknownAccountError:
            gone = self._members.get(instance_push_id)
            if gone is not None and self._state is State.OPEN:
                self._retire(gone)  # what it holds still settles; nothing new goes to it
            raise
        self._check_open()
        refusal = self._refusals.get(instance_push_id)
        if refusal is not None:
            refused, error = refusal
            # Its name or settings changed (an admin page saved) lift nothing.
            if _sends_as(account) == _sends_as(refused):
                return error
            del self._refusals[instance_push_id]
        member = self._members.get(instance_push_id)
        if member is not None and member.account != account:
            if _sends_as(account) == _sends_as(member.account):
                member.account = account  # its name or settings: the same pipeline goes on
            else:
                # A new token, another host: a fresh client, and a pipeline that starts once
                # this one is done (`_retire`).
                self._retire(member)
                member = None
        if member is None:
            handover = self._handovers.get(instance_push_id)
            if handover is not None:
                await asyncio.wait([handover])  # not cancelled with this submit
                return await self._member(instance_push_id)  # read again: time passed
            self._close_idle_beyond(self._max_idle_open - 1)
            if self._max_open is not None and len(self._members) >= self._max_open:
                await self._wait_to_open()
                return await self._member(instance_push_id)  # read again: time passed
            member = self._open(account, revision)
            self._members[instance_push_id] = member
        member.revision = revision
        return member

    async def _wait_to_open(self) -> None:
        """Until an open pipeline goes idle and closes (`_settled`, `_retire`)."""
        assert self._loop is not None
        opener = self._loop.create_future()
        self._openers.append(opener)
        try:
            await opener
        except asyncio.CancelledError:
            if opener.done() and not opener.cancelled() and opener.exception() is None:
                self._let_one_open()  # woken as it was cancelled: the next one goes
            else:
                with contextlib.suppress(ValueError):
                    self._openers.remove(opener)
            raise
        self._check_open()

    def _let_one_open(self) -> None:
        while self._openers:
            opener = self._openers.popleft()
            if not opener.done():
                opener.set_result(None)
                return

    def _open(self, account: Account, revision: int) -> _Member:
        if self._session is None:
            # No total limit: a host that hangs must not take the connections of the others.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0, limit_per_host=self._max_connections, keepalive_timeout=30.0
                ),
                cookie_jar=no_cookies(),
            )
        client = self._clients.get(account.base_url)
        if client is None:
            host = _host_key(account.base_url)
            pace = self._paces.get(host)
            if pace is None:
                # Requests to a host at once: its connections. Senders beyond wait their turn
                # with their batches open, so a busy host gets fuller requests, not a queue of
                # small ones cut early.
                pace = self._paces[host] = AccountPace(max_in_flight=self._max_connections)
            # One client per base URL, shared by its accounts: each push carries its own
            # account's credentials (the client's own, the first account's, are never sent).
            client = self._clients[account.base_url] = AnyChannelClient(
                token=account.token,
                basic_auth=account.basic_auth,
                base_url=account.base_url,
                session=self._session,
                timeout=self._timeout,
                retry=self._retry,
                pace=pace,
            )
            self._pace_users[host] += 1
        member = _Member(self, account, client, self._max_pending_per_account, revision)
        member.pipeline = PushPipeline(
            member,
            account.instance_push_id,
            settings=self._settings,
            shared_outbox=self._share(member),
            metrics=self._metrics,
            tickets=self._tickets,
            # The pool's units and tallies, without a callback per future.
            on_settled=member,
        )
        self._client_users[account.base_url] += 1  # until its pipeline closed: _close_member
        return member

    # -- the outbox --------------------------------------------------------------------------

    async def _open_outbox(self) -> None:
        """Open the outbox (once; every caller awaits the same opening, and gets its own copy
        of an `OutboxError`) and start replaying what it holds pending."""
        if self._outbox_opening is None:
            self._outbox_opening = asyncio.get_running_loop().create_task(self._read_outbox())
        try:
            await asyncio.shield(self._outbox_opening)
        except OutboxError as exc:
            raise copies(exc, 1)[0] from None
        self._check_open()

    async def _read_outbox(self) -> None:
        assert self._outbox is not None
        await self._outbox.open()
        leftovers, self._replay_through = await self._outbox.leftovers()
        self._to_replay.update(ipid for ipid, _ in leftovers)
        self._outbox_open = True
        if leftovers and self._state is State.OPEN:
            self._replayer = asyncio.get_running_loop().create_task(self._replay_all(leftovers))

    async def _close_outbox(self) -> None:
        try:
            if self._outbox_opening is not None:
                await asyncio.gather(self._outbox_opening, return_exceptions=True)
            if self._replayer is not None:
                await asyncio.gather(self._replayer, return_exceptions=True)
        finally:
            # Even if cancelled in those waits: its file, and its lock, are let go (another
            # pool, the next run, may open it).
            if self._outbox is not None:
                await self._outbox.close()

    def _share(self, member: _Member) -> Share | None:
        """The outbox for a member's new pipeline: the account's leftovers go to the first one
        only (two pipelines replaying one row at once could race it into two tickets)."""
        if self._outbox is None:
            return None
        instance_push_id = member.account.instance_push_id
        through = 0
        if instance_push_id in self._to_replay:
            self._to_replay.discard(instance_push_id)
            self._replays.add(instance_push_id)
            through = self._replay_through
        return Share(self._outbox, through, functools.partial(self._admit_replayed, member))

    async def _replay_all(self, leftovers: list[tuple[str, int]]) -> None:
        """Replay every account's leftovers, oldest first, a bounded number at once; an account
        a submit opened first replays there."""
        todo = iter(leftovers)

        async def work() -> None:
            for instance_push_id, rows in todo:
                await self._replay(instance_push_id, rows)

        await asyncio.gather(*(work() for _ in range(min(_REPLAYS_AT_ONCE, len(leftovers)))))

    async def _replay(self, instance_push_id: str, rows: int) -> None:
        if instance_push_id not in self._to_replay or self._state is not State.OPEN:
            return
        try:
            found = await self._member(instance_push_id)
        except UnknownAccountError:
            logger.warning(
                "outbox: %d rows of instance push id %s stay pending: no such account",
                rows,
                instance_push_id,
            )
            return
        except AnyChannelError as exc:  # the pool closing, the store failing
            logger.warning("outbox: the rows of %s stay pending: %s", instance_push_id, exc)
            return
        if isinstance(found, AuthenticationError):
            return  # refused while the replay waited: the next token's pipeline replays them
        self._hold(found)  # no idle close between the rows read
        try:
            await self._wait_replayed(found)
        except (_Retired, AnyChannelError):
            pass  # closed or replaced meanwhile: the rows not queued stay pending
        finally:
            self._settled(found, None)

    async def _wait_replayed(self, member: _Member) -> None:
        """Until the account's leftovers are queued (they go before its new submits); started
        here if nobody did. `_Retired` if its pipeline was replaced meanwhile."""
        try:
            await member.pipeline.replayed()
        except ClosedError:
            if member.retired and self._state is State.OPEN:
                raise _Retired from None
            raise

    async def _admit_replayed(
        self, member: _Member, admit: Callable[[], Awaitable[asyncio.Future[PushResult]]]
    ) -> asyncio.Future[PushResult]:
        """A row replayed by member's pipeline: it takes the member's and the pool's room as a
        submit does, and its outcome counts in the pool's stats. `ClosedError` stops the replay
        (the rows not admitted stay pending).

        The member, not the account's member now: a replaced pipeline's replay may still read
        rows before its close begins, and the successor (which replays them itself) would hold
        room its predecessor's on_settled never gives back."""
        if member.retired or self._state is not State.OPEN:
            raise ClosedError("this PushPool is closed")
        instance_push_id = member.account.instance_push_id
        if instance_push_id in self._refusals:
            logger.warning(
                "outbox: the token of %s was refused: its rows stay pending", instance_push_id
            )
            raise ClosedError("its token was refused")
        self._hold(member)
        try:
            if not self._took_room(member):
                await self._room(member)
            try:
                inner = await admit()
            except BaseException:
                self._give_room(member)
                raise
        except _Retired:
            self._settled(member, None)
            raise ClosedError("this pipeline was replaced") from None
        except BaseException:
            self._settled(member, None)
            raise
        self._replayed += 1
        return inner

    # -- idle pipelines ----------------------------------------------------------------------

    def _idle(self, member: _Member) -> None:
        member.timer = None
        if member.busy == 0 and not member.retired and self._state is State.OPEN:
            self._retire(member)

    def _close_idle_beyond(self, limit: int) -> None:
        """Close idle pipelines, longest idle first, while more than ``limit`` are open: a
        pool touching many accounts within ``idle_timeout`` keeps its memory bounded."""
        while len(self._members) > limit and self._idle_members:
            self._retire(next(iter(self._idle_members.values())))

    def _hold(self, member: _Member) -> None:
        """One more submit or replay under way for member: no idle close until it settles."""
        member.busy += 1
        self._unidle(member)
        if member.timer is not None:
            member.timer.cancel()
            member.timer = None

    def _unidle(self, member: _Member) -> None:
        ipid = member.account.instance_push_id
        if self._idle_members.get(ipid) is member:
            del self._idle_members[ipid]

    def _drop(self, member: _Member) -> None:
        member.retired = True
        self._unidle(member)
        if member.timer is not None:
            member.timer.cancel()
            member.timer = None

    def _retire(self, member: _Member) -> None:
        """Take a member out of use and close it in a task the pool owns (awaited by close).
        Submits waiting for its room go to its successor."""
        self._drop(member)
        member.flow.wake_all(_Retired)
        if self._members.get(member.account.instance_push_id) is member:
            del self._members[member.account.instance_push_id]
            self._let_one_open()
        task = asyncio.get_running_loop().create_task(self._close_member(member, flush=True))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        if member.busy or member.account.instance_push_id in self._replays:
            # Its successor opens once it is done: two pipelines of one account at once would
            # push one thread from both, which Zendesk can make two tickets of (and rows of
            # the outbox it had not replayed yet go to the successor, before new submits).
            self._handovers[member.account.instance_push_id] = task

    async def _close_member(self, member: _Member, *, flush: bool) -> None:
        try:
            try:
                if member.admitting:
                    # Submits writing their outbox rows when it was replaced (another submit
                    # found the account changed): in first, then flushed with the rest.
                    # Refused by a pipeline closing, each failed with ClosedError in an open
                    # pool, its row left pending for the next run to push again.
                    assert self._loop is not None
                    member.admitted = self._loop.create_future()
                    await member.admitted
            finally:
                # Cancelled in that wait (the pool's close was): it still closes, within
                # close_timeout, rather than stay open with its resources pending.
                await member.pipeline.close(flush=flush)
        except Exception:  # a bug: logged, and the pool still closes the others
            logger.exception("closing the pipeline of %s failed", member.account.instance_push_id)
        finally:
            ipid = member.account.instance_push_id
            if self._handovers.get(ipid) is asyncio.current_task():
                del self._handovers[ipid]
                if self._state is State.OPEN and ipid in self._replays:
                    self._to_replay.add(ipid)  # what is still pending: the next replays it
            self._requests_closed += member.pipeline.stats.requests
            url = member.account.base_url
            self._client_users[url] -= 1
            if not self._client_users[url]:  # the last account of its base URL closed
                del self._client_users[url]
                del self._clients[url]
                self._release_pace(_host_key(url))
                await member.host.close()  # the session is the pool's: nothing awaits

    def _release_pace(self, host: str) -> None:
        """A client of host closed: with the host's last, its pace may go."""
        self._pace_users[host] -= 1
        if not self._pace_users[host]:
            del self._pace_users[host]
            self._forget_pace(host)

    def _forget_pace(self, host: str) -> None:
        """Forget a host's pace once no client of the host is open and the pace is quiet.

        Zendesk gives each account a host of its own: a pool keeping every pace it made would
        grow for as long as it runs. But a pace still paused by a 429's Retry-After, or
        within the minute of a budget's last request (`AccountPace.quiet_in`), is kept until
        it is quiet (a timer asks again then): forgotten, the host's next account would push
        straight into the pause, or burst into a window already spent.
        """
        timer = self._pace_timers.pop(host, None)
        if timer is not None:
            timer.cancel()
        if host in self._pace_users or self._state is not State.OPEN:
            return  # in use again (its last client's close asks again), or the pool closing
        wait = self._paces[host].quiet_in()
        if wait <= 0:
            del self._paces[host]
        elif wait < math.inf:
            assert self._loop is not None
            self._pace_timers[host] = self._loop.call_later(wait, self._forget_pace, host)
        # inf: a request still under way with no client open; the host's next client's
        # close asks again.

    # -- stats -------------------------------------------------------------------------------

    @property
    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters."""
        accounts = {ipid: member.pipeline.stats for ipid, member in self._members.items()}
        return PoolStats(
            submitted=self._submitted,
            resolved={str(code): count for code, count in self._resolved.items()},
            failed=dict(self._failed),
            requests=self._requests_closed + sum(s.requests for s in accounts.values()),
            pending=self._flow.used,
            accounts=accounts,
            replayed=self._replayed,
        )


def _sends_as(account: Account) -> tuple[object, ...]:
    """What a request for the account is sent with, to where: a change of anything else (its
    name, its settings) needs no new client, and lifts no refusal."""
    return (account.token, account.basic_auth, account.base_url)


def _host_key(base_url: str) -> str:
    """The host whose pace a base URL's requests share: Zendesk limits requests per account,
    its host (scheme, host and port), whatever the path."""
    return str(URL(base_url).origin())


def _tell(outer: asyncio.Future[PushResult], inner: asyncio.Future[PushResult]) -> None:
    """The caller's future learns what its pipeline's future says (unless it let go of it)."""
    if outer.done():
        return
    if inner.cancelled():
        outer.cancel()
    elif (error := inner.exception()) is not None:
        outer.set_exception(error)
    else:
        outer.set_result(inner.result())
