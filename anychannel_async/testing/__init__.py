"""An in-process emulator of Zendesk's any_channel API, for tests, demos and benchmarks.

It plays Zendesk's other side too: it installs an integration through its admin UI, answers
its tickets through the channelback, pulls it and tells it events (`ZendeskEmulator.install`).
"""

from ._emulator import DEFAULT_INSTANCE_PUSH_ID, DEFAULT_TOKEN, ZendeskEmulator
from ._faults import ChannelbackFault, Fault, Faults
from ._integrations import IntegrationCallError
from ._records import (
    AgentReply,
    Comment,
    EventCallback,
    Instance,
    Manifest,
    RecordedRequest,
    ReportedError,
    Ticket,
)

__all__ = [
    "DEFAULT_INSTANCE_PUSH_ID",
    "DEFAULT_TOKEN",
    "AgentReply",
    "ChannelbackFault",
    "Comment",
    "EventCallback",
    "Fault",
    "Faults",
    "Instance",
    "IntegrationCallError",
    "Manifest",
    "RecordedRequest",
    "ReportedError",
    "Ticket",
    "ZendeskEmulator",
]
