"""AnyChannelClient: credentials, the HTTP boundary to Zendesk, and retries.

This is the one place that talks HTTP. aiohttp's exceptions are mapped to the `_errors` tree
here and nowhere else. The client knows nothing of pipelines: it sends one request per call.

Why retrying a push is safe: Zendesk answers ``already_imported`` for a resource whose
external_id it already holds, and creates nothing. So when a push's answer is lost (timeout,
dropped connection, 5xx after processing), sending the same resources again cannot make a
duplicate ticket or comment; the resources Zendesk took the first time come back
``already_imported``, which counts as imported. validate_token and report_error change nothing
that a repeat could double either.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self

import aiohttp
import attrs
import backoff
from yarl import URL

from ._credentials import Credentials, base_url_of, route_of
from ._errors import (
    AnyChannelError,
    AuthenticationError,
    ClosedError,
    ConfigurationError,
    RateLimitedError,
    RedirectError,
    RequestRejectedError,
    TransportError,
)
from ._lifecycle import bind_loop
from ._models import ExternalResource, as_resources, check_id, check_request_id
from ._ratelimit import AccountPace, parse_retry_after
from ._results import PushResult
from ._serde import Encoded, decode_push_results, encode_push_body, encode_resource
from ._version import __version__

__all__ = [
    "AnyChannelClient",
    "PushClient",
    "Pushed",
    "Refusable",
    "RefusalStopClient",
    "RetryPolicy",
    "no_cookies",
    "push_until_refused",
]

logger = logging.getLogger("anychannel_async")

_USER_AGENT = f"anychannel-async/{__version__}"
_PUSH = "/api/v2/any_channel/push"
_VALIDATE = "/api/v2/any_channel/validate_token"
_REPORT_ERROR = "/api/v2/any_channel/channelback/report_error"


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a request is retried after a connection error, a timeout, a 5xx or a 429.

    Waits grow exponentially with full jitter: before try ``n`` a random time between 0 and
    ``min(max_delay, initial_delay * 2 ** (n - 2))``. A 429 always waits at least its
    ``Retry-After``, for every request to the account. 401, 403 and other 4xx are never retried.
    ``RetryPolicy(initial_delay=0)`` retries at once, which keeps tests of retry paths fast.

    **No retry races its own first try.** Zendesk decides a push's outcome while it processes
    it, which may outlast the client's ``timeout``; a second try arriving meanwhile would not
    see the first one's tickets and could open a second ticket for the same conversation. So a
    try that timed out ends only ``timeout`` seconds later: neither the next try nor the
    pipeline's next push of the same resources starts until twice ``timeout`` after the first
    try was sent. A first try that Zendesk takes up to twice ``timeout`` to decide has then
    decided, and the next try reads ``already_imported``; set ``timeout`` to at least half
    Zendesk's slowest answer. Other failures (a refused connection, a 5xx, an answer that
    arrived) come after Zendesk decided, and are retried after the jittered wait alone.
    """

    #: Tries in all, the first included (default 5).
    max_tries: int = 5
    #: Seconds after the first try past which no new try starts (default 60).
    max_time: float = 60.0
    #: Seconds, the scale of the first wait (default 0.5).
    initial_delay: float = 0.5
    #: Seconds, the cap on one wait before jitter (default 30).
    max_delay: float = 30.0

    def __attrs_post_init__(self) -> None:
        if type(self.max_tries) is not int or self.max_tries < 1:
            raise ConfigurationError(f"max_tries must be an int >= 1, got {self.max_tries!r}")
        for name in ("max_time", "initial_delay", "max_delay"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not 0 <= value < math.inf:  # NaN fails too
                raise ConfigurationError(f"{name} must be a finite number >= 0, got {value!r}")

    def waits(self) -> Generator[float, AnyChannelError | None, None]:
        """backoff wait generator: full-jitter exponential, sent the exception of each try."""
        yield 0.0  # primed by backoff before the first try
        attempt = 0
        while True:
            # The exponent stops growing long after the ceiling is reached: 2 ** 1024 would
            # not fit in a float.
            ceiling = min(self.max_delay, self.initial_delay * 2 ** min(attempt, 64))
            attempt += 1
            # The Retry-After pause itself is kept by AccountPace for every request; this wait
            # only spreads the retries of many clients apart.
            yield random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


@attrs.frozen
class Pushed:
    """What one push request came to: its results, or the error that stopped it."""

    #: One result per resource, in request order (empty when ``error`` is set).
    results: list[PushResult]
    error: AnyChannelError | None
    #: HTTP tries it took, the first included.
    tries: int
    #: Of those, tries answered 429 (each paused the host's requests).
    rate_limited: int = 0


class _Tries:
    """Counts the tries of one request as backoff makes them."""

    __slots__ = ("count", "limited")

    def __init__(self) -> None:
        self.count = 0
        self.limited = 0


class _State:
    UNOPENED, OPENED, CLOSED = "unopened", "opened", "closed"


class AnyChannelClient:
    """An async client of one Zendesk account's Channel framework endpoints.

    Give exactly one of ``token`` (the integration's OAuth access token, sent as a Bearer
    token) and ``basic_auth`` (``(username, secret)``; with an API token the username is
    ``email/token``), and exactly one of ``subdomain`` (``https://{subdomain}.zendesk.com``) and
    ``base_url``. Plain ``http://`` is refused unless the host is loopback. A path in
    ``base_url`` is kept (each request goes to it followed by its route, as through a gateway);
    a query or a fragment is refused.

    Settings (keyword-only):

    - ``session``: an ``aiohttp.ClientSession`` of your own; it is used as is and not closed
      by the client. By default the client opens one, with keep-alive, a pool of
      ``max_connections`` connections and no cookies kept, and closes it in ``close()``.
    - ``timeout``: seconds for one try of one request, connection to last byte (default 30).
    - ``retry``: a `RetryPolicy` (default ``RetryPolicy()``: 5 tries within 60 s).
    - ``max_connections``: size of the connection pool of the client's own session (default 32).
    - ``pace``: the `AccountPace` of the Zendesk account (host) this client pushes to. Zendesk's
      rate limit is the host's, shared by every instance on it, so clients of one host (with
      one token each) should share one pace; by default the client has its own.

    Use it as ``async with AnyChannelClient(...) as client:`` or call ``await client.close()``.
    The credentials never appear in its repr, in logs or in errors.
    """

    # Commands and tests make many: no instance dict (~180 bytes each).
    __slots__ = (
        "_base_url",
        "_credentials",
        "_loop",
        "_max_connections",
        "_owns_session",
        "_retry",
        "_send",
        "_session",
        "_state",
        "_timeout",
        "pace",
        "retries",
    )

    def __init__(
        self,
        *,
        token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        subdomain: str | None = None,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 32,
        pace: AccountPace | None = None,
    ) -> None:
        self._credentials = Credentials(token=token, basic_auth=basic_auth)
        self._base_url = base_url_of(subdomain=subdomain, base_url=base_url)
        if type(timeout) not in (int, float) or not 0 < timeout < math.inf:
            raise ConfigurationError(
                f"timeout must be a finite number of seconds > 0, got {timeout!r}"
            )
        if type(max_connections) is not int or max_connections < 1:
            raise ConfigurationError(f"max_connections must be >= 1, got {max_connections}")
        self._timeout = _client_timeout(float(timeout))
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        self._retry = retry if retry is not None else RetryPolicy()
        self._max_connections = max_connections
        self._session = session
        self._owns_session = session is None
        self._state = _State.UNOPENED
        self._loop: asyncio.AbstractEventLoop | None = None
        if pace is not None and not isinstance(pace, AccountPace):
            raise ConfigurationError(f"pace must be an AccountPace, got {type(pace).__name__}")
        #: The host's request pace, shared by every pipeline using this client (and by every
        #: client given the same ``pace``).
        self.pace = pace if pace is not None else AccountPace()
        self._send = _retrying(self._retry)
        #: Number of retried tries, for stats.
        self.retries = 0

    def __repr__(self) -> str:
        return f"<AnyChannelClient base_url={str(self._base_url)!r} state={self._state}>"

    @property
    def base_url(self) -> str:
        """The Zendesk account's base URL."""
        return str(self._base_url)

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._state == _State.CLOSED:
            raise ClosedError("this AnyChannelClient is closed; create a new one")
        # Its session and pace belong to the first loop: from another, a request would hang.
        self._loop = bind_loop(self._loop, "AnyChannelClient")
        self._state = _State.OPENED
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30.0),
                headers={"User-Agent": _USER_AGENT},
                cookie_jar=no_cookies(),
            )
        return self._session

    async def close(self) -> None:
        """Close the client's own session (a session passed in is left open). Idempotent."""
        if self._state == _State.CLOSED:
            return
        self._state = _State.CLOSED
        if self._owns_session and self._session is not None:
            await self._session.close()

    # -- endpoints ---------------------------------------------------------------------------

    async def push(
        self,
        instance_push_id: str,
        resources: Iterable[ExternalResource],
        *,
        request_id: str | None = None,
    ) -> list[PushResult]:
        """Push resources in one request; one `PushResult` per resource, in input order.

        Raises `ProtocolError` when the answer's results do not pair with the request (never
        guessed), and the request-level errors of the `AnyChannelError` tree.
        """
        encoded = [encode_resource(resource) for resource in as_resources(resources)]
        if not encoded:
            return []
        return await self.push_encoded(instance_push_id, encoded, request_id=request_id)

    async def push_encoded(
        self,
        instance_push_id: str,
        resources: Sequence[Encoded],
        *,
        request_id: str | None = None,
    ) -> list[PushResult]:
        """`push` for resources already encoded (`_serde.encode_resource`)."""
        pushed = await self.push_batch(instance_push_id, resources, request_id=request_id)
        if pushed.error is not None:
            raise pushed.error
        return pushed.results

    async def push_batch(
        self,
        instance_push_id: str,
        resources: Sequence[Encoded],
        *,
        request_id: str | None = None,
        credentials: Credentials | None = None,
    ) -> Pushed:
        """One push, reported by value: its results or the error that stopped it, and the tries
        it took (the pipeline's entry point: it counts retries without being called back).

        ``credentials``: another account's, to push for it over this client's session, host
        and pace (a `PushPool`'s accounts of one host share a client); by default its own."""
        tries = _Tries()
        try:
            check_id("instance_push_id", instance_push_id)
            check_request_id(request_id)
            body = encode_push_body(instance_push_id, resources, request_id)
            payload = await self._request(_PUSH, body, tries, credentials)
            results = decode_push_results(payload, [r.external_id for r in resources])
        except AnyChannelError as exc:
            return Pushed(results=[], error=exc, tries=tries.count, rate_limited=tries.limited)
        return Pushed(results=results, error=None, tries=tries.count, rate_limited=tries.limited)

    async def validate_token(self, instance_push_id: str) -> None:
        """Check the credentials for the account; raises `AuthenticationError` if refused."""
        check_id("instance_push_id", instance_push_id)
        await self._request(_VALIDATE, _json({"instance_push_id": instance_push_id}))

    async def report_channelback_error(
        self,
        instance_push_id: str,
        external_id: str,
        description: str | None = None,
        *,
        request_id: str | None = None,
    ) -> None:
        """Tell Zendesk that the channelback of external_id failed after the fact."""
        check_id("instance_push_id", instance_push_id)
        check_id("external_id", external_id)
        check_request_id(request_id)
        body: dict[str, str] = {"instance_push_id": instance_push_id, "external_id": external_id}
        if description is not None:
            body["description"] = description
        if request_id is not None:
            body["request_id"] = request_id
        await self._request(_REPORT_ERROR, _json(body))

    # -- the HTTP boundary -------------------------------------------------------------------

    async def _request(
        self,
        path: str,
        body: bytes,
        tries: _Tries | None = None,
        credentials: Credentials | None = None,
    ) -> bytes:
        session = self._open()
        result: bytes = await self._send(
            self, session, path, body, tries or _Tries(), credentials or self._credentials
        )
        return result

    async def _send_once(
        self,
        session: aiohttp.ClientSession,
        path: str,
        body: bytes,
        tries: _Tries,
        credentials: Credentials,
    ) -> bytes:
        """One try: wait for the account's pace, POST, map the answer or the failure."""
        tries.count += 1
        await self.pace.acquire()
        if session.closed:  # a session passed in, closed by its owner
            raise ClosedError("the aiohttp session of this AnyChannelClient is closed")
        started = time.monotonic()
        try:
            async with session.post(
                route_of(self._base_url, path),
                data=body,
                headers={
                    "Authorization": credentials.header,
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": _USER_AGENT,
                },
                timeout=self._timeout,
                # Only Zendesk is believed: a redirect would carry the body and credentials
                # to another host, and its answer would say nothing of what Zendesk holds.
                allow_redirects=False,
            ) as response:
                payload = await response.read()
                status = response.status
                headers = response.headers
        except TimeoutError:
            # Zendesk may still be working on this request and decide its outcome later. A
            # try sent now could race it (two tickets for one conversation), so this try ends
            # only when the first could have finished deciding: see RetryPolicy.
            limit = self._timeout.total or 0.0
            await asyncio.sleep(limit)
            raise TransportError(f"POST {path}: no answer within {limit:g} s") from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"POST {path}: {type(exc).__name__}: {exc}") from None
        except RuntimeError:  # aiohttp's "Session is closed": the session closed under us
            if session.closed:
                raise ClosedError(
                    "the aiohttp session of this AnyChannelClient is closed"
                ) from None
            raise
        self.pace.observe(headers)
        logger.debug(
            "POST %s -> %d in %.3f s (%d bytes sent)",
            path,
            status,
            time.monotonic() - started,
            len(body),
        )
        if 200 <= status < 300:
            return payload
        if 300 <= status < 400:
            raise RedirectError(status, _host_of(headers.get("Location")))
        # Bound the excerpt before searching it, and never quote the credentials back.
        text = credentials.redact(payload[:4096].decode("utf-8", "replace"))
        if status in (401, 403):
            raise AuthenticationError(status, text)
        if status == 429:
            retry_after = parse_retry_after(headers.get("Retry-After"))
            self.pace.pause(retry_after)
            tries.limited += 1
            raise RateLimitedError(retry_after)
        if 400 <= status < 500:
            raise RequestRejectedError(status, text)
        raise TransportError(f"POST {path}: HTTP {status}", status=status)


