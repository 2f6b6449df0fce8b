"""Reading Zendesk's event callbacks: ``{"events": [...]}``, checked, into plain records.

Pure: no I/O and no signature checks (`_app` checks each event's metadata and finds its
account). A body that is not the documented shape is refused as a whole, naming what is wrong;
an event's metadata is never quoted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import attrs

from anychannel_async._errors import ValidationError

__all__ = ["ACTIVATE", "DEACTIVATE", "DESTROY", "INSTANCE_EVENTS", "RawEvent", "parse_events"]

DESTROY = "destroy_integration_instance"
DEACTIVATE = "deactivate_integration_instance"
ACTIVATE = "activate_integration_instance"
#: The events about one instance: their data must carry its metadata, which must verify.
INSTANCE_EVENTS = frozenset({"create_integration_instance", DESTROY, ACTIVATE, DEACTIVATE})
_TEXT_FIELDS = ("timestamp", "subdomain", "integration_name", "integration_id")
# Enough for any real batch; a body of millions of events is not Zendesk's.
_EVENTS_MAX = 1_000


@attrs.frozen
class RawEvent:
    """One event as sent; ``metadata`` taken out of ``data``."""

    type_id: str
    fields: Mapping[str, str | None]
    data: Mapping[str, object]
    metadata: str | None = attrs.field(repr=False)
    error: str | None


def parse_events(body: bytes) -> list[RawEvent]:
    """The events of a callback body; `ValidationError` naming the field when it is not
    ``{"events": [{"type_id": ..., "data": {...}, ...}, ...]}``."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise ValidationError("body", "is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise ValidationError("events", "must be a list in a JSON object")
    items = payload["events"]
    if len(items) > _EVENTS_MAX:
        raise ValidationError("events", f"{len(items)} items exceed the limit of {_EVENTS_MAX}")
    events = []
    for index, item in enumerate(items):
        where = f"events[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(where, "must be an object")
        type_id = item.get("type_id")
        if not isinstance(type_id, str) or not type_id:
            raise ValidationError(f"{where}.type_id", "must be a non-empty string")
        fields: dict[str, str | None] = {}
        for name in _TEXT_FIELDS:
            value = item.get(name)
            fields[name] = None if value is None else str(value)
        data = item.get("data", {})
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValidationError(f"{where}.data", "must be an object")
        data = dict(data)
        metadata = data.pop("metadata", None)
        if metadata is not None and not isinstance(metadata, str):
            raise ValidationError(f"{where}.data.metadata", "must be a string")
        error = item.get("error")
        if error is not None and not isinstance(error, str):
            error = json.dumps(error)
        events.append(RawEvent(type_id, fields, data, metadata, error))
    return events
