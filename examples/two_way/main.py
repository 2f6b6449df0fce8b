"""The whole loop, both directions, in one process and without a Zendesk account: the package's
emulator plays Zendesk. Run it: ``python examples/two_way/main.py``.

1. Zendesk installs the integration (its admin UI, driven as a browser would).
2. Posts on the network go to Zendesk through a `PushPool`; Zendesk's event names the ticket
   each became (``pool.ticket_of``).
3. An agent answers a ticket; the channelback posts the reply on the network, once, even when
   the first answer is lost and Zendesk repeats the request.
4. Direct messages come in by pull instead.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from bridge import make_integration
from network import Network

from anychannel_async import AccountStore, PushPool, TicketLedger
from anychannel_async.testing import ChannelbackFault, ZendeskEmulator


async def main() -> int:
    network = Network()
    tickets = TicketLedger()  # shared by the pool (request ids) and the integration (events)
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # a free port, known before the integration is built
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with (
            ZendeskEmulator(accounts={}) as zendesk,
            AccountStore(Path(tmp) / "accounts.sqlite") as accounts,
        ):
            integration = make_integration(
                network,
                accounts=accounts,
                base_url=base_url,
                secret=secrets.token_urlsafe(32),
                tickets=tickets,
                zendesk_url=zendesk.base_url,  # the emulator stands for every subdomain
            )
            runner = web.AppRunner(integration.web_app())
            await runner.setup()
            try:
                await web.SockSite(runner, sock).start()
                return await loop(zendesk, accounts, tickets, network, base_url)
            finally:
                await runner.cleanup()


async def loop(
    zendesk: ZendeskEmulator,
    accounts: AccountStore,
    tickets: TicketLedger,
    network: Network,
    base_url: str,
) -> int:
    instance = await zendesk.install(
        f"{base_url}/manifest.json", subdomain="acme", name="Acme", settings={"handle": "@acme"}
    )
    account = instance.instance_push_id
    print(f"installed: {instance.name} ({account})")

    async with PushPool(accounts, tickets=tickets, max_latency=0.01) as pool:
        post = network.receive("My order never arrived", who="Ada")
        for new in await network.fetch_new():
            result = await pool.push(account, new)
            print(f"pushed {new.external_id}: {result.code}")
        ticket = await pool.ticket_of(account, post.external_id, timeout=10)
        print(f"{post.external_id} is ticket #{ticket.ticket_id}, comment #{ticket.comment_id}")

        zendesk.script_channelback(ChannelbackFault.TIMEOUT)  # the first answer gets lost
        reply = await zendesk.agent_reply(ticket.ticket_id, "Sorry Ada, a new one is on its way")
        print(f"agent replied in {reply.tries} tries; on the network: {network.replies}")

    network.receive("Is it possible to change my plan?", who="Grace", thread="dm-grace")
    pulled = await zendesk.pull(account)
    print(f"pulled: {pulled}")
    await zendesk.settle()  # Zendesk's events about it reached the integration
    dm = zendesk.ticket_for(next(iter(pulled)))

    ok = len(network.replies) == 1 and network.replies[0][2] == post.external_id
    ok = ok and dm is not None and dm.thread_id == "dm-grace"
    print("all as expected" if ok else "NOT as expected")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
