"""The benchmark suite: `make bench` (or `.venv/bin/python benchmarks/run.py [--quick]`).

Every row is measured in this run, on this machine, against the emulator running in a separate
process (`python -m anychannel_async.testing`), so the CPU figures are the client's alone.
Figures are medians of several repetitions; ratios are medians of ratios paired within one
repetition. See benchmarks/README.md for the figures of a full run and what they mean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import aiohttp
import attrs
import latency
import outbox
import pool
import profile_cpu
import ratecap
import rss
import throughput
from _common import GcMeter, Row, emulator, median

from anychannel_async import AnyChannelClient, PipelineSettings, PushPool, __version__

US = 1e6


@attrs.frozen
class Settings:
    reps: int
    # Resources per timed run, by method, at 0 ms and at 50 ms of emulated latency.
    pipe_n: tuple[int, int]
    seq_n: tuple[int, int]
    single_n: tuple[int, int]
    ceiling_n: tuple[int, int]
    profile_n: int
    latency_seconds: float
    rss_counts: tuple[int, ...]
    # Rate cap: requests per window, window seconds, run seconds, whether to run the learned case.
    rate_cap: int
    rate_window: float
    rate_seconds: float
    rate_learned: bool
    # Outbox: resources per run through submit_many, one submit at a time, raw SQLite commits.
    outbox_n: int
    outbox_single_n: int
    outbox_raw_n: int
    # PushPool (issue 10): accounts x resources each for rows 8 and 10; RSS account counts and
    # their total; row 10's dead accounts and resources per healthy account.
    pool_accounts: int = 1_000
    pool_per_account: int = 50
    pool_rss_accounts: tuple[int, ...] = (100, 1_000, 5_000)
    pool_rss_total: int = 100_000
    pool_dead_accounts: int = 20
    pool_healthy_per_account: int = 20


FULL = Settings(
    reps=5,
    pipe_n=(30_000, 20_000),
    seq_n=(10_000, 4_000),
    single_n=(4_000, 640),
    ceiling_n=(30_000, 20_000),
    profile_n=20_000,
    latency_seconds=5.0,
    rss_counts=(100_000, 300_000, 1_000_000),
    rate_cap=600,
    rate_window=60.0,
    rate_seconds=75.0,
    rate_learned=True,
    outbox_n=50_000,
    outbox_single_n=10_000,
    outbox_raw_n=3_000,
)
QUICK = Settings(
    reps=3,
    pipe_n=(15_000, 8_000),
    seq_n=(5_000, 2_000),
    single_n=(2_000, 320),
    ceiling_n=(15_000, 8_000),
    profile_n=10_000,
    latency_seconds=2.0,
    rss_counts=(30_000, 100_000),
    rate_cap=100,
    rate_window=10.0,
    rate_seconds=20.0,
    rate_learned=False,
    outbox_n=10_000,
    outbox_single_n=3_000,
    outbox_raw_n=1_000,
    pool_accounts=200,
    pool_rss_accounts=(100, 1_000, 5_000),
    pool_rss_total=50_000,
    pool_dead_accounts=10,
    pool_healthy_per_account=20,
)


def _status(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: ""}[met]


def _fmt_rate(rate: float) -> str:
    return f"{rate:,.0f} res/s"


@contextlib.contextmanager
def _stage(title: str) -> Iterator[None]:
    t0 = time.perf_counter()
    print(f"... {title}", file=sys.stderr, flush=True)
    yield
    print(f"    done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


# -- rows 1-3 ---------------------------------------------------------------------------------


@attrs.define
class _Runs:
    pipe: list[throughput.Measure] = attrs.Factory(list)
    pipe8: list[throughput.Measure] = attrs.Factory(list)
    seq: list[throughput.Measure] = attrs.Factory(list)
    single: list[throughput.Measure] = attrs.Factory(list)
    ceiling: list[throughput.Measure] = attrs.Factory(list)
    gc_per_resource: list[float] = attrs.Factory(list)


async def _throughput_at(base_url: str, s: Settings, slot: int, extra: bool) -> _Runs:
    runs = _Runs()
    async with throughput.new_client(base_url) as client:
        # Warm-up: connections, imports, converter caches.
        await throughput.pipeline(client, 1000)
        await throughput.sequential_batched(client, 500)
        await throughput.bare_single(base_url, 80)
        await throughput.bare_batched(base_url, throughput.prepare_bodies(1000))
        for _ in range(s.reps):
            with GcMeter() as meter:
                runs.pipe.append(await throughput.pipeline(client, s.pipe_n[slot]))
            runs.gc_per_resource.append(meter.seconds / s.pipe_n[slot])
            if extra:
                runs.pipe8.append(
                    await throughput.pipeline(client, s.pipe_n[slot], max_in_flight=8)
                )
            runs.seq.append(await throughput.sequential_batched(client, s.seq_n[slot]))
            runs.single.append(await throughput.bare_single(base_url, s.single_n[slot]))
            bodies = throughput.prepare_bodies(s.ceiling_n[slot])
            runs.ceiling.append(await throughput.bare_batched(base_url, bodies))
    return runs


def _paired(a: Sequence[throughput.Measure], b: Sequence[throughput.Measure]) -> float:
    return median([x.rate / y.rate for x, y in zip(a, b, strict=True)])


def throughput_rows(s: Settings) -> tuple[list[Row], float, float]:
    rows: list[Row] = []
    cpu_at_zero = gc_at_zero = 0.0
    for slot, ms in enumerate((0, 50)):
        with _stage(f"throughput at {ms} ms"), emulator(latency=ms / 1000) as emu:
            runs = asyncio.run(_throughput_at(emu.base_url, s, slot, extra=ms == 50))
        sec = f"1 throughput @{ms}ms"
        pipe = median([m.rate for m in runs.pipe])
        rows += [
            Row(sec, "pipeline (defaults: 100/batch, 4 in flight)", _fmt_rate(pipe)),
            Row(
                sec,
                "(a) bare aiohttp, 1 resource/POST, 8 at once",
                _fmt_rate(median([m.rate for m in runs.single])),
            ),
            Row(
                sec,
                "(b) client.push 100/call, sequential",
                _fmt_rate(median([m.rate for m in runs.seq])),
            ),
        ]
        ratio_a = _paired(runs.pipe, runs.single)
        goal_a = ms == 50
        rows.append(
            Row(
                sec,
                "pipeline / (a)",
                f"{ratio_a:.1f}x",
                ">= 50x" if goal_a else "",
                ratio_a >= 50 if goal_a else None,
            )
        )
        rows.append(Row(sec, "pipeline / (b)", f"{_paired(runs.pipe, runs.seq):.1f}x"))
        if runs.pipe8:
            rows.append(
                Row(
                    sec,
                    "pipeline max_in_flight=8 (same budget as (a))",
                    _fmt_rate(median([m.rate for m in runs.pipe8])),
                )
            )
            ratio8 = _paired(runs.pipe8, runs.single)
            rows.append(Row(sec, "pipeline max_in_flight=8 / (a)", f"{ratio8:.1f}x"))
        cpu = median([m.cpu_per_resource for m in runs.pipe])
        gc_cpu = median(runs.gc_per_resource)
        sec2 = "2 client CPU"
        if ms == 0:
            cpu_at_zero, gc_at_zero = cpu, gc_cpu
            rows.append(
                Row(sec2, "pipeline, build -> resolved, @0ms", f"{cpu * US:.1f} µs/res", "<= 10 µs")
            )
            rows[-1] = attrs.evolve(rows[-1], met=cpu <= 10e-6)
        else:
            rows.append(
                Row(sec2, f"pipeline, build -> resolved, @{ms}ms", f"{cpu * US:.1f} µs/res")
            )
        rows.append(Row(sec2, f"  of which cyclic GC @{ms}ms", f"{gc_cpu * US:.1f} µs/res"))
        rows.append(
            Row(
                sec2,
                f"(b) client.push 100/call @{ms}ms",
                f"{median([m.cpu_per_resource for m in runs.seq]) * US:.1f} µs/res",
            )
        )
        sec3 = f"3 ceiling @{ms}ms"
        rows.append(
            Row(
                sec3,
                "bare aiohttp, pre-serialized 100/POST, 4 at once",
                _fmt_rate(median([m.rate for m in runs.ceiling])),
            )
        )
        share = _paired(runs.pipe, runs.ceiling)
        rows.append(Row(sec3, "pipeline / ceiling", f"{share:.0%}", ">= 50%", share >= 0.5))
    return rows, cpu_at_zero, gc_at_zero


async def _profile(base_url: str, n: int, cpu: float) -> profile_cpu.Profile:
    async with throughput.new_client(base_url) as client:
        await throughput.pipeline(client, 1000)
        return await profile_cpu.profile_pipeline(client, n, cpu)


def profile_report(s: Settings, cpu: float, gc_cpu: float) -> str:
    with _stage("profile"), emulator() as emu:
        prof = asyncio.run(_profile(emu.base_url, s.profile_n, cpu))
    stages = profile_cpu.stage_costs(s.profile_n)
    rest = cpu - gc_cpu
    lines = [
        f"Where the client's CPU goes: {cpu * US:.1f} µs/res @0ms (median, no profiler), of which"
        f" cyclic GC {gc_cpu * US:.1f} µs (gc.callbacks).",
        f"The other {rest * US:.1f} µs split by a cProfile of {prof.resources:,} resources (GC off;"
        " own time grouped, built-ins charged to",
        f"their caller's group; under the profiler {prof.profiled_per_resource * US:.1f} µs/res,"
        " so µs are scaled shares):",
        f"  {gc_cpu / cpu:6.1%}  {gc_cpu * US:5.1f} µs  cyclic garbage collector (gc.callbacks)",
    ]
    for group, share in sorted(prof.shares.items(), key=lambda item: -item[1]):
        lines.append(f"  {share * rest / cpu:6.1%}  {share * rest * US:5.1f} µs  {group}")
    lines.append("Top functions by own time (µs/res under the profiler):")
    for seconds, label in prof.top:
        lines.append(f"  {seconds * US:6.2f}  {label}")
    lines.append("Single stages timed directly (no profiler, no network, GC on):")
    for name, seconds in stages.items():
        lines.append(f"  {seconds * US:6.2f} µs  {name}")
    return "\n".join(lines)


# -- row 4 ------------------------------------------------------------------------------------


async def _latencies(base_url: str, s: Settings) -> list[latency.Latency]:
    async with throughput.new_client(base_url) as client:
        await throughput.pipeline(client, 200)
        return [
            await latency.light_load(client, max_latency=ml, duration=s.latency_seconds)
            for ml in (0.05, 0.01, 0.0)
        ]


def latency_rows(s: Settings) -> list[Row]:
    with _stage("latency"), emulator() as emu:
        results = asyncio.run(_latencies(emu.base_url, s))
    rows = []
    for r in results:
        rows.append(
            Row(
                "4 latency, 1 res/10ms @0ms",
                f"max_latency={r.max_latency * 1000:g}ms ({r.samples} samples)",
                f"p50 {r.p50 * 1000:.1f} ms, p99 {r.p99 * 1000:.1f} ms",
                note=f"max {r.max * 1000:.1f} ms, mean batch {r.mean_batch:.1f}",
            )
        )
    return rows


# -- row 5 ------------------------------------------------------------------------------------


def rss_rows(s: Settings) -> list[Row]:
    results: list[rss.RssResult] = []
    with _stage(f"RSS for {', '.join(f'{c:,}' for c in s.rss_counts)}"), emulator() as emu:
        for count in s.rss_counts:
            results.append(rss.measure_rss(emu.base_url, count))
    rows = []
    smallest = results[0].peak_mib
    for r in results:
        quartiles = " / ".join(f"{q:.0f}" for q in r.quartiles_mib)
        rows.append(
            Row(
                "5 client peak RSS",
                f"{r.count:,} resources streamed",
                f"{r.peak_mib:.0f} MiB",
                note=(
                    f"{r.count / r.seconds:,.0f} res/s, {r.seconds:.0f} s; VmRSS at start"
                    f" {r.start_mib:.0f}, at 25/50/75/100%: {quartiles} MiB;"
                    f" imported {r.imported:,}"
                ),
            )
        )
    growth = results[-1].peak_mib - smallest
    flat = growth <= max(10.0, 0.1 * smallest)
    rows.append(
        Row(
            "5 client peak RSS",
            f"growth {results[0].count:,} -> {results[-1].count:,}",
            f"{growth:+.1f} MiB",
            "flat (<= 10% or 10 MiB)",
            flat,
        )
    )
    return rows


# -- row 6 ------------------------------------------------------------------------------------


async def _rates(urls: list[str], s: Settings) -> list[ratecap.RateResult]:
    cases = [
        ratecap.rate_capped(
            url,
            cap=s.rate_cap,
            window=s.rate_window,
            told=told,
            duration=s.rate_seconds,
        )
        for url, told in zip(urls, (True, False), strict=False)
    ]
    return list(await asyncio.gather(*cases))


def rate_rows(s: Settings) -> list[Row]:
    cases = 2 if s.rate_learned else 1
    # The close at the end fails what is still queued, by design; keep its warning quiet.
    logging.getLogger("anychannel_async.pipeline").setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack, _stage(f"rate cap ({s.rate_seconds:g} s)"):
        emus = [
            stack.enter_context(emulator(rate_limit=s.rate_cap, rate_window=s.rate_window))
            for _ in range(cases)
        ]
        results = asyncio.run(_rates([emu.base_url for emu in emus], s))
    rows = []
    for r in results:
        how = "told max_requests_per_minute" if r.told else "learned from X-Rate-Limit"
        share = r.rate / r.ideal
        sec = f"6 rate cap {r.cap}/{r.window:g}s"
        rows.append(
            Row(
                sec,
                f"{how}: res/s vs ideal {r.ideal:,.0f}",
                f"{r.rate:,.0f} ({share:.1%})",
                ">= 95%",
                share >= 0.95,
                note=f"{r.requests} requests in {r.duration:g} s, budget in force {r.budget}/min",
            )
        )
        rows.append(
            Row(
                sec,
                f"{how}: 429s (after the first window)",
                f"{r.status_429} ({r.status_429_after_first_window})",
                "0 after the first window",
                r.status_429_after_first_window == 0,
            )
        )
    if not s.rate_learned:
        rows.append(
            Row(
                f"6 rate cap {s.rate_cap}/{s.rate_window:g}s",
                "learned from X-Rate-Limit",
                "skipped",
                note="needs a 60 s window (the learner assumes per-minute); run without --quick",
            )
        )
    return rows


# -- row 7 ------------------------------------------------------------------------------------


@attrs.define
class _OutboxRuns:
    mem: list[throughput.Measure] = attrs.Factory(list)
    dur: list[throughput.Measure] = attrs.Factory(list)
    mem_single: list[throughput.Measure] = attrs.Factory(list)
    dur_single: list[throughput.Measure] = attrs.Factory(list)
    raw: list[throughput.Measure] = attrs.Factory(list)
    sql: list[dict[str, float]] = attrs.Factory(list)


async def _outbox_runs(base_url: str, s: Settings) -> _OutboxRuns:
    runs = _OutboxRuns()
    async with throughput.new_client(base_url) as client:
        # Warm-up: connections, imports, converter caches, sqlite3.
        await outbox.bulk(client, 2_000)
        with outbox.fresh_outbox() as path:
            await outbox.bulk(client, 2_000, path)
        await outbox.single(client, 500)
        with outbox.fresh_outbox() as path:
            await outbox.single(client, 500, path)
        for _ in range(s.reps):
            runs.mem.append(await outbox.bulk(client, s.outbox_n))
            with outbox.fresh_outbox() as path:
                runs.dur.append(await outbox.bulk(client, s.outbox_n, path))
            runs.mem_single.append(await outbox.single(client, s.outbox_single_n))
            with outbox.fresh_outbox() as path:
                runs.dur_single.append(await outbox.single(client, s.outbox_single_n, path))
            with outbox.fresh_outbox() as path:
                runs.raw.append(outbox.raw_commits(path, s.outbox_raw_n))
            with outbox.fresh_outbox() as path:
                runs.sql.append(outbox.sql_costs(path, s.outbox_n))
    return runs


def outbox_rows(s: Settings) -> tuple[list[Row], str]:
    with _stage("outbox"), emulator() as emu:
        runs = asyncio.run(_outbox_runs(emu.base_url, s))

    def rate(ms: Sequence[throughput.Measure]) -> str:
        return _fmt_rate(median([m.rate for m in ms]))

    def cpu(ms: Sequence[throughput.Measure]) -> str:
        return f"client CPU {median([m.cpu_per_resource for m in ms]) * US:.1f} µs/res"

    sec = "7 outbox @0ms"
    chunk = f"submit_many {outbox.CHUNK:,}/call"
    ratio = _paired(runs.dur, runs.mem)
    ratio_single = _paired(runs.dur_single, runs.mem_single)
    raw = median([m.rate for m in runs.raw])
    raw_cpu = median([m.cpu_per_resource for m in runs.raw])

    def spread(a: Sequence[throughput.Measure], b: Sequence[throughput.Measure]) -> str:
        ratios = [x.rate / y.rate for x, y in zip(a, b, strict=True)]
        return f"per repetition {min(ratios):.0%} to {max(ratios):.0%}"

    mem_cpu = median([m.cpu_per_resource for m in runs.mem])
    dur_cpu = median([m.cpu_per_resource for m in runs.dur])
    sql = {name: median([costs[name] for costs in runs.sql]) for name in runs.sql[0]}
    lines = [
        f"Where the outbox's CPU goes with submit_many: {dur_cpu * US:.1f} µs/res against"
        f" {mem_cpu * US:.1f} in memory (+{(dur_cpu - mem_cpu) * US:.1f} µs; medians, all"
        " threads).",
        "The SQL the writer thread runs per resource, timed alone on a fresh file"
        f" ({s.outbox_n:,} rows, no queue, no thread, no loop; CPU µs/res):",
        *(f"  {seconds * US:6.2f} µs  {name}" for name, seconds in sql.items()),
        f"  {sum(sql.values()) * US:6.2f} µs  together; the rest of the difference,"
        f" {(dur_cpu - mem_cpu - sum(sql.values())) * US:.1f} µs, is not in them (the request"
        " queue, the hops between threads, contention: not split here)",
    ]
    rows = [
        Row(sec, f"in-memory, {chunk}", rate(runs.mem), note=cpu(runs.mem)),
        Row(
            sec,
            f"outbox (WAL, synchronous=FULL), {chunk}",
            rate(runs.dur),
            note=f"{cpu(runs.dur)} (the writer thread included)",
        ),
        Row(
            sec,
            f"outbox / in-memory, {chunk}",
            f"{ratio:.0%}",
            ">= 50%",
            ratio >= 0.5,
            note=spread(runs.dur, runs.mem),
        ),
        Row(sec, "in-memory, one await submit() at a time", rate(runs.mem_single)),
        Row(
            sec,
            "outbox, one await submit() at a time",
            rate(runs.dur_single),
            note=f"{cpu(runs.dur_single)}; each submit waits for its own commit",
        ),
        Row(
            sec,
            "outbox / in-memory, one at a time",
            f"{ratio_single:.0%}",
            note=spread(runs.dur_single, runs.mem_single),
        ),
        Row(
            sec,
            "raw SQLite, 1 INSERT per commit, same settings",
            f"{raw:,.0f} commits/s",
            note=(
                f"{1e6 / raw:.0f} µs per commit, {raw_cpu * US:.0f} µs of it CPU; no pipeline,"
                " no event loop: the disk's pace for one"
                f" commit per resource; outbox one at a time reaches"
                f" {median([m.rate for m in runs.dur_single]) / raw:.0%} of it"
            ),
        ),
    ]
    return rows, "\n".join(lines)


# -- rows 8-10: PushPool (issue 10) -----------------------------------------------------------

# Row 10's pool settings: the dead host's accounts fill at most DEAD_SHARE each, and
# DEAD_SHARE x the dead accounts stays below POOL_MAX_PENDING (the pool documents that the
# accounts of one stuck host can fill max_pending between them).
POOL_MAX_PENDING = 10_000
DEAD_SHARE = 200
# Row 9's second series: the pool with a hard bound on open pipelines.
POOL_MAX_OPEN = 1_000


@attrs.define
class _PoolRuns:
    pool: list[throughput.Measure] = attrs.Factory(list)
    single: list[throughput.Measure] = attrs.Factory(list)
    # One pipeline making the requests the pool made: as many resources per request (and
    # requests at once as the pool has connections to the host). No pool of pipelines can beat
    # it, so its rate against `single` is the most the pool's ratio can be at that size.
    sized: list[throughput.Measure] = attrs.Factory(list)
    # The same in requests of other sizes, by size: the most per request any order of sending
    # could give the pool, and larger ones (how large requests would have to be).
    by_size: dict[int, list[throughput.Measure]] = attrs.Factory(dict)


# A PushPool's defaults, as its signature has them: connections per host (the requests at
# once of `sized`) and max_pending.
_POOL_DEFAULTS = inspect.signature(PushPool).parameters
POOL_CONNECTIONS: int = _POOL_DEFAULTS["max_connections"].default
POOL_DEFAULT_MAX_PENDING: int = _POOL_DEFAULTS["max_pending"].default
# A pipeline's default request size: the most a request carries.
MAX_BATCH_SIZE = PipelineSettings().max_batch_size


def _per_request(m: throughput.Measure) -> int:
    """Resources per request of a run, rounded (a pipeline's max_batch_size)."""
    return max(1, round(m.resources / m.requests))


async def _sized(
    client: AnyChannelClient, like: throughput.Measure, size: int | None = None
) -> throughput.Measure:
    """One pipeline pushing as many resources as `like`, in requests of its size (or `size`)."""
    return await throughput.pipeline(
        client,
        like.resources,
        max_batch_size=size or _per_request(like),
        max_in_flight=POOL_CONNECTIONS,
    )


def _most_per_request(s: Settings) -> int:
    """The most resources per request any order of sending can give a pool fed round-robin:
    at each send, the accounts hold between nothing and a full request, evenly spread, so
    about half a request each on average, and together at most max_pending (the defaults')."""
    return min(MAX_BATCH_SIZE, 2 * POOL_DEFAULT_MAX_PENDING // s.pool_accounts)


def _sizes(s: Settings) -> list[int]:
    """Row 8's request sizes beside the pool's own: the most it could get, then larger."""
    most = _most_per_request(s)
    return sorted({most, *(size for size in (40, 60) if size > most)})


async def _pool_at(base_url: str, s: Settings, *, sized: bool) -> _PoolRuns:
    runs = _PoolRuns()
    accounts = pool.accounts_on(base_url, 0, s.pool_accounts)
    n = s.pool_accounts * s.pool_per_account
    async with throughput.new_client(base_url) as client:
        # Warm-up: imports, converters, connections.
        await throughput.pipeline(client, 1_000)
        await pool.pool_run(pool.accounts_on(base_url, 0, 20), 20)
        for rep in range(s.reps):
            # Alternate which goes first, so drift does not favour one.
            if rep % 2:
                runs.single.append(await throughput.pipeline(client, n))
                runs.pool.append(await pool.pool_run(accounts, s.pool_per_account))
            else:
                runs.pool.append(await pool.pool_run(accounts, s.pool_per_account))
                runs.single.append(await throughput.pipeline(client, n))
            if sized:
                runs.sized.append(await _sized(client, runs.pool[-1]))
                for size in _sizes(s):
                    measure = await _sized(client, runs.pool[-1], size)
                    runs.by_size.setdefault(size, []).append(measure)
    return runs


@attrs.define
class _DeadRuns:
    with_dead: list[pool.DeadHostResult] = attrs.Factory(list)
    without: list[pool.DeadHostResult] = attrs.Factory(list)
    # One pipeline in requests of the healthy accounts' size in each run (see _PoolRuns.sized).
    sized_with: list[throughput.Measure] = attrs.Factory(list)
    sized_without: list[throughput.Measure] = attrs.Factory(list)


async def _dead_host(base_url: str, s: Settings) -> _DeadRuns:
    healthy = pool.accounts_on(base_url, 0, s.pool_accounts)
    dead = pool.accounts_on(pool.closed_port_url(), 100_000, s.pool_dead_accounts)
    settings = {"max_pending": POOL_MAX_PENDING, "max_pending_per_account": DEAD_SHARE}
    per = s.pool_healthy_per_account
    runs = _DeadRuns()
    await pool.dead_host_run(pool.accounts_on(base_url, 0, 20), 20, {}, 0, **settings)
    async with throughput.new_client(base_url) as client:
        for rep in range(s.reps):
            pair = [
                (runs.with_dead, dead, 2 * DEAD_SHARE),
                (runs.without, {}, 0),
            ]
            for into, down, dead_n in pair if rep % 2 == 0 else reversed(pair):
                into.append(await pool.dead_host_run(healthy, per, down, dead_n, **settings))
            sized = [
                (runs.sized_with, runs.with_dead[-1].healthy),
                (runs.sized_without, runs.without[-1].healthy),
            ]
            for into_sized, like in sized if rep % 2 == 0 else reversed(sized):
                into_sized.append(await _sized(client, like))
    return runs


def pool_rows(s: Settings) -> list[Row]:
    # The dead host's pushes log each failure, and the close fails what is queued: quiet.
    for name in ("anychannel_async", "anychannel_async.pipeline", "anychannel_async.pool"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    rows: list[Row] = []
    n = s.pool_accounts * s.pool_per_account
    what = f"{s.pool_accounts:,} accounts x {s.pool_per_account}, round-robin"
    for ms in (0, 50):
        title = f"pool throughput at {ms} ms ({what})"
        with _stage(title), pool.pool_emulator(s.pool_accounts, latency=ms / 1000) as emu:
            runs = asyncio.run(_pool_at(emu.base_url, s, sized=ms == 0))
        sec = f"8 pool @{ms}ms"

        def cpu(ms_: Sequence[throughput.Measure]) -> str:
            return f"client CPU {median([m.cpu_per_resource for m in ms_]) * US:.1f} µs/res"

        ratio = _paired(runs.pool, runs.single)
        ratios = [p.rate / q.rate for p, q in zip(runs.pool, runs.single, strict=True)]
        rows += [
            Row(
                sec,
                f"PushPool defaults, {what}",
                _fmt_rate(median([m.rate for m in runs.pool])),
                note=cpu(runs.pool),
            ),
            Row(
                sec,
                f"one pipeline (defaults), the same {n:,} to 1 account",
                _fmt_rate(median([m.rate for m in runs.single])),
                note=cpu(runs.single),
            ),
            Row(
                sec,
                "pool / one pipeline",
                f"{ratio:.0%}",
                ">= 80%",
                ratio >= 0.8,
                note=f"per repetition {min(ratios):.0%} to {max(ratios):.0%}",
            ),
        ]
        if runs.sized:
            size = median([_per_request(m) for m in runs.pool])
            rows += [
                Row(
                    sec,
                    f"one pipeline, the same {n:,} in the pool's requests"
                    f" ({size:.0f}/request, {POOL_CONNECTIONS} at once)",
                    _fmt_rate(median([m.rate for m in runs.sized])),
                    note=cpu(runs.sized),
                ),
                Row(
                    sec,
                    "  that / one pipeline: the most pool / one pipeline can be at that size",
                    f"{_paired(runs.sized, runs.single):.0%}",
                ),
                Row(
                    sec,
                    "  pool / that: what the pool's own machinery leaves",
                    f"{_paired(runs.pool, runs.sized):.0%}",
                ),
            ]
            for size, measures in runs.by_size.items():
                most = size == _most_per_request(s)
                rows += [
                    Row(
                        sec,
                        f"one pipeline, the same in requests of {size}"
                        + (" (the most any sending order gives the pool)" if most else ""),
                        _fmt_rate(median([m.rate for m in measures])),
                        note=cpu(measures),
                    ),
                    Row(sec, "  that / one pipeline", f"{_paired(measures, runs.single):.0%}"),
                ]
    counts = s.pool_rss_accounts
    total = s.pool_rss_total
    title = f"pool RSS for {', '.join(f'{c:,}' for c in counts)} accounts, {total:,} resources"
    rss: dict[int | None, list[pool.PoolRss]] = {None: [], POOL_MAX_OPEN: []}
    with _stage(title), pool.pool_emulator(max(counts)) as emu:
        for count in counts:
            for max_open, into in rss.items():
                into.append(pool.measure_pool_rss(emu.base_url, count, total, max_open=max_open))
    for max_open, results in rss.items():
        sec = "9 pool peak RSS" if max_open is None else f"9 max_open_accounts={max_open:,}"
        for r in results:
            rows.append(
                Row(
                    sec,
                    f"{r.accounts:,} accounts x {r.total // r.accounts:,} ({r.total:,})",
                    f"{r.peak_mib:.0f} MiB",
                    note=(
                        f"{r.total / r.seconds:,.0f} res/s, {r.seconds:.0f} s; VmRSS after"
                        f" warm-up {r.start_mib:.0f} MiB; imported {r.imported:,}"
                    ),
                )
            )
        # Flat means every count, not only the ends: the pool's worst case is at
        # max_open_accounts busy accounts, between them.
        peaks = [r.peak_mib for r in results]
        spread = max(peaks) - min(peaks)
        rows.append(
            Row(
                sec,
                f"spread over {', '.join(f'{r.accounts:,}' for r in results)} accounts",
                f"{spread:.1f} MiB",
                "flat (<= 10% or 10 MiB)",
                spread <= max(10.0, 0.1 * min(peaks)),
            )
        )
    with _stage("pool with a dead host"), pool.pool_emulator(s.pool_accounts) as emu:
        dead_runs = asyncio.run(_dead_host(emu.base_url, s))
    with_dead, without = dead_runs.with_dead, dead_runs.without
    sec = "10 pool, dead host @0ms"
    healthy = f"{s.pool_accounts:,} healthy x {s.pool_healthy_per_account}"
    dead = (
        f"{s.pool_dead_accounts} accounts on a closed port, {DEAD_SHARE}/account"
        f" (= {s.pool_dead_accounts * DEAD_SHARE:,} < max_pending {POOL_MAX_PENDING:,})"
    )
    share = median(
        [a.healthy.rate / b.healthy.rate for a, b in zip(with_dead, without, strict=True)]
    )
    rows += [
        Row(
            sec,
            f"{healthy}, no dead host",
            _fmt_rate(median([r.healthy.rate for r in without])),
        ),
        Row(
            sec,
            f"{healthy}, + {dead}",
            _fmt_rate(median([r.healthy.rate for r in with_dead])),
            note=(
                "dead accounts' resources held when the healthy ones were done: "
                + ", ".join(f"{r.dead_held:,}" for r in with_dead)
            ),
        ),
        Row(sec, "healthy with / without the dead host", f"{share:.0%}", ">= 90%", share >= 0.9),
    ]
    for label, runs_, sized_ in (
        ("without", without, dead_runs.sized_without),
        ("with", with_dead, dead_runs.sized_with),
    ):
        size = median([_per_request(r.healthy) for r in runs_])
        rows.append(
            Row(
                sec,
                f"one pipeline in the healthy requests' size {label} the dead host"
                f" ({size:.0f}/request, {POOL_CONNECTIONS} at once)",
                _fmt_rate(median([m.rate for m in sized_])),
            )
        )
    rows.append(
        Row(
            sec,
            "  with / without, one pipeline at those sizes: the most the pool's can be",
            f"{_paired(dead_runs.sized_with, dead_runs.sized_without):.0%}",
        )
    )
    return rows


# -- the table --------------------------------------------------------------------------------


def machine() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return [
        f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), {model},"
        f" load average at start {os.getloadavg()[0]:.2f}",
        f"python {platform.python_version()}, aiohttp {aiohttp.__version__},"
        f" anychannel-async {__version__}",
    ]


def table(rows: Sequence[Row]) -> str:
    head = ("section", "measure", "value", "goal", "status")
    cells = [(r.section, r.name, r.value, r.goal, _status(r.met)) for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(5)]
    out = []
    for i, line in enumerate([head, *cells]):
        text = "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        out.append(text)
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    notes = [f"  {r.section} / {r.name}: {r.note}" for r in rows if r.note]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer and smaller runs (~2 min)")
    parser.add_argument(
        "--only",
        action="append",
        choices=("throughput", "latency", "rss", "rate", "outbox", "pool"),
        help="run only these sections (repeatable); the default runs all",
    )
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    only = set(args.only or ("throughput", "latency", "rss", "rate", "outbox", "pool"))
    started = time.perf_counter()
    header = machine()
    rows: list[Row] = []
    report = ""
    if "throughput" in only:
        found, cpu, gc_cpu = throughput_rows(s)
        rows += found
        report = profile_report(s, cpu, gc_cpu)
    if "latency" in only:
        rows += latency_rows(s)
    if "rss" in only:
        rows += rss_rows(s)
    if "rate" in only:
        rows += rate_rows(s)
    if "outbox" in only:
        found_outbox, outbox_report = outbox_rows(s)
        rows += found_outbox
        report = "\n\n".join(part for part in (report, outbox_report) if part)
    if "pool" in only:
        rows += pool_rows(s)
    mode = "--quick" if args.quick else "full"
    print("\n".join(header))
    print(f"mode: {mode}, {s.reps} repetitions; emulator in a separate process\n")
    print(table(rows))
    if report:
        print()
        print(report)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
