"""`anychannel-async push FILE|-`: ingest JSON Lines of external resources into Zendesk.

No line is lost: each ends imported, in the failed file (``--failed``) with its error and its
line number, or, with ``--outbox``, pending in the outbox. A stop keeps that promise too:

- SIGINT or SIGTERM: reading stops, requests in flight settle (``--close-timeout``), and the
  lines accepted but not sent and the rest of the input go to the failed file (with an outbox,
  accepted lines stay in it), the lines read before the lines not read: a parent before its
  reply. Exit 130 or 143; a second signal gives up at once.
- A token Zendesk refuses: no request more (see `CommandClient`), every line not imported goes
  to the failed file, exit 1. With ``--accounts``, a refusal is one account's: its lines go to
  the failed file (the pool sends nothing more with that token), the other accounts' lines go
  on, exit 1.
- A failed file that cannot be written (disk full, file size limit): reading stops, what was
  accepted is still pushed, and the lines that could not be written are named; exit 1.

With ``--accounts PATH`` each line is ``{"instance_push_id": ID, "resource": {...}}``, pushed
through a `PushPool` over the accounts store at PATH; each failed record keeps its account, so
the failed file pushes again as is (with ``--accounts``). A line naming an account the store
does not hold fails alone (`UnknownAccountError`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import sys
from collections.abc import Mapping
from typing import IO

import attrs

from anychannel_async._accounts import AccountStore
from anychannel_async._client import AnyChannelClient
from anychannel_async._errors import ClosedError, OutboxError
from anychannel_async._metrics import Metrics
from anychannel_async._outbox import PENDING, summary
from anychannel_async._pipeline import PushPipeline
from anychannel_async._pool import PushPool
from anychannel_async._results import IMPORTED
from anychannel_async._settings import PipelineSettings

from ._common import (
    CommandClient,
    UsageError,
    add_connection_options,
    check_accounts_options,
    client_from_args,
    per_account_limit,
    refusal_message,
    shown_id,
)
from ._failed import FailedFile, line_ranges
from ._ingest import Ingest, read_chunks
from ._stop import Stop, close_on_halt, stop_on_signals

__all__ = [
    "add_batch_options",
    "add_parser",
    "batch_options_given",
    "pending_in",
    "pipeline_from_args",
    "pool_from_args",
    "replay_labels",
    "replay_line",
    "run",
    "settings_from_args",
]


def add_batch_options(parser: argparse.ArgumentParser) -> None:
    """A flag for each `PipelineSettings` field (but the outbox, which a command adds itself
    where it takes one): its name, default and help are the settings' own."""
    group = parser.add_argument_group("batching")
    for field in attrs.fields(PipelineSettings):
        if field.name == "outbox":
            continue
        default = field.default
        group.add_argument(
            "--" + field.name.replace("_", "-"),
            type=type(default) if default is not None else float,
            default=default,
            help=field.metadata["help"],
        )


