"""A process that submits resources through an outbox and is killed mid-way by a test.

Usage: python tests/crash_child.py BASE_URL OUTBOX COUNT. It prints each external_id once
its ``submit`` has returned (so the resource is durably accepted), then flushes and exits 0.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from anychannel_async import AnyChannelClient, Author, ExternalResource, PushPipeline, RetryPolicy

IPID = "crash-instance"
TOKEN = "crash-token"


def workload(count: int) -> list[ExternalResource]:
    """Posts, replies to the post before, and messages of three DM threads, interleaved."""
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    resources = []
    for n in range(count):
        kind = n % 3
        if kind == 0:
            resources.append(ExternalResource(f"post-{n}", f"post {n}", at, Author("a")))
        elif kind == 1:
            resources.append(
                ExternalResource(
                    f"reply-{n}", f"reply {n}", at, Author("b"), parent_id=f"post-{n - 1}"
                )
            )
        else:
            resources.append(
                ExternalResource(f"dm-{n}", f"dm {n}", at, Author("c"), thread_id=f"thread-{n % 4}")
            )
    return resources


async def main(base_url: str, outbox: str, count: int) -> None:
    async with (
        AnyChannelClient(
            token=TOKEN, base_url=base_url, retry=RetryPolicy(initial_delay=0.01)
        ) as client,
        PushPipeline(client, IPID, outbox=outbox, max_batch_size=10, max_in_flight=2) as pipe,
    ):
        for resource in workload(count):
            await pipe.submit(resource)
            print(resource.external_id, flush=True)
        await pipe.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
