"""Validation, immutability and status semantics of the Channel framework models.

Every limit of the push API (see the spec's external_resource, author and display_info tables,
and the limits of Zendesk's own JSON schemas in NOTES.md) is checked at the limit (accepted) and
one past it (refused with `ValidationError`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from anychannel_async import (
    AnyChannelError,
    Author,
    DisplayInfo,
    ExternalResource,
    FieldValue,
    PushResult,
    StatusCode,
    ValidationError,
)
from anychannel_async._models import REQUEST_ID_MAX, check_request_id

WHEN = datetime(2015, 1, 13, 8, 59, 26, tzinfo=UTC)


def _author(**overrides: Any) -> Author:
    values: dict[str, Any] = {"external_id": "456"}
    values.update(overrides)
    return Author(**values)


def _resource(**overrides: Any) -> ExternalResource:
    values: dict[str, Any] = {
        "external_id": "234",
        "message": "A useful comment",
        "created_at": WHEN,
        "author": _author(),
    }
    values.update(overrides)
    return ExternalResource(**values)


def _assert_names(exc: pytest.ExceptionInfo[ValidationError], *parts: object) -> None:
    message = str(exc.value)
    for part in parts:
        assert str(part) in message, f"{part!r} not in {message!r}"


# --- the exception itself ---------------------------------------------------------------------


def test_validation_error_is_a_value_error_and_an_anychannel_error() -> None:
    """A refused value raises ValidationError, which is also a ValueError and an AnyChannelError."""
    with pytest.raises(ValidationError) as exc:
        _resource(external_id="")
    assert isinstance(exc.value, ValueError)
    assert isinstance(exc.value, AnyChannelError)


# --- ExternalResource text limits -------------------------------------------------------------

RESOURCE_TEXT_LIMITS = [
    ("external_id", 255),
    ("message", 65_535),
    ("html_message", 65_535),
    ("parent_id", 511),
    ("thread_id", 255),
]


@pytest.mark.parametrize(("field", "limit"), RESOURCE_TEXT_LIMITS)
def test_resource_text_field_at_its_limit_is_accepted(field: str, limit: int) -> None:
    """A resource text field exactly at its maximum length is accepted and kept as given."""
    value = "a" * limit
    resource = _resource(**{field: value})
    assert getattr(resource, field) == value


@pytest.mark.parametrize(("field", "limit"), RESOURCE_TEXT_LIMITS)
def test_resource_text_field_one_past_its_limit_is_refused(field: str, limit: int) -> None:
    """A resource text field one character past its limit is refused, naming field, limit, size."""
    with pytest.raises(ValidationError) as exc:
        _resource(**{field: "a" * (limit + 1)})
    assert exc.value.field == field
    _assert_names(exc, field, limit, limit + 1)


@pytest.mark.parametrize("field", ["message", "html_message"])
def test_message_limit_counts_characters_not_bytes(field: str) -> None:
    """65,535 two-byte characters are accepted: the message limit counts characters, not bytes."""
    value = "é" * 65_535
    resource = _resource(**{field: value})
    assert getattr(resource, field) == value


@pytest.mark.parametrize("field", ["message", "html_message"])
def test_message_of_multibyte_characters_one_past_limit_is_refused(field: str) -> None:
    """65,536 multi-byte characters are refused, and the size reported is in characters."""
    with pytest.raises(ValidationError) as exc:
        _resource(**{field: "é" * 65_536})
    _assert_names(exc, field, 65_535, 65_536)


@pytest.mark.parametrize("field", ["message", "html_message"])
def test_empty_message_is_refused(field: str) -> None:
    """An empty message or html_message is refused (the schema wants 1..65,535 characters)."""
    with pytest.raises(ValidationError) as exc:
        _resource(**{field: ""})
    assert exc.value.field == field
    _assert_names(exc, field, "empty", 65_535)


@pytest.mark.parametrize("field", ["message", "html_message"])
def test_message_of_one_character_is_accepted(field: str) -> None:
    """A message or html_message of one character (the lower bound) is accepted."""
    assert getattr(_resource(**{field: "m"}), field) == "m"


@pytest.mark.parametrize(
    ("field", "limit"), [("display_info", 16), ("fields", 64)], ids=["display_info", "fields"]
)
def test_resource_collection_at_its_limit_is_accepted(field: str, limit: int) -> None:
    """16 display_info items, or 64 ticket fields, are accepted."""
    assert len(getattr(_resource(**{field: _items(field, limit)}), field)) == limit


@pytest.mark.parametrize(
    ("field", "limit"), [("display_info", 16), ("fields", 64)], ids=["display_info", "fields"]
)
def test_resource_collection_one_past_its_limit_is_refused(field: str, limit: int) -> None:
    """17 display_info items, or 65 ticket fields, are refused, naming field, limit and count."""
    with pytest.raises(ValidationError) as exc:
        _resource(**{field: _items(field, limit + 1)})
    assert exc.value.field == field
    _assert_names(exc, field, limit, limit + 1)


def _items(field: str, count: int) -> list[object]:
    if field == "display_info":
        return [DisplayInfo(type=f"t{i}", data={"i": i}) for i in range(count)]
    return [FieldValue(id=f"f{i}", value=i) for i in range(count)]


def test_external_id_of_one_character_is_accepted() -> None:
    """An external_id of a single ASCII character (the lower bound) is accepted."""
    assert _resource(external_id="x").external_id == "x"


def test_empty_external_id_is_refused() -> None:
    """An empty external_id is refused, naming the field and its 1..255 range."""
    with pytest.raises(ValidationError) as exc:
        _resource(external_id="")
    assert exc.value.field == "external_id"
    _assert_names(exc, "external_id", 255)


def test_non_ascii_external_id_is_refused() -> None:
    """An external_id with a non-ASCII character is refused: the API wants ASCII only."""
    with pytest.raises(ValidationError) as exc:
        _resource(external_id="caf\u00e9")
    assert exc.value.field == "external_id"
    _assert_names(exc, "external_id", "ASCII")


@pytest.mark.parametrize("field", ["parent_id", "thread_id"])
def test_parent_id_or_thread_id_alone_is_accepted(field: str) -> None:
    """A resource may carry parent_id alone or thread_id alone."""
    assert getattr(_resource(**{field: "123"}), field) == "123"


def test_parent_id_and_thread_id_together_are_refused() -> None:
    """A resource with both parent_id and thread_id is refused, naming both fields."""
    with pytest.raises(ValidationError) as exc:
        _resource(parent_id="123", thread_id="t-1")
    _assert_names(exc, "parent_id", "thread_id")


def test_ten_file_urls_are_accepted() -> None:
    """Exactly 10 file_urls (the limit) are accepted and kept in order."""
    urls = [f"https://example.com/{i}.png" for i in range(10)]
    assert _resource(file_urls=urls).file_urls == tuple(urls)


def test_eleven_file_urls_are_refused() -> None:
    """11 file_urls are refused, naming the field, the limit of 10 and the count 11."""
    with pytest.raises(ValidationError) as exc:
        _resource(file_urls=[f"https://example.com/{i}.png" for i in range(11)])
    assert exc.value.field == "file_urls"
    _assert_names(exc, "file_urls", 10, 11)


# --- Author limits ----------------------------------------------------------------------------

AUTHOR_TEXT_LIMITS = ["external_id", "name", "image_url", "locale"]


@pytest.mark.parametrize("field", AUTHOR_TEXT_LIMITS)
def test_author_text_field_at_255_characters_is_accepted(field: str) -> None:
    """An author text field of exactly 255 characters is accepted."""
    value = "a" * 255
    assert getattr(_author(**{field: value}), field) == value


@pytest.mark.parametrize("field", AUTHOR_TEXT_LIMITS)
def test_author_text_field_of_256_characters_is_refused(field: str) -> None:
    """An author text field of 256 characters is refused, naming author.<field>, 255 and 256."""
    with pytest.raises(ValidationError) as exc:
        _author(**{field: "a" * 256})
    assert exc.value.field == f"author.{field}"
    _assert_names(exc, f"author.{field}", 255, 256)


def test_empty_author_external_id_is_refused() -> None:
    """An empty author external_id is refused, naming the field and its 1..255 range."""
    with pytest.raises(ValidationError) as exc:
        _author(external_id="")
    assert exc.value.field == "author.external_id"
    _assert_names(exc, "author.external_id", 255)


@pytest.mark.parametrize("field", ["name", "image_url", "locale"])
def test_empty_author_text_field_is_refused(field: str) -> None:
    """An empty author name, image_url or locale is refused: leave it out instead (1..255)."""
    with pytest.raises(ValidationError) as exc:
        _author(**{field: ""})
    assert exc.value.field == f"author.{field}"
    _assert_names(exc, f"author.{field}", "empty", 255)


def test_author_with_64_fields_is_accepted() -> None:
    """An author with 64 user fields (the limit) is accepted."""
    fields = [FieldValue(id=f"f{i}", value=i) for i in range(64)]
    assert len(_author(fields=fields).fields) == 64


def test_author_with_65_fields_is_refused() -> None:
    """An author with 65 user fields is refused, naming author.fields, the limit and the count."""
    with pytest.raises(ValidationError) as exc:
        _author(fields=[FieldValue(id=f"f{i}", value=i) for i in range(65)])
    assert exc.value.field == "author.fields"
    _assert_names(exc, "author.fields", 64, 65)


def test_author_external_id_of_one_character_is_accepted() -> None:
    """An author external_id of one character (the lower bound) is accepted."""
    assert _author(external_id="x").external_id == "x"


# --- DisplayInfo limits -----------------------------------------------------------------------


def test_display_info_type_at_255_characters_is_accepted() -> None:
    """A display_info type of exactly 255 characters is accepted."""
    assert DisplayInfo(type="t" * 255, data="{}").type == "t" * 255


def test_display_info_type_of_256_characters_is_refused() -> None:
    """A display_info type of 256 characters is refused, naming the field, 255 and 256."""
    with pytest.raises(ValidationError) as exc:
        DisplayInfo(type="t" * 256, data="{}")
    assert exc.value.field == "display_info.type"
    _assert_names(exc, "display_info.type", 255, 256)


def test_empty_display_info_type_is_refused() -> None:
    """An empty display_info type is refused, naming the field and its 1..255 range."""
    with pytest.raises(ValidationError) as exc:
        DisplayInfo(type="", data={})
    assert exc.value.field == "display_info.type"
    _assert_names(exc, "display_info.type", "empty", 255)


# '{"k":"' + filler + '"}' is 8 characters plus the filler.
_DICT_OVERHEAD = len('{"k":""}')


def test_display_info_string_data_at_65535_characters_is_accepted() -> None:
    """A string holding a JSON object of exactly 65,535 characters is accepted as that object."""
    data = '{"k":"' + "d" * (65_535 - _DICT_OVERHEAD) + '"}'
    assert DisplayInfo(type="t", data=data).data == data


def test_display_info_string_data_of_65536_characters_is_refused() -> None:
    """A string holding a 65,536-character JSON object is refused, naming field, limit, size."""
    with pytest.raises(ValidationError) as exc:
        DisplayInfo(type="t", data='{"k":"' + "d" * (65_536 - _DICT_OVERHEAD) + '"}')
    assert exc.value.field == "display_info.data"
    _assert_names(exc, "display_info.data", 65_535, 65_536)


def test_display_info_string_data_counts_its_compact_json() -> None:
    """Spaces in a data string do not count toward 65,535: the limit bounds the compact JSON."""
    spaced = '{ "k" :  "' + "d" * (65_535 - _DICT_OVERHEAD) + '" }'
    assert len(DisplayInfo(type="t", data=spaced).data) == 65_535


def test_display_info_dict_data_is_stored_as_its_compact_json_text() -> None:
    """A dict given as display_info data is kept as its compact JSON text (sent as an object)."""
    assert DisplayInfo(type="t", data={"whatever": "I want"}).data == '{"whatever":"I want"}'


def test_display_info_string_and_mapping_of_one_object_are_equal() -> None:
    """A JSON object given as text or as a mapping makes the same, hashable, DisplayInfo."""
    from_text = DisplayInfo(type="t", data='{ "a" : [1, 2] }')
    from_mapping = DisplayInfo(type="t", data={"a": [1, 2]})
    assert from_text == from_mapping
    assert hash(from_text) == hash(from_mapping)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ("[1, 2]", "array"),
        ('"x"', "string"),
        ("7", "number"),
        ("null", "null"),
        ("true", "boolean"),
    ],
)
def test_display_info_string_data_not_holding_an_object_is_refused(data: str, kind: str) -> None:
    """A data string holding JSON other than an object is refused, naming what it holds."""
    with pytest.raises(ValidationError) as exc:
        DisplayInfo(type="t", data=data)
    assert exc.value.field == "display_info.data"
    _assert_names(exc, "display_info.data", "JSON object", kind)


@pytest.mark.parametrize("data", ["", "not json", '{"a": 1', '{"a": NaN}'])
def test_display_info_string_data_that_is_not_json_is_refused(data: str) -> None:
    """A data string that is not JSON (NaN included) is refused, naming display_info.data."""
    with pytest.raises(ValidationError) as exc:
        DisplayInfo(type="t", data=data)
    assert exc.value.field == "display_info.data"
    _assert_names(exc, "display_info.data", "JSON object")


@pytest.mark.parametrize("data", [[1, 2], 7, None, b"{}"])
def test_display_info_data_of_another_type_is_refused(data: object) -> None:
    """Data that is neither a mapping nor a string is refused, naming display_info.data."""
    with pytest.raises(ValidationError) as exc:
        DisplayInfo(type="t", data=data)  # type: ignore[arg-type]
    assert exc.value.field == "display_info.data"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_display_info_dict_data_with_a_non_finite_number_is_refused(value: float) -> None:
    """NaN and Infinity are not JSON: refused rather than sent as something else."""
    with pytest.raises(ValidationError) as exc:
        DisplayInfo(type="t", data={"k": value})
    assert exc.value.field == "display_info.data"


def test_display_info_dict_data_keeps_big_integers_exact() -> None:
    """An integer past 64 bits in data is kept exactly, not rounded through a float."""
    assert json.loads(DisplayInfo(type="t", data='{"n": 123456789012345678901}').data) == {
        "n": 123456789012345678901
    }


def test_display_info_dict_data_at_limit_after_serialisation_is_accepted() -> None:
    """A dict whose JSON serialisation is exactly 65,535 characters is accepted."""
    info = DisplayInfo(type="t", data={"k": "x" * (65_535 - _DICT_OVERHEAD)})
    assert len(info.data) == 65_535


def test_display_info_dict_data_past_limit_after_serialisation_is_refused() -> None:
    """A dict whose JSON serialisation is 65,536 characters is refused, reporting that size."""
    with pytest.raises(ValidationError) as exc:
        DisplayInfo(type="t", data={"k": "x" * (65_536 - _DICT_OVERHEAD)})
    assert exc.value.field == "display_info.data"
    _assert_names(exc, "display_info.data", 65_535, 65_536)


def test_display_info_dict_data_counts_non_ascii_as_one_character() -> None:
    """Non-ASCII text in dict data is kept as is (not \\u-escaped), so it counts one character."""
    info = DisplayInfo(type="t", data={"k": "é" * (65_535 - _DICT_OVERHEAD)})
    assert len(info.data) == 65_535


def test_display_info_unserialisable_dict_data_is_refused() -> None:
    """Dict data that JSON cannot serialise is refused with ValidationError on display_info.data."""
    with pytest.raises(ValidationError) as exc:
        DisplayInfo(type="t", data={"k": object()})
    assert exc.value.field == "display_info.data"


# --- created_at -------------------------------------------------------------------------------


def test_aware_datetime_is_accepted_and_normalised_to_utc() -> None:
    """An aware datetime in another zone is accepted and stored as the same instant in UTC."""
    plus_two = datetime(2015, 1, 13, 10, 59, 26, tzinfo=timezone(timedelta(hours=2)))
    created_at = _resource(created_at=plus_two).created_at
    assert created_at == WHEN
    assert created_at.utcoffset() == timedelta(0)
    assert created_at.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    ["2015-01-13T08:59:26Z", "2015-01-13T08:59:26+00:00", "2015-01-13T10:59:26+02:00"],
)
def test_iso_8601_string_with_z_or_offset_is_accepted_in_utc(text: str) -> None:
    """An ISO 8601 string ending in Z or an offset is accepted and stored as a UTC datetime."""
    created_at = _resource(created_at=text).created_at
    assert created_at == WHEN
    assert created_at.tzinfo is UTC


def test_naive_datetime_is_refused() -> None:
    """A naive datetime is refused: its offset from UTC would be a guess."""
    with pytest.raises(ValidationError) as exc:
        _resource(created_at=datetime(2015, 1, 13, 8, 59, 26))
    assert exc.value.field == "created_at"
    _assert_names(exc, "created_at", "naive")


def test_naive_iso_string_is_refused() -> None:
    """An ISO 8601 string without Z or an offset is refused as naive."""
    with pytest.raises(ValidationError) as exc:
        _resource(created_at="2015-01-13T08:59:26")
    assert exc.value.field == "created_at"
    _assert_names(exc, "created_at", "naive")


def test_garbage_created_at_string_is_refused() -> None:
    """A string that is not an ISO 8601 date-time is refused, quoting it."""
    with pytest.raises(ValidationError) as exc:
        _resource(created_at="yesterday-ish")
    assert exc.value.field == "created_at"
    _assert_names(exc, "created_at", "yesterday-ish")


@pytest.mark.parametrize(
    "created_at",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:00:00-05:00",
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1))),
    ],
    ids=["str-before-year-1", "str-after-year-9999", "datetime-before", "datetime-after"],
)
def test_created_at_out_of_range_in_utc_is_refused(created_at: datetime | str) -> None:
    """A time that falls outside years 1..9999 once in UTC is a ValidationError, not an
    OverflowError."""
    with pytest.raises(ValidationError) as exc:
        _resource(created_at=created_at)
    assert exc.value.field == "created_at"
    _assert_names(exc, "created_at", "out of range", "9999")


def test_created_at_at_the_edges_of_the_range_is_accepted() -> None:
    """The first and last seconds the YYYY-MM-DDTHH:MM:SSZ form carries are accepted."""
    assert _resource(created_at="0001-01-01T00:00:00Z").created_at.year == 1
    assert _resource(created_at="9999-12-31T23:59:59+00:00").created_at.year == 9999


def test_created_at_of_wrong_type_is_refused() -> None:
    """A created_at that is neither a datetime nor a string (a Unix timestamp) is refused."""
    with pytest.raises(ValidationError) as exc:
        _resource(created_at=1421139566)
    assert exc.value.field == "created_at"


# --- wrong types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"message": 123}, "message"),
        ({"message": None}, "message"),
        ({"author": "x"}, "author"),
        ({"external_id": 234}, "external_id"),
        ({"html_message": b"<b>x</b>"}, "html_message"),
        ({"parent_id": 123}, "parent_id"),
        ({"internal_note": "false"}, "internal_note"),
        ({"allow_channelback": 1}, "allow_channelback"),
        ({"display_info": [{"type": "t", "data": "{}"}]}, "display_info"),
        ({"fields": [("subject", "hi")]}, "fields"),
        ({"file_urls": [42]}, "file_urls"),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else str(value),
)
def test_wrong_type_gives_validation_error_not_type_error(
    overrides: dict[str, Any], field: str
) -> None:
    """A resource field of the wrong type raises ValidationError naming the field, not TypeError."""
    with pytest.raises(ValidationError) as exc:
        _resource(**overrides)
    assert exc.value.field.startswith(field)


def test_file_urls_given_as_one_string_is_refused() -> None:
    """A single URL string given as file_urls is refused, not split into one-character URLs."""
    with pytest.raises(ValidationError) as exc:
        _resource(file_urls="http://a.b")
    assert exc.value.field.startswith("file_urls")


@pytest.mark.parametrize("field", ["display_info", "fields", "file_urls"])
def test_none_for_a_collection_field_gives_validation_error(field: str) -> None:
    """None for a collection field raises ValidationError naming the field, not TypeError."""
    with pytest.raises(ValidationError) as exc:
        _resource(**{field: None})
    assert exc.value.field.startswith(field)


@pytest.mark.parametrize("field", ["external_id", "name", "image_url", "locale"])
def test_author_field_of_wrong_type_gives_validation_error(field: str) -> None:
    """An author text field holding a number raises ValidationError naming author.<field>."""
    with pytest.raises(ValidationError) as exc:
        _author(**{field: 456})
    assert exc.value.field == f"author.{field}"


def test_display_info_type_of_wrong_type_gives_validation_error() -> None:
    """A display_info type that is not a string raises ValidationError naming display_info.type."""
    bad: Any = 9
    with pytest.raises(ValidationError) as exc:
        DisplayInfo(type=bad, data="{}")
    assert exc.value.field == "display_info.type"


@pytest.mark.parametrize("bad_id", [True, 1.5, None, ["subject"]])
def test_field_value_id_must_be_str_or_int(bad_id: Any) -> None:
    """A ticket field id that is not a str or an int (bool included) raises ValidationError."""
    with pytest.raises(ValidationError) as exc:
        FieldValue(id=bad_id, value="x")
    assert exc.value.field == "fields.id"


@pytest.mark.parametrize("good_id", ["subject", 360001234567])
def test_field_value_id_may_be_name_or_numeric_id(good_id: str | int) -> None:
    """A ticket field id may be a system field's name or a custom field's numeric ID."""
    assert FieldValue(id=good_id, value="x").id == good_id


# --- request_id -----------------------------------------------------------------------------


@pytest.mark.parametrize("request_id", [None, "r", "r" * 64])
def test_request_id_of_1_to_64_characters_or_none_is_accepted(request_id: str | None) -> None:
    """A request_id of 1..64 characters, or none at all, passes the check."""
    check_request_id(request_id)


@pytest.mark.parametrize(
    ("request_id", "parts"),
    [("", ("empty", 64)), ("r" * 65, (65, 64)), (42, ("string",))],
    ids=["empty", "65-characters", "not-a-string"],
)
def test_request_id_outside_1_to_64_characters_is_refused(
    request_id: object, parts: tuple[object, ...]
) -> None:
    """An empty, too long, or non-string request_id is refused, naming request_id (and 64)."""
    with pytest.raises(ValidationError) as exc:
        check_request_id(request_id)
    assert exc.value.field == "request_id"
    _assert_names(exc, "request_id", *parts)


def test_request_id_limit_is_the_schemas_64() -> None:
    """The request_id limit is push_parameters.json's 64 characters."""
    assert REQUEST_ID_MAX == 64


