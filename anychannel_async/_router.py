"""Positional results to outcomes: which futures resolve, which fail, which go again.

Results arrive already paired with their resources by position (`_serde.decode_push_results`
refuses any answer that does not pair exactly). This module decides what each code means for
its resource; it changes no queue and starts nothing, the pipeline applies the decision.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import attrs

from ._batcher import Item
from ._errors import AnyChannelError, HaltedError, ProcessingError, ResourceError
from ._models import PushResult, StatusCode

__all__ = ["Routed", "copies", "route"]


@attrs.define
class Routed:
    """What one answer means for each resource of its request."""

    resolved: list[tuple[Item, PushResult]] = attrs.Factory(list)
    failed: list[tuple[Item, AnyChannelError]] = attrs.Factory(list)
    #: Halted resources to push again, in their original order.
    halted: list[Item] = attrs.Factory(list)
    #: Resources whose parent Zendesk could not locate: the pipeline knows whether it is coming.
    orphans: list[tuple[Item, PushResult]] = attrs.Factory(list)


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
            item.halts += 1
            if item.halts > max_attempts:
                routed.failed.append(
                    (item, HaltedError(item.external_id, f"halted {item.halts} times", result))
                )
            else:
                routed.halted.append(item)
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


def copies(exc: AnyChannelError, count: int) -> list[AnyChannelError]:
    """count distinct copies of a request's error: each future gets its own (aiokafka #246),
    so one caller adding a note or traceback to it cannot change what another one sees."""
    return [copy.copy(exc) for _ in range(count)]
