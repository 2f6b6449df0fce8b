"""`anychannel-async demo`: the main job end to end, on the embedded emulator.

Generates social-media conversations (public posts with replies, direct-message threads, some
duplicates, a few resources Zendesk fails on), ingests them through a `PushPipeline` against
an in-process emulator that also injects transport faults, then shows what an agent would see.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from anychannel_async._client import AnyChannelClient, RetryPolicy
from anychannel_async._errors import AnyChannelError
from anychannel_async._models import Author, ExternalResource, PushResult
from anychannel_async._pipeline import PushPipeline
from anychannel_async.testing import Faults, ZendeskEmulator

__all__ = ["generate_conversations", "run_demo"]

_IPID = "demo-instance"
_TOKEN = "demo-token"
_PEOPLE = ["ada", "grace", "linus", "margaret", "dennis", "barbara", "ken", "radia"]
_OPENERS = [
    "My order #{n} never arrived, can you help?",
    "The app crashes when I open settings (build {n})",
    "Loving the new release! One question about pricing tier {n}",
    "I was charged twice for invoice {n}",
    "How do I export my data? Ticket ref {n}",
]
_REPLIES = [
    "Any update on this?",
    "Still waiting here.",
    "Attached a screenshot.",
    "Thanks, that worked!",
    "Same problem for me.",
]


def _author(rng: random.Random) -> Author:
    handle = rng.choice(_PEOPLE)
    return Author(
        f"tw-{handle}", name=handle.title(), image_url=f"https://img.example/{handle}.png"
    )


def generate_conversations(count: int, *, seed: int = 1) -> Iterator[ExternalResource]:
    """Yield count resources: posts with reply chains, DM threads, and a few duplicates.

    Order follows the origin's clock: a reply always comes after what it answers.
    """
    rng = random.Random(seed)
    clock = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    recent: list[str] = []
    produced = 0
    serial = 0
    while produced < count:
        clock += timedelta(seconds=rng.randint(1, 30))
        serial += 1
        roll = rng.random()
        if roll < 0.35 or not recent:
            external_id = f"post-{serial}"
            opener = rng.choice(_OPENERS).format(n=serial)
            resource = ExternalResource(external_id, opener, clock, _author(rng))
            recent.append(external_id)
        elif roll < 0.7:
            parent = rng.choice(recent[-20:])
            external_id = f"reply-{serial}"
            resource = ExternalResource(
                external_id, rng.choice(_REPLIES), clock, _author(rng), parent_id=parent
            )
            recent.append(external_id)
        elif roll < 0.97:
            thread = f"dm-{rng.randint(1, max(1, count // 25))}"
            resource = ExternalResource(
                f"{thread}-msg-{serial}",
                rng.choice(_REPLIES + _OPENERS).format(n=serial),
                clock,
                _author(rng),
                thread_id=thread,
            )
        else:
            # Origin systems redeliver: the same post again must not become a second ticket.
            again = rng.choice(recent)
            resource = ExternalResource(again, "(redelivered)", clock, _author(rng))
        yield resource
        produced += 1


async def run_demo(count: int = 2000, *, show_threads: int = 3, seed: int = 1) -> int:
    """Ingest count generated resources into the emulator and print what happened."""
    resources = list(generate_conversations(count, seed=seed))
    doomed = {r.external_id for r in resources[7::500]}  # Zendesk fails on a few
    faults = Faults(
        seed=seed,
        latency=0.005,
        latency_jitter=0.01,
        server_error_rate=0.03,
        lost_answer_rate=0.02,
        drop_rate=0.01,
        processing_error_ids=frozenset(doomed),
    )
    outcomes: Counter[str] = Counter()
    async with (
        ZendeskEmulator(accounts={_IPID: _TOKEN}, faults=faults) as zendesk,
        AnyChannelClient(
            token=_TOKEN, base_url=zendesk.base_url, retry=RetryPolicy(initial_delay=0.01)
        ) as client,
        PushPipeline(client, _IPID, parent_timeout=2.0) as pipeline,
    ):
        print(f"emulated Zendesk at {zendesk.base_url}; injecting 5xx, lost answers, drops")
        started = time.perf_counter()
        futures: list[asyncio.Future[PushResult]] = []
        for resource in resources:
            futures.append(await pipeline.submit(resource))
        await pipeline.flush()
        elapsed = time.perf_counter() - started
        for future in futures:
            error = future.exception()
            outcomes[type(error).__name__ if error else str(future.result().code)] += 1
        stats = pipeline.stats
        tickets = zendesk.tickets

    print(
        f"\npushed {count} resources in {elapsed:.2f} s ({count / elapsed:,.0f}/s):"
        f" {stats.requests} requests, mean batch {stats.mean_batch_size:.1f},"
        f" {stats.retries} HTTP retries, {stats.resent} resources re-sent"
    )
    for outcome, number in outcomes.most_common():
        print(f"  {outcome:<28} {number:>6}")
    print(f"Zendesk now holds {len(tickets)} tickets.")
    busiest = sorted(tickets, key=lambda t: len(t.comments), reverse=True)[:show_threads]
    for ticket in busiest:
        kind = f"thread {ticket.thread_id}" if ticket.thread_id else "post"
        print(f"\nTicket #{ticket.id} ({kind}, {len(ticket.comments)} comments)")
        for comment in ticket.comments[:6]:
            print(f"  {comment.created_at}  {comment.author_name:<9} {comment.message}")
        if len(ticket.comments) > 6:
            print(f"  ... {len(ticket.comments) - 6} more")
    return 0


def main(count: int) -> int:
    """Run the demo; exit status 0 unless it could not run."""
    try:
        return asyncio.run(run_demo(count))
    except AnyChannelError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
