"""The command line's parser and dispatch: one subcommand per module of this package.

What every command shares is added here, to the parsers the modules built, so no module
repeats it: the logging options (`add_logging_options`), accepted before the command's name
and after it, and help that shows each option's default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

from anychannel_async._errors import AnyChannelError
from anychannel_async._version import __version__

from . import _accounts, _consume, _demo, _outbox, _produce, _push, _serve, _validate
from ._common import UsageError, add_logging_options, configure_logging

__all__ = ["run"]

EMULATOR = "emulator"


class _ShowDefaults(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help, unless the help already names its default
    (most say it in their own words) or there is none to show (None, False, a flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text.lower()
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or text is argparse.SUPPRESS
        ):
            return action.help
        return f"{text} (default: %(default)s)"


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parser and every subcommand's parser under it, each once."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for sub in action.choices.values():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from _parsers(sub)


def parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand, with the shared options and help."""
    top = argparse.ArgumentParser(
        prog="anychannel-async",
        description="Push conversations into Zendesk through the Channel framework API.",
        epilog=(
            "The logging options go before the command or after it. `anychannel-async COMMAND"
            " --help` shows a command's options."
        ),
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _push.add_parser(commands)
    _validate.add_parser(commands)
    _demo.add_parser(commands)
    _consume.add_parser(commands)
    _produce.add_parser(commands)
    _outbox.add_parser(commands)
    _accounts.add_parser(commands)
    _serve.add_parser(commands)
    commands.add_parser(
        EMULATOR,
        help="run the Zendesk emulator standalone (see `emulator --help`)",
        add_help=False,
    )
    for each in _parsers(top):
        each.formatter_class = _ShowDefaults
        if each.prog.split()[1:2] != [EMULATOR]:  # the emulator parses its own (see run)
            add_logging_options(each)
    return top


def _emulator(arguments: list[str]) -> int | None:
    """Run the emulator when the arguments name it (None when they do not). It has its own
    parser, which lives with the emulator, in testing/; the logging options, before its name
    or after it, are taken off its arguments first."""
    if EMULATOR not in arguments:
        return None
    logging_only = argparse.ArgumentParser(
        prog=f"anychannel-async {EMULATOR}", add_help=False, allow_abbrev=False
    )
    add_logging_options(logging_only)
    args, rest = logging_only.parse_known_args(arguments)
    if rest[:1] != [EMULATOR]:
        return None
    from anychannel_async.testing._standalone import main as emulator_main

    try:
        configure_logging(EMULATOR, args)
    except UsageError as exc:
        print(f"anychannel-async {EMULATOR}: {exc}", file=sys.stderr)
        return 2
    return emulator_main(rest[1:], prog=f"anychannel-async {EMULATOR}", parents=[logging_only])


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    status = _emulator(arguments)
    if status is not None:
        return status
    args = parser().parse_args(arguments)
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
        configure_logging(args.command, args)
        return runner[args.command](args)
    except UsageError as exc:
        print(f"anychannel-async {args.command}: {exc}", file=sys.stderr)
        return 2
    except AnyChannelError as exc:
        print(f"anychannel-async {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
