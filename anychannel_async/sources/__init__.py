"""Sources: feed a `PushPipeline` from a message engine, acknowledging only final outcomes.

Each source lives in its own private module and needs an optional extra; importing this package
without it raises an `ImportError` that names the extra to install.
"""

from ._redis import (
    DEAD_SUFFIX,
    RESOURCE_FIELD,
    ConsumeStats,
    MalformedEntryError,
    SourceError,
    consume_stream,
)

__all__ = [
    "DEAD_SUFFIX",
    "RESOURCE_FIELD",
    "ConsumeStats",
    "MalformedEntryError",
    "SourceError",
    "consume_stream",
]
