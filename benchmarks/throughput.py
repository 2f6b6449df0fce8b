"""Rows 1-3: throughput of the pipeline against bare aiohttp and sequential batches, client CPU.

Every function here pushes `n` fresh resources to an emulator running in another process and
returns wall time and this process's CPU time, so CPU per resource is the client's alone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import aiohttp
import attrs
from _common import HEADERS, IPID, PUSH_PATH, TOKEN, make_resource, resource_json, run_prefix

from anychannel_async import AnyChannelClient, PushPipeline, PushResult, StatusCode

__all__ = [
    "Measure",
    "bare_batched",
    "bare_single",
    "pipeline",
    "sequential_batched",
]


@attrs.frozen
class Measure:
    """One timed run."""

    resources: int
    wall: float
    cpu: float
    #: Push requests the run made (0: not counted).
    requests: int = 0

    @property
    def rate(self) -> float:
        return self.resources / self.wall

    @property
    def cpu_per_resource(self) -> float:
        return self.cpu / self.resources


class Tally:
    """Done callback of every pipeline future: counts outcomes, keeps no reference to them."""

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0

    def __call__(self, future: asyncio.Future[PushResult]) -> None:
        if future.cancelled() or future.exception() is not None:
            self.failed += 1
        else:
            self.ok += 1


async def pipeline(
    client: AnyChannelClient,
    n: int,
    *,
    max_latency: float = 0.05,
    max_in_flight: int = 4,
    max_pending: int = 10_000,
    max_batch_size: int = 100,
    on_start: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> Measure:
    """Build n posts and push them through a PushPipeline; timed until every future resolved."""
    prefix = run_prefix("pipe")
    tally = Tally()
    if on_start is not None:
        on_start()
    cpu0, t0 = time.process_time(), time.perf_counter()
    async with PushPipeline(
        client,
        IPID,
        max_latency=max_latency,
        max_in_flight=max_in_flight,
        max_pending=max_pending,
        max_batch_size=max_batch_size,
    ) as pipe:
        for i in range(n):
            future = await pipe.submit(make_resource(prefix, i))
            future.add_done_callback(tally)
        await pipe.flush()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    requests = pipe.stats.requests
    if on_stop is not None:
        on_stop()
    if tally.ok != n:
        raise RuntimeError(
            f"pipeline: {tally.ok} of {n} resources imported ({tally.failed} failed)"
        )
    return Measure(n, wall, cpu, requests)


async def sequential_batched(client: AnyChannelClient, n: int, batch: int = 100) -> Measure:
    """(b) client.push with `batch` resources per call, one call at a time."""
    prefix = run_prefix("seq")
    cpu0, t0 = time.process_time(), time.perf_counter()
    done = 0
    for start in range(0, n, batch):
        resources = [make_resource(prefix, i) for i in range(start, min(n, start + batch))]
        results = await client.push(IPID, resources)
        done += sum(1 for result in results if result.code is StatusCode.SUCCESS)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if done != n:
        raise RuntimeError(f"sequential: {done} of {n} resources imported")
    return Measure(n, wall, cpu)


def _session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=30.0),
        headers=HEADERS,
    )


def _count_success(payload: bytes) -> int:
    answer = json.loads(payload)
    return sum(1 for result in answer["results"] if result["status"]["code"] == "success")


async def bare_single(base_url: str, n: int, concurrency: int = 8) -> Measure:
    """(a) One POST per resource with bare aiohttp, `concurrency` requests at once."""
    prefix = run_prefix("one")
    url = base_url + PUSH_PATH
    counter = iter(range(n))
    imported = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal imported
        for i in counter:
            body = json.dumps(
                {"instance_push_id": IPID, "external_resources": [resource_json(prefix, i)]},
                separators=(",", ":"),
            ).encode()
            async with session.post(url, data=body) as response:
                payload = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"bare single: HTTP {response.status}")
            imported += _count_success(payload)

    async with _session(concurrency) as session:
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if imported != n:
        raise RuntimeError(f"bare single: {imported} of {n} resources imported")
    return Measure(n, wall, cpu)


def prepare_bodies(n: int, batch: int = 100) -> list[bytes]:
    """Pre-serialized push bodies of `batch` fresh resources each, for the ceiling."""
    prefix = run_prefix("ceil")
    bodies = []
    for start in range(0, n, batch):
        resources = [resource_json(prefix, i) for i in range(start, min(n, start + batch))]
        bodies.append(
            json.dumps(
                {"instance_push_id": IPID, "external_resources": resources},
                separators=(",", ":"),
            ).encode()
        )
    return bodies


async def bare_batched(base_url: str, bodies: list[bytes], concurrency: int = 4) -> Measure:
    """The ceiling: bare aiohttp POSTing pre-serialized bodies, `concurrency` at once."""
    url = base_url + PUSH_PATH
    queue = iter(bodies)
    imported = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal imported
        for body in queue:
            async with session.post(url, data=body) as response:
                payload = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"ceiling: HTTP {response.status}")
            imported += _count_success(payload)

    async with _session(concurrency) as session:
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return Measure(imported, wall, cpu)


def new_client(base_url: str) -> AnyChannelClient:
    return AnyChannelClient(token=TOKEN, base_url=base_url)
