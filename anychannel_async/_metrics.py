"""Metrics: what pipelines, pools, outboxes and stream consumers do, for Prometheus.

The core never imports prometheus-client. It calls a `Recorder`: the no-op `NO_METRICS` unless
the user gave a `Metrics`, whose recorders write to the user's registry. `Metrics` is the one
place that knows metric names, labels and buckets, and the only code that imports
prometheus-client, lazily, when it is created: prometheus-client is an optional extra
(``anychannel-async[metrics]``), and the library imports and runs without it.

Labels stay bounded. ``instance`` (an instance push id) is given to the first ``max_instances``
instance push ids a `Metrics` records, for its lifetime; every later one shares the label
``other``. ``outcome`` is a status code or one of the library's exception class names;
``status`` an HTTP status, ``invalid`` or ``none``; ``state`` an outbox row's state; ``stream``
and ``group`` are the consumer's settings.

Gauges of a pipeline (pending, in flight, its host's budget and wait) are read when Prometheus
scrapes, from the scrape's thread: the pipeline only registers a function that reads a few of
its counters, so nothing is updated on the hot path and nothing drifts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple, cast

from ._errors import AnyChannelError, ConfigurationError, ProtocolError, RateLimitedError

if TYPE_CHECKING:  # an optional extra: imported at run time only when a Metrics is created
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

__all__ = ["NO_METRICS", "OTHER", "Gauges", "Metrics", "Recorder"]

#: The ``instance`` label of every instance push id beyond ``max_instances``.
OTHER = "other"
NEED_PROMETHEUS = "metrics need prometheus-client: pip install 'anychannel-async[metrics]'"
# Seconds of a push request, retries included (a retried 5xx or a timeout takes tens of s).
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Resources per push request: Zendesk takes at most 100.
_SIZE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def status_of(error: AnyChannelError | None) -> str:
    """The ``status`` label of a push request that ended with error (None: answered): the
    final HTTP status; ``invalid`` for an answer that does not follow the API (a 2xx whose
    body is not the results); ``none`` when no answer came (connection, timeout, closing)."""
    if error is None:
        return "200"  # Zendesk answers a push with 200 (any 2xx is read the same)
    if isinstance(error, RateLimitedError):
        return "429"
    if isinstance(error, ProtocolError):
        return "invalid"
    status = getattr(error, "status", None)
    return str(status) if isinstance(status, int) else "none"


class Gauges(NamedTuple):
    """What a pipeline reports when scraped."""

    #: Resources accepted and not yet resolved.
    pending: int
    #: Push requests under way.
    in_flight: int
    #: Its host's requests-per-minute budget in force (given or learned), None when unpaced.
    budget: float | None
    #: Seconds until its host's next request may start: a 429's pause, or the budget's spacing.
    wait: float


class Recorder:
    """What the core calls to record; this one records nothing (`NO_METRICS`). A `Metrics`
    hands out recorders that write to its registry, bound to one instance push id."""

    __slots__ = ()

    def outcome(self, name: str) -> None:
        """A resource ended: its status code, or the class name of its error."""

    def request(
        self,
        error: AnyChannelError | None,
        *,
        seconds: float,
        size: int,
        retries: int,
        rate_limited: int,
    ) -> None:
        """A push request ended, answered (error None) or with error; how long it took with
        its retries, resources in it, tries the client retried, and 429 answers among them."""

    def resent(self) -> None:
        """A resource is pushed again (halted, unknown, parent not yet there, rate limited)."""

    def watch(self, key: object, sample: Callable[[], Gauges]) -> None:
        """Read ``sample()`` at every scrape until `unwatch` (key: who registered it)."""

    def unwatch(self, key: object) -> None:
        """Stop reading what ``key`` registered."""

    def outbox_rows(self, state: str, change: int) -> None:
        """Outbox rows in ``state`` changed by ``change`` (written, resolved, buried)."""

    def stream(self, stream: str, group: str, *, pending: int, lag: int | None) -> None:
        """A consumer group's entries delivered and not acknowledged, and not yet delivered
        (None when Redis cannot tell)."""


NO_METRICS = Recorder()


class Metrics:
    """Prometheus metrics of the pipelines, pools, outboxes and consumers given it.

    ``Metrics(registry)`` registers its metrics in ``registry`` (a
    ``prometheus_client.CollectorRegistry``; default: prometheus-client's global ``REGISTRY``,
    the one ``start_http_server`` serves). Give it to `PushPipeline`, `PushPool` or
    ``consume_stream`` as ``metrics=``; one `Metrics` serves any number of them. A registry
    holds one `Metrics` at most (a second raises `ConfigurationError`).

    ``max_instances`` (default 50) bounds the ``instance`` label: the first that many
    instance push ids recorded get their own, every later one shares ``other``. Raises
    `ConfigurationError` when prometheus-client is not installed
    (``pip install 'anychannel-async[metrics]'``).
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, max_instances: int = 50
    ) -> None:
        try:
            import prometheus_client
        except ImportError:
            raise ConfigurationError(NEED_PROMETHEUS) from None
        if type(max_instances) is not int or max_instances < 0:
            raise ConfigurationError(f"max_instances must be an int >= 0, got {max_instances!r}")
        from prometheus_client import Counter, Gauge, Histogram

        if registry is None:
            registry = prometheus_client.REGISTRY
        self.registry = registry
        self._max_instances = max_instances
        self._lock = threading.Lock()
        self._labels: set[str] = set()
        self._watched: dict[object, tuple[str, Callable[[], Gauges]]] = {}
        instance = ("instance",)
        self._resources = Counter(
            "anychannel_resources",
            "Resources ended, by outcome: a status code (success, already_imported) or the"
            " class name of the error they failed with.",
            (*instance, "outcome"),
            registry=None,
        )
        self._requests = Counter(
            "anychannel_push_requests",
            "Push requests ended, by final HTTP status (invalid: an answer that does not follow"
            " the API; none: no answer).",
            (*instance, "status"),
            registry=None,
        )
        self._retries = Counter(
            "anychannel_push_retries",
            "HTTP tries of push requests the client retried.",
            instance,
            registry=None,
        )
        self._rate_limited = Counter(
            "anychannel_rate_limited",
            "429 answers to push requests; each pauses the host's requests for its Retry-After.",
            instance,
            registry=None,
        )
        self._resent = Counter(
            "anychannel_resources_resent",
            "Resources pushed again: halted, outcome unknown, parent not yet there, rate limited.",
            instance,
            registry=None,
        )
        self._latency = Histogram(
            "anychannel_push_request_duration_seconds",
            "Seconds a push request took, its retries included.",
            instance,
            buckets=_LATENCY_BUCKETS,
            registry=None,
        )
        self._batch = Histogram(
            "anychannel_push_batch_size",
            "Resources per push request.",
            instance,
            buckets=_SIZE_BUCKETS,
            registry=None,
        )
        self._outbox = Gauge(
            "anychannel_outbox_rows",
            "Rows of the outboxes this process opened, by state: counted when each opened,"
            " then kept by this process's writes.",
            ("state",),
            registry=None,
        )
        self._stream_pending = Gauge(
            "anychannel_stream_pending_entries",
            "Entries of a consumer group delivered and not yet acknowledged.",
            ("stream", "group"),
            registry=None,
        )
        self._stream_lag = Gauge(
            "anychannel_stream_lag_entries",
            "Entries of a stream not yet delivered to the consumer group.",
            ("stream", "group"),
            registry=None,
        )
        collectors: list[Collector] = [
            self._resources,
            self._requests,
            self._retries,
            self._rate_limited,
            self._resent,
            self._latency,
            self._batch,
            self._outbox,
            self._stream_pending,
            self._stream_lag,
            cast("Collector", _PipelineGauges(self)),  # duck-typed: no import here
        ]
        registered = []
        try:
            for collector in collectors:
                registry.register(collector)
                registered.append(collector)
        except ValueError as exc:  # a name the registry already holds
            for collector in registered:
                registry.unregister(collector)
            raise ConfigurationError(f"metrics: {exc}") from None

    def __repr__(self) -> str:
        return f"<Metrics instances={len(self._labels)}/{self._max_instances}>"

    def recorder(self, instance_push_id: str | None = None) -> Recorder:
        """A recorder bound to the instance push id's label (None: for an outbox or a
        consumer, which record no instance)."""
        if instance_push_id is None:
            return _Shared(self)
        return _Recorder(self, self._label(instance_push_id))

    def _label(self, instance_push_id: str) -> str:
        with self._lock:
            if instance_push_id in self._labels:
                return instance_push_id
            if len(self._labels) < self._max_instances:
                self._labels.add(instance_push_id)
                return instance_push_id
        return OTHER

    def _watch(self, key: object, label: str, sample: Callable[[], Gauges]) -> None:
        with self._lock:
            self._watched[key] = (label, sample)

    def _unwatch(self, key: object) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def _samples(self) -> list[tuple[str, Gauges]]:
        with self._lock:
            watched = list(self._watched.values())
        return [(label, sample()) for label, sample in watched]


