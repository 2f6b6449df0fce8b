"""`anychannel-async produce FILE|-`: append JSON Lines of resources to a Redis stream.

Each valid line becomes one entry whose ``resource`` field holds the line's JSON object,
re-serialised compactly. XADDs go out pipelined, a chunk per round trip, so a large file costs
a few hundred round trips rather than one per line; memory stays flat (lines are read in
bounded chunks). A line that is not a valid resource is reported on stderr with its number
and skipped, and the exit status is 1.

A line ``{"instance_push_id": ID, "resource": {...}}`` (the input of ``push --accounts``) becomes
an entry with both fields, for ``consume --accounts``.

With ``--shards N`` the entries go to ``STREAM:0`` ... ``STREAM:N-1``, each conversation to one
stream by a stable hash of its key (see `Shards`), so that ``consume --shards N`` reads each
conversation in order from one stream.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import sys
import zlib
from typing import IO, TYPE_CHECKING

import orjson

from anychannel_async._errors import ValidationError
from anychannel_async._serde import resource_from_json

from ._common import UsageError
from ._consume import NEED_REDIS, redis_client
from ._ingest import decode_line, read_chunks

if TYPE_CHECKING:  # redis-py is an optional extra: import it only where it is used
    from redis.typing import EncodableT, FieldT

__all__ = ["Shards", "add_parser", "run", "shard_of"]

# XADDs per pipelined round trip.
_CHUNK = 500


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "produce",
        help="append JSON Lines of external resources to a Redis stream",
        description=(
            "Append one stream entry per JSON line, its 'resource' field holding the line."
            ' A line {"instance_push_id": ID, "resource": {...}} gives an entry with both'
            " fields (for consume --accounts). Invalid lines are reported with their number"
            " and skipped (exit status 1)."
        ),
    )
    parser.add_argument("file", help="a JSON Lines file, or - for standard input")
    parser.add_argument("--redis", required=True, metavar="URL", help="redis://host:port/db")
    parser.add_argument("--stream", required=True, help="the stream to append to")
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        metavar="N",
        help=(
            "append to N streams, STREAM:0 ... STREAM:N-1, each conversation to one of them by"
            " a stable hash of its key (its thread_id, else its root post's external_id);"
            " 1 appends to STREAM itself (default 1)"
        ),
    )
    parser.add_argument("--quiet", action="store_true", help="no summary")


def run(args: argparse.Namespace) -> int:
    """Append the file's resources; 0 when every line was appended, 1 when some were skipped."""
    if args.shards < 1:
        raise UsageError(f"--shards must be at least 1, got {args.shards}")
    with contextlib.ExitStack() as files:
        # Binary: each line is decoded on its own, so one that is not UTF-8 fails alone.
        source = (
            sys.stdin.buffer if args.file == "-" else files.enter_context(open(args.file, "rb"))
        )
        appended, skipped = asyncio.run(_produce(args, source))
    if not args.quiet:
        where = args.stream if args.shards == 1 else f"{args.stream}:0..{args.shards - 1}"
        print(f"appended {appended} entries to {where}; skipped {skipped} lines")
    return 1 if skipped else 0


async def _produce(args: argparse.Namespace, source: IO[bytes]) -> tuple[int, int]:
    try:
        import redis.exceptions
    except ImportError:
        raise UsageError(NEED_REDIS) from None
    from anychannel_async.sources import INSTANCE_FIELD, RESOURCE_FIELD, SourceError

    conn = redis_client(args.redis, read_timeout=30.0)
    shards = Shards(args.stream, args.shards)
    appended = skipped = 0
    try:
        batch = conn.pipeline(transaction=False)
        async for lines in read_chunks(source):
            for number, raw in lines:
                try:
                    text = decode_line(number, raw)
                except UnicodeDecodeError as exc:
                    print(f"line {number}: not UTF-8: {exc}; skipped", file=sys.stderr)
                    skipped += 1
                    continue
                if not text.strip():
                    continue
                try:
                    obj = orjson.loads(text)
                    account, resource = _split(obj)
                    resource_from_json(resource)  # refuse here what consumers would dead-letter
                except (orjson.JSONDecodeError, ValidationError) as exc:
                    kind = "not JSON" if isinstance(exc, orjson.JSONDecodeError) else "invalid"
                    print(f"line {number}: {kind}: {exc}; skipped", file=sys.stderr)
                    skipped += 1
                    continue
                fields: dict[FieldT, EncodableT] = {}
                if account is not None:
                    fields[INSTANCE_FIELD] = account
                fields[RESOURCE_FIELD] = orjson.dumps(resource)
                batch.xadd(shards.stream_for(resource), fields)
                if len(batch) >= _CHUNK:
                    appended += len(await batch.execute())
        if len(batch):
            appended += len(await batch.execute())
    except redis.exceptions.RedisError as exc:
        # No retry: a chunk whose answer was lost may have landed, and sending it again would
        # only add duplicates (harmless downstream, but not silent). Say how far it got.
        raise SourceError(
            f"after {appended} entries appended: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        await conn.aclose()
    return appended, skipped


# An account's line: its instance push id and its resource (as `push --accounts` reads it). No
# resource has these fields, so a line holding just them is never a resource.
_ACCOUNT_KEYS = frozenset({"instance_push_id", "resource"})


def _split(obj: object) -> tuple[str | None, object]:
    """The line's instance push id (None for a bare resource) and resource; ValidationError
    for an account's line whose instance push id is not a non-empty string."""
    if not isinstance(obj, dict) or obj.keys() != _ACCOUNT_KEYS:
        return None, obj
    account = obj["instance_push_id"]
    if not isinstance(account, str) or not account:
        raise ValidationError("instance_push_id", f"must be a non-empty string, got {account!r}")
    return account, obj["resource"]


# Roots remembered by `Shards`: a reply to a reply finds its conversation's root among the
# last this many resources; memory stays flat (about 200 bytes each) however long the input.
_ROOTS = 100_000


def shard_of(key: str, shards: int) -> int:
    """The shard of a conversation's key: crc32, stable across processes and machines (Python's
    ``hash()`` of a string changes with each process), as the README's ``stream_for``."""
    return zlib.crc32(key.encode()) % shards


class Shards:
    """Which of N streams each resource goes to: the one of its conversation's key, so that a
    conversation stays on one stream and `consume` reads it in order.

    The key is ``thread_id`` when set; else the external_id of the conversation's root post: a
    post is its own root, a reply's root is its parent's (remembered for the last `_ROOTS`
    resources), or its parent's external_id when the parent was not seen here (a direct reply
    to a root post, the common case, lands with its post all the same).
    """

    def __init__(self, stream: str, shards: int) -> None:
        self._stream = stream
        self._shards = shards
        self._roots: collections.OrderedDict[str, str] = collections.OrderedDict()

    def stream_for(self, resource: object) -> str:
        """The stream of a resource (a JSON object already checked as a resource)."""
        if self._shards == 1:
            return self._stream
        assert isinstance(resource, dict)
        thread_id, parent_id = resource.get("thread_id"), resource.get("parent_id")
        if isinstance(thread_id, str):
            key = thread_id
        elif isinstance(parent_id, str):
            key = self._roots.get(parent_id, parent_id)
        else:
            key = str(resource["external_id"])
        self._roots[str(resource["external_id"])] = key
        self._roots.move_to_end(str(resource["external_id"]))
        if len(self._roots) > _ROOTS:
            self._roots.popitem(last=False)
        return f"{self._stream}:{shard_of(key, self._shards)}"
