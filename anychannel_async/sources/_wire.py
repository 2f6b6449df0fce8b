"""The Redis wire of the stream source: what entries hold, what replies look like, what to write.

This module owns the shapes Redis and the source exchange: an entry's fields and the resource in
them, the replies of XREADGROUP and XAUTOCLAIM (RESP2 lists or RESP3 dicts, bytes or str as
redis-py's ``decode_responses`` says), the fields of a dead letter, the settle script and the
arguments it takes, and which redis-py errors retrying may cure. Everything here is pure: it
must never send a command, wait, log, or hold consumer state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

import attrs
import orjson
import redis.exceptions

from anychannel_async._errors import MalformedEntryError
from anychannel_async._models import ExternalResource
from anychannel_async._serde import resource_from_json

__all__ = [
    "DEAD_SUFFIX",
    "INSTANCE_FIELD",
    "RESOURCE_FIELD",
    "SETTLE_LUA",
    "Claimed",
    "Entry",
    "EntryId",
    "Fields",
    "Outcome",
    "claimed_entries",
    "dead_letter",
    "describe",
    "group_exists",
    "group_missing",
    "instance_push_id_of",
    "is_transient",
    "read_entries",
    "resource_of",
    "settle_args",
]

#: The entry field that holds one external resource as JSON, with the API's field names.
RESOURCE_FIELD = "resource"
#: The entry field that names the account (its instance push id), for a consumer pushing to
#: many accounts through a `PushPool`.
INSTANCE_FIELD = "instance_push_id"
#: Dead letters of stream NAME go to the stream NAME + DEAD_SUFFIX.
DEAD_SUFFIX = ":dead"

# redis-py gives bytes, or str with decode_responses=True; both are accepted throughout.
EntryId = bytes | str
Fields = Mapping[bytes | str, bytes | str]
#: An entry as delivered: its id and fields (None or empty once deleted with XDEL).
Entry = tuple[EntryId, Fields | None]

# KEYS: the stream, its dead stream. ARGV: the group, then per entry its id, the number n of
# dead-letter arguments (0 for a plain ack) and those n field/value arguments. A dead letter is
# written only for an entry still pending in the group, and before its XACK: should the XADD
# fail (the dead key holds another type), the script stops with the entry still pending, never
# acked without its dead letter. An entry another consumer settled first is not dead-lettered
# too, and a script retried after a lost reply adds nothing twice. Redis does not roll a script
# back: entries earlier in the call stay settled when a later one fails. A missing group
# (NOGROUP) means nothing is pending, as XACK itself answers 0 then.
SETTLE_LUA = """
local acked = 0
local i = 2
while i <= #ARGV do
  local id = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  if n > 0 then
    local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    if type(pending) == 'table' and pending.err then
      if string.sub(pending.err, 1, 7) ~= 'NOGROUP' then
        return redis.error_reply(pending.err)
      end
      pending = {}
    end
    if #pending > 0 then
      redis.call('XADD', KEYS[2], '*', unpack(ARGV, i + 2, i + 1 + n))
      acked = acked + redis.call('XACK', KEYS[1], ARGV[1], id)
    end
  else
    acked = acked + redis.call('XACK', KEYS[1], ARGV[1], id)
  end
  i = i + 2 + n
end
return acked
"""


@attrs.frozen
class Outcome:
    """A final outcome waiting to be written: an ack, or a dead letter and an ack."""

    entry_id: EntryId
    #: Field/value arguments of the dead letter; empty for a plain ack.
    dead_letter: Sequence[bytes | str]


def settle_args(group: str, outcomes: Sequence[Outcome]) -> list[bytes | str | int]:
    """The ARGV of one SETTLE_LUA call for these outcomes."""
    args: list[bytes | str | int] = [group]
    for outcome in outcomes:
        args += [outcome.entry_id, len(outcome.dead_letter), *outcome.dead_letter]
    return args


def describe(error: BaseException) -> str:
    """An error as dead letters and logs show it: its type, then its message."""
    return f"{type(error).__name__}: {error}"


def _field(fields: Fields, name: str) -> bytes | str | None:
    value = fields.get(name.encode())
    return fields.get(name) if value is None else value


def resource_of(fields: Fields | None) -> ExternalResource:
    """The entry's resource; raises MalformedEntryError or ValidationError."""
    if not fields:
        raise MalformedEntryError("the entry is empty: it was deleted from the stream (XDEL)")
    raw = _field(fields, RESOURCE_FIELD)
    if raw is None:
        raise MalformedEntryError(f"the entry has no {RESOURCE_FIELD!r} field")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedEntryError(f"the {RESOURCE_FIELD!r} field is not JSON: {exc}") from None
    return resource_from_json(obj)


