"""The JSON of the wire: resource encoding, push bodies, push answers, and resources from JSON.

The expected shapes come from the spec's curl example and field tables
(/work/shared/spec/channel-framework-api.txt).
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anychannel_async import (
    AnyChannelError,
    Author,
    DisplayInfo,
    ExternalResource,
    FieldValue,
    ProtocolError,
    PushResult,
    StatusCode,
    ValidationError,
    _serde,
    resource_from_json,
)
from anychannel_async._serde import (
    EncodedResource,
    converter,
    decode_push_results,
    encode_body,
    encode_push_body,
    encode_resource,
    push_body_overhead,
)

from .strategies import resources

IPID = "d448ef2f-8f51-4fbd-a5d1-9a53d2c8a3c1"
WHEN = datetime(2015, 1, 13, 8, 59, 26, tzinfo=UTC)
DISPLAY_TYPE = "9ef45ff7-4aaa-4a58-8e77-a7c74dfa51c4"

# The external resource of the spec's curl example, as this library must send it: display_info
# data as a JSON object (as the curl example sends it and Zendesk's schema requires, though the
# seed's display_info table types it "string"), date in UTC with Z.
CURL_EXAMPLE_WIRE: dict[str, Any] = {
    "external_id": "234",
    "message": "A useful comment",
    "html_message": "A <b>very</b> useful comment",
    "parent_id": "123",
    "created_at": "2015-01-13T08:59:26Z",
    "author": {"external_id": "456", "name": "Fred", "locale": "de"},
    "display_info": [{"type": DISPLAY_TYPE, "data": {"whatever": "I want"}}],
    "allow_channelback": True,
}

# The same resource as written in the curl example itself: the same as what is sent.
CURL_EXAMPLE_INPUT: dict[str, Any] = CURL_EXAMPLE_WIRE


def _make(**values: Any) -> ExternalResource:
    # Any-typed on purpose: the attrs plugin types the tuple-converted collection fields as
    # Iterable[_T_co], so passing lists directly fails mypy --strict (reported to the library).
    return ExternalResource(**values)


def _make_author(**values: Any) -> Author:
    return Author(**values)


def _curl_example(created_at: datetime | str = WHEN) -> ExternalResource:
    return _make(
        external_id="234",
        message="A useful comment",
        html_message="A <b>very</b> useful comment",
        parent_id="123",
        created_at=created_at,
        author=Author(external_id="456", name="Fred", locale="de"),
        display_info=[DisplayInfo(type=DISPLAY_TYPE, data={"whatever": "I want"})],
        allow_channelback=True,
    )


def _resource(**overrides: Any) -> ExternalResource:
    values: dict[str, Any] = {
        "external_id": "234",
        "message": "A useful comment",
        "created_at": WHEN,
        "author": Author(external_id="456"),
    }
    values.update(overrides)
    return ExternalResource(**values)


def _wire(resource: ExternalResource) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(encode_resource(resource).body)
    return decoded


# --- encode_resource --------------------------------------------------------------------------


@pytest.mark.parametrize("created_at", [WHEN, "2015-01-13T08:59:26Z"], ids=["datetime", "string"])
def test_curl_example_encodes_to_the_api_json_shape(created_at: datetime | str) -> None:
    """The spec's curl example resource encodes to exactly the API's field names and values."""
    assert _wire(_curl_example(created_at)) == CURL_EXAMPLE_WIRE


def test_encoded_resource_keeps_the_resource() -> None:
    """An EncodedResource holds the resource it encodes and exposes its external_id."""
    resource = _curl_example()
    encoded = encode_resource(resource)
    assert encoded.resource is resource
    assert encoded.external_id == "234"


def test_minimal_resource_omits_every_unset_optional_field() -> None:
    """Optional fields left at None or empty are omitted, not sent as null or []."""
    assert _wire(_resource()) == {
        "external_id": "234",
        "message": "A useful comment",
        "created_at": "2015-01-13T08:59:26Z",
        "author": {"external_id": "456"},
    }


def test_offset_datetime_is_sent_in_utc_with_z() -> None:
    """A created_at with a +02:00 offset is sent as the same instant in UTC, suffixed Z."""
    plus_two = datetime(2015, 1, 13, 10, 59, 26, tzinfo=timezone(timedelta(hours=2)))
    assert _wire(_resource(created_at=plus_two))["created_at"] == "2015-01-13T08:59:26Z"


def test_microseconds_are_dropped_from_created_at() -> None:
    """A created_at with microseconds is sent to the whole second, as YYYY-MM-DDTHH:MM:SSZ."""
    precise = WHEN.replace(microsecond=999_999)
    assert _wire(_resource(created_at=precise))["created_at"] == "2015-01-13T08:59:26Z"


def test_created_at_year_is_sent_with_four_digits() -> None:
    """A year below 1000 is zero-padded to four digits, as ISO 8601 extended format requires."""
    early = datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert _wire(_resource(created_at=early))["created_at"] == "0999-01-02T03:04:05Z"


@pytest.mark.parametrize("value", [False, True])
def test_internal_note_is_sent_when_set_even_if_false(value: bool) -> None:
    """internal_note=False is sent: it is not the default None, and means something to Zendesk."""
    assert _wire(_resource(internal_note=value))["internal_note"] is value


def test_allow_channelback_false_is_sent() -> None:
    """allow_channelback=False is sent, since it changes the agent UI."""
    assert _wire(_resource(allow_channelback=False))["allow_channelback"] is False


def test_fields_and_file_urls_are_sent_with_api_names() -> None:
    """Ticket fields, author fields and file_urls are sent as arrays with the API's field names."""
    resource = _resource(
        author=_make_author(external_id="456", fields=[FieldValue(id="notes", value="VIP")]),
        fields=[FieldValue(id="subject", value="Hi"), FieldValue(id=360001, value=["a", "b"])],
        file_urls=["https://example.com/a.png"],
    )
    wire = _wire(resource)
    assert wire["author"] == {"external_id": "456", "fields": [{"id": "notes", "value": "VIP"}]}
    assert wire["fields"] == [{"id": "subject", "value": "Hi"}, {"id": 360001, "value": ["a", "b"]}]
    assert wire["file_urls"] == ["https://example.com/a.png"]


