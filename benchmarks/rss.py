"""Row 5: the client's peak RSS while streaming resources from a generator through the pipeline.

Each count runs in a fresh child process (this file run as a script), so its VmHWM is that
count's own peak. The child also samples VmRSS every 0.25 s to show the curve is flat.
The emulator (another process) keeps every ticket in memory; only the client is measured here.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import attrs
from _common import IPID, TOKEN, make_resource, run_prefix, vm_mib

from anychannel_async import AnyChannelClient, ExternalResource, PushPipeline, PushResult

__all__ = ["RssResult", "measure_rss"]


@attrs.frozen
class RssResult:
    count: int
    seconds: float
    #: VmHWM (peak RSS) of the child, MiB.
    peak_mib: float
    #: VmRSS sampled just before streaming started, MiB.
    start_mib: float
    #: VmRSS samples at 25 %, 50 %, 75 % and 100 % of the count, MiB.
    quartiles_mib: tuple[float, ...]
    imported: int


def _posts(prefix: str, count: int) -> Iterator[ExternalResource]:
    for i in range(count):
        yield make_resource(prefix, i)


async def _stream(base_url: str, count: int) -> dict[str, float | int | list[float]]:
    prefix = run_prefix("rss")
    ok = 0
    marks = {count * q // 4: q for q in (1, 2, 3, 4)}
    quartiles: list[float] = []

    def tally(future: asyncio.Future[PushResult]) -> None:
        nonlocal ok
        if not future.cancelled() and future.exception() is None:
            ok += 1

    async with AnyChannelClient(token=TOKEN, base_url=base_url) as client:
        # Warm up imports, the connection and the converter before the baseline sample.
        async with PushPipeline(client, IPID) as pipe:
            await pipe.push(make_resource(prefix + "warm-", 0))
        start_mib = vm_mib("VmRSS")
        t0 = time.perf_counter()
        async with PushPipeline(client, IPID) as pipe:
            for i, post in enumerate(_posts(prefix, count), start=1):
                future = await pipe.submit(post)
                future.add_done_callback(tally)
                if i in marks:
                    quartiles.append(vm_mib("VmRSS"))
            await pipe.flush()
        seconds = time.perf_counter() - t0
    return {
        "count": count,
        "seconds": seconds,
        "peak_mib": vm_mib("VmHWM"),
        "start_mib": start_mib,
        "quartiles_mib": quartiles,
        "imported": ok,
    }


def measure_rss(base_url: str, count: int) -> RssResult:
    """Stream count resources in a fresh child process; its figures."""
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, base_url, str(count)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return RssResult(
        count=data["count"],
        seconds=data["seconds"],
        peak_mib=data["peak_mib"],
        start_mib=data["start_mib"],
        quartiles_mib=tuple(data["quartiles_mib"]),
        imported=data["imported"],
    )


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_stream(sys.argv[1], int(sys.argv[2])))))
