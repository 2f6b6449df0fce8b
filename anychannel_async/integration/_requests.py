"""What Zendesk asks of the integration, and what a handler answers: frozen, checked values.

Each request type carries the account it is for (found through its signed metadata, never
through what the request merely claims) and Zendesk's fields under their wire names, checked
against the limits in Zendesk's docs; a value out of them is a `ValidationError` naming the
field. Nothing here reads HTTP: `_app` builds these from forms and turns answers into JSON.
The metadata itself is never kept on a request: it is what proves the request's origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from anychannel_async._accounts import Account
from anychannel_async._errors import AnyChannelError, ValidationError
from anychannel_async._models import ExternalResource, as_resources

from ._signing import METADATA_MAX

__all__ = [
    "PULL_RESOURCES_MAX",
    "ChannelbackFailed",
    "ChannelbackRequest",
    "ClickthroughRequest",
    "IntegrationEvent",
    "PullRequest",
    "PullResponse",
]

#: At most this many resources in one pull answer (Zendesk's docs; its schema allows 256).
PULL_RESOURCES_MAX = 200
# Limits of the channelback form, from Zendesk's docs, in characters.
_MESSAGE_MAX = 65_535
_PARENT_ID_MAX = 511
_SHORT_MAX = 255


def _text(limit: int) -> Any:
    """A validator: a str of at most limit characters."""

    def check(_instance: object, attribute: attrs.Attribute[str], value: object) -> None:
        if not isinstance(value, str):
            raise ValidationError(attribute.name, f"must be a string, got {type(value).__name__}")
        if len(value) > limit:
            raise ValidationError(
                attribute.name, f"length {len(value)} exceeds the limit of {limit} characters"
            )

    return check


def _optional_text(limit: int) -> Any:
    check = _text(limit)

    def optional(instance: object, attribute: attrs.Attribute[str | None], value: object) -> None:
        if value is not None:
            check(instance, attribute, value)

    return optional


def _account(_instance: object, _attribute: attrs.Attribute[Account], value: object) -> None:
    if not isinstance(value, Account):
        raise ValidationError("account", f"must be an Account, got {type(value).__name__}")


def _strings(items: Iterable[str]) -> tuple[str, ...]:
    if isinstance(items, str | bytes):
        raise ValidationError("file_urls", "must be a list of strings, not a string")
    found = tuple(items)
    for index, item in enumerate(found):
        if not isinstance(item, str):
            raise ValidationError(
                f"file_urls[{index}]", f"must be a string, got {type(item).__name__}"
            )
    return found


class ChannelbackFailed(AnyChannelError):  # noqa: N818 - the name is the API's contract
    """Raised by a channelback handler to refuse the reply: Zendesk gets ``status`` (a 4xx,
    default 400) with ``description``, and shows the agent that the reply was not sent."""

    def __init__(self, description: str, *, status: int = 400) -> None:
        if type(status) is not int or not 400 <= status < 500:
            raise ValidationError("status", f"must be an int of 400..499, got {status!r}")
        super().__init__(description)
        self.description = str(description)
        self.status = status


@attrs.frozen
class ChannelbackRequest:
    """An agent's reply, to be sent to the origin network; the handler returns the
    ``external_id`` of the message it created there."""

    account: Account = attrs.field(validator=_account)
    message: str = attrs.field(validator=_text(_MESSAGE_MAX))
    #: The external id of the message replied to (the ticket's or a comment's).
    parent_id: str | None = attrs.field(default=None, validator=_optional_text(_PARENT_ID_MAX))
    thread_id: str | None = attrs.field(default=None, validator=_optional_text(_SHORT_MAX))
    #: Whom the reply is for, when Zendesk knows (may be absent).
    recipient_id: str | None = attrs.field(default=None, validator=_optional_text(_SHORT_MAX))
    #: Attachments, downloadable with the account's token; may be signed URLs (not in repr).
    file_urls: tuple[str, ...] = attrs.field(default=(), converter=_strings, repr=False)
    #: The same value when Zendesk repeats this channelback after a network error.
    request_unique_identifier: str | None = attrs.field(
        default=None, validator=_optional_text(_SHORT_MAX)
    )
    #: The account's opaque state, as the last pull answer left it.
    state: str | None = attrs.field(
        default=None, validator=_optional_text(METADATA_MAX), repr=False
    )


@attrs.frozen
class PullRequest:
    """Zendesk's periodic ask (about every 2 minutes) for what is new in the origin."""

    account: Account = attrs.field(validator=_account)
    #: The state the previous pull answer left (None at first), to pull on from.
    state: str | None = attrs.field(
        default=None, validator=_optional_text(METADATA_MAX), repr=False
    )


def _pulled(items: Iterable[ExternalResource]) -> tuple[ExternalResource, ...]:
    resources = tuple(as_resources(items))
    if len(resources) > PULL_RESOURCES_MAX:
        raise ValidationError(
            "resources", f"{len(resources)} items exceed the limit of {PULL_RESOURCES_MAX}"
        )
    return resources


def _check_flag(_instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(attribute.name, f"must be a bool, got {type(value).__name__}")


@attrs.frozen
class PullResponse:
    """A pull's answer: at most 200 resources (validated `ExternalResource`s, sent as push
    sends them); ``state`` for the next pull (None keeps the previous one); and
    ``metadata_needs_update`` to have Zendesk ask the administrator to open the account's
    settings again (say, when the origin refused its credentials)."""

    resources: tuple[ExternalResource, ...] = attrs.field(default=(), converter=_pulled)
    state: str | None = attrs.field(
        default=None, kw_only=True, validator=_optional_text(METADATA_MAX), repr=False
    )
    metadata_needs_update: bool = attrs.field(default=False, kw_only=True, validator=_check_flag)


@attrs.frozen
class ClickthroughRequest:
    """An agent clicked through to an item: the handler returns the URL to send them to."""

    account: Account = attrs.field(validator=_account)
    external_id: str = attrs.field(validator=_text(_PARENT_ID_MAX))


def _frozen_data(data: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(data))


@attrs.frozen(eq=False)
class IntegrationEvent:
    """One event Zendesk sent to ``event_callback_url``.

    ``type_id`` is Zendesk's (``create_integration_instance``, ``destroy_integration_instance``,
    ``activate_integration_instance``, ``deactivate_integration_instance``, ``destroy_user``,
    ``pull_request``, ``channelback``, ``resources_created_from_external_ids``, ...). An
    instance's event names it by the metadata in its ``data``: once that verified,
    ``instance_push_id`` and ``account`` say which (``account`` as the library's handling
    left it: inactive after a deactivation; as it was before a destroy removed it); ``data``
    is the rest, the metadata taken out.
    """

    type_id: str
    timestamp: str | None = None
    subdomain: str | None = None
    integration_name: str | None = None
    integration_id: str | None = None
    data: Mapping[str, object] = attrs.field(factory=dict, converter=_frozen_data)
    error: str | None = None
    instance_push_id: str | None = None
    account: Account | None = None
