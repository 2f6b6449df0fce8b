"""The one exception tree of anychannel-async.

Every error the library raises is an `AnyChannelError` (or `asyncio.CancelledError`). Foreign
exceptions are mapped to these at one boundary each and never leak: aiohttp's in `_client.py`,
sqlite's in `_outbox.py` and `_accounts.py`, redis-py's in `sources/_link.py`. Whether a try
is worth retrying at once is a property of its class (`retriable`); what an error means for a
resource's fate is `verdict`, the one answer every consumer of outcomes reads.

No message here may contain a credential: errors quote at most a bounded excerpt of a response
body, with any echo of the credentials redacted by the client.
"""

from __future__ import annotations

import copy
import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._results import PushResult

__all__ = [
    "AccountStoreError",
    "AnyChannelError",
    "AuthenticationError",
    "ClosedError",
    "ConfigurationError",
    "EventLoopError",
    "HaltedError",
    "InactiveAccountError",
    "MalformedEntryError",
    "OutboxError",
    "OutcomeUnknownError",
    "ParentNotFoundError",
    "ProcessingError",
    "ProtocolError",
    "RateLimitedError",
    "RedirectError",
    "RequestRejectedError",
    "ResourceError",
    "SourceError",
    "TransportError",
    "UnknownAccountError",
    "ValidationError",
    "Verdict",
    "copies",
    "verdict",
]

# Response bodies are quoted in errors to help debugging, but bounded: a 5 MB HTML error page
# must not end up in a log line.
_BODY_EXCERPT = 500


def _excerpt(body: str) -> str:
    return body if len(body) <= _BODY_EXCERPT else body[:_BODY_EXCERPT] + "…"


class Verdict(enum.Enum):
    """What an error says about a resource's fate at Zendesk: the one answer to "final,
    unknown, or retry?", read by the pipeline, its outbox and the Redis source alike."""

    #: The resource itself can never be imported as it is (a result entry, or a 4xx refusal
    #: of the resource alone): fail its future, keep it as a dead letter, fail its children.
    FINAL = "final"
    #: Zendesk refuses every request alike (credentials, a wrong URL, a redirect): nothing was
    #: processed; fail the future, but keep the resource for a run with fixed settings.
    REFUSED = "refused"
    #: The answer does not say what happened (lost, garbled, timed out): Zendesk may hold the
    #: resource. Push it again; ``already_imported`` will tell. Never a failure by itself.
    UNKNOWN = "unknown"
    #: Nothing happened and a later push may pass (rate limited, halted behind another
    #: resource, closing before it was sent): push it again; keep it for a later run.
    RETRY = "retry"


# Refusals of a single resource's push that are about the resource, not the request: a 413 or
# a 400/422 after the pipeline bisected a batch down to it.
_RESOURCE_STATUSES = frozenset({400, 413, 422})


def verdict(error: BaseException) -> Verdict:
    """The fate of a resource whose push (or future) ended with error."""
    if isinstance(error, HaltedError | RateLimitedError | ClosedError):
        return Verdict.RETRY  # nothing happened to it: a later push may pass
    if isinstance(error, ParentNotFoundError) and error.parent_error is not None:
        return Verdict.RETRY  # Zendesk does not hold it; after its parent it may pass
    if isinstance(error, ResourceError | ValidationError):
        return Verdict.FINAL
    if isinstance(error, RequestRejectedError):
        return Verdict.FINAL if error.status in _RESOURCE_STATUSES else Verdict.REFUSED
    if isinstance(error, TransportError | ProtocolError | OutcomeUnknownError):
        return Verdict.UNKNOWN
    return Verdict.REFUSED  # credentials, a redirect, the wrong event loop, a bad setting


def splittable(error: AnyChannelError) -> bool:
    """True when a refusal of a batch may be one resource's or the size's: push halves."""
    return isinstance(error, RequestRejectedError) and error.status in _RESOURCE_STATUSES


def copies(exc: AnyChannelError, count: int) -> list[AnyChannelError]:
    """count distinct copies of a request's error: each future gets its own (aiokafka #246),
    so one caller adding a note or traceback to it cannot change what another one sees."""
    return [copy.copy(exc) for _ in range(count)]


class AnyChannelError(Exception):
    """Base class of every error raised by anychannel-async."""

    #: True when sending the same request again may succeed.
    retriable: bool = False

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take other arguments than their message, so the default reduce (which
        # calls cls(*args)) would rebuild them wrong. Copy args and attributes as they are:
        # the pipeline gives each future its own copy of a batch's error (aiokafka #246).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(
    cls: type[AnyChannelError], args: tuple[object, ...], state: dict[str, object]
) -> AnyChannelError:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class ValidationError(AnyChannelError, ValueError):
    """A value breaks a Channel framework limit; raised before anything is sent."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        #: Dotted path of the offending field, e.g. ``author.external_id``.
        self.field = field


class ConfigurationError(AnyChannelError, ValueError):
    """A setting is out of its range (or NaN); raised by the constructor, before any request."""


class ClosedError(AnyChannelError, RuntimeError):
    """A client or pipeline was used after ``close()``, or closed before a resource resolved."""


class EventLoopError(AnyChannelError, RuntimeError):
    """A client or pipeline was used from an event loop other than the one it was opened on."""


class AuthenticationError(AnyChannelError):
    """Zendesk refused the credentials (401 or 403)."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(f"authentication failed: HTTP {status}: {_excerpt(body)}".rstrip(": "))
        self.status = status
        self.body = _excerpt(body)


