"""The ingest loop shared by `push` and `demo`: feed a pipeline, tally outcomes, keep failures.

Memory stays flat whatever the input size: lines are read in bounded chunks off the event
loop, the pipeline's ``max_pending`` bounds what is in flight, and each outcome is tallied by
a done callback instead of a list of futures. Every line ends counted: imported, failed with
its error in the failed file, or refused before sending (malformed, invalid).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import IO

from tqdm import tqdm

from anychannel_async._errors import AnyChannelError, ValidationError
from anychannel_async._models import ExternalResource, PushResult
from anychannel_async._pipeline import PushPipeline
from anychannel_async._serde import converter, resource_from_json

__all__ = ["Ingest", "decode_line", "raw_text", "read_chunks"]

# Lines read per trip to the reader thread: enough to amortise the hop, small enough to keep
# memory flat however large the file.
_READ_HINT = 256 * 1024
_ENVELOPE_KEYS = frozenset({"line", "error", "resource", "raw"})


async def read_chunks(stream: IO[bytes]) -> AsyncIterator[list[tuple[int, bytes]]]:
    """Yield lists of (line number, raw bytes) from a binary stream, reading in a thread so a
    slow stdin never blocks the event loop (and with it the pipeline's requests).

    Lines stay bytes: each is decoded on its own (see decode_line), so one line that is not
    UTF-8 is that line's failure, never the whole chunk's.
    """
    number = 0
    while True:
        chunk = await asyncio.to_thread(stream.readlines, _READ_HINT)
        if not chunk:
            return
        yield [(number := number + 1, raw) for raw in chunk]


def decode_line(number: int, raw: bytes) -> str:
    """The line's text (a byte order mark opening line 1 dropped); UnicodeDecodeError when it
    is not UTF-8."""
    return raw.decode("utf-8-sig" if number == 1 else "utf-8")


def raw_text(raw: bytes) -> str:
    """A line that does not decode, shown as text (bad bytes as backslash escapes)."""
    return raw.decode("utf-8", errors="backslashreplace").strip()


class Ingest:
    """Submits resources to a pipeline and accounts for every one of them."""

    def __init__(
        self,
        pipeline: PushPipeline,
        *,
        failed: IO[str] | None = None,
        progress: bool = False,
        total: int | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._failed = failed
        self.outcomes: Counter[str] = Counter()
        self.started = time.perf_counter()
        self._bar = tqdm(
            total=total,
            unit="res",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.2,
        )

    @property
    def all_imported(self) -> bool:
        """True when every resource seen so far was imported (success or already_imported)."""
        return all(o in ("success", "already_imported") for o in self.outcomes)

    async def submit_lines(self, lines: Sequence[tuple[int, bytes | str]]) -> None:
        """Parse and submit a chunk of lines together (one outbox transaction, if any)."""
        parsed = [(number, self._parse(number, text)) for number, text in lines]
        ready = [(number, r) for number, r in parsed if r is not None]
        try:
            futures = await self._pipeline.submit_many([r for _, r in ready])
        except ValidationError:  # one resource too large: find it, keep the others
            for number, resource in ready:
                await self.submit(number, resource)
            return
        for (number, resource), future in zip(ready, futures, strict=True):
            future.add_done_callback(functools.partial(self._settled, number, resource))

    def _parse(self, number: int, line: bytes | str) -> ExternalResource | None:
        """The resource on a line, or None (and the failure recorded) when there is none."""
        if isinstance(line, bytes):
            try:
                text = decode_line(number, line)
            except UnicodeDecodeError as exc:
                self._record_failure(number, "malformed", f"not UTF-8: {exc}", raw=raw_text(line))
                return None
        else:
            text = line
        text = text.strip()
        if not text:
            return None
        try:
            obj = json.loads(text)
        except ValueError as exc:
            self._record_failure(number, "malformed", f"not JSON: {exc}", raw=text)
            return None
        except RecursionError:
            self._record_failure(number, "malformed", "not JSON: nested too deeply", raw=text)
            return None
        if isinstance(obj, dict) and "error" in obj and obj.keys() <= _ENVELOPE_KEYS:
            # A line of an earlier run's failed file: retry what it holds.
            if "resource" not in obj:
                self._record_failure(number, "malformed", str(obj["error"]), raw=obj.get("raw"))
                return None
            obj = obj["resource"]
        try:
            return resource_from_json(obj)
        except ValidationError as exc:
            self._record_failure(number, "invalid", str(exc), resource=obj)
            return None

    async def submit(self, number: int, resource: ExternalResource) -> None:
        """Submit one resource; its outcome is tallied when it resolves."""
        try:
            future = await self._pipeline.submit(resource)
        except ValidationError as exc:  # e.g. too large for one request
            self._record_failure(number, "invalid", str(exc), resource=resource)
            return
        future.add_done_callback(functools.partial(self._settled, number, resource))

    def _settled(
        self, number: int, resource: ExternalResource, future: asyncio.Future[PushResult]
    ) -> None:
        if future.cancelled():
            self._record_failure(number, "cancelled", "cancelled", resource=resource)
            return
        error = future.exception()
        if error is None:
            self._count(str(future.result().code))
        elif isinstance(error, AnyChannelError):
            self._record_failure(
                number, type(error).__name__, f"{type(error).__name__}: {error}", resource
            )
        else:  # pragma: no cover - the pipeline only fails futures with AnyChannelError
            raise error

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] += 1
        self._bar.update(1)
        if self._bar.n % 256 == 0:
            self._bar.set_postfix(self.outcomes, refresh=False)

    def _record_failure(
        self,
        number: int,
        outcome: str,
        error: str,
        resource: ExternalResource | object = None,
        *,
        raw: object = None,
    ) -> None:
        self._count(outcome)
        if self._failed is None:
            return
        entry: dict[str, object] = {"line": number, "error": error}
        try:
            if isinstance(resource, ExternalResource):
                entry["resource"] = converter.unstructure(resource)
            elif resource is not None:
                entry["resource"] = resource
            if raw is not None:
                entry["raw"] = raw
            line = json.dumps(entry, ensure_ascii=False)
        except RecursionError:  # nested too deeply to write back: keep the line and error
            entry = {"line": number, "error": error}
            line = json.dumps(entry, ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (from a \\ud800 escape): keep it escaped
            line = json.dumps(entry)
        self._failed.write(line + "\n")

    def close(self) -> None:
        """Finish the progress bar."""
        self._bar.set_postfix(self.outcomes, refresh=False)
        self._bar.close()

    def summary(self) -> str:
        """A table of outcomes, then the total and the rate."""
        elapsed = time.perf_counter() - self.started
        total = sum(self.outcomes.values())
        width = max([len(o) for o in self.outcomes] + [len("total")])
        rows = [f"  {o:<{width}}  {n:>9,}" for o, n in self.outcomes.most_common()]
        rows.append(f"  {'total':<{width}}  {total:>9,}")
        rate = total / elapsed if elapsed > 0 else 0.0
        rows.append(f"in {elapsed:.2f} s, {rate:,.0f} resources/s")
        return "\n".join(rows)
