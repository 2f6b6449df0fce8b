"""Channelbacks answered once per ``request_unique_identifier``.

Zendesk repeats a channelback with the same ``request_unique_identifier`` after a network
error: running the handler again would send the agent's reply twice. So the first request for an
identifier runs the handler and every repeat gets its answer: a repeat arriving while the first
still runs in this process waits for the same task; the answer is then kept in the
`AccountStore`, where repeats arriving later (or at another process sharing the file) find it.
A claim in the store makes one process the owner of an identifier at a time.

Only answers are remembered: an external id, or a refusal (`ChannelbackFailed`). A handler that
crashed gave none (a 500): its claim is released, and a repeat runs the handler again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

import attrs

from anychannel_async._accounts import AccountStore
from anychannel_async._errors import AnyChannelError

__all__ = ["Answers", "Reply"]

logger = logging.getLogger("anychannel_async.integration")

#: Answers are kept two days (at least a day, whatever the clock does in between).
KEEP_SECONDS = 2 * 24 * 3600.0
#: A claim whose owner gave no answer in this long (it died mid-handler) is taken over.
LEASE_SECONDS = 600.0
#: How long a repeat waits for another process's answer before a 503 (Zendesk may retry).
WAIT_SECONDS = 30.0
_POLL_SECONDS = 0.2


@attrs.frozen
class Reply:
    """An HTTP answer to a channelback: status and JSON body; ``remember`` when a repeat of the
    request must get it too."""

    status: int
    body: Mapping[str, object]
    remember: bool = True

    def to_json(self) -> str:
        return json.dumps({"status": self.status, "body": dict(self.body)})

    @classmethod
    def from_json(cls, text: str) -> Reply:
        stored = json.loads(text)
        return cls(status=int(stored["status"]), body=dict(stored["body"]))


class Answers:
    """Runs a channelback's work once per key, over one store; ``close`` ends what still runs."""

    def __init__(
        self,
        store: AccountStore,
        *,
        keep: float = KEEP_SECONDS,
        lease: float = LEASE_SECONDS,
        wait: float = WAIT_SECONDS,
    ) -> None:
        self._store = store
        self._keep = keep
        self._lease = lease
        self._wait = wait
        self._running: dict[str, asyncio.Task[Reply]] = {}

    async def once(self, key: str, work: Callable[[], Awaitable[Reply]]) -> Reply:
        """work's reply, or the reply of the first request with this key. A request that goes
        away while the work runs does not stop it: the answer is still kept for its repeat."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(self._run(key, work))
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Task[Reply]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone

    async def _run(self, key: str, work: Callable[[], Awaitable[Reply]]) -> Reply:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        while True:
            claim = await self._store.claim_answer(key, lease=self._lease, keep=self._keep)
            if claim.answer is not None:
                return Reply.from_json(claim.answer)
            if claim.owned:
                break
            if loop.time() >= deadline:  # another process is still at it
                return Reply(503, {"error": "in_progress"}, remember=False)
            await asyncio.sleep(_POLL_SECONDS)
        try:
            reply = await work()
        except BaseException:
            with contextlib.suppress(AnyChannelError):
                await self._store.release_claim(key)
            raise
        if reply.remember:
            await self._store.remember_answer(key, reply.to_json())
        else:
            await self._store.release_claim(key)
        return reply

    async def close(self) -> None:
        """Cancel the work still running and wait for it to end."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if tasks:
            logger.warning("closed with %d channelback(s) still running", len(tasks))
