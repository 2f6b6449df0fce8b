"""The durable outbox: replay, dead letters, refusals, and its command line."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path

import pytest

from anychannel_async import (
    AnyChannelClient,
    OutboxError,
    OutcomeUnknownError,
    ProcessingError,
    PushPipeline,
    RetryPolicy,
    StatusCode,
    ValidationError,
)
from anychannel_async._outbox import DEAD, PENDING, RESOLVED, connect
from anychannel_async.testing import Faults, ZendeskEmulator

from .conftest import (
    CLI,
    IPID,
    TOKEN,
    account_options,
    cli,
    cli_env,
    pushes,
    resource,
    run_python,
)

ONE_TRY = RetryPolicy(max_tries=1)


def rows(path: Path) -> list[tuple[str, str, str | None]]:
    """(external_id, state, error) of every row, in submission order."""
    db = connect(path)
    try:
        return [
            (external_id, state, error)
            for external_id, state, error in db.execute(
                "SELECT external_id, state, error FROM outbox ORDER BY seq"
            )
        ]
    finally:
        db.close()


async def test_resolved_resources_are_marked_resolved(
    client: AnyChannelClient, tmp_path: Path
) -> None:
    """Each imported resource's row ends resolved."""
    path = tmp_path / "outbox.sqlite"
    async with PushPipeline(client, IPID, outbox=path) as pipe:
        results = [await pipe.push(resource(f"ok-{n}")) for n in range(3)]
    assert all(r.code is StatusCode.SUCCESS for r in results)
    assert rows(path) == [(f"ok-{n}", RESOLVED, None) for n in range(3)]


