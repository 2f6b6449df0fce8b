"""The integration: what Zendesk calls (admin UI, channelback, pull, events), built with
`ChannelIntegration` over the accounts store that a `PushPool` pushes with.

Copy this file: replace `Network` with your network's client, serve `integration.web_app()`
(``anychannel-async serve``, behind https), and register ``{base_url}/manifest.json`` with
Zendesk.
"""

from __future__ import annotations

from network import Network

from anychannel_async import AccountStore, TicketLedger
from anychannel_async.integration import (
    ChannelbackRequest,
    ChannelIntegration,
    PullRequest,
    PullResponse,
)


def make_integration(
    network: Network,
    *,
    accounts: AccountStore,
    base_url: str,
    secret: str,
    tickets: TicketLedger | None = None,
    zendesk_url: str = "https://{subdomain}.zendesk.com",
) -> ChannelIntegration:
    integration = ChannelIntegration(
        name="Acme Social",
        integration_id="com.acme.social",
        base_url=base_url,  # where Zendesk reaches this service
        secret=secret,  # >= 32 bytes; signs the metadata Zendesk keeps for each account
        accounts=accounts,  # installs land here; a PushPool over it pushes for them
        admin_fields={"handle": "Your handle on the network"},
        zendesk_url=zendesk_url,
        tickets=tickets,  # Zendesk's events tell the pool which ticket each post became
    )

    @integration.channelback
    async def channelback(request: ChannelbackRequest) -> str:
        # An agent answered in Zendesk: post it on the network. Zendesk repeats a channelback
        # after a network error; the integration runs this once per request_unique_identifier.
        return await network.post_reply(request.message, in_reply_to=request.parent_id)

    @integration.pull
    async def pull(request: PullRequest) -> PullResponse:
        # Zendesk asks every 2 minutes: hand over what is new (or push it, as main.py does).
        return PullResponse(await network.fetch_new(), state=request.state)

    return integration
