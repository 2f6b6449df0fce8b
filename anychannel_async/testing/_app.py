"""The aiohttp application: Zendesk's three any_channel endpoints over the emulator's state.

Each request goes through the same gate in the same order: log it, read the body, rate limit,
size, JSON, authentication, then the endpoint's own checks; injected faults come last, so a 401 or
a 400 never depends on the dice. An endpoint decides its answer synchronously and may leave a
commit to run when the answer is sent, after the latency: that gap is what lets concurrent push
requests race as they do against the real service.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from aiohttp import web

from ._auth import Credentials, authenticate
from ._faults import Fault, FaultDice, Faults
from ._ratelimit import FixedWindow
from ._records import ReportedError
from ._state import AccountState, Created, Outcome, PushPlan, RequestHandle
from ._validation import RejectionError, check_push, check_report_error, check_validate_token

__all__ = ["RETURN_PATH", "Service", "build_app"]

_PREFIX = "/api/v2/any_channel/"
#: Where an integration's admin UI posts the administrator back to (``return_url``), as on
#: Zendesk; the query names the install under way.
RETURN_PATH = "/zendesk/channels/integration_service_instances/editor_finalizer"
_JSON = "application/json"


@attrs.frozen
class _Answer:
    """What to send, and what to commit just before sending it."""

    status: int
    body: bytes = b""
    content_type: str = _JSON
    headers: Mapping[str, str] = attrs.field(factory=dict)
    commit: Callable[[], None] | None = None
    drop: bool = False


def _json_answer(
    status: int, payload: object, *, commit: Callable[[], None] | None = None
) -> _Answer:
    return _Answer(status=status, body=json.dumps(payload).encode(), commit=commit)


def _error_answer(rejection: RejectionError) -> _Answer:
    payload: dict[str, str] = {"error": rejection.error}
    if rejection.description is not None:
        payload["description"] = rejection.description
    return _Answer(
        status=rejection.status,
        body=json.dumps(payload).encode(),
        headers=dict(rejection.headers),
    )


def _nobody(_instance_push_id: str, _request_id: str | None, _created: list[Created]) -> None:
    """The default listener of created resources: nobody."""


def _no_install(_install: str, _form: Mapping[str, str]) -> bool:
    return False


def _reject_constant(name: str) -> object:
    # Python's json reads NaN and Infinity; Zendesk's JSON parser does not.
    raise ValueError(f"{name} is not valid JSON")


@attrs.define
class Service:
    """The emulator's request handling, over state and settings owned by `ZendeskEmulator`."""

    state: AccountState
    dice: FaultDice
    limiter: FixedWindow
    accounts: Mapping[str, Credentials]
    get_faults: Callable[[], Faults]
    max_resources: int
    max_body_bytes: int
    #: Told of what each committed push created (its instance, request id and resources).
    created: Callable[[str, str | None, list[Created]], None] = _nobody
    #: Takes what an admin UI posted back to ``RETURN_PATH?install=...``; False if unknown.
    returned: Callable[[str, Mapping[str, str]], bool] = _no_install

    async def push(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._push)

    async def validate_token(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._validate_token)

    async def report_error(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._report_error)

    async def _serve(
        self,
        request: web.Request,
        endpoint: Callable[[Mapping[str, object], Faults, RequestHandle, str], _Answer],
    ) -> web.StreamResponse:
        handle = self.state.arrive(
            request.path, request.headers.get("User-Agent"), request.headers.get("Cookie")
        )
        try:
            return await self._answer(request, endpoint, handle)
        finally:
            self.state.left(handle)

    async def _answer(
        self,
        request: web.Request,
        endpoint: Callable[[Mapping[str, object], Faults, RequestHandle, str], _Answer],
        handle: RequestHandle,
    ) -> web.StreamResponse:
        faults = self.get_faults()
        size, raw = await _read_body(request, self.max_body_bytes)
        body = _parse_object(raw) if size <= self.max_body_bytes else None
        self.state.describe(handle, body)
        rate_headers: dict[str, str] = {}
        try:
            if faults.rate_limit is not None:
                admission = self.limiter.admit(faults.rate_limit, faults.rate_window)
                rate_headers = {
                    "X-Rate-Limit": str(admission.limit),
                    "X-Rate-Limit-Remaining": str(admission.remaining),
                }
                if not admission.allowed:
                    raise RejectionError(
                        429,
                        "TooManyRequests",
                        f"more than {admission.limit} requests in {faults.rate_window:g} s",
                        {"Retry-After": str(admission.retry_after)},
                    )
            if size > self.max_body_bytes:
                raise RejectionError(
                    413,
                    "RequestTooLarge",
                    f"request body is {size} bytes; the limit is {self.max_body_bytes} bytes",
                )
            if body is None:
                raise RejectionError(400, "InvalidJSON", "the request body must be a JSON object")
            ipid = body.get("instance_push_id")
            credentials = self.accounts.get(ipid) if isinstance(ipid, str) else None
            authorization = request.headers.get("Authorization", "")
            if not authenticate(authorization, credentials):
                raise RejectionError(401, "Couldn't authenticate you")
            answer = endpoint(body, faults, handle, authorization)
        except RejectionError as rejection:
            answer = _error_answer(rejection)
        await asyncio.sleep(self.dice.latency(faults))
        if answer.commit is not None:
            answer.commit()
        if answer.drop:
            # No answer at all: the client sees the connection close under it.
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        self.state.answered(handle, answer.status)
        headers = {**rate_headers, **answer.headers}
        if faults.set_cookie is not None:
            headers["Set-Cookie"] = faults.set_cookie
        return web.Response(
            status=answer.status,
            body=answer.body,
            content_type=answer.content_type,
            headers=headers,
        )

    def _validate_token(
        self, body: Mapping[str, object], faults: Faults, handle: RequestHandle, _auth: str
    ) -> _Answer:
        check_validate_token(body)
        return _json_answer(200, None)

    def _report_error(
        self, body: Mapping[str, object], faults: Faults, handle: RequestHandle, _auth: str
    ) -> _Answer:
        check_report_error(body)
        description = body.get("description")
        request_id = body.get("request_id")
        error = ReportedError(
            instance_push_id=str(body["instance_push_id"]),
            external_id=str(body["external_id"]),
            description=description if isinstance(description, str) else None,
            request_id=request_id if isinstance(request_id, str) else None,
        )
        return _json_answer(
            200, None, commit=lambda: self.state.report_error(error, handle.generation)
        )

    def _push(
        self, body: Mapping[str, object], faults: Faults, handle: RequestHandle, authorization: str
    ) -> _Answer:
        resources = check_push(body, self.max_resources)
        fault = self.dice.next_fault(faults)
        if fault is Fault.SERVER_ERROR:
            raise RejectionError(503, "ServiceUnavailable", "Injected server error")
        if fault is Fault.DROP:
            return _Answer(status=0, drop=True)
        if fault is Fault.ECHO_CREDENTIALS:
            raise RejectionError(
                400, "BadRequest", f"refused {authorization} " + "x" * 10_000 + f" {authorization}"
            )
        if fault is Fault.REDIRECT:
            location = faults.redirect_to.rstrip("/") + _PREFIX + "push"
            return _Answer(status=307, headers={"Location": location})
        if fault is Fault.RATE_LIMITED:
            retry_after = max(0, math.ceil(faults.retry_after))
            raise RejectionError(
                429, "TooManyRequests", "Injected rate limit", {"Retry-After": str(retry_after)}
            )
        plan = self.state.plan_push(
            str(body["instance_push_id"]),
            resources,
            lambda external_id: self.dice.processing_error(faults, external_id),
        )
        request_id = body.get("request_id")
        return _push_answer(
            plan,
            fault,
            commit=lambda: self.commit(plan, request_id if isinstance(request_id, str) else None),
        )

    def commit(self, plan: PushPlan, request_id: str | None) -> None:
        """Apply a push's (or a pull's) plan, and tell what it created."""
        if self.state.commit(plan) and plan.created:
            self.created(plan.instance_push_id, request_id, plan.created)

    async def finalizer(self, request: web.Request) -> web.Response:
        """The admin UI's return: the browser posts ``name`` and ``metadata`` here."""
        try:
            posted = await request.post()
        except ValueError:
            posted = None
        form = {k: v for k, v in posted.items() if isinstance(v, str)} if posted else {}
        if not self.returned(request.query.get("install", ""), form):
            return web.Response(status=404, text="no install under way here")
        return web.Response(text="Zendesk: the account is saved", content_type="text/html")


