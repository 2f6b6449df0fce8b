"""Fault settings and the dice that draw from them.

This module owns every random decision the emulator makes (which fault hits a push request, how
long an answer is delayed, which resource fails to process) so that one seed reproduces a run.
It never touches tickets or HTTP: it only answers "what goes wrong next".
"""

from __future__ import annotations

import enum
import random
import threading
from collections import deque
from collections.abc import Iterable

import attrs

__all__ = ["ChannelbackFault", "Fault", "FaultDice", "Faults"]


class Fault(enum.Enum):
    """One fault for one push request, scripted with `ZendeskEmulator.script` or drawn at random."""

    #: Answer 503 with a JSON error body and process nothing.
    SERVER_ERROR = "server_error"
    #: Process and commit the resources, then answer 500: the client cannot know they landed.
    LOST_ANSWER = "lost_answer"
    #: Close the connection without any answer and process nothing.
    DROP = "drop"
    #: Answer 429 with `Retry-After: Faults.retry_after` and process nothing.
    RATE_LIMITED = "rate_limited"
    #: Process and commit, then answer 200 with an HTML body instead of JSON.
    GARBAGE = "garbage"
    #: Process and commit, then answer 200 with the last result missing.
    SHORT_RESULTS = "short_results"
    #: Process and commit, then answer 200 with the results' external ids mismatched.
    WRONG_IDS = "wrong_ids"
    #: Answer 307 with a Location on another origin (`Faults.redirect_to`) and process nothing.
    REDIRECT = "redirect"
    #: Process and commit, then answer 200 with a status code this client does not know.
    STRANGE_CODE = "strange_code"
    #: Answer 400 with a long body quoting the request's Authorization header, as a careless
    #: proxy might, and process nothing.
    ECHO_CREDENTIALS = "echo_credentials"


class ChannelbackFault(enum.Enum):
    """One fault for one try of a channelback the emulator sends to an integration
    (`ZendeskEmulator.agent_reply`), scripted with `ZendeskEmulator.script_channelback` or drawn
    with `Faults.channelback_timeout_rate`. Either way the emulator then repeats the request,
    with the same ``request_unique_identifier``, as Zendesk does after a network error."""

    #: The integration gets the request and answers, but the answer is lost on the way back,
    #: as on a timeout: a repeat that runs the reply again would post it twice.
    TIMEOUT = "timeout"
    #: The request never reaches the integration: a proxy in front of it answers 502.
    BAD_GATEWAY = "bad_gateway"


_unit_interval = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]
_non_negative = attrs.validators.ge(0.0)


def _to_frozenset(external_ids: Iterable[str]) -> frozenset[str]:
    """Accept any iterable of ids, so a test can pass a set or a list."""
    return frozenset(external_ids)


@attrs.define
class Faults:
    """What goes wrong and how slowly; mutable so a test can change it on a running emulator.

    Rates are probabilities in [0, 1] drawn per push request (per resource for
    `processing_error_rate`); times are in seconds. Values are checked on construction and on
    assignment, so a negative latency fails at once rather than as a hang later.
    """

    seed: int = 0
    latency: float = attrs.field(default=0.0, validator=_non_negative)
    latency_jitter: float = attrs.field(default=0.0, validator=_non_negative)
    server_error_rate: float = attrs.field(default=0.0, validator=_unit_interval)
    lost_answer_rate: float = attrs.field(default=0.0, validator=_unit_interval)
    drop_rate: float = attrs.field(default=0.0, validator=_unit_interval)
    rate_limited_rate: float = attrs.field(default=0.0, validator=_unit_interval)
    garbage_rate: float = attrs.field(default=0.0, validator=_unit_interval)
    short_results_rate: float = attrs.field(default=0.0, validator=_unit_interval)
    wrong_ids_rate: float = attrs.field(default=0.0, validator=_unit_interval)
    #: Where a `Fault.REDIRECT` points (the request's path is appended).
    redirect_to: str = "https://elsewhere.invalid"
    retry_after: float = attrs.field(default=1.0, validator=_non_negative)
    processing_error_rate: float = attrs.field(default=0.0, validator=_unit_interval)
    processing_error_ids: frozenset[str] = attrs.field(factory=frozenset, converter=_to_frozenset)
    rate_limit: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(1))
    )
    rate_window: float = attrs.field(default=60.0, validator=attrs.validators.gt(0.0))
    #: A ``Set-Cookie`` header for every answer, as the Cloudflare in front of Zendesk sends
    #: (``__cfruid``, ``__cf_bm``); None sends none. A client's cookie jar that keeps it sends it
    #: back (`RecordedRequest.cookie`); aiohttp's keeps none from an IP address, so a test of it
    #: names the emulator ``localhost``.
    set_cookie: str | None = None
    #: The emulator's calls to an integration (`ZendeskEmulator.agent_reply`): the chance that
    #: a channelback try's answer is lost (`ChannelbackFault.TIMEOUT`); seconds it waits for an
    #: answer (slower counts as a network error); tries in all, a network error or a 5xx being
    #: repeated with the same ``request_unique_identifier``.
    channelback_timeout_rate: float = attrs.field(default=0.0, validator=_unit_interval)
    channelback_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0.0))
    channelback_tries: int = attrs.field(default=3, validator=attrs.validators.ge(1))


