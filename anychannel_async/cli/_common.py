"""Options commands share: where, which account, which credential; and how every command logs.

The token is read from the environment only: a command-line flag would land in shell history
and in the process list, where other users of the machine can read it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from collections.abc import Mapping

import orjson

from anychannel_async._accounts import REDIS_SCHEMES
from anychannel_async._client import RefusalStopClient as CommandClient
from anychannel_async._errors import AuthenticationError

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "TOKEN_ENV",
    "CommandClient",
    "JsonFormatter",
    "UsageError",
    "add_connection_options",
    "add_logging_options",
    "check_accounts_options",
    "client_from_args",
    "configure_logging",
    "connection_options_given",
    "log_level",
    "per_account_limit",
    "refusal_message",
    "shown_id",
    "store_missing",
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
    if store_missing(path):
        raise UsageError(f"--accounts: no accounts store at {path} (see `accounts add`)")
    return path


def shown_id(instance_push_id: str) -> str:
    """An instance push id as a command shows it: one with control characters (an escape
    sequence that would drive the terminal) quoted and escaped."""
    return instance_push_id if instance_push_id.isprintable() else repr(instance_push_id)


def store_missing(path: str) -> bool:
    """Whether path names an accounts file that is not there (a ``redis://`` URL names none:
    it is `AccountStore`'s to reach, and its errors hide the URL's password)."""
    return not path.startswith(REDIS_SCHEMES) and not os.path.exists(path)


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


# -- logging: one configuration for every command ---------------------------------------------

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
# Long-running services log their progress and requests at INFO; a one-shot command prints its
# own summary and shows the library's warnings only.
_DEFAULT_LEVEL = {"consume": logging.INFO, "serve": logging.INFO}
# The loggers the level applies to: the package's (``anychannel_async`` and its children, the
# README's "Logging" lists them) and serve's access log. Every other logger keeps the root's
# WARNING: -vv shows the package's debug lines, not aiohttp's or asyncio's.
_LOGGERS = ("anychannel_async", "aiohttp.access")


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    """-v/--verbose, --log-level, --log-format. Their defaults are SUPPRESS: the options are on
    the top-level parser and on every subcommand's, and a subcommand must not overwrite with
    its default what was given before the command's name."""
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help=(
            "log more: -v adds info lines, -vv debug lines (default: warnings and errors;"
            " consume and serve: info)"
        ),
    )
    group.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=argparse.SUPPRESS,
        help="the level of the package's loggers, instead of -v (default: warning; consume and"
        " serve: info)",
    )
    group.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=argparse.SUPPRESS,
        help=(
            "text: one line per event on stderr; json: one JSON object per line, for a log"
            " collector (default: text)"
        ),
    )


def log_level(command: str, args: argparse.Namespace) -> int:
    """The level the options ask for: --log-level, else the command's default lowered one step
    per -v. UsageError when both are given."""
    verbose: int = getattr(args, "verbose", 0)
    named: str | None = getattr(args, "log_level", None)
    if named is not None:
        if verbose:
            raise UsageError("give -v or --log-level, not both")
        return logging.getLevelNamesMapping()[named.upper()]
    return max(logging.DEBUG, _DEFAULT_LEVEL.get(command, logging.WARNING) - 10 * verbose)


def configure_logging(command: str, args: argparse.Namespace) -> None:
    """Send log records to stderr, as the options say (see `add_logging_options`).

    One handler, on the root logger; nothing is logged before this runs, since every command
    is dispatched after it."""
    level = log_level(command, args)
    handler = logging.StreamHandler(sys.stderr)
    if getattr(args, "log_format", "text") == "json":
        handler.setFormatter(JsonFormatter(command))
    else:
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s %(levelname)s anychannel-async {command} %(name)s: %(message)s"
            )
        )
    handler.addFilter(_NotTheRefusal())
    root = logging.getLogger()
    # A program that runs `main` more than once (a test) gets one handler, not one per run.
    for earlier in list(root.handlers):
        if any(isinstance(f, _NotTheRefusal) for f in earlier.filters):
            root.removeHandler(earlier)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(level)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, command, message, the
    record's ``data`` (a mapping given as ``extra={"data": {...}}``: counts a collector can
    graph) and, for a record with an exception, its traceback as ``exception``."""

    def __init__(self, command: str) -> None:
        super().__init__()
        self._command = command

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "command": self._command,
            "message": record.getMessage(),
        }
        data = getattr(record, "data", None)
        if isinstance(data, Mapping):
            entry.update({str(key): value for key, value in data.items() if key not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:
            # orjson refuses a lone surrogate (JSON's \ud800 escape puts one in a forged
            # request's text) and an integer beyond 64 bits; the stdlib escapes both, so the
            # line is not lost to a "Logging error" traceback.
            return json.dumps(entry, default=str, separators=(",", ":"))


class _NotTheRefusal(logging.Filter):
    """Drops the pipeline's per-request reports of a refused token: the command says it once,
    in its own words, instead of once per request that was in flight."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, AuthenticationError) for arg in args)
