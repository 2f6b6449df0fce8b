"""Sources: feed a `PushPipeline` (or a `PushPool`) from a message engine, acknowledging only
final outcomes.

Each source needs an optional extra; importing this package without it raises an `ImportError`
that names the extra to install.

Redis Streams is the one source. It owns the life of a stream entry from the moment the consumer
group delivers it to the moment its outcome is written back to Redis: XACK once the resource is
imported (success or already_imported); XADD to ``STREAM:dead`` and XACK, in one Lua script so
neither happens without the other, once the resource can never be imported. It never
acknowledges an entry whose outcome is not final. Redis or Zendesk going away leaves entries
pending, and pending entries come back: re-read by their consumer at start, claimed by any
consumer (XAUTOCLAIM) once idle for ``claim_idle`` seconds. Redelivery is safe because Zendesk
answers already_imported for an external_id it has seen.

An entry's path, module by module:

- ``_wire``: what an entry holds and what Redis replies look like; dead-letter fields, the
  settle script, which redis-py errors are worth retrying. Pure.
- ``_link``: the one door to Redis: commands retried while Redis is away, redis-py's
  exceptions mapped to `SourceError`, the consumer group created again if it vanished.
- ``_consumer``: `consume_stream`: read, claim, hold and renew entries, submit their
  resources, judge each outcome by `verdict`, pause, shut down in order.
- ``_outcomes``: the outcome writer, the only code that acks or dead-letters an entry; its
  queue waits in memory while Redis is away.
"""

try:
    import redis.asyncio  # noqa: F401 - imported here to name the extra when it is missing
except ImportError as exc:  # pragma: no cover - exercised by the CLI test in a clean process
    raise ImportError(
        "the Redis Streams source needs redis-py: pip install 'anychannel-async[redis]'"
    ) from exc

from anychannel_async._errors import MalformedEntryError, SourceError

from ._consumer import ConsumeStats, consume_stream
from ._wire import DEAD_SUFFIX, INSTANCE_FIELD, RESOURCE_FIELD

__all__ = [
    "DEAD_SUFFIX",
    "INSTANCE_FIELD",
    "RESOURCE_FIELD",
    "ConsumeStats",
    "MalformedEntryError",
    "SourceError",
    "consume_stream",
]
