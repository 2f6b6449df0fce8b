"""What the client sends matches Zendesk's own JSON schemas for the Channel framework.

The schemas below are written from NOTES.md ("Limits in Zendesk's own JSON schemas") and the
seed's field tables, not from the library's code. Bodies are taken as the emulator received them
over TCP (`RecordedRequest.body`), so a body that only looks right inside the client fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # typed only by the types-jsonschema stubs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anychannel_async import (
    AnyChannelClient,
    Author,
    DisplayInfo,
    ExternalResource,
    FieldValue,
    PushPipeline,
    StatusCode,
    ValidationError,
)
from anychannel_async._serde import encode_push_body, encode_resource
from anychannel_async.testing import ZendeskEmulator

from .conftest import (
    FAST_RETRY,
    IPID,
    PUSH_PATH,
    REPORT_ERROR_PATH,
    TOKEN,
    VALIDATE_TOKEN_PATH,
)
from .strategies import resources

# -- the schemas -------------------------------------------------------------------------------

# "external-id": ASCII, as the seed says of external_id; NOTES gives the schema's format name.
_EXTERNAL_ID: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "format": "external-id",
}
_FIELDS: dict[str, Any] = {
    "type": "array",
    "maxItems": 64,
    "items": {
        "type": "object",
        "required": ["id", "value"],
        "additionalProperties": False,
        "properties": {
            "id": {
                "oneOf": [{"type": "integer"}, {"type": "string", "minLength": 1, "maxLength": 255}]
            },
            "value": {},
        },
    },
}
_AUTHOR: dict[str, Any] = {
    "type": "object",
    "required": ["external_id"],
    "additionalProperties": False,
    "properties": {
        "external_id": _EXTERNAL_ID,
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        # The schema allows 511, the seed 255: keep 255.
        "image_url": {"type": "string", "minLength": 1, "maxLength": 255},
        "locale": {"type": "string", "minLength": 1, "maxLength": 255},
        "fields": _FIELDS,
    },
}
_DISPLAY_INFO: dict[str, Any] = {
    "type": "array",
    "maxItems": 16,
    "items": {
        "type": "object",
        "required": ["type", "data"],
        "additionalProperties": False,
        # data's 65,535 bounds its JSON text, which a schema cannot say: see _check_display_data.
        "properties": {
            "type": {"type": "string", "minLength": 1, "maxLength": 255},
            "data": {"type": "object"},
        },
    },
}
EXTERNAL_RESOURCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["external_id", "message", "created_at", "author"],
    "additionalProperties": False,
    "properties": {
        "external_id": _EXTERNAL_ID,
        "internal_note": {"type": "boolean"},
        "message": {"type": "string", "minLength": 1, "maxLength": 65_535},
        "html_message": {"type": "string", "minLength": 1, "maxLength": 65_535},
        # The schema bounds parent_id at 255, the seed at 511: keep 511.
        "parent_id": {"type": "string", "maxLength": 511, "format": "external-id"},
        "thread_id": {"type": "string", "maxLength": 255, "format": "external-id"},
        "created_at": {"type": "string", "format": "date-time"},
        "author": _AUTHOR,
        "display_info": _DISPLAY_INFO,
        "allow_channelback": {"type": "boolean"},
        "fields": _FIELDS,
        # The schema allows 64 file_urls, the docs 10: keep 10.
        "file_urls": {
            "type": "array",
            "maxItems": 10,
            "items": {"type": "string", "maxLength": 511, "pattern": "^https://"},
        },
    },
    # "Responses may include parent_id or thread_id, but not both."
    "not": {"required": ["parent_id", "thread_id"]},
}
PUSH_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["instance_push_id", "external_resources"],
    "additionalProperties": False,
    "properties": {
        "instance_push_id": {"type": "string", "minLength": 1, "maxLength": 255},
        "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "external_resources": {"type": "array", "maxItems": 256, "items": EXTERNAL_RESOURCE_SCHEMA},
    },
}
# The seed's report_error and validate_token tables; request_id as in the push.
REPORT_ERROR_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["instance_push_id", "external_id"],
    "additionalProperties": False,
    "properties": {
        "instance_push_id": {"type": "string", "minLength": 1, "maxLength": 255},
        "external_id": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}
VALIDATE_TOKEN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["instance_push_id"],
    "additionalProperties": False,
    "properties": {
        "instance_push_id": {"type": "string", "minLength": 1, "maxLength": 255},
        "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}
SCHEMAS = {
    PUSH_PATH: PUSH_SCHEMA,
    REPORT_ERROR_PATH: REPORT_ERROR_SCHEMA,
    VALIDATE_TOKEN_PATH: VALIDATE_TOKEN_SCHEMA,
}

# jsonschema checks formats only through a checker, and its own date-time check needs an extra
# package: these two are written out here.
_FORMATS = jsonschema.FormatChecker(formats=())
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # "type" speaks for other types
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))  # a real date: no February 30
    return True


def _is_external_id(value: object) -> bool:
    return not isinstance(value, str) or value.isascii()


# Registered by call: jsonschema is untyped here, and mypy refuses an untyped decorator.
_FORMATS.checks("date-time", raises=ValueError)(_is_date_time)
_FORMATS.checks("external-id")(_is_external_id)


def schema_errors(path: str, body: Mapping[str, Any]) -> list[str]:
    """Every way body breaks the schema of the endpoint at path, as `where: what` lines."""
    validator = jsonschema.Draft202012Validator(SCHEMAS[path], format_checker=_FORMATS)
    errors = [f"{error.json_path}: {error.message[:200]}" for error in validator.iter_errors(body)]
    if path == PUSH_PATH:
        errors += _check_display_data(body)
    return errors


def _check_display_data(body: Mapping[str, Any]) -> list[str]:
    errors = []
    for r, resource in enumerate(body.get("external_resources", [])):
        for i, info in enumerate(resource.get("display_info", [])):
            text = json.dumps(info.get("data"), separators=(",", ":"), ensure_ascii=False)
            if len(text) > 65_535:
                errors.append(
                    f"$.external_resources[{r}].display_info[{i}].data: {len(text)} characters"
                )
    return errors


# -- fixtures and resources --------------------------------------------------------------------


@pytest.fixture
async def recording() -> AsyncIterator[ZendeskEmulator]:
    """An emulator over TCP that keeps every body it receives."""
    async with ZendeskEmulator(accounts={IPID: TOKEN}, record_bodies=True) as emu:
        yield emu


@pytest.fixture
async def wire_client(recording: ZendeskEmulator) -> AsyncIterator[AnyChannelClient]:
    async with AnyChannelClient(
        token=TOKEN, base_url=recording.base_url, retry=FAST_RETRY, timeout=5.0
    ) as client:
        yield client


def _every_field(external_id: str, **overrides: Any) -> ExternalResource:
    """A resource with every field of the push set (parent_id or thread_id, never both)."""
    values: dict[str, Any] = {
        "external_id": external_id,
        "message": f"A useful comment, Grüße 👋 ({external_id})",
        "html_message": "A <b>very</b> useful comment",
        # Given with an offset: the body must still carry the Z form.
        "created_at": datetime(2015, 1, 13, 10, 59, 26, tzinfo=timezone(timedelta(hours=2))),
        "author": Author(
            external_id="author-456",
            name="Fred",
            image_url="https://example.com/fred.png",
            locale="de",
            fields=[FieldValue("notes", "VIP"), FieldValue(360_001, ["a", "b"])],
        ),
        "internal_note": False,
        "display_info": [
            DisplayInfo("9ef45ff7-4aaa-4a58-8e77-a7c74dfa51c4", {"whatever": "I want"}),
            DisplayInfo("urn:example:card", '{"nested": {"list": [1, 2.5, null, true]}}'),
        ],
        "allow_channelback": True,
        "fields": [FieldValue("subject", "Hello"), FieldValue(360_002, 42)],
        "file_urls": ["https://example.com/a.png", "https://example.com/b.pdf"],
    }
    values.update(overrides)
    return ExternalResource(**values)


def _bodies(emu: ZendeskEmulator, path: str) -> list[Mapping[str, Any]]:
    bodies = [request.body for request in emu.requests if request.path == path]
    assert bodies, f"the emulator received nothing on {path}"
    assert all(body is not None for body in bodies)
    return [body for body in bodies if body is not None]


# -- the schemas themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("path", list(SCHEMAS))
def test_each_schema_is_a_valid_json_schema(path: str) -> None:
    """Each schema written here is itself a valid draft 2020-12 JSON schema."""
    jsonschema.Draft202012Validator.check_schema(SCHEMAS[path])


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"display_info": [{"type": "t", "data": '{"k":1}'}]}, "display_info[0].data"),
        ({"message": ""}, "message"),
        ({"created_at": "2015-01-13 08:59:26"}, "created_at"),
        ({"display_info": [{"type": "t", "data": {}}] * 17}, "display_info"),
        ({"display_info": [{"type": "t", "data": {"k": "d" * 65_535}}]}, "display_info[0].data"),
        ({"thread_id": "t", "parent_id": "p"}, "$.external_resources[0]"),
    ],
    ids=[
        "data-as-string",
        "empty-message",
        "date-not-rfc3339",
        "17-infos",
        "data-too-long",
        "both",
    ],
)
def test_schema_refuses_what_zendesk_refuses(change: dict[str, Any], where: str) -> None:
    """The schema has teeth: the old string form of display_info data, and other breaches, fail."""
    resource = {
        "external_id": "e",
        "message": "m",
        "created_at": "2015-01-13T08:59:26Z",
        "author": {"external_id": "a"},
        **change,
    }
    errors = schema_errors(PUSH_PATH, {"instance_push_id": IPID, "external_resources": [resource]})
    assert any(where in error for error in errors), errors


# -- bodies the client sends, as the emulator received them ------------------------------------


async def test_push_bodies_with_every_field_match_the_schema(
    recording: ZendeskEmulator, wire_client: AnyChannelClient
) -> None:
    """Push bodies carrying every field, request_id included, match the push schema."""
    batch = [
        _every_field("opener", thread_id="thread-1"),
        _every_field("reply", parent_id="opener", internal_note=True),
        _every_field("other", allow_channelback=False),
    ]
    results = await wire_client.push(IPID, batch, request_id="r" * 64)
    assert [result.code for result in results] == [StatusCode.SUCCESS] * 3
    [body] = _bodies(recording, PUSH_PATH)
    assert schema_errors(PUSH_PATH, body) == []
    assert body["request_id"] == "r" * 64
    sent = body["external_resources"][0]
    assert sent["created_at"] == "2015-01-13T08:59:26Z"
    assert sent["display_info"][1]["data"] == {"nested": {"list": [1, 2.5, None, True]}}
    assert set(sent) == set(EXTERNAL_RESOURCE_SCHEMA["properties"]) - {"parent_id"}
    assert set(sent["author"]) == set(_AUTHOR["properties"])


async def test_pipeline_push_bodies_match_the_schema(
    recording: ZendeskEmulator, wire_client: AnyChannelClient
) -> None:
    """The bodies a PushPipeline sends, batched, match the push schema."""
    async with PushPipeline(wire_client, IPID, max_batch_size=2) as pipe:
        futures = [await pipe.submit(_every_field(f"p-{n}", thread_id="t")) for n in range(5)]
        results = [await future for future in futures]
    assert {result.code for result in results} == {StatusCode.SUCCESS}
    bodies = _bodies(recording, PUSH_PATH)
    assert len(bodies) >= 3
    assert [schema_errors(PUSH_PATH, body) for body in bodies] == [[]] * len(bodies)


async def test_report_error_and_validate_token_bodies_match_their_schemas(
    recording: ZendeskEmulator, wire_client: AnyChannelClient
) -> None:
    """report_channelback_error (every field) and validate_token bodies match their schemas."""
    await wire_client.report_channelback_error(
        IPID, "message-1", "HTML content is not supported", request_id="r" * 64
    )
    await wire_client.validate_token(IPID)
    for path in (REPORT_ERROR_PATH, VALIDATE_TOKEN_PATH):
        [body] = _bodies(recording, path)
        assert schema_errors(path, body) == []


# -- request_id, refused before anything is sent ------------------------------------------------


@pytest.mark.parametrize("request_id", ["", "r" * 65], ids=["empty", "65-characters"])
async def test_push_refuses_a_request_id_outside_1_to_64_characters(
    recording: ZendeskEmulator, wire_client: AnyChannelClient, request_id: str
) -> None:
    """push with an empty or 65-character request_id raises ValidationError and sends nothing."""
    with pytest.raises(ValidationError, match="64") as exc:
        await wire_client.push(IPID, [_every_field("e")], request_id=request_id)
    assert exc.value.field == "request_id"
    assert recording.requests == []


@pytest.mark.parametrize("request_id", ["", "r" * 65], ids=["empty", "65-characters"])
async def test_report_error_refuses_a_request_id_outside_1_to_64_characters(
    recording: ZendeskEmulator, wire_client: AnyChannelClient, request_id: str
) -> None:
    """report_channelback_error with a bad request_id raises ValidationError, sends nothing."""
    with pytest.raises(ValidationError, match="64") as exc:
        await wire_client.report_channelback_error(IPID, "m-1", request_id=request_id)
    assert exc.value.field == "request_id"
    assert recording.requests == []


# -- any valid resource ------------------------------------------------------------------------

_request_ids = st.none() | st.text(min_size=1, max_size=64)


@settings(database=None, deadline=None)
@given(st.lists(resources(), min_size=1, max_size=4), _request_ids)
def test_any_encoded_push_body_matches_the_schema(
    batch: list[ExternalResource], request_id: str | None
) -> None:
    """Any valid resources, encoded into a push body, match the push schema."""
    body = encode_push_body(IPID, [encode_resource(r) for r in batch], request_id)
    assert schema_errors(PUSH_PATH, json.loads(body)) == []


def test_created_at_in_the_body_is_utc_with_z_for_any_offset() -> None:
    """created_at is sent as YYYY-MM-DDTHH:MM:SSZ, the form the seed's example shows."""
    resource = _every_field("e", created_at="2015-01-13T10:59:26.123+02:00")
    sent = json.loads(encode_resource(resource).body)["created_at"]
    assert sent == "2015-01-13T08:59:26Z"
    assert datetime.fromisoformat(sent) == datetime(2015, 1, 13, 8, 59, 26, tzinfo=UTC)
