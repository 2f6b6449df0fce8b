"""What a hostile or careless user does to the operations features: log lines a forger tries
to hide from a JSON log collector, Redis URLs whose password must never show, accounts stores
in Redis named on the command line."""

from __future__ import annotations

import io
import json
import logging

import pytest
import redis

from anychannel_async import Account, AccountStore, AccountStoreError
from anychannel_async.cli._common import JsonFormatter

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
