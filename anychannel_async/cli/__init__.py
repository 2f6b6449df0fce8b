"""The `anychannel-async` console command: one subcommand per module in this package.

Exit status: 0 success, 1 the work failed (a resource not imported, a token refused),
2 a usage error (options, environment), 128 + N after signal N (130: Ctrl-C).

This module imports nothing but what `main` needs first: the commands (and aiohttp with
them) are imported inside it, where a Ctrl-C while they load ends the command with exit
status 130 like any other, not with a traceback. SIGTERM keeps its default (the process
ends at once) until a command installs its own handler. The package's own ``__init__``
runs before any of this (Python imports a package before its submodules), so it stays
outside the handler for as long as it imports eagerly.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        from ._main import run

        return run(argv)
    except KeyboardInterrupt:
        return 130
