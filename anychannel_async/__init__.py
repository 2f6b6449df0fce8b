"""anychannel-async: an asyncio-native client for Zendesk's Channel framework (any_channel) API.

Build validated resources, push them through `AnyChannelClient` or a batching `PushPipeline`,
and test against the in-process emulator in `anychannel_async.testing`.
"""

from ._accounts import Account, AccountStore, RedisAccountStore
from ._client import AnyChannelClient, RetryPolicy
from ._errors import (
    AccountStoreError,
    AnyChannelError,
    AuthenticationError,
    ClosedError,
    ConfigurationError,
    EventLoopError,
    HaltedError,
    InactiveAccountError,
    MalformedEntryError,
    OutboxError,
    OutcomeUnknownError,
    ParentNotFoundError,
    ProcessingError,
    ProtocolError,
    RateLimitedError,
    RedirectError,
    RequestRejectedError,
    ResourceError,
    SourceError,
    TicketUnknownError,
    TransportError,
    UnknownAccountError,
    ValidationError,
    Verdict,
    verdict,
)
from ._metrics import Metrics
from ._models import Author, DisplayInfo, ExternalResource, FieldValue
from ._pipeline import PipelineStats, PushPipeline
from ._pool import PoolStats, PushPool
from ._results import PushResult, StatusCode
from ._serde import resource_from_json
from ._settings import PipelineSettings
from ._tickets import TicketLedger, TicketRef
from ._version import __version__

__all__ = [
    "Account",
    "AccountStore",
    "AccountStoreError",
    "AnyChannelClient",
    "AnyChannelError",
    "AuthenticationError",
    "Author",
    "ClosedError",
    "ConfigurationError",
    "DisplayInfo",
    "EventLoopError",
    "ExternalResource",
    "FieldValue",
    "HaltedError",
    "InactiveAccountError",
    "MalformedEntryError",
    "Metrics",
    "OutboxError",
    "OutcomeUnknownError",
    "ParentNotFoundError",
    "PipelineSettings",
    "PipelineStats",
    "PoolStats",
    "ProcessingError",
    "ProtocolError",
    "PushPipeline",
    "PushPool",
    "PushResult",
    "RateLimitedError",
    "RedirectError",
    "RedisAccountStore",
    "RequestRejectedError",
    "ResourceError",
    "RetryPolicy",
    "SourceError",
    "StatusCode",
    "TicketLedger",
    "TicketRef",
    "TicketUnknownError",
    "TransportError",
    "UnknownAccountError",
    "ValidationError",
    "Verdict",
    "__version__",
    "resource_from_json",
    "verdict",
]
