"""Why a command stops before its input ran out: a signal, a refused token, a failed file that
cannot be written.

The first cause is the one records and the summary name. A signal always decides the exit
status (128 + its number), whatever stopped the command first; a second signal gives up at
once by cancelling the command's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Iterator

from anychannel_async._errors import AuthenticationError
from anychannel_async._pipeline import PushPipeline
from anychannel_async._pool import PushPool

__all__ = ["Stop", "close_on_halt", "stop_on_signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop:
    """A command's stop request: set once, by whichever cause comes first."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._halt = asyncio.Event()  # a signal or a refusal: no new request
        #: The first signal received, if any.
        self.signum: int | None = None
        #: True once a second signal asked to give up at once.
        self.at_once = False
        #: Zendesk's refusal of the token, if that stopped the command.
        self.refusal: AuthenticationError | None = None
        #: The error writing the failed file, if that stopped the command.
        self.write_error: OSError | None = None
        #: The first cause, as records name it ("stopped by SIGTERM").
        self.cause = ""

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    async def wait_requested(self) -> None:
        await self._event.wait()

    async def wait_halted(self) -> None:
        await self._halt.wait()

    @property
    def halted(self) -> bool:
        """True once no new request may start: a signal or a refused token. (A failed file
        that broke stops reading only: what was accepted is still pushed.)"""
        return self._halt.is_set()

    @property
    def headline(self) -> str:
        """What stopped the command, for its summary."""
        if self.signum is not None and self.cause.startswith("stopped by"):
            return self.cause
        if self.refusal is not None:
            return "stopped: Zendesk refused the token"
        if self.signum is not None:
            return f"{self.signal_name} received after the stop"
        return "stopped: the failed file could not be written" if self.requested else ""

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def signalled(self, signum: int) -> bool:
        """Record a signal; True when it is the second one (give up at once)."""
        if self.signum is not None:
            self.at_once = True
            return True
        self.signum = signum
        self._request(f"stopped by {self.signal_name}")
        self._halt.set()
        return False

    def refused(self, refusal: AuthenticationError) -> None:
        if self.refusal is None:
            self.refusal = refusal
        self._request("not pushed: Zendesk refused the token")
        self._halt.set()

    def write_failed(self, error: OSError) -> None:
        if self.write_error is None:
            self.write_error = error
        self._request("not read: the failed file could not be written")

    def exit_status(self, *, all_imported: bool) -> int:
        """128 + the signal's number after a signal; 1 after another stop or a line not
        imported; else 0."""
        if self.signum is not None:
            return 128 + self.signum
        if self.requested or not all_imported:
            return 1
        return 0

    def _request(self, cause: str) -> None:
        if not self._event.is_set():
            self.cause = cause
            self._event.set()


@contextlib.contextmanager
def stop_on_signals(stop: Stop, command: str, *, waiting: str = "") -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM request the stop; a second one cancels the task
    running the block (the caller turns that into exit status 130 or 143). waiting says what
    the stop waits for beyond the requests in flight (standard input to end, say)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal(signum: int) -> None:
        if stop.signalled(signum):
            if task is not None:
                task.cancel()
            return
        # Right away, not in the summary: settling requests in flight may take a while.
        print(
            f"anychannel-async {command}: {stop.signal_name} received, stopping: requests in"
            f" flight settle, lines not imported are kept{waiting}; send it again to stop at"
            " once",
            file=sys.stderr,
            flush=True,
        )

    installed = []
    for signum in _SIGNALS:
        with contextlib.suppress(NotImplementedError):  # Windows: KeyboardInterrupt as before
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _close_when_halted(pipeline: PushPipeline | PushPool, stop: Stop) -> None:
    await stop.wait_halted()
    await pipeline.close(flush=False)


@contextlib.asynccontextmanager
async def close_on_halt(pipeline: PushPipeline | PushPool, stop: Stop) -> AsyncIterator[None]:
    """Within the block, a signal or a refused token closes the pipeline (or every pipeline of
    a pool) at once without flushing: no new request starts, resources not yet sent fail with
    `ClosedError`, requests in flight settle within its close_timeout. Leaving the block waits
    for that close."""
    closer = asyncio.create_task(_close_when_halted(pipeline, stop))
    try:
        yield
        if stop.halted:
            await closer
    finally:
        if not closer.done():
            closer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closer
