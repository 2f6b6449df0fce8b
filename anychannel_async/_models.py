"""The Channel framework's resources and answers, as frozen values validated at construction.

Every limit of the push API is checked here, so a bad resource is refused by its constructor,
before it reaches a queue or the network: the seed's limits, and those of Zendesk's own JSON
schemas for the push (no empty strings, at most 16 display_info items, at most 64 fields).
Lengths are counted in characters (Python ``len`` of the ``str``), the way Zendesk counts them.
JSON rules (field omission, date format) live in `_serde.py`, not here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TypeAlias, TypeVar

import attrs

from ._errors import ValidationError

__all__ = [
    "ID_MAX",
    "Author",
    "DisplayInfo",
    "ExternalResource",
    "FieldValue",
    "as_resources",
    "check_id",
    "check_request_id",
]

#: What a ticket or user field may hold: text, number, checkbox, date string, or a multiselect.
FieldScalar: TypeAlias = str | int | float | bool | None
FieldData: TypeAlias = FieldScalar | list[str]
_T = TypeVar("_T")

# Limits from the push API reference and Zendesk's JSON schemas, in characters or items.
#: An external_id, or an instance_push_id: 1..255 characters.
ID_MAX = 255
_ID_MAX = ID_MAX
_MESSAGE_MAX = 65_535
_PARENT_ID_MAX = 511
_THREAD_ID_MAX = 255
_FILE_URLS_MAX = 10
_SHORT_TEXT_MAX = 255
_DISPLAY_DATA_MAX = 65_535
_DISPLAY_INFO_MAX = 16
_FIELDS_MAX = 64
_FILE_URL_MAX = 511
#: The longest ``request_id`` of a push (push_parameters.json: 1..64 characters).
REQUEST_ID_MAX = 64


def _check_text(field: str, value: object, limit: int, *, required: bool = False) -> None:
    """Raise `ValidationError` unless value is a str of at most limit characters."""
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise ValidationError(field, f"length {len(value)} exceeds the limit of {limit} characters")
    if required and not value:
        raise ValidationError(field, f"must not be empty (1..{limit} characters)")


def _check_count(field: str, items: tuple[object, ...], limit: int) -> None:
    if len(items) > limit:
        raise ValidationError(field, f"{len(items)} items exceed the limit of {limit}")


def check_id(field: str, value: object) -> None:
    """Raise `ValidationError` unless value is a str of 1..255 characters: an external_id or
    an instance_push_id given to a call."""
    _check_text(field, value, ID_MAX, required=True)


def check_request_id(request_id: object) -> None:
    """Raise `ValidationError` unless request_id is None or a str of 1..64 characters."""
    if request_id is not None:
        _check_text("request_id", request_id, REQUEST_ID_MAX, required=True)


def _check_ascii(field: str, value: str) -> None:
    # The schema's "external-id" format: ASCII, as the seed says of external_id.
    if not value.isascii():
        raise ValidationError(field, "must be ASCII characters only")


def _check_bool(field: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise ValidationError(field, f"must be a bool or None, got {type(value).__name__}")


def _check_items(field: str, items: tuple[object, ...], kind: type) -> None:
    for index, item in enumerate(items):
        if not isinstance(item, kind):
            raise ValidationError(
                f"{field}[{index}]", f"must be a {kind.__name__}, got {type(item).__name__}"
            )


def _to_utc(value: datetime | str) -> datetime:
    """Accept an aware datetime or an ISO 8601 string with an offset; normalise to UTC."""
    if type(value) is datetime and value.tzinfo is UTC:
        return value
    if isinstance(value, str):
        text = value
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(
                "created_at", f"not an ISO 8601 date-time: {text[:40]!r}"
            ) from None
    elif not isinstance(value, datetime):
        raise ValidationError(
            "created_at", f"must be a datetime or an ISO 8601 string, got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive time is ambiguous: Zendesk would read it as UTC and misdate the comment by
        # the caller's offset, silently. Refuse it instead.
        raise ValidationError("created_at", "naive datetime; give a timezone-aware value")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is still year 0 in UTC
        raise ValidationError(
            "created_at",
            f"{value.isoformat()} is out of range in UTC (0001-01-01T00:00:00Z"
            " to 9999-12-31T23:59:59Z)",
        ) from None


def _as_tuple(field: str, items: Iterable[_T]) -> tuple[_T, ...]:
    if type(items) is tuple:  # the common case, the empty default included
        return items
    # A str is iterable too: "http://x" must not become eight one-character URLs.
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise ValidationError(field, f"must be a list, got {type(items).__name__}")
    return tuple(items)


def _display_infos(items: Iterable[DisplayInfo]) -> tuple[DisplayInfo, ...]:
    return _as_tuple("display_info", items)


def _field_values(items: Iterable[FieldValue]) -> tuple[FieldValue, ...]:
    return _as_tuple("fields", items)


def _file_urls(items: Iterable[str]) -> tuple[str, ...]:
    return _as_tuple("file_urls", items)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _to_display_data(value: Mapping[str, object] | str) -> str:
    """display_info data as the compact JSON text of an object, made here once.

    The wire carries it as a JSON object (Zendesk's schema requires one); holding its text keeps
    the model hashable and lets the encoder embed it without serialising it again. The stdlib
    codec keeps integers exact and refuses NaN and Infinity, which JSON has no words for.
    """
    if isinstance(value, str):
        try:
            parsed = json.loads(value, parse_constant=_refuse_constant)
        except ValueError as exc:  # JSONDecodeError included; the text is not quoted back
            raise ValidationError(
                "display_info.data", f"a string must hold a JSON object: {exc}"
            ) from None
        except RecursionError:
            raise ValidationError("display_info.data", "JSON nested too deeply") from None
        if not isinstance(parsed, dict):
            raise ValidationError(
                "display_info.data",
                f"must be a JSON object, got a JSON {_json_kind(parsed)}",
            )
        value = parsed
    elif not isinstance(value, Mapping):
        raise ValidationError(
            "display_info.data",
            f"must be a mapping or a string holding a JSON object, got {type(value).__name__}",
        )
    try:
        text = json.dumps(
            value if isinstance(value, dict) else dict(value),
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        if not text.isascii():  # isascii is O(1); only non-ASCII text can hold a lone surrogate
            text.encode()
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise ValidationError("display_info.data", f"not JSON-serialisable: {exc}") from None
    except RecursionError:
        raise ValidationError("display_info.data", "JSON nested too deeply") from None
    return text


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


@attrs.frozen
class FieldValue:
    """A ticket field or user field to set: ``id`` is a field ID or (for system fields) its name."""

    id: str | int
    value: FieldData

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.id, str | int) or isinstance(self.id, bool):
            raise ValidationError(
                "fields.id", f"must be a str or int, got {type(self.id).__name__}"
            )
        if isinstance(self.id, str):
            _check_text("fields.id", self.id, _ID_MAX, required=True)
        for name, number in (("fields.id", self.id), ("fields.value", self.value)):
            if isinstance(number, int) and not -(2**63) <= number < 2**64:
                raise ValidationError(name, f"integer {number} does not fit in 64 bits")
        if isinstance(self.value, float) and not math.isfinite(self.value):
            # JSON has no NaN or Infinity: Zendesk would refuse the whole request.
            raise ValidationError("fields.value", f"must be a finite number, got {self.value}")


@attrs.frozen
class Author:
    """The person who wrote a resource in the origin service.

    Limits: ``external_id`` 1..255 characters; ``name``, ``image_url``, ``locale`` 1..255 when
    given (an empty string is refused: leave the field out instead); at most 64 ``fields``.
    """

    external_id: str
    name: str | None = None
    image_url: str | None = None
    locale: str | None = None
    fields: tuple[FieldValue, ...] = attrs.field(default=(), converter=_field_values)

    def __attrs_post_init__(self) -> None:
        external_id = self.external_id
        if type(external_id) is not str or not 0 < len(external_id) <= _ID_MAX:
            _check_text("author.external_id", external_id, _ID_MAX, required=True)
        if not external_id.isascii():
            _check_ascii("author.external_id", external_id)
        # Inline common case, precise messages on the slow path (as in ExternalResource).
        name = self.name
        if name is not None and (type(name) is not str or not 0 < len(name) <= _SHORT_TEXT_MAX):
            _check_text("author.name", name, _SHORT_TEXT_MAX, required=True)
        url = self.image_url
        if url is not None and (type(url) is not str or not 0 < len(url) <= _SHORT_TEXT_MAX):
            _check_text("author.image_url", url, _SHORT_TEXT_MAX, required=True)
        locale = self.locale
        if locale is not None and (
            type(locale) is not str or not 0 < len(locale) <= _SHORT_TEXT_MAX
        ):
            _check_text("author.locale", locale, _SHORT_TEXT_MAX, required=True)
        if self.fields:
            _check_count("author.fields", self.fields, _FIELDS_MAX)
            _check_items("author.fields", self.fields, FieldValue)


@attrs.frozen
class DisplayInfo:
    """Integration-specific hints for apps in the agent UI.

    ``data`` is a JSON object: give a mapping, or a string holding a JSON object (anything else
    is refused). It is kept as its compact JSON text (so ``data`` reads as a ``str`` and the
    model stays hashable) and sent as an object. Limits: ``type`` 1..255 characters; ``data``
    at most 65,535 characters of compact JSON (non-ASCII counted as one character each).
    """

    type: str
    data: str = attrs.field(converter=_to_display_data)

    def __attrs_post_init__(self) -> None:
        kind = self.type
        if type(kind) is not str or not 0 < len(kind) <= _SHORT_TEXT_MAX:
            _check_text("display_info.type", kind, _SHORT_TEXT_MAX, required=True)
        if len(self.data) > _DISPLAY_DATA_MAX:
            raise ValidationError(
                "display_info.data",
                f"JSON text of length {len(self.data)} exceeds the limit of"
                f" {_DISPLAY_DATA_MAX} characters",
            )


@attrs.frozen
class ExternalResource:
    """One message from the origin system, to become a ticket or a comment in Zendesk.

    ``created_at`` takes an aware ``datetime`` or an ISO 8601 string with an offset; it is kept
    in UTC and sent as ``YYYY-MM-DDTHH:MM:SSZ``. A naive datetime is refused.

    Limits, counted in characters as Zendesk counts them: ``external_id`` 1..255 ASCII;
    ``message`` 1..65,535 and ``html_message`` 1..65,535 when given; ``parent_id`` at most 511;
    ``thread_id`` at most 255; at most one of ``parent_id`` and ``thread_id``; at most 16
    ``display_info`` items, 64 ``fields`` and 10 ``file_urls``. Breaking one raises
    `ValidationError` naming the field, the limit and the value's size.
    """

    external_id: str
    message: str
    created_at: datetime = attrs.field(converter=_to_utc)
    author: Author
    html_message: str | None = None
    parent_id: str | None = None
    thread_id: str | None = None
    internal_note: bool | None = None
    display_info: tuple[DisplayInfo, ...] = attrs.field(default=(), converter=_display_infos)
    allow_channelback: bool | None = None
    fields: tuple[FieldValue, ...] = attrs.field(default=(), converter=_field_values)
    file_urls: tuple[str, ...] = attrs.field(default=(), converter=_file_urls)

    def __attrs_post_init__(self) -> None:
        # Every resource of an ingestion passes here, so the common case (plain str fields
        # within limits, optional fields absent) is tested inline; the checks that name the
        # field and the limit run only when that test fails.
        external_id = self.external_id
        if type(external_id) is not str or not 0 < len(external_id) <= _ID_MAX:
            _check_text("external_id", external_id, _ID_MAX, required=True)
        if not external_id.isascii():
            raise ValidationError("external_id", "must be ASCII characters only")
        message = self.message
        if type(message) is not str or not 0 < len(message) <= _MESSAGE_MAX:
            if message is None:
                raise ValidationError("message", "is required")
            _check_text("message", message, _MESSAGE_MAX, required=True)
        html = self.html_message
        if html is not None and (type(html) is not str or not 0 < len(html) <= _MESSAGE_MAX):
            _check_text("html_message", html, _MESSAGE_MAX, required=True)
        if self.parent_id is not None:
            _check_text("parent_id", self.parent_id, _PARENT_ID_MAX)
            _check_ascii("parent_id", self.parent_id)
            if self.parent_id == external_id:
                raise ValidationError("parent_id", "a resource cannot be its own parent")
            if self.thread_id is not None:
                raise ValidationError(
                    "parent_id", "a resource may have parent_id or thread_id, not both"
                )
        if self.thread_id is not None:
            _check_text("thread_id", self.thread_id, _THREAD_ID_MAX)
            _check_ascii("thread_id", self.thread_id)
        if type(self.author) is not Author and not isinstance(self.author, Author):
            raise ValidationError("author", f"must be an Author, got {type(self.author).__name__}")
        if self.internal_note is not None:
            _check_bool("internal_note", self.internal_note)
        if self.allow_channelback is not None:
            _check_bool("allow_channelback", self.allow_channelback)
        if self.display_info:
            _check_count("display_info", self.display_info, _DISPLAY_INFO_MAX)
            _check_items("display_info", self.display_info, DisplayInfo)
        if self.fields:
            _check_count("fields", self.fields, _FIELDS_MAX)
            _check_items("fields", self.fields, FieldValue)
        if self.file_urls:
            _check_count("file_urls", self.file_urls, _FILE_URLS_MAX)
            _check_items("file_urls", self.file_urls, str)
            for index, url in enumerate(self.file_urls):
                # Zendesk fetches them itself; its schema takes https URLs only.
                _check_text(f"file_urls[{index}]", url, _FILE_URL_MAX, required=True)
                if not url.startswith("https://"):
                    raise ValidationError(f"file_urls[{index}]", "must be an https:// URL")


def as_resources(items: Iterable[ExternalResource]) -> list[ExternalResource]:
    """A list of resources, each checked to be an `ExternalResource`."""
    resources = list(items)
    _check_items("resources", tuple(resources), ExternalResource)
    return resources
