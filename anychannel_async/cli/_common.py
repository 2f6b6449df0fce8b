"""Options every command that talks to Zendesk shares: where, which account, which credential.

The token is read from the environment only: a command-line flag would land in shell history
and in the process list, where other users of the machine can read it.
"""

from __future__ import annotations

import argparse
import os

from anychannel_async._client import AnyChannelClient

__all__ = ["TOKEN_ENV", "add_connection_options", "client_from_args"]

TOKEN_ENV = "ANYCHANNEL_TOKEN"  # noqa: S105 - the variable's name, not a secret
_IPID_ENV = "ANYCHANNEL_INSTANCE_PUSH_ID"


class UsageError(Exception):
    """The command line or environment is incomplete; the message says what to fix."""


def add_connection_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """--subdomain/--base-url, --instance-push-id, --timeout."""
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--subdomain", help="the Zendesk account: https://SUBDOMAIN.zendesk.com")
    where.add_argument("--base-url", help="the account's base URL instead (e.g. the emulator's)")
    parser.add_argument(
        "--instance-push-id",
        default=os.environ.get(_IPID_ENV),
        help=f"the integration account's instance_push_id (default: ${_IPID_ENV})",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds for one HTTP try (default 30)"
    )


def client_from_args(args: argparse.Namespace) -> tuple[AnyChannelClient, str]:
    """The client and instance_push_id the options describe, the token from the environment."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise UsageError(f"set the integration's access token in ${TOKEN_ENV}")
    if not args.instance_push_id:
        raise UsageError(f"give --instance-push-id (or set ${_IPID_ENV})")
    try:
        client = AnyChannelClient(
            token=token, subdomain=args.subdomain, base_url=args.base_url, timeout=args.timeout
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return client, str(args.instance_push_id)
