"""An in-process emulator of Zendesk's any_channel API, for tests, demos and benchmarks."""

from ._emulator import DEFAULT_INSTANCE_PUSH_ID, DEFAULT_TOKEN, ZendeskEmulator
from ._faults import Fault, Faults
from ._records import Comment, RecordedRequest, ReportedError, Ticket

__all__ = [
    "DEFAULT_INSTANCE_PUSH_ID",
    "DEFAULT_TOKEN",
    "Comment",
    "Fault",
    "Faults",
    "RecordedRequest",
    "ReportedError",
    "Ticket",
    "ZendeskEmulator",
]
