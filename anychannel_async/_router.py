"""Answers to outcomes: which futures resolve, which fail, which are pushed again.

An answer is either positional results, already paired with their resources
(`_serde.decode_push_results` refuses any that do not pair exactly), or a request-level error.
This module decides what each means for each resource, with `_errors.verdict` as the one
answer to "final, unknown, or retry?", and holds the one attempts check. It changes no queue
and starts nothing: the pipeline applies the decision.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ._batcher import Item
from ._errors import (
    AnyChannelError,
    HaltedError,
    OutcomeUnknownError,
    ProcessingError,
    ResourceError,
    Verdict,
    copies,
    verdict,
)
from ._models import PushResult, StatusCode

__all__ = ["Routed", "route", "route_error"]


@attrs.define
class Routed:
    """What one answer means for each resource of its request."""

    resolved: list[tuple[Item, PushResult]] = attrs.Factory(list)
    failed: list[tuple[Item, AnyChannelError]] = attrs.Factory(list)
    #: Resources to push again, in their original order: halted, rate limited, or unknown.
    again: list[Item] = attrs.Factory(list)
    #: Resources whose parent Zendesk could not locate: the pipeline knows whether it is coming.
    orphans: list[tuple[Item, PushResult]] = attrs.Factory(list)

    def retry(self, item: Item, max_attempts: int, spent: AnyChannelError) -> None:
        """Push item again, unless it already went ``max_attempts`` times without an outcome;
        then fail it with ``spent``. The one attempts check."""
        item.attempts += 1
        if item.attempts > max_attempts:
            self.failed.append((item, spent))
        else:
            self.again.append(item)


def route(items: Sequence[Item], results: Sequence[PushResult], *, max_attempts: int) -> Routed:
    """Sort each resource of a request by the code of its result."""
    routed = Routed()
    for item, result in zip(items, results, strict=True):
        if item.future.done():  # cancelled by its owner while in flight: nothing to tell
            continue
        code = result.code
        if code is StatusCode.SUCCESS or code is StatusCode.ALREADY_IMPORTED:
            routed.resolved.append((item, result))
        elif code is StatusCode.HALTED:
            # Nothing happened to a halted resource: Zendesk stopped before it. Safe to resend.
            spent = HaltedError(item.external_id, f"halted {item.attempts + 1} times", result)
            routed.retry(item, max_attempts, spent)
        elif code is StatusCode.COULD_NOT_LOCATE_PARENT:
            routed.orphans.append((item, result))
        elif code is StatusCode.PROCESSING_ERROR:
            detail = result.description or "no description"
            routed.failed.append(
                (item, ProcessingError(item.external_id, f"processing_error: {detail}", result))
            )
        else:
            routed.failed.append(
                (item, ResourceError(item.external_id, f"unknown status code {code!r}", result))
            )
    return routed


def route_error(items: Sequence[Item], error: AnyChannelError, *, max_attempts: int) -> Routed:
    """What a request-level error means for each resource of its request.

    An unknown outcome (lost, garbled, timed out) or a 429 is never a failure by itself: the
    resources go again, and fail only once ``max_attempts`` pushes told nothing (an unknown
    one with `OutcomeUnknownError`). A definite refusal fails them all, each with its own copy.
    """
    routed = Routed()
    live = [item for item in items if not item.future.done()]
    fate = verdict(error)
    if fate is Verdict.UNKNOWN:
        for item in live:
            routed.retry(
                item, max_attempts, OutcomeUnknownError(item.external_id, item.attempts + 1, error)
            )
    elif fate is Verdict.RETRY:
        for item, own in zip(live, copies(error, len(live)), strict=True):
            routed.retry(item, max_attempts, own)
    else:
        routed.failed.extend(zip(live, copies(error, len(live)), strict=True))
    return routed
