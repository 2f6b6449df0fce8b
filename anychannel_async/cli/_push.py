"""`anychannel-async push FILE|-`: ingest JSON Lines of external resources into Zendesk."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import IO

from anychannel_async._client import AnyChannelClient
from anychannel_async._pipeline import PushPipeline

from ._common import UsageError, add_connection_options, client_from_args
from ._ingest import Ingest, read_chunks

__all__ = ["add_batch_options", "add_parser", "pipeline_from_args", "run"]


def add_batch_options(parser: argparse.ArgumentParser) -> None:
    """The PushPipeline settings, with its defaults."""
    group = parser.add_argument_group("batching")
    group.add_argument("--max-batch-size", type=int, default=100, help="(default 100)")
    group.add_argument("--max-batch-bytes", type=int, default=4 * 1024 * 1024, help="(4 MiB)")
    group.add_argument("--max-latency", type=float, default=0.05, help="seconds (default 0.05)")
    group.add_argument("--max-in-flight", type=int, default=4, help="requests (default 4)")
    group.add_argument("--max-pending", type=int, default=10_000, help="(default 10000)")
    group.add_argument("--parent-timeout", type=float, default=30.0, help="seconds (default 30)")
    group.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        help="halts or 429 refusals a resource may meet before it fails (default 5)",
    )
    group.add_argument(
        "--max-requests-per-minute",
        type=float,
        default=None,
        help="pace requests to this budget (default: learn it from Zendesk's answers)",
    )


def pipeline_from_args(
    client: AnyChannelClient, instance_push_id: str, args: argparse.Namespace
) -> PushPipeline:
    """A PushPipeline with the batching options' settings (a bad setting is a UsageError)."""
    try:
        return _pipeline(client, instance_push_id, args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _pipeline(
    client: AnyChannelClient, instance_push_id: str, args: argparse.Namespace
) -> PushPipeline:
    return PushPipeline(
        client,
        instance_push_id,
        max_batch_size=args.max_batch_size,
        max_batch_bytes=args.max_batch_bytes,
        max_latency=args.max_latency,
        max_in_flight=args.max_in_flight,
        max_pending=args.max_pending,
        parent_timeout=args.parent_timeout,
        max_attempts=args.max_attempts,
        max_requests_per_minute=args.max_requests_per_minute,
        outbox=getattr(args, "outbox", None),
    )


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "push",
        help="push JSON Lines of external resources (the API's field names) to Zendesk",
        description=(
            "Push one external resource per JSON line. Exit status 0 only when every resource"
            " was imported; failures go to --failed, which can be pushed again as is."
        ),
    )
    parser.add_argument("file", help="a JSON Lines file, or - for standard input")
    parser.add_argument(
        "--failed", metavar="FILE", help="write each failed line with its error here (JSON Lines)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    parser.add_argument(
        "--outbox",
        metavar="PATH",
        help="a SQLite outbox: every accepted line is kept until final (survives a crash)",
    )
    add_connection_options(parser)
    add_batch_options(parser)


def run(args: argparse.Namespace) -> int:
    """Push the file; 0 when every resource was imported, 1 otherwise."""
    client, instance_push_id = client_from_args(args)
    with contextlib.ExitStack() as files:
        # Binary: each line is decoded on its own, so one that is not UTF-8 fails alone.
        source = (
            sys.stdin.buffer if args.file == "-" else files.enter_context(open(args.file, "rb"))
        )
        failed = (
            files.enter_context(open(args.failed, "w", encoding="utf-8")) if args.failed else None
        )
        ingest = asyncio.run(_push(client, instance_push_id, args, source, failed))
    if not args.quiet:
        print(ingest.summary())
    return 0 if ingest.all_imported else 1


async def _push(
    client: AnyChannelClient,
    instance_push_id: str,
    args: argparse.Namespace,
    source: IO[bytes],
    failed: IO[str] | None,
) -> Ingest:
    async with client, pipeline_from_args(client, instance_push_id, args) as pipeline:
        ingest = Ingest(pipeline, failed=failed, progress=not args.quiet and sys.stderr.isatty())
        try:
            async for lines in read_chunks(source):
                await ingest.submit_lines(lines)
            await pipeline.flush()
        finally:
            ingest.close()
    return ingest
