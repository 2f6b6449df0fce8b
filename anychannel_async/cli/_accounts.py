"""`anychannel-async accounts add|list|remove|check PATH`: tend an accounts store.

A token is read from ``$ANYCHANNEL_TOKEN`` or, when that is unset, from one line of standard
input (without echo at a terminal), never from the command line: argv lands in shell history
and in the process list. No command prints a token, the stored ones included.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import getpass
import math
import os
import sys
from collections.abc import Sequence

from anychannel_async._accounts import Account, AccountStore
from anychannel_async._client import AnyChannelClient, RetryPolicy
from anychannel_async._errors import AnyChannelError, AuthenticationError, ConfigurationError

from ._common import TOKEN_ENV, UsageError, shown_id, store_missing

__all__ = ["add_parser", "run"]

# A check is a diagnosis, not a delivery: a host that is down is reported after a few quick
# tries rather than the client's full minute of retries.
_CHECK_RETRY = RetryPolicy(max_tries=3, max_time=10.0)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("accounts", help="add, list, remove or check stored accounts")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="store an account (replacing one with the same instance push id)",
        description=(
            f"Store an account. Its token comes from ${TOKEN_ENV} or, when that is unset,"
            " from one line of standard input; never from a flag."
        ),
    )
    add.add_argument("path", help="the accounts store (created, readable by its owner only)")
    add.add_argument("--instance-push-id", required=True, help="the install's instance_push_id")
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--subdomain", help="the Zendesk account: https://SUBDOMAIN.zendesk.com")
    where.add_argument("--base-url", help="the account's base URL instead (e.g. the emulator's)")
    listing = actions.add_parser("list", help="instance push ids and base URLs (no tokens)")
    listing.add_argument("path")
    remove = actions.add_parser("remove", help="forget an account")
    remove.add_argument("path")
    remove.add_argument("instance_push_id", metavar="ID")
    check = actions.add_parser(
        "check", help="ask Zendesk whether each stored token is valid (exit 1 if any is not)"
    )
    check.add_argument("path")
    check.add_argument(
        "--concurrency", type=int, default=10, help="accounts checked at once (default 10)"
    )
    check.add_argument(
        "--timeout", type=float, default=30.0, help="seconds for one HTTP try (default 30)"
    )


def run(args: argparse.Namespace) -> int:
    """Carry out the action: 0 on success, 1 when an account is absent or a check failed."""
    if args.action == "add":
        return asyncio.run(_add(args.path, _account_from_args(args)))
    # Opening a missing path would create an empty store: a typo would read as "no accounts".
    if store_missing(args.path):
        raise UsageError(f"no accounts store at {args.path}")
    if args.action == "list":
        return asyncio.run(_list(args.path))
    if args.action == "remove":
        return asyncio.run(_remove(args.path, args.instance_push_id))
    if args.concurrency < 1:
        raise UsageError(f"--concurrency must be >= 1, got {args.concurrency}")
    if not 0 < args.timeout < math.inf:
        raise UsageError(f"--timeout must be a finite number of seconds > 0, got {args.timeout}")
    return asyncio.run(
        _check(args.path, concurrency=args.concurrency, seconds_per_try=args.timeout)
    )


def _read_token() -> str:
    """The token from the environment, else one line of standard input."""
    token = os.environ.get(TOKEN_ENV)
    if token is None:
        if sys.stdin.isatty():
            token = getpass.getpass("token: ")
        else:
            token = sys.stdin.readline().rstrip("\r\n")
    if not token:
        raise UsageError(f"no token: set ${TOKEN_ENV}, or write it as one line on standard input")
    return token


def _account_from_args(args: argparse.Namespace) -> Account:
    try:
        return Account(
            args.instance_push_id,
            subdomain=args.subdomain,
            base_url=args.base_url,
            token=_read_token(),
        )
    except ConfigurationError as exc:  # never quotes the token
        raise UsageError(str(exc)) from None


async def _add(path: str, account: Account) -> int:
    async with AccountStore(path) as store:
        replaced = await store.get(account.instance_push_id) is not None
        await store.put(account)
    verb = "replaced" if replaced else "added"
    print(f"{verb} {shown_id(account.instance_push_id)} ({account.base_url}) in {store.path}")
    return 0


async def _list(path: str) -> int:
    async with AccountStore(path) as store:
        accounts = await store.list()
    if not accounts:
        print(f"no accounts in {store.path}")
        return 0
    _print_table(
        ("instance push id", "base URL"),
        [(shown_id(a.instance_push_id), a.base_url) for a in accounts],
    )
    return 0


async def _remove(path: str, instance_push_id: str) -> int:
    async with AccountStore(path) as store:
        removed = await store.remove(instance_push_id)
    if not removed:
        print(
            f"no account {shown_id(instance_push_id)} in {store.path}; nothing removed",
            file=sys.stderr,
        )
        return 1
    print(f"removed {shown_id(instance_push_id)} from {store.path}")
    return 0


async def _check(path: str, *, concurrency: int, seconds_per_try: float) -> int:
    async with AccountStore(path) as store:
        accounts = await store.list()
    if not accounts:
        print(f"no accounts in {store.path}")
        return 0
    room = asyncio.Semaphore(concurrency)

    async def check(account: Account) -> tuple[str, str]:
        async with room:
            return await _check_one(account, seconds_per_try)

    results = await asyncio.gather(*(check(account) for account in accounts))
    _print_table(
        ("instance push id", "base URL", "result"),
        [
            (shown_id(a.instance_push_id), a.base_url, shown)
            for a, (_, shown) in zip(accounts, results, strict=True)
        ],
    )
    kinds = collections.Counter(kind for kind, _ in results)
    print(f"\n{kinds['ok']} ok, {kinds['refused']} refused, {kinds['error']} errors")
    return 0 if kinds["ok"] == len(accounts) else 1


async def _check_one(account: Account, seconds_per_try: float) -> tuple[str, str]:
    """ok, refused or error, and how to show it: with the HTTP status, or the error's class
    and message (the client redacts any echo of the credentials in it)."""
    try:
        async with AnyChannelClient(
            token=account.token,
            basic_auth=account.basic_auth,
            base_url=account.base_url,
            timeout=seconds_per_try,
            retry=_CHECK_RETRY,
        ) as client:
            await client.validate_token(account.instance_push_id)
    except AuthenticationError as exc:
        return "refused", f"refused (HTTP {exc.status})"
    except AnyChannelError as exc:
        return "error", f"error: {type(exc).__name__}: {exc}"
    return "ok", "ok"


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    for row in (headers, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
