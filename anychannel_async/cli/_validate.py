"""`anychannel-async validate-token`: check the credentials against the account."""

from __future__ import annotations

import argparse
import asyncio

from anychannel_async._client import AnyChannelClient
from anychannel_async._errors import AuthenticationError

from ._common import add_connection_options, client_from_args

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "validate-token", help="check that $ANYCHANNEL_TOKEN is valid for the account"
    )
    add_connection_options(parser)


def run(args: argparse.Namespace) -> int:
    """0 when Zendesk accepts the token, 1 when it refuses it."""
    return asyncio.run(_validate(*client_from_args(args)))


async def _validate(client: AnyChannelClient, instance_push_id: str) -> int:
    async with client:
        try:
            await client.validate_token(instance_push_id)
        except AuthenticationError as exc:
            print(f"token refused: {exc}")
            return 1
    print(f"token valid for {instance_push_id} at {client.base_url}")
    return 0
