"""`ZendeskEmulator`: an in-process stand-in for Zendesk's any_channel API, and its lifecycle.

This module owns starting and stopping the server, in the caller's event loop (`async with`) or
in a daemon thread with its own loop (`with`, for synchronous tests and benchmarks), and the
inspection API tests read back. Request handling lives in `_app`, bookkeeping in `_state`.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

from ._app import Service, build_app
from ._auth import Credentials
from ._faults import ChannelbackFault, Fault, FaultDice, Faults
from ._integrations import ZendeskSide
from ._ratelimit import FixedWindow
from ._records import AgentReply, EventCallback, Instance, RecordedRequest, ReportedError, Ticket
from ._state import AccountState

__all__ = ["DEFAULT_INSTANCE_PUSH_ID", "DEFAULT_TOKEN", "ZendeskEmulator"]

DEFAULT_INSTANCE_PUSH_ID = "emulator-instance"
DEFAULT_TOKEN = "emulator-token"  # noqa: S105 - a well-known test token, not a secret

# How long closing waits for requests in flight (some may be sleeping out a latency) before it
# cancels them: long enough for a graceful finish, short enough not to stall a test's teardown.
_SHUTDOWN_TIMEOUT = 0.25

_T = TypeVar("_T")


async def _stop_listening(server: asyncio.Server) -> None:
    """Close the listening sockets without leaking a connection accepted meanwhile.

    asyncio accepts a connection in one loop turn and makes its transport in a later one; made
    after `asyncio.Server.close`, the transport fails and its socket is left open for the
    garbage collector (CPython gh-109564), whose ResourceWarning then fails whichever test is
    running under warnings-as-errors. So the accepting stops first; a few turns let what was
    accepted become connections (closed with the others by the runner's cleanup); then close.
    """
    loop = asyncio.get_running_loop()
    for sock in server.sockets:
        loop.remove_reader(sock.fileno())
    for _ in range(3):
        await asyncio.sleep(0)
    server.close()


def _check_accounts(accounts: Mapping[str, Credentials]) -> dict[str, Credentials]:
    checked: dict[str, Credentials] = {}
    for instance_push_id, credentials in accounts.items():
        valid = isinstance(credentials, str) or (
            isinstance(credentials, tuple)
            and len(credentials) == 2
            and all(isinstance(part, str) for part in credentials)
        )
        if not isinstance(instance_push_id, str) or not valid:
            raise TypeError(
                "accounts maps an instance_push_id to a bearer token or a (username, password) "
                f"pair; got {instance_push_id!r} -> {type(credentials).__name__}"
            )
        checked[instance_push_id] = credentials
    return checked


class ZendeskEmulator:
    """A Zendesk account's any_channel endpoints, with scriptable faults and inspectable state.

    `accounts` maps each instance_push_id to its bearer token or (username, password); the
    default is one account, `DEFAULT_INSTANCE_PUSH_ID` with `DEFAULT_TOKEN`. `port=0` picks a
    free port. After a close the emulator can be started again, on the same port, with its state
    kept: a test can take Zendesk down and bring it back. `record_bodies=True` keeps each
    request's parsed JSON body in `requests` (`RecordedRequest.body`), for tests of the wire
    format; it is off by default, so a long run does not hold every body in memory.

    It plays Zendesk's side toward an integration too, over real HTTP from its own loop:
    `install` an integration through its admin UI, `agent_reply` through its channelback,
    `pull` (or `poll`) it, and tell it events (`uninstall`, `deactivate`, `activate`, and
    ``resources_created_from_external_ids`` after each push that created comments).
    """

    def __init__(
        self,
        *,
        accounts: Mapping[str, str | tuple[str, str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        max_resources_per_request: int = 100,
        max_body_bytes: int = 8 * 1024 * 1024,
        record_bodies: bool = False,
    ) -> None:
        if max_resources_per_request < 1:
            raise ValueError("max_resources_per_request must be at least 1")
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        #: The fault settings in force; replace or mutate them at any time.
        self.faults = faults if faults is not None else Faults()
        self._accounts = _check_accounts(
            accounts if accounts is not None else {DEFAULT_INSTANCE_PUSH_ID: DEFAULT_TOKEN}
        )
        self._host = host
        self._port = port
        self._max_resources = max_resources_per_request
        self._max_body_bytes = max_body_bytes
        self._state = AccountState(record_bodies=record_bodies)
        self._dice = FaultDice()
        self._limiter = FixedWindow()
        self._zendesk = ZendeskSide(
            state=self._state,
            accounts=self._accounts,
            dice=self._dice,
            get_faults=lambda: self.faults,
            base_url=lambda: self.base_url,
        )
        #: The loop serving requests (the caller's, or the thread's), set while it runs.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._base_url: str | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_stop: asyncio.Event | None = None

    # -- settings ------------------------------------------------------------------------------

    @property
    def max_resources_per_request(self) -> int:
        """The most external_resources one push may carry; more is a 413.

        More than 256 is a 400 whatever this is, as in Zendesk's schema for the push."""
        return self._max_resources

    @property
    def max_body_bytes(self) -> int:
        """The largest request body accepted; more is a 413."""
        return self._max_body_bytes

    @property
    def base_url(self) -> str:
        """The URL to give a client, e.g. `http://127.0.0.1:54321`; set once started."""
        if self._base_url is None:
            raise RuntimeError("the emulator has not been started")
        return self._base_url

    # -- running in the current event loop -------------------------------------------------

    async def start(self) -> None:
        """Start listening in the running event loop."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        service = Service(
            state=self._state,
            dice=self._dice,
            limiter=self._limiter,
            accounts=self._accounts,
            get_faults=lambda: self.faults,
            max_resources=self._max_resources,
            max_body_bytes=self._max_body_bytes,
            created=self._zendesk.created,
            returned=self._zendesk.returned,
        )
        runner = web.AppRunner(
            build_app(service),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        assert runner.server is not None  # set by setup
        loop = asyncio.get_running_loop()
        try:
            # Listening here rather than through a web.TCPSite: close must stop the accepting
            # before it closes the sockets (see `_stop_listening`).
            server = await loop.create_server(runner.server, self._host, self._port, backlog=128)
        except BaseException:
            await runner.cleanup()
            raise
        host, port = server.sockets[0].getsockname()[:2]
        # A restart reuses this port, so base_url stays valid across an outage.
        self._port = port
        self._base_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self._runner = runner
        self._server = server
        self._loop = loop

    async def close(self) -> None:
        """Stop listening; requests still in flight get a short grace period; calls on
        integrations under way (polls, event callbacks) are cancelled. Idempotent."""
        runner, self._runner = self._runner, None
        server, self._server = self._server, None
        if runner is not None:
            try:
                await self._zendesk.close()
            finally:
                self._loop = None
                if server is not None:
                    await _stop_listening(server)
                await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- thread mode ----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        """Run the emulator in a daemon thread with its own loop; return once it listens."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running in a thread")
        ready = threading.Event()
        failures: list[BaseException] = []
        thread = threading.Thread(
            target=lambda: asyncio.run(self._serve_in_thread(ready, failures)),
            name="zendesk-emulator",
            daemon=True,
        )
        thread.start()
        ready.wait()
        if failures or self._runner is None:
            thread.join()
            self._thread_loop = self._thread_stop = None
            raise failures[0] if failures else RuntimeError("the emulator thread failed to start")
        self._thread = thread
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        thread, loop, stop = self._thread, self._thread_loop, self._thread_stop
        if thread is None or loop is None or stop is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop_thread(stop), loop).result()
        thread.join()
        self._thread = self._thread_loop = self._thread_stop = None

    async def _serve_in_thread(self, ready: threading.Event, failures: list[BaseException]) -> None:
        self._thread_loop = asyncio.get_running_loop()
        self._thread_stop = stop = asyncio.Event()
        try:
            await self.start()
        except Exception as exc:  # noqa: BLE001 - re-raised by __enter__, in the caller's thread
            failures.append(exc)
            return
        finally:
            ready.set()
        await stop.wait()

    async def _stop_thread(self, stop: asyncio.Event) -> None:
        await self.close()
        stop.set()

    # -- control --------------------------------------------------------------------------------

    def script(self, *faults: Fault) -> None:
        """Queue faults for the next push requests, one per request, before any random fault."""
        self._dice.script(faults)

    def script_channelback(self, *faults: ChannelbackFault) -> None:
        """Queue faults for the next channelback tries (`agent_reply`), one per try."""
        self._dice.script_channelbacks(faults)

    def reset(self) -> None:
        """Forget tickets, imports, requests, reported errors, scripted faults, the rate
        window, installed instances (their tokens no longer push) and event callbacks; restart
        the random sequence from the seed. `faults` itself is kept."""
        self._zendesk.reset()
        self._state.reset()
        self._dice.reset()
        self._limiter.reset()

    # -- inspection (thread-safe snapshots) ------------------------------------------------------

    @property
    def tickets(self) -> list[Ticket]:
        """Every ticket, by id."""
        return self._state.tickets()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received on any endpoint since the last reset, in arrival order."""
        return self._state.requests()

    @property
    def reported_errors(self) -> list[ReportedError]:
        """Every accepted channelback/report_error call, in order."""
        return self._state.reported_errors()

    @property
    def peak_concurrent_requests(self) -> int:
        """The most requests (any endpoint) the emulator served at once since the last reset."""
        return self._state.peak_concurrent_requests()

    @property
    def rate_limited_count(self) -> int:
        """How many 429 answers were sent, injected or by the rate limit."""
        return self._state.count_status(429)

    def ticket_for(self, external_id: str) -> Ticket | None:
        """The ticket holding that resource, as its opener or a comment, or None."""
        return self._state.ticket_for(external_id)

    def import_count(self, external_id: str) -> int:
        """How many times that external_id was imported: more than 1 reveals a duplicate."""
        return self._state.import_count(external_id)

    @property
    def instances(self) -> list[Instance]:
        """Every instance installed with `install` and not uninstalled, in install order."""
        return self._zendesk.instances()

    def instance(self, instance_push_id: str) -> Instance | None:
        """What the emulator holds for an installed instance (metadata, state, ...), or None."""
        return self._zendesk.instance(instance_push_id)

    @property
    def event_callbacks(self) -> list[EventCallback]:
        """Every request made to an integration's event_callback_url, in order."""
        return self._zendesk.callbacks()

    # -- Zendesk's side: calls on an integration ----------------------------------------------

    async def _on_loop(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run work in the emulator's loop (a call on an integration is Zendesk's, and its
        tasks are the emulator's), awaited from the caller's loop."""
        loop = self._loop
        if loop is None or self._runner is None:
            work.close()
            raise RuntimeError("the emulator has not been started")
        if asyncio.get_running_loop() is loop:
            return await work
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, loop))

    async def install(
        self,
        manifest_url: str,
        *,
        subdomain: str = "emulated",
        name: str = "Emulated account",
        settings: Mapping[str, str] | None = None,
        locale: str = "en-US",
    ) -> Instance:
        """Install an integration as an administrator does: read its manifest, open its admin
        UI (Zendesk's form post, with a new instance push id and token), fill in ``name`` and
        ``settings`` (the form's field names) and save, as a browser would, and follow the page
        that posts back to Zendesk; then send it ``create_integration_instance``.

        Returns the new `Instance`: its token is one the emulator's push accepts for its
        instance push id, and its metadata what the admin UI posted back. Raises
        `IntegrationCallError` (an `AnyChannelError`) when the integration fails a step.
        """
        return await self._on_loop(
            self._zendesk.install(
                manifest_url,
                subdomain=subdomain,
                name=name,
                settings=dict(settings or {}),
                locale=locale,
            )
        )

    async def agent_reply(self, ticket_id: int, message: str) -> AgentReply:
        """An agent answers a ticket: POST the channelback (the metadata and state Zendesk
        holds, a fresh ``request_unique_identifier``, ``parent_id`` the ticket's latest
        external id, its ``thread_id``) and add the comment under the external id answered.

        A network error, a lost answer (`ChannelbackFault.TIMEOUT`, or slower than
        `Faults.channelback_timeout`) or a 5xx is repeated with the same
        ``request_unique_identifier``, up to `Faults.channelback_tries` tries. Raises
        `IntegrationCallError` for a refusal (4xx) or when the tries are used up."""
        return await self._on_loop(self._zendesk.agent_reply(ticket_id, message))

    async def pull(self, instance_push_id: str) -> dict[str, str]:
        """Pull an installed instance now (``metadata`` and ``state`` posted to its pull_url)
        and import what it answers as a push would; returns each resource's status code by
        external id. The answer's ``state`` is kept for the next pull and channelback."""
        return await self._on_loop(self._zendesk.pull(instance_push_id))

    async def poll(self, instance_push_id: str, *, every: float = 120.0) -> None:
        """Pull the instance every ``every`` seconds (Zendesk: about 2 minutes) from now on,
        until `stop_polling`, its uninstall, a reset or close. A failed pull is logged."""
        if type(every) not in (int, float) or not 0 < every < math.inf:
            raise ValueError(f"every must be a finite number of seconds > 0, got {every!r}")
        await self._on_loop(self._start_poll(instance_push_id, float(every)))

    async def _start_poll(self, instance_push_id: str, every: float) -> None:
        self._zendesk.poll(instance_push_id, every)

    async def stop_polling(self, instance_push_id: str) -> None:
        """Stop polling the instance (nothing if it is not polled)."""
        await self._on_loop(self._stop_poll(instance_push_id))

    async def _stop_poll(self, instance_push_id: str) -> None:
        self._zendesk.stop_polling(instance_push_id)

    async def uninstall(self, instance_push_id: str) -> None:
        """Remove an installed instance, as an administrator does: its token no longer pushes
        (401), and its integration gets ``destroy_integration_instance`` (awaited)."""
        await self._on_loop(self._zendesk.uninstall(instance_push_id))

    async def deactivate(self, instance_push_id: str, *, error: str | None = None) -> None:
        """Deactivate an instance: ``deactivate_integration_instance`` to its integration,
        ``deactivated_by`` "error" with ``deactivating_error`` when an error is given, else
        "api"."""
        await self._on_loop(self._zendesk.set_active(instance_push_id, False, error))

    async def activate(self, instance_push_id: str) -> None:
        """Activate an instance again: ``activate_integration_instance`` to its integration."""
        await self._on_loop(self._zendesk.set_active(instance_push_id, True, None))

    async def settle(self) -> None:
        """Wait until every event callback started so far reached its integration (or
        failed): what a test reads after a push is then complete."""
        await self._on_loop(self._zendesk.settle())
