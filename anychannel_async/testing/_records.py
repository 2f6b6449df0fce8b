"""The frozen records a test reads back from the emulator.

They are snapshots: the emulator keeps its own mutable bookkeeping and copies it into these, so a
record a test holds never changes under it, whatever the emulator's thread does next.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = [
    "AgentReply",
    "Comment",
    "EventCallback",
    "Instance",
    "Manifest",
    "RecordedRequest",
    "ReportedError",
    "Ticket",
]


@attrs.frozen
class Comment:
    """One imported resource as Zendesk keeps it: a ticket's opening message or a reply to it;
    or an agent's reply (`ZendeskEmulator.agent_reply`), whose ``external_id`` is the one the
    integration's channelback answered. ``id`` is the comment's Zendesk id, as events name it."""

    external_id: str
    message: str
    author_external_id: str
    author_name: str | None
    created_at: str
    internal_note: bool
    html_message: str | None
    id: int | None = None
    #: True for an agent's reply sent out through the channelback.
    by_agent: bool = False


@attrs.frozen
class Ticket:
    """A ticket and its comments in import order; `comments[0]` is the resource that opened it.

    `fields` are the (id, value) pairs of the opening resource only: Zendesk sets ticket fields at
    creation and ignores them on comments. Numeric field ids are kept as strings.
    """

    id: int
    instance_push_id: str
    thread_id: str | None
    comments: tuple[Comment, ...]
    fields: tuple[tuple[str, object], ...]

    @property
    def external_id(self) -> str:
        """The external id of the resource that opened the ticket."""
        return self.comments[0].external_id


@attrs.frozen
class ReportedError:
    """One `channelback/report_error` call that was accepted."""

    instance_push_id: str
    external_id: str
    description: str | None
    request_id: str | None


@attrs.frozen
class RecordedRequest:
    """One request received on any endpoint; it never holds credentials.

    `status` is 0 while no answer has been sent: the request is still in flight, or its
    connection was dropped by `Fault.DROP`. `at` is `time.monotonic()` at arrival. `body` is the
    JSON object as the emulator parsed it from the bytes it received, kept only by an emulator
    made with ``record_bodies=True`` (None otherwise, or when the body was not a JSON object);
    the emulator never changes it, and neither should a test.
    """

    path: str
    instance_push_id: str | None
    request_id: str | None
    external_ids: tuple[str, ...]
    status: int
    at: float
    user_agent: str | None
    #: The ``Cookie`` header the request carried, None when it had none (the emulator's own
    #: cookie at most: see `Faults.set_cookie`).
    cookie: str | None = None
    # Left out of eq and hash (a dict has none) and of repr (it may be megabytes).
    body: Mapping[str, object] | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Manifest:
    """An integration's manifest as the emulator read it: its name, id and URLs."""

    url: str
    name: str
    id: str
    #: ``admin_ui``, ``channelback_url``, ``pull_url``, ``event_callback_url``, ...
    urls: Mapping[str, str]


@attrs.frozen
class Instance:
    """An integration installed with `ZendeskEmulator.install`: what Zendesk holds for it.

    ``token`` is the one the emulator's push accepts for ``instance_push_id``; ``metadata`` is
    what the integration's admin UI posted back, sent with every later call; ``state`` what
    its last pull answer left. None of the three is shown in a repr.
    """

    instance_push_id: str
    token: str = attrs.field(repr=False)
    subdomain: str
    name: str
    metadata: str = attrs.field(repr=False)
    state: str | None = attrs.field(repr=False)
    active: bool
    manifest: Manifest
    #: Set when a pull or channelback answer asked the administrator to save the account again.
    metadata_needs_update: bool = False


@attrs.frozen
class AgentReply:
    """An agent's reply sent out through the integration's channelback."""

    ticket_id: int
    #: What the channelback answered: the id of the message created in the origin.
    external_id: str
    comment_id: int
    request_unique_identifier: str
    #: Requests sent for it: more than 1 after a network error, a timeout or a 5xx.
    tries: int


@attrs.frozen
class EventCallback:
    """One request the emulator made to an integration's ``event_callback_url``."""

    instance_push_id: str
    type_ids: tuple[str, ...]
    #: The integration's answer; 0 when none came (unreachable, timed out).
    status: int