async def test_rows_left_by_a_failed_run_are_replayed_in_order_before_new_work(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """Transport failures leave rows pending; the next pipeline pushes them first, in order."""
    path = tmp_path / "outbox.sqlite"
    async with AnyChannelClient(token=TOKEN, base_url=emulator.base_url, retry=ONE_TRY) as client:
        emulator.faults = Faults(server_error_rate=1.0)
        async with PushPipeline(client, IPID, outbox=path, max_latency=0) as pipe:
            futures = [await pipe.submit(resource(f"t-{n}", thread_id="t")) for n in range(3)]
            await pipe.flush()
        assert all(isinstance(f.exception(), OutcomeUnknownError) for f in futures)
        assert [state for _, state, _ in rows(path)] == [PENDING] * 3

        emulator.faults = Faults()
        async with PushPipeline(client, IPID, outbox=path) as pipe:
            result = await pipe.push(resource("t-3", thread_id="t"))
            assert result.code is StatusCode.SUCCESS
            await pipe.flush()
            assert pipe.stats.replayed == 3
            assert pipe.stats.replay_outcomes == {"success": 3}
    [ticket] = emulator.tickets
    assert [c.external_id for c in ticket.comments] == ["t-0", "t-1", "t-2", "t-3"]
    assert [state for _, state, _ in rows(path)] == [RESOLVED] * 4


async def test_final_failures_stay_as_dead_letters_with_their_error(
    client: AnyChannelClient, emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """A processing_error is kept as a dead letter naming the error; the rest resolve."""
    path = tmp_path / "outbox.sqlite"
    emulator.faults = Faults(processing_error_ids=frozenset({"bad"}))
    async with PushPipeline(client, IPID, outbox=path, max_batch_size=1) as pipe:
        futures = [await pipe.submit(resource(i)) for i in ("good", "bad")]
        await pipe.flush()
    assert futures[0].result().imported
    [(_, _, _), (bad_id, state, error)] = rows(path)
    assert (bad_id, state) == ("bad", DEAD)
    assert error is not None
    assert error.startswith("ProcessingError")


async def test_a_cancelled_resource_is_a_dead_letter(
    client: AnyChannelClient, tmp_path: Path
) -> None:
    """Cancelled before it was pushed: kept as a dead letter, so it can be retried."""
    path = tmp_path / "outbox.sqlite"
    async with PushPipeline(client, IPID, outbox=path, max_latency=30) as pipe:
        keep = await pipe.submit(resource("keep"))
        drop = await pipe.submit(resource("drop"))
        drop.cancel()
        await pipe.flush()
    assert keep.result().imported
    assert rows(path)[1][:2] == ("drop", DEAD)


async def test_submit_many_accepts_all_or_none(client: AnyChannelClient, tmp_path: Path) -> None:
    """One bad resource refuses the whole call before anything is accepted."""
    path = tmp_path / "outbox.sqlite"
    async with PushPipeline(client, IPID, outbox=path, max_batch_bytes=2_000) as pipe:
        with pytest.raises(ValidationError, match="max_batch_bytes"):
            await pipe.submit_many([resource("fits"), resource("huge", "x" * 3_000)])
        assert pipe.stats.submitted == 0
        futures = await pipe.submit_many([resource(f"m-{n}") for n in range(20)])
        results = await asyncio.gather(*futures)
    assert all(r.imported for r in results)
    assert [state for _, state, _ in rows(path)] == [RESOLVED] * 20


async def test_an_outbox_in_use_by_another_pipeline_is_refused(
    client: AnyChannelClient, tmp_path: Path
) -> None:
    """Two replays of one outbox could race a resource into two tickets: the second is refused."""
    path = tmp_path / "outbox.sqlite"
    async with PushPipeline(client, IPID, outbox=path):
        second = PushPipeline(client, IPID, outbox=path)
        with pytest.raises(OutboxError, match="in use"):
            await second.__aenter__()
        await second.close()


async def test_a_corrupt_outbox_is_a_clear_error(client: AnyChannelClient, tmp_path: Path) -> None:
    """A file that is not a database is refused naming the path, before anything is accepted."""
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"this is not a database, just some bytes" * 200)
    pipe = PushPipeline(client, IPID, outbox=path)
    with pytest.raises(OutboxError, match="not a usable SQLite database") as info:
        await pipe.__aenter__()
    assert str(path) in str(info.value)
    await pipe.close()


async def test_outbox_commands_list_retry_and_purge(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """list shows counts and dead letters; retry revives and pushes them; purge removes rows."""
    path = tmp_path / "outbox.sqlite"
    emulator.faults = Faults(processing_error_ids=frozenset({"dead-1"}))
    async with (
        AnyChannelClient(token=TOKEN, base_url=emulator.base_url) as client,
        PushPipeline(client, IPID, outbox=path, max_batch_size=1) as pipe,
    ):
        futures = [await pipe.submit(resource(i)) for i in ("fine-1", "dead-1")]
        await pipe.flush()
    assert futures[0].result().imported
    assert isinstance(futures[1].exception(), ProcessingError)

    listed = await asyncio.to_thread(cli, "outbox", "list", str(path), token=None)
    assert listed.returncode == 0, listed.stderr
    assert "resolved          1" in listed.stdout
    assert "dead              1" in listed.stdout
    assert "dead-1: ProcessingError" in listed.stdout

    emulator.faults = Faults()
    retried = await asyncio.to_thread(
        cli,
        "outbox",
        "retry",
        str(path),
        *account_options(emulator),
    )
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert emulator.import_count("dead-1") == 1
    assert [state for _, state, _ in rows(path)] == [RESOLVED, RESOLVED]

    purged = await asyncio.to_thread(cli, "outbox", "purge", str(path), token=None)
    assert purged.returncode == 0
    assert rows(path) == []


async def test_fault_in_flight_leaves_row_pending_not_dead(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """Connections dropped past max_attempts leave the outcome unknown: the row stays pending."""
    path = tmp_path / "outbox.sqlite"
    emulator.faults = Faults(drop_rate=1.0)
    async with (
        AnyChannelClient(token=TOKEN, base_url=emulator.base_url, retry=ONE_TRY) as client,
        PushPipeline(client, IPID, outbox=path, max_attempts=1) as pipe,
    ):
        future = await pipe.submit(resource("dropped"))
        await pipe.flush()
    assert isinstance(future.exception(), OutcomeUnknownError)
    assert rows(path) == [("dropped", PENDING, None)]


FULL_DISK_CHILD = """
import asyncio, resource, signal, sys
from anychannel_async import AnyChannelClient, OutboxError, PushPipeline
from tests.conftest import resource as make

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

async def main(base_url: str, path: str) -> None:
    accepted = 0
    async with AnyChannelClient(token=sys.argv[3], base_url=base_url) as client:
        async with PushPipeline(client, sys.argv[4], outbox=path, close_timeout=5) as pipe:
            try:
                for n in range(100_000):
                    await pipe.submit(make(f"full-{n}", "x" * 2_000))
                    accepted += 1
            except OutboxError as exc:
                print("refused after", accepted, ":", exc, flush=True)
                await pipe.flush()
                print("flushed", flush=True)
                return
    print("never refused", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_a_full_disk_refuses_submit_clearly_and_nothing_wedges(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """When the outbox cannot grow, submit raises OutboxError; accepted work still completes."""
    done = run_python(
        "-c",
        FULL_DISK_CHILD,
        emulator.base_url,
        str(tmp_path / "outbox.sqlite"),
        TOKEN,
        IPID,
        token=None,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "refused after" in done.stdout, done.stdout
    assert "flushed" in done.stdout
    accepted = int(done.stdout.split("refused after", 1)[1].split(":", 1)[0])
    assert accepted > 0
    assert all(emulator.import_count(f"full-{n}") == 1 for n in range(accepted))


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("list",), id="list"),
        pytest.param(("purge",), id="purge"),
        pytest.param(("purge", "--dead"), id="purge_dead"),
        pytest.param(("retry",), id="retry"),
    ],
)
def test_outbox_commands_refuse_a_missing_outbox(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A path with no outbox (a typo) is refused, not created empty and reported as such."""
    path = tmp_path / "no-such-outbox.sqlite"
    action, *extra = args
    done = cli("outbox", action, str(path), *extra, token=None)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"no outbox at {path}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # no -wal/-shm left behind either


async def _dead_letters(emulator: ZendeskEmulator, path: Path, ids: list[str]) -> None:
    """Leave ids in the outbox as dead letters (Zendesk failed to process them)."""
    emulator.faults = Faults(processing_error_ids=frozenset(ids))
    async with (
        AnyChannelClient(token=TOKEN, base_url=emulator.base_url) as client,
        # One per request: a resource halted behind another's failure is not a dead letter
        # (nothing happened to it), and these must all be.
        PushPipeline(client, IPID, outbox=path, max_batch_size=1, max_in_flight=16) as pipe,
    ):
        futures = await pipe.submit_many([resource(i) for i in ids])
        await pipe.flush()
    assert all(isinstance(f.exception(), ProcessingError) for f in futures)
    assert {state for _, state, _ in rows(path)} == {DEAD}
    emulator.faults = Faults()


async def test_outbox_list_reads_a_file_a_pipeline_holds(
    client: AnyChannelClient, emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """`outbox list` reads beside a pipeline that holds the file (a WAL reader); `purge`,
    which writes, is refused while it does; the pipeline goes on writing."""
    path = tmp_path / "outbox.sqlite"
    emulator.faults = Faults(processing_error_ids=frozenset({"dead-1"}))
    async with PushPipeline(client, IPID, outbox=path, max_batch_size=1) as pipe:
        for external_id in ("fine-1", "dead-1"):
            with contextlib.suppress(ProcessingError):
                await pipe.push(resource(external_id))
        await pipe.push(resource("fine-2"))  # its row's write follows the outcomes above

        listed = await asyncio.to_thread(cli, "outbox", "list", str(path), token=None)
        assert listed.returncode == 0, listed.stderr
        assert "dead              1" in listed.stdout
        assert "dead-1: ProcessingError" in listed.stdout

        purged = await asyncio.to_thread(cli, "outbox", "purge", str(path), token=None)
        assert purged.returncode == 1
        assert "in use by another process" in purged.stderr

        await pipe.push(resource("fine-3"))
    assert [external_id for external_id, _, _ in rows(path)] == [
        "fine-1",
        "dead-1",
        "fine-2",
        "fine-3",
    ]


@pytest.mark.parametrize(
    ("extra", "token", "message"),
    [
        pytest.param((), TOKEN, "--instance-push-id", id="no_instance_push_id"),
        pytest.param(("--instance-push-id", IPID), None, "ANYCHANNEL_TOKEN", id="no_token"),
        pytest.param(
            ("--instance-push-id", IPID, "--max-in-flight", "0"),
            TOKEN,
            "max_in_flight",
            id="bad_setting",
        ),
    ],
)
async def test_outbox_retry_checks_its_options_before_changing_the_file(
    emulator: ZendeskEmulator,
    tmp_path: Path,
    extra: tuple[str, ...],
    token: str | None,
    message: str,
) -> None:
    """retry with options that cannot push exits 2 and leaves the dead letters dead, rather
    than reviving them with nothing to push them."""
    path = tmp_path / "outbox.sqlite"
    await _dead_letters(emulator, path, ["dead-1"])
    done = await asyncio.to_thread(
        cli, "outbox", "retry", str(path), "--base-url", emulator.base_url, *extra, token=token
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert [state for _, state, _ in rows(path)] == [DEAD]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(("--instance-push-id", IPID), "--subdomain or --base-url", id="ipid"),
        pytest.param(
            ("--instance-push-id", IPID, "--max-batch-size", "0"),
            "max_batch_size",
            id="ipid_bad_setting",
        ),
        pytest.param(("--max-batch-size", "0"), "max_batch_size", id="bad_setting"),
        pytest.param(("--max-in-flight", "8"), "--subdomain or --base-url", id="setting"),
    ],
)
async def test_outbox_retry_refuses_push_options_without_a_url(
    emulator: ZendeskEmulator, tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    """retry without --subdomain/--base-url only revives; options that only mean something
    for a push (a bad one above all) are a usage error, before the file changes."""
    path = tmp_path / "outbox.sqlite"
    await _dead_letters(emulator, path, ["dead-1"])
    done = await asyncio.to_thread(cli, "outbox", "retry", str(path), *extra, token=None)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert [state for _, state, _ in rows(path)] == [DEAD]


async def test_outbox_retry_without_a_url_ignores_the_instance_in_the_environment(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """$ANYCHANNEL_INSTANCE_PUSH_ID is a default, not a request to push: retry without a URL
    revives the dead letters and exits 0."""
    path = tmp_path / "outbox.sqlite"
    await _dead_letters(emulator, path, ["dead-1"])
    done = await asyncio.to_thread(
        subprocess.run,
        [*CLI, "outbox", "retry", str(path)],
        capture_output=True,
        text=True,
        env=cli_env(None) | {"ANYCHANNEL_INSTANCE_PUSH_ID": IPID},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 dead letters are pending again" in done.stdout
    assert [state for _, state, _ in rows(path)] == [PENDING]


async def test_outbox_retry_stops_at_once_on_a_refused_token(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """retry with a token Zendesk refuses sends nothing after the first refusal, says so once
    naming the variable and the instance, exits 1; the rows stay pending."""
    path = tmp_path / "outbox.sqlite"
    ids = [f"dead-{n}" for n in range(1_000)]
    await _dead_letters(emulator, path, ids)
    emulator.reset()
    emulator.faults = Faults(latency=0.05)
    done = await asyncio.to_thread(
        cli,
        "outbox",
        "retry",
        str(path),
        *account_options(emulator),
        "--max-in-flight",
        "2",
        token=TOKEN + "-wrong",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(pushes(emulator)) <= 2
    assert done.stderr.count("ANYCHANNEL_TOKEN") == 1, done.stderr
    assert f"instance push id {IPID}" in done.stderr
    assert "Traceback" not in done.stderr
    assert {state for _, state, _ in rows(path)} == {PENDING}
    assert f"{len(ids):,} rows stay pending in the outbox {path}" in done.stdout
