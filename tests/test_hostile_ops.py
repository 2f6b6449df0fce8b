"""What a hostile or careless user does to the operations features: log lines a forger tries
to hide from a JSON log collector, Redis URLs whose password must never show, accounts stores
in Redis named on the command line."""

from __future__ import annotations

import io
import json
import logging

from anychannel_async.cli._common import JsonFormatter


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