class _Shared(Recorder):
    """A `Metrics`' recorder of what has no instance: outboxes and consumers."""

    __slots__ = ("_metrics",)

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def outbox_rows(self, state: str, change: int) -> None:
        self._metrics._outbox.labels(state).inc(change)

    def stream(self, stream: str, group: str, *, pending: int, lag: int | None) -> None:
        self._metrics._stream_pending.labels(stream, group).set(pending)
        if lag is not None:
            self._metrics._stream_lag.labels(stream, group).set(lag)


class _Recorder(_Shared):
    """A `Metrics`' recorder for one ``instance`` label; its children are looked up once."""

    __slots__ = ("_batch", "_label", "_latency", "_rate_limited", "_resent", "_retries")

    def __init__(self, metrics: Metrics, label: str) -> None:
        super().__init__(metrics)
        self._label = label
        self._retries = metrics._retries.labels(label)
        self._rate_limited = metrics._rate_limited.labels(label)
        self._resent = metrics._resent.labels(label)
        self._latency = metrics._latency.labels(label)
        self._batch = metrics._batch.labels(label)

    def outcome(self, name: str) -> None:
        self._metrics._resources.labels(self._label, name).inc()

    def request(
        self,
        error: AnyChannelError | None,
        *,
        seconds: float,
        size: int,
        retries: int,
        rate_limited: int,
    ) -> None:
        self._metrics._requests.labels(self._label, status_of(error)).inc()
        self._latency.observe(seconds)
        self._batch.observe(size)
        if retries:
            self._retries.inc(retries)
        if rate_limited:
            self._rate_limited.inc(rate_limited)

    def resent(self) -> None:
        self._resent.inc()

    def watch(self, key: object, sample: Callable[[], Gauges]) -> None:
        self._metrics._watch(key, self._label, sample)

    def unwatch(self, key: object) -> None:
        self._metrics._unwatch(key)


