"""Hypothesis strategies for valid models, shared by the serde and wire-schema tests.

Every value drawn is one the models accept. Where Zendesk's schema is stricter than the models
(file_urls as https URLs of at most 511 characters, a field id string of 1..255, an ASCII
author external_id, parent_id and thread_id), the strategies draw only what the schema allows
too, so a drawn resource is one a careful caller would push.
"""

from __future__ import annotations

import json
import string
from datetime import UTC
from typing import Any

from hypothesis import strategies as st

from anychannel_async import Author, DisplayInfo, ExternalResource, FieldValue

__all__ = ["authors", "display_infos", "field_values", "json_objects", "resources"]


def _text(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(min_size=min_size, max_size=max_size)


def _optional_text(max_size: int) -> st.SearchStrategy[str | None]:
    # Present means 1..max_size characters: the schema refuses an empty string.
    return st.none() | _text(max_size, min_size=1)


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json_values: st.SearchStrategy[Any] = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
#: JSON objects, as display_info data holds them.
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(max_size=10), _json_values, max_size=4
)

field_values = st.builds(
    FieldValue,
    id=_text(255, min_size=1) | st.integers(-(2**63), 2**63 - 1),
    value=st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # JSON numbers Zendesk (and orjson) can hold
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50)
    | st.lists(st.text(max_size=20), max_size=3),
)

_ascii_ids = st.text(alphabet=string.printable, max_size=255)

authors = st.builds(
    Author,
    external_id=st.text(alphabet=string.printable, min_size=1, max_size=255),
    name=_optional_text(255),
    image_url=_optional_text(255),
    locale=_optional_text(255),
    fields=st.lists(field_values, max_size=3),
)

# data as a mapping, or as a string holding a JSON object (spaced out, as a person writes it).
display_infos = st.builds(
    DisplayInfo,
    type=_text(255, min_size=1),
    data=json_objects | json_objects.map(lambda obj: json.dumps(obj, indent=1)),
)

_https_urls = _text(100).map(lambda path: "https://example.com/" + path)


@st.composite
def resources(draw: st.DrawFn) -> ExternalResource:
    """A valid resource; every optional field is sometimes set, sometimes left out."""
    parent_id, thread_id = draw(
        st.one_of(
            st.tuples(st.none(), st.none()),
            st.tuples(st.text(alphabet=string.printable, max_size=511), st.none()),
            st.tuples(st.none(), _ascii_ids),
        )
    )
    external_id = draw(st.text(alphabet=string.printable, min_size=1, max_size=255))
    if parent_id == external_id:  # a resource cannot be its own parent
        parent_id = None
    values: dict[str, Any] = {
        "external_id": external_id,
        "message": draw(_text(65_535, min_size=1)),
        "created_at": draw(
            st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))
        ),
        "author": draw(authors),
        "html_message": draw(_optional_text(65_535)),
        "parent_id": parent_id,
        "thread_id": thread_id,
        "internal_note": draw(st.none() | st.booleans()),
        "display_info": draw(st.lists(display_infos, max_size=3)),
        "allow_channelback": draw(st.none() | st.booleans()),
        "fields": draw(st.lists(field_values, max_size=3)),
        "file_urls": draw(st.lists(_https_urls, max_size=10)),
    }
    # Any-typed on purpose: the attrs plugin types the tuple-converted collection fields as
    # Iterable[_T_co], so passing lists directly fails mypy --strict.
    return ExternalResource(**values)
