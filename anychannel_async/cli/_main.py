"""The command line's parser and dispatch: one subcommand per module of this package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from anychannel_async._errors import AnyChannelError

from . import _accounts, _consume, _demo, _outbox, _produce, _push, _serve, _validate
from ._common import UsageError

__all__ = ["run"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anychannel-async",
        description="Push conversations into Zendesk through the Channel framework API.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _push.add_parser(commands)
    _validate.add_parser(commands)
    _demo.add_parser(commands)
    _consume.add_parser(commands)
    _produce.add_parser(commands)
    _outbox.add_parser(commands)
    _accounts.add_parser(commands)
    _serve.add_parser(commands)
    commands.add_parser(
        "emulator",
        help="run the Zendesk emulator standalone (see `emulator --help`)",
        add_help=False,
    )
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["emulator"]:
        # The emulator has its own parser; it lives with the emulator, in testing/.
        from anychannel_async.testing._standalone import main as emulator_main

        return emulator_main(arguments[1:], prog="anychannel-async emulator")
    args = _parser().parse_args(arguments)
    runner = {
        "push": _push.run,
        "validate-token": _validate.run,
        "demo": _demo.run,
        "outbox": _outbox.run,
        "consume": _consume.run,
        "produce": _produce.run,
        "accounts": _accounts.run,
        "serve": _serve.run,
    }
    try:
        return runner[args.command](args)
    except UsageError as exc:
        print(f"anychannel-async {args.command}: {exc}", file=sys.stderr)
        return 2
    except AnyChannelError as exc:
        print(f"anychannel-async {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