_DISPLAY_DATA = {"a": [1, 2.5, None, True], "b": {"c": "Grüße"}, "n": 2**63}


@pytest.mark.parametrize(
    "data", [_DISPLAY_DATA, json.dumps(_DISPLAY_DATA, indent=2)], ids=["mapping", "json_text"]
)
def test_display_info_data_is_sent_as_a_json_object(data: dict[str, Any] | str) -> None:
    """display_info data goes out as a JSON object, nested values intact, not as a JSON string."""
    wire = _wire(_resource(display_info=[DisplayInfo(type="t", data=data)]))
    assert wire["display_info"] == [{"type": "t", "data": _DISPLAY_DATA}]


def test_display_info_data_is_embedded_compact() -> None:
    """The body carries display_info data as its compact JSON text, the size the limit counts."""
    body = encode_resource(_resource(display_info=[DisplayInfo("t", '{ "k" : [1, 2] }')])).body
    assert b'"display_info":[{"type":"t","data":{"k":[1,2]}}]' in body


def test_unstructured_display_info_data_is_a_plain_object() -> None:
    """The converter's own unstructure (read by the CLI's failure file) gives data as a dict."""
    plain = converter.unstructure(_resource(display_info=[DisplayInfo("t", {"k": [1]})]))
    assert plain["display_info"] == [{"type": "t", "data": {"k": [1]}}]
    json.dumps(plain)  # plain JSON data, nothing only orjson could write


def test_non_ascii_text_is_sent_as_utf8_not_escaped() -> None:
    """Non-ASCII text is sent as UTF-8 bytes, not \\u escapes, so sizes stay near the text's."""
    body = encode_resource(_resource(message="Grüße 👋")).body
    assert "Grüße 👋".encode() in body
    assert json.loads(body)["message"] == "Grüße 👋"


