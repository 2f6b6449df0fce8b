"""Validation of request bodies against the documented field types and limits.

The emulator reads raw JSON on its own, as Zendesk would. It holds the limits of the API
reference and of Zendesk's own JSON schemas for the push (no empty strings, at most 16
display_info items and 64 fields, display_info data an object, request_id 1..64 characters), and
is stricter than the docs in two ways that catch client bugs early: an unknown key is rejected
(a misspelt field name would otherwise be silently ignored), and an optional field must be
absent rather than `null`. Every error names the JSON path and, for limits, the limit. Nothing
here knows about HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

__all__ = [
    "RejectionError",
    "check_push",
    "check_report_error",
    "check_validate_token",
]

MAX_EXTERNAL_ID = 255
MAX_MESSAGE = 65535
MAX_PARENT_ID = 511
MAX_THREAD_ID = 255
MAX_AUTHOR_STRING = 255
MAX_DISPLAY_TYPE = 255
MAX_DISPLAY_DATA = 65535
MAX_FILE_URLS = 10
MAX_DISPLAY_INFO = 16
MAX_FIELDS = 64
MAX_REQUEST_ID = 64
MAX_INSTANCE_PUSH_ID = 255
#: The most external_resources Zendesk's schema allows in one push, whatever the emulator's own
#: (configurable) per-request limit.
MAX_SCHEMA_RESOURCES = 256

_PUSH_KEYS = frozenset({"instance_push_id", "request_id", "external_resources"})
_VALIDATE_TOKEN_KEYS = frozenset({"instance_push_id", "request_id"})
_REPORT_ERROR_KEYS = frozenset({"instance_push_id", "external_id", "description", "request_id"})
_RESOURCE_KEYS = frozenset(
    {
        "external_id",
        "internal_note",
        "message",
        "html_message",
        "parent_id",
        "thread_id",
        "created_at",
        "author",
        "display_info",
        "allow_channelback",
        "fields",
        "file_urls",
    }
)
#: Locales the emulated account supports (lower case); a subset of Zendesk's.
SUPPORTED_LOCALES = frozenset(
    {
        "ar",
        "bg",
        "cs",
        "da",
        "de",
        "el",
        "en",
        "en-au",
        "en-ca",
        "en-gb",
        "en-us",
        "es",
        "es-419",
        "es-es",
        "fi",
        "fr",
        "fr-ca",
        "he",
        "hi",
        "hu",
        "id",
        "it",
        "ja",
        "ko",
        "nl",
        "no",
        "pl",
        "pt",
        "pt-br",
        "ro",
        "ru",
        "sk",
        "sv",
        "th",
        "tr",
        "uk",
        "vi",
        "zh-cn",
        "zh-tw",
    }
)
_AUTHOR_KEYS = frozenset({"external_id", "name", "image_url", "locale", "fields"})
_DISPLAY_INFO_KEYS = frozenset({"type", "data"})
_FIELD_KEYS = frozenset({"id", "value"})


class RejectionError(Exception):
    """A request answered with an error status; `error` and `description` form the JSON body."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.headers: Mapping[str, str] = headers or {}


def _invalid(description: str) -> RejectionError:
    return RejectionError(400, "InvalidValue", description)


def check_validate_token(body: Mapping[str, object]) -> None:
    """Check a validate_token body."""
    _check_keys(body, _VALIDATE_TOKEN_KEYS, "")
    _check_str(body, "instance_push_id", "", required=True, max_len=None)
    _check_request_id(body)


def check_report_error(body: Mapping[str, object]) -> None:
    """Check a channelback/report_error body."""
    _check_keys(body, _REPORT_ERROR_KEYS, "")
    _check_str(body, "instance_push_id", "", required=True, max_len=None)
    _check_str(body, "external_id", "", required=True, min_len=1, max_len=None)
    _check_str(body, "description", "", max_len=None)
    _check_request_id(body)


