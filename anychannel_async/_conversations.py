"""Conversations: ordering keys, pending and failed ids, children waiting for a parent, cycles.

Zendesk threads a reply onto its parent's ticket only once the parent is imported, and opens
one ticket per thread only if two requests never carry the same thread at once. This module
holds what the pipeline knows to keep those rules: which resources are pending (by id), which
failed (a bounded memory), and which children wait for a pending parent. It is pure: no I/O,
no futures, no event loop; it decides nothing about outcomes (the router does) and sends
nothing (the sender does).
"""

from __future__ import annotations

import enum
from typing import Generic, Protocol, TypeVar

from ._errors import AnyChannelError

__all__ = ["Conversations", "Member", "Parent"]

# Ids of resources that failed, remembered so their children fail at once instead of waiting
# parent_timeout for a parent that will never come. Bounded: memory must stay flat.
FAILED_MEMORY = 10_000


class Member(Protocol):
    """What a conversation needs to know of a pending resource."""

    @property
    def external_id(self) -> str: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def thread_id(self) -> str | None: ...
    @property
    def key(self) -> str: ...


M = TypeVar("M", bound=Member)


class Parent(enum.Enum):
    """Where a child's parent stands, when Zendesk could not locate it."""

    #: Pending here: the child waits for its outcome (released or failed with it).
    PENDING = "pending"
    #: Pending here, but descending from the child itself: waiting would never end.
    CYCLE = "cycle"
    #: It failed here (see `Conversations.cause`).
    FAILED = "failed"
    #: Not known here: it may come from another process; try again later.
    ABSENT = "absent"