class RedirectError(AnyChannelError):
    """Zendesk answered with a redirect (3xx). Never followed: the body and the credentials go
    to ``base_url`` alone, and only its answer is believed."""

    def __init__(self, status: int, location_host: str | None) -> None:
        where = f" to host {location_host!r}" if location_host else " without a Location"
        super().__init__(f"HTTP {status} redirect{where}, not followed; check base_url")
        self.status = status
        #: The host the redirect pointed to (never the full URL: it may carry a query).
        self.location_host = location_host


class RequestRejectedError(AnyChannelError):
    """Zendesk rejected the request with a 4xx other than 401, 403 and 429."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(f"request rejected: HTTP {status}: {_excerpt(body)}".rstrip(": "))
        self.status = status
        self.body = _excerpt(body)


class RateLimitedError(AnyChannelError):
    """Zendesk still answered 429 when the retries were used up."""

    retriable = True

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited by Zendesk; retry after {retry_after:g} s")
        #: Seconds Zendesk asked us to wait before the next request.
        self.retry_after = retry_after


class TransportError(AnyChannelError):
    """The request got no usable answer: connection error, timeout, or a 5xx after retries.
    Zendesk may have processed it: the outcome of its resources is unknown."""

    retriable = True

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        #: HTTP status for a 5xx answer; None when no answer arrived at all.
        self.status = status


class ProtocolError(AnyChannelError):
    """The answer does not follow the API: not JSON, or results that do not match the request.

    Results are never paired by guess: a results list of the wrong length, or whose external
    ids differ from the request's, says nothing of any resource in it. Zendesk may have
    processed the request: the outcome of its resources is unknown.
    """


class OutcomeUnknownError(AnyChannelError):
    """A resource was pushed ``max_attempts`` times and no answer said what became of it:
    Zendesk may hold it or not. Pushing it again is safe (``already_imported`` tells)."""

    def __init__(self, external_id: str, attempts: int, last_error: AnyChannelError) -> None:
        super().__init__(
            f"{external_id}: outcome unknown after {attempts} pushes (last: {last_error});"
            " Zendesk may hold it: push it again, already_imported will tell"
        )
        self.external_id = external_id
        self.attempts = attempts
        #: The error of the last push, which did not tell the outcome.
        self.last_error = last_error


class ResourceError(AnyChannelError):
    """One resource of a push failed; raised from that resource's future by `PushPipeline`."""

    def __init__(self, external_id: str, message: str, result: PushResult | None = None) -> None:
        super().__init__(f"{external_id}: {message}")
        self.external_id = external_id
        #: Zendesk's answer for the resource, where there is one.
        self.result = result


class ProcessingError(ResourceError):
    """Zendesk answered ``processing_error`` for the resource."""


class ParentNotFoundError(ResourceError):
    """The resource's parent is not known to be imported (it failed, its outcome stayed
    unknown, or it did not appear in time), so neither is the resource.

    ``parent_error`` is the parent's own error when it failed for a reason that may pass
    (halted, outcome unknown): then so may this resource, pushed again after its parent, and
    its verdict is RETRY; None when the parent failed for good (or never came): FINAL. Down a
    chain of replies it is the first ancestor's that may pass, never another
    ParentNotFoundError: one level, however long the chain.
    """

    def __init__(
        self,
        external_id: str,
        message: str,
        result: PushResult | None = None,
        *,
        parent_error: AnyChannelError | None = None,
    ) -> None:
        super().__init__(external_id, message, result)
        #: The parent's error, when it may pass (see above).
        self.parent_error = parent_error


class HaltedError(ResourceError):
    """Zendesk answered ``halted`` for the resource more times than the pipeline's max_attempts."""


class SourceError(AnyChannelError):
    """A source cannot go on: Redis refused a command for good (credentials, a key's type)."""


class MalformedEntryError(SourceError):
    """A stream entry holds no resource (no field, not JSON); dead-lettered with it, not raised."""


class OutboxError(AnyChannelError):
    """The outbox file cannot be used: not a database, locked by another process, disk full."""


class AccountStoreError(AnyChannelError):
    """The accounts store cannot be used: not a store, readable by others, locked, disk full."""


class UnknownAccountError(AnyChannelError, KeyError):
    """No account is known for the instance push id a resource was submitted for."""

    def __init__(self, instance_push_id: str) -> None:
        super().__init__(instance_push_id)
        self.instance_push_id = instance_push_id

    def __str__(self) -> str:
        # KeyError's str is the repr of its argument, made for a bare key, not a sentence.
        return f"no account for instance push id {self.instance_push_id!r}"


class InactiveAccountError(UnknownAccountError):
    """The account is stored but Zendesk deactivated its install: nothing is pushed for it
    until Zendesk activates it again (a `ChannelIntegration` tracks both events)."""

    def __str__(self) -> str:
        return f"the account of instance push id {self.instance_push_id!r} is inactive"


class TicketUnknownError(AnyChannelError):
    """No ``resources_created_from_external_ids`` event named the ticket of a resource within
    ``ticket_of``'s timeout: Zendesk sends none for a resource it already held, the
    integration's event callback may not be configured (or serves another process), or the
    event came after the ledger forgot the request."""

    def __init__(self, instance_push_id: str, external_id: str, timeout: float) -> None:
        super().__init__(
            f"no event named the ticket of {external_id!r} (instance push id"
            f" {instance_push_id!r}) within {timeout:g} s"
        )
        self.instance_push_id = instance_push_id
        self.external_id = external_id