def check_push(body: Mapping[str, object], max_resources: int) -> list[Mapping[str, object]]:
    """Check a push body and return its resources.

    The resource count is checked before the resources themselves, so an oversized batch is
    reported as such even when some resource is also invalid: past the schema's 256 as a 400,
    past the emulator's own `max_resources` as a 413.
    """
    _check_keys(body, _PUSH_KEYS, "")
    _check_str(body, "instance_push_id", "", required=True, min_len=1, max_len=MAX_INSTANCE_PUSH_ID)
    _check_request_id(body)
    if "external_resources" not in body:
        raise _invalid("external_resources: required")
    resources = body["external_resources"]
    if not isinstance(resources, list):
        raise _invalid("external_resources: must be an array")
    if len(resources) > MAX_SCHEMA_RESOURCES:
        raise _invalid(
            f"external_resources: {len(resources)} items exceed the limit of {MAX_SCHEMA_RESOURCES}"
        )
    if len(resources) > max_resources:
        raise RejectionError(
            413,
            "TooManyResources",
            f"{len(resources)} external_resources; the limit is {max_resources} per request",
        )
    checked: list[Mapping[str, object]] = []
    for index, resource in enumerate(resources):
        checked.append(_check_resource(resource, f"external_resources[{index}]"))
    return checked


def _check_resource(resource: object, path: str) -> Mapping[str, object]:
    obj = _object(resource, path)
    _check_keys(obj, _RESOURCE_KEYS, path)
    _check_str(obj, "external_id", path, required=True, min_len=1, max_len=MAX_EXTERNAL_ID)
    external_id = obj["external_id"]
    assert isinstance(external_id, str)
    if not external_id.isascii():
        raise _invalid(f"{path}.external_id: must contain only ASCII characters")
    _check_str(obj, "message", path, required=True, min_len=1, max_len=MAX_MESSAGE)
    _check_str(obj, "html_message", path, min_len=1, max_len=MAX_MESSAGE)
    _check_str(obj, "parent_id", path, max_len=MAX_PARENT_ID)
    _check_str(obj, "thread_id", path, max_len=MAX_THREAD_ID)
    if "parent_id" in obj and "thread_id" in obj:
        raise _invalid(f"{path}: parent_id and thread_id must not both be set")
    _check_created_at(obj, path)
    _check_author(obj, path)
    _check_bool(obj, "internal_note", path)
    _check_bool(obj, "allow_channelback", path)
    _check_display_info(obj, path)
    _check_fields(obj, "fields", path)
    _check_file_urls(obj, path)
    return obj


def _check_created_at(obj: Mapping[str, object], path: str) -> None:
    _check_str(obj, "created_at", path, required=True, max_len=None)
    value = obj["created_at"]
    assert isinstance(value, str)
    # Python 3.11's fromisoformat reads ISO 8601 but spells UTC "+00:00", not "Z".
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise _invalid(f"{path}.created_at: {value!r} is not an ISO 8601 date-time") from None


def _check_author(obj: Mapping[str, object], path: str) -> None:
    if "author" not in obj:
        raise _invalid(f"{path}.author: required")
    author_path = f"{path}.author"
    author = _object(obj["author"], author_path)
    _check_keys(author, _AUTHOR_KEYS, author_path)
    _check_str(
        author, "external_id", author_path, required=True, min_len=1, max_len=MAX_AUTHOR_STRING
    )
    for key in ("name", "image_url", "locale"):
        _check_str(author, key, author_path, min_len=1, max_len=MAX_AUTHOR_STRING)
    locale = author.get("locale")
    if isinstance(locale, str) and locale.lower() not in SUPPORTED_LOCALES:
        # Zendesk checks the locale against the account's supported locales, which a client
        # cannot know: the one server-side-only refusal of a well-formed resource.
        raise _invalid(f"{author_path}.locale: {locale!r} is not a supported locale")
    _check_fields(author, "fields", author_path)


