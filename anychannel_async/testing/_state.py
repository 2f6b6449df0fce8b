"""The emulated account's state: tickets, imports, threads, reported errors and the request log.

A push is decided in two steps, as the real service behaves under concurrency: `plan_push` reads
the committed state plus the request's own earlier resources when the request arrives, and
`commit` applies the plan when the request is answered. Two requests in flight together therefore
cannot see each other, which is how duplicate tickets for one new thread arise in production.

Every method takes one `threading.Lock`, so a test thread can read snapshots while the
emulator's loop thread writes. Nothing here knows about HTTP or faults.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import attrs

from ._records import Comment, RecordedRequest, ReportedError, Ticket

__all__ = ["AccountState", "Created", "Outcome", "PushPlan", "RequestHandle"]

SUCCESS = "success"
ALREADY_IMPORTED = "already_imported"
PARENT_NOT_FOUND = "could_not_locate_parent_external_resource"
PROCESSING_ERROR = "processing_error"
HALTED = "halted"
NEW_TICKET = "comment_on_new_ticket"
EXISTING_TICKET = "comment_on_existing_ticket"


@attrs.frozen
class Outcome:
    """The status of one resource of a push, in the request's order."""

    external_id: str
    code: str
    description: str | None = None


@attrs.frozen
class Created:
    """One resource a push (or pull) created: a comment on a new or an existing ticket."""

    kind: str
    external_id: str
    ticket_id: int
    comment_id: int


@attrs.define
class _TicketDraft:
    """The mutable form of a ticket: comments are appended as replies are committed."""

    id: int
    instance_push_id: str
    thread_id: str | None
    comments: list[Comment]
    fields: tuple[tuple[str, object], ...]

    def freeze(self) -> Ticket:
        return Ticket(
            id=self.id,
            instance_push_id=self.instance_push_id,
            thread_id=self.thread_id,
            comments=tuple(self.comments),
            fields=self.fields,
        )


@attrs.define
class PushPlan:
    """What one push request will change once it is answered, and the outcomes it reports."""

    generation: int
    instance_push_id: str
    outcomes: list[Outcome] = attrs.Factory(list)
    new_tickets: dict[int, _TicketDraft] = attrs.Factory(dict)
    # Replies to tickets committed before this request arrived: (ticket id, comment).
    replies: list[tuple[int, Comment]] = attrs.Factory(list)
    # external_id -> id of the ticket that holds it, for every resource this request imports.
    imports: dict[str, int] = attrs.Factory(dict)
    threads: dict[str, int] = attrs.Factory(dict)
    #: What each imported resource became, in request order, as Zendesk's
    #: ``resources_created_from_external_ids`` event tells it.
    created: list[Created] = attrs.Factory(list)


@attrs.define
class RequestHandle:
    """The log entry of a request, filled in as the request is read and answered."""

    generation: int
    path: str
    at: float
    user_agent: str | None
    cookie: str | None = None
    instance_push_id: str | None = None
    request_id: str | None = None
    external_ids: tuple[str, ...] = ()
    status: int = 0
    body: Mapping[str, object] | None = None

    def freeze(self) -> RecordedRequest:
        return RecordedRequest(
            path=self.path,
            instance_push_id=self.instance_push_id,
            request_id=self.request_id,
            external_ids=self.external_ids,
            status=self.status,
            at=self.at,
            user_agent=self.user_agent,
            cookie=self.cookie,
            body=self.body,
        )


