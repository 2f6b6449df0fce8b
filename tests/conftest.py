"""Shared fixtures and helpers: the package's own emulator over real TCP, clients for it, what
tests send it and read back from it, and the command line run as a user runs it."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from anychannel_async import AnyChannelClient, Author, ExternalResource, PushResult, RetryPolicy
from anychannel_async.testing import (
    DEFAULT_INSTANCE_PUSH_ID,
    DEFAULT_TOKEN,
    RecordedRequest,
    ZendeskEmulator,
)

# No per-example deadline: a shared 2-core machine can stall one example past any fixed bound,
# and a timing failure there says nothing about correctness. On CI, the examples are derived
# from the test, so a red run can be reproduced exactly.
settings.register_profile("anychannel", deadline=None, derandomize=bool(os.environ.get("CI")))
settings.load_profile("anychannel")

# The account of the package's `zendesk_emulator` fixture, which most tests share.
IPID = DEFAULT_INSTANCE_PUSH_ID
TOKEN = DEFAULT_TOKEN  # distinctive, so a leak into any text is easy to spot
# The Channel framework's endpoints, as Zendesk serves them.
PUSH_PATH = "/api/v2/any_channel/push"
VALIDATE_TOKEN_PATH = "/api/v2/any_channel/validate_token"
REPORT_ERROR_PATH = "/api/v2/any_channel/channelback/report_error"

Outcome = PushResult | BaseException
CREATED = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
# Retries at once: tests of retry paths stay fast (Retry-After is still honoured).
FAST_RETRY = RetryPolicy(initial_delay=0.0, max_tries=4, max_time=20.0)


def resource(external_id: str, message: str | None = None, **fields: Any) -> ExternalResource:
    """A valid resource with sensible defaults; keyword arguments override fields."""
    return ExternalResource(
        external_id=external_id,
        message=message if message is not None else f"message {external_id}",
        created_at=CREATED,
        author=fields.pop("author", Author("author-1", name="Ada")),
        **fields,
    )


def raw_resource(external_id: str, /, **fields: object) -> dict[str, object]:
    """A valid resource as the JSON object a client or an engine sends; keyword arguments
    override fields (external_id too: it is positional-only)."""
    found: dict[str, object] = {
        "external_id": external_id,
        "message": f"message {external_id}",
        "created_at": "2026-11-25T10:00:00Z",
        "author": {"external_id": "author-1", "name": "Ada"},
    }
    found.update(fields)
    return found


@pytest.fixture
def emulator(zendesk_emulator: ZendeskEmulator) -> ZendeskEmulator:
    """The package's own fixture, as users get it: one emulator per run, reset per test. It
    serves from its own thread, so blocking test code and subprocesses can use it too."""
    return zendesk_emulator


@pytest.fixture
async def client(emulator: ZendeskEmulator) -> AsyncIterator[AnyChannelClient]:
    async with AnyChannelClient(
        token=TOKEN, base_url=emulator.base_url, retry=FAST_RETRY, timeout=5.0
    ) as c:
        yield c


# -- what tests read back ----------------------------------------------------------------


def pushes(emulator: ZendeskEmulator) -> list[RecordedRequest]:
    """The push requests the emulator received, in arrival order."""
    return [r for r in emulator.requests if r.path == PUSH_PATH]


def batch_sizes(emulator: ZendeskEmulator) -> list[int]:
    """Resources per push request, in arrival order."""
    return [len(r.external_ids) for r in pushes(emulator)]


def requests_with(emulator: ZendeskEmulator, external_id: str) -> list[RecordedRequest]:
    """The push requests that carried external_id."""
    return [r for r in pushes(emulator) if external_id in r.external_ids]


async def settle(futures: Sequence[asyncio.Future[PushResult]]) -> list[Outcome]:
    """Wait for every future; its result or its exception, in order."""
    return list(await asyncio.gather(*futures, return_exceptions=True))


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll until condition holds (the bound only guards against a hang)."""
    async with asyncio.timeout(10.0):
        while not condition():  # noqa: ASYNC110 - the emulator's log has no event to wait on
            await asyncio.sleep(0.005)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """`wait_until` for blocking code (beside a subprocess): fail the test after timeout
    seconds, saying what never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.01)


def codes(outcomes: Sequence[Outcome]) -> list[object]:
    """Each outcome's status code, or its exception's class."""
    return [o.code if isinstance(o, PushResult) else type(o) for o in outcomes]


def comment_ids(emulator: ZendeskEmulator, external_id: str) -> list[str]:
    """External ids of the comments of the ticket holding external_id."""
    ticket = emulator.ticket_for(external_id)
    assert ticket is not None, f"{external_id} is on no ticket"
    return [c.external_id for c in ticket.comments]


# -- the command line, in a child process ---------------------------------------------------

#: How a child process starts the command line (installed or not, as `python -m`).
CLI = (sys.executable, "-m", "anychannel_async")


def cli_env(token: str | None = TOKEN) -> dict[str, str]:
    """The caller's environment without its ANYCHANNEL_ settings, plus the token if given: a
    child sees only what its test sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYCHANNEL_")}
    if token is not None:
        env["ANYCHANNEL_TOKEN"] = token
    return env


def account_options(emulator: ZendeskEmulator) -> tuple[str, ...]:
    """The command line's options naming the emulator's account."""
    return ("--base-url", emulator.base_url, "--instance-push-id", IPID)


def run_python(
    *args: str,
    token: str | None = TOKEN,
    stdin: str | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python ARGS...` to its end with `cli_env(token)`; its output captured as text."""
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env(token),
        timeout=timeout,
        cwd=cwd,
        preexec_fn=preexec_fn,
        check=False,
    )


#: `cli("push", ...)` runs `anychannel-async push ...` as `run_python` runs a script.
cli = functools.partial(run_python, "-m", "anychannel_async")


def cli_bytes(
    *args: str, token: str | None = TOKEN, stdin: bytes | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[bytes]:
    """`cli` for input that is not text: stdin as bytes, the output undecoded."""
    return subprocess.run(
        [*CLI, *args],
        input=stdin,
        capture_output=True,
        env=cli_env(token),
        timeout=timeout,
        check=False,
    )


def start_cli(*args: str, token: str | None = TOKEN) -> subprocess.Popen[str]:
    """Start `anychannel-async ARGS...` with `cli_env(token)`, stdout and stderr piped as text;
    the caller waits for it (or kills it)."""
    return subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(token),
    )


# Fixtures with their helpers that live in their own modules: the Redis Streams tests' (a
# redis-server per test), the many-accounts tests' (a host per emulator) and the integration
# service's; loaded here so pytest rewrites their asserts.
pytest_plugins = [
    "tests.redis_support",
    "tests.accounts_support",
    "tests.integration_support",
]
