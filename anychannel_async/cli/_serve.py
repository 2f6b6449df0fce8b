"""`anychannel-async serve MODULE:ATTR`: run a `ChannelIntegration`, the service Zendesk calls.

``MODULE:ATTR`` names a `ChannelIntegration`, or a function of no arguments returning one, in a
module importable from the current directory (as ``python -m`` finds it). The access log goes to
standard error in `AccessLogger`'s form: method, path without its query, status, time; never a
token or metadata. SIGINT or SIGTERM stops the server after the requests in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys

from aiohttp import web

from anychannel_async.integration import AccessLogger, ChannelIntegration
from anychannel_async.integration._access import RequestErrorFilter

from ._common import UsageError
from ._metrics import add_metrics_option, check_metrics_port, serving_metrics

__all__ = ["add_parser", "run"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "serve",
        help="run a ChannelIntegration: the endpoints Zendesk calls",
        description=(
            "Serve the ChannelIntegration MODULE:ATTR names (or the one a function of no"
            " arguments there returns). Prints the URL it listens on; logs each request"
            " without its query string."
        ),
    )
    parser.add_argument("target", metavar="MODULE:ATTR", help="e.g. myintegration:integration")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8080, help="port to listen on (8080; 0 picks a free one)"
    )
    add_metrics_option(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until a signal: 128 + its number (130 for Ctrl-C, 143 for SIGTERM)."""
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    check_metrics_port(args.metrics_port)
    integration = _load(args.target)
    _keep_request_lines_out_of_the_log()
    with serving_metrics(args.metrics_port):
        return asyncio.run(_serve(integration, args.host, args.port))


def _load(target: str) -> ChannelIntegration:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"give MODULE:ATTR (e.g. myintegration:integration), not {target!r}")
    if os.getcwd() not in sys.path:  # `python -m` puts it there; the console script does not
        sys.path.insert(0, os.getcwd())
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name}: {exc}") from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UsageError(f"{module_name} has no {attribute}") from None
    if not isinstance(found, ChannelIntegration) and callable(found):
        found = found()
    if not isinstance(found, ChannelIntegration):
        raise UsageError(f"{target} is neither a ChannelIntegration nor a function returning one")
    return found


def _keep_request_lines_out_of_the_log() -> None:
    # aiohttp's own errors reach standard error too: not the request lines they quote (their
    # query strings carry metadata). The handlers and levels are the command line's (-v,
    # --log-level, --log-format), set up once for every command.
    logging.getLogger("aiohttp.server").addFilter(RequestErrorFilter())


async def _serve(integration: ChannelIntegration, host: str, port: int) -> int:
    stop = asyncio.Event()
    received: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()

    for signum in _SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    runner = web.AppRunner(
        integration.web_app(),
        access_log_class=AccessLogger,
        access_log=logging.getLogger("aiohttp.access"),
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        for address in runner.addresses:
            print(f"serving {integration.name} on http://{address[0]}:{address[1]}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
        for signum in _SIGNALS:
            loop.remove_signal_handler(signum)
    return 128 + received[0]
