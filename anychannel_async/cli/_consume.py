"""`anychannel-async consume`: push the resources of a Redis stream, as one consumer of a group.

Runs until SIGTERM or SIGINT, then stops reading, finishes what is in flight, acknowledges it
and exits 0. A second signal gives up at once (exit 130): what was not acknowledged stays
pending in Redis and is delivered again, which Zendesk's already_imported makes safe.

With ``--accounts PATH``, entries carry ``instance_push_id`` beside ``resource`` and are pushed
through a `PushPool` over the accounts store at PATH: an entry for an account the store does not
hold is a dead letter saying so; one account's refused token leaves its entries pending (see
`consume_stream`) while the others go on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

from anychannel_async._accounts import AccountStore
from anychannel_async._client import AnyChannelClient
from anychannel_async._metrics import Metrics
from anychannel_async._pipeline import PushPipeline
from anychannel_async._pool import PushPool

from ._common import (
    UsageError,
    add_connection_options,
    check_accounts_options,
    client_from_args,
    log_to_stderr,
)
from ._metrics import add_metrics_option, check_metrics_port, serving_metrics
from ._push import add_batch_options, pipeline_from_args, pool_from_args

if TYPE_CHECKING:  # redis-py is an optional extra: import it only where it is used
    import redis.asyncio

    from anychannel_async.sources import ConsumeStats

__all__ = ["NEED_REDIS", "add_parser", "redis_client", "run"]

NEED_REDIS = "Redis support is not installed: pip install 'anychannel-async[redis]'"


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
    redis_options.add_argument("--stream", required=True, help="the stream to read")
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
    accounts = check_accounts_options(args)
    check_metrics_port(args.metrics_port)
    target: tuple[AnyChannelClient, str] | AccountStore
    if accounts is None:
        target = client_from_args(args)
    else:
        target = AccountStore(accounts)
        pool_from_args(target, args)  # its settings checked before any connection
    log_to_stderr("consume")
    try:
        with serving_metrics(args.metrics_port):
            stats = asyncio.run(_consume(target, args))
    except asyncio.CancelledError:
        return 130
    if not args.quiet:
        print(
            f"read {stats.read} (claimed {stats.claimed}), imported {stats.imported},"
            f" dead-lettered {stats.dead_lettered}, left pending {stats.left_pending}"
        )
    return 0


async def _consume(
    target: tuple[AnyChannelClient, str] | AccountStore, args: argparse.Namespace
) -> ConsumeStats:
    """Consume with the client of one account (and its instance push id), or the accounts of
    a store."""
    from anychannel_async.sources import consume_stream

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
            return await consume_stream(
                pipeline,
                redis_conn,
                stream=args.stream,
                group=args.group,
                consumer=args.consumer,
                claim_idle=args.claim_idle,
                block_ms=args.block_ms,
                count=args.count,
                max_unacked=args.max_pending,
                stop=stop,
                metrics=metrics,
            )
    except ValueError as exc:  # a setting out of range
        raise UsageError(str(exc)) from None
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await redis_conn.aclose()