def settings_from_args(args: argparse.Namespace) -> PipelineSettings:
    """The batching options' settings (a bad setting is a UsageError)."""
    options = {
        field.name: getattr(args, field.name)
        for field in attrs.fields(PipelineSettings)
        if hasattr(args, field.name)
    }
    try:
        return PipelineSettings(**options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def batch_options_given(args: argparse.Namespace) -> list[str]:
    """The batching options set to other than their default."""
    return [
        "--" + field.name.replace("_", "-")
        for field in attrs.fields(PipelineSettings)
        if field.name != "outbox" and getattr(args, field.name, field.default) != field.default
    ]


def pipeline_from_args(
    client: AnyChannelClient,
    instance_push_id: str,
    args: argparse.Namespace,
    *,
    metrics: Metrics | None = None,
) -> PushPipeline:
    """A PushPipeline with the batching options' settings (a bad setting is a UsageError)."""
    settings = settings_from_args(args)
    try:
        return PushPipeline(client, instance_push_id, settings=settings, metrics=metrics)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def pool_from_args(
    accounts: AccountStore, args: argparse.Namespace, *, metrics: Metrics | None = None
) -> PushPool:
    """A PushPool over the store with the batching and connection options' settings:
    --max-in-flight per account, --max-pending for the whole pool (a bad setting is a
    UsageError)."""
    settings = settings_from_args(args)
    try:
        return PushPool(
            accounts,
            settings=settings,
            max_in_flight=settings.max_in_flight,
            max_pending=settings.max_pending,
            max_pending_per_account=per_account_limit(args),
            timeout=args.timeout,
            metrics=metrics,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "push",
        help="push JSON Lines of external resources (the API's field names) to Zendesk",
        description=(
            "Push one external resource per JSON line. Exit status 0 only when every resource"
            " was imported; failures go to --failed, which can be pushed again as is. SIGINT"
            " or SIGTERM stops reading and writes what was not imported to --failed (exit 130"
            " or 143); a second signal stops at once. With --accounts, each line is"
            ' {"instance_push_id": ID, "resource": {...}} and goes to that account.'
        ),
    )
    parser.add_argument("file", help="a JSON Lines file, or - for standard input")
    parser.add_argument(
        "--failed",
        metavar="FILE",
        help="write each line not imported here, with its error and line number (JSON Lines)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    parser.add_argument(
        "--outbox",
        metavar="PATH",
        help=(
            "a SQLite outbox: every accepted line is kept until final (survives a crash);"
            " not with --accounts"
        ),
    )
    add_connection_options(parser, accounts=True)
    add_batch_options(parser)


def run(args: argparse.Namespace) -> int:
    """Push the file; 0 when every resource was imported, 1 otherwise, 128 + N after signal N.

    Every usage error (options, token, pipeline settings, the input, the failed file) is
    found before a line is read or the failed file is created; an outbox that cannot be
    opened (exit 1, its OutboxError) before a line is read or the failed file is emptied.
    """
    accounts = check_accounts_options(args)
    client: CommandClient | None = None
    store: AccountStore | None = None
    target: PushPipeline | PushPool
    if accounts is None:
        client, instance_push_id = client_from_args(args)
        target = pipeline_from_args(client, instance_push_id, args)
    else:
        if args.outbox is not None:
            # The command's outbox report (rows replayed, rows of earlier runs) is per
            # account; a pool's outbox is for code (PushPool(outbox=...)): say so before reading.
            raise UsageError(
                "--outbox does not go with --accounts in this command; in code, use"
                " PushPool(store, outbox=PATH)"
            )
        instance_push_id = ""
        store = AccountStore(accounts)
        target = pool_from_args(store, args)
    with contextlib.ExitStack() as files:
        source = _open_input(args.file, files)
        failed = None
        if args.failed is not None:
            _refuse_the_input(args.failed, args.file, source)
            failed = _open_failed(args.failed)
            files.callback(failed.close)
        stop = Stop()
        ingest = Ingest(
            target,
            failed=failed,
            progress=not args.quiet and sys.stderr.isatty(),
            stop=stop,
            outbox=args.outbox,
            instance_push_id=instance_push_id,
            warn_duplicates=True,
        )
        if client is not None:
            client.on_refusal = stop.refused
        if failed is not None:
            failed.on_error = stop.write_failed
        try:
            waiting = ""
            if args.file == "-" and failed is not None:
                waiting = (
                    f"; waiting for standard input to end, to copy the lines not read to"
                    f" {failed.path}"
                )
            asyncio.run(_push(client, store, target, ingest, source, stop, failed, waiting))
        except asyncio.CancelledError:  # a second signal: given up at once
            pass
        finally:
            ingest.close()
            if failed is not None:
                failed.close()  # the last records, before the report counts them
    replays = dict(target.stats.replay_outcomes) if isinstance(target, PushPipeline) else {}
    # Rows of earlier runs still pending: whatever the outbox holds pending but this run's.
    pending = pending_in(args.outbox) if args.outbox is not None else None
    earlier = max(0, pending - ingest.left_in_outbox) if pending is not None else 0
    _report(args, instance_push_id, ingest, failed, stop, replays, earlier)
    replays_ok = all(outcome in IMPORTED for outcome in replays)
    return stop.exit_status(all_imported=ingest.all_imported and replays_ok)


def _open_input(path: str, files: contextlib.ExitStack) -> IO[bytes]:
    # Binary: each line is decoded on its own, so one that is not UTF-8 fails alone.
    if path == "-":
        return sys.stdin.buffer
    try:
        return files.enter_context(open(path, "rb"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _refuse_the_input(failed: str, path: str, source: IO[bytes]) -> None:
    """--failed must not be the input under another name: opening it would empty the file
    being read. Compared by identity (a link, another spelling), and by path when the failed
    file does not exist yet."""
    try:
        failed_stat = os.stat(failed)
    except OSError:
        failed_stat = None
    try:
        source_stat = os.fstat(source.fileno())
    except (OSError, ValueError):
        source_stat = None
    same = (
        failed_stat is not None
        and source_stat is not None
        and os.path.samestat(failed_stat, source_stat)
    )
    if same or (path != "-" and os.path.realpath(failed) == os.path.realpath(path)):
        where = "standard input" if path == "-" else path
        raise UsageError(
            f"--failed {failed} is the input ({where}) itself: writing it would destroy the"
            " lines being read; choose another path"
        )


def _open_failed(path: str) -> FailedFile:
    try:
        return FailedFile.open(path)
    except OSError as exc:
        raise UsageError(f"cannot write --failed {path}: {exc.strerror or exc}") from None


async def _push(
    client: CommandClient | None,
    store: AccountStore | None,
    pipeline: PushPipeline | PushPool,
    ingest: Ingest,
    source: IO[bytes],
    stop: Stop,
    failed: FailedFile | None,
    waiting: str,
) -> None:
    opened = False
    with stop_on_signals(stop, "push", waiting=waiting):
        async with contextlib.AsyncExitStack() as opens:
            # The client of one account, or the store of many (an AccountStoreError opening
            # it leaves the failed file as it was, as an outbox does).
            if client is not None:
                await opens.enter_async_context(client)
            if store is not None:
                await opens.enter_async_context(store)
            try:
                async with pipeline, close_on_halt(pipeline, stop):
                    opened = True
                    if failed is not None:
                        # Emptied only now: an outbox that cannot be opened leaves it as it was.
                        failed.start()
                    await ingest.feed(read_chunks(source), stop)
                    await pipeline.flush()
            except OutboxError as exc:
                if opened:
                    raise
                # Exit status 1, as `outbox retry` and `purge` give for the same file.
                kept = f", --failed {failed.path} is as it was" if failed is not None else ""
                raise OutboxError(f"{exc}; nothing was read{kept}") from None
            finally:
                ingest.settle_unsure()  # the outbox is closed now: it says what it holds


# How the summary names a replayed row's outcome, where the outcome's name would mislead: a
# row the pipeline closed on (a stop) was not pushed, and stays pending.
_REPLAY_LABELS = {ClosedError.__name__: "not pushed (stopped)"}


def replay_labels(replays: Mapping[str, int]) -> dict[str, int]:
    """The outcomes of rows replayed from an outbox, by the names a summary shows."""
    labelled: collections.Counter[str] = collections.Counter()
    for outcome, count in replays.items():
        labelled[_REPLAY_LABELS.get(outcome, outcome)] += count
    return dict(labelled)


def replay_line(replays: Mapping[str, int]) -> str:
    """How the rows replayed from an outbox ended, as one summary line."""
    labelled = replay_labels(replays)
    parts = ", ".join(
        f"{outcome} {count:,}" for outcome, count in sorted(labelled.items(), key=lambda i: -i[1])
    )
    return f"replayed from the outbox: {sum(labelled.values()):,} ({parts})"


def pending_in(outbox: str) -> int | None:
    """Rows pending in the outbox now, which the next pipeline to open it pushes; None when
    it cannot be read. Asked of the file, once closed: it is what decides."""
    try:
        return summary(outbox, limit=0).counts[PENDING]
    except OutboxError:
        return None


def _report(
    args: argparse.Namespace,
    instance_push_id: str,
    ingest: Ingest,
    failed: FailedFile | None,
    stop: Stop,
    replays: dict[str, int],
    earlier: int,
) -> None:
    """The stop's cause on stderr (always), then the summary on stdout (unless --quiet).

    earlier: rows of earlier runs that stay pending in the outbox (a replay cut short)."""
    name = "standard input" if args.file == "-" else args.file
    first_unread = ingest.last_read + 1
    if stop.refusal is not None:
        print(
            f"anychannel-async push: {refusal_message(stop.refusal, instance_push_id)}",
            file=sys.stderr,
        )
    if failed is not None and failed.error is not None:
        print(
            f"anychannel-async push: cannot write {failed.path}:"
            f" {failed.error.strerror or failed.error}; stopped reading after line"
            f" {ingest.last_read:,} of {name}, lines from {first_unread:,} on were not read",
            file=sys.stderr,
        )
        if failed.missing:
            print(
                f"anychannel-async push: {len(failed.missing):,} lines not imported are missing"
                f" from {failed.path}: lines {line_ranges(failed.missing)}",
                file=sys.stderr,
            )
    _report_accounts(args, ingest)
    if stop.at_once:
        print(
            "anychannel-async push: stopped at once by a second signal: lines in flight or"
            f" not read yet may be missing from {args.failed or 'the failed file'}",
            file=sys.stderr,
        )
    if args.quiet:
        return
    lines = [ingest.summary()]
    if replays:
        lines.append(replay_line(replays))
    if stop.signum is not None or stop.refusal is not None:
        first = ingest.first_stopped if ingest.first_stopped is not None else first_unread
        lines.append(
            f"{stop.headline}: read up to line {ingest.last_read:,} of {name}; the first line"
            f" not pushed is line {first:,}"
        )
        if failed is None:
            lines.append(f"lines from {first_unread:,} on were not read (no --failed)")
    held = []
    if ingest.left_in_outbox:
        held.append(f"{ingest.left_in_outbox:,} lines not imported")
    if earlier:
        held.append(f"{earlier:,} rows from earlier runs")
    if held:
        lines.append(
            f"{' and '.join(held)} stay pending in the outbox {args.outbox}: they are pushed"
            f" when it is next opened (push --outbox {args.outbox}, or outbox retry"
            f" {args.outbox} with the connection options)"
        )
    if failed is not None and failed.written:
        lines.append(
            f"{failed.written:,} lines not imported are in {failed.path}: push it again to"
            " finish the job"
        )
    print("\n".join(lines))


# Accounts a report names, at most: beyond, it gives their number.
_NAMED = 10


def _named(ids: list[str]) -> str:
    shown = ", ".join(shown_id(i) for i in ids[:_NAMED])  # ids from the input file
    return shown if len(ids) <= _NAMED else f"{shown} and {len(ids) - _NAMED:,} more"


def _report_accounts(args: argparse.Namespace, ingest: Ingest) -> None:
    """With --accounts, on stderr: the accounts whose token Zendesk refused, and those the
    store does not hold, each with its lines not imported (never a token)."""
    where = f" in {args.failed}" if args.failed is not None else ""
    by_status: dict[int, list[str]] = {}
    lines = 0
    for ipid, (count, refusal) in ingest.refused.items():
        by_status.setdefault(refusal.status, []).append(ipid)
        lines += count
    for status, ids in by_status.items():
        print(
            f"anychannel-async push: Zendesk refused the token stored in {args.accounts} for"
            f" instance push ids {_named(ids)} (HTTP {status}); nothing more was sent with"
            " it, the other accounts went on: store a new token with `accounts add`",
            file=sys.stderr,
        )
    if lines:
        print(
            f"anychannel-async push: {lines:,} lines of refused accounts not imported{where}",
            file=sys.stderr,
        )
    if ingest.unknown:
        unknown = sorted(ingest.unknown)
        print(
            f"anychannel-async push: {sum(ingest.unknown.values()):,} lines name instance push"
            f" ids {args.accounts} does not hold: {_named(unknown)}; not pushed{where}",
            file=sys.stderr,
        )