# --- created_at written by orjson --------------------------------------------------------------
# encode_body hands a UTC created_at to orjson to format (in C) when the resource has no fields;
# the bytes must be those of the converter's own text, which every other resource still gets.


def _generic_body(resource: ExternalResource) -> bytes:
    """The body as the wire converter alone makes it: created_at formatted in Python."""
    return orjson.dumps(_serde._wire.unstructure(resource))


def _second_text(moment: datetime) -> str:
    """YYYY-MM-DDTHH:MM:SSZ of an instant, written out field by field."""
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
    )


_OFFSETS = st.integers(-(14 * 60 - 1), 14 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@settings(database=None, deadline=None, max_examples=300)
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_OFFSETS)
    | st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999_999)
    ).map(lambda naive: naive.replace(tzinfo=UTC))
)
def test_created_at_bytes_are_the_converters_for_any_datetime(moment: datetime) -> None:
    """Any instant from year 1 to 9999, any offset, any microseconds: the body is byte for byte
    the wire converter's, and created_at is the instant in UTC to the second."""
    resource = _resource(created_at=moment)
    body = encode_body(resource)
    assert body == _generic_body(resource)
    assert json.loads(body)["created_at"] == _second_text(moment)


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param(datetime(1, 1, 1, tzinfo=UTC), id="year_1"),
        pytest.param(datetime(5, 6, 7, 8, 9, 10, 11, tzinfo=UTC), id="year_5"),
        pytest.param(datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), id="year_999"),
        pytest.param(datetime(2026, 2, 3, 4, 5, 6, 500_000, tzinfo=UTC), id="microseconds"),
        pytest.param(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), id="year_9999"),
        pytest.param(
            datetime(2026, 1, 1, 0, 30, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            id="offset_to_the_day_before",
        ),
        pytest.param("2026-01-01T00:00:00.123456-10:00", id="iso_string_with_offset"),
    ],
)
def test_created_at_bytes_at_the_edges(moment: datetime | str) -> None:
    """Years below 1000 and at 9999, microseconds, an offset crossing midnight: the same
    bytes as the wire converter's."""
    resource = _resource(created_at=moment)
    assert encode_body(resource) == _generic_body(resource)
    assert json.loads(encode_body(resource))["created_at"] == _second_text(resource.created_at)


class _Moment(datetime):
    """A datetime subclass, which orjson refuses to write."""


@pytest.mark.parametrize("tz", [UTC, timezone(timedelta(hours=-3))], ids=["utc", "offset"])
def test_a_datetime_subclass_is_still_sent_as_text(tz: timezone) -> None:
    """A created_at of a datetime subclass (kept a subclass in UTC) is formatted as before."""
    resource = _resource(created_at=_Moment(2026, 3, 4, 5, 6, 7, 8, tzinfo=tz))
    assert type(resource.created_at) is _Moment
    assert encode_body(resource) == _generic_body(resource)
    assert json.loads(encode_body(resource))["created_at"] == _second_text(resource.created_at)


@settings(database=None, deadline=None)
@given(resources())
def test_any_valid_resource_encodes_to_the_converters_bytes(resource: ExternalResource) -> None:
    """Every shape of resource (display_info, fields, file_urls, author fields) gives the bytes
    the wire converter gives."""
    assert encode_body(resource) == _generic_body(resource)


