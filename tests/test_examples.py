"""The programs in examples/ and the README's walk-through run as a user runs them, so they
never rot: the bot and the ingestion service against the emulator (and a real redis-server),
the fixture's example test under each async test plugin, the walk-through's commands and the
README's copy-paste test."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

from anychannel_async.testing import ZendeskEmulator

from .conftest import IPID, TOKEN, cli, cli_env, comment_ids, run_python, wait_for
from .redis_support import RedisServer, assert_each_imported_once, conversations

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _account_env(emulator: ZendeskEmulator) -> dict[str, str]:
    """The environment the examples read an account from: the emulator's."""
    return cli_env() | {
        "ANYCHANNEL_BASE_URL": emulator.base_url,
        "ANYCHANNEL_INSTANCE_PUSH_ID": IPID,
    }


def test_the_bot_awaits_each_message_s_own_outcome(emulator: ZendeskEmulator) -> None:
    """Each message is printed with its own outcome; the three conversations are three
    tickets, each with its messages in order, in fewer requests than messages."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "bot.py")],
        env=_account_env(emulator),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert sorted(lines) == sorted(
        f"chat-{chat}-message-{turn}: success" for chat in range(3) for turn in range(4)
    )
    assert len(emulator.tickets) == 3
    for chat in range(3):
        ids = [f"chat-{chat}-message-{turn}" for turn in range(4)]
        assert comment_ids(emulator, ids[0]) == ids


def test_the_bot_runs_on_its_own_emulator_without_an_account() -> None:
    """`python examples/bot.py` with no account set: it starts an emulator of its own."""
    done = run_python(str(EXAMPLES / "bot.py"), token=None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": success") == 12
    assert "Zendesk holds 3 tickets" in done.stdout


def _drained(conn: redis.Redis, streams: list[str]) -> bool:
    """Every entry of every stream delivered to the group `zendesk` and acknowledged."""
    for stream in streams:
        try:
            groups = conn.xinfo_groups(stream)
        except redis.exceptions.ResponseError:
            return False  # neither stream nor group yet
        if not any(g["name"] == b"zendesk" and g["lag"] == 0 and g["pending"] == 0 for g in groups):
            return False
    return True


def test_the_redis_ingestion_service_pushes_sharded_streams(
    emulator: ZendeskEmulator, redis_server: RedisServer, tmp_path: Path
) -> None:
    """`produce --shards 2` writes conversations to two streams; the service reads both,
    imports each resource once (each reply on its post's ticket), and stops cleanly on
    SIGTERM, logging what it did."""
    entries = conversations(20, replies_per_post=2)
    source = tmp_path / "posts.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in entries))
    produced = cli(
        "produce", str(source), "--redis", redis_server.url, "--stream", "zendesk", "--shards", "2"
    )
    assert produced.returncode == 0, produced.stdout + produced.stderr
    streams = ["zendesk:0", "zendesk:1"]
    service = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "ingest_redis.py"), *streams],
        env=_account_env(emulator) | {"REDIS_URL": redis_server.url, "CONSUMER": "worker-1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with redis.Redis(port=redis_server.port) as conn:
            assert all(conn.xlen(stream) > 0 for stream in streams)  # both shards are used
            wait_for(lambda: _drained(conn, streams), "both streams are drained")
        service.send_signal(signal.SIGTERM)
        _, err = service.communicate(timeout=30)
    finally:
        if service.poll() is None:
            service.kill()
            service.communicate()
    assert service.returncode == 0, err
    assert_each_imported_once(emulator, entries)
    assert "consuming zendesk:0, zendesk:1 as worker-1" in err
    assert "zendesk:0: read " in err
    assert "zendesk:1: read " in err
    assert TOKEN not in err


# How each async test plugin runs the fixture's example: its pytest.ini, the plugin disabled
# (both are installed here; a user has one), and the mark a user puts on each async test.
_PLUGINS = {
    "pytest-asyncio auto mode": (
        "asyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n",
        "anyio",
        None,
    ),
    "pytest-asyncio strict mode, marked": (
        "asyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n",
        "anyio",
        "@pytest.mark.asyncio",
    ),
    "anyio, marked": ("", "asyncio", "@pytest.mark.anyio"),
}
_FUTURE = "from __future__ import annotations\n"


def _run_the_example_test(tmp_path: Path, ini: str, *plugin_options: str, mark: str | None) -> str:
    """pytest on a copy of examples/test_with_fixture.py (each async test marked with mark)
    in a project of its own (its own pytest.ini, warnings as errors); its output and exit
    status."""
    (tmp_path / "pytest.ini").write_text(f"[pytest]\nfilterwarnings = error\n{ini}")
    example = (EXAMPLES / "test_with_fixture.py").read_text()
    if mark is not None:
        assert _FUTURE in example
        example = example.replace(_FUTURE, _FUTURE + "import pytest\n")
        example = example.replace("\nasync def test_", f"\n{mark}\nasync def test_")
    (tmp_path / "test_with_fixture.py").write_text(example)
    done = run_python(
        "-m", "pytest", "-p", "no:cacheprovider", *plugin_options, cwd=tmp_path, token=None
    )
    return f"exit status {done.returncode}\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("plugin", list(_PLUGINS))
def test_the_fixture_s_example_passes_under_each_async_plugin(tmp_path: Path, plugin: str) -> None:
    """The fixture works as documented with pytest-asyncio (auto, or strict and marked) and
    with anyio's plugin (marked): every test of the example runs and passes."""
    ini, disabled, mark = _PLUGINS[plugin]
    output = _run_the_example_test(tmp_path, ini, "-p", f"no:{disabled}", mark=mark)
    assert output.startswith("exit status 0\n"), output
    assert "3 passed" in output, output


def test_without_an_async_plugin_the_example_s_async_tests_fail(tmp_path: Path) -> None:
    """What the README warns of: with neither plugin, pytest refuses the async tests (the sync
    one passes), so the documentation's requirement is real."""
    output = _run_the_example_test(tmp_path, "", "-p", "no:asyncio", "-p", "no:anyio", mark=None)
    assert output.startswith("exit status 1\n"), output
    assert "async def functions are not natively supported" in output
    assert "1 passed" in output, output


# -- the README's walk-through and its test, as a newcomer pastes them --------------------------

README = EXAMPLES.parent / "README.md"
BASH = shutil.which("bash") or "/bin/bash"


def _walk_through() -> tuple[str, str, list[str]]:
    """The README walk-through's blocks: the first terminal's, the second's (joined), and the
    output it shows, in order."""
    blocks = re.findall(
        r"<!-- walk-through: ([\w ]+) -->\n```\w+\n(.*?)```", README.read_text(), flags=re.DOTALL
    )
    first = [text for kind, text in blocks if kind == "terminal 1"]
    second = [text for kind, text in blocks if kind == "terminal 2"]
    shown = [text for kind, text in blocks if kind == "output"]
    assert len(first) == 1, blocks
    assert len(second) >= 3, blocks
    assert shown, blocks
    return first[0], "".join(second), shown


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_readme_walk_through_runs_as_written(tmp_path: Path) -> None:
    """The walk-through's commands, taken from the README, run in a shell: the emulator in one,
    the rest in another, in a fresh directory, with the installed command on the PATH (the
    port swapped for a free one). Each output it shows is printed, but the times."""
    first, second, shown = _walk_through()
    port = str(_free_port())
    env = cli_env(None) | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    emulator = subprocess.Popen(
        [BASH, "-c", first.replace("8080", port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # bash and the emulator: one group, stopped together
    )
    try:
        assert emulator.stdout is not None
        assert emulator.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        done = subprocess.run(
            [BASH, "-c", second.replace("8080", port)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.killpg(emulator.pid, signal.SIGTERM)
        emulator.communicate(timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = done.stdout.splitlines()
    for block in shown:
        for line in block.replace("8080", port).splitlines():
            if not re.fullmatch(r"in [\d.]+ s, [\d,]+ resources/s", line):
                assert line in printed, f"{line!r} not in:\n{done.stdout}{done.stderr}"
    assert (tmp_path / "again.jsonl").read_text() == ""
    assert "Traceback" not in done.stderr


def test_the_readme_s_copy_paste_test_passes(tmp_path: Path) -> None:
    """The test the README's Testing section gives, in a project configured as it says
    (pytest-asyncio, auto mode), passes."""
    text = README.read_text()
    section = text[text.index("## Testing your code against the emulator") :]
    test = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]
    config = re.findall(r"```toml\n(.*?)```", section, flags=re.DOTALL)[0]
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(config) + 'filterwarnings = ["error"]\n'
    )
    (tmp_path / "test_mine.py").write_text(test)
    done = run_python("-m", "pytest", "-p", "no:cacheprovider", "-p", "no:anyio", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
