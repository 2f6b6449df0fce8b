"""The `anychannel-async` command end to end: a real process against the emulator over TCP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from anychannel_async.testing import Faults, ZendeskEmulator

from .conftest import IPID, TOKEN


def _line(external_id: str, **fields: object) -> str:
    resource: dict[str, object] = {
        "external_id": external_id,
        "message": f"message {external_id}",
        "created_at": "2026-11-25T10:00:00Z",
        "author": {"external_id": "author-1", "name": "Ada"},
    }
    resource.update(fields)
    return json.dumps(resource)


@pytest.fixture
def zendesk() -> Iterator[ZendeskEmulator]:
    """An emulator in its own thread, so a blocking subprocess call can talk to it."""
    with ZendeskEmulator(accounts={IPID: TOKEN}) as emu:
        yield emu


def cli(
    *args: str, token: str | None = TOKEN, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYCHANNEL_")}
    if token is not None:
        env["ANYCHANNEL_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "anychannel_async", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def push(
    zendesk: ZendeskEmulator, source: str, *extra: str, **kw: str | None
) -> subprocess.CompletedProcess[str]:
    return cli(
        "push", source, "--base-url", zendesk.base_url, "--instance-push-id", IPID, *extra, **kw
    )


def test_push_accounts_for_good_duplicate_malformed_and_invalid_lines(
    zendesk: ZendeskEmulator, tmp_path: Path
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
    done = push(zendesk, str(source), "--failed", str(failed))
    assert done.returncode == 1, done.stderr
    assert "success" in done.stdout
    assert "already_imported" in done.stdout
    entries = [json.loads(line) for line in failed.read_text().splitlines()]
    assert [e["line"] for e in entries] == [4, 5, 6]
    assert "not JSON" in entries[0]["error"]
    assert "message" in entries[1]["error"]
    assert "65535" in entries[1]["error"]
    assert "mesage" in entries[2]["error"]
    assert {t.external_id for t in zendesk.tickets} == {"post-1", "post-2"}
    assert zendesk.import_count("post-1") == 1
    ticket = zendesk.ticket_for("reply-1")
    assert ticket is not None
    assert ticket.external_id == "post-1"


def test_push_exits_zero_when_every_resource_is_imported(
    zendesk: ZendeskEmulator, tmp_path: Path
) -> None:
    """Exit status 0 only when all were imported."""
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(_line(f"ok-{n}") for n in range(250)) + "\n")
    done = push(zendesk, str(source), "--max-batch-size", "50")
    assert done.returncode == 0, done.stderr
    assert len(zendesk.tickets) == 250
    assert "250" in done.stdout


def test_push_reads_standard_input(zendesk: ZendeskEmulator) -> None:
    """`push -` reads JSON Lines from standard input."""
    done = push(zendesk, "-", stdin=_line("stdin-1") + "\n" + _line("stdin-2") + "\n")
    assert done.returncode == 0, done.stderr
    assert zendesk.import_count("stdin-1") == zendesk.import_count("stdin-2") == 1


def test_failed_file_reruns_just_those_cleanly(zendesk: ZendeskEmulator, tmp_path: Path) -> None:
    """Resources Zendesk failed are retried by pushing the failed file; nothing is duplicated."""
    zendesk.faults = Faults(processing_error_ids=frozenset({"flaky-3"}))
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(_line(f"flaky-{n}") for n in range(6)) + "\n")
    failed = tmp_path / "failed.jsonl"
    first = push(zendesk, str(source), "--failed", str(failed))
    assert first.returncode == 1
    [entry] = [json.loads(line) for line in failed.read_text().splitlines()]
    assert entry["resource"]["external_id"] == "flaky-3"
    assert entry["error"].startswith("ProcessingError")

    zendesk.faults = Faults()  # the cause went away
    again = tmp_path / "failed-again.jsonl"
    second = push(zendesk, str(failed), "--failed", str(again))
    assert second.returncode == 0, second.stdout + second.stderr
    assert again.read_text() == ""
    assert all(zendesk.import_count(f"flaky-{n}") == 1 for n in range(6))
    pushed_ids = [i for r in zendesk.requests for i in r.external_ids]
    assert pushed_ids.count("flaky-0") == 1  # the rerun pushed only the failed one


def test_token_is_never_printed(zendesk: ZendeskEmulator, tmp_path: Path) -> None:
    """Neither a good nor a refused token appears in anything the command prints."""
    source = tmp_path / "in.jsonl"
    source.write_text(_line("secret-1") + "\n")
    runs = [
        push(zendesk, str(source)),
        push(zendesk, str(source), token=TOKEN + "-wrong"),
        cli("validate-token", "--base-url", zendesk.base_url, "--instance-push-id", IPID),
        cli(
            "validate-token",
            "--base-url",
            zendesk.base_url,
            "--instance-push-id",
            IPID,
            token=TOKEN + "-wrong",
        ),
    ]
    assert runs[1].returncode == 1
    assert "AuthenticationError" in runs[1].stdout + runs[1].stderr
    for run in runs:
        assert TOKEN not in run.stdout + run.stderr


def test_validate_token_exit_status(zendesk: ZendeskEmulator) -> None:
    """validate-token exits 0 for a valid token and 1 for a refused one."""
    where = ("--base-url", zendesk.base_url, "--instance-push-id", IPID)
    assert cli("validate-token", *where).returncode == 0
    assert cli("validate-token", *where, token="nope").returncode == 1


def test_missing_token_is_a_usage_error(zendesk: ZendeskEmulator) -> None:
    """Without $ANYCHANNEL_TOKEN the command exits 2 and says what to set."""
    done = cli(
        "validate-token", "--base-url", zendesk.base_url, "--instance-push-id", IPID, token=None
    )
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
        [sys.executable, "-m", "anychannel_async", "emulator", "--port", "0", "--account", "a=b"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        env = dict(os.environ, ANYCHANNEL_TOKEN="b")
        check = subprocess.run(
            [
                sys.executable,
                "-m",
                "anychannel_async",
                "validate-token",
                "--base-url",
                url,
                "--instance-push-id",
                "a",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, check.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()


def _cli_bytes(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """cli() for input that is not text (stdin as bytes, output undecoded)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYCHANNEL_")}
    env["ANYCHANNEL_TOKEN"] = TOKEN
    return subprocess.run(
        [sys.executable, "-m", "anychannel_async", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


_NOT_UTF8 = b'{"external_id": "bad-\xff\xfe", "message": "x"}'


def _mixed_bytes() -> bytes:
    """Good lines around a line that is not UTF-8 (line 3)."""
    lines = [_line("u-1").encode(), _line("u-2").encode(), _NOT_UTF8, _line("u-4").encode()]
    return b"\n".join(lines) + b"\n"


def _check_not_utf8_outcome(zendesk: ZendeskEmulator, failed: Path, returncode: int) -> None:
    assert returncode == 1
    assert all(zendesk.import_count(f"u-{n}") == 1 for n in (1, 2, 4))
    [entry] = [json.loads(line) for line in failed.read_text(encoding="utf-8").splitlines()]
    assert entry["line"] == 3
    assert "not UTF-8" in entry["error"]
    assert entry["raw"].startswith('{"external_id": "bad-')  # kept, bad bytes escaped
    assert "\\xff" in entry["raw"]
    assert "resource" not in entry


def test_push_skips_a_line_that_is_not_utf8_and_keeps_the_others(
    zendesk: ZendeskEmulator, tmp_path: Path
) -> None:
    """A line that is not UTF-8 is that line's failure (with its number), never the run's."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(_mixed_bytes())
    failed = tmp_path / "failed.jsonl"
    done = push(zendesk, str(source), "--failed", str(failed))
    assert "Traceback" not in done.stderr, done.stderr
    assert "malformed" in done.stdout
    _check_not_utf8_outcome(zendesk, failed, done.returncode)


def test_push_from_standard_input_skips_a_line_that_is_not_utf8(
    zendesk: ZendeskEmulator, tmp_path: Path
) -> None:
    """The same from `push -`: standard input is read as bytes too."""
    failed = tmp_path / "failed.jsonl"
    done = _cli_bytes(
        "push",
        "-",
        "--base-url",
        zendesk.base_url,
        "--instance-push-id",
        IPID,
        "--failed",
        str(failed),
        stdin=_mixed_bytes(),
    )
    assert b"Traceback" not in done.stderr, done.stderr
    _check_not_utf8_outcome(zendesk, failed, done.returncode)


def test_push_rerun_of_a_failed_file_with_a_non_utf8_line_does_not_abort(
    zendesk: ZendeskEmulator, tmp_path: Path
) -> None:
    """The failed file is valid UTF-8 JSON Lines: pushing it again reports the line, once."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(_mixed_bytes())
    failed = tmp_path / "failed.jsonl"
    push(zendesk, str(source), "--failed", str(failed))
    again = tmp_path / "again.jsonl"
    done = push(zendesk, str(failed), "--failed", str(again))
    assert done.returncode == 1, done.stderr
    [entry] = [json.loads(line) for line in again.read_text(encoding="utf-8").splitlines()]
    assert entry["line"] == 1
    assert "not UTF-8" in entry["error"]


def test_push_skips_json_nested_too_deeply(zendesk: ZendeskEmulator, tmp_path: Path) -> None:
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
    done = push(zendesk, str(source), "--failed", str(failed))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1
    assert zendesk.import_count("d-1") == zendesk.import_count("d-4") == 1
    entries = [json.loads(line) for line in failed.read_text().splitlines()]
    assert [e["line"] for e in entries] == [2, 3]
    assert all("nested too deeply" in e["error"] for e in entries)


def test_push_drops_a_byte_order_mark_opening_the_file(
    zendesk: ZendeskEmulator, tmp_path: Path
) -> None:
    """A UTF-8 byte order mark (Windows editors) before the first line is not a bad line."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + _line("bom-1").encode() + b"\n")
    done = push(zendesk, str(source))
    assert done.returncode == 0, done.stdout + done.stderr
    assert zendesk.import_count("bom-1") == 1


def test_push_has_a_max_attempts_option(zendesk: ZendeskEmulator, tmp_path: Path) -> None:
    """--max-attempts reaches the pipeline: a value it refuses is a usage error (exit 2)."""
    assert "--max-attempts" in cli("push", "--help").stdout
    source = tmp_path / "in.jsonl"
    source.write_text(_line("ma-1") + "\n")
    refused = push(zendesk, str(source), "--max-attempts", "0")
    assert refused.returncode == 2
    assert "max_attempts" in refused.stderr
    assert "Traceback" not in refused.stderr
    done = push(zendesk, str(source), "--max-attempts", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert zendesk.import_count("ma-1") == 1


def test_produce_skips_a_line_that_is_not_utf8() -> None:
    """`produce` reads bytes too: a line that is not UTF-8 is reported with its number and
    skipped. (Only bad lines here, so nothing is sent and no Redis server is needed.)"""
    pytest.importorskip("redis")
    done = _cli_bytes(
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