@functools.lru_cache(maxsize=32)
def _retrying(policy: RetryPolicy) -> Callable[..., Awaitable[bytes]]:
    """``AnyChannelClient._send_once`` retried by ``policy``: one backoff wrapper per policy,
    shared by its clients (a wrapper per client was ~1.7 kB)."""
    send: Callable[..., Awaitable[bytes]] = backoff.on_exception(
        policy.waits,
        AnyChannelError,
        max_tries=policy.max_tries,
        max_time=policy.max_time,
        giveup=_not_retriable,
        jitter=None,
        logger=None,
        on_backoff=_log_retry,
    )(AnyChannelClient._send_once)
    return send


def _log_retry(details: Mapping[str, Any]) -> None:
    client, _session, path, _body, _tries, _credentials = details["args"]
    client.retries += 1
    logger.info(
        "retrying POST %s (try %s failed: %s); next try in %.2f s",
        path,
        details["tries"],
        details.get("exception"),
        details.get("wait", 0.0),
    )


@functools.lru_cache(maxsize=32)
def _client_timeout(total: float) -> aiohttp.ClientTimeout:
    """One (frozen) timeout per value, shared by the clients given it."""
    return aiohttp.ClientTimeout(total=total)


def no_cookies() -> aiohttp.abc.AbstractCookieJar:
    """The cookie jar of a session the library opens: one that keeps nothing.

    The token authenticates every request; a cookie adds nothing Zendesk needs. The Cloudflare
    in front of Zendesk sets some on its answers (``__cfruid``, ``__cf_bm``), and a jar that
    keeps them parses each Set-Cookie and sends them all back on every request: with three,
    ~150 µs of client CPU per request, as much as the rest of the request. In a pool's session,
    shared by every account, a ``.zendesk.com`` cookie one account's host set would also go to
    every other account's host.
    """
    return aiohttp.DummyCookieJar()


