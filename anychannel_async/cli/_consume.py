"""`anychannel-async consume`: push the resources of a Redis stream, as one consumer of a group.

Runs until SIGTERM or SIGINT, then stops reading, finishes what is in flight, acknowledges it
and exits 0. A second signal gives up at once (exit 130): what was not acknowledged stays
pending in Redis and is delivered again, which Zendesk's already_imported makes safe.

With ``--accounts PATH``, entries carry ``instance_push_id`` beside ``resource`` and are pushed
through a `PushPool` over the accounts store at PATH: an entry for an account the store does not
hold is a dead letter saying so; one account's refused token leaves its entries pending (see
`consume_stream`) while the others go on.

Several streams (``--stream`` repeated, or ``--shards N``) are read by one `consume_stream` each,
into one pipeline. The command logs at INFO by default: its start, a progress line a minute
(the pipeline's counts) and its counts when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

from anychannel_async._accounts import AccountStore, unix_socket_problem
from anychannel_async._client import AnyChannelClient
from anychannel_async._metrics import Metrics
from anychannel_async._pipeline import PushPipeline
from anychannel_async._pool import PushPool

from ._common import (
    UsageError,
    add_connection_options,
    check_accounts_options,
    client_from_args,
)
from ._metrics import add_metrics_option, check_metrics_port, serving_metrics
from ._push import add_batch_options, pipeline_from_args, pool_from_args

if TYPE_CHECKING:  # redis-py is an optional extra: import it only where it is used
    import redis.asyncio

    from anychannel_async.sources import ConsumeStats

__all__ = ["NEED_REDIS", "add_parser", "redis_client", "run"]

NEED_REDIS = "Redis support is not installed: pip install 'anychannel-async[redis]'"
# Seconds between two progress lines (logged at INFO, the command's default level).
PROGRESS_INTERVAL = 60.0

logger = logging.getLogger("anychannel_async.cli")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "consume",
        help="push resources read from a Redis stream with a consumer group",
        description=(
            "Read entries of a Redis stream as CONSUMER of GROUP, push the JSON resource of each"
            " entry's 'resource' field, and acknowledge each entry once its outcome is final."
            " Resources that cannot be imported go to the stream STREAM:dead with their error."
            " With --accounts, each entry's 'instance_push_id' field names its account."
        ),
    )
    redis_options = parser.add_argument_group("Redis")
    redis_options.add_argument("--redis", required=True, metavar="URL", help="redis://host:port/db")
    redis_options.add_argument(
        "--stream",
        required=True,
        action="append",
        help="a stream to read; repeat it to read several, each with its own group of GROUP",
    )
    redis_options.add_argument(
        "--shards",
        type=int,
        default=1,
        metavar="N",
        help=(
            "read STREAM:0 ... STREAM:N-1 for each --stream, as `produce --shards N` writes"
            " them; 1 reads STREAM itself (default 1)"
        ),
    )
    redis_options.add_argument("--group", required=True, help="the consumer group")
    redis_options.add_argument(
        "--consumer",
        required=True,
        help="this worker's name in the group; keep it across restarts to resume its entries",
    )
    redis_options.add_argument(
        "--claim-idle",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="claim another consumer's entries pending this long (default 60)",
    )
    redis_options.add_argument(
        "--count", type=int, default=100, help="entries per read at most (default 100)"
    )
    redis_options.add_argument(
        "--block-ms", type=int, default=1_000, help="ms one read waits for entries (default 1000)"
    )
    parser.add_argument("--quiet", action="store_true", help="no summary")
    add_metrics_option(parser)
    # Hidden: seconds between progress lines; a test sets it low to see one soon.
    parser.add_argument(
        "--progress-interval", type=float, default=PROGRESS_INTERVAL, help=argparse.SUPPRESS
    )
    add_connection_options(parser, accounts=True)
    add_batch_options(parser)


def redis_client(url: str, *, read_timeout: float) -> redis.asyncio.Redis:
    """A redis.asyncio client for url; UsageError when redis-py is missing or the URL is wrong."""
    try:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:
        raise UsageError(NEED_REDIS) from None
    problem = unix_socket_problem(url)
    if problem is not None:  # else a wait "until Redis is back" on another socket, for ever
        raise UsageError(f"--redis: {problem}")
    try:
        return redis.asyncio.from_url(
            url,
            socket_connect_timeout=5.0,
            # Above the read's own block time, so only a silent network trips it.
            socket_timeout=read_timeout,
            # One immediate retry, for a pooled connection that died with a Redis restart;
            # waiting out an outage is the consumer's job, with its own backoff and logs.
            retry=Retry(NoBackoff(), 1),
        )
    except ValueError as exc:
        raise UsageError(f"--redis: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Consume until signalled; 0 after a clean stop."""
    try:
        import anychannel_async.sources  # noqa: F401 - fail early, before any connection
    except ImportError:
        raise UsageError(NEED_REDIS) from None
    streams = streams_of(args)
    if not args.progress_interval > 0:
        raise UsageError(f"--progress-interval must be > 0, got {args.progress_interval}")
    accounts = check_accounts_options(args)
    check_metrics_port(args.metrics_port)
    target: tuple[AnyChannelClient, str] | AccountStore
    if accounts is None:
        target = client_from_args(args)
    else:
        target = AccountStore(accounts)
        pool_from_args(target, args)  # its settings checked before any connection
    try:
        with serving_metrics(args.metrics_port):
            totals = asyncio.run(_consume(target, streams, args))
    except asyncio.CancelledError:
        return 130
    if not args.quiet:
        print(
            f"read {totals['read']} (claimed {totals['claimed']}), imported"
            f" {totals['imported']}, dead-lettered {totals['dead_lettered']}, left pending"
            f" {totals['left_pending']}"
        )
    return 0