def _check_display_info(obj: Mapping[str, object], path: str) -> None:
    items = _list(obj, "display_info", path)
    _check_count(items, "display_info", path, MAX_DISPLAY_INFO)
    for index, item in enumerate(items or ()):
        item_path = f"{path}.display_info[{index}]"
        info = _object(item, item_path)
        _check_keys(info, _DISPLAY_INFO_KEYS, item_path)
        _check_str(info, "type", item_path, required=True, min_len=1, max_len=MAX_DISPLAY_TYPE)
        if "data" not in info:
            raise _invalid(f"{item_path}.data: required")
        # The seed's table types `data` "string", but its own curl example sends an object, and
        # Zendesk's schema requires one; the seed's 65,535 bounds the object's JSON text.
        data = info["data"]
        if not isinstance(data, dict):
            raise _invalid(f"{item_path}.data: must be an object")
        size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
        if size > MAX_DISPLAY_DATA:
            raise _invalid(
                f"{item_path}.data: JSON text of length {size} exceeds the limit of"
                f" {MAX_DISPLAY_DATA} characters"
            )


def _check_fields(obj: Mapping[str, object], key: str, path: str) -> None:
    items = _list(obj, key, path)
    _check_count(items, key, path, MAX_FIELDS)
    for index, item in enumerate(items or ()):
        item_path = f"{path}.{key}[{index}]" if path else f"{key}[{index}]"
        field = _object(item, item_path)
        _check_keys(field, _FIELD_KEYS, item_path)
        if "id" not in field:
            raise _invalid(f"{item_path}.id: required")
        # A custom field may be named by its numeric id; bool is an int to Python, not to JSON.
        field_id = field["id"]
        if isinstance(field_id, bool) or not isinstance(field_id, str | int):
            raise _invalid(f"{item_path}.id: must be a string or an integer")
        if "value" not in field:
            raise _invalid(f"{item_path}.value: required")


def _check_file_urls(obj: Mapping[str, object], path: str) -> None:
    urls = _list(obj, "file_urls", path)
    if urls is None:
        return
    if len(urls) > MAX_FILE_URLS:
        raise _invalid(
            f"{path}.file_urls: {len(urls)} items exceed the limit of {MAX_FILE_URLS} files"
        )
    for index, url in enumerate(urls):
        if not isinstance(url, str):
            raise _invalid(f"{path}.file_urls[{index}]: must be a string")


# -- primitives ------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise _invalid(f"{path}: must be an object")
    return value


def _list(obj: Mapping[str, object], key: str, path: str) -> list[object] | None:
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, list):
        raise _invalid(f"{_join(path, key)}: must be an array")
    return value


def _check_keys(obj: Mapping[str, object], allowed: frozenset[str], path: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise _invalid(f"{_join(path, unknown[0])}: unknown field")


def _check_str(
    obj: Mapping[str, object],
    key: str,
    path: str,
    *,
    max_len: int | None,
    required: bool = False,
    min_len: int = 0,
) -> None:
    where = _join(path, key)
    if key not in obj:
        if required:
            raise _invalid(f"{where}: required")
        return
    value = obj[key]
    if not isinstance(value, str):
        raise _invalid(f"{where}: must be a string")
    if len(value) < min_len:
        raise _invalid(f"{where}: must not be empty")
    if max_len is not None and len(value) > max_len:
        raise _invalid(f"{where}: length {len(value)} exceeds the limit of {max_len} characters")


def _check_count(items: list[object] | None, key: str, path: str, limit: int) -> None:
    if items is not None and len(items) > limit:
        raise _invalid(f"{_join(path, key)}: {len(items)} items exceed the limit of {limit}")


def _check_request_id(body: Mapping[str, object]) -> None:
    _check_str(body, "request_id", "", min_len=1, max_len=MAX_REQUEST_ID)


def _check_bool(obj: Mapping[str, object], key: str, path: str) -> None:
    if key in obj and not isinstance(obj[key], bool):
        raise _invalid(f"{_join(path, key)}: must be a boolean")
