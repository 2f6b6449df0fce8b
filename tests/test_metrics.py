"""Prometheus metrics, scraped over HTTP (real TCP) after pushing through the emulator: what a
pipeline, a pool, an outbox and a stream consumer did, and the library without the extra."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import prometheus_client
import pytest
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from anychannel_async import (
    Account,
    AnyChannelClient,
    ConfigurationError,
    Metrics,
    ProcessingError,
    PushPipeline,
    PushPool,
)
from anychannel_async.testing import Fault, ZendeskEmulator

from .accounts_support import HOST_A, token
from .conftest import CLI, FAST_RETRY, IPID, TOKEN, batch_sizes, cli_env, resource, settle
from .redis_support import STREAM, RedisServer, add, start_consumer, terminate

#: (metric sample name, labels as sorted pairs) -> value, as one scrape read them.
Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Scrape:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scrape: Scrape, name: str, **labels: str) -> float | None:
    return scrape.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics_url(registry: CollectorRegistry) -> Iterator[str]:
    """The registry served by prometheus-client's own HTTP server, on a free port."""
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def scrape(http: aiohttp.ClientSession, url: str) -> Scrape:
    async with http.get(url) as response:
        assert response.status == 200
        return parse(await response.text())


async def test_scraped_metrics_count_what_a_pipeline_did(
    emulator: ZendeskEmulator,
    registry: CollectorRegistry,
    metrics_url: str,
    http: aiohttp.ClientSession,
) -> None:
    """Outcomes, the requests' statuses, their retries (a 429, a 503), latency and sizes, the
    budget, and gauges back to 0: the values, read over HTTP. (Zendesk halts what follows a
    processing_error in a request: m-4 goes again, alone.)"""
    emulator.faults.retry_after = 0.0
    emulator.faults.processing_error_ids = frozenset({"m-3"})
    emulator.script(Fault.RATE_LIMITED, Fault.SERVER_ERROR)
    async with (
        AnyChannelClient(token=TOKEN, base_url=emulator.base_url, retry=FAST_RETRY) as client,
        PushPipeline(
            client, IPID, max_latency=0.05, max_requests_per_minute=600, metrics=Metrics(registry)
        ) as pipeline,
    ):
        outcomes = await settle(await pipeline.submit_many(resource(f"m-{n}") for n in range(5)))
        assert [type(o) for o in outcomes].count(ProcessingError) == 1
        found = await scrape(http, metrics_url)
    assert batch_sizes(emulator) == [5, 5, 5, 1]  # 429, 503, then answered; then m-4
    one = {"instance": IPID}
    assert value(found, "anychannel_resources_total", outcome="success", **one) == 4
    assert value(found, "anychannel_resources_total", outcome="ProcessingError", **one) == 1
    assert value(found, "anychannel_push_requests_total", status="200", **one) == 2
    assert value(found, "anychannel_push_retries_total", **one) == 2
    assert value(found, "anychannel_rate_limited_total", **one) == 1
    assert value(found, "anychannel_resources_resent_total", **one) == 1
    assert value(found, "anychannel_push_request_duration_seconds_count", **one) == 2
    assert value(found, "anychannel_push_batch_size_sum", **one) == 6
    assert value(found, "anychannel_push_batch_size_bucket", le="1.0", **one) == 1
    assert value(found, "anychannel_push_batch_size_bucket", le="5.0", **one) == 2
    assert value(found, "anychannel_pending_resources", **one) == 0
    assert value(found, "anychannel_in_flight_requests", **one) == 0
    assert value(found, "anychannel_rate_budget_requests_per_minute", **one) == 600


async def test_gauges_show_resources_pending_and_requests_in_flight_while_they_are(
    emulator: ZendeskEmulator,
    registry: CollectorRegistry,
    metrics_url: str,
    http: aiohttp.ClientSession,
) -> None:
    """While a slow request is under way, a scrape sees it in flight and its resources
    pending; once the pipeline closed, its gauges are gone."""
    emulator.faults.latency = 1.0
    async with (
        AnyChannelClient(token=TOKEN, base_url=emulator.base_url, retry=FAST_RETRY) as client,
        PushPipeline(client, IPID, max_latency=0.0, metrics=Metrics(registry)) as pipeline,
    ):
        futures = await pipeline.submit_many([resource("slow-1"), resource("slow-2")])
        one = {"instance": IPID}
        async with asyncio.timeout(10):
            while True:
                found = await scrape(http, metrics_url)
                if value(found, "anychannel_in_flight_requests", **one) == 1:
                    break
        assert value(found, "anychannel_pending_resources", **one) == 2
        await settle(futures)
    found = await scrape(http, metrics_url)
    assert value(found, "anychannel_pending_resources", **one) is None
    assert value(found, "anychannel_resources_total", outcome="success", **one) == 2