class _When(enum.Enum):
    NOON = datetime(2026, 1, 1, 12, 0, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(time(1, 2, 3, 4), "01:02:03.000004", id="time"),
        pytest.param(_When.NOON, "2026-01-01T12:00:00.000005+00:00", id="enum_of_datetime"),
    ],
)
@pytest.mark.parametrize("where", ["resource", "author"])
def test_a_field_value_orjson_writes_keeps_orjsons_default_text(
    value: Any, text: str, where: str
) -> None:
    """A field value the converter passes through to orjson (outside FieldData's types, but
    accepted) keeps the text orjson writes by default, microseconds and offset included: a
    resource with fields is encoded without the datetime options that created_at uses."""
    fields = (FieldValue("f", value),)
    if where == "resource":
        resource = _resource(fields=fields)
        sent = json.loads(encode_body(resource))["fields"]
    else:
        resource = _resource(author=Author("456", fields=fields))
        sent = json.loads(encode_body(resource))["author"]["fields"]
    assert sent == [{"id": "f", "value": text}]
    assert json.loads(encode_body(resource))["created_at"] == "2015-01-13T08:59:26Z"


# --- encode_push_body -------------------------------------------------------------------------

PARTS = [
    encode_resource(_curl_example()),
    encode_resource(_resource(external_id="235", message="Grüße, 世界 👋", thread_id="t")),
    encode_resource(_resource(external_id="236", message='quote " and \\ backslash')),
]


@pytest.mark.parametrize("count", [1, 2, 3])
def test_push_body_parses_with_resources_in_order(count: int) -> None:
    """A push body is JSON with instance_push_id, request_id and the resources in order."""
    parts = PARTS[:count]
    body = json.loads(encode_push_body(IPID, parts, "my_request_123"))
    assert body == {
        "instance_push_id": IPID,
        "request_id": "my_request_123",
        "external_resources": [json.loads(part.body) for part in parts],
    }


def test_push_body_omits_request_id_when_none() -> None:
    """A push body without a request_id has no request_id key at all."""
    body = json.loads(encode_push_body(IPID, PARTS[:1]))
    assert body == {"instance_push_id": IPID, "external_resources": [json.loads(PARTS[0].body)]}


def test_push_body_matches_the_spec_curl_example() -> None:
    """The push body for the curl example equals the curl body, display_info data an object."""
    body = json.loads(encode_push_body(IPID, PARTS[:1], "my_request_123"))
    assert body == {
        "instance_push_id": IPID,
        "request_id": "my_request_123",
        "external_resources": [CURL_EXAMPLE_WIRE],
    }


def _expected_size(ipid: str, parts: list[EncodedResource], request_id: str | None) -> int:
    overhead = push_body_overhead(ipid, request_id)
    return overhead + sum(len(part.body) for part in parts) + max(len(parts) - 1, 0)


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize(
    ("ipid", "request_id"),
    [
        (IPID, None),
        (IPID, "my_request_123"),
        ("instance-ü-世界", "r-1"),
    ],
    ids=["no_request_id", "ascii_request_id", "non_ascii_instance_push_id"],
)
def test_push_body_size_is_overhead_plus_parts_plus_commas(
    ipid: str, request_id: str | None, count: int
) -> None:
    """Body bytes = push_body_overhead + the parts' bytes + one comma between each two parts."""
    parts = PARTS[:count]
    body = encode_push_body(ipid, parts, request_id)
    assert len(body) == _expected_size(ipid, parts, request_id)


@pytest.mark.parametrize(
    "request_id",
    ["", "requête-世界", 'say "hi"\\now'],
    ids=["empty", "non_ascii", "needs_json_escaping"],
)
def test_push_body_size_invariant_holds_for_any_request_id(request_id: str) -> None:
    """The size invariant holds for an empty, non-ASCII, or JSON-escaped request_id too."""
    parts = PARTS[:2]
    body = encode_push_body(IPID, parts, request_id)
    assert json.loads(body)["request_id"] == request_id
    assert len(body) == _expected_size(IPID, parts, request_id)


# --- decode_push_results ----------------------------------------------------------------------


def _answer(*results: tuple[str, dict[str, Any]]) -> bytes:
    return json.dumps(
        {"results": [{"external_resource_id": rid, "status": status} for rid, status in results]}
    ).encode()


def test_decode_pairs_results_with_resources_by_position() -> None:
    """Each result is paired with the resource in the same position of the request."""
    body = _answer(("a", {"code": "success"}), ("b", {"code": "halted"}))
    assert decode_push_results(body, ["a", "b"]) == [
        PushResult("a", StatusCode.SUCCESS),
        PushResult("b", StatusCode.HALTED),
    ]


def test_decode_keeps_the_description() -> None:
    """The spec's example answer keeps its description (the parent id Zendesk could not find)."""
    body = _answer(
        ("234", {"code": "could_not_locate_parent_external_resource", "description": "123"})
    )
    [result] = decode_push_results(body, ["234"])
    assert result == PushResult("234", StatusCode.COULD_NOT_LOCATE_PARENT, "123")
    assert result.code is StatusCode.COULD_NOT_LOCATE_PARENT


def test_decode_keeps_an_unknown_code_as_its_raw_string() -> None:
    """A status code this version does not know is kept as the raw string, not an error."""
    [result] = decode_push_results(_answer(("a", {"code": "brand_new_code"})), ["a"])
    assert result.code == "brand_new_code"
    assert not isinstance(result.code, StatusCode)
    assert not result.imported


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>502 Bad Gateway</html>", id="not_json"),
        pytest.param(b"", id="empty_body"),
        pytest.param(b"[]", id="json_array"),
        pytest.param(b'"results"', id="json_string"),
        pytest.param(b"null", id="json_null"),
        pytest.param(b"{}", id="missing_results"),
        pytest.param(b'{"results": 5}', id="results_not_a_list"),
        pytest.param(b'{"results": [{"external_resource_id": "a"}]}', id="missing_status"),
        pytest.param(
            b'{"results": [{"external_resource_id": "a", "status": {}}]}', id="missing_code"
        ),
        pytest.param(b'{"results": [{"status": {"code": "success"}}]}', id="missing_id"),
    ],
)
def test_decode_raises_protocol_error_for_a_malformed_answer(body: bytes) -> None:
    """An answer that is not a valid results object raises ProtocolError."""
    with pytest.raises(ProtocolError) as exc:
        decode_push_results(body, ["a"])
    assert isinstance(exc.value, AnyChannelError)


def test_decode_raises_protocol_error_for_fewer_results() -> None:
    """Fewer results than resources sent raises ProtocolError, never a guessed pairing."""
    with pytest.raises(ProtocolError, match="1 results for 2 resources"):
        decode_push_results(_answer(("a", {"code": "success"})), ["a", "b"])


def test_decode_raises_protocol_error_for_more_results() -> None:
    """More results than resources sent raises ProtocolError."""
    body = _answer(("a", {"code": "success"}), ("b", {"code": "success"}))
    with pytest.raises(ProtocolError, match="2 results for 1 resources"):
        decode_push_results(body, ["a"])


def test_decode_raises_protocol_error_for_reversed_ids() -> None:
    """Results whose external ids are in another order than the request's raise ProtocolError."""
    body = _answer(("b", {"code": "success"}), ("a", {"code": "success"}))
    with pytest.raises(ProtocolError, match="'b'"):
        decode_push_results(body, ["a", "b"])


# --- resource_from_json -----------------------------------------------------------------------


def test_resource_from_json_builds_the_curl_example() -> None:
    """The curl example's resource object (display_info data as an object) builds the resource."""
    assert resource_from_json(CURL_EXAMPLE_INPUT) == _curl_example()


def test_resource_from_json_builds_every_nested_field() -> None:
    """Nested author with fields, ticket fields, display_info and file_urls are all built."""
    obj = {
        "external_id": "234",
        "message": "m",
        "created_at": "2015-01-13T10:59:26+02:00",
        "thread_id": "t-1",
        "internal_note": False,
        "author": {
            "external_id": "456",
            "image_url": "https://example.com/fred.png",
            "fields": [{"id": "notes", "value": "VIP"}],
        },
        "fields": [{"id": "subject", "value": "Hi"}, {"id": 360001, "value": ["a", "b"]}],
        "display_info": [{"type": "t", "data": {"n": 1}}, {"type": "u", "data": '{"m": []}'}],
        "file_urls": ["https://example.com/a.png", "https://example.com/b.png"],
    }
    assert resource_from_json(obj) == _make(
        external_id="234",
        message="m",
        created_at=WHEN,
        thread_id="t-1",
        internal_note=False,
        author=_make_author(
            external_id="456",
            image_url="https://example.com/fred.png",
            fields=[FieldValue(id="notes", value="VIP")],
        ),
        fields=[FieldValue(id="subject", value="Hi"), FieldValue(id=360001, value=["a", "b"])],
        display_info=[DisplayInfo(type="t", data={"n": 1}), DisplayInfo(type="u", data={"m": []})],
        file_urls=["https://example.com/a.png", "https://example.com/b.png"],
    )


