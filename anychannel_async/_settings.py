"""PipelineSettings: every setting of a `PushPipeline`, its default, its unit and its range.

The one place a pipeline setting is written down: the pipeline reads it, the command line
builds its flags from it (name, default, help), and a bad value is refused here with a
`ConfigurationError` that names it, before anything starts.
"""

from __future__ import annotations

import math
import os
from typing import Any, TypedDict

import attrs

from ._errors import ConfigurationError

__all__ = ["MAX_RESOURCES_PER_PUSH", "PipelineOptions", "PipelineSettings", "settings_of"]

#: Zendesk's JSON schema for push: at most 256 external_resources in one request.
MAX_RESOURCES_PER_PUSH = 256


def _count(ceiling: int | None = None) -> Any:
    def check(_: object, attribute: attrs.Attribute[int], value: object) -> None:
        if type(value) is not int or value < 1 or (ceiling is not None and value > ceiling):
            limit = f"1..{ceiling}" if ceiling is not None else ">= 1"
            raise ConfigurationError(f"{attribute.name} must be an int {limit}, got {value!r}")

    return check


def _seconds(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    if type(value) not in (int, float) or not 0 <= value < math.inf:  # type: ignore[operator]
        raise ConfigurationError(
            f"{attribute.name} must be a finite number of seconds >= 0, got {value!r}"
        )


def _budget(_: object, attribute: attrs.Attribute[float | None], value: object) -> None:
    if value is not None and (type(value) not in (int, float) or not 0 < value < math.inf):  # type: ignore[operator]
        raise ConfigurationError(f"{attribute.name} must be a finite number > 0, got {value!r}")


def _path(
    _: object, attribute: attrs.Attribute[str | os.PathLike[str] | None], value: object
) -> None:
    if value is not None and (not isinstance(value, str | os.PathLike) or not os.fspath(value)):
        # SQLite would open a private temporary database: nothing would be durable.
        raise ConfigurationError(f"{attribute.name} must be a non-empty file path, got {value!r}")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@attrs.frozen(kw_only=True)
class PipelineSettings:
    """How a `PushPipeline` batches, paces and gives up; every field keyword-only, checked."""

    #: Resources per push request (default 100; at most 256, Zendesk's schema limit).
    max_batch_size: int = attrs.field(
        default=100,
        validator=_count(MAX_RESOURCES_PER_PUSH),
        metadata=_help("resources per request (default 100, at most 256)"),
    )
    #: Bytes per request body, measured on the serialised JSON (default 4 MiB). A resource
    #: too large for it alone is refused by ``submit``.
    max_batch_bytes: int = attrs.field(
        default=4 * 1024 * 1024,
        validator=_count(),
        metadata=_help("bytes per request body (default 4 MiB)"),
    )
    #: Seconds an idle pipeline waits for a batch to fill (default 0.05). Under back-pressure
    #: (every request slot busy, rate budget spent) batches fill regardless.
    max_latency: float = attrs.field(
        default=0.05,
        validator=_seconds,
        metadata=_help("seconds a batch waits to fill when idle (default 0.05)"),
    )
    #: Push requests at once (default 4).
    max_in_flight: int = attrs.field(
        default=4, validator=_count(), metadata=_help("requests at once (default 4)")
    )
    #: Resources accepted and not yet resolved; ``submit`` waits for room (default 10,000).
    max_pending: int = attrs.field(
        default=10_000,
        validator=_count(),
        metadata=_help("resources accepted and not yet resolved (default 10000)"),
    )
    #: Pushes of a resource that may tell nothing definite (halted, rate limited, or an
    #: unknown outcome) before it fails: with `HaltedError`, `RateLimitedError` or
    #: `OutcomeUnknownError`, on the push after the last one allowed (default 5).
    max_attempts: int = attrs.field(
        default=5,
        validator=_count(),
        metadata=_help("pushes without a definite outcome before a resource fails (default 5)"),
    )
    #: Seconds to keep retrying a resource whose parent Zendesk cannot locate, when that
    #: parent is not pending here (default 30).
    parent_timeout: float = attrs.field(
        default=30.0,
        validator=_seconds,
        metadata=_help("seconds a reply waits for a parent that is not pending (default 30)"),
    )
    #: Pace requests evenly to this many per minute; None (default) learns the budget from
    #: Zendesk's ``X-Rate-Limit`` header. The budget is the account's, shared by every
    #: pipeline on the same client.
    max_requests_per_minute: float | None = attrs.field(
        default=None,
        validator=_budget,
        metadata=_help("pace requests to this budget (default: learn it from Zendesk)"),
    )
    #: Seconds ``close`` waits for pending resources before failing them with `ClosedError`
    #: (default 60).
    close_timeout: float = attrs.field(
        default=60.0,
        validator=_seconds,
        metadata=_help("seconds close waits for what is pending (default 60)"),
    )
    #: Path of a SQLite outbox (default None: memory only); see `PushPipeline`.
    outbox: str | os.PathLike[str] | None = attrs.field(
        default=None,
        validator=_path,
        metadata=_help("a SQLite outbox: every accepted resource is kept until final"),
    )


class PipelineOptions(TypedDict, total=False):
    """`PipelineSettings`' fields as keyword arguments of `PushPipeline` (a test keeps the
    two lists equal)."""

    max_batch_size: int
    max_batch_bytes: int
    max_latency: float
    max_in_flight: int
    max_pending: int
    max_attempts: int
    parent_timeout: float
    max_requests_per_minute: float | None
    close_timeout: float
    outbox: str | os.PathLike[str] | None


def settings_of(settings: PipelineSettings | None, options: PipelineOptions) -> PipelineSettings:
    """The settings given, with the keyword arguments over them; anything else is refused."""
    if settings is not None and not isinstance(settings, PipelineSettings):
        raise ConfigurationError(
            f"settings must be a PipelineSettings, got {type(settings).__name__}"
        )
    names = {field.name for field in attrs.fields(PipelineSettings)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ConfigurationError(f"unknown pipeline settings: {', '.join(unknown)}")
    if settings is not None and not options:
        return settings  # frozen: shared as it is (a pool's pipelines all hold its own)
    return attrs.evolve(settings or PipelineSettings(), **options)
