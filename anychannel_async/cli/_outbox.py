"""`anychannel-async outbox list|retry|purge PATH`: look into and tend a durable outbox.

``list`` reads as a WAL reader, beside a pipeline that holds the file; ``retry`` and ``purge``
write, so they need the file to themselves (a pipeline holding it refuses them). A PushPool's
file holds the rows of many accounts: ``list`` names each dead letter's instance push id, and
the accounts with rows unsettled; ``retry`` with connection options pushes one account's rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time

from anychannel_async._errors import OutboxError
from anychannel_async._outbox import pending_count, purge, revive, summary
from anychannel_async._pipeline import PushPipeline
from anychannel_async._results import IMPORTED

from ._common import (
    CommandClient,
    UsageError,
    add_connection_options,
    client_from_args,
    connection_options_given,
    refusal_message,
)
from ._ingest import outcome_table
from ._push import (
    add_batch_options,
    batch_options_given,
    pipeline_from_args,
    replay_labels,
    settings_from_args,
)
from ._stop import Stop, close_on_halt, stop_on_signals

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("outbox", help="list, retry or purge a durable outbox")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="counts by state, by account (a PushPool's file), then dead letters with errors",
    )
    listing.add_argument("path")
    listing.add_argument(
        "--limit", type=int, default=50, help="dead letters and accounts shown (50)"
    )
    retry = actions.add_parser(
        "retry",
        help="dead letters back to pending; with connection options, push them now",
        description=(
            "Dead letters become pending again: the next pipeline that opens this outbox"
            " pushes them. Give --subdomain/--base-url to push them now; the other connection"
            " and batching options apply only then (given alone, they are a usage error)."
        ),
    )
    retry.add_argument("path")
    add_connection_options(retry, required=False)
    add_batch_options(retry)
    purge = actions.add_parser("purge", help="remove resolved rows (--dead: dead letters too)")
    purge.add_argument("path")
    purge.add_argument("--dead", action="store_true", help="also remove dead letters")


def run(args: argparse.Namespace) -> int:
    """Carry out the action; 0 on success, 1 when a retried resource failed again."""
    # Opening a missing path would create an empty outbox and report it as such: a typo in
    # the path would look like "nothing to do".
    if not os.path.exists(args.path):
        raise UsageError(f"no outbox at {args.path}")
    if args.action == "list":
        return _list(args)
    if args.action == "purge":
        return _purge(args)
    return _retry(args)


def _list(args: argparse.Namespace) -> int:
    shown = summary(args.path, limit=args.limit)
    for state, count in shown.counts.items():
        print(f"{state:<9} {count:>9,}")
    if shown.instances > 1:  # a PushPool's file: which accounts hold what
        print(f"\nby instance push id ({shown.instances:,} with rows pending or dead):")
        for instance_push_id, pending, dead in shown.by_instance:
            print(f"  {instance_push_id}: {pending:,} pending, {dead:,} dead")
    if shown.dead:
        print("\ndead letters:")
        for seq, instance_push_id, external_id, error in shown.dead:
            print(f"  #{seq} [{instance_push_id}] {external_id}: {error}")
    return 0


def _purge(args: argparse.Namespace) -> int:
    removed = purge(args.path, dead=args.dead)
    print(f"removed {removed:,} rows ({'resolved, dead' if args.dead else 'resolved'})")
    return 0


def _retry(args: argparse.Namespace) -> int:
    # Every option is checked before the file changes: a typo must not leave dead letters
    # revived with nothing pushing them.
    push_now = args.subdomain is not None or args.base_url is not None
    args.outbox = args.path
    settings_from_args(args)  # a bad setting is a usage error, with a URL or without
    if not push_now:
        given = connection_options_given(args) + batch_options_given(args)
        if given:
            raise UsageError(
                f"{', '.join(given)} only apply to pushing the rows now: give --subdomain or"
                " --base-url too (without them, retry only makes dead letters pending again)"
            )
    connection: tuple[CommandClient, str, PushPipeline] | None = None
    if push_now:
        client, instance_push_id = client_from_args(args)
        connection = (client, instance_push_id, pipeline_from_args(client, instance_push_id, args))
    revived = revive(args.path)
    print(f"{revived:,} dead letters are pending again")
    if connection is None:
        return 0
    client, instance_push_id, pipeline = connection
    stop = Stop()
    client.on_refusal = stop.refused
    started = time.perf_counter()
    with contextlib.suppress(asyncio.CancelledError):  # a second signal: given up at once
        asyncio.run(_push_now(client, pipeline, stop))
    if stop.refusal is not None:
        print(
            f"anychannel-async outbox retry: {refusal_message(stop.refusal, instance_push_id)};"
            " the rows stay pending",
            file=sys.stderr,
        )
    replays = dict(pipeline.stats.replay_outcomes)
    print(f"pushed the pending rows of {instance_push_id}:")
    print(outcome_table(replay_labels(replays), time.perf_counter() - started))
    try:  # this instance's rows only: a PushPool's file holds other accounts' too
        pending = pending_count(args.path, instance_push_id)
    except OutboxError:
        pending = 0
    if pending:
        cause = f"{stop.headline}: " if stop.signum is not None or stop.refusal else ""
        print(
            f"{cause}{pending:,} rows stay pending in the outbox {args.path}: they are pushed"
            " when it is next opened"
        )
    imported = all(outcome in IMPORTED for outcome in replays)
    return stop.exit_status(all_imported=imported)


async def _push_now(client: CommandClient, pipeline: PushPipeline, stop: Stop) -> None:
    """Open a pipeline on the outbox: entering it pushes every pending row."""
    with stop_on_signals(stop, "outbox retry"):
        async with client, pipeline, close_on_halt(pipeline, stop):
            await pipeline.flush()  # replayed rows resolve inside the pipeline