def test_resource_from_json_accepts_display_info_data_in_the_old_string_form() -> None:
    """Rows written by earlier versions hold display_info data as a JSON string: still read."""
    old = {
        **CURL_EXAMPLE_INPUT,
        "display_info": [{"type": DISPLAY_TYPE, "data": '{"whatever": "I want"}'}],
    }
    assert resource_from_json(old) == _curl_example()


@pytest.mark.parametrize(
    ("item", "field", "words"),
    [
        ({"type": "t", "data": "[]"}, "display_info[1].data", "JSON object"),
        ({"type": "t", "data": "not json"}, "display_info[1].data", "JSON object"),
        ({"type": "t", "data": 5}, "display_info[1].data", "JSON object"),
        ({"type": "", "data": {}}, "display_info[1].type", "255"),
        ({"type": "t"}, "display_info[1].data", "required"),
        ({"type": "t", "data": {}, "dta": {}}, "display_info[1].dta", "unknown"),
        ("t", "display_info[1]", "object"),
    ],
    ids=["array-text", "not-json", "number", "empty-type", "no-data", "misspelt-key", "not-object"],
)
def test_resource_from_json_names_the_display_info_item_at_fault(
    item: object, field: str, words: str
) -> None:
    """A bad display_info item read from JSON is a ValidationError naming its index and field."""
    good = {"type": "t", "data": {}}
    with pytest.raises(ValidationError, match=words) as exc:
        resource_from_json({**CURL_EXAMPLE_INPUT, "display_info": [good, item]})
    assert exc.value.field == field


def test_resource_from_json_refuses_a_misspelt_field() -> None:
    """A misspelt field name ("mesage") is refused with ValidationError naming it."""
    obj = {**CURL_EXAMPLE_INPUT}
    obj["mesage"] = obj.pop("message")
    with pytest.raises(ValidationError, match="mesage"):
        resource_from_json(obj)


def test_resource_from_json_refuses_a_misspelt_author_field() -> None:
    """A misspelt field inside author ("nme") is refused too, not silently dropped."""
    obj = {**CURL_EXAMPLE_INPUT, "author": {"external_id": "456", "nme": "Fred"}}
    with pytest.raises(ValidationError, match="nme"):
        resource_from_json(obj)


@pytest.mark.parametrize("field", ["external_id", "message", "created_at", "author"])
def test_resource_from_json_refuses_a_missing_required_field(field: str) -> None:
    """A missing required field is refused with ValidationError naming that field."""
    obj = {key: value for key, value in CURL_EXAMPLE_INPUT.items() if key != field}
    with pytest.raises(ValidationError, match=field):
        resource_from_json(obj)


def test_resource_from_json_raises_the_models_own_error_for_a_nested_limit() -> None:
    """An author external_id past 255 characters raises the model's error for author.external_id."""
    obj = {**CURL_EXAMPLE_INPUT, "author": {"external_id": "4" * 256}}
    with pytest.raises(ValidationError) as exc:
        resource_from_json(obj)
    assert exc.value.field == "author.external_id"
    assert "255" in str(exc.value)
    assert "256" in str(exc.value)