def streams_of(args: argparse.Namespace) -> list[str]:
    """The streams to read: each --stream, or its N shards with --shards N; each once."""
    if args.shards < 1:
        raise UsageError(f"--shards must be at least 1, got {args.shards}")
    names: list[str] = args.stream
    if args.shards > 1:
        names = [f"{name}:{shard}" for name in names for shard in range(args.shards)]
    return list(dict.fromkeys(names))


async def _consume(
    target: tuple[AnyChannelClient, str] | AccountStore,
    streams: list[str],
    args: argparse.Namespace,
) -> dict[str, int]:
    """Consume with the client of one account (and its instance push id), or the accounts of
    a store; the totals of every stream's `ConsumeStats`."""

    redis_conn = redis_client(args.redis, read_timeout=args.block_ms / 1000 + 10.0)
    # In the global registry, which --metrics-port serves.
    metrics = Metrics() if args.metrics_port is not None else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main is not None:
            main.cancel()  # the second signal: give up now
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    try:
        async with contextlib.AsyncExitStack() as opened:
            pipeline: PushPipeline | PushPool
            if isinstance(target, AccountStore):
                await opened.enter_async_context(target)
                pipeline = await opened.enter_async_context(
                    pool_from_args(target, args, metrics=metrics)
                )
            else:
                client, instance_push_id = target
                await opened.enter_async_context(client)
                pipeline = await opened.enter_async_context(
                    pipeline_from_args(client, instance_push_id, args, metrics=metrics)
                )
            where = (
                f"the accounts of {target.path}"  # a Redis URL's password hidden
                if isinstance(target, AccountStore)
                else f"{target[1]} at {target[0].base_url}"
            )
            logger.info(
                "consuming %s as %s of group %s, pushing to %s",
                ", ".join(streams),
                args.consumer,
                args.group,
                where,
            )
            progress = asyncio.create_task(_report_progress(pipeline, args.progress_interval))
            try:
                every = await _consume_streams(pipeline, redis_conn, streams, stop, args, metrics)
            finally:
                progress.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await progress
            totals = {
                name: sum(getattr(stats, name) for stats in every)
                for name in ("read", "claimed", "imported", "dead_lettered", "left_pending")
            }
            logger.info("stopped: %s", _counts(totals), extra={"data": totals})
            return totals
    except ValueError as exc:  # a setting out of range
        raise UsageError(str(exc)) from None
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await redis_conn.aclose()


async def _consume_streams(
    pipeline: PushPipeline | PushPool,
    redis_conn: redis.asyncio.Redis,
    streams: list[str],
    stop: asyncio.Event,
    args: argparse.Namespace,
    metrics: Metrics | None,
) -> list[ConsumeStats]:
    """One `consume_stream` per stream, into the one pipeline, sharing its room
    (--max-pending): each holds at most its share unacknowledged. The first to fail stops the
    others (they finish what they hold), and its error is raised once they have."""
    from anychannel_async.sources import consume_stream

    share = max(1, args.max_pending // len(streams))

    async def one(stream: str) -> ConsumeStats:
        try:
            return await consume_stream(
                pipeline,
                redis_conn,
                stream=stream,
                group=args.group,
                consumer=args.consumer,
                claim_idle=args.claim_idle,
                block_ms=args.block_ms,
                count=args.count,
                max_unacked=share,
                stop=stop,
                metrics=metrics,
            )
        except BaseException:
            stop.set()
            raise

    outcomes = await asyncio.gather(*(one(s) for s in streams), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return [o for o in outcomes if not isinstance(o, BaseException)]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {count:,}" for name, count in counts.items())


async def _report_progress(pipeline: PushPipeline | PushPool, interval: float) -> None:
    """A line every interval seconds: the resources imported, failed and pending so far, and
    the rate since the last line (from the pipeline's stats; the entries read are counted by
    the consumer, at the end)."""
    loop = asyncio.get_running_loop()
    last_done, last_time = 0, loop.time()
    while True:
        await asyncio.sleep(interval)
        stats = pipeline.stats
        imported = sum(stats.resolved.values())
        failed = sum(stats.failed.values())
        now = loop.time()
        rate = (imported + failed - last_done) / (now - last_time)
        last_done, last_time = imported + failed, now
        counts = {
            "imported": imported,
            "failed": failed,
            "pending": stats.pending,
            "requests": stats.requests,
        }
        logger.info("progress: %s; %.1f resources/s", _counts(counts), rate, extra={"data": counts})