def instance_push_id_of(fields: Fields | None) -> str:
    """The entry's instance push id (a consumer of many accounts'); raises
    MalformedEntryError."""
    raw = _field(fields, INSTANCE_FIELD) if fields else None
    if raw is None:
        raise MalformedEntryError(
            f"the entry has no {INSTANCE_FIELD!r} field: a consumer of many accounts needs it"
        )
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            raise MalformedEntryError(f"the {INSTANCE_FIELD!r} field is not UTF-8") from None
    if not raw:
        raise MalformedEntryError(f"the {INSTANCE_FIELD!r} field is empty")
    return raw


def dead_letter(entry_id: EntryId, fields: Fields | None, error: BaseException) -> Outcome:
    """The entry's dead letter: its id, the error, and the resource as it came, with its
    instance push id when the entry has one (so the letter can be produced again as is)."""
    letter: list[bytes | str] = ["id", entry_id, "error", describe(error)]
    raw = _field(fields, RESOURCE_FIELD) if fields else None
    account = _field(fields, INSTANCE_FIELD) if fields else None
    if raw is not None:
        if account is not None:
            letter += [INSTANCE_FIELD, account]
        letter += [RESOURCE_FIELD, raw]
    else:  # keep whatever the entry held instead, so nothing of it is lost
        entry = {
            (k.decode(errors="replace") if isinstance(k, bytes) else k): (
                v.decode(errors="replace") if isinstance(v, bytes) else v
            )
            for k, v in (fields or {}).items()
        }
        letter += ["fields", orjson.dumps(entry)]
    return Outcome(entry_id, letter)


def read_entries(reply: object) -> list[Entry]:
    """The entries of an XREADGROUP reply for one stream (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    # RESP2: [[stream, entries]]; RESP3: {stream: [entries]}.
    streams = list(reply.items()) if isinstance(reply, dict) else cast(list[Any], reply)
    found: list[Entry] = []
    for _name, messages in streams:
        if messages and isinstance(messages[0], list) and len(messages) == 1:
            messages = messages[0]
        found.extend((entry_id, fields) for entry_id, fields in messages)
    return found


class Claimed(NamedTuple):
    """An XAUTOCLAIM reply."""

    #: Where the next call starts; None once the scan of the pending entries went round.
    next_start: EntryId | None
    entries: list[Entry]
    #: Pending entries found deleted from the stream: Redis dropped them from the group.
    deleted: int


def claimed_entries(reply: Sequence[Any]) -> Claimed:
    """Read an XAUTOCLAIM reply: [cursor, entries] before Redis 7, [cursor, entries, deleted]."""
    cursor, entries = reply[0], reply[1]
    deleted = len(reply[2]) if len(reply) > 2 and reply[2] else 0
    return Claimed(None if cursor in ("0-0", b"0-0") else cursor, list(entries), deleted)


def is_transient(exc: BaseException) -> bool:
    """Connection trouble that retrying the same command may cure."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return False  # subclasses of ConnectionError, but retrying will not change the answer
    return isinstance(
        exc,
        redis.exceptions.ConnectionError  # includes BusyLoadingError: restarting, loading data
        | redis.exceptions.TimeoutError
        | redis.exceptions.ReadOnlyError  # a replica promoted during failover
        | redis.exceptions.TryAgainError
        | redis.exceptions.ClusterDownError
        | OSError,
    )


def group_missing(exc: BaseException) -> bool:
    """Redis answered NOGROUP: the consumer group (or the stream) does not exist."""
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith("NOGROUP")


def group_exists(exc: BaseException) -> bool:
    """Redis answered BUSYGROUP to XGROUP CREATE: the group is there already."""
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith("BUSYGROUP")