def test_resource_from_json_raises_the_models_own_error_for_a_top_level_limit() -> None:
    """A message past 65,535 characters raises the model's own error for message."""
    obj = {**CURL_EXAMPLE_INPUT, "message": "m" * 65_536}
    with pytest.raises(ValidationError) as exc:
        resource_from_json(obj)
    assert exc.value.field == "message"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("internal_note", "false"),
        ("allow_channelback", "no"),
        ("message", 123),
        ("external_id", 234),
        ("file_urls", "http://a.b"),
    ],
)
def test_resource_from_json_refuses_a_wrong_json_type(field: str, value: object) -> None:
    """A JSON value of the wrong type is refused with ValidationError naming it, not coerced."""
    with pytest.raises(ValidationError, match=field):
        resource_from_json({**CURL_EXAMPLE_INPUT, field: value})


@pytest.mark.parametrize("obj", [[CURL_EXAMPLE_INPUT], "{}", None, 42])
def test_resource_from_json_refuses_a_non_object(obj: object) -> None:
    """Input that is not a JSON object is refused with ValidationError saying so."""
    with pytest.raises(ValidationError, match="object") as exc:
        resource_from_json(obj)
    assert exc.value.field == "resource"


# --- round trip -------------------------------------------------------------------------------


@settings(database=None, deadline=None)
@given(resources())
def test_encode_then_resource_from_json_round_trips(resource: ExternalResource) -> None:
    """Any valid resource, encoded and built back with resource_from_json, equals the original."""
    assert resource_from_json(json.loads(encode_resource(resource).body)) == resource


def test_text_json_cannot_carry_is_refused_at_encoding() -> None:
    """A lone surrogate cannot be UTF-8: ValidationError before anything is sent."""
    with pytest.raises(ValidationError, match="cannot be encoded"):
        encode_resource(
            ExternalResource("s-1", "broken \ud800 text", "2026-01-01T00:00:00Z", Author("a"))
        )


@pytest.mark.parametrize(
    "status",
    [
        pytest.param({"code": []}, id="code_list"),
        pytest.param({"code": {"a": 1}}, id="code_object"),
        pytest.param({"code": 7}, id="code_number"),
        pytest.param({"code": None}, id="code_null"),
        pytest.param({"code": "success", "description": {"x": 1}}, id="description_object"),
        pytest.param({"code": "success", "description": ["x"]}, id="description_list"),
        pytest.param({"code": "success", "description": 5}, id="description_number"),
    ],
)
def test_decode_raises_protocol_error_for_a_status_that_is_not_text(
    status: dict[str, Any],
) -> None:
    """A status code or description of another JSON type is a ProtocolError, never a TypeError
    escaping nor a non-string description in the PushResult."""
    with pytest.raises(ProtocolError, match="not a string"):
        decode_push_results(_answer(("a", status)), ["a"])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"results": [{"external_resource_id": ["a"], "status": {"code": "x"}}]}'),
        pytest.param(b'{"results": [{"external_resource_id": "a", "status": "success"}]}'),
        pytest.param(b'{"results": [{"external_resource_id": "a", "status": []}]}'),
        pytest.param(b'{"results": [5]}'),
        pytest.param(b'{"results": "a"}'),
    ],
)
def test_decode_raises_protocol_error_for_results_of_the_wrong_shape(body: bytes) -> None:
    """Other wrong JSON types in a result are ProtocolError too."""
    with pytest.raises(ProtocolError):
        decode_push_results(body, ["a"])


def test_decode_accepts_a_null_description() -> None:
    """A null (or absent) description is no description."""
    [result] = decode_push_results(_answer(("a", {"code": "success", "description": None})), ["a"])
    assert result == PushResult("a", StatusCode.SUCCESS)


def test_a_deeply_nested_field_value_is_refused_at_encoding() -> None:
    """A field value nested beyond what the converter can walk is a ValidationError, not a
    RecursionError escaping submit."""
    deep: Any = []
    for _ in range(5_000):
        deep = [deep]
    resource = _resource(fields=(FieldValue("f", deep),))
    with pytest.raises(ValidationError, match="nested too deeply"):
        encode_resource(resource)
