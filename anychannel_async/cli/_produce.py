"""`anychannel-async produce FILE|-`: append JSON Lines of resources to a Redis stream.

Each valid line becomes one entry whose ``resource`` field holds the line's JSON object,
re-serialised compactly. XADDs go out pipelined, a chunk per round trip, so a large file costs
a few hundred round trips rather than one per line; memory stays flat (lines are read in
bounded chunks). A line that is not a valid resource is reported on stderr with its number
and skipped, and the exit status is 1.

A line ``{"instance_push_id": ID, "resource": {...}}`` (the input of ``push --accounts``) becomes
an entry with both fields, for ``consume --accounts``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import IO, TYPE_CHECKING

import orjson

from anychannel_async._errors import ValidationError
from anychannel_async._serde import resource_from_json

from ._common import UsageError
from ._consume import NEED_REDIS, redis_client
from ._ingest import decode_line, read_chunks

if TYPE_CHECKING:  # redis-py is an optional extra: import it only where it is used
    from redis.typing import EncodableT, FieldT

__all__ = ["add_parser", "run"]

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
    parser.add_argument("--quiet", action="store_true", help="no summary")


def run(args: argparse.Namespace) -> int:
    """Append the file's resources; 0 when every line was appended, 1 when some were skipped."""
    with contextlib.ExitStack() as files:
        # Binary: each line is decoded on its own, so one that is not UTF-8 fails alone.
        source = (
            sys.stdin.buffer if args.file == "-" else files.enter_context(open(args.file, "rb"))
        )
        appended, skipped = asyncio.run(_produce(args, source))
    if not args.quiet:
        print(f"appended {appended} entries to {args.stream}; skipped {skipped} lines")
    return 1 if skipped else 0


async def _produce(args: argparse.Namespace, source: IO[bytes]) -> tuple[int, int]:
    try:
        import redis.exceptions
    except ImportError:
        raise UsageError(NEED_REDIS) from None
    from anychannel_async.sources import INSTANCE_FIELD, RESOURCE_FIELD, SourceError

    conn = redis_client(args.redis, read_timeout=30.0)
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
                batch.xadd(args.stream, fields)
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
