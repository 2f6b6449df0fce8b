"""`anychannel-async demo --two-way`: the whole loop, both directions, in one process.

An in-process origin network (posts, and the replies it receives), an integration built with
`ChannelIntegration` and served over TCP, and the emulator playing Zendesk: two accounts are
installed through the integration's admin UI, posts stream in through a `PushPool`, the ticket
behind each comes back through Zendesk's event (`PushPool.ticket_of`), agents answer a share of
the tickets through the channelback (one answer lost on the way, so Zendesk repeats it), and
the origin side shows what came back out. ``examples/two_way/`` holds the same pieces.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import socket
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
from aiohttp import web

from anychannel_async._accounts import AccountStore
from anychannel_async._client import RetryPolicy
from anychannel_async._models import Author, ExternalResource
from anychannel_async._pool import PushPool
from anychannel_async._tickets import TicketLedger, TicketRef
from anychannel_async.integration import ChannelbackRequest, ChannelIntegration
from anychannel_async.testing import ChannelbackFault, ZendeskEmulator

__all__ = ["run_two_way"]

_HANDLES = ("@north", "@south")
_PEOPLE = ("ada", "grace", "linus", "margaret", "dennis", "barbara")
_ASKS = (
    "Where is my order #{n}?",
    "The app logs me out every hour (build {n})",
    "Can I change the plan of account {n}?",
    "I was charged twice for invoice {n}",
)


@attrs.define
class Origin:
    """The origin network: its posts, and what the integration posted back onto it."""

    #: (handle, external id of the message, its text, the external id it answers).
    received: list[tuple[str, str, str, str | None]] = attrs.field(factory=list)

    def post_reply(self, handle: str, message: str, parent_id: str | None) -> str:
        external_id = f"{handle.lstrip('@')}-out-{len(self.received) + 1}"
        self.received.append((handle, external_id, message, parent_id))
        return external_id


def posts(handle: str, count: int, rng: random.Random) -> Iterator[ExternalResource]:
    """count posts to an account, each followed (sometimes) by a follow-up from its author."""
    clock = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    for n in range(1, count + 1):
        clock += timedelta(minutes=1)
        person = rng.choice(_PEOPLE)
        author = Author(f"tw-{person}", name=person.title())
        post = f"{handle.lstrip('@')}-post-{n}"
        yield ExternalResource(post, rng.choice(_ASKS).format(n=n), clock, author)
        if rng.random() < 0.5:
            yield ExternalResource(f"{post}-again", "Any update?", clock, author, parent_id=post)


def _bound_socket() -> socket.socket:
    # Bound before the integration is built, so it knows its own URL (the manifest's).
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def run_two_way(*, posts_per_account: int = 12, seed: int = 1, share: float = 0.4) -> bool:
    """Run the loop and print it; True when every reply came out once, where it belongs, and
    every post's ticket was learnt from Zendesk's event."""
    rng = random.Random(seed)  # noqa: S311 - reproducible draws for a demo, not secrets
    origin = Origin()
    ledger = TicketLedger()
    with tempfile.TemporaryDirectory() as where, _bound_socket() as sock:
        store = AccountStore(Path(where) / "accounts.sqlite")
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with ZendeskEmulator(accounts={}) as zendesk, store:
            integration = ChannelIntegration(
                name="Acme Social",
                integration_id="com.acme.social",
                base_url=base_url,
                secret=secrets.token_urlsafe(32),
                accounts=store,
                admin_fields={"handle": "Social handle"},
                zendesk_url=zendesk.base_url,
                tickets=ledger,
            )

            @integration.channelback
            async def channelback(request: ChannelbackRequest) -> str:
                handle = request.account.settings["handle"]
                return origin.post_reply(handle, request.message, request.parent_id)

            runner = web.AppRunner(integration.web_app(), access_log=None)
            await runner.setup()
            try:
                await web.SockSite(runner, sock).start()
                return await _loop(
                    zendesk, store, ledger, origin, base_url, rng, posts_per_account, share
                )
            finally:
                await runner.cleanup()


async def _loop(
    zendesk: ZendeskEmulator,
    store: AccountStore,
    ledger: TicketLedger,
    origin: Origin,
    base_url: str,
    rng: random.Random,
    count: int,
    share: float,
) -> bool:
    print(f"Emulated Zendesk at {zendesk.base_url}; the integration at {base_url}.")
    installed = {}
    for handle in _HANDLES:
        instance = await zendesk.install(
            f"{base_url}/manifest.json",
            subdomain="acme",
            name=f"Acme {handle}",
            settings={"handle": handle},
        )
        installed[handle] = instance.instance_push_id
        print(f"Installed {instance.name!r} through the admin UI: {instance.instance_push_id}")

    pushed: dict[str, list[ExternalResource]] = {}
    async with PushPool(
        store, tickets=ledger, max_latency=0.01, retry=RetryPolicy(initial_delay=0.01)
    ) as pool:
        futures = []
        for handle, ipid in installed.items():
            pushed[handle] = list(posts(handle, count, rng))
            futures += [await pool.submit(ipid, resource) for resource in pushed[handle]]
        results = await asyncio.gather(*futures)
        imported = sum(1 for result in results if result.imported)
        print(
            f"Pushed {len(results)} posts and follow-ups through a PushPool: {imported} imported."
        )

        tickets: dict[tuple[str, str], TicketRef] = {}
        for handle, ipid in installed.items():
            for resource in pushed[handle]:
                tickets[handle, resource.external_id] = await pool.ticket_of(
                    ipid, resource.external_id, timeout=10
                )
        learnt = all(
            (found := zendesk.ticket_for(external_id)) is not None and found.id == ref.ticket_id
            for (_, external_id), ref in tickets.items()
        )
        print(
            f"Zendesk's events named the ticket of each of them ({len(tickets)} via"
            f" pool.ticket_of){'' if learnt else ', BUT SOME DO NOT MATCH'}."
        )

        opened = [(h, r) for h, rs in pushed.items() for r in rs if r.parent_id is None]
        answered = sorted(rng.sample(range(len(opened)), max(1, round(len(opened) * share))))
        # One answer is lost on its way back to Zendesk, which repeats the channelback: the
        # integration answers the repeat from its memory, and the network gets the reply once.
        zendesk.script_channelback(ChannelbackFault.TIMEOUT)
        replies = []
        for index in answered:
            handle, post = opened[index]
            ticket_id = tickets[handle, post.external_id].ticket_id
            message = f"Hi {post.author.name}, we are on it (ticket #{ticket_id})."
            replies.append((handle, ticket_id, await zendesk.agent_reply(ticket_id, message)))
        repeated = sum(reply.tries - 1 for _, _, reply in replies)
        print(
            f"Agents answered {len(replies)} of {len(opened)} tickets; {repeated} channelback"
            " answer was lost and repeated."
        )

        # The origin answers back to the agent: its reply lands on the same ticket.
        handle, ticket_id, first = replies[0]
        thanks = ExternalResource(
            "thanks-1",
            "Thanks!",
            datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
            Author("tw-ada", name="Ada"),
            parent_id=first.external_id,
        )
        await pool.push(installed[handle], thanks)
        back = await pool.ticket_of(installed[handle], "thanks-1", timeout=10)
        await zendesk.settle()

    print("\nOn the origin network, what came back out of Zendesk:")
    for handle, external_id, message, parent_id in origin.received:
        print(f"  {handle:<7} {external_id:<14} in reply to {parent_id}: {message}")
    print(
        f"\nThe origin's answer to {first.external_id} went to ticket #{back.ticket_id}"
        f" (the agent's reply was on #{ticket_id})."
    )
    once = len(origin.received) == len(replies) and all(
        zendesk.ticket_for(reply.external_id) is not None for _, _, reply in replies
    )
    as_announced = learnt and once and repeated == 1 and back.ticket_id == ticket_id
    print("Every reply came out once, where it belongs." if as_announced else "NOT as announced.")
    return as_announced
