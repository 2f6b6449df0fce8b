"""An ingestion service: push the resources of a Redis stream into Zendesk, as one consumer of a
consumer group, until SIGTERM or SIGINT (what a supervisor sends). Start as many replicas as
you like with distinct consumer names: the group shares the entries between them.

Producers append one resource per entry, as JSON in the field ``resource`` (``anychannel-async
produce`` does it from a JSON Lines file). Needs ``pip install 'anychannel-async[redis]'``::

    export ANYCHANNEL_TOKEN=...              # the integration's access token
    export ANYCHANNEL_INSTANCE_PUSH_ID=...   # the install's instance_push_id
    export ANYCHANNEL_SUBDOMAIN=yourcompany  # or ANYCHANNEL_BASE_URL=http://127.0.0.1:8080
    export REDIS_URL=redis://localhost:6379/0
    python examples/ingest_redis.py zendesk:0 zendesk:1   # the streams (shards) to read

`anychannel-async consume` is this program with every option as a flag.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys

import redis.asyncio

from anychannel_async import AnyChannelClient, PushPipeline
from anychannel_async.sources import ConsumeStats, consume_stream

log = logging.getLogger("ingest")


async def main(streams: list[str]) -> None:
    # Stop on SIGTERM or SIGINT: stop reading, push and acknowledge what is in hand, exit.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    client = AnyChannelClient(
        token=os.environ["ANYCHANNEL_TOKEN"],
        subdomain=os.environ.get("ANYCHANNEL_SUBDOMAIN"),
        base_url=os.environ.get("ANYCHANNEL_BASE_URL"),
    )
    # A socket timeout above the read's block time (1 s), so only a silent network trips it.
    conn = redis.asyncio.from_url(
        os.environ.get("REDIS_URL", "redis://localhost:6379/0"), socket_timeout=10.0
    )
    # Keep the consumer's name across restarts: it then finishes the entries it held.
    consumer = os.environ.get("CONSUMER", socket.gethostname())
    pipeline = PushPipeline(client, os.environ["ANYCHANNEL_INSTANCE_PUSH_ID"], max_latency=0.05)

    async def consume(stream: str) -> ConsumeStats:
        try:
            return await consume_stream(
                pipeline, conn, stream=stream, group="zendesk", consumer=consumer, stop=stop
            )
        finally:  # one ends (a stop, or Zendesk refusing the token): the others stop too
            stop.set()

    try:
        async with client, pipeline:
            log.info("consuming %s as %s", ", ".join(streams), consumer)
            # One consumer per stream, into one pipeline: its batches mix them.
            every = await asyncio.gather(*(consume(stream) for stream in streams))
    finally:
        await conn.aclose()
    for stream, stats in zip(streams, every, strict=True):
        log.info(
            "%s: read %d, imported %d, dead-lettered %d (in %s:dead), left pending %d",
            stream,
            stats.read,
            stats.imported,
            stats.dead_lettered,
            stream,
            stats.left_pending,
        )


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(main(sys.argv[1:] or ["zendesk:0"]))
