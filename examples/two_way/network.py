"""A stand-in for the origin network (a social network, a chat service): what the integration
talks to on the other side. Replace it with your network's API client."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from anychannel_async import Author, ExternalResource


class Network:
    """Posts waiting to be fetched, and the replies posted to the network."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.unread: list[ExternalResource] = []
        #: (id of the new message, its text, the id of the message it answers), in order.
        self.replies: list[tuple[str, str, str | None]] = []

    def receive(self, text: str, *, who: str, thread: str | None = None) -> ExternalResource:
        """Someone writes to the account on the network: a post, or a direct message."""
        post = ExternalResource(
            external_id=f"msg-{next(self._ids)}",
            message=text,
            created_at=datetime.now(UTC),
            author=Author(f"user-{who.lower()}", name=who),
            thread_id=thread,
        )
        self.unread.append(post)
        return post

    async def fetch_new(self) -> list[ExternalResource]:
        """What arrived since the last fetch."""
        taken, self.unread = self.unread, []
        return taken

    async def post_reply(self, text: str, *, in_reply_to: str | None) -> str:
        """Post a reply; returns the network's id of the new message."""
        message_id = f"reply-{next(self._ids)}"
        self.replies.append((message_id, text, in_reply_to))
        return message_id