def _host_of(location: str | None) -> str | None:
    """The host a Location names, None when it names none or cannot be read."""
    try:
        return URL(location).host if location else None
    except (ValueError, TypeError):
        return None


def _not_retriable(exc: Exception) -> bool:
    return not getattr(exc, "retriable", False)


def _json(body: Mapping[str, str]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class PushClient(Protocol):
    """What a `PushPipeline` needs of a client: an `AnyChannelClient`, or a `PushPool`'s
    account on its host's client."""

    @property
    def pace(self) -> AccountPace: ...

    async def push_batch(
        self, instance_push_id: str, resources: Sequence[Encoded], *, request_id: str | None = None
    ) -> Pushed: ...


class Refusable(Protocol):
    """Who holds credentials Zendesk may refuse (see `push_until_refused`)."""

    refusal: AuthenticationError | None

    def refused(self, error: AuthenticationError) -> None: ...


async def push_until_refused(holder: Refusable, push: Callable[[], Awaitable[Pushed]]) -> Pushed:
    """``push()``, unless Zendesk already refused holder's credentials: a refusal (401/403) is
    the same for every request with them, so each push after the first returns a copy of it
    without sending anything, and ``holder.refused`` is told once, at the refusal itself."""
    if holder.refusal is not None:
        return Pushed(results=[], error=copy.copy(holder.refusal), tries=0)
    pushed = await push()
    if isinstance(pushed.error, AuthenticationError) and holder.refusal is None:
        holder.refusal = pushed.error
        holder.refused(pushed.error)
    return pushed


class RefusalStopClient(AnyChannelClient):
    """A client that, once Zendesk refused its token, sends no request more.

    Each push goes through `push_until_refused`; ``on_refusal`` is called once, at the
    refusal itself. Only the client sees every push before it goes out (an outbox's replays
    included), so stopping here, not after the pipeline reported, is what keeps the commands
    from sending one doomed request per batch (a `PushPool`'s accounts do the same, each on
    its host's client).
    """

    __slots__ = ("on_refusal", "refusal")

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        #: The refusal, once Zendesk refused the token.
        self.refusal: AuthenticationError | None = None
        #: Called once, with the refusal, when it happens.
        self.on_refusal: Callable[[AuthenticationError], None] | None = None

    async def push_batch(self, *args: Any, **kwargs: Any) -> Pushed:
        return await push_until_refused(
            self, lambda: super(RefusalStopClient, self).push_batch(*args, **kwargs)
        )

    def refused(self, error: AuthenticationError) -> None:
        if self.on_refusal is not None:
            self.on_refusal(error)
