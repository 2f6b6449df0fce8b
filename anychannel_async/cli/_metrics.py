"""``--metrics-port``: the commands that run for long (``consume``, ``serve``) serve Prometheus
metrics over HTTP.

The endpoint serves prometheus-client's global registry, where a `Metrics()` created without a
registry records: ``consume`` creates one for its pipeline or pool and its consumer; ``serve``
creates none (its integration's module may, for a `PushPool` of its own). It listens on every
interface, as prometheus-client does, so a Prometheus on another machine can scrape it: it
shows instance push ids and counts, never a token.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from ._common import UsageError

__all__ = ["add_metrics_option", "check_metrics_port", "serving_metrics"]

_NEED = "--metrics-port needs prometheus-client: pip install 'anychannel-async[metrics]'"


def add_metrics_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help=(
            "serve Prometheus metrics on http://0.0.0.0:PORT/metrics (0 picks a free port;"
            " default: none); needs the [metrics] extra"
        ),
    )


def check_metrics_port(port: int | None) -> None:
    """UsageError for a port out of range, or when prometheus-client is missing."""
    if port is None:
        return
    if not 0 <= port <= 65535:
        raise UsageError(f"--metrics-port must be 0..65535, got {port}")
    try:
        import prometheus_client  # noqa: F401 - only to say what to install, before any work
    except ImportError:
        raise UsageError(_NEED) from None


@contextlib.contextmanager
def serving_metrics(port: int | None) -> Iterator[None]:
    """Serve the global registry on port while inside (nothing when port is None); prints
    the URL it listens on."""
    if port is None:
        yield
        return
    check_metrics_port(port)
    import prometheus_client

    try:
        server, thread = prometheus_client.start_http_server(port)
    except OSError as exc:
        raise UsageError(
            f"--metrics-port: cannot listen on {port}: {exc.strerror or exc}"
        ) from None
    try:
        print(f"metrics on http://0.0.0.0:{server.server_port}/metrics", flush=True)
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