# --- immutability -----------------------------------------------------------------------------

MODEL_INSTANCES: list[tuple[object, str]] = [
    (_resource(), "message"),
    (_author(), "name"),
    (DisplayInfo(type="t", data="{}"), "data"),
    (FieldValue(id="subject", value="x"), "value"),
    (PushResult("234", StatusCode.SUCCESS), "code"),
]


@pytest.mark.parametrize(("instance", "attribute"), MODEL_INSTANCES, ids=lambda v: type(v).__name__)
def test_models_are_frozen(instance: object, attribute: str) -> None:
    """Assigning to a model attribute raises attrs' FrozenInstanceError."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, attribute, "changed")


def test_a_resource_with_display_info_is_hashable() -> None:
    """A resource with display_info (data held as JSON text) is a hashable value."""
    infos = [DisplayInfo(type="t", data={"a": {"b": [1]}})]
    assert hash(_resource(display_info=infos)) == hash(_resource(display_info=infos))


@pytest.mark.parametrize(("instance", "attribute"), MODEL_INSTANCES, ids=lambda v: type(v).__name__)
def test_models_are_slotted(instance: object, attribute: str) -> None:
    """Models are slotted classes: no per-instance __dict__."""
    assert "__slots__" in type(instance).__dict__
    assert attribute in type(instance).__slots__  # type: ignore[attr-defined]
    assert not hasattr(instance, "__dict__")


# --- StatusCode and PushResult ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "raw"),
    [
        (StatusCode.SUCCESS, "success"),
        (StatusCode.ALREADY_IMPORTED, "already_imported"),
        (StatusCode.COULD_NOT_LOCATE_PARENT, "could_not_locate_parent_external_resource"),
        (StatusCode.PROCESSING_ERROR, "processing_error"),
        (StatusCode.HALTED, "halted"),
    ],
)
def test_status_code_values_are_the_spec_strings(code: StatusCode, raw: str) -> None:
    """Each StatusCode's value is exactly the code string of the spec, and parses back to it."""
    assert code.value == raw
    assert code == raw
    assert StatusCode.parse(raw) is code


