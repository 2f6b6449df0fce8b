"""Row 6: throughput under the account's rate cap, told and learned, against cap x batch size.

The emulator answers 429 past `cap` requests per fixed window (opened by the first request).
The pipeline is either told the same budget (max_requests_per_minute) or left to learn it from
the X-Rate-Limit header (max_requests_per_minute=None, which assumes Zendesk's per-minute
window, so that case needs a 60 s window). A producer keeps the pipeline saturated for
`duration` seconds; every HTTP answer is recorded on the wire with an aiohttp trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import SimpleNamespace

import aiohttp
import attrs
from _common import IPID, TOKEN, make_resource, run_prefix

from anychannel_async import AnyChannelClient, ClosedError, PushPipeline, PushResult

__all__ = ["RateResult", "rate_capped"]


@attrs.frozen
class RateResult:
    told: bool
    cap: int
    window: float
    duration: float
    #: Resources imported within the measured duration, per second.
    rate: float
    #: cap / window x batch size.
    ideal: float
    requests: int
    status_429: int
    #: 429 answers later than one window after the first request.
    status_429_after_first_window: int
    #: The budget the client's pace held at the end (requests per minute).
    budget: float | None


async def rate_capped(
    base_url: str, *, cap: int, window: float, told: bool, duration: float, batch: int = 100
) -> RateResult:
    answers: list[tuple[float, int]] = []

    async def on_end(
        _session: aiohttp.ClientSession,
        _ctx: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        answers.append((time.monotonic(), params.response.status))

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    prefix = run_prefix("rate")
    stamps: list[float] = []

    def tally(future: asyncio.Future[PushResult]) -> None:
        if not future.cancelled() and future.exception() is None:
            stamps.append(time.monotonic())

    budget = cap * 60.0 / window if told else None
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        AnyChannelClient(token=TOKEN, base_url=base_url, session=session) as client,
    ):
        pipe = PushPipeline(
            client, IPID, max_batch_size=batch, max_requests_per_minute=budget, close_timeout=0
        )
        t0 = time.monotonic()
        end = t0 + duration

        async def produce() -> None:
            i = 0
            while True:
                future = await pipe.submit(make_resource(prefix, i))
                future.add_done_callback(tally)
                i += 1

        producer = asyncio.get_running_loop().create_task(produce())
        await asyncio.sleep(duration)
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, ClosedError):
            await producer
        await pipe.close()
        learned = client.pace.requests_per_minute
    first = answers[0][0] if answers else t0
    imported = sum(1 for stamp in stamps if stamp <= end)
    late_429 = sum(1 for when, status in answers if status == 429 and when > first + window)
    return RateResult(
        told=told,
        cap=cap,
        window=window,
        duration=duration,
        rate=imported / duration,
        ideal=cap / window * batch,
        requests=len(answers),
        status_429=sum(1 for _, status in answers if status == 429),
        status_429_after_first_window=late_429,
        budget=learned,
    )
