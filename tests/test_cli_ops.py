"""The command line in production: --version, help that shows defaults, logging options on
every command (levels, JSON, no secret), outbox retry's table, produce's shards, consume's
streams and progress lines."""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import threading
import zlib
from pathlib import Path
from typing import IO

import pytest
import redis

from anychannel_async import __version__
from anychannel_async.cli._main import parser as cli_parser
from anychannel_async.testing import Faults, ZendeskEmulator
from anychannel_async.testing._standalone import _parser as emulator_parser

from .conftest import IPID, TOKEN, account_options, cli, raw_resource, start_cli, wait_for
from .redis_support import RedisServer, conversations

# -- packaging and help ---------------------------------------------------------------------


def test_version_prints_the_package_s_version() -> None:
    done = cli("--version", token=None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"anychannel-async {__version__}"


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command's parser under parser, with the words that name it."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*path, name))
    return found


def _help_of_each_option(text: str) -> dict[str, str]:
    """An option's help text in `--help` output, by its long name (or short, if alone)."""
    found: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        option = re.match(r"  (?:-\w(?: \S+)?, )?(--?[\w-]+)", line)
        if option is not None:
            current = option.group(1)
            found[current] = line
        elif current is not None and line.startswith("   "):
            found[current] += " " + line.strip()
        else:
            current = None
    return found


# Every command's parser: the emulator's own, and the others from the command line's.
_PARSERS = [(words, p) for words, p in _commands(cli_parser()) if words != ("emulator",)] + [
    (("emulator",), emulator_parser("anychannel-async emulator"))
]


@pytest.mark.parametrize(
    ("words", "parser"), _PARSERS, ids=[" ".join(w) or "(top)" for w, _ in _PARSERS]
)
def test_the_help_of_every_command_shows_each_option_s_default(
    words: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    """`--help`: every option that has a default (not None, not a flag off) says it."""
    shown = _help_of_each_option(parser.format_help())
    with_defaults = [
        action
        for action in parser._actions
        if action.option_strings
        and action.help is not argparse.SUPPRESS
        # By identity: a default of 0 is a default to show, though 0 == False.
        and not any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS))
    ]
    missing = [
        action.option_strings[-1]
        for action in with_defaults
        if "default" not in shown.get(action.option_strings[-1], "").lower()
    ]
    assert missing == [], f"{' '.join(words)} --help: {shown}"


def test_help_of_a_command_shows_defaults_and_the_logging_options() -> None:
    """The real `--help`, as a user runs it."""
    done = cli("push", "--help", token=None)
    assert done.returncode == 0, done.stderr
    assert re.search(r"--max-batch-size[^-]*\(default 100\b", done.stdout)
    for option in ("-v, --verbose", "--log-level", "--log-format"):
        assert option in done.stdout


# -- logging ----------------------------------------------------------------------------------


def _posts(tmp_path: Path, *ids: str) -> Path:
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps(raw_resource(i)) + "\n" for i in ids))
    return path


