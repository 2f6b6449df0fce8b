"""Row 2's explanation: where the client's CPU goes, per resource, through the whole pipeline.

A cProfile of one pipeline run, its functions' own time (tottime) grouped by what they do.
Built-ins (isinstance, len, dict methods, ...) are charged to the group of their caller, using
cProfile's per-caller timings, so "builtins" never hides which layer called them. cProfile
inflates call-heavy code, so the groups are shown as shares, and as µs per resource scaled to
the CPU measured without the profiler, less the cyclic GC's share (measured on its own: the
profiled run has the GC off, or each collection would land on whichever function allocated).
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import time
from collections import defaultdict
from typing import Any

import attrs
from _common import make_resource, run_prefix
from throughput import pipeline

from anychannel_async import AnyChannelClient
from anychannel_async._serde import decode_push_results, encode_resource

__all__ = ["Profile", "profile_pipeline", "stage_costs"]

_Func = tuple[str, int, str]

GROUPS = (
    "build the resource (user code + model validation)",
    "encode to JSON (cattrs unstructure + dumps)",
    "pipeline bookkeeping (submit, batcher, flow, router, outcomes)",
    "asyncio (loop, futures, callbacks, tasks)",
    "HTTP client (aiohttp, yarl, multidict, backoff, _client)",
    "decode the answer (loads, cattrs structure, PushResult)",
    "benchmark harness (done-callback tally)",
    "other",
)
BUILD, ENCODE, PIPELINE, ASYNCIO, HTTP, DECODE, HARNESS, OTHER = GROUPS

_DECODE_NAMES = frozenset({"decode_push_results", "_pair_plainly", "parse", "_describe"})
# Callers whose built-ins belong to them; a built-in is charged through these files' groups.
_TRANSPARENT = ("~", "<frozen abc>", "enum.py", "functools.py", "typing.py", "<string>")


def _group_of_code(func: _Func) -> str | None:
    """The group of a Python-level function, None when it should be charged to its callers."""
    filename, _, name = func
    if filename == "~":
        if "orjson.dumps" in name or "isoformat" in name or "JSONEncoder" in name:
            return ENCODE
        if "loads" in name or ("decode" in name and "json" in name):
            return DECODE
        if any(key in name for key in ("_asyncio.", "_contextvars", "select.epoll", "_heapq")):
            return ASYNCIO
        return None
    if filename.endswith(_TRANSPARENT):
        return None
    if "attrs generated" in filename:
        return DECODE if "PushResult" in filename or "_Wire" in filename else BUILD
    if "cattrs generated unstructure" in filename:
        return ENCODE
    if "cattrs generated structure" in filename:
        return DECODE
    if "/anychannel_async/" in filename and "/testing/" not in filename:
        module = filename.rsplit("/", 1)[-1]
        if module == "_models.py":
            return DECODE if name in _DECODE_NAMES else BUILD
        if module == "_serde.py":
            return DECODE if name in _DECODE_NAMES or "Wire" in name else ENCODE
        if module in ("_pipeline.py", "_batcher.py", "_flow.py", "_router.py", "_errors.py"):
            return PIPELINE
        return HTTP  # _client.py, _ratelimit.py
    if "/json/" in filename:
        return ENCODE if "encoder" in filename else DECODE
    if "/cattrs/" in filename:
        return ENCODE
    if "/asyncio/" in filename:
        return ASYNCIO
    if any(lib in filename for lib in ("/aiohttp/", "/yarl/", "/multidict/", "/backoff/")):
        return HTTP
    if filename.endswith("_common.py"):
        return BUILD
    if filename.endswith("throughput.py"):
        return HARNESS
    return OTHER


@attrs.frozen
class Profile:
    resources: int
    #: CPU seconds per resource measured without the profiler.
    cpu_per_resource: float
    #: Group -> share of profiled own time (0..1).
    shares: dict[str, float]
    #: The top functions by own time: (seconds per resource under the profiler, label).
    top: list[tuple[float, str]]
    profiled_per_resource: float


def _charge(stats: dict[_Func, Any]) -> dict[str, float]:
    """Own time per group; transparent functions charged to their callers' groups."""
    totals: dict[str, float] = defaultdict(float)
    memo: dict[_Func, dict[str, float]] = {}

    def split(func: _Func, depth: int = 0) -> dict[str, float]:
        """How one second of func's own time divides among groups."""
        group = _group_of_code(func)
        if group is not None:
            return {group: 1.0}
        if func in memo:
            return memo[func]
        memo[func] = {OTHER: 1.0}  # guards recursion
        callers = stats[func][4] if func in stats else {}
        weights = {caller: timing[2] for caller, timing in callers.items()}
        total = sum(weights.values())
        result: dict[str, float] = defaultdict(float)
        if total <= 0 or depth > 20:
            result[OTHER] = 1.0
        else:
            for caller, weight in weights.items():
                for group, part in split(caller, depth + 1).items():
                    result[group] += part * weight / total
        memo[func] = dict(result)
        return memo[func]

    for func, (_cc, _nc, tottime, _ct, _callers) in stats.items():
        for group, part in split(func).items():
            totals[group] += tottime * part
    return totals


def _label(func: _Func) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    short = filename.split("/site-packages/")[-1].split("/work/main/")[-1]
    short = short.split("/lib/python3.11/")[-1]
    return f"{short}:{line}({name})"


async def profile_pipeline(client: AnyChannelClient, n: int, cpu_per_resource: float) -> Profile:
    profiler = cProfile.Profile()
    # The cyclic GC is measured on its own (GcMeter); with it on, each collection would be
    # charged to whatever function happened to allocate, smearing it over the profile.
    gc.collect()
    gc.disable()
    try:
        await pipeline(client, n, on_start=profiler.enable, on_stop=profiler.disable)
    finally:
        gc.enable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    raw: dict[_Func, Any] = stats.stats  # type: ignore[attr-defined]
    totals = _charge(raw)
    grand = sum(totals.values())
    shares = {group: totals.get(group, 0.0) / grand for group in GROUPS}
    top = sorted(((row[2] / n, _label(func)) for func, row in raw.items()), reverse=True)[:15]
    return Profile(n, cpu_per_resource, shares, top, grand / n)


def stage_costs(n: int = 20_000) -> dict[str, float]:
    """Seconds per resource of single stages, timed directly (no profiler, no network)."""
    prefix = run_prefix("stage")
    t0 = time.process_time()
    resources = [make_resource(prefix, i) for i in range(n)]
    t1 = time.process_time()
    encoded = [encode_resource(resource) for resource in resources]
    t2 = time.process_time()
    answer = (
        b'{"results":['
        + b",".join(
            b'{"external_resource_id":"%s","status":{"code":"success"}}' % e.external_id.encode()
            for e in encoded[:100]
        )
        + b"]}"
    )
    ids = [e.external_id for e in encoded[:100]]
    rounds = n // 100
    t3 = time.process_time()
    for _ in range(rounds):
        decode_push_results(answer, ids)
    t4 = time.process_time()
    return {
        "build ExternalResource (incl. f-strings, Author)": (t1 - t0) / n,
        "encode_resource": (t2 - t1) / n,
        "decode_push_results (per result)": (t4 - t3) / (rounds * 100),
    }
