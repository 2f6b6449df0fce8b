"""Shared pieces of the benchmarks: the emulator in its own process, resources, statistics."""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from anychannel_async import Author, ExternalResource

IPID = "bench-instance"
TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
PUSH_PATH = "/api/v2/any_channel/push"

# A realistic social post: ~80 characters of text, an author with a display name.
_MESSAGE = "Ordered the blue one on Monday, still no tracking number. Can someone help me? #{n}"
_BASE_TIME = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_run_ids = itertools.count()


def vm_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB: ``VmRSS`` (now) or
    ``VmHWM`` (its peak).

    The peak is read here rather than from ``ru_maxrss``: Linux keeps ``ru_maxrss`` across
    ``exec``, so a child started by a large parent (run.py after the throughput rows) reports
    the parent's peak when its own is lower. ``VmHWM`` belongs to the new image.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_prefix(label: str) -> str:
    """A prefix for external ids that no earlier run against the same emulator used."""
    return f"{label}-{os.getpid()}-{next(_run_ids)}-"


def make_resource(prefix: str, n: int) -> ExternalResource:
    """Build one post the way an integration would: validated model, aware datetime, author."""
    return ExternalResource(
        external_id=f"{prefix}{n}",
        message=_MESSAGE.format(n=n),
        created_at=_BASE_TIME + n * _SECOND,
        author=Author(external_id=f"user-{n % 5000}", name=f"Customer {n % 5000}"),
    )


def resource_json(prefix: str, n: int) -> dict[str, Any]:
    """The same post as the wire JSON object, for the bare-aiohttp baselines."""
    return {
        "external_id": f"{prefix}{n}",
        "message": _MESSAGE.format(n=n),
        "created_at": (_BASE_TIME + n * _SECOND).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "author": {"external_id": f"user-{n % 5000}", "name": f"Customer {n % 5000}"},
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on the sorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@attrs.frozen
class Row:
    """One line of the results table."""

    section: str
    name: str
    value: str
    goal: str = ""
    #: True met, False missed, None when the row has no goal.
    met: bool | None = None
    note: str = ""


class Emulator:
    """`python -m anychannel_async.testing` in a child process; its base URL once it listens."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        rate_limit: int | None = None,
        rate_window: float = 60.0,
        max_resources: int = 100,
        accounts: Mapping[str, str] | None = None,
    ) -> None:
        # Accounts beyond the default one go in a file, not $ANYCHANNEL_EMULATOR_ACCOUNTS:
        # thousands of them exceed the size of one environment string (128 KiB).
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        account_args = ["--account", f"{IPID}={TOKEN}"]
        if accounts is not None:
            self._dir = tempfile.TemporaryDirectory(prefix="bench-emulator-")
            path = Path(self._dir.name) / "accounts.json"
            path.write_text(json.dumps({**accounts, IPID: TOKEN}))
            path.chmod(0o600)
            account_args = ["--accounts-file", str(path)]
        args = [
            sys.executable,
            "-m",
            "anychannel_async.testing",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *account_args,
            "--latency",
            str(latency),
            "--max-resources",
            str(max_resources),
        ]
        if rate_limit is not None:
            args += ["--rate-limit", str(rate_limit), "--rate-window", str(rate_window)]
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            args, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http"):
            self.close()
            raise RuntimeError(f"the emulator did not start (first line {line!r})")
        self.base_url = line

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        if self._dir is not None:
            self._dir.cleanup()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def emulator(**kwargs: Any) -> Iterator[Emulator]:
    emu = Emulator(**kwargs)
    try:
        yield emu
    finally:
        emu.close()


class GcMeter:
    """CPU seconds spent in the cyclic garbage collector while installed (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._started = 0.0

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.collections += 1

    def __enter__(self) -> GcMeter:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)
