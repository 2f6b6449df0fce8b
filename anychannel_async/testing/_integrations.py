"""Zendesk's side of the Channel framework: the calls Zendesk makes on an integration.

This module owns the installed instances (what Zendesk holds for each: token, metadata, state,
the manifest's URLs) and every request the emulator makes to an integration, over real HTTP:
the admin UI driven as a browser (`_browser`), channelbacks with their repeats after a network
error, pulls, and event callbacks. Its coroutines run in the emulator's event loop (the
emulator hands them over from the caller's), and so do the tasks it starts, which it owns:
``close`` cancels them. Tickets and imports are `AccountState`'s; this module only adds to them
through it. A token or metadata is never logged, and never quoted in an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import aiohttp
import attrs

from anychannel_async._errors import AnyChannelError

from ._app import RETURN_PATH
from ._auth import Credentials
from ._browser import Form, Page, parse_page
from ._faults import ChannelbackFault, FaultDice, Faults
from ._records import AgentReply, EventCallback, Instance, Manifest
from ._state import AccountState, Created
from ._validation import RejectionError, check_push

__all__ = ["IntegrationCallError", "ZendeskSide"]

logger = logging.getLogger("anychannel_async.testing")

#: Seconds the emulator waits for an integration's page, pull or event answer.
CALL_TIMEOUT = 30.0
#: The most resources one pull answer may carry (Zendesk's docs; its schema allows 256).
PULL_MAX = 200
_EXCERPT = 300
_CREATED_EVENT = "resources_created_from_external_ids"


class IntegrationCallError(AnyChannelError):
    """A call of the emulator on an integration failed: unreachable, an error status, or an
    answer that does not follow the Channel framework. ``status`` is the integration's HTTP
    status when it answered (None otherwise)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@attrs.define
class _Installed:
    """What Zendesk holds for an instance; changed by answers and events, read as `Instance`."""

    instance_push_id: str
    token: str
    subdomain: str
    name: str
    metadata: str
    state: str | None
    active: bool
    manifest: Manifest
    metadata_needs_update: bool = False

    def freeze(self) -> Instance:
        return Instance(**attrs.asdict(self, recurse=False))