def test_status_codes_are_exactly_the_spec_codes() -> None:
    """StatusCode has the five codes of the spec and no others."""
    assert {code.value for code in StatusCode} == {
        "success",
        "already_imported",
        "could_not_locate_parent_external_resource",
        "processing_error",
        "halted",
    }


def test_status_code_parse_keeps_an_unknown_raw_string() -> None:
    """StatusCode.parse returns an unknown code as the raw string instead of raising."""
    parsed = StatusCode.parse("rate_limited_by_partner")
    assert parsed == "rate_limited_by_partner"
    assert not isinstance(parsed, StatusCode)


@pytest.mark.parametrize(
    ("code", "imported"),
    [
        (StatusCode.SUCCESS, True),
        (StatusCode.ALREADY_IMPORTED, True),
        (StatusCode.COULD_NOT_LOCATE_PARENT, False),
        (StatusCode.PROCESSING_ERROR, False),
        (StatusCode.HALTED, False),
        ("some_future_code", False),
    ],
)
def test_push_result_imported_only_for_success_and_already_imported(
    code: StatusCode | str, imported: bool
) -> None:
    """PushResult.imported is True only for success and already_imported."""
    assert PushResult("234", code).imported is imported


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_field_value_refuses_numbers_json_cannot_carry(value: float) -> None:
    """NaN and Infinity are not JSON: refused at construction, naming the field."""
    with pytest.raises(ValidationError, match=r"fields\.value"):
        FieldValue("priority", value)


