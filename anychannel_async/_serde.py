"""JSON for the wire: the one cattrs converter, push bodies built from pre-encoded parts, answers.

Models know nothing of JSON; this module holds every JSON rule: optional fields left at their
default (None, empty) are omitted, ``created_at`` is sent as ``YYYY-MM-DDTHH:MM:SSZ``,
``display_info[].data`` is sent as a JSON object, and a push answer is parsed strictly. Each
resource is encoded once, to bytes, when it enters the library; a push body is the join of those
parts, so its size is known exactly before it is sent, and a retried or re-batched resource is
never encoded again.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import attrs
import cattrs
import orjson
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter

from ._errors import ProtocolError, ValidationError
from ._models import Author, DisplayInfo, ExternalResource, FieldValue
from ._results import CODES as _CODES
from ._results import PushResult, StatusCode

__all__ = [
    "Encoded",
    "EncodedResource",
    "decode_push_results",
    "encode_body",
    "encode_push_body",
    "encode_resource",
    "push_body_overhead",
    "resource_from_json",
]

converter = make_converter(omit_if_default=True)


def _datetime_text(dt: datetime) -> str:
    """A datetime as ``YYYY-MM-DDTHH:MM:SSZ``.

    Models hold created_at in UTC already (see _models._to_utc), so formatting is all that is
    left. isoformat is C code and zero-pads the year (strftime's %Y does not below 1000 on
    Linux); its first 19 characters are YYYY-MM-DDTHH:MM:SS.
    """
    return dt.isoformat(timespec="seconds")[:19] + "Z"


converter.register_unstructure_hook(datetime, _datetime_text)
# Incoming strings go to the model's own converter, which parses and checks them.
converter.register_structure_hook(datetime, lambda value, _: value)
# JSON strings and booleans are taken as they come, so the model's own checks refuse a wrong
# type (a "false" string must not become True, 123 must not become "123").
converter.register_structure_hook(str, lambda value, _: value)
converter.register_structure_hook(bool, lambda value, _: value)
converter.register_structure_hook_func(  # file_urls: a lone string is refused by the model
    lambda cls: cls == tuple[str, ...], lambda value, _: value
)

_DISPLAY_INFO_KEYS = frozenset({"type", "data"})


def _structure_display_infos(items: object, _: object) -> object:
    """display_info items from JSON, an error naming the item's index (display_info[2].data).

    ``data`` may be an object (the wire form) or a string holding one (what earlier versions
    sent and wrote, still found in outbox rows): the model takes both.
    """
    if not isinstance(items, list):
        return items  # the model refuses it, naming display_info
    infos = []
    for index, item in enumerate(items):
        where = f"display_info[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(where, f"must be an object, got {type(item).__name__}")
        unknown = sorted(item.keys() - _DISPLAY_INFO_KEYS)
        if unknown:
            raise ValidationError(f"{where}.{unknown[0]}", "unknown field")
        missing = sorted(_DISPLAY_INFO_KEYS - item.keys())
        if missing:
            raise ValidationError(f"{where}.{missing[0]}", "is required")
        try:
            infos.append(DisplayInfo(type=item["type"], data=item["data"]))
        except ValidationError as exc:
            field = exc.field.replace("display_info", where, 1)
            raise ValidationError(field, str(exc).partition(": ")[2]) from None
    return tuple(infos)


converter.register_structure_hook_func(
    lambda cls: cls == tuple[DisplayInfo, ...], _structure_display_infos
)
# Author first: ExternalResource's structure function captures the Author hook in force.
for _cls in (Author, ExternalResource):
    # A misspelt field name in a JSON line must be an error, not a silently dropped value.
    converter.register_structure_hook(
        _cls, make_dict_structure_fn(_cls, converter, _cattrs_forbid_extra_keys=True)
    )
# FieldValue.value is a JSON value: take it as it comes.
converter.register_structure_hook(FieldValue, lambda obj, _: FieldValue(**obj))
# Any other reader of `converter.unstructure` (a failure file of the CLI) gets display_info data
# as a plain JSON object too.
converter.register_unstructure_hook(
    DisplayInfo, lambda info: {"type": info.type, "data": json.loads(info.data)}
)

# The wire converter embeds display_info data, which the model holds as compact JSON text, as
# the object it is, without serialising it again (orjson.Fragment). An orjson too old to have
# Fragment keeps the hook above: the text is parsed back to an object.
_wire = converter.copy()
if hasattr(orjson, "Fragment"):
    _wire.register_unstructure_hook(
        DisplayInfo, lambda info: {"type": info.type, "data": orjson.Fragment(info.data)}
    )

# Every resource is encoded on its way in, and formatting created_at in Python was half of that
# (~1.2 µs of ~2.5). orjson writes a datetime itself, in C, and with these options writes a UTC
# one exactly as _datetime_text does (YYYY-MM-DDTHH:MM:SSZ, the year zero-padded).
_NATIVE_DATETIME = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS


def _created_at_native(dt: datetime) -> datetime | str:
    # Only a plain datetime in UTC goes to orjson as it is: it refuses subclasses, and the
    # options above give the text above only for UTC. Anything else is formatted as ever.
    if type(dt) is datetime and dt.tzinfo is UTC:
        return dt
    return _datetime_text(dt)


# The wire converter's own function for a resource, but created_at left to orjson. The options
# apply to the whole document, so this runs only for a resource without fields: created_at is
# then the one datetime or time it can hold (a field's value may hide one where the converter
# does not reach, in an Enum's value, say, and must keep the text orjson gives it by default).
_unstructure_native = make_dict_unstructure_fn(
    ExternalResource,
    _wire,
    _cattrs_omit_if_default=True,
    created_at=override(unstruct_hook=_created_at_native),
)


class Encoded(Protocol):
    """Anything that carries a resource's JSON body and its external id."""

    @property
    def body(self) -> bytes: ...

    @property
    def external_id(self) -> str: ...


