"""The emulator as a standalone server, for demos and for clients in other processes.

The first line on stdout is the base URL, flushed at once, so a parent process that started the
server on port 0 can read where it listens. It runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from ._emulator import DEFAULT_INSTANCE_PUSH_ID, DEFAULT_TOKEN, ZendeskEmulator
from ._faults import Faults

__all__ = ["main"]


def _account(text: str) -> tuple[str, str]:
    instance_push_id, sep, token = text.partition("=")
    if not sep or not instance_push_id or not token:
        raise argparse.ArgumentTypeError(f"expected IPID=TOKEN, got {text!r}")
    return instance_push_id, token


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run an emulator of Zendesk's any_channel API until SIGINT or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--account",
        type=_account,
        action="append",
        metavar="IPID=TOKEN",
        help=(
            "an instance_push_id and its bearer token; repeatable "
            f"(default {DEFAULT_INSTANCE_PUSH_ID}={DEFAULT_TOKEN})"
        ),
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--rate-limit", type=int, help="requests allowed per window (default none)")
    parser.add_argument(
        "--rate-window", type=float, default=60.0, help="rate limit window in seconds (default 60)"
    )
    parser.add_argument(
        "--max-resources", type=int, default=100, help="external_resources per push (default 100)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random decision")
    return parser


def main(
    argv: Sequence[str] | None = None, *, prog: str = "python -m anychannel_async.testing"
) -> int:
    """Parse the command line, serve until a signal, and return the exit status."""
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        faults = Faults(
            seed=args.seed,
            latency=args.latency,
            rate_limit=args.rate_limit,
            rate_window=args.rate_window,
        )
        emulator = ZendeskEmulator(
            accounts=dict(args.account) if args.account else None,
            host=args.host,
            port=args.port,
            faults=faults,
            max_resources_per_request=args.max_resources,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve(emulator))
    except OSError as exc:  # typically the port is taken
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # where the loop cannot install signal handlers (Windows)
        pass
    return 0


async def _serve(emulator: ZendeskEmulator) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with emulator:
        print(emulator.base_url, flush=True)
        await stop.wait()
