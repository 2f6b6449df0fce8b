"""Nothing lost on a crash: a child process is SIGKILLed mid-submission, several times."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

from anychannel_async._outbox import PENDING, connect
from anychannel_async.testing import Faults, ZendeskEmulator

from .crash_child import IPID, TOKEN, workload

CHILD = Path(__file__).with_name("crash_child.py")
COUNT = 3000


def _run_child(base_url: str, outbox: Path, kill_at: int | None) -> tuple[list[str], int]:
    """Run the child; SIGKILL it once it has printed kill_at ids (None: let it finish). Counted
    in ids accepted, not in seconds: on a loaded machine the child may not have started
    submitting within a second, and a kill before its first submit leaves nothing to replay."""
    process = subprocess.Popen(
        [sys.executable, str(CHILD), base_url, str(outbox), str(COUNT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        if kill_at is None:
            out, _ = process.communicate(timeout=60)
        else:
            first = [process.stdout.readline() for _ in range(kill_at)]
            process.send_signal(signal.SIGKILL)
            rest, _ = process.communicate(timeout=10)
            out = "".join(first) + rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return out.split(), process.returncode


def test_every_accepted_resource_survives_sigkill_exactly_once(tmp_path: Path) -> None:
    """After kills at random points and one clean run, each printed resource is imported once,
    threading is right, and the outbox holds nothing unresolved."""
    rng = random.Random(20261125)
    outbox = tmp_path / "outbox.sqlite"
    printed: set[str] = set()
    # Latency keeps requests in flight when the kill lands; jitter varies where it lands.
    faults = Faults(seed=3, latency=0.003, latency_jitter=0.004)
    with ZendeskEmulator(accounts={IPID: TOKEN}, faults=faults) as zendesk:
        killed = 0
        for _ in range(4):
            ids, status = _run_child(zendesk.base_url, outbox, rng.randrange(100, COUNT - 100))
            printed.update(ids)
            killed += status == -signal.SIGKILL
        assert killed == 4
        assert _pending_rows(outbox) > 0, "the kills left nothing to replay; the test is moot"
        ids, status = _run_child(zendesk.base_url, outbox, None)
        assert status == 0
        printed.update(ids)

        resources = workload(COUNT)
        assert printed == {r.external_id for r in resources}
        for resource in resources:
            assert zendesk.import_count(resource.external_id) == 1, resource.external_id
        for resource in resources:
            ticket = zendesk.ticket_for(resource.external_id)
            assert ticket is not None
            if resource.parent_id is not None:
                assert ticket.external_id == resource.parent_id
            if resource.thread_id is not None:
                assert ticket.thread_id == resource.thread_id
        threads = [t.thread_id for t in zendesk.tickets if t.thread_id is not None]
        assert sorted(threads) == sorted(set(threads))  # one ticket per thread

    assert _pending_rows(outbox) == 0


def _pending_rows(outbox: Path) -> int:
    db = connect(outbox)
    try:
        [(count,)] = db.execute(
            "SELECT COUNT(*) FROM outbox WHERE state = ?", (PENDING,)
        ).fetchall()
    finally:
        db.close()
    return int(count)