class FaultDice:
    """Draws faults, latencies and processing errors from one RNG seeded by `Faults.seed`.

    It also holds the queue of scripted faults, which win over random ones. The lock lets a test
    thread script faults while the emulator's loop thread draws them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripted: deque[Fault] = deque()
        self._channelbacks: deque[ChannelbackFault] = deque()
        self._rng = random.Random(0)
        # The seed the RNG was last seeded with: a changed `Faults.seed` (or a replaced Faults)
        # reseeds on the next draw, so a test that sets a seed gets the run that seed promises.
        self._seeded_with: int | None = None

    def script(self, faults: Iterable[Fault]) -> None:
        """Queue faults for the next push requests, one each, in order."""
        with self._lock:
            self._scripted.extend(faults)

    def script_channelbacks(self, faults: Iterable[ChannelbackFault]) -> None:
        """Queue faults for the next channelback tries, one each, in order."""
        with self._lock:
            self._channelbacks.extend(faults)

    def reset(self) -> None:
        """Forget scripted faults and restart the random sequence from the seed."""
        with self._lock:
            self._scripted.clear()
            self._channelbacks.clear()
            self._seeded_with = None

    def next_fault(self, faults: Faults) -> Fault | None:
        """The fault for this push request: the next scripted one, else a random draw, else None."""
        with self._lock:
            if self._scripted:
                return self._scripted.popleft()
            rng = self._rng_for(faults)
            # The draw order is part of the contract: the same seed gives the same faults.
            for fault, rate in (
                (Fault.DROP, faults.drop_rate),
                (Fault.SERVER_ERROR, faults.server_error_rate),
                (Fault.RATE_LIMITED, faults.rate_limited_rate),
                (Fault.LOST_ANSWER, faults.lost_answer_rate),
                (Fault.GARBAGE, faults.garbage_rate),
                # Drawn last: seeds from before they existed draw the same faults as then.
                (Fault.SHORT_RESULTS, faults.short_results_rate),
                (Fault.WRONG_IDS, faults.wrong_ids_rate),
            ):
                if rate > 0.0 and rng.random() < rate:
                    return fault
            return None

    def next_channelback_fault(self, faults: Faults) -> ChannelbackFault | None:
        """The fault for this channelback try: the next scripted one, else a random draw."""
        with self._lock:
            if self._channelbacks:
                return self._channelbacks.popleft()
            rate = faults.channelback_timeout_rate
            if rate > 0.0 and self._rng_for(faults).random() < rate:
                return ChannelbackFault.TIMEOUT
            return None

    def latency(self, faults: Faults) -> float:
        """Seconds to wait before this answer."""
        if faults.latency_jitter <= 0.0:
            return faults.latency
        with self._lock:
            return faults.latency + self._rng_for(faults).uniform(0.0, faults.latency_jitter)

    def processing_error(self, faults: Faults, external_id: str) -> bool:
        """Whether this resource fails with `processing_error`."""
        if external_id in faults.processing_error_ids:
            return True
        if faults.processing_error_rate <= 0.0:
            return False
        with self._lock:
            return self._rng_for(faults).random() < faults.processing_error_rate

    def _rng_for(self, faults: Faults) -> random.Random:
        if self._seeded_with != faults.seed:
            self._rng.seed(faults.seed)
            self._seeded_with = faults.seed
        return self._rng
