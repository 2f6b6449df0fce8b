"""Submission: one resource on its way through a pipeline, and who may write what of it.

The user's resource is a frozen value and is never touched; what the pipeline learns about it
on the way lives here. Every field has one writer, named beside it: a field written from two
places is where the next bug hides.
"""

from __future__ import annotations

import asyncio

from ._errors import AnyChannelError
from ._models import ExternalResource
from ._results import PushResult

__all__ = ["Submission"]


class Submission:
    """A submitted resource, its JSON body, its future and its bookkeeping.

    It is an `_serde.Encoded` (``external_id`` and ``body``), so a request body is a join of
    submissions: a resource in flight costs one record, not two.
    """

    __slots__ = (
        "attempts",
        "body",
        "due",
        "error",
        "external_id",
        "finished",
        "future",
        "imported",
        "key",
        "orphan_tries",
        "orphaned_at",
        "parent_id",
        "resource",
        "sends",
        "seq",
        "size",
        "thread_id",
        "unknown",
    )

    def __init__(
        self,
        resource: ExternalResource,
        body: bytes,
        future: asyncio.Future[PushResult],
        key: str,
        seq: int | None,
    ) -> None:
        # Set here, never written again.
        self.resource = resource
        self.external_id = resource.external_id
        self.parent_id = resource.parent_id
        self.thread_id = resource.thread_id
        self.body = body
        self.future = future
        #: The ordering key (`_conversations`): one request at a time holds it.
        self.key = key
        #: Its row in the pipeline's outbox, when there is one.
        self.seq = seq
        #: Bytes this resource adds to a push body (its JSON and a separating comma).
        self.size = len(body) + 1
        # Written by the batcher alone: monotonic time by which it should be sent.
        self.due = 0.0
        # Written by the sender alone: pushes that carried it.
        self.sends = 0
        # Written by the router alone, from here on.
        #: Pushes that told nothing definite of it: halted, rate limited, or unknown.
        self.attempts = 0
        #: When Zendesk first could not locate its parent; None while it has not happened.
        self.orphaned_at: float | None = None
        self.orphan_tries = 0
        #: The error of the last push whose outcome for it was unknown (lost, garbled, cut
        #: short by close); None while every answer was definite.
        self.unknown: AnyChannelError | None = None
        #: Set once Zendesk holds it (its future resolved, or it was cancelled yet imported).
        self.imported = False
        #: The error its future was failed with, when it was.
        self.error: AnyChannelError | None = None
        #: Set once the router has done its bookkeeping for the end of this submission.
        self.finished = False

    def __repr__(self) -> str:
        return f"<Submission {self.external_id!r} key={self.key!r}>"
