"""The frozen records a test reads back from the emulator.

They are snapshots: the emulator keeps its own mutable bookkeeping and copies it into these, so a
record a test holds never changes under it, whatever the emulator's thread does next.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["Comment", "RecordedRequest", "ReportedError", "Ticket"]


@attrs.frozen
class Comment:
    """One imported resource as Zendesk keeps it: a ticket's opening message or a reply to it."""

    external_id: str
    message: str
    author_external_id: str
    author_name: str | None
    created_at: str
    internal_note: bool
    html_message: str | None


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
    # Left out of eq and hash (a dict has none) and of repr (it may be megabytes).
    body: Mapping[str, object] | None = attrs.field(default=None, eq=False, repr=False)