@attrs.frozen
class EncodedResource:
    """A resource with its JSON encoding, made once when it enters the library."""

    resource: ExternalResource
    body: bytes

    @property
    def external_id(self) -> str:
        return self.resource.external_id


def encode_body(resource: ExternalResource) -> bytes:
    """The JSON object of ``external_resources[]`` for one resource.

    Raises `ValidationError` for what JSON cannot carry (a lone surrogate, an integer beyond
    64 bits), before anything is sent.
    """
    try:
        # The exact type: a subclass may have fields of its own, which the converter's
        # dispatch finds and _unstructure_native would not.
        if (
            type(resource) is ExternalResource
            and not resource.fields
            and not resource.author.fields
        ):
            body = orjson.dumps(_unstructure_native(resource), option=_NATIVE_DATETIME)
        else:
            body = orjson.dumps(_wire.unstructure(resource))
        # orjson hands back its whole 4 KiB write buffer as the bytes object, however short
        # the JSON: a copy of the right size makes a pending resource hold ~250 bytes, not 4 KiB
        # (0.2 µs; with max_pending 10,000 resources, ~40 MB less).
        return memoryview(body).tobytes()
    except orjson.JSONEncodeError as exc:
        raise ValidationError("resource", f"cannot be encoded as JSON: {exc}") from None
    except RecursionError:  # a field's JSON value nested deeper than the converter can walk
        raise ValidationError("resource", "cannot be encoded as JSON: nested too deeply") from None


def encode_resource(resource: ExternalResource) -> EncodedResource:
    """Encode one resource, keeping it beside its body."""
    return EncodedResource(resource, encode_body(resource))


@functools.lru_cache(maxsize=64)  # one pipeline sends many requests with the same head
def _body_head(instance_push_id: str, request_id: str | None) -> bytes:
    head: dict[str, str] = {"instance_push_id": instance_push_id}
    if request_id is not None:
        head["request_id"] = request_id
    return orjson.dumps(head)[:-1] + b',"external_resources":['


_BODY_TAIL = b"]}"


def push_body_overhead(instance_push_id: str, request_id: str | None = None) -> int:
    """Bytes of a push body that are not its resources (commas between them excluded)."""
    return len(_body_head(instance_push_id, request_id)) + len(_BODY_TAIL)