async def test_instances_beyond_max_instances_share_the_label_other(
    host_a: ZendeskEmulator,
    registry: CollectorRegistry,
    metrics_url: str,
    http: aiohttp.ClientSession,
) -> None:
    """A pool over two accounts, with room for one instance label: the first keeps its own,
    the second's counts are under ``other``."""
    first, second = HOST_A
    accounts = {i: Account(i, base_url=host_a.base_url, token=token(i)) for i in HOST_A}
    metrics = Metrics(registry, max_instances=1)
    async with PushPool(accounts, max_latency=0.01, retry=FAST_RETRY, metrics=metrics) as pool:
        await pool.push(first, resource("for-first"))
        await pool.push(second, resource("for-second-1"))
        await pool.push(second, resource("for-second-2"))
        found = await scrape(http, metrics_url)
    assert value(found, "anychannel_resources_total", instance=first, outcome="success") == 1
    assert value(found, "anychannel_resources_total", instance="other", outcome="success") == 2
    assert not [key for key in found if ("instance", second) in key[1]]


async def test_outbox_rows_by_state_are_counted_at_open_and_kept_by_the_writes(
    emulator: ZendeskEmulator,
    registry: CollectorRegistry,
    metrics_url: str,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """Rows written, resolved and buried show by state; a second run counts the file's rows
    at open; a closed outbox is no longer counted."""
    emulator.faults.processing_error_ids = frozenset({"o-2"})
    metrics = Metrics(registry)
    path = tmp_path / "outbox.sqlite"
    async with AnyChannelClient(token=TOKEN, base_url=emulator.base_url) as client:
        async with PushPipeline(client, IPID, outbox=path, max_latency=0.01, metrics=metrics) as p:
            await settle(await p.submit_many(resource(f"o-{n}") for n in range(3)))
            await p.flush()
        found = await scrape(http, metrics_url)
        assert {
            s: value(found, "anychannel_outbox_rows", state=s) for s in ("resolved", "dead")
        } == {
            "resolved": 0,
            "dead": 0,
        }
        async with PushPipeline(client, IPID, outbox=path, metrics=metrics) as p:
            found = await scrape(http, metrics_url)
            await p.push(resource("o-3"))
            await p.flush()
            after = await scrape(http, metrics_url)
    states = ("pending", "resolved", "dead")
    assert {s: value(found, "anychannel_outbox_rows", state=s) for s in states} == {
        "pending": 0,
        "resolved": 2,
        "dead": 1,
    }
    assert {s: value(after, "anychannel_outbox_rows", state=s) for s in states} == {
        "pending": 0,
        "resolved": 3,
        "dead": 1,
    }


def test_a_registry_holds_one_metrics(registry: CollectorRegistry) -> None:
    """A second Metrics on one registry is refused (its names are taken), not merged."""
    Metrics(registry)
    with pytest.raises(ConfigurationError, match="metrics"):
        Metrics(registry)
    with pytest.raises(ConfigurationError, match="max_instances"):
        Metrics(CollectorRegistry(), max_instances=-1)


def test_the_library_imports_and_pushes_without_prometheus_client(
    emulator: ZendeskEmulator,
) -> None:
    """In a process where prometheus-client cannot be imported, the package imports and
    pushes; only creating a Metrics fails, naming the extra."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.modules["prometheus_client"] = None  # as if it were not installed
        import anychannel_async as ac
        from datetime import UTC, datetime

        async def main():
            async with ac.AnyChannelClient(token={TOKEN!r}, base_url={emulator.base_url!r}) as c:
                async with ac.PushPipeline(c, {IPID!r}, max_latency=0.01) as pipeline:
                    result = await pipeline.push(ac.ExternalResource(
                        external_id="no-metrics", message="hi",
                        created_at=datetime.now(UTC), author=ac.Author("a-1", name="Ada")))
                    print(result.code)
            try:
                ac.Metrics()
            except ac.ConfigurationError as exc:
                print(exc)

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=cli_env(None),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "success",
        "metrics need prometheus-client: pip install 'anychannel-async[metrics]'",
    ]
    assert emulator.import_count("no-metrics") == 1


# -- the command line ----------------------------------------------------------------------------


def metrics_port(process: subprocess.Popen[str]) -> int:
    """The port the child says it serves metrics on (a line of its output)."""
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"metrics on http://[^:]+:(\d+)/metrics", line)
    assert found is not None, f"no metrics URL in {line!r}"
    return int(found.group(1))


def scrape_blocking(port: int) -> Scrape:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return parse(response.read().decode())


def wait_for_scrape(port: int, check: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    """Scrape until every sample in check has its value (the bound only guards a hang)."""
    found: Scrape = {}
    for _ in range(600):
        found = scrape_blocking(port)
        if all(found.get(key) == want for key, want in check.items()):
            return
        time.sleep(0.05)
    pytest.fail(f"never saw {check}; last scrape: { {k: found.get(k) for k in check} }")


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, tuple(sorted(labels.items())))


def test_consume_serves_its_metrics_and_the_groups_pending_entries(
    emulator: ZendeskEmulator, redis_server: RedisServer, rdb: redis.Redis
) -> None:
    """`consume --metrics-port`: while Zendesk fails, the group's entries stay pending (the
    client retrying) and the gauge says how many; once it works again, they are imported,
    counted, and none is pending."""
    emulator.faults.server_error_rate = 1.0
    add(rdb, [{"external_id": f"c-{n}", **_fields()} for n in range(4)])
    process = start_consumer(
        redis_server, emulator, "w1", "--metrics-port", "0", "--claim-idle", "0.5"
    )
    try:
        port = metrics_port(process)
        stream = {"stream": STREAM, "group": "zendesk"}
        wait_for_scrape(port, {key("anychannel_stream_pending_entries", **stream): 4})
        emulator.faults.server_error_rate = 0.0
        wait_for_scrape(
            port,
            {
                key("anychannel_stream_pending_entries", **stream): 0,
                key("anychannel_stream_lag_entries", **stream): 0,
                key("anychannel_resources_total", instance=IPID, outcome="success"): 4,
            },
        )
        # The CLI's client retried the 503s until Zendesk worked again: one request.
        found = scrape_blocking(port)
        assert value(found, "anychannel_push_requests_total", instance=IPID, status="200") == 1
        assert (value(found, "anychannel_push_retries_total", instance=IPID) or 0) > 0
    finally:
        status, _, stderr = terminate(process)
    assert status == 0, stderr
    assert TOKEN not in stderr


def _fields() -> dict[str, object]:
    return {
        "message": "hello",
        "created_at": "2026-11-25T10:00:00Z",
        "author": {"external_id": "author-1", "name": "Ada"},
    }


def test_serve_serves_the_global_registry_its_module_records_in(tmp_path: Path) -> None:
    """`serve --metrics-port` serves prometheus-client's global registry: a `Metrics()` the
    integration's module created is there."""
    (tmp_path / "metered_app.py").write_text(
        textwrap.dedent(
            """
            from anychannel_async import AccountStore, Metrics
            from anychannel_async.integration import ChannelIntegration

            METRICS = Metrics(max_instances=3)
            METRICS.recorder("from-module").outcome("success")

            integration = ChannelIntegration(
                name="Metered", integration_id="com.metered", base_url="https://b.example.com",
                secret="s" * 32, accounts=AccountStore("accounts.sqlite"),
            )
            """
        )
    )
    process = subprocess.Popen(
        [*CLI, "serve", "metered_app:integration", "--port", "0", "--metrics-port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(None),
    )
    try:
        port = metrics_port(process)
        found = scrape_blocking(port)
        print({k: v for k, v in found.items() if "push_requests_total" in k[0]})
        assert (
            value(found, "anychannel_resources_total", instance="from-module", outcome="success")
            == 1
        )
    finally:
        process.terminate()
        process.communicate(timeout=30)
