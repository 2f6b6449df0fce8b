"""The ingest loop shared by `push` and `demo`: feed a pipeline (or, with ``push --accounts``, a
pool), tally outcomes, keep failures.

Every line ends counted: imported, failed with its error in the failed file, refused before
sending (malformed, invalid), left pending in an outbox, or, after a stop, not sent or not
read (copied to the failed file as it is, with its line number).

Memory stays flat whatever the input size: lines are read in bounded chunks by a thread, the
pipeline's ``max_pending`` bounds what is in flight, each outcome is tallied by a done callback
instead of a list of futures, and the map that spots an external_id given twice is bounded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import IO, NamedTuple

import orjson
from tqdm import tqdm

from anychannel_async._errors import (
    AnyChannelError,
    AuthenticationError,
    ClosedError,
    OutboxError,
    UnknownAccountError,
    ValidationError,
    Verdict,
    verdict,
)
from anychannel_async._models import ExternalResource
from anychannel_async._outbox import pending_ids
from anychannel_async._pipeline import PushPipeline
from anychannel_async._pool import PushPool
from anychannel_async._results import IMPORTED, PushResult
from anychannel_async._serde import converter, encode_body, resource_from_json

from ._failed import FailedFile
from ._stop import Stop

__all__ = ["Ingest", "decode_line", "outcome_table", "raw_text", "read_chunks"]

logger = logging.getLogger("anychannel_async.cli")

# Bytes per read: enough to amortise the hop to the reader thread, small enough to keep
# memory flat however large the file.
_READ_SIZE = 256 * 1024
_ENVELOPE_KEYS = frozenset({"line", "error", "instance_push_id", "resource", "raw"})
# A line of `push --accounts`: the account's instance push id and the resource.
_ACCOUNT_KEYS = frozenset({"instance_push_id", "resource"})
_ACCOUNT_LINE = '{"instance_push_id": ID, "resource": {...}}'
# A failed file's raw line may hold the line of an earlier failed file: unwrap that far.
_MAX_UNWRAP = 3
# External ids remembered to warn about one given twice with different content: the last
# 100,000 distinct ids, about 18 MB (an int key and an int value in an OrderedDict). Two
# lines further apart than that are not compared.
_DUPLICATE_MEMORY = 100_000
_HASH_MASK = (1 << 64) - 1
# Outcomes of lines a stop kept from being pushed (where "the first line not pushed" is).
_STOPPED = frozenset({"not_sent", "not_read", "AuthenticationError"})


async def read_chunks(stream: IO[bytes]) -> AsyncIterator[list[tuple[int, bytes]]]:
    """Yield lists of (line number, raw bytes) from a binary stream, read by a thread so a
    slow stdin never blocks the event loop (and with it the pipeline's requests).

    The thread is a daemon of its own reading the file descriptor, not the loop's executor
    reading the stream object: a read blocked on a quiet pipe must not hold up the process's
    exit after a stop (asyncio.run joins its executor's threads; Python's exit would wait for
    the stream's lock). Lines stay bytes: each is decoded on its own (see decode_line), so one
    line that is not UTF-8 is that line's failure, never the whole chunk's.
    """
    loop = asyncio.get_running_loop()
    asks: queue.SimpleQueue[asyncio.Future[list[bytes]] | None] = queue.SimpleQueue()
    threading.Thread(
        target=_read_lines,
        args=(stream.fileno(), asks, loop),
        name="anychannel-reader",
        daemon=True,
    ).start()
    number = 0
    try:
        while True:
            chunk: asyncio.Future[list[bytes]] = loop.create_future()
            asks.put(chunk)
            lines = await chunk
            if not lines:
                return
            yield [(number := number + 1, raw) for raw in lines]
    finally:
        asks.put(None)


def _read_lines(
    fd: int,
    asks: queue.SimpleQueue[asyncio.Future[list[bytes]] | None],
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The reader thread: answer each ask with the next whole lines ([] at the end)."""
    rest = b""
    end = False
    while (ask := asks.get()) is not None:
        lines: list[bytes] = []
        error: OSError | None = None
        try:
            while not lines and not end:
                data = os.read(fd, _READ_SIZE)
                if not data:
                    end = True
                    lines = [rest] if rest else []
                    rest = b""
                    break
                data = rest + data
                cut = data.rfind(b"\n") + 1
                lines = data[:cut].split(b"\n")[:-1]
                rest = data[cut:]
        except OSError as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(_answer, ask, lines, error)
        except RuntimeError:  # the loop is closed: nobody is reading any more
            return


def _answer(ask: asyncio.Future[list[bytes]], lines: list[bytes], error: OSError | None) -> None:
    if ask.done():
        return
    if error is not None:
        ask.set_exception(error)
    else:
        ask.set_result(lines)


def decode_line(number: int, raw: bytes) -> str:
    """The line's text (a byte order mark opening line 1 dropped); UnicodeDecodeError when it
    is not UTF-8."""
    return raw.decode("utf-8-sig" if number == 1 else "utf-8")


def raw_text(raw: bytes) -> str:
    """A line that does not decode, shown as text (bad bytes as backslash escapes)."""
    return raw.decode("utf-8", errors="backslashreplace").strip()


def _refuse_constant(name: str) -> object:
    # Python's json reads NaN and Infinity; Zendesk's parser does not, and neither may the
    # failed file, whose records carry what was parsed.
    raise ValueError(f"{name} is not valid JSON")


# One decoder, not json.loads(parse_constant=...), which would build one per line.
_decoder = json.JSONDecoder(parse_constant=_refuse_constant)


def _is_envelope(obj: object) -> bool:
    """True for a record of a failed file (see _failed)."""
    return isinstance(obj, dict) and "error" in obj and obj.keys() <= _ENVELOPE_KEYS


def _line_of(envelope: dict[str, object], default: int) -> int:
    line = envelope.get("line")
    if isinstance(line, int) and not isinstance(line, bool) and line > 0:
        return line
    return default


def _account_problem(obj: object) -> str | None:
    """What is wrong with a line of ``push --accounts`` as an account's line, or None: it must
    be ``{"instance_push_id": ID, "resource": {...}}``, nothing more."""
    if not isinstance(obj, dict):
        return f"{_ACCOUNT_LINE} expected, got {type(obj).__name__}"
    missing = sorted(_ACCOUNT_KEYS - obj.keys())
    if missing:
        return f"{_ACCOUNT_LINE} expected, missing {', '.join(missing)}"
    unknown = sorted(obj.keys() - _ACCOUNT_KEYS)
    if unknown:
        return f"{_ACCOUNT_LINE} expected, unknown field {', '.join(map(repr, unknown))}"
    return _instance_problem(obj["instance_push_id"])


def _instance_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return f"instance_push_id must be a non-empty string, got {value!r}"
    return None


def _stays_pending(error: AnyChannelError) -> bool:
    """With an outbox, whether a failed resource's row stays pending, to be pushed again at
    the next start: all but the final failures, which the pipeline makes dead letters (the
    library's one verdict). An outbox that failed to write never took the row."""
    return not isinstance(error, OutboxError) and verdict(error) is not Verdict.FINAL


def _content_hash(resource: ExternalResource) -> int:
    try:
        return hash(resource)
    except TypeError:  # a field value holding a list or a dict
        pass
    try:
        return hash(encode_body(resource))
    except ValidationError:  # cannot be encoded: submitting it will say so
        return 0


class _Line(NamedTuple):
    """A line that holds a resource.

    position: its number in the file being read; number: its number in the original input
    (the position, or the ``line`` of a failed file's record); account: its instance push id
    with ``--accounts`` (None for one account's lines)."""

    position: int
    number: int
    account: str | None
    resource: ExternalResource


class _Unsure(NamedTuple):
    """A line refused while closing, with an outbox: its row may or may not have been written."""

    line: _Line
    error: str


class Ingest:
    """Submits resources to a pipeline, or to a pool with each line's account, and accounts
    for every one of them.

    A line has a position (its number in the file being read) and a number (its number in
    the original input: the position, or the ``line`` of a failed file's record).

    To a `PushPool` (``push --accounts``), each line is ``{"instance_push_id": ID,
    "resource": {...}}`` and its failed record keeps the instance push id. An account the
    pool does not know fails its lines (`UnknownAccountError`); a token Zendesk refuses fails
    its account's lines (`AuthenticationError`) and no other's: neither stops the ingest.
    """

    def __init__(
        self,
        target: PushPipeline | PushPool,
        *,
        failed: FailedFile | None = None,
        progress: bool = False,
        total: int | None = None,
        stop: Stop | None = None,
        outbox: str | None = None,
        instance_push_id: str = "",
        warn_duplicates: bool = False,
    ) -> None:
        self._target = target
        self._pool = target if isinstance(target, PushPool) else None
        self._pipeline = target if isinstance(target, PushPipeline) else None
        self._failed = failed
        self._stop = stop
        self._outbox = outbox
        self._instance_push_id = instance_push_id
        self._warn_duplicates = warn_duplicates
        # With many accounts, a refusal is one account's outcome, not a stop of the ingest.
        self._stopped = _STOPPED - {"AuthenticationError"} if self._pool else _STOPPED
        self._seen: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._unsure: list[_Unsure] = []
        # Futures whose outcome is not tallied yet, and an event set whenever there are none.
        self._unsettled = 0
        self._none_unsettled = asyncio.Event()
        self._none_unsettled.set()
        self.outcomes: Counter[str] = Counter()
        #: With accounts: lines not imported, by the instance push id Zendesk refused the
        #: token of, and that refusal.
        self.refused: dict[str, tuple[int, AuthenticationError]] = {}
        #: With accounts: lines naming an instance push id the accounts do not hold, by it.
        self.unknown: Counter[str] = Counter()
        #: Position of the last line read and submitted (0: none).
        self.last_read = 0
        #: Position of the first line a stop kept from being pushed, if any.
        self.first_stopped: int | None = None
        #: Lines not imported whose outbox rows stay pending (pushed at the next start).
        self.left_in_outbox = 0
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
        return all(o in IMPORTED for o in self.outcomes)

    # -- reading -----------------------------------------------------------------------------

    async def feed(self, chunks: AsyncIterator[list[tuple[int, bytes]]], stop: Stop) -> None:
        """Submit every chunk until the input ends or a stop is requested; then copy the lines
        not read yet to the failed file, unless the failed file itself is what broke.

        After a signal or a refused token, the lines read are accounted for first: the
        pipeline closes (requests in flight settle), every outcome is tallied, and with an
        outbox the lines refused while closing are settled. Only then are the lines not read
        copied, so the failed file keeps the input's order: a parent refused while closing
        comes before its reply that was never read, and one rerun of the file finishes.
        With nowhere to copy them, reading stops at once, even on a quiet standard input.
        """
        read_settled = False
        while (lines := await self._next_chunk(chunks, stop)) is not None:
            if stop.requested:
                if stop.halted and not read_settled:
                    await self.settle_read()
                    read_settled = True
                self.copy_unread(lines, stop.cause)
                continue
            self.last_read = lines[-1][0]
            await self.submit_lines(lines)

    def _copies_unread(self, stop: Stop) -> bool:
        """Whether lines not read after the stop can go to the failed file."""
        return self._failed is not None and self._failed.error is None and not stop.at_once

    async def _next_chunk(
        self, chunks: AsyncIterator[list[tuple[int, bytes]]], stop: Stop
    ) -> list[tuple[int, bytes]] | None:
        """The next chunk, or None at the end of the input, or once a stop is requested and
        the lines not read have nowhere to go (the summary says where reading stopped)."""
        if stop.requested:
            return await anext(chunks, None) if self._copies_unread(stop) else None
        reading = asyncio.ensure_future(anext(chunks, None))
        stopping = asyncio.ensure_future(stop.wait_requested())
        try:
            await asyncio.wait((reading, stopping), return_when=asyncio.FIRST_COMPLETED)
            if reading.done() or self._copies_unread(stop):
                return await reading
        finally:
            stopping.cancel()
            if not reading.done():
                reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        return None

    async def settle_read(self) -> None:
        """Close the pipeline (or pool) without flushing, wait until every line submitted has
        its outcome tallied, then settle the lines refused while closing (see settle_unsure)."""
        await self._target.close(flush=False)
        await self._none_unsettled.wait()  # done callbacks run a loop turn after the close
        self.settle_unsure()

    async def submit_lines(self, lines: Sequence[tuple[int, bytes | str]]) -> None:
        """Parse and submit a chunk of lines together (one outbox transaction, if any)."""
        ready: list[_Line] = []
        for position, raw in lines:
            line = self._parse(position, raw)
            if line is not None:
                if self._warn_duplicates:
                    self._check_duplicate(line)
                ready.append(line)
        if not ready:
            return
        if self._pipeline is None:
            # A pool takes one resource at a time: each line may be another account's.
            for line in ready:
                await self._submit(line)
            return
        try:
            futures = await self._pipeline.submit_many([line.resource for line in ready])
        except ValidationError:  # one resource too large: find it, keep the others
            for line in ready:
                await self._submit(line)
            return
        except AnyChannelError as exc:  # closed, or an outbox that cannot open
            for line in ready:
                self._not_imported(line, exc)
            return
        for line, future in zip(ready, futures, strict=True):
            self._watch(line, future)

    async def submit(self, number: int, resource: ExternalResource) -> None:
        """Submit one resource; its outcome is tallied when it resolves."""
        await self._submit(_Line(number, number, None, resource))

    def copy_unread(self, lines: Sequence[tuple[int, bytes]], cause: str) -> None:
        """Lines a stop kept from being read: to the failed file as they are, each with its
        number. A line of an earlier failed file keeps its record (and its number); with
        accounts, a line that is an account's line is written as a record with its account."""
        for position, raw in lines:
            try:
                text = decode_line(position, raw).strip()
            except UnicodeDecodeError as exc:
                self._tally(position, "not_read")
                self._write(position, f"not UTF-8: {exc}", raw=raw_text(raw))
                continue
            if not text:
                continue
            self._tally(position, "not_read")
            if self._failed is None:
                continue
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict) and _is_envelope(obj):
                number = _line_of(obj, position)
                entry = {**obj, "line": number}
                if not str(obj["error"]).startswith("not UTF-8"):
                    entry["error"] = cause
                self._failed.write_entry(number, entry, fallback=text)
            elif self._pool is not None and _account_problem(obj) is None:
                assert isinstance(obj, dict)
                self._failed.write(
                    position,
                    cause,
                    instance_push_id=obj["instance_push_id"],
                    resource=obj["resource"],
                    text=text,
                )
            else:
                self._failed.write(position, cause, raw=text)

    # -- parsing -----------------------------------------------------------------------------

    def _parse(self, position: int, raw: bytes | str) -> _Line | None:
        """The line's resource (and account), or None (and the failure recorded) when it has
        none."""
        if isinstance(raw, bytes):
            try:
                text = decode_line(position, raw)
            except UnicodeDecodeError as exc:
                self._failure(
                    position, position, "malformed", f"not UTF-8: {exc}", raw=raw_text(raw)
                )
                return None
        else:
            text = raw
        text = text.strip()
        if not text:
            return None
        return self._parse_text(position, position, text)

    def _parse_text(
        self, position: int, number: int, text: str, earlier: str | None = None, depth: int = 0
    ) -> _Line | None:
        try:
            obj = _decoder.decode(text)
        except ValueError as exc:
            # A line that was not UTF-8 comes back with its bad bytes as backslash escapes,
            # which are not JSON either: its first error says what is really wrong.
            keep = earlier is not None and earlier.startswith("not UTF-8")
            error = earlier if keep and earlier is not None else f"not JSON: {exc}"
            self._failure(position, number, "malformed", error, raw=text)
            return None
        except RecursionError:
            self._failure(position, number, "malformed", "not JSON: nested too deeply", raw=text)
            return None
        if isinstance(obj, dict) and _is_envelope(obj):
            # The record of an earlier run's failed file: retry what it holds, as line N.
            number = _line_of(obj, number)
            if "resource" in obj:
                return self._resource_line(
                    position, number, obj.get("instance_push_id"), obj["resource"], text
                )
            raw = obj.get("raw")
            if isinstance(raw, str) and depth < _MAX_UNWRAP:
                # A line that was not a resource, or not read: parse it again (the user may
                # have fixed it in the failed file).
                return self._parse_text(position, number, raw.strip(), str(obj["error"]), depth + 1)
            self._failure(
                position,
                number,
                "malformed",
                str(obj["error"]),
                raw=raw if isinstance(raw, str) else None,
            )
            return None
        if self._pool is None:
            return self._resource_line(position, number, None, obj, text)
        problem = _account_problem(obj)
        if problem is not None:  # kept as it was read, for the user to mend and push again
            self._failure(position, number, "invalid", problem, raw=text)
            return None
        return self._resource_line(position, number, obj["instance_push_id"], obj["resource"], text)

    def _resource_line(
        self, position: int, number: int, account: object, obj: object, text: str
    ) -> _Line | None:
        """The line of resource obj for account (None: not given), or None when either is not
        right for this ingest (the failure recorded)."""
        problem = None
        if self._pool is not None:
            problem = (
                f"no instance_push_id: with --accounts, {_ACCOUNT_LINE} expected"
                if account is None
                else _instance_problem(account)
            )
        elif account is not None and account != self._instance_push_id:
            # A record of `push --accounts`: pushed here, it would land in the wrong account.
            problem = (
                f"this line is for instance push id {account!r}, not {self._instance_push_id!r}:"
                " push it with --accounts"
            )
        shown = account if isinstance(account, str) else None
        if problem is not None:
            self._failure(
                position, number, "invalid", problem, resource=obj, account=shown, text=text
            )
            return None
        try:
            return _Line(position, number, shown, resource_from_json(obj))
        except ValidationError as exc:
            self._failure(
                position, number, "invalid", str(exc), resource=obj, account=shown, text=text
            )
            return None

    def _check_duplicate(self, line: _Line) -> None:
        """Warn when an external_id seen lately comes again (for the same account) with
        different content: Zendesk keeps what it imported first, and answers already_imported
        to the second."""
        resource = line.resource
        key = hash((line.account, resource.external_id))
        content = _content_hash(resource) & _HASH_MASK
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = (line.number << 64) | content
            if len(self._seen) > _DUPLICATE_MEMORY:
                self._seen.popitem(last=False)
        elif seen & _HASH_MASK != content:
            logger.warning(
                "line %d repeats external_id %r of line %d with different content: Zendesk"
                " keeps the first it imported; line %d will be already_imported and its"
                " content not applied",
                line.number,
                resource.external_id,
                seen >> 64,
                line.number,
            )

    # -- outcomes ----------------------------------------------------------------------------

    async def _submit(self, line: _Line) -> None:
        try:
            if self._pipeline is not None:
                future = await self._pipeline.submit(line.resource)
            else:
                assert self._pool is not None
                assert line.account is not None
                future = await self._pool.submit(line.account, line.resource)
        except ValidationError as exc:  # e.g. too large for one request
            self._failure(
                line.position,
                line.number,
                "invalid",
                str(exc),
                resource=line.resource,
                account=line.account,
            )
            return
        except AnyChannelError as exc:  # closed, an unknown account, the outbox refused it
            self._not_imported(line, exc)
            return
        self._watch(line, future)

    def _watch(self, line: _Line, future: asyncio.Future[PushResult]) -> None:
        """Tally the future's outcome when it resolves."""
        self._unsettled += 1
        self._none_unsettled.clear()
        future.add_done_callback(functools.partial(self._settled, line))

    def _settled(self, line: _Line, future: asyncio.Future[PushResult]) -> None:
        self._unsettled -= 1
        if not self._unsettled:
            self._none_unsettled.set()
        if future.cancelled():
            self._failure(
                line.position,
                line.number,
                "cancelled",
                "cancelled",
                resource=line.resource,
                account=line.account,
            )
            return
        error = future.exception()
        if error is None:
            self._tally(line.position, str(future.result().code))
        elif isinstance(error, AnyChannelError):
            self._not_imported(line, error)
        else:  # pragma: no cover - the pipeline only fails futures with AnyChannelError
            raise error

    def _not_imported(self, line: _Line, error: AnyChannelError) -> None:
        name = type(error).__name__
        text = f"{name}: {error}"
        outcome = name
        if line.account is not None:
            if isinstance(error, AuthenticationError):
                count, first = self.refused.get(line.account, (0, error))
                self.refused[line.account] = (count + 1, first)
            elif isinstance(error, UnknownAccountError):
                self.unknown[line.account] += 1
        if isinstance(error, ClosedError):
            outcome = "not_sent"
            if self._stop is not None and self._stop.cause:
                text += f" ({self._stop.cause})"
        if self._outbox is not None:
            if isinstance(error, ClosedError):
                # Refused while closing: its row was written or not (a race inside the
                # pipeline); the outbox says which, once closed (see settle_unsure).
                self._tally(line.position, outcome)
                self._unsure.append(_Unsure(line, text))
                return
            if _stays_pending(error):
                self._tally(line.position, outcome)
                self.left_in_outbox += 1
                return
        self._failure(
            line.position, line.number, outcome, text, resource=line.resource, account=line.account
        )

    def settle_unsure(self) -> None:
        """With an outbox, once the pipeline closed: a line refused while closing stays in the
        outbox if its row is there, pending; else it goes to the failed file."""
        unsure, self._unsure = self._unsure, []
        if not unsure or self._outbox is None:
            return
        try:
            there = pending_ids(
                self._outbox,
                self._instance_push_id,
                {u.line.resource.external_id for u in unsure},
            )
        except OutboxError as exc:  # cannot tell: a copy too many beats a line lost
            logger.warning("%s; lines refused while closing go to the failed file", exc)
            there = set()
        for line, error in unsure:
            if line.resource.external_id in there:
                self.left_in_outbox += 1
            else:
                self._write(line.number, error, resource=line.resource)

    def _failure(
        self,
        position: int,
        number: int,
        outcome: str,
        error: str,
        resource: ExternalResource | object = None,
        *,
        account: str | None = None,
        raw: str | None = None,
        text: str | None = None,
    ) -> None:
        self._tally(position, outcome)
        self._write(number, error, resource=resource, account=account, raw=raw, text=text)

    def _write(
        self,
        number: int,
        error: str,
        *,
        resource: ExternalResource | object = None,
        account: str | None = None,
        raw: str | None = None,
        text: str | None = None,
    ) -> None:
        if self._failed is None:
            return
        if isinstance(resource, ExternalResource):
            try:
                resource = converter.unstructure(resource)
            except RecursionError:  # too deep to write back (nor to push): keep the error
                resource = None
        self._failed.write(
            number, error, resource=resource, raw=raw, text=text, instance_push_id=account
        )

    def _tally(self, position: int, outcome: str) -> None:
        self.outcomes[outcome] += 1
        if outcome in self._stopped and (
            self.first_stopped is None or position < self.first_stopped
        ):
            self.first_stopped = position
        self._bar.update(1)
        if self._bar.n % 256 == 0:
            self._bar.set_postfix(self.outcomes, refresh=False)

    def close(self) -> None:
        """Finish the progress bar."""
        with contextlib.suppress(Exception):  # a broken terminal must not hide the summary
            self._bar.set_postfix(self.outcomes, refresh=False)
            self._bar.close()

    def summary(self) -> str:
        """A table of outcomes, then the total and the rate."""
        return outcome_table(self.outcomes, time.perf_counter() - self.started)


def outcome_table(outcomes: Mapping[str, int], elapsed: float) -> str:
    """The table of outcomes `push` prints (and `outbox retry`): a row per outcome, most
    frequent first, then the total and the rate."""
    total = sum(outcomes.values())
    width = max([len(o) for o in outcomes] + [len("total")])
    ranked = sorted(outcomes.items(), key=lambda item: -item[1])
    rows = [f"  {o:<{width}}  {n:>9,}" for o, n in ranked]
    rows.append(f"  {'total':<{width}}  {total:>9,}")
    rate = total / elapsed if elapsed > 0 else 0.0
    rows.append(f"in {elapsed:.2f} s, {rate:,.0f} resources/s")
    return "\n".join(rows)
