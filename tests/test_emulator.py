"""The Zendesk emulator, spoken to over TCP with a raw aiohttp session, as a client would."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from anychannel_async.testing import (
    DEFAULT_INSTANCE_PUSH_ID,
    DEFAULT_TOKEN,
    Fault,
    Faults,
    ZendeskEmulator,
    _plugin,
)

from .conftest import PUSH_PATH, REPORT_ERROR_PATH, VALIDATE_TOKEN_PATH, raw_resource

# Makes the plugin's fixture available even when the package is not installed (no entry point).
zendesk_emulator = _plugin.zendesk_emulator

# The standalone test runs the package from this checkout, installed or not.
REPO_ROOT = str(Path(__file__).resolve().parents[1])


def push_body(*resources: Mapping[str, object], **extra: object) -> dict[str, object]:
    """A push body for the default account."""
    return {
        "instance_push_id": DEFAULT_INSTANCE_PUSH_ID,
        "external_resources": list(resources),
        **extra,
    }


def bearer(token: str = DEFAULT_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Answer:
    """A response read in full, so no connection is left open by a test."""

    def __init__(self, status: int, text: str, headers: Mapping[str, str]) -> None:
        self.status = status
        self.text = text
        self.headers = headers

    def json(self) -> Any:
        return json.loads(self.text)

    def codes(self) -> list[str]:
        return [r["status"]["code"] for r in self.json()["results"]]


async def post(
    session: aiohttp.ClientSession,
    emu: ZendeskEmulator,
    path: str,
    body: object,
    *,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    async with session.post(
        emu.base_url + path, json=body, headers=bearer() if headers is None else headers
    ) as response:
        return Answer(response.status, await response.text(), dict(response.headers))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


# -- endpoints ------------------------------------------------------------------------------


async def test_push_opens_a_ticket_for_a_new_resource(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """A new resource without parent or thread opens a ticket and is answered success."""
    answer = await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))
    assert answer.status == 200
    assert answer.json() == {
        "results": [{"external_resource_id": "m1", "status": {"code": "success"}}]
    }
    [ticket] = emulator.tickets
    assert ticket.external_id == "m1"
    assert ticket.instance_push_id == DEFAULT_INSTANCE_PUSH_ID
    assert ticket.comments[0].message == "message m1"
    assert ticket.comments[0].author_name == "Ada"


async def test_push_json_path_is_served_too(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """The `.json` form of the push path is the same endpoint."""
    answer = await post(session, emulator, PUSH_PATH + ".json", push_body(raw_resource("m1")))
    assert answer.codes() == ["success"]


async def test_validate_token_answers_null_for_a_valid_token(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """validate_token answers 200 with a JSON null body for the account's token."""
    answer = await post(
        session, emulator, VALIDATE_TOKEN_PATH, {"instance_push_id": DEFAULT_INSTANCE_PUSH_ID}
    )
    assert (answer.status, answer.text) == (200, "null")