def encode_push_body(
    instance_push_id: str, parts: Sequence[Encoded], request_id: str | None = None
) -> bytes:
    """The push request body: the head, then the pre-encoded resources joined."""
    return (
        _body_head(instance_push_id, request_id)
        + b",".join(part.body for part in parts)
        + _BODY_TAIL
    )


@attrs.frozen
class _WireStatus:
    code: str
    description: str | None = None


@attrs.frozen
class _WireResult:
    external_resource_id: str
    status: _WireStatus


@attrs.frozen
class _WireAnswer:
    results: list[_WireResult]


def decode_push_results(body: bytes, external_ids: Sequence[str]) -> list[PushResult]:
    """Parse a push answer and pair it, by position, with the resources that were sent.

    Never guesses a pairing: an answer that is not JSON, has the wrong number of results, or
    names other external ids than the request's, raises `ProtocolError` for the whole request.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"push answer is not a valid results object: {exc}") from None
    results = _pair_plainly(payload, external_ids)
    if results is not None:
        return results
    # Something is off: the converter and the checks below say exactly what.
    try:
        answer = converter.structure(payload, _WireAnswer)
    except (ValueError, TypeError, KeyError, cattrs.BaseValidationError) as exc:
        raise ProtocolError(
            f"push answer is not a valid results object: {_describe(exc)}"
        ) from None
    if len(answer.results) != len(external_ids):
        raise ProtocolError(
            f"push answer has {len(answer.results)} results for {len(external_ids)} resources"
        )
    results = []
    for position, (sent, got) in enumerate(zip(external_ids, answer.results, strict=True)):
        if got.external_resource_id != sent:
            raise ProtocolError(
                f"push answer result {position} is for {got.external_resource_id!r},"
                f" the request had {sent!r} there"
            )
        # The str structure hook takes values as they come: check the status is text here, so
        # a list or object in it is this request's ProtocolError, not a TypeError escaping.
        code, description = got.status.code, got.status.description
        if not isinstance(code, str):
            raise ProtocolError(
                f"push answer result {position} has a status code that is not a string:"
                f" {type(code).__name__}"
            )
        if description is not None and not isinstance(description, str):
            raise ProtocolError(
                f"push answer result {position} has a status description that is not a"
                f" string: {type(description).__name__}"
            )
        results.append(PushResult(sent, StatusCode.parse(code), description))
    return results


def _pair_plainly(payload: object, external_ids: Sequence[str]) -> list[PushResult] | None:
    """The results of a well-formed answer that pairs exactly, read straight from the JSON
    (an answer per request is on every resource's path); None for anything else, whose exact
    fault `decode_push_results` then names. Accepts exactly what the converter accepts."""
    if type(payload) is not dict:
        return None
    raw = payload.get("results")
    if type(raw) is not list or len(raw) != len(external_ids):
        return None
    codes = _CODES
    results = []
    for sent, got in zip(external_ids, raw, strict=True):
        if type(got) is not dict or got.get("external_resource_id") != sent:
            return None
        status = got.get("status")
        if type(status) is not dict:
            return None
        code = status.get("code")
        description = status.get("description")
        if type(code) is not str or (description is not None and type(description) is not str):
            return None
        results.append(PushResult(sent, codes.get(code, code), description))
    return results


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        # e.g. "required field missing @ $.message; extra fields found (mesage) @ $"
        return "; ".join(cattrs.transform_error(exc))
    return str(exc)[:200]


def resource_from_json(obj: object) -> ExternalResource:
    """Build a resource from a JSON object with the API's own field names.

    Raises `ValidationError` naming the field when a field is missing, unknown or out of limits.
    """
    if not isinstance(obj, dict):
        raise ValidationError("resource", f"must be a JSON object, got {type(obj).__name__}")
    try:
        return converter.structure(obj, ExternalResource)
    except ValidationError:
        raise
    except cattrs.BaseValidationError as exc:
        inner = _first_leaf(exc)
        if isinstance(inner, ValidationError):
            raise inner from None
        raise ValidationError("resource", _describe(exc)) from None
    except (TypeError, KeyError, ValueError) as exc:
        raise ValidationError("resource", str(exc)) from None


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, cattrs.BaseValidationError) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