class _PipelineGauges:
    """The pipelines' gauges, read at each scrape: summed by label (the budget and the wait,
    which pipelines of one host share, take the largest)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return list(self._families({}))

    def collect(self) -> Iterable[Metric]:
        totals: dict[str, list[float | None]] = {}
        for label, gauges in self._metrics._samples():
            total = totals.setdefault(label, [0, 0, None, 0.0])
            total[0] = (total[0] or 0) + gauges.pending
            total[1] = (total[1] or 0) + gauges.in_flight
            if gauges.budget is not None:
                total[2] = max(total[2] or 0.0, gauges.budget)
            total[3] = max(total[3] or 0.0, gauges.wait)
        return self._families(totals)

    @staticmethod
    def _families(totals: dict[str, list[float | None]]) -> list[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        families = [
            GaugeMetricFamily(
                "anychannel_pending_resources",
                "Resources accepted and not yet resolved.",
                labels=["instance"],
            ),
            GaugeMetricFamily(
                "anychannel_in_flight_requests", "Push requests under way.", labels=["instance"]
            ),
            GaugeMetricFamily(
                "anychannel_rate_budget_requests_per_minute",
                "The host's requests-per-minute budget in force (given, or learned from"
                " X-Rate-Limit); absent while unpaced.",
                labels=["instance"],
            ),
            GaugeMetricFamily(
                "anychannel_rate_wait_seconds",
                "Seconds until the host's next request may start: a 429's pause, or the"
                " budget's spacing.",
                labels=["instance"],
            ),
        ]
        for label, values in sorted(totals.items()):
            for family, value in zip(families, values, strict=True):
                if value is not None:
                    family.add_metric([label], value)
        found: list[Metric] = list(families)
        return found
