"""Conversations on their own: keys, waiting children, failures, cycles (pure, no I/O)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from anychannel_async._conversations import Conversations, Parent
from anychannel_async._errors import TransportError


@dataclass(frozen=True, eq=False)
class Node:
    """A pending resource as conversations see it."""

    external_id: str
    parent_id: str | None
    key: str
    thread_id: str | None = None


def admit(
    conv: Conversations[Node],
    external_id: str,
    thread_id: str | None = None,
    parent_id: str | None = None,
) -> Node:
    node = Node(external_id, parent_id, conv.key_for(external_id, thread_id, parent_id), thread_id)
    conv.admit(node)
    return node


ids = st.sampled_from([f"e{n}" for n in range(8)])
threads = st.sampled_from([None, None, "t0", "t1"])


@st.composite
def submissions(draw: st.DrawFn) -> list[tuple[str, str | None, str | None]]:
    """(external_id, thread_id, parent_id) triples; a parent is an earlier id or a stranger."""
    out: list[tuple[str, str | None, str | None]] = []
    for _ in range(draw(st.integers(1, 25))):
        external_id = draw(ids)
        thread_id = draw(threads)
        parent_id = None
        if thread_id is None and draw(st.booleans()):
            parent_id = draw(st.sampled_from([*(e for e, _, _ in out), "stranger"]))
            if parent_id == external_id:
                parent_id = None
        out.append((external_id, thread_id, parent_id))
    return out


@given(submissions())
def test_resources_that_must_not_race_share_one_key(
    workload: list[tuple[str, str | None, str | None]],
) -> None:
    """One thread, one key; a child shares its pending parent's key; an id pending twice
    keeps its first key."""
    conv: Conversations[Node] = Conversations()
    nodes: dict[str, Node] = {}
    thread_keys: dict[str, str] = {}
    for external_id, thread_id, parent_id in workload:
        earlier = nodes.get(external_id)
        node = admit(conv, external_id, thread_id, parent_id)
        if earlier is not None:
            assert node.key == earlier.key
        elif thread_id is not None:
            assert thread_keys.setdefault(thread_id, node.key) == node.key
        elif parent_id is not None and parent_id in nodes:
            assert node.key == nodes[parent_id].key
        nodes.setdefault(external_id, node)


@given(st.lists(st.booleans(), min_size=1, max_size=6), st.booleans())
def test_children_wait_for_a_pending_parent_and_are_handed_back_once_in_order(
    imported_flags: list[bool], imported: bool
) -> None:
    """Children placed under a pending parent come back, in order, exactly once, at its end."""
    conv: Conversations[Node] = Conversations()
    parent = admit(conv, "p")
    children = [admit(conv, f"c{n}", parent_id="p") for n in range(len(imported_flags))]
    assert [conv.place(child) for child in children] == [Parent.PENDING] * len(children)
    assert conv.finish(parent, imported=imported) == children
    assert conv.finish(parent, imported=imported) == []
    assert conv.drain_waiting() == []


def test_a_failed_parent_dooms_its_children_until_it_is_submitted_again() -> None:
    """After a parent failed, its children are doomed (with its cause) until it is pending
    again; a parent that then goes through is forgotten as failed."""
    conv: Conversations[Node] = Conversations()
    parent = admit(conv, "p")
    cause = TransportError("down")
    conv.finish(parent, imported=False, cause=cause)
    child = admit(conv, "c", parent_id="p")
    assert conv.doomed(child)
    assert conv.cause("p") is cause
    assert conv.place(child) is Parent.FAILED
    again = admit(conv, "p")
    assert not conv.doomed(child)
    conv.finish(again, imported=True)
    assert not conv.doomed(child)
    assert conv.place(child) is Parent.ABSENT


def test_a_parent_chain_that_loops_back_is_a_cycle() -> None:
    """A child whose pending parent descends from it would wait for itself: a cycle."""
    conv: Conversations[Node] = Conversations()
    a = admit(conv, "a", parent_id="c")
    admit(conv, "b", parent_id="a")
    admit(conv, "c", parent_id="b")
    assert conv.place(a) is Parent.CYCLE
    assert conv.drain_waiting() == []


@given(st.integers(1, 50))
def test_the_memory_of_failures_is_bounded(count: int) -> None:
    """Only the most recent failures are remembered: memory stays flat."""
    conv: Conversations[Node] = Conversations(failed_memory=10)
    for n in range(count):
        conv.finish(admit(conv, f"e{n}"), imported=False)
    remembered = [n for n in range(count) if conv.doomed(Node("x", f"e{n}", "k"))]
    assert remembered == list(range(max(0, count - 10), count))


def test_an_id_stays_pending_while_any_submission_of_it_is() -> None:
    """The latest submission of an id ends first (cancelled, failed): an older one still
    waits, so the id is pending all the same: one key for it, another conversation refused,
    its children not doomed and placed to wait, and not failed with the latest."""
    conv: Conversations[Node] = Conversations()
    older = admit(conv, "p", parent_id="g")
    child = admit(conv, "c", parent_id="p")
    assert conv.place(child) is Parent.PENDING
    latest = admit(conv, "p", parent_id="g")
    assert conv.finish(latest, imported=False, failed=False) == []  # cancelled: c waits on
    assert conv.key_for("p", "t", None) == older.key
    assert conv.clash(Node("p", None, "k", thread_id="t")) is not None
    again = admit(conv, "p", parent_id="g")
    assert again.key == older.key
    assert conv.finish(again, imported=False) == []  # failed: c waits on, p not failed
    assert not conv.doomed(Node("d", "p", "k"))
    assert conv.place(Node("d", "p", "k")) is Parent.PENDING
    assert conv.finish(older, imported=True)[0] is child
    assert conv.members() == [child]


@st.composite
def lifetimes(draw: st.DrawFn) -> list[tuple[str, int, str | None, str | None, bool, bool]]:
    """Steps: ("admit", index, thread_id, parent_id, _, _) submits ids[index];
    ("finish", index, _, _, imported, failed) ends the index-th pending member."""
    steps: list[tuple[str, int, str | None, str | None, bool, bool]] = []
    for _ in range(draw(st.integers(1, 40))):
        if draw(st.booleans()):
            thread_id = draw(st.sampled_from([None, "t0", "t1"]))
            parent_id = None if thread_id else draw(st.sampled_from([None, "e0", "e1", "x"]))
            steps.append(("admit", draw(st.integers(0, 3)), thread_id, parent_id, False, False))
        else:
            steps.append(("finish", draw(st.integers(0, 99)), None, None, *draw(flags)))
    return steps


flags = st.tuples(st.booleans(), st.booleans())


@given(lifetimes())
def test_every_pending_submission_of_an_id_shares_its_key_and_conversation(
    steps: list[tuple[str, int, str | None, str | None, bool, bool]],
) -> None:
    """Whatever order submissions of ids end in: while any submission of an id is pending, a
    new one shares its key, one in another conversation is refused, and the id counts as a
    pending parent (children wait for it, never doomed by an earlier failure of it)."""
    conv: Conversations[Node] = Conversations()
    for action, index, thread_id, parent_id, imported, failed in steps:
        if action == "admit":
            external_id = f"e{index}"
            if parent_id == external_id:
                parent_id = None
            node = Node(
                external_id,
                parent_id,
                conv.key_for(external_id, thread_id, parent_id),
                thread_id,
            )
            if conv.clash(node) is None:
                conv.admit(node)
            else:  # refused: the router fails it, and finishes it as such
                assert conv.finish(node, imported=False) == []
        else:
            members = conv.members()
            if members:
                conv.finish(members[index % len(members)], imported, failed=failed)
        pending: dict[str, list[Node]] = {}
        for member in conv.members():
            pending.setdefault(member.external_id, []).append(member)
        for external_id, same in pending.items():
            first = same[0]
            assert {(m.key, m.thread_id, m.parent_id) for m in same} == {
                (first.key, first.thread_id, first.parent_id)
            }
            assert conv.key_for(external_id, "elsewhere", None) == first.key
            assert conv.clash(Node(external_id, None, "k", thread_id="elsewhere")) is not None
            child = Node("child", external_id, "k")
            assert not conv.doomed(child)


# How a submission ends unimported: cancelled by its owner, failed for good, failed for now.
_ENDS = ("cancelled", "final", "for now")


@given(st.lists(st.sampled_from(_ENDS), min_size=1, max_size=5), st.randoms())
def test_an_id_fails_for_now_if_any_of_its_submissions_did_whatever_the_order(
    ends: list[str], rng: random.Random
) -> None:
    """Submissions of one id, all pending at once, end unimported in any order: the id's
    children fail with a cause that may pass (they stay to be pushed again) exactly when one
    of them ended for now, and the id counts as failed exactly when one of them failed,
    however the last one ended (cancels alone tell nothing of it)."""
    conv: Conversations[Node] = Conversations()
    members = [admit(conv, "p") for _ in ends]
    child = admit(conv, "c", parent_id="p")
    assert conv.place(child) is Parent.PENDING
    order = list(zip(members, ends, strict=True))
    rng.shuffle(order)
    causes = {id(member): TransportError(f"for now {n}") for n, member in enumerate(members)}
    released: list[Node] = []
    for member, end in order:
        cause = causes[id(member)] if end == "for now" else None
        released += conv.finish(member, imported=False, cause=cause, failed=end != "cancelled")
    assert released == [child]
    if "for now" in ends:
        assert conv.cause("p") in causes.values()
    else:
        assert conv.cause("p") is None
    # A child submitted now fails at once, unless no submission of p failed (all cancelled).
    assert conv.doomed(Node("d", "p", "k")) is (set(ends) != {"cancelled"})
    assert conv.members() == [child]


def test_a_submission_refused_for_a_clash_tells_nothing_of_its_id() -> None:
    """A submission of a pending id in another conversation is refused (never admitted) and
    finished as failed: that says nothing of the id. Its pending one then cancelled by its
    owner leaves the id unfailed, as if the refused one had never come: a child submitted
    later goes to Zendesk, not failed at once."""
    conv: Conversations[Node] = Conversations()
    pending = admit(conv, "p", thread_id="t0")
    refused = Node("p", None, conv.key_for("p", "t1", None), "t1")
    assert conv.clash(refused) is not None
    assert conv.finish(refused, imported=False) == []
    assert conv.finish(pending, imported=False, failed=False) == []
    assert not conv.doomed(Node("c", "p", "k"))
    assert conv.cause("p") is None
