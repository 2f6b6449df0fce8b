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


PASSWORD = "stream-password-never-shown-8e2f"


def test_a_unix_url_redis_would_read_as_another_socket_is_a_usage_error(
    socket_server: RedisServer, tmp_path: Path
) -> None:
    """``--redis unix://tmp/…/redis.sock`` (two slashes) names a host redis-py drops: consume
    would wait "until Redis is back" on another socket for ever, produce fail on it. Both exit
    2 at once saying what to write, the password hidden; three slashes reach the server."""
    assert socket_server.socket_path is not None
    absolute = str(socket_server.socket_path)
    with redis.Redis(unix_socket_path=absolute) as conn:
        conn.config_set("requirepass", PASSWORD)
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(raw_resource("u-1")) + "\n")
    wrong = f"unix://:{PASSWORD}@{absolute.removeprefix('/')}"
    runs = [
        cli("produce", str(source), "--redis", wrong, "--stream", STREAM, token=None),
        cli(
            *("consume", "--redis", wrong, "--stream", STREAM, "--group", "g"),
            *("--consumer", "c1", "--base-url", "http://127.0.0.1:9", "--instance-push-id", "i"),
            timeout=30,
        ),
    ]
    for done in runs:
        assert done.returncode == 2, done.stdout + done.stderr
        assert "unix:///path/to/redis.sock" in done.stderr
        assert PASSWORD not in done.stdout + done.stderr
    right = f"unix://:{PASSWORD}@{absolute}"
    done = cli("produce", str(source), "--redis", right, "--stream", STREAM, token=None)
    assert done.returncode == 0, done.stderr
    with redis.Redis(unix_socket_path=absolute, password=PASSWORD) as conn:
        assert conn.xlen(STREAM) == 1


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
