"""What a hostile or careless user does to the operations features: log lines a forger tries
to hide from a JSON log collector, Redis URLs whose password must never show, accounts stores
in Redis named on the command line."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
from pathlib import Path

import pytest
import redis

from anychannel_async import Account, AccountStore, AccountStoreError
from anychannel_async.cli._common import JsonFormatter
from anychannel_async.testing import ZendeskEmulator

from .conftest import IPID, TOKEN, cli, raw_resource, start_cli, wait_for
from .redis_support import RedisServer

#: Distinctive, so its showing up in any text is easy to spot.
PASSWORD = "redis-password-never-shown-3c1d"


def test_a_json_log_line_holds_text_and_numbers_utf8_cannot_encode() -> None:
    """JSON's \\ud800 escape gives a forged request's text a lone surrogate (a forged event's
    type_id, logged when its metadata does not verify), and a record's data may hold an integer
    beyond 64 bits: the line is still one JSON object, not a "Logging error" traceback on
    stderr with the forger's line lost."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("serve"))
    record = logging.LogRecord(
        "anychannel_async.integration",
        logging.WARNING,
        __file__,
        1,
        "dropped a %s event whose metadata does not verify",
        ("\ud800 hidden",),
        None,
    )
    record.data = {"count": 2**70}
    handler.handle(record)
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "dropped a \ud800 hidden event whose metadata does not verify"
    assert entry["count"] == 2**70
    assert entry["logger"] == "anychannel_async.integration"


async def test_a_password_given_in_the_url_s_query_is_never_shown(
    redis_server: RedisServer, rdb: redis.Redis
) -> None:
    """redis-py takes the password as ``?password=`` too: it is hidden there as in the userinfo,
    in the repr, ``path`` and an error."""
    rdb.config_set("requirepass", PASSWORD)
    good = f"redis://127.0.0.1:{redis_server.port}/0?password={PASSWORD}"
    async with AccountStore(good) as store:
        await store.put(Account("ipid-1", base_url="http://127.0.0.1:1", token="t"))
        assert PASSWORD not in repr(store) + store.path
    with pytest.raises(AccountStoreError) as caught:
        async with AccountStore(f"redis://127.0.0.1:1/0?password={PASSWORD}") as store:
            pass
    assert PASSWORD not in str(caught.value) + repr(store)


def test_the_commands_take_a_redis_accounts_store_and_never_show_its_password(
    redis_server: RedisServer, rdb: redis.Redis, emulator: ZendeskEmulator, tmp_path: Path
) -> None:
    """The README: ``consume --accounts`` takes ``redis://…`` as it takes a path; so do
    ``push --accounts`` and ``accounts``, which fill the store. None refuses the URL as a
    missing file, and none prints its password."""
    rdb.config_set("requirepass", PASSWORD)
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/1"
    added = cli("accounts", "add", url, "--instance-push-id", IPID, "--base-url", emulator.base_url)
    listed = cli("accounts", "list", url, token=None)
    lines = tmp_path / "lines.jsonl"
    lines.write_text(json.dumps({"instance_push_id": IPID, "resource": raw_resource("p-1")}))
    pushed = cli("push", str(lines), "--accounts", url, token=None)
    for done in (added, listed, pushed):
        assert done.returncode == 0, done.stdout + done.stderr
        assert PASSWORD not in done.stdout + done.stderr
    assert IPID in listed.stdout
    assert emulator.import_count("p-1") == 1
    assert TOKEN not in listed.stdout + pushed.stdout + pushed.stderr
    # consume logs (at INFO, its default) which accounts it pushes to.
    with redis.Redis(port=redis_server.port, password=PASSWORD) as conn:
        entry = {"instance_push_id": IPID, "resource": json.dumps(raw_resource("c-1"))}
        conn.xadd("s", entry)
    process = start_cli(
        *("consume", "--redis", f"redis://127.0.0.1:{redis_server.port}/0?password={PASSWORD}"),
        *("--stream", "s", "--group", "g", "--consumer", "c", "--accounts", url),
        *("--max-latency", "0.01", "--block-ms", "200"),
        token=None,
    )
    try:
        wait_for(lambda: emulator.import_count("c-1") == 1, "consume imported c-1")
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stdout + stderr
    assert "consuming s" in stderr
    assert PASSWORD not in stdout + stderr


def test_the_readme_s_logging_section_names_every_logger_of_the_package() -> None:
    """Issue 13: the README's "Logging" names the loggers; one the code adds later (the ticket
    ledger's, the emulator's) must be there too, or its lines come from nowhere a reader knows."""
    root = Path(__file__).parent.parent
    names = {
        found
        for module in (root / "anychannel_async").rglob("*.py")
        for found in re.findall(r'getLogger\("(anychannel_async[\w.]*)"\)', module.read_text())
    }
    readme = root.joinpath("README.md").read_text()
    section = readme.split("## Logging", 1)[1].split("\n## ", 1)[0]
    assert names
    assert sorted(n for n in names if f"| `{n}` |" not in section) == []
