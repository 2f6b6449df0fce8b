"""`ChannelIntegration`: the endpoints Zendesk calls on an integration, as an aiohttp application.

This module owns the routes and their order of checks: read the request, prove its origin (the
signed metadata names a stored, active account; an admin form carries this integration's
signature), build the typed request, run the user's handler, answer. A request whose origin does
not verify reaches no handler. Handlers' exceptions are mapped here: `ChannelbackFailed` to its
4xx, anything else to a 500 that says nothing of it (it is logged). Metadata and tokens are never
logged and never quoted in an answer.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from anychannel_async._accounts import Account, AccountStore
from anychannel_async._client import AnyChannelClient, RetryPolicy, no_cookies
from anychannel_async._credentials import base_url_of
from anychannel_async._errors import (
    AnyChannelError,
    AuthenticationError,
    ConfigurationError,
    ValidationError,
)
from anychannel_async._serde import encode_body
from anychannel_async._tickets import CREATED_EVENT, TicketLedger

from ._admin import HIDDEN_FIELDS, error_page, return_page, settings_page
from ._answers import Answers, Reply
from ._events import ACTIVATE, DEACTIVATE, DESTROY, INSTANCE_EVENTS, parse_events
from ._requests import (
    ChannelbackFailed,
    ChannelbackRequest,
    ClickthroughRequest,
    IntegrationEvent,
    PullRequest,
    PullResponse,
)
from ._signing import METADATA_MAX, Signer

__all__ = ["ChannelIntegration"]

logger = logging.getLogger("anychannel_async.integration")

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])
ChannelbackHandler = Callable[[ChannelbackRequest], Awaitable[str]]
PullHandler = Callable[[PullRequest], Awaitable[PullResponse]]
ClickthroughHandler = Callable[[ClickthroughRequest], Awaitable[str]]
EventHandler = Callable[[IntegrationEvent], Awaitable[None]]

DEFAULT_ZENDESK_URL = "https://{subdomain}.zendesk.com"
# The manifest's bounds (Zendesk's docs): name 255, id 511, each URL 511 characters.
_NAME_MAX = 255
_ID_MAX = 511
_URL_MAX = 511
_LONGEST_ROUTE = "/event_callback"
# An admin form is good for a day: long enough to leave the page open, short enough that a
# form (with its token) found later in a browser's history is of no use.
_FORM_SECONDS = 24 * 3600
_SETTING_MAX = 5_000
_DESCRIPTION_MAX = 1_000
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_RESERVED_FIELDS = frozenset({"name", "signature", *HIDDEN_FIELDS})
# Checking a token or reporting an error is a diagnosis for a person waiting: a few quick tries.
_QUICK_RETRY = RetryPolicy(max_tries=3, max_time=10.0)
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
#: Seconds a request's body may take to arrive: Zendesk sends a form or an event batch at
#: once; a client trickling one (slowloris) would otherwise hold its handler, and a stop of
#: the server, for ever. Beyond it the answer is a 408.
BODY_SECONDS = 30.0


def _check_text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ConfigurationError(f"{name} must be a string of 1..{limit} characters")
    return value


def _check_handler(kind: str, handler: object) -> None:
    if not inspect.iscoroutinefunction(handler):
        raise ConfigurationError(f"the {kind} handler must be an async function")


def _json(status: int, payload: Mapping[str, object]) -> web.Response:
    return web.json_response(dict(payload), status=status)


def _refused() -> web.Response:
    # The same answer whatever failed (no metadata, a bad signature, an unknown account): a
    # prober learns nothing of which accounts exist.
    return _json(403, {"error": "forbidden"})


def _html(status: int, text: str) -> web.Response:
    return web.Response(
        status=status, text=text, content_type="text/html", charset="utf-8", headers=_NO_STORE
    )


def _http_url(value: str) -> bool:
    try:
        url = URL(value)
    except ValueError:
        return False
    return url.scheme in ("http", "https") and bool(url.host) and url.user is None


class ChannelIntegration:
    """A Channel framework integration service: Zendesk's side of it is served by `web_app`.

    Settings (keyword-only):

    - ``name``: the integration's name, shown to administrators (1..255 characters).
    - ``integration_id``: the manifest's ``id``, e.g. ``com.acme.social`` (1..511).
    - ``base_url``: where Zendesk reaches this service (https; plain http only to loopback);
      the manifest's URLs are this plus the routes.
    - ``secret``: at least 32 bytes; signs the metadata Zendesk keeps for each account and the
      admin forms. Changing it makes every stored metadata invalid (administrators must save
      each account again). Never shown.
    - ``accounts``: the `AccountStore` where installs are kept (a `PushPool` over the same
      store pushes for them); opened by the application if it is not open, and then closed.
    - ``admin_fields``: ``{field: label}`` asked on the admin page and kept in
      `Account.settings` (default none).
    - ``zendesk_url``: the Zendesk URL of a subdomain (default
      ``"https://{subdomain}.zendesk.com"``); a test gives its emulator's URL.
    - ``version``, ``push_client_id``: optional manifest fields; ``channelback_files`` (default
      False) tells Zendesk to send a reply's attachments as ``file_urls``.
    - ``timeout``: seconds for one try of a call to Zendesk (validate_token, report_error;
      default 30).
    - ``tickets``: a `TicketLedger` shared with the `PushPool` of this process (default None):
      each ``resources_created_from_external_ids`` event is handed to it, so
      ``pool.ticket_of`` learns which ticket a pushed resource became.

    Register handlers with the decorators `channelback`, `pull`, `clickthrough` and
    `on_event`; a route whose handler is absent is left out of the manifest and answers 404.
    """

    def __init__(
        self,
        *,
        name: str,
        integration_id: str,
        base_url: str,
        secret: str | bytes,
        accounts: AccountStore,
        admin_fields: Mapping[str, str] | None = None,
        zendesk_url: str = DEFAULT_ZENDESK_URL,
        version: str | None = None,
        push_client_id: str | None = None,
        channelback_files: bool = False,
        timeout: float = 30.0,
        tickets: TicketLedger | None = None,
    ) -> None:
        self._signer = Signer(secret)
        self.name = _check_text("name", name, _NAME_MAX)
        self.integration_id = _check_text("integration_id", integration_id, _ID_MAX)
        if not isinstance(base_url, str):
            raise ConfigurationError("base_url must be a string")
        base_url_of(subdomain=None, base_url=base_url)
        self.base_url = base_url.rstrip("/")
        if len(self.base_url) + len(_LONGEST_ROUTE) > _URL_MAX:
            raise ConfigurationError(
                f"base_url must leave room for the routes in {_URL_MAX} characters"
            )
        if not isinstance(accounts, AccountStore):
            raise ConfigurationError(
                f"accounts must be an AccountStore, got {type(accounts).__name__}"
            )
        self._accounts = accounts
        self._admin_fields = self._check_admin_fields(admin_fields or {})
        if not isinstance(zendesk_url, str):
            raise ConfigurationError("zendesk_url must be a string")
        self._zendesk_url = zendesk_url
        self._place("example")  # the template's own checks, once, here
        for field, value in (("version", version), ("push_client_id", push_client_id)):
            if value is not None:
                _check_text(field, value, _NAME_MAX)
        self._version = version
        self._push_client_id = push_client_id
        if not isinstance(channelback_files, bool):
            raise ConfigurationError("channelback_files must be a bool")
        self._channelback_files = channelback_files
        # The client's own checks of timeout, once.
        AnyChannelClient(token="check", base_url="http://127.0.0.1", timeout=timeout)  # noqa: S106
        self._timeout = timeout
        if tickets is not None and not isinstance(tickets, TicketLedger):
            raise ConfigurationError(
                f"tickets must be a TicketLedger, got {type(tickets).__name__}"
            )
        self._tickets = tickets
        self._on_channelback: ChannelbackHandler | None = None
        self._on_pull: PullHandler | None = None
        self._on_clickthrough: ClickthroughHandler | None = None
        self._on_event: EventHandler | None = None
        # Set while an application serves (between its startup and its cleanup).
        self._session: aiohttp.ClientSession | None = None
        self._answers: Answers | None = None

    def __repr__(self) -> str:
        return f"<ChannelIntegration {self.integration_id!r} base_url={self.base_url!r}>"

    @staticmethod
    def _check_admin_fields(fields: Mapping[str, str]) -> dict[str, str]:
        if not isinstance(fields, Mapping):
            raise ConfigurationError("admin_fields must map field names to labels")
        for key, label in fields.items():
            named = isinstance(key, str) and _FIELD_NAME.fullmatch(key) is not None
            if not named or key in _RESERVED_FIELDS:
                raise ConfigurationError(
                    f"admin_fields: {key!r} must be a letter then up to 63 letters, digits,"
                    f" '_' or '-', and not one of {sorted(_RESERVED_FIELDS)}"
                )
            if not isinstance(label, str) or not label:
                raise ConfigurationError(f"admin_fields: the label of {key!r} must be text")
        return dict(fields)

    def _place(self, subdomain: str) -> tuple[str | None, str | None]:
        """The ``(subdomain, base_url)`` of a subdomain's account, one of them None;
        ConfigurationError for a subdomain that is none (checked before it goes into a URL)."""
        base_url_of(subdomain=subdomain, base_url=None)
        if self._zendesk_url == DEFAULT_ZENDESK_URL:
            return subdomain, None
        url = self._zendesk_url.replace("{subdomain}", subdomain)
        base_url_of(subdomain=None, base_url=url)
        return None, url

    # -- registration ------------------------------------------------------------------------

    def channelback(self, handler: _F) -> _F:
        """Register the channelback handler: ``async def (ChannelbackRequest) -> str``, the
        external id of the message created; raise `ChannelbackFailed` to refuse."""
        _check_handler("channelback", handler)
        self._on_channelback = handler
        return handler

    def pull(self, handler: _F) -> _F:
        """Register the pull handler: ``async def (PullRequest) -> PullResponse``."""
        _check_handler("pull", handler)
        self._on_pull = handler
        return handler

    def clickthrough(self, handler: _F) -> _F:
        """Register the clickthrough handler: ``async def (ClickthroughRequest) -> str``, the
        http(s) URL to send the agent to."""
        _check_handler("clickthrough", handler)
        self._on_clickthrough = handler
        return handler

    def on_event(self, handler: _F) -> _F:
        """Register the event hook: ``async def (IntegrationEvent) -> None``, run after the
        library's own handling (a destroyed account is already removed, a deactivated one
        already inactive)."""
        _check_handler("event", handler)
        self._on_event = handler
        return handler

    # -- the application ---------------------------------------------------------------------

    def web_app(self) -> web.Application:
        """The aiohttp application: run it (``anychannel-async serve``, `aiohttp.web.run_app`
        with ``access_log_class=AccessLogger``) or mount it with ``add_subapp``."""
        app = web.Application()
        app.cleanup_ctx.append(self._lifespan)
        app.router.add_get("/manifest.json", self._manifest)
        app.router.add_post("/admin_ui", self._admin_form)
        app.router.add_post("/admin_ui/save", self._admin_save)
        app.router.add_post("/pull", self._pull)
        app.router.add_post("/channelback", self._channelback)
        app.router.add_get("/clickthrough", self._clickthrough)
        app.router.add_get("/healthcheck", self._healthcheck)
        app.router.add_post("/event_callback", self._event_callback)
        return app

    async def _lifespan(self, _app: web.Application) -> AsyncIterator[None]:
        if self._answers is not None:
            raise ConfigurationError("this ChannelIntegration already serves an application")
        store = self._accounts
        opened = not store.is_open
        if opened:
            await store.__aenter__()
        # Its calls to Zendesk, for every account: no cookie kept (see `no_cookies`).
        self._session = aiohttp.ClientSession(cookie_jar=no_cookies())
        self._answers = Answers(store)
        try:
            yield
        finally:
            answers, self._answers = self._answers, None
            session, self._session = self._session, None
            try:
                await answers.close()
                await session.close()
            finally:
                if opened:
                    await store.close()

    def manifest(self) -> dict[str, object]:
        """The manifest Zendesk reads from ``/manifest.json``."""
        urls = {
            "admin_ui": f"{self.base_url}/admin_ui",
            "healthcheck_url": f"{self.base_url}/healthcheck",
            "event_callback_url": f"{self.base_url}/event_callback",
        }
        if self._on_pull is not None:
            urls["pull_url"] = f"{self.base_url}/pull"
        if self._on_channelback is not None:
            urls["channelback_url"] = f"{self.base_url}/channelback"
        if self._on_clickthrough is not None:
            urls["clickthrough_url"] = f"{self.base_url}/clickthrough"
        manifest: dict[str, object] = {"name": self.name, "id": self.integration_id}
        if self._version is not None:
            manifest["version"] = self._version
        if self._push_client_id is not None:
            manifest["push_client_id"] = self._push_client_id
        if self._channelback_files:
            manifest["channelback_files"] = True
        manifest["urls"] = urls
        return manifest

    async def _manifest(self, _request: web.Request) -> web.Response:
        return _json(200, self.manifest())

    async def _healthcheck(self, _request: web.Request) -> web.Response:
        try:
            await self._accounts.get("healthcheck")  # the store answers: the service can work
        except AnyChannelError:
            logger.exception("healthcheck: the accounts store cannot be read")
            return _json(503, {"status": "unavailable"})
        return _json(200, {"status": "ok"})

    # -- provenance --------------------------------------------------------------------------

    async def _account_of(self, metadata: str | None) -> Account | None:
        """The active account signed metadata names; None when it names none."""
        instance_push_id = self._signer.instance_of(metadata)
        if instance_push_id is None:
            return None
        account = await self._accounts.get(instance_push_id)
        if account is None or not account.active:
            return None
        return account

    # -- Zendesk's calls ---------------------------------------------------------------------

    async def _channelback(self, request: web.Request) -> web.Response:
        handler = self._on_channelback
        if handler is None:
            raise web.HTTPNotFound()
        form, file_urls = await _read_form(request, many="file_urls[]")
        account = await self._account_of(form.get("metadata"))
        if account is None:
            logger.warning("refused a channelback whose metadata names no active account")
            return _refused()
        try:
            asked = ChannelbackRequest(
                account=account,
                message=form.get("message", ""),
                parent_id=form.get("parent_id") or None,
                thread_id=form.get("thread_id") or None,
                recipient_id=form.get("recipient_id") or None,
                file_urls=file_urls,
                request_unique_identifier=form.get("request_unique_identifier") or None,
                state=form.get("state") or None,
            )
        except ValidationError as exc:
            return _json(400, {"error": "invalid_request", "description": str(exc)})
        reply = await self._once(asked, handler)
        return _json(reply.status, reply.body)

    async def _once(self, asked: ChannelbackRequest, handler: ChannelbackHandler) -> Reply:
        async def work() -> Reply:
            return await _run_channelback(asked, handler)

        identifier = asked.request_unique_identifier
        answers = self._answers
        if identifier is None or answers is None:  # nothing to tell a repeat by
            return await work()
        try:
            return await answers.once(f"{asked.account.instance_push_id}\n{identifier}", work)
        except AnyChannelError:
            logger.exception("channelback: the accounts store failed")
            return Reply(503, {"error": "unavailable"}, remember=False)

    async def _pull(self, request: web.Request) -> web.Response:
        handler = self._on_pull
        if handler is None:
            raise web.HTTPNotFound()
        form, _ = await _read_form(request)
        account = await self._account_of(form.get("metadata"))
        if account is None:
            logger.warning("refused a pull whose metadata names no active account")
            return _refused()
        try:
            asked = PullRequest(account=account, state=form.get("state") or None)
        except ValidationError as exc:
            return _json(400, {"error": "invalid_request", "description": str(exc)})
        try:
            answer = await handler(asked)
            if not isinstance(answer, PullResponse):
                raise TypeError(f"returned {type(answer).__name__}, not a PullResponse")
            body = _pull_body(answer)
        except Exception:
            logger.exception("the pull handler failed (instance %s)", account.instance_push_id)
            return _json(500, {"error": "internal_error"})
        return web.Response(body=body, content_type="application/json")

    async def _clickthrough(self, request: web.Request) -> web.Response:
        handler = self._on_clickthrough
        if handler is None:
            raise web.HTTPNotFound()
        account = await self._account_of(request.query.get("metadata"))
        if account is None:
            logger.warning("refused a clickthrough whose metadata names no active account")
            return _refused()
        try:
            asked = ClickthroughRequest(
                account=account, external_id=request.query.get("external_id", "")
            )
        except ValidationError as exc:
            return _json(400, {"error": "invalid_request", "description": str(exc)})
        try:
            target = await handler(asked)
            if not isinstance(target, str) or not _http_url(target):
                raise TypeError("returned no http(s) URL")
        except Exception:
            logger.exception(
                "the clickthrough handler failed (instance %s)", account.instance_push_id
            )
            return _json(500, {"error": "internal_error"})
        raise web.HTTPFound(target)

    async def _event_callback(self, request: web.Request) -> web.Response:
        try:
            raw_events = parse_events(await _read_body(request))
        except ValidationError as exc:
            return _json(400, {"error": "invalid_request", "description": str(exc)})
        refused = 0
        for raw in raw_events:
            instance_push_id = account = None
            if raw.metadata is not None or raw.type_id in INSTANCE_EVENTS:
                instance_push_id = self._signer.instance_of(raw.metadata)
                if instance_push_id is None:
                    logger.warning("dropped a %s event whose metadata does not verify", raw.type_id)
                    refused += 1
                    continue
                # The hook sees a destroyed account as it was, any other as it now is.
                if raw.type_id == DESTROY:
                    account = await self._accounts.get(instance_push_id)
                await self._apply(raw.type_id, instance_push_id)
                if raw.type_id != DESTROY:
                    account = await self._accounts.get(instance_push_id)
            if raw.type_id == CREATED_EVENT and self._tickets is not None:
                self._tickets.created(raw.data, instance_push_id=instance_push_id)
            event = IntegrationEvent(
                type_id=raw.type_id,
                data=raw.data,
                error=raw.error,
                instance_push_id=instance_push_id,
                account=account,
                **raw.fields,
            )
            hook = self._on_event
            if hook is not None:
                try:
                    await hook(event)
                except Exception:
                    logger.exception("the event hook failed on a %s event", raw.type_id)
        if refused:
            return _refused()
        return _json(200, {"status": "ok"})

    async def _apply(self, type_id: str, instance_push_id: str) -> None:
        """The library's own part of an instance event, before the user's hook sees it."""
        if type_id == DESTROY:
            await self._accounts.remove(instance_push_id)
            logger.info("instance %s destroyed: its account is removed", instance_push_id)
        elif type_id == DEACTIVATE:
            await self._accounts.set_active(instance_push_id, False)
            logger.info("instance %s deactivated", instance_push_id)
        elif type_id == ACTIVATE:
            await self._accounts.set_active(instance_push_id, True)
            logger.info("instance %s activated", instance_push_id)

    # -- the admin UI ------------------------------------------------------------------------

    async def _admin_form(self, request: web.Request) -> web.Response:
        form, _ = await _read_form(request)
        sent = {key: form.get(key, "") for key in HIDDEN_FIELDS if key != "issued_at"}
        problem = self._admin_problem(sent)
        if problem is not None:
            return self._error(400, problem)
        values: Mapping[str, str] = {}
        name = form.get("name", "")
        instance_push_id = sent["instance_push_id"]
        if self._signer.instance_of(sent["metadata"]) == instance_push_id:
            existing = await self._accounts.get(instance_push_id)
            if existing is not None:
                # Its settings may be credentials: shown only to whom Zendesk gave a token.
                refusal = await self._check_token(sent["subdomain"], instance_push_id, sent)
                if refusal is not None:
                    return refusal
                values = existing.settings
                name = name or existing.name or ""
        hidden = [*sent.items(), ("issued_at", str(int(time.time())))]
        page = settings_page(
            title=self.name,
            name=name,
            fields=self._admin_fields,
            values=values,
            hidden=hidden,
            signature=self._signer.form_signature(hidden),
            locale=sent["locale"] or None,
        )
        return _html(200, page)

    async def _admin_save(self, request: web.Request) -> web.Response:
        form, _ = await _read_form(request)
        hidden = [(key, form.get(key, "")) for key in HIDDEN_FIELDS]
        if not self._signer.form_valid(hidden, form.get("signature")):
            logger.warning("refused an admin form this integration did not issue")
            return self._error(
                403, "This form was not issued by this integration, or was changed on the way."
            )
        sent = dict(hidden)
        try:
            age = time.time() - int(sent["issued_at"])
        except ValueError:
            age = -1.0
        if not 0 <= age <= _FORM_SECONDS:
            return self._error(403, "This form has expired: open the account's settings again.")
        name = form.get("name", "").strip()
        if not 0 < len(name) <= _NAME_MAX:
            return self._error(400, f"Give the account a name of 1 to {_NAME_MAX} characters.")
        settings = {key: form.get(key, "") for key in self._admin_fields}
        for key, value in settings.items():
            if len(value) > _SETTING_MAX:
                label = self._admin_fields[key]
                return self._error(400, f"{label}: at most {_SETTING_MAX} characters.")
        instance_push_id = sent["instance_push_id"]
        refusal = await self._check_token(sent["subdomain"], instance_push_id, sent)
        if refusal is not None:
            return refusal
        subdomain, base_url = self._place(sent["subdomain"])
        account = Account(
            instance_push_id,
            subdomain=subdomain,
            base_url=base_url,
            token=sent["zendesk_access_token"],
            name=name,
            settings=settings,
        )
        await self._accounts.put(account)
        logger.info("instance %s saved (subdomain %s)", instance_push_id, sent["subdomain"])
        page = return_page(
            title=self.name,
            return_url=sent["return_url"],
            name=name,
            metadata=self._signer.metadata(instance_push_id),
        )
        return _html(200, page)

    def _admin_problem(self, sent: Mapping[str, str]) -> str | None:
        """What makes Zendesk's admin POST unusable, in words for the administrator."""
        if not sent["instance_push_id"] or not sent["zendesk_access_token"]:
            return (
                "Zendesk sent no instance push id or access token: enable push for this"
                " integration."
            )
        if len(sent["instance_push_id"]) > 255:
            return "Zendesk sent an instance push id longer than 255 characters."
        if not _http_url(sent["return_url"]):
            return "Zendesk sent no valid return URL."
        if len(sent["metadata"]) > METADATA_MAX or len(sent["state"]) > METADATA_MAX:
            return f"Zendesk sent metadata or state longer than {METADATA_MAX} characters."
        try:
            self._place(sent["subdomain"])
        except ConfigurationError:
            return "Zendesk sent no valid subdomain."
        return None

    async def _check_token(
        self, subdomain: str, instance_push_id: str, sent: Mapping[str, str]
    ) -> web.Response | None:
        """None when Zendesk accepts the token for the instance; else the error page."""
        try:
            where, base_url = self._place(subdomain)
            client = AnyChannelClient(
                token=sent["zendesk_access_token"],
                subdomain=where,
                base_url=base_url,
                session=self._session,
                timeout=self._timeout,
                retry=_QUICK_RETRY,
            )
        except ConfigurationError:
            return self._error(400, "Zendesk sent an access token that cannot be used.")
        try:
            async with client:
                await client.validate_token(instance_push_id)
        except AuthenticationError:
            # Quoted: the id is whatever an unauthenticated form said, a newline included.
            logger.warning(
                "refused an admin form: Zendesk did not accept its token for instance %r",
                instance_push_id,
            )
            return self._error(
                403,
                "Zendesk did not accept the access token of this account: open the account's"
                " settings in Zendesk again.",
            )
        except AnyChannelError as exc:
            logger.warning("admin form: could not check the token with Zendesk: %s", exc)
            return self._error(
                502, "Zendesk could not be reached to check this account; try again."
            )
        return None

    def _error(self, status: int, message: str) -> web.Response:
        return _html(status, error_page(title=self.name, message=message))

    # -- calls to Zendesk --------------------------------------------------------------------

    async def report_error(
        self, account: Account, external_id: str, why: str | None = None
    ) -> None:
        """Tell Zendesk that the channelback of external_id failed after it was answered
        (``channelback/report_error``); raises the client's `AnyChannelError`s."""
        if not isinstance(account, Account):
            raise ValidationError("account", f"must be an Account, got {type(account).__name__}")
        session = self._session if self._session is not None and not self._session.closed else None
        async with AnyChannelClient(
            token=account.token,
            basic_auth=account.basic_auth,
            session=session,
            timeout=self._timeout,
            retry=_QUICK_RETRY,
            subdomain=account.subdomain,
            base_url=None if account.subdomain is not None else account.base_url,
        ) as client:
            await client.report_channelback_error(account.instance_push_id, external_id, why)


