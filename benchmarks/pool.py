"""Rows 8-10 (issue 10): PushPool over many accounts.

8. Throughput: the pool over A accounts x R resources each, submitted round-robin (one
   resource per account in turn, as an ingestion service receives them), against one
   `PushPipeline` pushing the same A x R resources to one account; one emulator holds every
   account (one host).
9. Peak RSS of a child process (this file run as a script) pushing the same total through the
   pool, against the number of accounts.
10. Healthy accounts' throughput while a second host is down (a closed port), against the same
   run without the dead host's accounts.

Every emulator runs in another process (`python -m anychannel_async.testing`), its accounts
given through `ANYCHANNEL_EMULATOR_ACCOUNTS`, so `time.process_time()` here is the client's CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping

import attrs
from _common import Emulator, emulator, make_resource, run_prefix, vm_mib
from throughput import Measure, Tally

from anychannel_async import Account, PushPool, PushResult

__all__ = [
    "DeadHostResult",
    "PoolRss",
    "accounts_on",
    "closed_port_url",
    "dead_host_run",
    "measure_pool_rss",
    "pool_run",
]


def ipid(n: int) -> str:
    return f"acct-{n:05d}"


def token(n: int) -> str:
    return f"tok-{n:05d}"


@contextlib.contextmanager
def pool_emulator(count: int, *, latency: float = 0.0) -> Iterator[Emulator]:
    """The emulator in a child process holding `count` accounts (and the single pipeline's)."""
    with emulator(latency=latency, accounts={ipid(i): token(i) for i in range(count)}) as emu:
        yield emu


def accounts_on(base_url: str, first: int, count: int) -> dict[str, Account]:
    """Accounts first .. first+count-1, all on the host at base_url."""
    return {
        ipid(i): Account(ipid(i), base_url=base_url, token=token(i))
        for i in range(first, first + count)
    }


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def pool_run(
    accounts: Mapping[str, Account], per_account: int, **pool_kwargs: object
) -> Measure:
    """Build and submit per_account posts to each account, round-robin; timed until every
    future resolved (the pool's close included, as the pipeline's `async with` is)."""
    prefix = run_prefix("pool")
    tally = Tally()
    ids = list(accounts)
    n = len(ids) * per_account
    cpu0, t0 = time.process_time(), time.perf_counter()
    async with PushPool(accounts, **pool_kwargs) as pool:  # type: ignore[arg-type]
        i = 0
        for _ in range(per_account):
            for account in ids:
                future = await pool.submit(account, make_resource(prefix, i))
                future.add_done_callback(tally)
                i += 1
        await pool.flush()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    requests = pool.stats.requests  # closed: its pipelines' counts, read outside the timing
    if tally.ok != n:
        raise RuntimeError(f"pool: {tally.ok} of {n} resources imported ({tally.failed} failed)")
    return Measure(n, wall, cpu, requests)


# -- row 10: a dead host -------------------------------------------------------------------


@attrs.frozen
class DeadHostResult:
    healthy: Measure
    #: Resources of the dead host's accounts accepted by the pool when the healthy ones were
    #: all resolved (what they held of max_pending).
    dead_held: int


async def dead_host_run(
    healthy: Mapping[str, Account],
    per_account: int,
    dead: Mapping[str, Account],
    dead_per_account: int,
    **pool_kwargs: object,
) -> DeadHostResult:
    """Healthy accounts round-robin from one producer, as pool_run; each dead account (if any)
    has a producer task of its own submitting dead_per_account posts (it waits once its share
    is full, as a producer per account would). Timed until every healthy future resolved."""
    prefix = run_prefix("dead")
    tally = Tally()
    ids = list(healthy)
    n = len(ids) * per_account
    held = 0
    settled = asyncio.Event()
    remaining = n

    dead_tally = Tally()  # retrieves the dead futures' errors, so none goes unretrieved

    def healthy_done(future: asyncio.Future[PushResult]) -> None:
        nonlocal remaining
        tally(future)
        remaining -= 1
        if remaining == 0:
            settled.set()

    async with PushPool({**healthy, **dead}, **pool_kwargs) as pool:  # type: ignore[arg-type]

        async def dead_producer(account: str, k: int) -> None:
            nonlocal held
            for j in range(dead_per_account):
                future = await pool.submit(account, make_resource(f"{prefix}d{k}-", j))
                future.add_done_callback(dead_tally)
                held += 1

        producers = [
            asyncio.create_task(dead_producer(account, k)) for k, account in enumerate(dead)
        ]
        await asyncio.sleep(0)  # the dead accounts' producers start first
        cpu0, t0 = time.process_time(), time.perf_counter()
        i = 0
        for _ in range(per_account):
            for account in ids:
                future = await pool.submit(account, make_resource(prefix, i))
                future.add_done_callback(healthy_done)
                i += 1
        await settled.wait()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stats = pool.stats
        requests = stats.requests - sum(
            stats.accounts[account].requests for account in dead if account in stats.accounts
        )
        dead_held = held
        for task in producers:
            task.cancel()
        await asyncio.gather(*producers, return_exceptions=True)
        await pool.close(flush=False)
    if tally.ok != n:
        raise RuntimeError(
            f"dead host: {tally.ok} of {n} healthy resources imported ({tally.failed} failed)"
        )
    return DeadHostResult(Measure(n, wall, cpu, requests), dead_held)


# -- row 9: peak RSS against the number of accounts ---------------------------------------


@attrs.frozen
class PoolRss:
    accounts: int
    total: int
    seconds: float
    peak_mib: float
    start_mib: float
    imported: int


async def _rss_child(
    base_url: str, count: int, total: int, max_open: int | None
) -> dict[str, float | int]:
    accounts = accounts_on(base_url, 0, count)
    # Warm up imports and converters (one account) before the baseline sample.
    await pool_run(accounts_on(base_url, 0, 1), 10)
    start_mib = vm_mib("VmRSS")
    measure = await pool_run(accounts, total // count, max_open_accounts=max_open)
    return {
        "accounts": count,
        "total": measure.resources,
        "seconds": measure.wall,
        "peak_mib": vm_mib("VmHWM"),
        "start_mib": start_mib,
        "imported": measure.resources,
    }


def measure_pool_rss(
    base_url: str, count: int, total: int, *, max_open: int | None = None
) -> PoolRss:
    """Push total resources over count accounts (the pool given max_open_accounts) in a fresh
    child process; its figures."""
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, base_url, str(count), str(total), str(max_open or 0)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return PoolRss(
        accounts=data["accounts"],
        total=data["total"],
        seconds=data["seconds"],
        peak_mib=data["peak_mib"],
        start_mib=data["start_mib"],
        imported=data["imported"],
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    base_url, count, total, max_open = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps(asyncio.run(_rss_child(base_url, count, total, max_open or None))))
