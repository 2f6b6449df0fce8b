"""The outbox under faults: an unusable file, closing mid-submit, parents that fail for now."""

from __future__ import annotations

import asyncio
import ctypes
import os
import pickle
import subprocess
from pathlib import Path

import pytest

from anychannel_async import (
    AnyChannelClient,
    ClosedError,
    OutboxError,
    OutcomeUnknownError,
    ParentNotFoundError,
    PushPipeline,
    RetryPolicy,
    Verdict,
    verdict,
)
from anychannel_async._outbox import DEAD, PENDING, RESOLVED, connect
from anychannel_async.testing import Faults, ZendeskEmulator

from .conftest import IPID, TOKEN, resource, run_python
from .test_outbox import rows


async def test_an_outbox_that_cannot_open_fails_every_waiting_submit(
    client: AnyChannelClient,
) -> None:
    """A path SQLite refuses gives OutboxError to each concurrent submit; none hangs."""
    pipe = PushPipeline(client, IPID, outbox="bad\0name.sqlite")
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(pipe.submit(resource(f"x{n}")) for n in range(2)), return_exceptions=True),
        timeout=5,
    )
    assert [type(o) for o in outcomes] == [OutboxError, OutboxError]
    await pipe.close()


async def test_submit_racing_close_is_refused_and_its_row_replayed_later(
    client: AnyChannelClient, emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """A submit still writing when close() starts raises ClosedError; its row is pushed at the
    next start rather than lost."""
    path = tmp_path / "outbox.sqlite"
    pipe = PushPipeline(client, IPID, outbox=path)
    await pipe.__aenter__()
    submitting = asyncio.create_task(pipe.submit(resource("late")))
    await asyncio.sleep(0)  # it is waiting for its row to be written
    await pipe.close()
    with pytest.raises(ClosedError):
        await submitting
    async with PushPipeline(client, IPID, outbox=path) as again:
        await again.flush()
    assert emulator.import_count("late") == 1
    assert rows(path) == [("late", RESOLVED, None)]


async def test_children_of_a_parent_of_unknown_outcome_stay_pending(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """A parent that failed for now keeps its children pending too; the next start imports both."""
    path = tmp_path / "outbox.sqlite"
    async with AnyChannelClient(
        token=TOKEN, base_url=emulator.base_url, retry=RetryPolicy(max_tries=1)
    ) as client:
        emulator.faults = Faults(server_error_rate=1.0)
        async with PushPipeline(client, IPID, outbox=path, max_latency=0, max_batch_size=1) as pipe:
            parent = await pipe.submit(resource("p"))
            child = await pipe.submit(resource("c", parent_id="p"))
            await pipe.flush()
        assert isinstance(parent.exception(), OutcomeUnknownError)
        error = child.exception()
        assert isinstance(error, ParentNotFoundError)  # its own, naming it
        assert error.external_id == "c"
        assert isinstance(error.parent_error, OutcomeUnknownError)
        assert [state for _, state, _ in rows(path)] == [PENDING, PENDING]

        emulator.faults = Faults()
        async with PushPipeline(client, IPID, outbox=path) as pipe:
            await pipe.flush()
    assert [state for _, state, _ in rows(path)] == [RESOLVED, RESOLVED]
    ticket = emulator.ticket_for("c")
    assert ticket is not None
    assert ticket.external_id == "p"


async def test_a_chain_under_a_parent_of_unknown_outcome_stays_pending_and_lands_in_one_ticket(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """A reply chain p <- c0 <- c1 <- ... whose root's outcome stays unknown: every level fails
    with an error of its own (naming it, RETRY) holding the root's error, not its parent's
    error nested in turn (a chain of n would hold n levels, its messages growing with each: a
    thread of thousands of replies, quadratic memory, a RecursionError to pickle). Every row
    stays pending; the next start imports the whole chain, in order, into one ticket."""
    path = tmp_path / "outbox.sqlite"
    chain = [f"c{n}" for n in range(30)]
    async with AnyChannelClient(
        token=TOKEN, base_url=emulator.base_url, retry=RetryPolicy(initial_delay=0, max_tries=1)
    ) as client:
        emulator.faults = Faults(server_error_rate=1.0)
        async with PushPipeline(
            client, IPID, outbox=path, max_latency=0, max_batch_size=1, max_attempts=1
        ) as pipe:
            root = await pipe.submit(resource("p"))
            children = [
                await pipe.submit(resource(child, parent_id=parent))
                for parent, child in zip(["p", *chain], chain, strict=False)
            ]
            await pipe.flush()
        unknown = root.exception()
        assert isinstance(unknown, OutcomeUnknownError)
        for parent, child, future in zip(["p", *chain], chain, children, strict=False):
            error = future.exception()
            assert isinstance(error, ParentNotFoundError)
            assert (error.external_id, verdict(error)) == (child, Verdict.RETRY)
            assert str(error).startswith(f"{child}: parent {parent} failed")
            assert type(error.parent_error) is OutcomeUnknownError  # the root's, flat
            assert error.parent_error.args == unknown.args
            assert error.parent_error is not unknown
            assert str(error).count("may pass pushed again") == 1, str(error)
            again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
            assert (type(again), again.args) == (ParentNotFoundError, error.args)
            assert isinstance(again.parent_error, OutcomeUnknownError)
        assert {state for _, state, _ in rows(path)} == {PENDING}

        emulator.faults = Faults()
        async with PushPipeline(client, IPID, outbox=path) as pipe:
            await pipe.flush()
    assert {state for _, state, _ in rows(path)} == {RESOLVED}
    assert [emulator.import_count(i) for i in ["p", *chain]] == [1] * (1 + len(chain))
    assert [[c.external_id for c in t.comments] for t in emulator.tickets] == [["p", *chain]]


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1


def _honour_mode_bits() -> None:
    """In the child, before exec: give up root's right to write where the mode bits say no
    (CAP_DAC_OVERRIDE), so a read-only directory is read-only for root too."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _child(*args: str) -> subprocess.CompletedProcess[str]:
    """`python ARGS...` as a user whom the mode bits bind; standard input empty."""
    return run_python(*args, stdin="", preexec_fn=_honour_mode_bits)


def test_a_read_only_directory_is_an_outbox_error_that_says_so(tmp_path: Path) -> None:
    """An outbox in a read-only directory cannot be written (SQLite needs its -wal and -shm
    beside it): retry and push refuse it with an OutboxError saying so, the file unchanged;
    list still reads it."""
    directory = tmp_path / "ro"
    directory.mkdir()
    path = directory / "outbox.sqlite"
    db = connect(path)
    db.execute(
        "INSERT INTO outbox (instance_push_id, external_id, body, state, error, submitted_at)"
        " VALUES (?, 'dead-1', x'7b7d', ?, 'ProcessingError: no', 0)",
        (IPID, DEAD),
    )
    db.close()
    directory.chmod(0o555)
    try:
        probe = _child("-c", f"open({str(directory / 'probe')!r}, 'w')")
        if probe.returncode == 0:
            pytest.skip("cannot make a directory read-only for this user here")

        retried = _child("-m", "anychannel_async", "outbox", "retry", str(path))
        assert retried.returncode == 1, retried.stdout + retried.stderr
        assert "OutboxError" in retried.stderr
        assert f"the directory {str(directory)!r} is read-only" in retried.stderr
        assert "Traceback" not in retried.stderr

        pushed = _child(
            "-m",
            "anychannel_async",
            "push",
            "-",
            "--outbox",
            str(path),
            "--base-url",
            "http://127.0.0.1:9",
            "--instance-push-id",
            IPID,
        )
        assert pushed.returncode == 1, pushed.stdout + pushed.stderr
        assert "is read-only" in pushed.stderr
        assert "Traceback" not in pushed.stderr

        listed = _child("-m", "anychannel_async", "outbox", "list", str(path))
        assert listed.returncode == 0, listed.stderr
        assert "dead-1: ProcessingError: no" in listed.stdout
    finally:
        directory.chmod(0o755)
    assert rows(path) == [("dead-1", DEAD, "ProcessingError: no")]