class AccountState:
    """Everything the emulated Zendesk account remembers, for every instance_push_id.

    With `record_bodies`, the request log keeps each parsed body too: tests of the wire format
    read them; a long-running emulator leaves it off, so it does not hold every body it was sent.
    """

    def __init__(self, *, record_bodies: bool = False) -> None:
        self._record_bodies = record_bodies
        self._lock = threading.Lock()
        self._generation = 0
        self._clear()

    def _clear(self) -> None:
        # A reset bumps the generation so that a request still in flight from before it cannot
        # commit into the fresh state.
        self._generation += 1
        self._next_ticket_id = 1
        # Comment ids are Zendesk's own sequence, apart from tickets' (as in Zendesk): they
        # start far from ticket ids so that a test mixing the two up fails.
        self._next_comment_id = 10_001
        self._tickets: dict[int, _TicketDraft] = {}
        self._imports: dict[tuple[str, str], int] = {}
        self._import_counts: Counter[tuple[str, str]] = Counter()
        self._threads: dict[tuple[str, str], int] = {}
        self._reported: list[ReportedError] = []
        self._requests: list[RequestHandle] = []
        # Requests being served now (arrived, not yet answered or dropped), and the most at once.
        self._serving = 0
        self._peak_serving = 0

    def reset(self) -> None:
        """Forget tickets, imports, threads, reported errors and the request log."""
        with self._lock:
            self._clear()

    # -- the request log -------------------------------------------------------------------

    def arrive(self, path: str, user_agent: str | None, cookie: str | None = None) -> RequestHandle:
        """Log a request as it arrives, so the log is in arrival order."""
        with self._lock:
            handle = RequestHandle(
                generation=self._generation,
                path=path,
                at=time.monotonic(),
                user_agent=user_agent,
                cookie=cookie,
            )
            self._requests.append(handle)
            self._serving += 1
            self._peak_serving = max(self._peak_serving, self._serving)
            return handle

    def left(self, handle: RequestHandle) -> None:
        """A request's answer was sent, or its connection dropped."""
        with self._lock:
            if handle.generation == self._generation:
                self._serving -= 1

    def describe(self, handle: RequestHandle, body: Mapping[str, object] | None) -> None:
        """Note what the request's body says about itself, reading it defensively: it may be
        invalid, and the log should still show what was sent."""
        if body is None:
            return
        ipid = body.get("instance_push_id")
        request_id = body.get("request_id")
        resources = body.get("external_resources")
        external_ids: tuple[str, ...] = ()
        if isinstance(resources, list):
            external_ids = tuple(
                r["external_id"]
                for r in resources
                if isinstance(r, dict) and isinstance(r.get("external_id"), str)
            )
        elif isinstance(body.get("external_id"), str):
            external_ids = (str(body["external_id"]),)
        with self._lock:
            handle.instance_push_id = ipid if isinstance(ipid, str) else None
            handle.request_id = request_id if isinstance(request_id, str) else None
            handle.external_ids = external_ids
            if self._record_bodies:
                handle.body = body

    def answered(self, handle: RequestHandle, status: int) -> None:
        """Note the status sent for a request."""
        with self._lock:
            handle.status = status

    # -- push --------------------------------------------------------------------------------

    def plan_push(
        self,
        instance_push_id: str,
        resources: Sequence[Mapping[str, object]],
        fails: Callable[[str], bool],
    ) -> PushPlan:
        """Decide each resource's outcome from the committed state and this request alone.

        `resources` must have passed validation. `fails(external_id)` says whether a resource
        hits an injected processing error.
        """
        with self._lock:
            plan = PushPlan(generation=self._generation, instance_push_id=instance_push_id)
            failed = False
            for resource in resources:
                plan.outcomes.append(self._plan_one(plan, resource, failed, fails))
                failed = failed or plan.outcomes[-1].code == PROCESSING_ERROR
            return plan

    def _plan_one(
        self,
        plan: PushPlan,
        resource: Mapping[str, object],
        failed: bool,
        fails: Callable[[str], bool],
    ) -> Outcome:
        ipid = plan.instance_push_id
        external_id = str(resource["external_id"])
        if failed:
            return Outcome(external_id, HALTED)
        if (ipid, external_id) in self._imports or external_id in plan.imports:
            return Outcome(external_id, ALREADY_IMPORTED)
        if fails(external_id):
            return Outcome(external_id, PROCESSING_ERROR, "Injected processing error")
        comment = _comment_from(resource, self._next_comment_id)
        self._next_comment_id += 1
        parent_id = resource.get("parent_id")
        thread_id = resource.get("thread_id")
        if isinstance(parent_id, str):
            ticket_id = self._imports.get((ipid, parent_id), plan.imports.get(parent_id))
            if ticket_id is None:
                # Zendesk names the missing parent in the description and goes on with the rest.
                return Outcome(external_id, PARENT_NOT_FOUND, parent_id)
            kind = self._reply(plan, ticket_id, comment)
        elif isinstance(thread_id, str):
            ticket_id = self._threads.get((ipid, thread_id), plan.threads.get(thread_id))
            if ticket_id is None:
                ticket_id = self._open(plan, resource, comment, thread_id)
                plan.threads[thread_id] = ticket_id
                kind = NEW_TICKET
            else:
                kind = self._reply(plan, ticket_id, comment)
        else:
            ticket_id = self._open(plan, resource, comment, None)
            kind = NEW_TICKET
        plan.imports[external_id] = ticket_id
        assert comment.id is not None
        plan.created.append(Created(kind, external_id, ticket_id, comment.id))
        return Outcome(external_id, SUCCESS)

    def _open(
        self,
        plan: PushPlan,
        resource: Mapping[str, object],
        comment: Comment,
        thread_id: str | None,
    ) -> int:
        # Ids are taken at planning time and never reused, even if the request then fails to
        # commit: like the real service, ticket ids may have gaps.
        ticket_id = self._next_ticket_id
        self._next_ticket_id += 1
        plan.new_tickets[ticket_id] = _TicketDraft(
            id=ticket_id,
            instance_push_id=plan.instance_push_id,
            thread_id=thread_id,
            comments=[comment],
            fields=_fields_from(resource.get("fields")),
        )
        return ticket_id

    @staticmethod
    def _reply(plan: PushPlan, ticket_id: int, comment: Comment) -> str:
        draft = plan.new_tickets.get(ticket_id)
        if draft is not None:
            draft.comments.append(comment)
            return NEW_TICKET  # the ticket is new in this same request: so is the comment
        plan.replies.append((ticket_id, comment))
        return EXISTING_TICKET

    def commit(self, plan: PushPlan) -> bool:
        """Apply a plan's changes; a plan made before the last reset is dropped (False)."""
        with self._lock:
            if plan.generation != self._generation:
                return False
            ipid = plan.instance_push_id
            self._tickets.update(plan.new_tickets)
            for ticket_id, comment in plan.replies:
                self._tickets[ticket_id].comments.append(comment)
            for external_id, ticket_id in plan.imports.items():
                # A racing request may have imported the same id: the first one keeps it, and
                # the count shows the duplicate.
                self._imports.setdefault((ipid, external_id), ticket_id)
                self._import_counts[ipid, external_id] += 1
            for thread_id, ticket_id in plan.threads.items():
                self._threads.setdefault((ipid, thread_id), ticket_id)
            return True

    # -- agents ------------------------------------------------------------------------------

    def latest(self, ticket_id: int) -> tuple[Ticket, int] | None:
        """A ticket and the generation it was read in, or None when there is no such ticket."""
        with self._lock:
            draft = self._tickets.get(ticket_id)
            return None if draft is None else (draft.freeze(), self._generation)

    def agent_comment(
        self, ticket_id: int, external_id: str, message: str, generation: int
    ) -> Comment | None:
        """Add an agent's reply, sent out as external_id, to a ticket; the id is the ticket's
        from now on, as Zendesk associates it (a resource pushed later with it as parent_id
        threads here, and pushing it again is ``already_imported``). None after a reset."""
        with self._lock:
            draft = self._tickets.get(ticket_id)
            if draft is None or generation != self._generation:
                return None
            comment = Comment(
                external_id=external_id,
                message=message,
                author_external_id="zendesk-agent",
                author_name="Agent",
                created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                internal_note=False,
                html_message=None,
                id=self._next_comment_id,
                by_agent=True,
            )
            self._next_comment_id += 1
            draft.comments.append(comment)
            self._imports.setdefault((draft.instance_push_id, external_id), ticket_id)
            return comment

    # -- report_error ------------------------------------------------------------------------

    def report_error(self, error: ReportedError, generation: int) -> None:
        """Keep a reported channelback error, unless it arrived before the last reset."""
        with self._lock:
            if generation == self._generation:
                self._reported.append(error)

    # -- snapshots ---------------------------------------------------------------------------

    def tickets(self) -> list[Ticket]:
        """Every ticket, by id."""
        with self._lock:
            return [self._tickets[i].freeze() for i in sorted(self._tickets)]

    def peak_concurrent_requests(self) -> int:
        """The most requests served at once since the last reset."""
        with self._lock:
            return self._peak_serving

    def requests(self) -> list[RecordedRequest]:
        """Every request since the last reset, in arrival order."""
        with self._lock:
            return [handle.freeze() for handle in self._requests]

    def reported_errors(self) -> list[ReportedError]:
        """Every accepted report_error call, in order."""
        with self._lock:
            return list(self._reported)

    def count_status(self, status: int) -> int:
        """How many answers with this status were sent."""
        with self._lock:
            return sum(1 for handle in self._requests if handle.status == status)

    def ticket_for(self, external_id: str) -> Ticket | None:
        """The first ticket holding that resource, as opener or comment, in any account."""
        with self._lock:
            for ticket_id in sorted(self._tickets):
                draft = self._tickets[ticket_id]
                if any(c.external_id == external_id for c in draft.comments):
                    return draft.freeze()
            return None

    def import_count(self, external_id: str) -> int:
        """How many times that external_id was imported, summed over accounts."""
        with self._lock:
            return sum(n for (_, eid), n in self._import_counts.items() if eid == external_id)


def _comment_from(resource: Mapping[str, object], comment_id: int) -> Comment:
    author = resource["author"]
    assert isinstance(author, dict)  # guaranteed by validation
    name = author.get("name")
    html = resource.get("html_message")
    return Comment(
        external_id=str(resource["external_id"]),
        message=str(resource["message"]),
        author_external_id=str(author["external_id"]),
        author_name=name if isinstance(name, str) else None,
        created_at=str(resource["created_at"]),
        internal_note=resource.get("internal_note") is True,
        html_message=html if isinstance(html, str) else None,
        id=comment_id,
    )


def _fields_from(fields: object) -> tuple[tuple[str, object], ...]:
    if not isinstance(fields, list):
        return ()
    return tuple((str(item["id"]), item["value"]) for item in fields if isinstance(item, dict))