def _redact(text: str, *secrets_: str) -> str:
    for secret in secrets_:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ZendeskSide:
    """The instances installed on the emulator and its calls on their integrations.

    ``accounts`` is the emulator's own map of credentials: an install adds its token there (so
    push accepts it), an uninstall takes it out. ``base_url`` gives the emulator's URL (for
    ``return_url``). Thread-safe where a test thread reads (`instances`, `callbacks`) or
    resets; everything else runs in the emulator's loop.
    """

    def __init__(
        self,
        *,
        state: AccountState,
        accounts: dict[str, Credentials],
        dice: FaultDice,
        get_faults: Callable[[], Faults],
        base_url: Callable[[], str],
    ) -> None:
        self._state = state
        self._accounts = accounts
        self._dice = dice
        self._get_faults = get_faults
        self._base_url = base_url
        self._lock = threading.Lock()
        self._installed: dict[str, _Installed] = {}
        self._callbacks: list[EventCallback] = []
        # Installs under way: nonce -> what the browser posted back to return_url (None: not yet).
        self._returns: dict[str, dict[str, str] | None] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._polls: dict[str, asyncio.Task[None]] = {}
        # Counts resets: a delivery that began before the last one is not recorded.
        self._generation = 0

    # -- lifecycle (in the emulator's loop) ------------------------------------------------------

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No cookies: Zendesk's server-side calls carry none.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def close(self) -> None:
        """Cancel the polls and the event deliveries under way; close the session."""
        tasks = [*self._tasks, *self._polls.values()]
        self._polls.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def reset(self) -> None:
        """Forget every instance (their tokens no longer push) and every callback. Polls end at
        their next turn; deliveries under way finish unrecorded."""
        with self._lock:
            self._generation += 1
            for instance_push_id in self._installed:
                self._accounts.pop(instance_push_id, None)
            self._installed.clear()
            self._callbacks.clear()
            self._returns.clear()

    # -- inspection (any thread) -------------------------------------------------------------

    def instances(self) -> list[Instance]:
        with self._lock:
            return [installed.freeze() for installed in self._installed.values()]

    def instance(self, instance_push_id: str) -> Instance | None:
        with self._lock:
            found = self._installed.get(instance_push_id)
            return None if found is None else found.freeze()

    def callbacks(self) -> list[EventCallback]:
        with self._lock:
            return list(self._callbacks)

    def returned(self, nonce: str, form: Mapping[str, str]) -> bool:
        """The admin UI's browser posted back to return_url (`Service.returned`)."""
        with self._lock:
            if nonce not in self._returns or self._returns[nonce] is not None:
                return False
            self._returns[nonce] = dict(form)
            return True

    def _get(self, instance_push_id: str) -> _Installed:
        with self._lock:
            found = self._installed.get(instance_push_id)
        if found is None:
            raise ValueError(
                f"no instance {instance_push_id!r} was installed with install() (or it was"
                " uninstalled, or the emulator reset)"
            )
        return found

    # -- install -----------------------------------------------------------------------------

    async def install(
        self,
        manifest_url: str,
        *,
        subdomain: str,
        name: str,
        settings: Mapping[str, str],
        locale: str,
    ) -> Instance:
        """Read the manifest, open its admin UI as Zendesk does (a new account: no metadata),
        fill in the form as an administrator would and submit it, follow the page that posts
        itself back to return_url; then tell the integration (create_integration_instance)."""
        for label, value in (("subdomain", subdomain), ("name", name), ("locale", locale)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{label} must be a non-empty string")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in settings.items()):
            raise TypeError("settings maps the admin form's field names to text")
        manifest = await self._manifest(manifest_url)
        instance_push_id = str(uuid.uuid4())
        token = secrets.token_urlsafe(24)
        nonce = secrets.token_urlsafe(12)
        with self._lock:
            self._returns[nonce] = None
        self._accounts[instance_push_id] = token  # validate_token must accept it meanwhile
        try:
            posted = await self._drive_admin_ui(
                manifest,
                {
                    "name": "",
                    "metadata": "",
                    "state": "",
                    "return_url": f"{self._base_url()}{RETURN_PATH}?install={nonce}",
                    "subdomain": subdomain,
                    "locale": locale,
                    "instance_push_id": instance_push_id,
                    "zendesk_access_token": token,
                },
                {"name": name, **settings},
                nonce,
                token,
            )
        except BaseException:
            self._accounts.pop(instance_push_id, None)
            raise
        finally:
            with self._lock:
                self._returns.pop(nonce, None)
        installed = _Installed(
            instance_push_id=instance_push_id,
            token=token,
            subdomain=subdomain,
            name=posted.get("name") or name,
            metadata=posted.get("metadata", ""),
            state=None,
            active=True,
            manifest=manifest,
        )
        with self._lock:
            self._installed[instance_push_id] = installed
        await self._instance_event(installed, "create_integration_instance")
        return installed.freeze()

    async def _manifest(self, url: str) -> Manifest:
        try:
            async with self._open_session().get(
                url, timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT)
            ) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IntegrationCallError(
                f"the manifest at {url} could not be read: {exc!r}"
            ) from None
        if status != 200:
            raise IntegrationCallError(f"the manifest at {url} answered {status}", status=status)
        try:
            found = json.loads(raw)
        except ValueError:
            found = None
        urls = found.get("urls") if isinstance(found, dict) else None
        if (
            not isinstance(found, dict)
            or not isinstance(found.get("name"), str)
            or not isinstance(found.get("id"), str)
            or not isinstance(urls, dict)
            or not isinstance(urls.get("admin_ui"), str)
        ):
            raise IntegrationCallError(
                f"the manifest at {url} is not one: a JSON object with name, id and urls.admin_ui"
            )
        return Manifest(
            url=url,
            name=found["name"],
            id=found["id"],
            urls={k: v for k, v in urls.items() if isinstance(v, str)},
        )

    async def _drive_admin_ui(
        self,
        manifest: Manifest,
        zendesk_form: Mapping[str, str],
        typed: Mapping[str, str],
        nonce: str,
        token: str,
    ) -> dict[str, str]:
        # A browser of its own: the admin UI may keep a session in a cookie.
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT)
        ) as browser:
            page = await _post_page(browser, manifest.urls["admin_ui"], zendesk_form, token)
            form = _the_form(page, "the admin UI", token)
            asked = form.editable()
            unknown = sorted(set(typed) - asked)
            if unknown:
                raise IntegrationCallError(
                    f"the admin UI's form asks no {', '.join(unknown)} (it asks:"
                    f" {', '.join(sorted(asked)) or 'nothing'})"
                )
            saved = await _post_page(
                browser, form.target(page.url), form.values() | dict(typed), token
            )
            back = _the_form(saved, "the admin UI's save", token)
            target = back.target(saved.url)
            if target != zendesk_form["return_url"]:
                raise IntegrationCallError("the page after saving does not post to return_url")
            if not saved.posts_itself(back) and not back.buttons:
                raise IntegrationCallError("the page after saving neither posts itself nor asks to")
            try:
                async with browser.post(target, data=back.values()) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise IntegrationCallError(f"posting back to Zendesk failed: {exc!r}") from None
        with self._lock:
            posted = self._returns.get(nonce)
        if status != 200 or posted is None:
            raise IntegrationCallError("the admin UI posted nothing back to return_url")
        if not posted.get("metadata"):
            raise IntegrationCallError("the admin UI posted back no metadata")
        return posted

    # -- channelback ---------------------------------------------------------------------------

    async def agent_reply(self, ticket_id: int, message: str) -> AgentReply:
        """Send an agent's reply on a ticket out through the integration's channelback; repeat
        it after a network error or a 5xx, with the same request_unique_identifier."""
        if not isinstance(message, str) or not message:
            raise ValueError("message must be a non-empty string")
        found = self._state.latest(ticket_id)
        if found is None:
            raise ValueError(f"no ticket {ticket_id}")
        ticket, generation = found
        installed = self._get(ticket.instance_push_id)
        url = installed.manifest.urls.get("channelback_url")
        if url is None:
            raise IntegrationCallError("the integration's manifest has no channelback_url")
        identifier = str(uuid.uuid4())
        form = [
            ("message", message),
            ("parent_id", ticket.comments[-1].external_id),
            ("recipient_id", ticket.comments[0].author_external_id),
            ("thread_id", ticket.thread_id or ""),
            ("metadata", installed.metadata),
            ("state", installed.state or ""),
            ("request_unique_identifier", identifier),
        ]
        faults = self._get_faults()
        last = "no try"
        for tries in range(1, faults.channelback_tries + 1):
            fault = self._dice.next_channelback_fault(faults)
            if fault is ChannelbackFault.BAD_GATEWAY:
                last = "502 from a proxy (injected)"
                continue
            try:
                async with self._open_session().post(
                    url, data=form, timeout=aiohttp.ClientTimeout(total=faults.channelback_timeout)
                ) as response:
                    status = response.status
                    raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"no answer: {type(exc).__name__}"
                continue
            if fault is ChannelbackFault.TIMEOUT:
                last = "the answer was lost (injected)"
                continue
            if status >= 500:
                last = f"status {status}"
                continue
            answer = _json_object(raw)
            if status != 200:
                description = answer.get("description") if answer else None
                raise IntegrationCallError(
                    f"the channelback was refused with {status}"
                    + (f": {str(description)[:_EXCERPT]}" if description else ""),
                    status=status,
                )
            external_id = answer.get("external_id") if answer else None
            if not isinstance(external_id, str) or not 0 < len(external_id) <= 255:
                raise IntegrationCallError(
                    "the channelback answer has no external_id of 1..255 characters", status=status
                )
            self._update(installed, answer or {})
            comment = self._state.agent_comment(ticket_id, external_id, message, generation)
            if comment is None or comment.id is None:
                raise ValueError(f"ticket {ticket_id} is gone: the emulator was reset")
            return AgentReply(
                ticket_id=ticket_id,
                external_id=external_id,
                comment_id=comment.id,
                request_unique_identifier=identifier,
                tries=tries,
            )
        raise IntegrationCallError(
            f"the channelback got no answer in {faults.channelback_tries} tries (last: {last})"
        )

    def _update(self, installed: _Installed, answer: Mapping[str, object]) -> None:
        """What an answer may change in what Zendesk holds: metadata, and its update flag."""
        with self._lock:
            metadata = answer.get("metadata")
            if isinstance(metadata, str) and metadata:
                installed.metadata = metadata
            if answer.get("metadata_needs_update") is True:
                installed.metadata_needs_update = True

    # -- pull ----------------------------------------------------------------------------------

    async def pull(self, instance_push_id: str) -> dict[str, str]:
        """Ask the integration for what is new, import it as a push would; each resource's
        status code by external id."""
        installed = self._get(instance_push_id)
        url = installed.manifest.urls.get("pull_url")
        if url is None:
            raise IntegrationCallError("the integration's manifest has no pull_url")
        form = [("metadata", installed.metadata), ("state", installed.state or "")]
        try:
            async with self._open_session().post(
                url, data=form, timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT)
            ) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IntegrationCallError(f"the pull got no answer: {exc!r}") from None
        answer = _json_object(raw)
        if status != 200 or answer is None:
            raise IntegrationCallError(f"the pull answered {status}", status=status)
        try:
            resources = check_push(
                {
                    "instance_push_id": instance_push_id,
                    "external_resources": answer.get("external_resources"),
                },
                PULL_MAX,
            )
        except RejectionError as exc:
            raise IntegrationCallError(
                f"the pull answer is not valid: {exc.description or exc.error}", status=status
            ) from None
        state = answer.get("state")
        with self._lock:
            if isinstance(state, str):
                installed.state = state
        self._update(installed, answer)
        plan = self._state.plan_push(instance_push_id, resources, lambda _: False)
        if self._state.commit(plan) and plan.created:
            self.created(instance_push_id, None, plan.created)
        return {outcome.external_id: outcome.code for outcome in plan.outcomes}

    def poll(self, instance_push_id: str, every: float) -> None:
        """Pull every ``every`` seconds until `stop_polling`, the instance's uninstall, a reset
        or close; a failed pull is logged and the next one goes on."""
        self._get(instance_push_id)
        self.stop_polling(instance_push_id)
        task = asyncio.get_running_loop().create_task(self._poll(instance_push_id, every))
        self._polls[instance_push_id] = task
        task.add_done_callback(lambda done: self._polled(instance_push_id, done))

    def stop_polling(self, instance_push_id: str) -> None:
        task = self._polls.pop(instance_push_id, None)
        if task is not None:
            task.cancel()

    def _polled(self, instance_push_id: str, task: asyncio.Task[None]) -> None:
        if self._polls.get(instance_push_id) is task:
            del self._polls[instance_push_id]

    async def _poll(self, instance_push_id: str, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            with self._lock:
                if instance_push_id not in self._installed:
                    return
            try:
                await self.pull(instance_push_id)
            except (IntegrationCallError, ValueError) as exc:
                logger.warning("a poll of %s failed: %s", instance_push_id, exc)

    # -- events ----------------------------------------------------------------------------------

    def created(
        self, instance_push_id: str, request_id: str | None, created: list[Created]
    ) -> None:
        """A push (or pull) created comments: tell the instance's integration, as Zendesk does,
        in a task (Zendesk sends its events apart from the push's answer)."""
        with self._lock:
            installed = self._installed.get(instance_push_id)
        if installed is None:
            return  # an account given to the emulator directly: no integration to tell
        data: dict[str, object] = {
            "resource_events": [
                {
                    "type_id": item.kind,
                    "external_id": item.external_id,
                    "ticket_id": item.ticket_id,
                    "comment_id": item.comment_id,
                }
                for item in created
            ]
        }
        if request_id is not None:
            data["request_id"] = request_id
        self._spawn(self._deliver(installed, [_event(installed, _CREATED_EVENT, data)]))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait until the event callbacks started so far were delivered (or failed)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def uninstall(self, instance_push_id: str) -> None:
        """Remove the instance (its token no longer pushes); tell the integration."""
        installed = self._get(instance_push_id)
        with self._lock:
            self._installed.pop(instance_push_id, None)
            self._accounts.pop(instance_push_id, None)
        self.stop_polling(instance_push_id)
        await self._instance_event(installed, "destroy_integration_instance")

    async def set_active(self, instance_push_id: str, active: bool, error: str | None) -> None:
        """Activate or deactivate the instance (by ``error``, else by the API); tell the
        integration."""
        installed = self._get(instance_push_id)
        with self._lock:
            installed.active = active
        if active:
            await self._instance_event(installed, "activate_integration_instance")
        else:
            extra: dict[str, object] = {"deactivated_by": "error" if error else "api"}
            if error:
                extra["deactivating_error"] = error
            await self._instance_event(installed, "deactivate_integration_instance", extra)

    async def _instance_event(
        self, installed: _Installed, type_id: str, extra: Mapping[str, object] | None = None
    ) -> None:
        data = {"metadata": installed.metadata, **(extra or {})}
        await self._deliver(installed, [_event(installed, type_id, data)])

    async def _deliver(self, installed: _Installed, events: Sequence[Mapping[str, object]]) -> None:
        url = installed.manifest.urls.get("event_callback_url")
        if url is None:
            return
        with self._lock:
            generation = self._generation
        status = 0
        try:
            async with self._open_session().post(
                url,
                data=json.dumps({"events": list(events)}),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT),
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("an event callback to %s got no answer: %r", url, exc)
        record = EventCallback(
            instance_push_id=installed.instance_push_id,
            type_ids=tuple(str(event["type_id"]) for event in events),
            status=status,
        )
        with self._lock:
            if self._generation == generation:
                self._callbacks.append(record)


def _event(installed: _Installed, type_id: str, data: Mapping[str, object]) -> dict[str, object]:
    return {
        "type_id": type_id,
        "timestamp": _now(),
        "subdomain": installed.subdomain,
        "integration_name": installed.manifest.name,
        "integration_id": installed.manifest.id,
        "data": dict(data),
    }


def _json_object(raw: bytes) -> dict[str, object] | None:
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


async def _post_page(
    browser: aiohttp.ClientSession, url: str, form: Mapping[str, str], token: str
) -> Page:
    """POST a form as a browser does and read the HTML page that comes back."""
    try:
        async with browser.post(url, data=dict(form)) as response:
            page = parse_page(url, response.status, await response.text(), response.headers)
    except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as exc:
        raise IntegrationCallError(f"{url} could not be reached: {exc!r}") from None
    if page.status != 200:
        raise IntegrationCallError(
            f"{url} answered {page.status}: {_redact(page.text, token)[:_EXCERPT]}",
            status=page.status,
        )
    return page


def _the_form(page: Page, what: str, token: str) -> Form:
    posting = [form for form in page.forms if form.method == "post"]
    if len(posting) != 1:
        raise IntegrationCallError(
            f"{what} shows {len(posting)} forms that post, not one:"
            f" {_redact(page.text, token)[:_EXCERPT]}"
        )
    return posting[0]
