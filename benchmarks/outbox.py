"""Row 7: the cost of the durable outbox, against the in-memory pipeline in the same run.

Two submission patterns, each with and without ``outbox=``:

- ``bulk``: resources built and handed over with ``submit_many`` in chunks (1,000, as the CLI's
  ``push`` does with the lines it reads), one outbox transaction per chunk;
- ``single``: one ``await submit()`` at a time, as a bot answering webhooks does; with an outbox
  each call returns only after its own commit (and fsync).

Each outbox run writes a fresh file in a fresh ``tempfile.TemporaryDirectory`` (under /tmp), made
before the clock starts; opening it (schema, WAL) is inside the timed region, as starting the
pipeline is for the in-memory runs, and so is ``close``, which writes the last "resolved" marks.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _common import IPID, make_resource, run_prefix
from throughput import Measure, Tally

from anychannel_async import AnyChannelClient, PushPipeline
from anychannel_async._outbox import RESOLVED, connect
from anychannel_async._serde import encode_body

__all__ = ["CHUNK", "bulk", "fresh_outbox", "raw_commits", "single", "sql_costs"]

#: Resources per ``submit_many`` call: what the CLI's ``push`` hands over per chunk of lines.
CHUNK = 1_000


@contextlib.contextmanager
def fresh_outbox() -> Iterator[Path]:
    """The path of an outbox file that does not exist yet, in a directory removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as directory:
        yield Path(directory) / "outbox.sqlite"


async def _timed(
    client: AnyChannelClient, n: int, outbox: Path | None, *, chunk: int | None
) -> Measure:
    prefix = run_prefix("obx" if outbox is not None else "mem")
    tally = Tally()
    cpu0, t0 = time.process_time(), time.perf_counter()
    async with PushPipeline(client, IPID, outbox=outbox) as pipe:
        if chunk is None:
            for i in range(n):
                future = await pipe.submit(make_resource(prefix, i))
                future.add_done_callback(tally)
        else:
            for start in range(0, n, chunk):
                resources = [make_resource(prefix, i) for i in range(start, min(n, start + chunk))]
                for future in await pipe.submit_many(resources):
                    future.add_done_callback(tally)
        await pipe.flush()
    # process_time() counts every thread of the process: the outbox's writer thread included.
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if tally.ok != n:
        raise RuntimeError(f"outbox bench: {tally.ok} of {n} resources imported ({tally.failed})")
    return Measure(n, wall, cpu)


async def bulk(
    client: AnyChannelClient, n: int, outbox: Path | None = None, chunk: int = CHUNK
) -> Measure:
    """n fresh resources through ``submit_many`` in chunks; timed until every one resolved."""
    return await _timed(client, n, outbox, chunk=chunk)


async def single(client: AnyChannelClient, n: int, outbox: Path | None = None) -> Measure:
    """n fresh resources, one ``await submit()`` at a time; timed until every one resolved."""
    return await _timed(client, n, outbox, chunk=None)


def raw_commits(path: Path, n: int) -> Measure:
    """The disk's pace for the one-at-a-time case: n transactions of one INSERT each, on a file
    opened with the outbox's own settings (WAL, synchronous=FULL), no pipeline, no event loop."""
    db = connect(path)
    body = encode_body(make_resource(run_prefix("raw"), 0))  # a real row's body
    try:
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(n):
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO outbox (instance_push_id, external_id, body, submitted_at)"
                " VALUES (?, ?, ?, ?)",
                (IPID, f"raw-{i}", body, time.time()),
            )
            db.execute("COMMIT")
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        db.close()
    return Measure(n, wall, cpu)


def sql_costs(path: Path, n: int, chunk: int = CHUNK, group: int = 400) -> dict[str, float]:
    """CPU seconds per row of the SQL the writer thread runs for each resource, timed alone:
    the INSERT at submit (``chunk`` rows per transaction, as ``submit_many`` groups them) and
    the UPDATE when it resolved (``group`` rows per transaction, ~4 answers of 100 per group).
    The statements are the outbox's own; no queue, no thread hop, no event loop."""
    db = connect(path)
    body = encode_body(make_resource(run_prefix("sql"), 0))
    try:
        cpu0 = time.process_time()
        for start in range(0, n, chunk):
            db.execute("BEGIN IMMEDIATE")
            for i in range(start, min(n, start + chunk)):
                db.execute(
                    "INSERT INTO outbox (instance_push_id, external_id, body, submitted_at)"
                    " VALUES (?, ?, ?, ?)",
                    (IPID, f"sql-{i}", body, time.time()),
                )
            db.execute("COMMIT")
        cpu1 = time.process_time()
        for start in range(1, n + 1, group):
            db.execute("BEGIN IMMEDIATE")
            for seq in range(start, min(n + 1, start + group)):
                db.execute(
                    "UPDATE outbox SET state = ?, error = NULL, updated_at = ? WHERE seq = ?",
                    (RESOLVED, time.time(), seq),
                )
            db.execute("COMMIT")
        cpu2 = time.process_time()
    finally:
        db.close()
    return {
        f"INSERT at submit ({chunk:,} rows per commit)": (cpu1 - cpu0) / n,
        f"UPDATE ... resolved ({group} rows per commit)": (cpu2 - cpu1) / n,
    }
