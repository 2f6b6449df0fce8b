"""The one exception tree of anychannel-async.

Every error the library raises is an `AnyChannelError` (or `asyncio.CancelledError`). Foreign
exceptions (aiohttp's, json's) are mapped to these at the HTTP boundary in `_client.py` and never
leak. Whether a request-level error is worth retrying is a property of its class (`retriable`),
so the retry predicate is one line instead of status codes matched in several places.

No message here may contain a credential: errors quote at most an excerpt of a response body,
which never carries the request's Authorization header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._models import PushResult

__all__ = [
    "AnyChannelError",
    "AuthenticationError",
    "ClosedError",
    "HaltedError",
    "ParentNotFoundError",
    "ProcessingError",
    "ProtocolError",
    "RateLimitedError",
    "RequestRejectedError",
    "ResourceError",
    "TransportError",
    "ValidationError",
]

# Response bodies are quoted in errors to help debugging, but bounded: a 5 MB HTML error page
# must not end up in a log line.
_BODY_EXCERPT = 500


def _excerpt(body: str) -> str:
    return body if len(body) <= _BODY_EXCERPT else body[:_BODY_EXCERPT] + "…"


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


class ClosedError(AnyChannelError, RuntimeError):
    """A client or pipeline was used after ``close()``."""


class AuthenticationError(AnyChannelError):
    """Zendesk refused the credentials (401 or 403)."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(f"authentication failed: HTTP {status}: {_excerpt(body)}".rstrip(": "))
        self.status = status
        self.body = _excerpt(body)


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
    """The request got no usable answer: connection error, timeout, or a 5xx after retries."""

    retriable = True

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        #: HTTP status for a 5xx answer; None when no answer arrived at all.
        self.status = status


class ProtocolError(AnyChannelError):
    """The answer does not follow the API: not JSON, or results that do not match the request.

    Results are never paired by guess: a results list of the wrong length, or whose external
    ids differ from the request's, fails the whole request.
    """


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
    """The resource's parent was never imported (it failed, or did not appear in time)."""


class HaltedError(ResourceError):
    """Zendesk answered ``halted`` for the resource more times than the pipeline's max_attempts."""
