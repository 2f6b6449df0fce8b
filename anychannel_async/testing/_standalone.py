"""The emulator as a standalone server, for demos and for clients in other processes.

The first line on stdout is the base URL, flushed at once, so a parent process that started the
server on port 0 can read where it listens. It runs until SIGINT or SIGTERM.

Accounts (instance_push_id and token) come from ``$ANYCHANNEL_EMULATOR_ACCOUNTS`` or
``--accounts-file``, each a JSON object ``{"IPID": "TOKEN", ...}`` (a token may also be a
``["username", "password"]`` pair), and from ``--account IPID=TOKEN``, in that order, a later
source overriding an earlier one for the same id. Prefer the first two: a command line is
visible to every user of the machine (``ps``), the environment and a file are not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence

from ._emulator import DEFAULT_INSTANCE_PUSH_ID, DEFAULT_TOKEN, ZendeskEmulator
from ._faults import Faults

__all__ = ["ACCOUNTS_ENV", "main"]

ACCOUNTS_ENV = "ANYCHANNEL_EMULATOR_ACCOUNTS"

_Credentials = str | tuple[str, str]


def _account(text: str) -> tuple[str, str]:
    instance_push_id, sep, token = text.partition("=")
    if not sep or not instance_push_id or not token:
        raise argparse.ArgumentTypeError(f"expected IPID=TOKEN, got {text!r}")
    return instance_push_id, token


def _accounts_from_json(text: str, where: str) -> dict[str, _Credentials]:
    """The accounts of a JSON object; ValueError saying what is wrong (never quoting a token)."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where}: not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object {{instance_push_id: token}}")
    accounts: dict[str, _Credentials] = {}
    for instance_push_id, credentials in obj.items():
        if isinstance(credentials, str) and credentials and instance_push_id:
            accounts[instance_push_id] = credentials
        elif (
            isinstance(credentials, list)
            and len(credentials) == 2
            and all(isinstance(part, str) and part for part in credentials)
        ):
            accounts[instance_push_id] = (credentials[0], credentials[1])
        else:
            raise ValueError(
                f"{where}: the account {instance_push_id!r} needs a non-empty token, or a"
                " [username, password] pair"
            )
    return accounts


def _accounts(args: argparse.Namespace) -> dict[str, _Credentials] | None:
    """Accounts from the environment, then the file, then --account; None: the default."""
    accounts: dict[str, _Credentials] = {}
    given = False
    text = os.environ.get(ACCOUNTS_ENV)
    if text is not None:
        accounts.update(_accounts_from_json(text, f"${ACCOUNTS_ENV}"))
        given = True
    if args.accounts_file is not None:
        try:
            with open(args.accounts_file, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise ValueError(
                f"--accounts-file {args.accounts_file}: {exc.strerror or exc}"
            ) from None
        accounts.update(_accounts_from_json(text, f"--accounts-file {args.accounts_file}"))
        given = True
    if args.account:
        accounts.update(args.account)
        given = True
    if given and not accounts:
        raise ValueError(f"no account given (${ACCOUNTS_ENV} or --accounts-file is empty)")
    return accounts if given else None


def _parser(prog: str, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        parents=parents,
        description=(
            "Run an emulator of Zendesk's any_channel API until SIGINT or SIGTERM. Accounts"
            f" come from ${ACCOUNTS_ENV} or --accounts-file (a JSON object"
            ' {"IPID": "TOKEN"}), then --account.'
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free one)")
    parser.add_argument(
        "--account",
        type=_account,
        action="append",
        metavar="IPID=TOKEN",
        help=(
            "an instance_push_id and its bearer token; repeatable. Visible to every user of"
            f" the machine: prefer ${ACCOUNTS_ENV} or --accounts-file. (Default, when no"
            f" account is given at all: {DEFAULT_INSTANCE_PUSH_ID}={DEFAULT_TOKEN})"
        ),
    )
    parser.add_argument(
        "--accounts-file",
        metavar="PATH",
        help='a JSON object of accounts, {"IPID": "TOKEN", ...}',
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before every answer (default 0)"
    )
    parser.add_argument("--rate-limit", type=int, help="requests allowed per window (default none)")
    parser.add_argument(
        "--rate-window", type=float, default=60.0, help="rate limit window in seconds (default 60)"
    )
    parser.add_argument(
        "--max-resources", type=int, default=100, help="external_resources per push (default 100)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every random decision (default 0)"
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "python -m anychannel_async.testing",
    parents: Sequence[argparse.ArgumentParser] = (),
) -> int:
    """Parse the command line, serve until a signal, and return the exit status. parents:
    options a caller took off argv already (the command line's logging options), for --help."""
    parser = _parser(prog, parents)
    args = parser.parse_args(argv)
    try:
        faults = Faults(
            seed=args.seed,
            latency=args.latency,
            rate_limit=args.rate_limit,
            rate_window=args.rate_window,
        )
        emulator = ZendeskEmulator(
            accounts=_accounts(args),
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
