"""`ZendeskEmulator`: an in-process stand-in for Zendesk's any_channel API, and its lifecycle.

This module owns starting and stopping the server, in the caller's event loop (`async with`) or
in a daemon thread with its own loop (`with`, for synchronous tests and benchmarks), and the
inspection API tests read back. Request handling lives in `_app`, bookkeeping in `_state`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Self

from aiohttp import web

from ._app import Service, build_app
from ._auth import Credentials
from ._faults import Fault, FaultDice, Faults
from ._ratelimit import FixedWindow
from ._records import RecordedRequest, ReportedError, Ticket
from ._state import AccountState

__all__ = ["DEFAULT_INSTANCE_PUSH_ID", "DEFAULT_TOKEN", "ZendeskEmulator"]

DEFAULT_INSTANCE_PUSH_ID = "emulator-instance"
DEFAULT_TOKEN = "emulator-token"  # noqa: S105 - a well-known test token, not a secret

# How long closing waits for requests in flight (some may be sleeping out a latency) before it
# cancels them: long enough for a graceful finish, short enough not to stall a test's teardown.
_SHUTDOWN_TIMEOUT = 0.25


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
        self._runner: web.AppRunner | None = None
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
        )
        runner = web.AppRunner(
            build_app(service),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        # A restart reuses this port, so base_url stays valid across an outage.
        self._port = port
        self._base_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self._runner = runner

    async def close(self) -> None:
        """Stop listening; requests still in flight get a short grace period. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
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

    def reset(self) -> None:
        """Forget tickets, imports, requests, reported errors, scripted faults and the rate
        window; restart the random sequence from the seed. `faults` itself is kept."""
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
