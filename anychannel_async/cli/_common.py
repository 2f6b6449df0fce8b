"""Options every command that talks to Zendesk shares: where, which account, which credential.

The token is read from the environment only: a command-line flag would land in shell history
and in the process list, where other users of the machine can read it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from anychannel_async._client import RefusalStopClient as CommandClient
from anychannel_async._errors import AuthenticationError

__all__ = [
    "TOKEN_ENV",
    "CommandClient",
    "UsageError",
    "add_connection_options",
    "check_accounts_options",
    "client_from_args",
    "connection_options_given",
    "log_to_stderr",
    "per_account_limit",
    "refusal_message",
]

TOKEN_ENV = "ANYCHANNEL_TOKEN"  # noqa: S105 - the variable's name, not a secret
_IPID_ENV = "ANYCHANNEL_INSTANCE_PUSH_ID"
_TIMEOUT = 30.0
# PushPool's own default: an account's share of the pool.
_MAX_PENDING_PER_ACCOUNT = 2_000


class UsageError(Exception):
    """The command line or environment is incomplete; the message says what to fix."""


def add_connection_options(
    parser: argparse.ArgumentParser, *, required: bool = True, accounts: bool = False
) -> None:
    """--subdomain/--base-url, --instance-push-id, --timeout; with accounts, --accounts (in
    place of the three first) and --max-pending-per-account."""
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--subdomain", help="the Zendesk account: https://SUBDOMAIN.zendesk.com")
    where.add_argument("--base-url", help="the account's base URL instead (e.g. the emulator's)")
    if accounts:
        where.add_argument(
            "--accounts",
            metavar="PATH",
            help=(
                "an accounts store (see `accounts add`): push to many accounts, each input"
                " naming its own instance_push_id; the token comes from the store"
            ),
        )
    parser.add_argument(
        "--instance-push-id",
        help=f"the integration account's instance_push_id (default: ${_IPID_ENV})",
    )
    parser.add_argument(
        "--timeout", type=float, default=_TIMEOUT, help="seconds for one HTTP try (default 30)"
    )
    if accounts:
        parser.add_argument(
            "--max-pending-per-account",
            type=int,
            default=None,
            metavar="N",
            help=(
                "with --accounts: resources pending per account at most, so that one slow or"
                f" unreachable account holds only this share of --max-pending (default"
                f" {_MAX_PENDING_PER_ACCOUNT:,})"
            ),
        )


def check_accounts_options(args: argparse.Namespace) -> str | None:
    """The accounts store's path when --accounts is given, checked against the options it
    excludes; None without it. UsageError when the options do not go together, or the store
    is not there (opening a missing path would create an empty store: a typo would read as
    "no accounts", every line unknown)."""
    path: str | None = getattr(args, "accounts", None)
    if path is None:
        if getattr(args, "max_pending_per_account", None) is not None:
            raise UsageError("--max-pending-per-account goes with --accounts")
        return None
    if args.instance_push_id is not None:
        raise UsageError(
            "--accounts and --instance-push-id are mutually exclusive: with --accounts, each"
            " input names its own instance_push_id"
        )
    if not os.path.exists(path):
        raise UsageError(f"--accounts: no accounts store at {path} (see `accounts add`)")
    return path


def per_account_limit(args: argparse.Namespace) -> int:
    """--max-pending-per-account, or its default."""
    given: int | None = args.max_pending_per_account
    return _MAX_PENDING_PER_ACCOUNT if given is None else given


def connection_options_given(args: argparse.Namespace) -> list[str]:
    """The options beside --subdomain/--base-url given on the command line (not defaults)."""
    given = []
    if args.instance_push_id is not None:
        given.append("--instance-push-id")
    if args.timeout != _TIMEOUT:
        given.append("--timeout")
    return given


def client_from_args(args: argparse.Namespace) -> tuple[CommandClient, str]:
    """The client and instance_push_id the options describe, the token from the environment."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise UsageError(f"set the integration's access token in ${TOKEN_ENV}")
    # The environment's instance is read here, not as the flag's default: a command can then
    # tell the flag given (a wish to push) from the variable set.
    instance_push_id = args.instance_push_id or os.environ.get(_IPID_ENV)
    if not instance_push_id:
        raise UsageError(f"give --instance-push-id (or set ${_IPID_ENV})")
    try:
        client = CommandClient(
            token=token, subdomain=args.subdomain, base_url=args.base_url, timeout=args.timeout
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return client, str(instance_push_id)


def refusal_message(refusal: AuthenticationError, instance_push_id: str) -> str:
    """The one message a command prints when Zendesk refused its token."""
    return (
        f"Zendesk refused the token in ${TOKEN_ENV} for instance push id {instance_push_id}"
        f" (HTTP {refusal.status}); stopped without sending another request"
    )


class _NotTheRefusal(logging.Filter):
    """Drops the pipeline's per-request reports of a refused token: the command says it once,
    in its own words, instead of once per request that was in flight."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, AuthenticationError) for arg in args)


def log_to_stderr(command: str) -> None:
    """Show the library's warnings (Zendesk unreachable, replays, entries left pending) on
    stderr, prefixed with the command."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"anychannel-async {command}: %(message)s"))
    handler.addFilter(_NotTheRefusal())
    log = logging.getLogger("anychannel_async")
    log.addHandler(handler)
    if log.level == logging.NOTSET:
        log.setLevel(logging.WARNING)
