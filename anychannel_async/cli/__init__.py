"""The `anychannel-async` console command: one subcommand per module in this package."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anychannel-async",
        description="Push conversations into Zendesk through the Channel framework API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="ingest generated conversations into the emulator")
    demo.add_argument("--count", type=int, default=2000, help="resources to ingest (default 2000)")

    commands.add_parser(
        "emulator",
        help="run the Zendesk emulator standalone (options: see `emulator --help`)",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    import sys

    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from anychannel_async.testing._standalone import main as emulator_main

        return emulator_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command == "demo":
        from ._demo import main as demo_main

        return demo_main(args.count)
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover
