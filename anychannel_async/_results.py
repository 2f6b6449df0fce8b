"""Zendesk's answer for one pushed resource: its status code and result.

No package imports: errors, models and the router all read these, and none of them is read here.
"""

from __future__ import annotations

import enum

import attrs

__all__ = ["CODES", "IMPORTED", "PushResult", "StatusCode"]


class StatusCode(enum.StrEnum):
    """What Zendesk did with one pushed resource."""

    SUCCESS = "success"
    ALREADY_IMPORTED = "already_imported"
    COULD_NOT_LOCATE_PARENT = "could_not_locate_parent_external_resource"
    PROCESSING_ERROR = "processing_error"
    HALTED = "halted"

    @classmethod
    def parse(cls, raw: str) -> StatusCode | str:
        """The code for raw, or raw itself when Zendesk sends a code this version does not know."""
        return CODES.get(raw, raw)


#: Each code's text to its `StatusCode`.
CODES: dict[str, StatusCode] = {code.value: code for code in StatusCode}


#: The codes that mean Zendesk holds the resource: the one answer to "was it imported?" (a
#: `StatusCode` is a `str`, so an outcome tallied by name is looked up here as well).
IMPORTED: frozenset[str] = frozenset({StatusCode.SUCCESS, StatusCode.ALREADY_IMPORTED})


@attrs.frozen
class PushResult:
    """Zendesk's answer for one resource of a push, in the position of that resource.

    ``code`` is a `StatusCode`, or the raw string of a code this version does not know.
    """

    external_id: str
    code: StatusCode | str
    description: str | None = None

    @property
    def imported(self) -> bool:
        """True when Zendesk holds the resource: ``success`` or ``already_imported``."""
        return self.code in IMPORTED
