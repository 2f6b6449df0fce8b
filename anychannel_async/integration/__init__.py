"""The other direction: the service Zendesk calls on a Channel framework integration.

`ChannelIntegration` serves the manifest, the admin UI where administrators install the
integration (kept as `Account`s in an `AccountStore`, which a `PushPool` pushes with), and the
channelback, pull, clickthrough, healthcheck and event callback endpoints, as an aiohttp
application. Zendesk signs nothing it sends: the integration signs the metadata Zendesk keeps
and refuses what does not carry its signature.
"""

from ._access import AccessLogger
from ._app import ChannelIntegration
from ._requests import (
    ChannelbackFailed,
    ChannelbackRequest,
    ClickthroughRequest,
    IntegrationEvent,
    PullRequest,
    PullResponse,
)

__all__ = [
    "AccessLogger",
    "ChannelIntegration",
    "ChannelbackFailed",
    "ChannelbackRequest",
    "ClickthroughRequest",
    "IntegrationEvent",
    "PullRequest",
    "PullResponse",
]