@pytest.mark.parametrize(
    "where", ["after", "before"], ids=["after the command", "before the command"]
)
def test_vv_shows_the_package_s_debug_lines_and_never_the_token(
    emulator: ZendeskEmulator, tmp_path: Path, where: str
) -> None:
    posts = _posts(tmp_path, "p-1", "p-2")
    args = ["push", str(posts), *account_options(emulator)]
    done = cli(*([*args, "-vv"] if where == "after" else ["-vv", *args]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(
        r"DEBUG anychannel-async push anychannel_async: POST /api/v2/any_channel/push -> 200",
        done.stderr,
    ), done.stderr
    assert TOKEN not in done.stderr + done.stdout


def test_without_v_no_debug_or_info_line(emulator: ZendeskEmulator, tmp_path: Path) -> None:
    done = cli("push", str(_posts(tmp_path, "p-1")), *account_options(emulator))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""


def test_log_format_json_gives_one_object_per_line(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """--log-format json: every line of stderr is a JSON object with time, level, logger,
    command and message; a refused token's debug lines do not hold it either."""
    wrong = TOKEN + "-wrong"
    done = cli(
        "push",
        str(_posts(tmp_path, "p-1")),
        *account_options(emulator),
        "--log-level",
        "debug",
        "--log-format",
        "json",
        token=wrong,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    logged = [line for line in done.stderr.splitlines() if line.startswith("{")]
    assert logged, done.stderr
    records = [json.loads(line) for line in logged]
    assert all(
        {"time", "level", "logger", "command", "message"} <= record.keys() for record in records
    )
    assert {r["level"] for r in records} >= {"DEBUG"}
    assert {r["command"] for r in records} == {"push"}
    assert wrong not in done.stderr + done.stdout


def test_v_and_log_level_together_are_a_usage_error(emulator: ZendeskEmulator) -> None:
    done = cli("validate-token", *account_options(emulator), "-v", "--log-level", "info")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "give -v or --log-level, not both" in done.stderr


def test_the_emulator_takes_the_logging_options_too() -> None:
    """The emulator has its own parser: the logging options are taken off before it parses."""
    done = cli("-v", "emulator", "--log-format", "json", "--help", token=None)
    assert done.returncode == 0, done.stderr
    assert "usage: anychannel-async emulator" in done.stdout
    assert all(flag in done.stdout for flag in ("--verbose", "--log-level", "--log-format"))


# -- outbox retry ------------------------------------------------------------------------------


def test_outbox_retry_prints_the_outcome_table_of_push(
    emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    emulator.faults = Faults(processing_error_ids=frozenset({"bad-1"}))
    first = cli(
        "push",
        str(_posts(tmp_path, "ok-1", "bad-1")),
        *account_options(emulator),
        "--outbox",
        str(outbox),
        "--max-batch-size",
        "1",
    )
    assert first.returncode == 1, first.stdout + first.stderr
    emulator.faults = Faults()
    done = cli("outbox", "retry", str(outbox), *account_options(emulator))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 dead letters are pending again" in done.stdout
    assert f"pushed the pending rows of {IPID}:" in done.stdout
    assert re.search(r"^  success\s+1$", done.stdout, flags=re.MULTILINE), done.stdout
    assert re.search(r"^  total\s+1$", done.stdout, flags=re.MULTILINE), done.stdout
    assert "{" not in done.stdout  # no Python dict
    assert emulator.import_count("bad-1") == 1


# -- produce --shards, consume of several streams ------------------------------------------------


def _sharded_conversations() -> list[dict[str, object]]:
    """Posts with replies, a reply to a reply, and resources of a thread."""
    found = conversations(12, replies_per_post=2)
    found.append(raw_resource("deep-0", parent_id="reply-3-0"))
    found += [raw_resource(f"thread-{n}", thread_id="thread-a") for n in range(3)]
    return found


def _root(entry: dict[str, object], by_id: dict[str, dict[str, object]]) -> str:
    """The conversation's key, as the README says: thread_id, else the root post's id."""
    if "thread_id" in entry:
        return str(entry["thread_id"])
    while "parent_id" in entry:
        entry = by_id[str(entry["parent_id"])]
    return str(entry["external_id"])


def _assert_each_imported_once(emulator: ZendeskEmulator, entries: list[dict[str, object]]) -> None:
    """Each resource imported once, on the ticket of its conversation's root (or thread)."""
    by_id = {str(e["external_id"]): e for e in entries}
    assert {i: n for i in by_id if (n := emulator.import_count(i)) != 1} == {}
    tickets = {i: emulator.ticket_for(i) for i in by_id}
    for external_id, entry in by_id.items():
        if "parent_id" in entry:
            ticket = tickets[external_id]
            assert ticket is not None
            assert ticket.external_id == _root(entry, by_id)
    thread = {tickets[i] for i, e in by_id.items() if "thread_id" in e}
    assert len(thread) == 1


def test_produce_shards_keeps_each_conversation_on_the_stream_of_its_key(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    entries = _sharded_conversations()
    source = tmp_path / "posts.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in entries))
    done = cli(
        "produce", str(source), "--redis", redis_server.url, "--stream", "z", "--shards", "4"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"appended {len(entries)} entries to z:0..3" in done.stdout
    by_id = {str(e["external_id"]): e for e in entries}
    found: dict[str, str] = {}
    with redis.Redis(port=redis_server.port) as conn:
        for shard in range(4):
            for _, fields in conn.xrange(f"z:{shard}"):
                found[json.loads(fields[b"resource"])["external_id"]] = f"z:{shard}"
        assert not conn.exists("z")
    assert sorted(found) == sorted(by_id)
    for external_id, stream in found.items():
        key = _root(by_id[external_id], by_id)
        assert stream == f"z:{zlib.crc32(key.encode()) % 4}", external_id
    assert len(set(found.values())) > 1  # the conversations are spread


def test_produce_shards_must_be_at_least_one(redis_server: RedisServer, tmp_path: Path) -> None:
    source = _posts(tmp_path, "p-1")
    done = cli(
        "produce", str(source), "--redis", redis_server.url, "--stream", "z", "--shards", "0"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--shards must be at least 1" in done.stderr


class _Lines:
    """A child's stderr, read line by line by a thread, so a test can wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def join(self) -> str:
        self._thread.join(timeout=30)
        return "".join(self.lines)


def test_consume_reads_every_shard_and_logs_its_progress(
    emulator: ZendeskEmulator, redis_server: RedisServer, tmp_path: Path
) -> None:
    """`consume --stream z --shards 3` reads what `produce --shards 3` wrote, each resource
    imported once; at INFO (its default) it logs its start, a progress line per interval
    (JSON here, with its counts) and its stop."""
    entries = _sharded_conversations()
    source = tmp_path / "posts.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in entries))
    produced = cli(
        "produce", str(source), "--redis", redis_server.url, "--stream", "z", "--shards", "3"
    )
    assert produced.returncode == 0, produced.stdout + produced.stderr
    process = start_cli(
        "consume",
        "--redis",
        redis_server.url,
        "--stream",
        "z",
        "--shards",
        "3",
        "--group",
        "g",
        "--consumer",
        "c1",
        *account_options(emulator),
        "--max-latency",
        "0.01",
        "--block-ms",
        "200",
        "--log-format",
        "json",
        "--progress-interval",
        "0.2",
    )
    stderr = _Lines(process)

    def progress_of_all() -> bool:
        records = [json.loads(line) for line in stderr.lines if line.startswith("{")]
        return any(
            r["message"].startswith("progress:") and r.get("imported") == len(entries)
            for r in records
        )

    try:
        wait_for(progress_of_all, "a progress line counts every resource imported")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)  # stderr is the thread's to read; stdout holds a line
        assert process.stdout is not None
        out = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        err = stderr.join()
        for pipe in (process.stdout, process.stderr):
            assert pipe is not None
            pipe.close()
    assert process.returncode == 0, out + err
    _assert_each_imported_once(emulator, entries)
    assert f"read {len(entries)} " in out
    messages = [json.loads(line)["message"] for line in err.splitlines()]
    assert messages[0] == f"consuming z:0, z:1, z:2 as c1 of group g, pushing to {IPID} at" + (
        f" {emulator.base_url}"
    )
    assert messages[-1].startswith(f"stopped: read {len(entries)}"), messages
    assert TOKEN not in err


def test_consume_takes_several_streams(
    emulator: ZendeskEmulator, redis_server: RedisServer
) -> None:
    """--stream repeated: each stream read by its own group of the name, into one pipeline."""
    with redis.Redis(port=redis_server.port) as conn:
        for stream, prefix in (("a", "a-"), ("b", "b-")):
            for n in range(5):
                conn.xadd(stream, {"resource": json.dumps(raw_resource(f"{prefix}{n}"))})

        def drained() -> bool:
            try:
                groups = [g for s in ("a", "b") for g in conn.xinfo_groups(s)]
            except redis.exceptions.ResponseError:
                return False
            return len(groups) == 2 and all(g["lag"] == 0 and g["pending"] == 0 for g in groups)

        process = start_cli(
            "consume",
            "--redis",
            redis_server.url,
            "--stream",
            "a",
            "--stream",
            "b",
            "--group",
            "g",
            "--consumer",
            "c1",
            *account_options(emulator),
            "--block-ms",
            "200",
        )
        try:
            wait_for(drained, "both streams are drained")
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, out + err
    assert all(emulator.import_count(f"{p}{n}") == 1 for p in ("a-", "b-") for n in range(5))
    assert "read 10 " in out