async def _run_channelback(asked: ChannelbackRequest, handler: ChannelbackHandler) -> Reply:
    """The handler's answer as a reply: an external id, a refusal, or a 500 that says nothing."""
    instance_push_id = asked.account.instance_push_id
    try:
        external_id = await handler(asked)
    except ChannelbackFailed as exc:
        description = exc.description[:_DESCRIPTION_MAX]
        return Reply(exc.status, {"error": "channelback_failed", "description": description})
    except Exception:
        logger.exception("the channelback handler failed (instance %s)", instance_push_id)
        return Reply(500, {"error": "internal_error"}, remember=False)
    if (
        not isinstance(external_id, str)
        or not 0 < len(external_id) <= 255
        or not external_id.isascii()
    ):
        logger.error(
            "the channelback handler returned no external id of 1..255 ASCII characters"
            " (instance %s)",
            instance_push_id,
        )
        return Reply(500, {"error": "internal_error"}, remember=False)
    return Reply(200, {"external_id": external_id, "allow_channelback": True})


def _pull_body(answer: PullResponse) -> bytes:
    """The pull answer's JSON: resources encoded exactly as a push encodes them."""
    tail: dict[str, object] = {}
    if answer.state is not None:
        tail["state"] = answer.state  # omitted, Zendesk keeps the previous state
    if answer.metadata_needs_update:
        tail["metadata_needs_update"] = True
    resources = b",".join(encode_body(resource) for resource in answer.resources)
    rest = orjson.dumps(tail)[1:-1]
    return b'{"external_resources":[' + resources + b"]" + (b"," + rest if rest else b"") + b"}"


async def _read_body(request: web.Request) -> bytes:
    """The request's body, within `BODY_SECONDS` (a 408 beyond)."""
    try:
        async with asyncio.timeout(BODY_SECONDS):
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None


async def _read_form(
    request: web.Request, *, many: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """A form's text fields (the first value of each) and every value of ``many``; an upload
    where text belongs counts as absent, and so does a body that is no form."""
    try:
        async with asyncio.timeout(BODY_SECONDS):
            posted = await request.post()
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None
    except ValueError:
        return {}, []
    first: dict[str, str] = {}
    for key, value in posted.items():
        if isinstance(value, str):
            first.setdefault(key, value)
    listed = [value for value in posted.getall(many, []) if isinstance(value, str)] if many else []
    return first, listed