def _push_answer(plan: PushPlan, fault: Fault | None, commit: Callable[[], None]) -> _Answer:
    """The answer to a processed push: the results, or the fault that spoils them."""
    results = [_result(outcome) for outcome in plan.outcomes]
    if fault is Fault.LOST_ANSWER:
        payload = {"error": "InternalServerError", "description": "Injected lost answer"}
        return _json_answer(500, payload, commit=commit)
    if fault is Fault.GARBAGE:
        return _Answer(200, b"<html>oops</html>", content_type="text/html", commit=commit)
    if fault is Fault.SHORT_RESULTS:
        results = results[:-1]
    elif fault is Fault.STRANGE_CODE:
        for result in results:
            result["status"] = {"code": "imported_with_warnings"}
    elif fault is Fault.WRONG_IDS:
        ids = [outcome.external_id for outcome in plan.outcomes]
        wrong = ids[::-1]
        if wrong == ids:
            # Reversing one id (or a palindrome of ids) changes nothing; mismatch them outright.
            wrong = [f"{external_id}-wrong" for external_id in ids]
        for result, external_id in zip(results, wrong, strict=True):
            result["external_resource_id"] = external_id
    return _json_answer(200, {"results": results}, commit=commit)


def _result(outcome: Outcome) -> dict[str, Any]:
    status: dict[str, str] = {"code": outcome.code}
    if outcome.description is not None:
        status["description"] = outcome.description
    return {"external_resource_id": outcome.external_id, "status": status}


async def _read_body(request: web.Request, limit: int) -> tuple[int, bytes]:
    """Read the whole body, keeping it only if it fits: the size is reported exactly either way,
    and draining lets the client finish sending and read the 413."""
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()
    return size, b"".join(chunks)


def _parse_object(raw: bytes) -> Mapping[str, object] | None:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def build_app(service: Service) -> web.Application:
    """The aiohttp application serving the any_channel endpoints, with and without `.json`."""
    # aiohttp's own body limit sits above ours so that the emulator, not aiohttp, answers 413.
    app = web.Application(client_max_size=service.max_body_bytes + 1024 * 1024)
    for name, handler in (
        ("push", service.push),
        ("validate_token", service.validate_token),
        ("channelback/report_error", service.report_error),
    ):
        app.router.add_post(_PREFIX + name, handler)
        app.router.add_post(_PREFIX + name + ".json", handler)
    app.router.add_post(RETURN_PATH, service.finalizer)
    return app
