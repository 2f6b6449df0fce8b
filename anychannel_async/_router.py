"""Router: the only writer of futures. Answers to outcomes, the attempts check, orphan timers.

An answer is positional results, already paired with their submissions
(`_serde.decode_push_results` refuses any that do not pair exactly), or a request-level error.
The router decides what each means for each submission, with `_errors.verdict` as the one
answer to "final, unknown, or retry?", resolves or fails futures, and hands back what must be
pushed again. It never sends and never touches the queue: resources to push again go back
through the ``owner`` it is given (its pipeline's ``_requeue``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from ._conversations import Conversations, Parent
from ._errors import (
    AnyChannelError,
    ClosedError,
    HaltedError,
    OutcomeUnknownError,
    ParentNotFoundError,
    ProcessingError,
    ProtocolError,
    ResourceError,
    ValidationError,
    Verdict,
    copies,
    verdict,
)
from ._flow import FlowControl
from ._metrics import NO_METRICS, Recorder
from ._outbox import Outbox
from ._results import PushResult, StatusCode
from ._submission import Submission

__all__ = ["Requeues", "Router"]

logger = logging.getLogger("anychannel_async.pipeline")

# Waits between pushes of a resource whose parent Zendesk could not locate (seconds).
_ORPHAN_FIRST_WAIT = 0.25
_ORPHAN_MAX_WAIT = 5.0


class Requeues(Protocol):
    """Where the router sends what must be pushed again: its pipeline. An object, not a bound
    method (~64 bytes each, and a pool holds a router per account)."""

    def _requeue(self, submissions: list[Submission]) -> None: ...


class Router:
    """Settles submissions: resolves or fails their futures, once, and does the bookkeeping."""

    __slots__ = (
        "_conversations",
        "_flow",
        "_max_attempts",
        "_metrics",
        "_on_finished",
        "_outbox",
        "_owner",
        "_parent_timeout",
        "_timers",
        "already_imported",
        "failed",
        "succeeded",
    )

    def __init__(
        self,
        *,
        flow: FlowControl,
        outbox: Outbox | None,
        max_attempts: int,
        parent_timeout: float,
        owner: Requeues,
        metrics: Recorder = NO_METRICS,
        on_finished: Callable[[asyncio.Future[PushResult]], None] | None = None,
    ) -> None:
        self._metrics = metrics
        self._on_finished = on_finished
        self._flow = flow
        self._outbox = outbox
        self._max_attempts = max_attempts
        self._parent_timeout = parent_timeout
        self._owner = owner
        self._conversations: Conversations[Submission] = Conversations()
        # Orphans waiting to be pushed again: made on first use (a pool holds a router per
        # busy account, and an empty dict is 64 bytes).
        self._timers: dict[Submission, asyncio.TimerHandle] | None = None
        #: Resources resolved, by status code (two counts, not a Counter: a pool holds a
        #: router per account); failed, by exception class name (made at the first).
        self.succeeded = 0
        self.already_imported = 0
        self.failed: collections.Counter[str] | None = None

    def resolved(self) -> dict[str, int]:
        """Resources resolved so far, by status code (those with none left out)."""
        counts = (
            (StatusCode.SUCCESS, self.succeeded),
            (StatusCode.ALREADY_IMPORTED, self.already_imported),
        )
        return {code.value: count for code, count in counts if count}

    # -- admission ---------------------------------------------------------------------------

    def key_for(self, external_id: str, thread_id: str | None, parent_id: str | None) -> str:
        return self._conversations.key_for(external_id, thread_id, parent_id)

    def admit(self, submission: Submission) -> bool:
        """A submission whose flow-control unit is taken: it is the router's until finished.
        False (and its future failed) when it may not be queued."""
        clash = self._conversations.clash(submission)
        if clash is not None:
            self.fail(submission, ValidationError("external_id", clash))
            return False
        self._conversations.admit(submission)
        return True

    def doomed(self, submission: Submission) -> bool:
        """Before a push: True (and settled) when it must not go, because its owner cancelled
        it or its parent already failed."""
        if submission.future.done():
            self._finished(submission)
            return True
        if self._conversations.doomed(submission):
            self.fail(submission, self._orphan_error(submission, submission.parent_id or ""))
            return True
        return False

    # -- answers -----------------------------------------------------------------------------

    def results(
        self, batch: Sequence[Submission], results: Sequence[PushResult]
    ) -> list[Submission]:
        """Settle a batch by its positional results; returns what to push again, in order."""
        again: list[Submission] = []
        for submission, result in zip(batch, results, strict=True):
            if submission.future.done():
                if result.imported and not submission.imported:
                    # Cancelled by its owner while in flight, yet Zendesk took it: its children
                    # and its outbox row must know it is there.
                    self._mark_imported(submission)
                self._finished(submission)
                continue
            code = result.code
            if code is StatusCode.SUCCESS or code is StatusCode.ALREADY_IMPORTED:
                self._resolve(submission, result)
            elif code is StatusCode.HALTED:
                # Nothing happened to a halted resource: Zendesk stopped before it.
                spent = HaltedError(
                    submission.external_id, f"halted {submission.attempts + 1} times", result
                )
                self._retry(submission, spent, again)
            elif code is StatusCode.COULD_NOT_LOCATE_PARENT:
                self._orphan(submission, result)
            elif code is StatusCode.PROCESSING_ERROR:
                detail = result.description or "no description"
                error = f"processing_error: {detail}"
                self.fail(submission, ProcessingError(submission.external_id, error, result))
            else:
                # A code this version does not know does not say whether Zendesk holds it.
                unknown = ProtocolError(f"unknown status code {code!r} for {result.external_id}")
                self._unknown(submission, unknown, again)
        return again

    def error(self, batch: Sequence[Submission], error: AnyChannelError) -> list[Submission]:
        """Settle a batch by a request-level error; returns what to push again, in order.

        An unknown outcome (lost, garbled, timed out) or a 429 is never a failure by itself:
        the resources go again, and fail only once ``max_attempts`` pushes told nothing (an
        unknown one with `OutcomeUnknownError`). A definite refusal fails them all, each with
        its own copy of the error.
        """
        again: list[Submission] = []
        live = []
        for submission in batch:
            if submission.future.done():
                self._finished(submission)
            else:
                live.append(submission)
        fate = verdict(error)
        if fate is Verdict.UNKNOWN:
            for submission in live:
                self._unknown(submission, error, again)
        elif fate is Verdict.RETRY:
            for submission, own in zip(live, copies(error, len(live)), strict=True):
                self._retry(submission, own, again)
        else:
            self.fail_all(live, error)
        return again

    def _unknown(
        self, submission: Submission, error: AnyChannelError, again: list[Submission]
    ) -> None:
        """A push whose answer did not say what became of it: push it again."""
        submission.unknown = error
        self._retry(submission, error, again)

    def _retry(
        self, submission: Submission, spent: AnyChannelError, again: list[Submission]
    ) -> None:
        """Push it again, unless it already went ``max_attempts`` times without a definite
        outcome; then fail it: with `OutcomeUnknownError` if any of those pushes may have
        reached Zendesk, else with ``spent``. The one attempts check."""
        submission.attempts += 1
        if submission.attempts <= self._max_attempts:
            again.append(submission)
        elif submission.unknown is not None:
            self.fail(submission, self._outcome_unknown(submission))
        else:
            self.fail(submission, spent)

    @staticmethod
    def _outcome_unknown(submission: Submission) -> OutcomeUnknownError:
        assert submission.unknown is not None
        return OutcomeUnknownError(
            submission.external_id, submission.sends, copies(submission.unknown, 1)[0]
        )

    def cut_short(self, batch: Iterable[Submission]) -> None:
        """A request was cancelled before its answer (close): what it carried is unknown."""
        cut = ClosedError("the request was cut short by close before its answer")
        for submission in batch:
            if not submission.future.done():
                submission.unknown = cut

    # -- parents -----------------------------------------------------------------------------

    def _orphan(self, child: Submission, result: PushResult) -> None:
        """Zendesk could not locate the child's parent: wait for it, retry later, or fail."""
        parent_id = child.parent_id or ""
        where = self._conversations.place(child)
        if where is Parent.PENDING:
            return  # its parent's outcome releases or fails it (see _finished)
        if where is Parent.CYCLE:
            reason = f"parent {parent_id} descends from it (a cycle)"
            self.fail(child, ParentNotFoundError(child.external_id, reason, result))
            return
        if where is Parent.FAILED:
            self.fail(child, self._orphan_error(child, parent_id, result))
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if child.orphaned_at is None:
            child.orphaned_at = now
        deadline = child.orphaned_at + self._parent_timeout
        if now >= deadline:
            reason = f"parent {parent_id} not found within {self._parent_timeout:g} s"
            self.fail(child, ParentNotFoundError(child.external_id, reason, result))
            return
        # The parent may come from another process: try again later, with jittered backoff.
        wait = min(_ORPHAN_MAX_WAIT, _ORPHAN_FIRST_WAIT * 2**child.orphan_tries)
        wait *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter
        child.orphan_tries += 1
        if self._timers is None:
            self._timers = {}
        self._timers[child] = loop.call_later(min(wait, deadline - now), self._orphan_wakes, child)

    def _orphan_wakes(self, child: Submission) -> None:
        assert self._timers is not None
        del self._timers[child]
        if child.future.done():
            self._finished(child)
        else:
            self._owner._requeue([child])

    def _orphan_error(
        self, child: Submission, parent_id: str, result: PushResult | None = None
    ) -> AnyChannelError:
        """What a child fails with when its parent failed: final when the parent failed for
        good; else the parent's request's error (a 429, a close, refused credentials: the
        child's too), or, for one about the parent alone (halted, outcome unknown), an error
        naming the child that holds the parent's: the child may pass after it.

        Never "nothing happened to it" for a child that a push of unknown outcome may have
        brought to Zendesk (held back, due again, when its parent failed for now): that is
        its own `OutcomeUnknownError`, as at close. A parent that failed for its own parent
        passes on the error that may pass, not its wrapping of it: a chain of replies holds
        one error a level, not every ancestor's nested (messages growing with the chain)."""
        cause = self._conversations.cause(parent_id)
        if cause is None:
            return ParentNotFoundError(child.external_id, f"parent {parent_id} failed", result)
        if result is None and child.unknown is not None and verdict(cause) is not Verdict.REFUSED:
            return self._outcome_unknown(child)  # (a refusal stays one: it stops a run)
        if not isinstance(cause, ResourceError | OutcomeUnknownError):
            return copies(cause, 1)[0]
        if isinstance(cause, ParentNotFoundError) and cause.parent_error is not None:
            cause = cause.parent_error
        [own] = copies(cause, 1)
        return ParentNotFoundError(
            child.external_id,
            f"parent {parent_id} failed, and may pass pushed again ({own})",
            result,
            parent_error=own,
        )

    # -- futures -----------------------------------------------------------------------------

    def _resolve(self, submission: Submission, result: PushResult) -> None:
        submission.future.set_result(result)
        if result.code is StatusCode.SUCCESS:
            self.succeeded += 1
        else:  # the only other code resolved with (see `results`)
            self.already_imported += 1
        self._metrics.outcome(result.code)
        submission.imported = True
        if submission.seq is not None and self._outbox is not None:
            self._outbox.resolve(submission.seq)
        self._finished(submission)

    def _mark_imported(self, submission: Submission) -> None:
        submission.imported = True
        if submission.seq is not None and self._outbox is not None:
            self._outbox.resolve(submission.seq)

    def fail(self, submission: Submission, error: AnyChannelError) -> None:
        """Fail a submission's future with error (its own copy), unless it is done already."""
        if not submission.future.done():
            submission.future.set_exception(error)
            if self.failed is None:
                self.failed = collections.Counter()
            self.failed[type(error).__name__] += 1
            self._metrics.outcome(type(error).__name__)
            submission.error = error
            # Dead letters are what failed for good; anything else (credentials, unknown,
            # closing) leaves the row pending, to be pushed again at the next start.
            outbox = self._outbox
            if submission.seq is not None and outbox and verdict(error) is Verdict.FINAL:
                outbox.bury(submission.seq, f"{type(error).__name__}: {error}")
        self._finished(submission)

    def fail_all(self, batch: Iterable[Submission], error: AnyChannelError) -> None:
        batch = list(batch)
        for submission, own in zip(batch, copies(error, len(batch)), strict=True):
            self.fail(submission, own)

    def dropped(self, submission: Submission) -> None:
        """Taken out of the queue unsent: its owner cancelled it."""
        self._finished(submission)

    def _finished(self, submission: Submission) -> None:
        """Bookkeeping for the end of a submission, however its future ended (once each).

        Called when the router settles the future, or, for a future its owner cancelled, when
        the pipeline next meets it (at the cut, in an answer, at a timer): no done callback
        per future, which would cost a scheduled call per resource.
        """
        if submission.finished:
            return
        submission.finished = True
        cancelled = submission.future.cancelled()
        # Cancelled by its owner after a push whose answer did not tell: Zendesk may hold it.
        maybe = cancelled and not submission.imported and submission.unknown is not None
        outbox = self._outbox
        unsent = cancelled and not submission.imported and not maybe
        if unsent and submission.seq is not None and outbox:
            outbox.bury(submission.seq, "cancelled by its owner before it was imported")
        # What stopped it, read by `finish` only when it failed: None when for good (its
        # children fail as not found), else the error they fail with a copy of: a copy of its
        # own, taken before its owner sees the future's (a note added there, in on_settled
        # or later, is not its children's).
        error = submission.error
        if error is not None:
            error = None if verdict(error) is Verdict.FINAL else copies(error, 1)[0]
        self._flow.release()
        if self._on_finished is not None:
            try:
                self._on_finished(submission.future)
            except Exception:
                # The caller's bug: raised on, it would leave this submission's children and
                # the rest of its batch pending for good.
                logger.exception("on_settled raised; the pipeline goes on")
        if self._timers:
            timer = self._timers.pop(submission, None)
            if timer is not None:
                timer.cancel()
        imported = submission.imported or maybe  # maybe: its children go on, Zendesk tells
        children = self._conversations.finish(submission, imported, error, failed=not cancelled)
        if not children:
            return
        if imported:
            self._owner._requeue(children)
        else:
            for child in children:
                self.fail(child, self._orphan_error(child, submission.external_id))

    # -- closing -----------------------------------------------------------------------------

    def abandon(self, batch: Iterable[Submission], reason: str) -> None:
        """The pipeline closes before these resolved: each fails with `ClosedError`, or with
        `OutcomeUnknownError` when a push of it may have reached Zendesk (never "nothing
        happened" for what Zendesk may hold)."""
        self.give_up(batch, ClosedError(reason))

    def give_up(self, batch: Iterable[Submission], error: AnyChannelError) -> None:
        """These will not be pushed (again): each fails with its own copy of error, or with
        `OutcomeUnknownError` when a push of it may have reached Zendesk."""
        for submission in list(batch):
            if submission.unknown is not None:
                self.fail(submission, self._outcome_unknown(submission))
            else:
                self.fail(submission, copies(error, 1)[0])

    def stop_timers(self) -> list[Submission]:
        """Cancel every orphan's timer; returns the orphans, which nothing will push again."""
        timers, self._timers = self._timers or {}, None
        for timer in timers.values():
            timer.cancel()
        return list(timers)

    def close(self, reason: str) -> None:
        """Abandon everything still here: timers, children waiting, outstanding."""
        self.abandon(self.stop_timers(), reason)
        self.abandon(self._conversations.drain_waiting(), reason)
        self.abandon(self.outstanding(), reason)

    def outstanding(self) -> list[Submission]:
        """Submissions admitted and not yet finished (each is pending in its conversation:
        no set of them is kept beside)."""
        return self._conversations.members()