class Conversations(Generic[M]):
    """The pipeline's view of conversations in progress."""

    __slots__ = ("_ended", "_failed", "_failed_memory", "_older", "_pending", "_waiting")

    def __init__(self, *, failed_memory: int = FAILED_MEMORY) -> None:
        # Every pending resource is here by id (the latest of its id), or in _older (those the
        # same id submitted again displaced, oldest first, a dict per id for removal at any
        # place in constant time; made on first use): together, what the pipeline holds,
        # without a set of its own beside them (~220 bytes per busy account of a pool). An id
        # is in _pending while any submission of it is pending: when the latest ends first
        # (cancelled, failed) the newest older one takes its place, so every rule read from
        # _pending (key, clash, doomed, place) sees the id as long as it waits.
        self._pending: dict[str, M] = {}
        self._older: dict[str, dict[M, None]] | None = None
        # Children waiting for a pending parent, and what failed: made on first use (a pool
        # holds a Conversations per busy account, and an empty dict is 64 bytes).
        self._waiting: dict[str, list[M]] | None = None
        # id -> None when it failed for good (its children fail as not found), or the error
        # that stopped it without a final answer (its children fail with a copy of that).
        # Oldest first (a dict keeps insertion order; an OrderedDict costs twice as much).
        self._failed: dict[str, AnyChannelError | None] | None = None
        self._failed_memory = failed_memory
        # id -> how a submission of it failed while another of it was still pending (None:
        # for good; made on first use): the id failed, with that cause if the last of them
        # ends unimported, whichever way; a cause that may pass wins over None.
        self._ended: dict[str, AnyChannelError | None] | None = None

    def key_for(self, external_id: str, thread_id: str | None, parent_id: str | None) -> str:
        """The ordering key: resources sharing one are never in two requests at once."""
        same = self._pending.get(external_id)
        if same is not None:  # the same id twice must not race into two tickets
            return same.key
        if thread_id is not None:
            return "t:" + thread_id
        if parent_id is not None:
            parent = self._pending.get(parent_id)
            return parent.key if parent is not None else "r:" + parent_id
        return "r:" + external_id

    def clash(self, member: M) -> str | None:
        """Why member may not be admitted: the same id is pending in another conversation
        (its key would let either race its conversation into a second ticket); else None."""
        same = self._pending.get(member.external_id)
        if same is None or (same.thread_id, same.parent_id) == (member.thread_id, member.parent_id):
            return None
        return (
            f"{member.external_id} is already pending with thread_id={same.thread_id!r},"
            f" parent_id={same.parent_id!r}; submit it again once that one resolved"
        )

    def admit(self, member: M) -> None:
        """member is pending from now on (the latest of its id, if submitted twice)."""
        external_id = member.external_id
        older = self._pending.get(external_id)
        if older is not None:
            if self._older is None:
                self._older = {}
            self._older.setdefault(external_id, {})[older] = None
        self._pending[external_id] = member

    def members(self) -> list[M]:
        """Every member admitted and not yet finished."""
        members = list(self._pending.values())
        if self._older:
            for older in self._older.values():
                members.extend(older)
        return members

    def doomed(self, member: M) -> bool:
        """True when member's parent failed here and was not submitted again since."""
        parent_id = member.parent_id
        return (
            parent_id is not None
            and self._failed is not None
            and parent_id in self._failed
            and parent_id not in self._pending  # pending (submitted again since): it may pass
        )

    def cause(self, external_id: str) -> AnyChannelError | None:
        """Why a failed resource failed: None when for good, else the error that stopped it."""
        return None if self._failed is None else self._failed.get(external_id)

    def place(self, child: M) -> Parent:
        """Zendesk could not locate child's parent: where it stands, and if it is pending
        here (and no cycle), child now waits for it."""
        parent_id = child.parent_id or ""
        if parent_id in self._pending:
            if self._descends(parent_id, child.external_id):
                return Parent.CYCLE
            if self._waiting is None:
                self._waiting = {}
            self._waiting.setdefault(parent_id, []).append(child)
            return Parent.PENDING
        if self._failed is not None and parent_id in self._failed:
            return Parent.FAILED
        return Parent.ABSENT

    def finish(
        self,
        member: M,
        imported: bool,
        cause: AnyChannelError | None = None,
        *,
        failed: bool = True,
    ) -> list[M]:
        """member's end: ``imported`` (or it may be, and its children go on: Zendesk will
        tell), or failed (``cause`` None when for good, else the error that stopped it), or
        neither (``failed`` False: its owner cancelled it; nothing is known of its id, which
        an earlier submission may have imported, so a child submitted later goes to Zendesk).
        A submission of the id that failed while another was pending makes the id failed
        when the last one ends unimported, whichever way: for now, with a cause, if any of
        them failed for now.

        Returns the children that waited for it, in the order they began to wait: to push
        now when imported, else to fail with it.
        """
        external_id = member.external_id
        admitted = self._remove(member)
        if not imported and external_id in self._pending:
            # Another submission of the same id is still pending (or member was refused for
            # it, never admitted): the id has not failed, and its children wait for that one.
            # How this one failed is kept: if that one ends unimported too (even cancelled),
            # the id failed, and for now if any of them failed for now (so the order of the
            # ends does not decide whether its children may pass). A refusal tells nothing.
            if failed and admitted:
                if self._ended is None:
                    self._ended = {}
                if cause is not None or external_id not in self._ended:
                    self._ended[external_id] = cause
            return []
        memory = self._failed
        if self._ended is not None and external_id in self._ended:
            ended = self._ended.pop(external_id)
            if not self._ended:
                self._ended = None
            if not imported:
                failed = True
                cause = cause if cause is not None else ended
        if not imported:
            if failed:
                if memory is None:
                    memory = self._failed = {}
                memory.pop(external_id, None)  # inserted again: the newest
                memory[external_id] = cause
                if len(memory) > self._failed_memory:
                    del memory[next(iter(memory))]
        elif memory:
            memory.pop(external_id, None)  # it failed once, and now went through
        if not self._waiting:
            return []
        return self._waiting.pop(external_id, None) or []

    def _remove(self, member: M) -> bool:
        """member is no longer pending; if it was the latest of its id, the newest older
        submission of the id still pending is the latest now. False when it was not pending
        (refused at admission)."""
        external_id = member.external_id
        older = self._older.get(external_id) if self._older is not None else None
        found = False
        if self._pending.get(external_id) is member:
            found = True
            if older:
                self._pending[external_id] = older.popitem()[0]  # the newest
            else:
                del self._pending[external_id]
        elif older and member in older:
            found = True
            del older[member]
        if older is not None and not older:
            assert self._older is not None
            del self._older[external_id]
            if not self._older:
                self._older = None
        return found

    def drain_waiting(self) -> list[M]:
        """Every child still waiting for a parent (the pipeline is closing)."""
        waiting, self._waiting = self._waiting, None
        if waiting is None:
            return []
        return [child for children in waiting.values() for child in children]

    def _descends(self, parent_id: str | None, external_id: str) -> bool:
        """True when external_id is on the chain of pending parents from parent_id up."""
        seen: set[str] = set()
        while parent_id is not None and parent_id not in seen:
            if parent_id == external_id:
                return True
            seen.add(parent_id)
            parent = self._pending.get(parent_id)
            parent_id = parent.parent_id if parent is not None else None
        return False