async def test_validate_token_answers_401_for_a_wrong_token(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """validate_token answers 401 for a token that is not the account's."""
    answer = await post(
        session,
        emulator,
        VALIDATE_TOKEN_PATH + ".json",
        {"instance_push_id": DEFAULT_INSTANCE_PUSH_ID},
        headers=bearer("wrong"),
    )
    assert answer.status == 401
    assert answer.json() == {"error": "Couldn't authenticate you"}


async def test_report_error_is_recorded(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """report_error answers null and records the reported channelback error."""
    body = {
        "instance_push_id": DEFAULT_INSTANCE_PUSH_ID,
        "external_id": "cb-1",
        "description": "HTML content is not supported",
        "request_id": "r1",
    }
    answer = await post(session, emulator, REPORT_ERROR_PATH, body)
    assert (answer.status, answer.text) == (200, "null")
    [error] = emulator.reported_errors
    assert error.external_id == "cb-1"
    assert error.description == "HTML content is not supported"
    assert error.request_id == "r1"


async def test_report_error_requires_an_external_id(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """report_error without external_id is a 400 and records nothing."""
    answer = await post(
        session, emulator, REPORT_ERROR_PATH, {"instance_push_id": DEFAULT_INSTANCE_PUSH_ID}
    )
    assert answer.status == 400
    assert answer.json()["description"] == "external_id: required"
    assert emulator.reported_errors == []


# -- authentication -------------------------------------------------------------------------


async def test_wrong_token_is_401(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """A push with a wrong bearer token is 401 and processes nothing."""
    answer = await post(
        session, emulator, PUSH_PATH, push_body(raw_resource("m1")), headers=bearer("nope")
    )
    assert answer.status == 401
    assert emulator.tickets == []


async def test_unknown_instance_push_id_is_401(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """A valid token used for an instance_push_id of no account is 401."""
    body = push_body(raw_resource("m1"))
    body["instance_push_id"] = "someone-else"
    answer = await post(session, emulator, PUSH_PATH, body)
    assert answer.status == 401


async def test_missing_authorization_is_401(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """A request without an Authorization header is 401."""
    answer = await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")), headers={})
    assert answer.status == 401


async def test_token_of_another_account_is_401(session: aiohttp.ClientSession) -> None:
    """Each instance_push_id accepts only its own token."""
    async with ZendeskEmulator(accounts={"a": "token-a", "b": "token-b"}) as emu:
        body = {"instance_push_id": "a"}
        assert (
            await post(session, emu, VALIDATE_TOKEN_PATH, body, headers=bearer("token-b"))
        ).status == 401
        assert (
            await post(session, emu, VALIDATE_TOKEN_PATH, body, headers=bearer("token-a"))
        ).status == 200


async def test_basic_credentials_are_accepted(session: aiohttp.ClientSession) -> None:
    """An account with (username, password) accepts matching Basic credentials only."""
    async with ZendeskEmulator(accounts={"ipid": ("me@example.com/token", "secret")}) as emu:
        body = {"instance_push_id": "ipid"}
        good = base64.b64encode(b"me@example.com/token:secret").decode()
        bad = base64.b64encode(b"me@example.com/token:guess").decode()
        ok = await post(
            session, emu, VALIDATE_TOKEN_PATH, body, headers={"Authorization": f"Basic {good}"}
        )
        wrong = await post(
            session, emu, VALIDATE_TOKEN_PATH, body, headers={"Authorization": f"Basic {bad}"}
        )
        assert (ok.status, wrong.status) == (200, 401)


# -- processing -----------------------------------------------------------------------------


async def test_repeated_external_id_is_already_imported(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """Pushing an imported external_id again is already_imported and creates nothing."""
    await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))
    answer = await post(
        session, emulator, PUSH_PATH, push_body(raw_resource("m1"), raw_resource("m1"))
    )
    assert answer.codes() == ["already_imported", "already_imported"]
    assert len(emulator.tickets) == 1
    assert emulator.import_count("m1") == 1


async def test_parent_id_comments_on_the_parents_ticket(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """A resource naming an imported parent becomes a comment on the parent's ticket."""
    await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))
    answer = await post(session, emulator, PUSH_PATH, push_body(raw_resource("m2", parent_id="m1")))
    assert answer.codes() == ["success"]
    [ticket] = emulator.tickets
    assert [c.external_id for c in ticket.comments] == ["m1", "m2"]
    assert emulator.ticket_for("m2") == ticket


async def test_parent_earlier_in_the_same_request_is_found(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """A parent earlier in the same request counts as imported for the resources after it."""
    answer = await post(
        session,
        emulator,
        PUSH_PATH,
        push_body(raw_resource("m1"), raw_resource("m2", parent_id="m1")),
    )
    assert answer.codes() == ["success", "success"]
    assert len(emulator.tickets) == 1


async def test_missing_parent_is_named_and_does_not_halt(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """An unknown parent gives could_not_locate_parent_external_resource with the parent id as
    description, and the resources after it are still processed."""
    answer = await post(
        session,
        emulator,
        PUSH_PATH,
        push_body(raw_resource("m2", parent_id="ghost"), raw_resource("m3")),
    )
    assert answer.json()["results"] == [
        {
            "external_resource_id": "m2",
            "status": {"code": "could_not_locate_parent_external_resource", "description": "ghost"},
        },
        {"external_resource_id": "m3", "status": {"code": "success"}},
    ]


async def test_thread_id_groups_resources_into_one_ticket(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """Resources sharing a thread_id land on one ticket, across requests."""
    await post(
        session,
        emulator,
        PUSH_PATH,
        push_body(raw_resource("m1", thread_id="t"), raw_resource("x")),
    )
    await post(session, emulator, PUSH_PATH, push_body(raw_resource("m2", thread_id="t")))
    ticket = emulator.ticket_for("m1")
    assert ticket is not None
    assert ticket.thread_id == "t"
    assert [c.external_id for c in ticket.comments] == ["m1", "m2"]
    assert len(emulator.tickets) == 2


async def test_processing_error_halts_the_rest_of_the_request(
    session: aiohttp.ClientSession,
) -> None:
    """After a processing_error every later resource of the request is halted, unprocessed."""
    async with ZendeskEmulator(faults=Faults(processing_error_ids=frozenset({"m2"}))) as emu:
        answer = await post(
            session,
            emu,
            PUSH_PATH,
            push_body(raw_resource("m1"), raw_resource("m2"), raw_resource("m3")),
        )
        results = answer.json()["results"]
        assert [r["status"]["code"] for r in results] == ["success", "processing_error", "halted"]
        assert "description" in results[1]["status"]
        assert "description" not in results[2]["status"]
        assert emu.import_count("m3") == 0


async def test_fields_are_set_only_by_the_opening_resource(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """Ticket fields come from the resource that opens the ticket, not from its comments."""
    opener = raw_resource(
        "m1", fields=[{"id": "subject", "value": "Hello"}, {"id": 360, "value": 1}]
    )
    reply = raw_resource("m2", parent_id="m1", fields=[{"id": "subject", "value": "Ignored"}])
    await post(session, emulator, PUSH_PATH, push_body(opener, reply))
    [ticket] = emulator.tickets
    assert ticket.fields == (("subject", "Hello"), ("360", 1))


async def test_display_info_data_may_be_an_object(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """display_info data is accepted as an object, as in the API reference's curl example."""
    info = [{"type": "9ef45ff7", "data": {"whatever": "I want"}}]
    answer = await post(
        session, emulator, PUSH_PATH, push_body(raw_resource("m1", display_info=info))
    )
    assert answer.codes() == ["success"]


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "description"),
    [
        (
            {"message": "x" * 65536},
            "external_resources[1].message: length 65536 exceeds the limit of 65535 characters",
        ),
        (
            {"external_id": "e" * 256},
            "external_resources[1].external_id: length 256 exceeds the limit of 255 characters",
        ),
        ({"external_id": "café"}, "external_resources[1].external_id: must contain only ASCII"),
        (
            {"parent_id": "p" * 512},
            "external_resources[1].parent_id: length 512 exceeds the limit of 511 characters",
        ),
        (
            {"thread_id": "t", "parent_id": "p"},
            "external_resources[1]: parent_id and thread_id must not both be set",
        ),
        ({"file_urls": ["https://x"] * 11}, "external_resources[1].file_urls: 11 items exceed"),
        ({"created_at": "yesterday"}, "external_resources[1].created_at: 'yesterday' is not"),
        ({"author": {"name": "no id"}}, "external_resources[1].author.external_id: required"),
        ({"internal_note": "yes"}, "external_resources[1].internal_note: must be a boolean"),
        ({"html_message": None}, "external_resources[1].html_message: must be a string"),
        ({"threadId": "t"}, "external_resources[1].threadId: unknown field"),
        (
            {"author": {"external_id": "a", "locale": "xx-klingon"}},
            "external_resources[1].author.locale: 'xx-klingon' is not a supported locale",
        ),
    ],
    ids=[
        "message-too-long",
        "external-id-too-long",
        "external-id-not-ascii",
        "parent-id-too-long",
        "parent-and-thread",
        "too-many-files",
        "created-at-not-iso",
        "author-without-id",
        "internal-note-not-bool",
        "null-optional",
        "unknown-field",
        "unsupported-locale",
    ],
)
async def test_invalid_resource_rejects_the_whole_request(
    emulator: ZendeskEmulator,
    session: aiohttp.ClientSession,
    extra: dict[str, object],
    description: str,
) -> None:
    """An invalid resource is a 400 naming its path (and the limit), and nothing is processed."""
    answer = await post(
        session, emulator, PUSH_PATH, push_body(raw_resource("ok"), raw_resource("bad", **extra))
    )
    assert answer.status == 400
    assert answer.json()["error"] == "InvalidValue"
    assert answer.json()["description"].startswith(description)
    assert emulator.tickets == []


# The limits of Zendesk's own JSON schemas for the push (NOTES.md), beyond the seed's.
_FIELD = {"id": "subject", "value": "x"}
_INFO = {"type": "t", "data": {"k": "v"}}
# '{"k":"' + filler + '"}' is 8 characters of compact JSON plus the filler.
_BIG_DATA = {"k": "d" * (65_536 - 8)}


@pytest.mark.parametrize(
    ("extra", "description"),
    [
        pytest.param(
            {"message": ""}, "external_resources[1].message: must not be empty", id="empty-message"
        ),
        pytest.param(
            {"html_message": ""},
            "external_resources[1].html_message: must not be empty",
            id="empty-html-message",
        ),
        pytest.param(
            {"author": {"external_id": "a", "name": ""}},
            "external_resources[1].author.name: must not be empty",
            id="empty-author-name",
        ),
        pytest.param(
            {"author": {"external_id": "a", "image_url": ""}},
            "external_resources[1].author.image_url: must not be empty",
            id="empty-author-image-url",
        ),
        pytest.param(
            {"author": {"external_id": "a", "locale": ""}},
            "external_resources[1].author.locale: must not be empty",
            id="empty-author-locale",
        ),
        pytest.param(
            {"display_info": [{"type": "t", "data": '{"k": "v"}'}]},
            "external_resources[1].display_info[0].data: must be an object",
            id="display-data-a-string",
        ),
        pytest.param(
            {"display_info": [{"type": "t", "data": ["k"]}]},
            "external_resources[1].display_info[0].data: must be an object",
            id="display-data-an-array",
        ),
        pytest.param(
            {"display_info": [{"type": "t", "data": _BIG_DATA}]},
            "external_resources[1].display_info[0].data: JSON text of length 65536 exceeds the"
            " limit of 65535 characters",
            id="display-data-too-long",
        ),
        pytest.param(
            {"display_info": [{"type": "", "data": {}}]},
            "external_resources[1].display_info[0].type: must not be empty",
            id="empty-display-type",
        ),
        pytest.param(
            {"display_info": [_INFO] * 17},
            "external_resources[1].display_info: 17 items exceed the limit of 16",
            id="too-many-display-infos",
        ),
        pytest.param(
            {"fields": [_FIELD] * 65},
            "external_resources[1].fields: 65 items exceed the limit of 64",
            id="too-many-fields",
        ),
        pytest.param(
            {"author": {"external_id": "a", "fields": [_FIELD] * 65}},
            "external_resources[1].author.fields: 65 items exceed the limit of 64",
            id="too-many-author-fields",
        ),
    ],
)
async def test_resource_breaking_a_schema_limit_rejects_the_whole_request(
    emulator: ZendeskEmulator,
    session: aiohttp.ClientSession,
    extra: dict[str, object],
    description: str,
) -> None:
    """A resource breaking a limit of Zendesk's schema is a 400 naming its path and the limit."""
    answer = await post(
        session, emulator, PUSH_PATH, push_body(raw_resource("ok"), raw_resource("bad", **extra))
    )
    assert answer.status == 400
    assert answer.json() == {"error": "InvalidValue", "description": description}
    assert emulator.tickets == []


async def test_resource_at_the_schema_limits_is_accepted(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """16 display_info items, 64 fields (resource and author) and 65,535 characters of display
    data are accepted."""
    at_limits = raw_resource(
        "m1",
        author={"external_id": "a", "fields": [_FIELD] * 64},
        display_info=[{"type": "t", "data": {"k": "d" * (65_535 - 8)}}] + [_INFO] * 15,
        fields=[_FIELD] * 64,
    )
    answer = await post(session, emulator, PUSH_PATH, push_body(at_limits))
    assert answer.codes() == ["success"]


@pytest.mark.parametrize(
    ("path", "body", "description"),
    [
        pytest.param(
            PUSH_PATH,
            push_body(raw_resource("m1"), request_id="r" * 65),
            "request_id: length 65 exceeds the limit of 64 characters",
            id="push-long",
        ),
        pytest.param(
            PUSH_PATH,
            push_body(raw_resource("m1"), request_id=""),
            "request_id: must not be empty",
            id="push-empty",
        ),
        pytest.param(
            REPORT_ERROR_PATH,
            {
                "instance_push_id": DEFAULT_INSTANCE_PUSH_ID,
                "external_id": "x",
                "request_id": "r" * 65,
            },
            "request_id: length 65 exceeds the limit of 64 characters",
            id="report-error-long",
        ),
        pytest.param(
            VALIDATE_TOKEN_PATH,
            {"instance_push_id": DEFAULT_INSTANCE_PUSH_ID, "request_id": "r" * 65},
            "request_id: length 65 exceeds the limit of 64 characters",
            id="validate-token-long",
        ),
    ],
)
async def test_request_id_outside_1_to_64_characters_is_400(
    emulator: ZendeskEmulator,
    session: aiohttp.ClientSession,
    path: str,
    body: dict[str, object],
    description: str,
) -> None:
    """A request_id that is empty or longer than 64 characters is a 400 naming it."""
    answer = await post(session, emulator, path, body)
    assert answer.status == 400
    assert answer.json() == {"error": "InvalidValue", "description": description}
    assert emulator.tickets == []
    assert emulator.reported_errors == []


async def test_request_id_of_64_characters_is_accepted(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """A request_id of exactly 64 characters is accepted."""
    answer = await post(
        session, emulator, PUSH_PATH, push_body(raw_resource("m1"), request_id="r" * 64)
    )
    assert answer.codes() == ["success"]


async def test_instance_push_id_over_255_characters_is_400(
    session: aiohttp.ClientSession,
) -> None:
    """An instance_push_id longer than 255 characters is a 400, even for a known account."""
    long_ipid = "i" * 256
    async with ZendeskEmulator(accounts={long_ipid: DEFAULT_TOKEN}) as emu:
        body = {"instance_push_id": long_ipid, "external_resources": [raw_resource("m1")]}
        answer = await post(session, emu, PUSH_PATH, body)
        assert answer.status == 400
        assert answer.json() == {
            "error": "InvalidValue",
            "description": "instance_push_id: length 256 exceeds the limit of 255 characters",
        }


@pytest.mark.parametrize("max_resources", [100, 1000])
async def test_more_than_256_resources_is_400_whatever_the_emulators_limit(
    session: aiohttp.ClientSession, max_resources: int
) -> None:
    """257 resources break the schema's 256: a 400, below or above the emulator's own limit."""
    async with ZendeskEmulator(max_resources_per_request=max_resources) as emu:
        body = push_body(*(raw_resource(f"m{i}") for i in range(257)))
        answer = await post(session, emu, PUSH_PATH, body)
        assert answer.status == 400
        assert answer.json() == {
            "error": "InvalidValue",
            "description": "external_resources: 257 items exceed the limit of 256",
        }
        assert emu.tickets == []


async def test_256_resources_are_accepted_when_the_emulator_allows_them(
    session: aiohttp.ClientSession,
) -> None:
    """256 resources, the schema's limit, are processed by an emulator configured for them."""
    async with ZendeskEmulator(max_resources_per_request=256) as emu:
        body = push_body(*(raw_resource(f"m{i}") for i in range(256)))
        answer = await post(session, emu, PUSH_PATH, body)
        assert answer.codes() == ["success"] * 256


async def test_unknown_top_level_field_is_rejected(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """A misspelt top-level key is a 400 rather than silently ignored."""
    answer = await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1"), requestId="r1"))
    assert answer.status == 400
    assert answer.json()["description"] == "requestId: unknown field"


async def test_body_that_is_not_a_json_object_is_400(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """A body that is not a JSON object is 400 InvalidJSON."""
    async with session.post(
        emulator.base_url + PUSH_PATH, data=b"[1, 2", headers=bearer()
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "InvalidJSON"


async def test_too_many_resources_is_413(session: aiohttp.ClientSession) -> None:
    """More resources than the per-request limit is 413 TooManyResources."""
    async with ZendeskEmulator(max_resources_per_request=2) as emu:
        answer = await post(
            session, emu, PUSH_PATH, push_body(*(raw_resource(f"m{i}") for i in range(3)))
        )
        assert answer.status == 413
        assert answer.json() == {
            "error": "TooManyResources",
            "description": "3 external_resources; the limit is 2 per request",
        }


async def test_oversize_body_is_413(session: aiohttp.ClientSession) -> None:
    """A body over max_body_bytes is 413 RequestTooLarge, naming its size and the limit."""
    async with (
        ZendeskEmulator(max_body_bytes=1000) as emu,
        session.post(emu.base_url + PUSH_PATH, data=b" " * 1500, headers=bearer()) as response,
    ):
        assert response.status == 413
        assert await response.json() == {
            "error": "RequestTooLarge",
            "description": "request body is 1500 bytes; the limit is 1000 bytes",
        }


# -- scripted faults ------------------------------------------------------------------------


async def test_server_error_fault_processes_nothing(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """SERVER_ERROR answers 503 with a JSON error and imports nothing."""
    emulator.script(Fault.SERVER_ERROR)
    answer = await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))
    assert answer.status == 503
    assert "error" in answer.json()
    assert emulator.import_count("m1") == 0


async def test_lost_answer_fault_commits_then_answers_500(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """LOST_ANSWER imports the resources but answers 500, so a retry sees already_imported."""
    emulator.script(Fault.LOST_ANSWER)
    lost = await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))
    retry = await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))
    assert lost.status == 500
    assert retry.codes() == ["already_imported"]
    assert emulator.import_count("m1") == 1


async def test_drop_fault_closes_the_connection(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """DROP closes the connection without an answer and imports nothing."""
    emulator.script(Fault.DROP)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))
    assert emulator.import_count("m1") == 0
    assert emulator.requests[-1].status == 0


async def test_rate_limited_fault_sends_retry_after(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """RATE_LIMITED answers 429 with Retry-After rounded up to whole seconds, processing nothing."""
    emulator.faults.retry_after = 1.2
    emulator.script(Fault.RATE_LIMITED)
    answer = await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))
    assert answer.status == 429
    assert answer.headers["Retry-After"] == "2"
    assert emulator.rate_limited_count == 1
    assert emulator.tickets == []


async def test_garbage_fault_commits_and_answers_html(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """GARBAGE imports the resources and answers 200 with a body that is not JSON."""
    emulator.script(Fault.GARBAGE)
    answer = await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert emulator.import_count("m1") == 1


async def test_short_results_fault_drops_the_last_result(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """SHORT_RESULTS imports everything but answers one result fewer than resources."""
    emulator.script(Fault.SHORT_RESULTS)
    answer = await post(
        session, emulator, PUSH_PATH, push_body(raw_resource("m1"), raw_resource("m2"))
    )
    assert [r["external_resource_id"] for r in answer.json()["results"]] == ["m1"]
    assert emulator.import_count("m2") == 1


async def test_wrong_ids_fault_mismatches_the_results(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """WRONG_IDS imports everything but answers results whose ids do not match the request."""
    emulator.script(Fault.WRONG_IDS, Fault.WRONG_IDS)
    two = await post(
        session, emulator, PUSH_PATH, push_body(raw_resource("m1"), raw_resource("m2"))
    )
    one = await post(session, emulator, PUSH_PATH, push_body(raw_resource("m3")))
    assert [r["external_resource_id"] for r in two.json()["results"]] == ["m2", "m1"]
    assert [r["external_resource_id"] for r in one.json()["results"]] != ["m3"]
    assert len(emulator.tickets) == 3


async def test_scripted_faults_are_used_once_each_in_order(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """Scripted faults hit the next push requests one each, in order, then none."""
    emulator.script(Fault.SERVER_ERROR, Fault.LOST_ANSWER)
    statuses = [
        (await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))).status
        for _ in "abc"
    ]
    assert statuses == [503, 500, 200]


async def test_faults_do_not_touch_rejected_requests(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """A request rejected by authentication does not consume a scripted fault."""
    emulator.script(Fault.SERVER_ERROR)
    rejected = await post(
        session, emulator, PUSH_PATH, push_body(raw_resource("m1")), headers=bearer("x")
    )
    faulted = await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))
    assert (rejected.status, faulted.status) == (401, 503)


async def test_random_faults_repeat_for_the_same_seed(session: aiohttp.ClientSession) -> None:
    """Two emulators with the same seed and rates answer the same sequence of statuses."""
    runs = []
    for _ in range(2):
        faults = Faults(seed=7, server_error_rate=0.3, lost_answer_rate=0.3)
        async with ZendeskEmulator(faults=faults) as emu:
            body = push_body(raw_resource("m1"))
            runs.append([(await post(session, emu, PUSH_PATH, body)).status for _ in range(12)])
    assert runs[0] == runs[1]
    assert {503, 500} <= set(runs[0])


async def test_latency_delays_every_answer(session: aiohttp.ClientSession) -> None:
    """Faults.latency is added before answers, including rejections."""
    async with ZendeskEmulator(faults=Faults(latency=0.1)) as emu:
        started = time.monotonic()
        answer = await post(session, emu, VALIDATE_TOKEN_PATH, {"instance_push_id": "x"})
        assert answer.status == 401
        assert time.monotonic() - started >= 0.1


def test_faults_reject_invalid_settings() -> None:
    """Fault settings out of range fail at once, on construction and on assignment."""
    with pytest.raises(ValueError, match="latency"):
        Faults(latency=-1.0)
    faults = Faults()
    with pytest.raises(ValueError, match="drop_rate"):
        faults.drop_rate = 1.5


# -- rate limit -----------------------------------------------------------------------------


async def test_no_rate_headers_without_a_rate_limit(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """Without a rate limit the answers carry no rate-limit headers."""
    answer = await post(
        session, emulator, VALIDATE_TOKEN_PATH, {"instance_push_id": DEFAULT_INSTANCE_PUSH_ID}
    )
    assert "X-Rate-Limit" not in answer.headers


async def test_rate_limit_headers_count_down(session: aiohttp.ClientSession) -> None:
    """Every answer carries the limit and the requests remaining in the window."""
    async with ZendeskEmulator(faults=Faults(rate_limit=3, rate_window=5.0)) as emu:
        body = {"instance_push_id": DEFAULT_INSTANCE_PUSH_ID}
        first = await post(session, emu, VALIDATE_TOKEN_PATH, body)
        second = await post(session, emu, VALIDATE_TOKEN_PATH, body, headers=bearer("wrong"))
        assert first.headers["X-Rate-Limit"] == "3"
        assert first.headers["X-Rate-Limit-Remaining"] == "2"
        assert second.headers["X-Rate-Limit-Remaining"] == "1"


async def test_over_the_rate_limit_is_429_until_the_window_ends(
    session: aiohttp.ClientSession,
) -> None:
    """A request over the limit is 429 with Retry-After and unprocessed; the next window admits."""
    # A window of 1 s: the refused request must come within it of the first, however slow
    # the machine (with 0.3 s, a stall between the two would have let it in).
    async with ZendeskEmulator(faults=Faults(rate_limit=1, rate_window=1.0)) as emu:
        first = await post(session, emu, PUSH_PATH, push_body(raw_resource("m1")))
        refused = await post(session, emu, PUSH_PATH, push_body(raw_resource("m2")))
        await asyncio.sleep(1.05)
        later = await post(session, emu, PUSH_PATH, push_body(raw_resource("m2")))
        assert (first.status, refused.status, later.status) == (200, 429, 200)
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["X-Rate-Limit-Remaining"] == "0"
        assert emu.rate_limited_count == 1
        assert emu.import_count("m2") == 1


# -- the race model -------------------------------------------------------------------------


async def test_concurrent_requests_for_a_new_thread_open_two_tickets(
    session: aiohttp.ClientSession,
) -> None:
    """Two requests in flight together for one new thread_id each open a ticket, as Zendesk does."""
    # Each is decided on arrival and committed after the latency: the second must arrive
    # within it of the first, which 0.5 s leaves a slow machine plenty of room for.
    async with ZendeskEmulator(faults=Faults(latency=0.5)) as emu:
        await asyncio.gather(
            post(session, emu, PUSH_PATH, push_body(raw_resource("m1", thread_id="t"))),
            post(session, emu, PUSH_PATH, push_body(raw_resource("m2", thread_id="t"))),
        )
        assert [t.thread_id for t in emu.tickets] == ["t", "t"]


async def test_concurrent_duplicates_are_both_imported(session: aiohttp.ClientSession) -> None:
    """One external_id in two concurrent requests is imported twice, which import_count reveals."""
    async with ZendeskEmulator(faults=Faults(latency=0.5)) as emu:  # as above
        answers = await asyncio.gather(
            post(session, emu, PUSH_PATH, push_body(raw_resource("m1"))),
            post(session, emu, PUSH_PATH, push_body(raw_resource("m1"))),
        )
        assert [a.codes() for a in answers] == [["success"], ["success"]]
        assert emu.import_count("m1") == 2


async def test_parent_in_an_unanswered_request_cannot_be_located(
    session: aiohttp.ClientSession,
) -> None:
    """A child sent while its parent's request is still unanswered cannot find the parent."""
    async with ZendeskEmulator(faults=Faults(latency=1.0)) as emu:
        parent = asyncio.create_task(post(session, emu, PUSH_PATH, push_body(raw_resource("m1"))))
        # Sent once the parent's request arrived; its answer (and commit) is a second away.
        while not emu.requests:  # noqa: ASYNC110 - the emulator's log has no event to wait on
            await asyncio.sleep(0.005)
        child = await post(session, emu, PUSH_PATH, push_body(raw_resource("m2", parent_id="m1")))
        assert (await parent).codes() == ["success"]
        assert child.codes() == ["could_not_locate_parent_external_resource"]


# -- inspection and lifecycle ---------------------------------------------------------------


async def test_reset_forgets_everything(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """reset forgets tickets, imports, requests, reported errors and scripted faults."""
    await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))
    await post(
        session,
        emulator,
        REPORT_ERROR_PATH,
        {"instance_push_id": DEFAULT_INSTANCE_PUSH_ID, "external_id": "x"},
    )
    emulator.script(Fault.SERVER_ERROR)
    emulator.reset()
    assert (emulator.tickets, emulator.requests, emulator.reported_errors) == ([], [], [])
    assert emulator.import_count("m1") == 0
    assert (await post(session, emulator, PUSH_PATH, push_body(raw_resource("m1")))).codes() == [
        "success"
    ]


async def test_requests_are_recorded_without_credentials(
    emulator: ZendeskEmulator, session: aiohttp.ClientSession
) -> None:
    """Requests are recorded in arrival order with their ids and status, never the token."""
    await post(
        session,
        emulator,
        PUSH_PATH,
        push_body(raw_resource("m1"), raw_resource("m2"), request_id="r1"),
    )
    await post(
        session,
        emulator,
        VALIDATE_TOKEN_PATH,
        {"instance_push_id": "x"},
        headers=bearer("other-secret"),
    )
    first, second = emulator.requests
    assert (first.path, first.request_id, first.external_ids, first.status) == (
        PUSH_PATH,
        "r1",
        ("m1", "m2"),
        200,
    )
    assert (second.instance_push_id, second.status) == ("x", 401)
    assert first.at <= second.at
    assert first.user_agent is not None
    assert DEFAULT_TOKEN not in repr(emulator.requests)
    assert "other-secret" not in repr(emulator.requests)


async def test_bodies_are_recorded_only_when_asked(session: aiohttp.ClientSession) -> None:
    """With record_bodies each request keeps the JSON object it carried; by default none do."""
    body = push_body(raw_resource("m1", display_info=[{"type": "t", "data": {"k": [1]}}]))
    async with ZendeskEmulator(record_bodies=True) as recording:
        await post(session, recording, PUSH_PATH, body)
        [request] = recording.requests
        assert request.body == body
    async with ZendeskEmulator() as plain:
        await post(session, plain, PUSH_PATH, body)
        [request] = plain.requests
        assert request.body is None


async def test_emulator_restarts_on_the_same_port(session: aiohttp.ClientSession) -> None:
    """After close the emulator can start again at the same base_url with its tickets kept."""
    emu = ZendeskEmulator()
    async with emu:
        await post(session, emu, PUSH_PATH, push_body(raw_resource("m1")))
        url = emu.base_url
    async with emu:
        assert emu.base_url == url
        answer = await post(session, emu, PUSH_PATH, push_body(raw_resource("m1")))
        assert answer.codes() == ["already_imported"]


async def test_a_connection_accepted_as_the_emulator_closes_leaves_no_socket_open() -> None:
    """A client connecting just as the emulator closes leaves no socket behind. asyncio
    accepts a connection in one loop turn and makes its transport in a later one, which fails
    once the server is closed (CPython gh-109564): the socket was then left to the garbage
    collector, whose ResourceWarning failed whichever test was running (here, as in CI,
    warnings are errors). Each number of turns between connecting and closing is tried."""
    for turns in range(8):
        emu = ZendeskEmulator()
        await emu.start()
        host, port = emu.base_url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))):
            for _ in range(turns):
                await asyncio.sleep(0)
            await emu.close()
        gc.collect()  # a socket left open warns now, in this test


def test_thread_mode_serves_from_a_background_thread() -> None:
    """In thread mode the emulator serves from its own loop while the caller runs another."""

    async def push(emu: ZendeskEmulator) -> int:
        async with aiohttp.ClientSession() as session:
            return (await post(session, emu, PUSH_PATH, push_body(raw_resource("m1")))).status

    with ZendeskEmulator() as emu:
        assert asyncio.run(push(emu)) == 200
        assert emu.ticket_for("m1") is not None


def test_zendesk_emulator_fixture_is_running_and_reset(zendesk_emulator: ZendeskEmulator) -> None:
    """The plugin's fixture yields a running emulator with default faults and no state."""

    async def validate() -> int:
        async with aiohttp.ClientSession() as session:
            body = {"instance_push_id": DEFAULT_INSTANCE_PUSH_ID}
            return (await post(session, zendesk_emulator, VALIDATE_TOKEN_PATH, body)).status

    assert zendesk_emulator.requests == []
    assert zendesk_emulator.faults == Faults()
    assert asyncio.run(validate()) == 200


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
async def test_standalone_prints_its_url_and_stops_on_sigterm() -> None:
    """`python -m anychannel_async.testing` prints its base URL first and exits 0 on SIGTERM."""
    pythonpath = os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": pythonpath}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "anychannel_async.testing",
        "--port",
        "0",
        "--account",
        "ipid=tok",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url + VALIDATE_TOKEN_PATH, json={"instance_push_id": "ipid"}, headers=bearer("tok")
            ) as response,
        ):
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
