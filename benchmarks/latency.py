"""Row 4: submit-to-resolve latency under light load.

An open-loop producer starts one `pipe.push` every `interval` seconds (arrivals do not wait for
earlier answers, as posts arriving from a stream do not), each timed from building the resource
to its resolved result.
"""

from __future__ import annotations

import asyncio
import time

import attrs
from _common import IPID, make_resource, percentile, run_prefix

from anychannel_async import AnyChannelClient, PushPipeline

__all__ = ["Latency", "light_load"]


@attrs.frozen
class Latency:
    max_latency: float
    samples: int
    p50: float
    p99: float
    max: float
    mean_batch: float


async def light_load(
    client: AnyChannelClient, *, max_latency: float, duration: float, interval: float = 0.01
) -> Latency:
    prefix = run_prefix("lat")
    loop = asyncio.get_running_loop()
    samples: list[float] = []

    async def one(pipe: PushPipeline, i: int) -> None:
        t0 = time.perf_counter()
        await pipe.push(make_resource(prefix, i))
        samples.append(time.perf_counter() - t0)

    count = round(duration / interval)
    async with PushPipeline(client, IPID, max_latency=max_latency) as pipe:
        tasks = []
        start = loop.time()
        for i in range(count):
            # A fixed schedule: a late wake-up does not push every later arrival back.
            await asyncio.sleep(max(0.0, start + i * interval - loop.time()))
            tasks.append(loop.create_task(one(pipe, i)))
        await asyncio.gather(*tasks)
        mean_batch = pipe.stats.mean_batch_size
    return Latency(
        max_latency=max_latency,
        samples=len(samples),
        p50=percentile(samples, 50),
        p99=percentile(samples, 99),
        max=max(samples),
        mean_batch=mean_batch,
    )
