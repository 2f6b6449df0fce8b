"""`anychannel-async demo`: the main job end to end, on the embedded emulator.

Generates social-media conversations (public posts with replies, direct-message threads, some
duplicates, a few resources Zendesk fails on), ingests them through a `PushPipeline` against
an in-process emulator that also injects transport faults, then shows what an agent would see.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from anychannel_async._client import AnyChannelClient, RetryPolicy
from anychannel_async._models import Author, ExternalResource
from anychannel_async._pipeline import PushPipeline
from anychannel_async.testing import Faults, ZendeskEmulator

from ._common import UsageError
from ._ingest import Ingest

__all__ = [
    "add_parser",
    "descendants",
    "doomed_posts",
    "generate_conversations",
    "run",
    "run_demo",
]

_IPID = "demo-instance"
_REDELIVERED = "(redelivered)"
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
    parents: dict[str, str | None] = {}  # of each id in recent: a redelivery keeps it
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
            parents[external_id] = None
        elif roll < 0.7:
            parent = rng.choice(recent[-20:])
            external_id = f"reply-{serial}"
            resource = ExternalResource(
                external_id, rng.choice(_REPLIES), clock, _author(rng), parent_id=parent
            )
            recent.append(external_id)
            parents[external_id] = parent
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
            # Origin systems redeliver: the same post or reply again (where it belongs) must
            # not become a second ticket or comment.
            again = rng.choice(recent)
            resource = ExternalResource(
                again, _REDELIVERED, clock, _author(rng), parent_id=parents[again]
            )
        yield resource
        produced += 1


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo", help="ingest generated conversations into an in-process emulator"
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="resources (default 5000); with --two-way, posts per account (default 12)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generator and faults")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--two-way",
        action="store_true",
        help="both directions: an integration installed twice, posts in, agents' replies out",
    )


def run(args: argparse.Namespace) -> int:
    """The demo command: 0 when everything it announced came true."""
    if args.count is not None and args.count < 1:
        raise UsageError(f"--count must be at least 1, got {args.count}")
    if args.two_way:
        from ._demo_two_way import run_two_way  # the integration's imports, only when asked

        posts = 12 if args.count is None else args.count
        as_announced = asyncio.run(run_two_way(posts_per_account=posts, seed=args.seed))
        return 0 if as_announced else 1
    count = 5000 if args.count is None else args.count
    progress = not args.quiet and sys.stderr.isatty()
    as_announced = asyncio.run(run_demo(count, seed=args.seed, progress=progress))
    return 0 if as_announced else 1


def doomed_posts(count: int, *, seed: int = 1, how_many: int = 4) -> list[str]:
    """Ids of how_many posts of the generated conversations, spread over the run: the ones the
    demo makes Zendesk fail on. Picked from what is generated, so they exist for any count."""
    is_post = [
        r.parent_id is None and r.thread_id is None and r.message != _REDELIVERED
        for r in generate_conversations(count, seed=seed)
    ]
    posts = [n for n, post in enumerate(is_post) if post]
    wanted = {posts[len(posts) * (k + 1) // (how_many + 1)] for k in range(how_many) if posts}
    return [
        r.external_id for n, r in enumerate(generate_conversations(count, seed=seed)) if n in wanted
    ]


def descendants(count: int, doomed: list[str], *, seed: int = 1) -> tuple[set[str], int]:
    """The ids of the replies (to replies too) under the doomed posts, and how many of the
    generated resources carry one (redeliveries included): those that fail with them."""
    under = set(doomed)
    replies: set[str] = set()
    lines = 0
    for resource in generate_conversations(count, seed=seed):
        # A reply comes after what it answers; a redelivery carries the id of its original.
        if resource.parent_id in under or resource.external_id in replies:
            under.add(resource.external_id)
            replies.add(resource.external_id)
            lines += 1
    return replies, lines


async def run_demo(
    count: int = 5000, *, show_threads: int = 3, seed: int = 1, progress: bool = False
) -> bool:
    """Ingest count generated resources into the emulator and print what happened; True when
    the posts announced to fail did fail."""
    doomed = doomed_posts(count, seed=seed)
    replies, reply_lines = descendants(count, doomed, seed=seed)
    faults = Faults(
        seed=seed,
        latency=0.005,
        latency_jitter=0.01,
        server_error_rate=0.03,
        lost_answer_rate=0.02,
        drop_rate=0.01,
        processing_error_ids=frozenset(doomed),
    )
    async with (
        ZendeskEmulator(accounts={_IPID: _TOKEN}, faults=faults) as zendesk,
        AnyChannelClient(
            token=_TOKEN, base_url=zendesk.base_url, retry=RetryPolicy(initial_delay=0.01)
        ) as client,
        PushPipeline(client, _IPID, parent_timeout=2.0) as pipeline,
    ):
        print(
            f"Emulated Zendesk at {zendesk.base_url}, injecting 5xx answers, lost answers and"
            f" dropped connections; {len(doomed)} posts will fail to process"
            f" ({', '.join(doomed)}), and {reply_lines} replies to them with them."
        )
        ingest = Ingest(pipeline, progress=progress, total=count)
        try:
            for number, resource in enumerate(generate_conversations(count, seed=seed), 1):
                await ingest.submit(number, resource)
            await pipeline.flush()
        finally:
            ingest.close()
        stats = pipeline.stats
        tickets = zendesk.tickets
        imported_anyway = [i for i in doomed if zendesk.import_count(i) > 0]
        replies_imported = sorted(i for i in replies if zendesk.import_count(i) > 0)

    print(f"\nIngested {count:,} resources:")
    print(ingest.summary())
    print(
        f"{stats.requests} push requests (mean batch {stats.mean_batch_size:.1f}),"
        f" {stats.retries} HTTP retries, {stats.resent} resources pushed again"
        " (halted, parent not there yet)."
    )
    failed = ingest.outcomes["ProcessingError"]
    orphans = ingest.outcomes["ParentNotFoundError"]
    as_announced = (
        not imported_anyway
        and failed >= len(doomed)
        and not replies_imported
        and orphans == reply_lines
    )
    if as_announced:
        print(
            f"As announced: {', '.join(doomed)} failed to process ({failed} resources, with"
            f" their redeliveries), and {orphans} replies to them with them."
        )
    else:
        print(
            f"Not as announced: {', '.join(imported_anyway) or 'none'} of the posts meant to fail"
            f" were imported; {failed} resources failed to process; of the {reply_lines}"
            f" replies to them, {orphans} failed as replies to a failed post and"
            f" {', '.join(replies_imported) or 'none'} were imported."
        )
    print(f"Zendesk now holds {len(tickets):,} tickets. The busiest, as an agent sees them:")
    busiest = sorted(tickets, key=lambda t: len(t.comments), reverse=True)[:show_threads]
    for ticket in busiest:
        kind = f"DM thread {ticket.thread_id}" if ticket.thread_id else "public post"
        print(f"\nTicket #{ticket.id} ({kind}, {len(ticket.comments)} comments)")
        for comment in ticket.comments[:6]:
            print(f"  {comment.created_at}  {comment.author_name or '?':<9} {comment.message}")
        if len(ticket.comments) > 6:
            print(f"  ... {len(ticket.comments) - 6} more")
    return as_announced