def test_field_value_refuses_integers_beyond_64_bits() -> None:
    """An integer no JSON parser of Zendesk's holds is refused at construction."""
    FieldValue("count", 2**63 - 1)
    with pytest.raises(ValidationError, match="64 bits"):
        FieldValue("count", 2**64)


def test_a_resource_cannot_be_its_own_parent() -> None:
    """parent_id equal to external_id would wait for itself forever: refused at construction."""
    with pytest.raises(ValidationError, match="its own parent"):
        ExternalResource("same", "m", "2026-01-01T00:00:00Z", Author("a"), parent_id="same")


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: _resource(file_urls=["http://example.com/a.png"]), "file_urls[0]"),
        (lambda: _resource(file_urls=["https://example.com/" + "a" * 500]), "file_urls[0]"),
        (lambda: _resource(file_urls=[""]), "file_urls[0]"),
        (lambda: _resource(parent_id="päärent"), "parent_id"),
        (lambda: _resource(thread_id="thrëad"), "thread_id"),
        (lambda: Author("äuthor"), "author.external_id"),
        (lambda: FieldValue("", 1), "fields.id"),
        (lambda: FieldValue("x" * 256, 1), "fields.id"),
    ],
)
def test_what_zendesks_schema_refuses_is_refused(build: Callable[[], object], field: str) -> None:
    """https file URLs of at most 511 characters, ASCII ids, field ids of 1..255 characters."""
    with pytest.raises(ValidationError) as exc:
        build()
    assert exc.value.field == field
