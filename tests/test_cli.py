"""The `anychannel-async` command end to end: a real process against the emulator over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from anychannel_async import AnyChannelClient, OutboxError, PushPipeline, RetryPolicy
from anychannel_async._outbox import PENDING, connect, connect_read_only
from anychannel_async.cli._ingest import _READ_SIZE
from anychannel_async.testing import Faults, ZendeskEmulator

from .conftest import (
    CLI,
    IPID,
    TOKEN,
    account_options,
    cli,
    cli_bytes,
    cli_env,
    pushes,
    raw_resource,
    run_python,
    start_cli,
    wait_for,
)
from .conftest import resource as make_resource


def _line(external_id: str, **fields: object) -> str:
    """A resource as one line of JSON Lines input."""
    return json.dumps(raw_resource(external_id, **fields))


def push(
    emulator: ZendeskEmulator,
    source: str,
    *extra: str,
    token: str | None = TOKEN,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`anychannel-async push SOURCE` to the emulator's account."""
    return cli(
        "push",
        source,
        *account_options(emulator),
        *extra,
        token=token,
        stdin=stdin,
    )


def test_push_accounts_for_good_duplicate_malformed_and_invalid_lines(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """Good lines land, a duplicate is already_imported, bad lines go to the failed file."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(
            [
                _line("post-1"),
                _line("reply-1", parent_id="post-1"),
                _line("post-1"),  # duplicate
                "{not json",
                _line("too-long", message="x" * 65_536),
                _line("typo", mesage="oops"),
                "",
                _line("post-2"),
            ]
        )
        + "\n"
    )
    failed = tmp_path / "failed.jsonl"
    done = push(emulator, str(source), "--failed", str(failed))
    assert done.returncode == 1, done.stderr
    assert "success" in done.stdout
    assert "already_imported" in done.stdout
    entries = [json.loads(line) for line in failed.read_text().splitlines()]
    assert [e["line"] for e in entries] == [4, 5, 6]
    assert "not JSON" in entries[0]["error"]
    assert "message" in entries[1]["error"]
    assert "65535" in entries[1]["error"]
    assert "mesage" in entries[2]["error"]
    assert {t.external_id for t in emulator.tickets} == {"post-1", "post-2"}
    assert emulator.import_count("post-1") == 1
    ticket = emulator.ticket_for("reply-1")
    assert ticket is not None
    assert ticket.external_id == "post-1"


def test_push_exits_zero_when_every_resource_is_imported(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """Exit status 0 only when all were imported."""
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(_line(f"ok-{n}") for n in range(250)) + "\n")
    done = push(emulator, str(source), "--max-batch-size", "50")
    assert done.returncode == 0, done.stderr
    assert len(emulator.tickets) == 250
    assert "250" in done.stdout


def test_push_reads_standard_input(emulator: ZendeskEmulator) -> None:
    """`push -` reads JSON Lines from standard input."""
    done = push(emulator, "-", stdin=_line("stdin-1") + "\n" + _line("stdin-2") + "\n")
    assert done.returncode == 0, done.stderr
    assert emulator.import_count("stdin-1") == emulator.import_count("stdin-2") == 1


def test_failed_file_reruns_just_those_cleanly(emulator: ZendeskEmulator, tmp_path: Path) -> None:
    """Resources Zendesk failed are retried by pushing the failed file; nothing is duplicated."""
    emulator.faults = Faults(processing_error_ids=frozenset({"flaky-3"}))
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(_line(f"flaky-{n}") for n in range(6)) + "\n")
    failed = tmp_path / "failed.jsonl"
    first = push(emulator, str(source), "--failed", str(failed))
    assert first.returncode == 1
    [entry] = [json.loads(line) for line in failed.read_text().splitlines()]
    assert entry["resource"]["external_id"] == "flaky-3"
    assert entry["error"].startswith("ProcessingError")

    emulator.faults = Faults()  # the cause went away
    again = tmp_path / "failed-again.jsonl"
    second = push(emulator, str(failed), "--failed", str(again))
    assert second.returncode == 0, second.stdout + second.stderr
    assert again.read_text() == ""
    assert all(emulator.import_count(f"flaky-{n}") == 1 for n in range(6))
    pushed_ids = [i for r in emulator.requests for i in r.external_ids]
    assert pushed_ids.count("flaky-0") == 1  # the rerun pushed only the failed one


def test_token_is_never_printed(emulator: ZendeskEmulator, tmp_path: Path) -> None:
    """Neither a good nor a refused token appears in anything the command prints."""
    source = tmp_path / "in.jsonl"
    source.write_text(_line("secret-1") + "\n")
    runs = [
        push(emulator, str(source)),
        push(emulator, str(source), token=TOKEN + "-wrong"),
        cli("validate-token", *account_options(emulator)),
        cli(
            "validate-token",
            *account_options(emulator),
            token=TOKEN + "-wrong",
        ),
    ]
    assert runs[1].returncode == 1
    assert "AuthenticationError" in runs[1].stdout + runs[1].stderr
    for run in runs:
        assert TOKEN not in run.stdout + run.stderr


def test_validate_token_exit_status(emulator: ZendeskEmulator) -> None:
    """validate-token exits 0 for a valid token and 1 for a refused one."""
    assert cli("validate-token", *account_options(emulator)).returncode == 0
    assert cli("validate-token", *account_options(emulator), token="nope").returncode == 1


def test_missing_token_is_a_usage_error(emulator: ZendeskEmulator) -> None:
    """Without $ANYCHANNEL_TOKEN the command exits 2 and says what to set."""
    done = cli("validate-token", *account_options(emulator), token=None)
    assert done.returncode == 2
    assert "ANYCHANNEL_TOKEN" in done.stderr


def test_token_flag_does_not_exist() -> None:
    """The token is never a flag value (it would land in shell history)."""
    done = cli("push", "-", "--subdomain", "acme", "--token", "x")
    assert done.returncode == 2
    assert "unrecognized arguments: --token" in done.stderr


def test_emulator_command_serves_until_terminated() -> None:
    """`anychannel-async emulator` prints its URL and stops cleanly on SIGTERM."""
    process = subprocess.Popen(
        [*CLI, "emulator", "--port", "0", "--account", "a=b"],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(None),
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        check = cli(
            "validate-token", "--base-url", url, "--instance-push-id", "a", token="b", timeout=30
        )
        assert check.returncode == 0, check.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()


_NOT_UTF8 = b'{"external_id": "bad-\xff\xfe", "message": "x"}'


def _mixed_bytes() -> bytes:
    """Good lines around a line that is not UTF-8 (line 3)."""
    lines = [_line("u-1").encode(), _line("u-2").encode(), _NOT_UTF8, _line("u-4").encode()]
    return b"\n".join(lines) + b"\n"


def _check_not_utf8_outcome(emulator: ZendeskEmulator, failed: Path, returncode: int) -> None:
    assert returncode == 1
    assert all(emulator.import_count(f"u-{n}") == 1 for n in (1, 2, 4))
    [entry] = [json.loads(line) for line in failed.read_text(encoding="utf-8").splitlines()]
    assert entry["line"] == 3
    assert "not UTF-8" in entry["error"]
    assert entry["raw"].startswith('{"external_id": "bad-')  # kept, bad bytes escaped
    assert "\\xff" in entry["raw"]
    assert "resource" not in entry


def test_push_skips_a_line_that_is_not_utf8_and_keeps_the_others(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """A line that is not UTF-8 is that line's failure (with its number), never the run's."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(_mixed_bytes())
    failed = tmp_path / "failed.jsonl"
    done = push(emulator, str(source), "--failed", str(failed))
    assert "Traceback" not in done.stderr, done.stderr
    assert "malformed" in done.stdout
    _check_not_utf8_outcome(emulator, failed, done.returncode)


def test_push_from_standard_input_skips_a_line_that_is_not_utf8(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """The same from `push -`: standard input is read as bytes too."""
    failed = tmp_path / "failed.jsonl"
    done = cli_bytes(
        "push",
        "-",
        *account_options(emulator),
        "--failed",
        str(failed),
        stdin=_mixed_bytes(),
    )
    assert b"Traceback" not in done.stderr, done.stderr
    _check_not_utf8_outcome(emulator, failed, done.returncode)


def test_push_rerun_of_a_failed_file_with_a_non_utf8_line_does_not_abort(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """The failed file is valid UTF-8 JSON Lines: pushing it again reports the line once, under
    its original number and first error."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(_mixed_bytes())
    failed = tmp_path / "failed.jsonl"
    push(emulator, str(source), "--failed", str(failed))
    again = tmp_path / "again.jsonl"
    done = push(emulator, str(failed), "--failed", str(again))
    assert done.returncode == 1, done.stderr
    [entry] = [json.loads(line) for line in again.read_text(encoding="utf-8").splitlines()]
    assert entry["line"] == 3
    assert "not UTF-8" in entry["error"]


def test_push_skips_json_nested_too_deeply(emulator: ZendeskEmulator, tmp_path: Path) -> None:
    """JSON nested past the parser's recursion limit, or too deeply to encode, is that line's
    failure (malformed or invalid), not an abort."""
    too_deep = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    deep_value = json.loads("[" * 900 + "]" * 900)
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(
            [
                _line("d-1"),
                too_deep,
                _line("d-3", fields=[{"id": "f", "value": deep_value}]),
                _line("d-4"),
            ]
        )
        + "\n"
    )
    failed = tmp_path / "failed.jsonl"
    done = push(emulator, str(source), "--failed", str(failed))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1
    assert emulator.import_count("d-1") == emulator.import_count("d-4") == 1
    entries = [json.loads(line) for line in failed.read_text().splitlines()]
    assert [e["line"] for e in entries] == [2, 3]
    assert all("nested too deeply" in e["error"] for e in entries)


def test_push_drops_a_byte_order_mark_opening_the_file(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """A UTF-8 byte order mark (Windows editors) before the first line is not a bad line."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + _line("bom-1").encode() + b"\n")
    done = push(emulator, str(source))
    assert done.returncode == 0, done.stdout + done.stderr
    assert emulator.import_count("bom-1") == 1


def test_push_has_a_max_attempts_option(emulator: ZendeskEmulator, tmp_path: Path) -> None:
    """--max-attempts reaches the pipeline: a value it refuses is a usage error (exit 2)."""
    assert "--max-attempts" in cli("push", "--help").stdout
    source = tmp_path / "in.jsonl"
    source.write_text(_line("ma-1") + "\n")
    refused = push(emulator, str(source), "--max-attempts", "0")
    assert refused.returncode == 2
    assert "max_attempts" in refused.stderr
    assert "Traceback" not in refused.stderr
    done = push(emulator, str(source), "--max-attempts", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert emulator.import_count("ma-1") == 1


def test_produce_skips_a_line_that_is_not_utf8() -> None:
    """`produce` reads bytes too: a line that is not UTF-8 is reported with its number and
    skipped. (Only bad lines here, so nothing is sent and no Redis server is needed.)"""
    pytest.importorskip("redis")
    done = cli_bytes(
        "produce",
        "-",
        "--redis",
        "redis://127.0.0.1:1/0",
        "--stream",
        "s",
        stdin=b"\n" + _NOT_UTF8 + b"\n{not json\n",
    )
    assert b"Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1
    assert b"line 2: not UTF-8" in done.stderr
    assert b"line 3: not JSON" in done.stderr
    assert b"skipped 2 lines" in done.stdout


# -- the command line never loses a line ----------------------------------------------------


def _write_input(path: Path, count: int) -> list[str]:
    """count resources, one per line; their ids in line order (line n holds ids[n - 1])."""
    ids = [f"r-{n}" for n in range(1, count + 1)]
    path.write_text("".join(_line(i) + "\n" for i in ids))
    return ids


Spawn = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start `anychannel-async ARGS...` with the token set; killed at teardown if still alive."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, token: str = TOKEN) -> subprocess.Popen[str]:
        process = start_cli(*args, token=token)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _read_until(stream: IO[str] | None, text: str) -> str:
    """Read a running process's lines until one holds text; what was read."""
    assert stream is not None
    seen = ""
    while text not in seen:
        line = stream.readline()
        if not line:
            pytest.fail(f"the process ended before saying {text!r}: {seen}")
        seen += line
    return seen


def _records(path: Path) -> list[dict[str, object]]:
    """The failed file's records, parsed strictly: NaN or Infinity would fail here."""
    return [
        json.loads(line, parse_constant=_no_constant)
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def _no_constant(name: str) -> object:
    raise AssertionError(f"{name} in a failed file")


def _record_id(record: dict[str, object]) -> str:
    """The external_id a failed-file record holds, as a resource or as the raw line."""
    held = record["resource"] if "resource" in record else json.loads(str(record["raw"]))
    assert isinstance(held, dict)
    return str(held["external_id"])


def _imported(emulator: ZendeskEmulator) -> set[str]:
    return {comment.external_id for ticket in emulator.tickets for comment in ticket.comments}


@pytest.mark.parametrize(
    "spelling",
    ["same", "dot-slash", "dot-dot", "symlink", "hardlink"],
)
def test_failed_file_that_is_the_input_is_a_usage_error(
    emulator: ZendeskEmulator, tmp_path: Path, spelling: str
) -> None:
    """--failed naming the input (any spelling, a link) exits 2 before anything is read or
    written: the input is intact and nothing was pushed."""
    (tmp_path / "sub").mkdir()
    source = tmp_path / "in.jsonl"
    _write_input(source, 3)
    before = source.read_bytes()
    failed = {
        "same": str(source),
        "dot-slash": "./in.jsonl",
        "dot-dot": "sub/../in.jsonl",
        "symlink": str(tmp_path / "link.jsonl"),
        "hardlink": str(tmp_path / "hard.jsonl"),
    }[spelling]
    if spelling == "symlink":
        (tmp_path / "link.jsonl").symlink_to(source)
    if spelling == "hardlink":
        os.link(source, tmp_path / "hard.jsonl")
    done = cli(
        "push",
        "in.jsonl",
        *account_options(emulator),
        "--failed",
        failed,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is the input" in done.stderr
    assert "Traceback" not in done.stderr
    assert source.read_bytes() == before
    assert len(pushes(emulator)) == 0


def test_failed_file_that_is_standard_input_is_a_usage_error(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """`push - < FILE --failed FILE` is refused too: standard input is compared by identity."""
    source = tmp_path / "in.jsonl"
    _write_input(source, 3)
    before = source.read_bytes()
    with source.open("rb") as stdin:
        done = subprocess.run(
            [
                *CLI,
                "push",
                "-",
                *account_options(emulator),
                "--failed",
                str(source),
            ],
            stdin=stdin,  # the file itself, not its text: it is compared by identity
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is the input (standard input)" in done.stderr
    assert source.read_bytes() == before


def test_a_missing_input_is_a_usage_error(emulator: ZendeskEmulator, tmp_path: Path) -> None:
    """A missing input file: a clear message, exit 2, no traceback, no failed file created."""
    failed = tmp_path / "failed.jsonl"
    done = push(emulator, str(tmp_path / "nope.jsonl"), "--failed", str(failed))
    assert done.returncode == 2
    assert f"cannot read {tmp_path / 'nope.jsonl'}: No such file" in done.stderr
    assert "Traceback" not in done.stderr
    assert not failed.exists()


def test_an_unwritable_failed_file_is_a_usage_error(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """A --failed that cannot be created: a clear message, exit 2, nothing pushed."""
    source = tmp_path / "in.jsonl"
    _write_input(source, 3)
    failed = tmp_path / "no-such-dir" / "failed.jsonl"
    done = push(emulator, str(source), "--failed", str(failed))
    assert done.returncode == 2
    assert f"cannot write --failed {failed}" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(pushes(emulator)) == 0


@pytest.mark.parametrize("why", ["in_use", "not_a_database"])
def test_an_outbox_that_cannot_be_opened_leaves_the_failed_file_as_it_was(
    emulator: ZendeskEmulator, tmp_path: Path, why: str
) -> None:
    """An --outbox that cannot be opened (another push holds it, not a database): exit 1 with
    the OutboxError (as `outbox retry` gives), nothing pushed, and --failed as it was: the
    previous run's records kept, no file created where there was none."""
    source = tmp_path / "in.jsonl"
    _write_input(source, 3)
    outbox = tmp_path / "outbox.sqlite"
    kept = tmp_path / "failed.jsonl"
    kept.write_text('{"line": 7, "error": "from the previous run", "raw": "x"}\n')
    before = kept.read_bytes()
    new = tmp_path / "new-failed.jsonl"
    with contextlib.ExitStack() as held:
        if why == "in_use":
            held.callback(connect(outbox).close)  # another process's writer
        else:
            outbox.write_text("not a database")
        runs = [
            push(emulator, str(source), "--failed", str(failed), "--outbox", str(outbox))
            for failed in (kept, new)
        ]
    for done, failed in zip(runs, (kept, new), strict=True):
        assert done.returncode == 1, done.stdout + done.stderr
        assert "push: OutboxError: outbox" in done.stderr
        assert f"nothing was read, --failed {failed} is as it was" in done.stderr
        assert "Traceback" not in done.stderr
    assert kept.read_bytes() == before
    assert not new.exists()
    assert len(pushes(emulator)) == 0


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["TERM", "INT"]
)
def test_a_signal_stops_and_every_line_is_imported_or_in_the_failed_file(
    emulator: ZendeskEmulator, tmp_path: Path, spawn: Spawn, signum: signal.Signals, status: int
) -> None:
    """On a signal, push stops reading, lets requests in flight settle and writes every line
    not imported (accepted but unsent, and not read yet) to --failed with its line number;
    pushing that file finishes the job, each resource imported once."""
    emulator.faults = Faults(latency=0.1)
    source = tmp_path / "in.jsonl"
    ids = _write_input(source, 5_000)
    failed = tmp_path / "failed.jsonl"
    process = spawn(
        "push",
        str(source),
        *account_options(emulator),
        "--failed",
        str(failed),
        "--max-pending",
        "300",
        "--max-in-flight",
        "2",
    )
    wait_for(lambda: len(pushes(emulator)) >= 3, "requests arrive")
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == status, out + err
    assert "Traceback" not in err

    records = _records(failed)
    in_failed = [_record_id(r) for r in records]
    imported = _imported(emulator)
    assert imported, "nothing was imported before the signal; the test is moot"
    assert len(in_failed) == len(set(in_failed))
    assert not imported & set(in_failed)
    assert imported | set(in_failed) == set(ids)
    assert any(str(r["error"]).startswith(f"stopped by {signum.name}") for r in records)
    for record in records:  # each keeps the number of its line in the input
        assert ids[int(str(record["line"])) - 1] == _record_id(record)
    assert f"stopped by {signum.name}: read up to line" in out
    assert "the first line not pushed is line" in out

    again = tmp_path / "again.jsonl"
    rerun = push(emulator, str(failed), "--failed", str(again))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert again.read_text() == ""
    assert all(emulator.import_count(i) == 1 for i in ids)


def test_a_second_signal_stops_at_once(
    emulator: ZendeskEmulator, tmp_path: Path, spawn: Spawn
) -> None:
    """A second signal does not wait for requests in flight (here, answers 30 s away): exit
    143 at once, and whatever the failed file holds is whole JSON lines."""
    emulator.faults = Faults(latency=30.0)
    source = tmp_path / "in.jsonl"
    _write_input(source, 2_000)
    failed = tmp_path / "failed.jsonl"
    process = spawn(
        "push",
        str(source),
        *account_options(emulator),
        "--failed",
        str(failed),
        "--max-pending",
        "300",
    )
    wait_for(lambda: len(pushes(emulator)) >= 1, "a request arrives")
    process.send_signal(signal.SIGTERM)
    # Signals of one kind are not queued: wait until the first was handled.
    first = _read_until(process.stderr, "send it again to stop at once")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=15)  # the first signal alone would wait 30 s
    assert process.returncode == 143, out + first + err
    assert "stopped at once by a second signal" in err
    assert "Traceback" not in err
    _records(failed)  # every line whole and strict JSON


def test_close_timeout_bounds_the_wait_for_requests_in_flight(
    emulator: ZendeskEmulator, tmp_path: Path, spawn: Spawn
) -> None:
    """--close-timeout bounds how long a stop waits for answers; what was in flight then is in
    the failed file, and pushing it again imports each resource once."""
    emulator.faults = Faults(latency=30.0)
    source = tmp_path / "in.jsonl"
    ids = _write_input(source, 500)
    failed = tmp_path / "failed.jsonl"
    process = spawn(
        "push",
        str(source),
        *account_options(emulator),
        "--failed",
        str(failed),
        "--close-timeout",
        "0.5",
    )
    wait_for(lambda: len(pushes(emulator)) >= 1, "a request arrives")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=15)  # 30 s without the bound
    assert process.returncode == 143, out + err
    assert {_record_id(r) for r in _records(failed)} == set(ids)

    emulator.faults = Faults()
    rerun = push(emulator, str(failed))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert all(emulator.import_count(i) == 1 for i in ids)


def test_a_refused_token_stops_push_at_once(emulator: ZendeskEmulator, tmp_path: Path) -> None:
    """A token Zendesk refuses: no request after the first refusal (at most max_in_flight in
    all), one message naming the variable and the instance, every line in --failed (those not
    read yet too), exit 1; with the token fixed, the failed file finishes the job."""
    emulator.faults = Faults(latency=0.05)
    source = tmp_path / "in.jsonl"
    ids = _write_input(source, 3_000)
    failed = tmp_path / "failed.jsonl"
    done = push(
        emulator,
        str(source),
        "--failed",
        str(failed),
        "--max-in-flight",
        "4",
        "--max-pending",
        "500",
        token=TOKEN + "-wrong",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(pushes(emulator)) <= 4
    assert done.stderr.count("ANYCHANNEL_TOKEN") == 1, done.stderr
    assert f"instance push id {IPID}" in done.stderr
    assert done.stderr.count("401") == 1, done.stderr
    assert "Traceback" not in done.stderr
    records = _records(failed)
    assert sorted(_record_id(r) for r in records) == sorted(ids)
    assert any(r["error"] == "not pushed: Zendesk refused the token" for r in records)
    assert "stopped: Zendesk refused the token" in done.stdout
    assert TOKEN not in done.stdout + done.stderr

    rerun = push(emulator, str(failed))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert all(emulator.import_count(i) == 1 for i in ids)


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_failed_file_that_cannot_grow_stops_reading_and_names_what_is_missing(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """When --failed cannot be written (file size limit), push stops reading, says so and
    exits 1; the file holds only whole lines, and every line of the input is imported, in
    the file, named as missing, or past where reading stopped."""
    source = tmp_path / "in.jsonl"
    lines = [_line(f"r-{n}") if n % 2 else _line(f"r-{n}", mesage="typo") for n in range(1, 4_001)]
    source.write_text("\n".join(lines) + "\n")
    failed = tmp_path / "failed.jsonl"
    done = cli(
        "push",
        str(source),
        *account_options(emulator),
        "--failed",
        str(failed),
        preexec_fn=_file_size_limit(100_000),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot write {failed}: File too large" in done.stderr
    written = {int(str(r["line"])) for r in _records(failed)}  # whole lines only
    assert written
    assert f"{len(written):,} lines not imported are in {failed}" in done.stdout
    unread = re.search(r"lines from ([\d,]+) on were not read", done.stderr)
    assert unread is not None, done.stderr
    first_unread = int(unread.group(1).replace(",", ""))
    assert first_unread <= 4_000, "the test never stopped reading; lower the limit"
    named = re.search(r"are missing from \S+: lines (.*)", done.stderr)
    missing: set[int] = set()
    if named is not None:
        for part in named.group(1).split(", "):
            low, _, high = part.partition("-")
            missing.update(range(int(low), int(high or low) + 1))
    imported = {int(i.removeprefix("r-")) for i in _imported(emulator)}
    assert not written & missing
    for n in range(1, first_unread):
        assert (n in imported) != (n in written or n in missing), n


def test_a_rerun_keeps_the_original_line_numbers(emulator: ZendeskEmulator, tmp_path: Path) -> None:
    """A line failed again when its failed file is pushed keeps its number in the original
    input, not its position in the failed file."""
    emulator.faults = Faults(processing_error_ids=frozenset({"r-3", "r-7"}))
    source = tmp_path / "in.jsonl"
    _write_input(source, 8)
    failed = tmp_path / "failed.jsonl"
    push(emulator, str(source), "--failed", str(failed))
    assert sorted(int(str(r["line"])) for r in _records(failed)) == [3, 7]
    again = tmp_path / "again.jsonl"
    push(emulator, str(failed), "--failed", str(again))
    assert sorted(int(str(r["line"])) for r in _records(again)) == [3, 7]


def test_failed_file_is_strict_json_whatever_the_input_holds(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """NaN and Infinity (which Python's json reads) are malformed lines, and a number out of
    a float's range is kept as the line's text: the failed file never holds NaN."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(
            [
                _line("ok-1"),
                '{"external_id": "nan-2", "message": NaN}',
                '{"external_id": "inf-3", "message": "m", "x": -Infinity}',
                '{"external_id": "big-4", "mesage": "m", "size": 1e999}',
            ]
        )
        + "\n"
    )
    failed = tmp_path / "failed.jsonl"
    done = push(emulator, str(source), "--failed", str(failed))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    records = _records(failed)  # strict: fails on NaN or Infinity
    assert [r["line"] for r in records] == [2, 3, 4]
    assert "NaN is not valid JSON" in str(records[0]["error"])
    assert "-Infinity is not valid JSON" in str(records[1]["error"])
    assert records[2]["raw"] == '{"external_id": "big-4", "mesage": "m", "size": 1e999}'
    assert emulator.import_count("ok-1") == 1


def test_a_raw_line_fixed_in_the_failed_file_is_parsed_again(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """A line that was not JSON is kept as raw text; once the user fixes that text in the
    failed file, pushing the file imports it (under its original line number if it fails)."""
    source = tmp_path / "in.jsonl"
    source.write_text(_line("ok-1") + "\n" + '{"external_id": "fix-2", oops}' + "\n")
    failed = tmp_path / "failed.jsonl"
    push(emulator, str(source), "--failed", str(failed))
    [record] = _records(failed)
    assert record["line"] == 2
    assert "not JSON" in str(record["error"])
    record["raw"] = _line("fix-2")  # the user's fix
    failed.write_text(json.dumps(record) + "\n")
    again = tmp_path / "again.jsonl"
    done = push(emulator, str(failed), "--failed", str(again))
    assert done.returncode == 0, done.stdout + done.stderr
    assert emulator.import_count("fix-2") == 1
    assert again.read_text() == ""


def test_the_same_id_with_other_content_is_warned_about_with_both_lines(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """An external_id given twice with different content: a warning naming both lines (the
    second is already_imported, its content not applied); the same content twice is a plain
    redelivery, not warned about."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(
            [
                _line("dup-1"),
                _line("same-2"),
                _line("other-3"),
                _line("dup-1", message="edited"),
                _line("same-2"),
            ]
        )
        + "\n"
    )
    done = push(emulator, str(source), "--max-batch-size", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stderr.splitlines() if "repeats external_id" in line]
    assert len(warnings) == 1, done.stderr
    assert "line 4 repeats external_id 'dup-1' of line 1" in warnings[0]
    assert "already_imported" in warnings[0]
    [ticket] = [t for t in emulator.tickets if t.external_id == "dup-1"]
    assert ticket.comments[0].message == "message dup-1"


def test_a_signal_while_pushing_a_failed_file_keeps_its_line_numbers(
    emulator: ZendeskEmulator, tmp_path: Path, spawn: Spawn
) -> None:
    """Lines of a failed file that a stop kept from being read are copied with the number
    they had in the original input."""
    emulator.faults = Faults(latency=0.1)
    source = tmp_path / "failed-before.jsonl"
    count = 4_000
    source.write_text(
        "".join(
            json.dumps(
                {"line": 10 * n, "error": "earlier", "resource": json.loads(_line(f"r-{n}"))}
            )
            + "\n"
            for n in range(1, count + 1)
        )
    )
    failed = tmp_path / "failed.jsonl"
    process = spawn(
        "push",
        str(source),
        *account_options(emulator),
        "--failed",
        str(failed),
        "--max-pending",
        "300",
        "--max-in-flight",
        "2",
    )
    wait_for(lambda: len(pushes(emulator)) >= 2, "requests arrive")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, out + err
    records = _records(failed)
    assert any(r["error"] == "stopped by SIGTERM" for r in records), "nothing was left unread"
    for record in records:
        assert record["line"] == 10 * int(_record_id(record).removeprefix("r-"))
    assert {_record_id(r) for r in records} | _imported(emulator) == {
        f"r-{n}" for n in range(1, count + 1)
    }


def _leave_pending(emulator: ZendeskEmulator, outbox: Path, ids: list[str]) -> None:
    """Rows left pending in outbox, as a run whose pushes all failed (503) leaves them."""

    async def run() -> None:
        async with (
            AnyChannelClient(
                token=TOKEN, base_url=emulator.base_url, retry=RetryPolicy(max_tries=1)
            ) as client,
            PushPipeline(client, IPID, outbox=outbox, max_latency=0) as pipe,
        ):
            futures = [await pipe.submit(make_resource(external_id)) for external_id in ids]
            await pipe.flush()
        assert all(future.exception() is not None for future in futures)

    emulator.faults = Faults(server_error_rate=1.0)
    asyncio.run(run())
    emulator.faults = Faults()


def _outbox_ids(outbox: Path, state: str) -> set[str]:
    db = connect_read_only(outbox)
    try:
        rows = db.execute("SELECT external_id FROM outbox WHERE state = ?", (state,))
        return {external_id for (external_id,) in rows}
    finally:
        db.close()


def test_push_counts_replayed_rows_in_its_summary_and_exit_status(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """Rows an earlier run left in the outbox are replayed: their outcomes have their own line
    in the summary, and one that fails (a dead letter here) makes the exit status 1."""
    outbox = tmp_path / "outbox.sqlite"
    _leave_pending(emulator, outbox, ["p-1", "p-2", "p-3"])
    emulator.faults = Faults(processing_error_ids=frozenset({"p-2"}))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    done = push(emulator, str(empty), "--outbox", str(outbox))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "replayed from the outbox: 3 (success 2, ProcessingError 1)" in done.stdout
    assert emulator.import_count("p-1") == emulator.import_count("p-3") == 1


def _replay_ahead(
    emulator: ZendeskEmulator, tmp_path: Path, count: int, *, latency: float
) -> tuple[Path, list[str], Path]:
    """An outbox with count rows left pending (their ids), and an empty input: a push of it
    only replays, against an emulator reset to answer after latency seconds."""
    outbox = tmp_path / "outbox.sqlite"
    ids = [f"p-{n}" for n in range(count)]
    _leave_pending(emulator, outbox, ids)
    emulator.reset()
    emulator.faults = Faults(latency=latency)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    return outbox, ids, empty


def test_push_stops_at_once_when_replayed_rows_meet_a_refused_token(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """Replayed rows refused with 401: one message, no request after the refusal, exit 1, and
    the rows stay pending for a run with the right token."""
    outbox, ids, empty = _replay_ahead(emulator, tmp_path, 1_000, latency=0.05)
    done = push(
        emulator,
        str(empty),
        "--outbox",
        str(outbox),
        "--max-in-flight",
        "2",
        token=TOKEN + "-wrong",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(pushes(emulator)) <= 2
    assert done.stderr.count("ANYCHANNEL_TOKEN") == 1, done.stderr
    assert "replayed from the outbox" in done.stdout
    assert _outbox_ids(outbox, PENDING) == set(ids)
    assert f"{len(ids):,} rows from earlier runs stay pending in the outbox" in done.stdout

    emulator.faults = Faults()
    again = push(emulator, str(empty), "--outbox", str(outbox))
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(emulator.import_count(i) == 1 for i in ids)


def test_a_signal_during_the_replay_says_how_many_rows_stay_pending(
    emulator: ZendeskEmulator, tmp_path: Path, spawn: Spawn
) -> None:
    """SIGINT while an outbox's rows are replayed: the replayed rows not sent show as not
    pushed (stopped), and the summary says how many rows stay pending in the outbox."""
    outbox, ids, empty = _replay_ahead(emulator, tmp_path, 3_000, latency=0.1)
    out = _signal_push(emulator, spawn, signal.SIGINT, str(empty), "--outbox", str(outbox))
    pending = _outbox_ids(outbox, PENDING)
    assert pending, "every row was pushed before the signal; the test is moot"
    assert _imported(emulator) | pending == set(ids)
    replayed = re.search(r"replayed from the outbox: .*", out)
    assert replayed is not None, out
    assert "not pushed (stopped)" in replayed.group(0)
    assert "ClosedError" not in out
    assert f"{len(pending):,} rows from earlier runs stay pending in the outbox {outbox}" in out


def _signal_push(
    emulator: ZendeskEmulator,
    spawn: Spawn,
    signum: signal.Signals,
    *args: str,
    when: tuple[Callable[[], bool], str] | None = None,
) -> str:
    """Start `push ARGS` to the emulator's account, at most two requests at once, and send
    it signum once three requests arrived (or once `when` holds); its standard output, once it
    exited 128 + signum."""
    process = spawn("push", *args, *account_options(emulator), "--max-in-flight", "2")
    wait_for(*(when or (lambda: len(pushes(emulator)) >= 3, "requests arrive")))
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, out + err
    return out


def _terminate_a_push_with_an_outbox(
    emulator: ZendeskEmulator, spawn: Spawn, source: Path, failed: Path, outbox: Path
) -> str:
    """SIGTERM a push of source with --failed and --outbox, 300 lines pending at most."""
    options = ("--failed", str(failed), "--outbox", str(outbox), "--max-pending", "300")
    return _signal_push(emulator, spawn, signal.SIGTERM, str(source), *options)


def _outbox_holds_more_than(outbox: Path, count: int) -> bool:
    """Whether the outbox (being written by another process) has more than count rows
    pending; False while it does not exist yet."""
    try:
        return len(_outbox_ids(outbox, PENDING)) > count
    except (OutboxError, sqlite3.Error):
        return False


def test_a_signal_with_an_outbox_leaves_accepted_lines_in_it_and_the_rest_in_failed(
    emulator: ZendeskEmulator, tmp_path: Path, spawn: Spawn
) -> None:
    """With --outbox, a signal leaves the lines accepted but not imported pending in the
    outbox (the summary says so) and copies the lines not accepted to --failed: each line is
    in exactly one place, and pushing the failed file through the outbox finishes the job."""
    # Answers a second away: the command fills its 300 lines of room (two requests of 100
    # in flight, the rest queued) long before one comes back, however slowly it writes.
    emulator.faults = Faults(latency=1.0)
    source = tmp_path / "in.jsonl"
    ids = _write_input(source, 5_000)
    failed = tmp_path / "failed.jsonl"
    outbox = tmp_path / "outbox.sqlite"
    options = ("--failed", str(failed), "--outbox", str(outbox), "--max-pending", "300")
    # Signalled once both requests arrived and more lines are accepted than they carry: some
    # accepted lines are unsent (a slow machine's reader may otherwise lag the pushes).
    when = (
        lambda: len(pushes(emulator)) >= 2 and _outbox_holds_more_than(outbox, 2 * 100),
        "two requests are in flight and lines are queued behind them",
    )
    out = _signal_push(
        emulator,
        spawn,
        signal.SIGTERM,
        str(source),
        *options,
        "--max-batch-size",
        "100",
        when=when,
    )

    imported = _imported(emulator)
    in_failed = {_record_id(r) for r in _records(failed)}
    pending = _outbox_ids(outbox, PENDING)
    assert imported
    assert pending, "nothing was accepted and unsent; the test is moot"
    assert in_failed
    assert not imported & in_failed
    assert not imported & pending
    assert not pending & in_failed
    assert imported | in_failed | pending == set(ids)
    assert f"{len(pending):,} lines not imported stay pending in the outbox" in out

    emulator.faults = Faults()
    rerun = push(emulator, str(failed), "--outbox", str(outbox))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert all(emulator.import_count(i) == 1 for i in ids)
    assert _outbox_ids(outbox, PENDING) == set()


def _pairs_across_reads(path: Path, reads: int) -> list[str]:
    """A lone post, then parent/reply pairs, every line the same width, so that each read of
    the input ends on a parent and the next begins with its reply. Ids in line order."""
    width = 256
    assert _READ_SIZE % width == 0
    count = reads * (_READ_SIZE // width) + 1
    ids = [f"r-{n:06}" for n in range(1, count + 1)]
    lines = []
    for n, external_id in enumerate(ids, 1):
        fields: dict[str, object] = {"message": ""}
        if n > 1 and n % 2 == 1:
            fields["parent_id"] = ids[n - 2]
        line = _line(external_id, **fields)
        fields["message"] = "m" * (width - 1 - len(line))
        lines.append(_line(external_id, **fields) + "\n")
    assert {len(line) for line in lines} == {width}
    path.write_text("".join(lines))
    return ids


def test_a_stop_with_an_outbox_writes_failed_records_in_input_order(
    emulator: ZendeskEmulator, tmp_path: Path, spawn: Spawn
) -> None:
    """A signal with --outbox: the lines refused while closing (a parent at the end of what
    was read) come out in --failed before the lines not read (its reply), in input order, so
    one rerun through the same outbox finishes the job, replies on their parents' tickets."""
    emulator.faults = Faults(latency=0.1)
    source = tmp_path / "in.jsonl"
    ids = _pairs_across_reads(source, 6)
    failed = tmp_path / "failed.jsonl"
    outbox = tmp_path / "outbox.sqlite"
    _terminate_a_push_with_an_outbox(emulator, spawn, source, failed, outbox)
    lines = [int(str(r["line"])) for r in _records(failed)]
    assert lines == sorted(lines)

    emulator.faults = Faults(latency=0.05)  # a rerun slower than its parent timeout
    rerun = push(
        emulator,
        str(failed),
        "--outbox",
        str(outbox),
        "--parent-timeout",
        "0.5",
        "--max-in-flight",
        "1",
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert all(emulator.import_count(i) == 1 for i in ids)
    for n in range(3, len(ids) + 1, 2):
        ticket = emulator.ticket_for(ids[n - 1])
        assert ticket is not None
        assert ticket.external_id == ids[n - 2]


def _validate(url: str, instance_push_id: str, token: str) -> int:
    """validate-token's exit status for that account."""
    where = ("--base-url", url, "--instance-push-id", instance_push_id)
    return cli("validate-token", *where, token=token, timeout=30).returncode


def test_emulator_takes_accounts_from_the_environment_and_a_file(tmp_path: Path) -> None:
    """The standalone emulator reads accounts from $ANYCHANNEL_EMULATOR_ACCOUNTS and from
    --accounts-file, so no token has to be on its command line (visible in `ps`)."""
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps({"file-ipid": "file-token-1f2e", "pair": ["user", "pass"]}))
    env = cli_env(None) | {
        "ANYCHANNEL_EMULATOR_ACCOUNTS": json.dumps({"env-ipid": "env-token-9a8b"})
    }
    command = [*CLI, "emulator", "--port", "0", "--accounts-file", str(accounts)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert _validate(url, "env-ipid", "env-token-9a8b") == 0
        assert _validate(url, "file-ipid", "file-token-1f2e") == 0
        assert _validate(url, "file-ipid", "env-token-9a8b") == 1
        assert not any("token" in argument for argument in command)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize(
    "accounts",
    ['{"ipid": ', '["ipid", "secret-token-3c4d"]', '{"ipid": 42}', "{}"],
    ids=["not_json", "not_an_object", "not_a_token", "empty"],
)
def test_emulator_refuses_bad_accounts_without_showing_them(accounts: str) -> None:
    """Accounts that are not a JSON object of tokens: exit 2 naming the variable, and no
    token in the message."""
    done = subprocess.run(
        [*CLI, "emulator", "--port", "0"],
        capture_output=True,
        text=True,
        env=cli_env(None) | {"ANYCHANNEL_EMULATOR_ACCOUNTS": accounts},
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ANYCHANNEL_EMULATOR_ACCOUNTS" in done.stderr
    assert "secret-token" not in done.stderr
    assert "Traceback" not in done.stderr


# A console script as pip writes it, with a signal sent to itself while the command's modules
# load (the package itself loaded first): what Ctrl-C or SIGTERM does right after Enter.
_SIGNAL_WHILE_LOADING = """
import importlib.abc, os, signal, sys
import anychannel_async

class SignalOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "anychannel_async.cli._push":
            os.kill(os.getpid(), signal.{signal})
        return None

sys.meta_path.insert(0, SignalOnImport())
from anychannel_async.cli import main
sys.exit(main(["push", "--help"]))
"""


def _sigint_at_its_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_while_the_command_loads_exits_130_without_a_traceback() -> None:
    """SIGINT while the command's modules load: exit 130, quietly, as after a stop."""
    # SIGINT at its default, as a terminal starts a command: a test run started in the
    # background by a shell ignores SIGINT, and its children inherit that (no Ctrl-C there).
    done = run_python(
        "-c",
        _SIGNAL_WHILE_LOADING.format(signal="SIGINT"),
        preexec_fn=_sigint_at_its_default,
    )
    assert done.returncode == 130, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "KeyboardInterrupt" not in done.stderr


def test_sigterm_while_the_command_loads_keeps_its_default() -> None:
    """SIGTERM while the command loads ends the process by the signal, as it always did."""
    done = run_python("-c", _SIGNAL_WHILE_LOADING.format(signal="SIGTERM"))
    assert done.returncode == -signal.SIGTERM, done.stdout + done.stderr


def _start_push_from_a_pipe(emulator: ZendeskEmulator, *extra: str) -> subprocess.Popen[str]:
    """`push -` reading a pipe the test holds open, two lines written to it."""
    process = subprocess.Popen(
        [*CLI, "push", "-", *account_options(emulator), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    assert process.stdin is not None
    process.stdin.write(_line("q-1") + "\n" + _line("q-2") + "\n")
    process.stdin.flush()
    wait_for(lambda: emulator.import_count("q-2") == 1, "the lines written are imported")
    return process


def test_a_signal_on_a_quiet_pipe_says_it_waits_for_standard_input(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """`push - --failed F` on a pipe that stays open: the first signal says the command waits
    for standard input to end (to copy what is not read) or a second signal; what comes
    before the end goes to the failed file."""
    failed = tmp_path / "failed.jsonl"
    process = _start_push_from_a_pipe(emulator, "--failed", str(failed))
    try:
        process.send_signal(signal.SIGINT)
        said = _read_until(process.stderr, "send it again to stop at once")
        assert "waiting for standard input to end" in said
        assert process.poll() is None
        assert process.stdin is not None
        process.stdin.write(_line("q-3") + "\n")
        process.stdin.close()
        process.stdin = None  # closed: communicate must not flush it
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out + err
    assert [_record_id(r) for r in _records(failed)] == ["q-3"]
    assert [r["line"] for r in _records(failed)] == [3]


def test_a_signal_without_failed_does_not_wait_for_a_quiet_pipe(
    emulator: ZendeskEmulator,
) -> None:
    """Without --failed, the lines not read have nowhere to go: a signal stops `push -` at
    once, though standard input stays open, and the summary says where reading stopped."""
    process = _start_push_from_a_pipe(emulator)
    try:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert "waiting for standard input" not in err
    assert "lines from 3 on were not read (no --failed)" in out
