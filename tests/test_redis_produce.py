"""The `anychannel-async produce` command: lines appended as entries, bad ones reported."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import redis

from .conftest import cli, raw_resource, run_python
from .redis_support import STREAM, RedisServer, xrange


def _produce(
    server: RedisServer, source: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return cli(
        "produce", source, "--redis", server.url, "--stream", STREAM, token=None, stdin=stdin
    )


def test_produce_appends_each_line_and_reports_bad_ones(
    redis_server: RedisServer, rdb: redis.Redis, tmp_path: Path
) -> None:
    """Each valid line becomes one entry holding the resource; bad lines are reported by
    number and skipped, and the exit status is 1."""
    good = [raw_resource(f"p-{n}") for n in range(1_200)]  # more than one pipelined chunk
    lines = [json.dumps(r, indent=None) for r in good]
    lines[3:3] = ["{not json", "", json.dumps(raw_resource("typo", mesage="x"))]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    done = _produce(redis_server, str(source))
    assert done.returncode == 1
    assert "line 4: not JSON" in done.stderr
    assert "line 6: invalid" in done.stderr
    assert "appended 1200" in done.stdout
    stored = xrange(rdb, STREAM)
    assert [json.loads(fields[b"resource"]) for _, fields in stored] == good
    first = stored[0][1][b"resource"]
    assert first == json.dumps(good[0], separators=(",", ":")).encode()  # compact


def test_produce_reads_standard_input_and_exits_zero_when_all_lines_are_good(
    redis_server: RedisServer, rdb: redis.Redis
) -> None:
    """`produce -` reads standard input; exit status 0 when nothing was skipped."""
    stdin = "".join(json.dumps(raw_resource(f"s-{n}")) + "\n" for n in range(3))
    done = _produce(redis_server, "-", stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert rdb.xlen(STREAM) == 3


def test_commands_say_how_to_install_redis_support_when_it_is_missing() -> None:
    """Without redis-py, consume and produce exit 2 naming the extra to install."""
    script = (
        "import sys; sys.modules['redis'] = None\n"
        "from anychannel_async.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = run_python(
        "-c", script, "produce", "-", "--redis", "redis://x", "--stream", "s", token=None, stdin=""
    )
    assert done.returncode == 2
    assert "pip install 'anychannel-async[redis]'" in done.stderr
