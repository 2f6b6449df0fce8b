"""The Zendesk side of an integration service, as the docs describe it, for the integration
tests: a browser that installs through the admin UI (parsing each page's HTML and submitting its
form), Zendesk's own form posts and event callbacks, and a return URL that records what the
browser posted back. Everything over real TCP; the integration under test is a real aiohttp
server on a free port."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from anychannel_async import AccountStore
from anychannel_async.integration import ChannelIntegration
from anychannel_async.testing import DEFAULT_INSTANCE_PUSH_ID, DEFAULT_TOKEN, ZendeskEmulator
from anychannel_async.testing._browser import Page, parse_page

#: The integration's secret: distinctive, so a leak into any text is easy to spot.
SECRET = "integration-secret-7f3a9c1e-never-shown-anywhere"
#: Another integration's secret: its metadata is foreign here.
OTHER_SECRET = "another-integrations-secret-0123456789abcdef"
IPID = DEFAULT_INSTANCE_PUSH_ID
TOKEN = DEFAULT_TOKEN
ADMIN_FIELDS = {"handle": "Social handle", "api_key": "API key"}
#: Settings the administrator types in; the API key is a credential of the origin network.
TYPED = {"handle": "@acme", "api_key": "origin-api-key-never-shown"}
RETURN_PATH = "/zendesk/channels/integration_service_instances/editor_finalizer"


def make_integration(
    store: AccountStore, emulator: ZendeskEmulator, *, zendesk_url: str | None = None
) -> ChannelIntegration:
    """An integration over store, whose Zendesk (every subdomain) is the emulator (at
    zendesk_url, when given: another name of it)."""
    return ChannelIntegration(
        name="Acme Social",
        integration_id="com.acme.social",
        base_url="https://bridge.example.com",
        secret=SECRET,
        accounts=store,
        admin_fields=ADMIN_FIELDS,
        zendesk_url=zendesk_url or emulator.base_url,
        timeout=5.0,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AccountStore]:
    async with AccountStore(tmp_path / "accounts.sqlite") as opened:
        yield opened


@pytest.fixture
def integration(store: AccountStore, emulator: ZendeskEmulator) -> ChannelIntegration:
    return make_integration(store, emulator)


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve app on a free port of 127.0.0.1; yields its base URL."""
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


# -- Zendesk and the administrator's browser -------------------------------------------------


@attrs.frozen
class Installed:
    """What the browser posted back to Zendesk's return_url."""

    name: str
    metadata: str


class ZendeskSide:
    """Zendesk's calls to an integration at ``url``, and a browser in its admin iframe."""

    def __init__(self, session: aiohttp.ClientSession, url: str, return_url: str) -> None:
        self.session = session
        self.url = url
        self.return_url = return_url
        #: The forms the browser posted to the return URL, in order.
        self.returned: list[dict[str, str]] = []

    # -- the admin UI, as a browser -----------------------------------------------------------

    def admin_post(
        self,
        *,
        metadata: str = "",
        name: str = "",
        instance_push_id: str = IPID,
        token: str = TOKEN,
        subdomain: str = "acme",
        return_url: str | None = None,
    ) -> dict[str, str]:
        """The form Zendesk POSTs into the admin iframe."""
        return {
            "name": name,
            "metadata": metadata,
            "state": "",
            "return_url": self.return_url if return_url is None else return_url,
            "instance_push_id": instance_push_id,
            "zendesk_access_token": token,
            "subdomain": subdomain,
            "locale": "en-US",
        }

    async def post_page(self, url: str, form: Mapping[str, str]) -> Page:
        async with self.session.post(url, data=dict(form), allow_redirects=False) as response:
            return parse_page(url, response.status, await response.text(), response.headers)

    async def open_admin(self, **zendesk: str) -> Page:
        """Zendesk opens the admin UI (a new account, or with metadata an existing one)."""
        return await self.post_page(f"{self.url}/admin_ui", self.admin_post(**zendesk))

    async def submit(self, page: Page, typed: Mapping[str, str]) -> Page:
        """Fill the page's one form as the administrator would, and submit it."""
        (form,) = page.forms
        assert form.method == "post"
        filled = form.values()
        for key, value in typed.items():
            assert key in form.of_type("text"), f"the form asks no {key}"
            filled[key] = value
        return await self.post_page(urljoin(page.url, form.action), filled)

    async def follow_return(self, page: Page) -> Installed:
        """The return page posts itself to Zendesk: check it does (script and button), and
        post it as the browser would."""
        assert page.status == 200, page.text
        (form,) = page.forms
        assert form.method == "post"
        assert form.action == self.return_url
        assert form.buttons == 1  # for a browser that runs no script
        assert page.posts_itself(form)
        posted = form.values()
        assert set(posted) == {"name", "metadata"}
        async with self.session.post(form.action, data=posted) as response:
            assert response.status == 200
        return Installed(name=posted["name"], metadata=posted["metadata"])

    async def install(
        self, name: str = "Acme on Social", typed: Mapping[str, str] = TYPED, **zendesk: str
    ) -> Installed:
        """The whole install: open the admin UI, fill in and save, return to Zendesk."""
        form = await self.open_admin(**zendesk)
        assert form.status == 200, form.text
        saved = await self.submit(form, {"name": name, **typed})
        return await self.follow_return(saved)

    # -- Zendesk's calls ----------------------------------------------------------------------

    async def post_form(
        self, path: str, form: Sequence[tuple[str, str]]
    ) -> tuple[int, dict[str, object]]:
        async with self.session.post(f"{self.url}{path}", data=list(form)) as response:
            return response.status, await response.json()

    async def channelback(
        self, metadata: str, *, file_urls: Sequence[str] = (), **fields: str
    ) -> tuple[int, dict[str, object]]:
        form = [
            ("message", "Thanks, we are on it"),
            ("parent_id", "post-1"),
            ("recipient_id", "author-1"),
            ("thread_id", ""),
            ("metadata", metadata),
            ("state", ""),
            ("request_unique_identifier", "rui-1"),
        ]
        form = [(k, fields.pop(k, v)) for k, v in form] + list(fields.items())
        form += [("file_urls[]", url) for url in file_urls]
        return await self.post_form("/channelback", form)

    async def pull(self, metadata: str, state: str = "") -> tuple[int, dict[str, object]]:
        return await self.post_form("/pull", [("metadata", metadata), ("state", state)])

    async def events(self, *events: Mapping[str, object]) -> tuple[int, dict[str, object]]:
        async with self.session.post(
            f"{self.url}/event_callback",
            data=json.dumps({"events": list(events)}),
            headers={"Content-Type": "application/json"},
        ) as response:
            return response.status, await response.json()


def event(type_id: str, metadata: str | None = None, **data: object) -> dict[str, object]:
    """An event as Zendesk sends it; an instance's carries its metadata in data."""
    if metadata is not None:
        data["metadata"] = metadata
    return {
        "type_id": type_id,
        "timestamp": "2026-11-25T12:00:00Z",
        "subdomain": "acme",
        "integration_name": "Acme Social",
        "integration_id": "com.acme.social",
        "data": data,
    }


@contextlib.asynccontextmanager
async def zendesk_for(app: web.Application) -> AsyncIterator[ZendeskSide]:
    """Serve the integration's app and Zendesk's return URL; yields Zendesk's side."""
    returned: list[dict[str, str]] = []

    async def finalizer(request: web.Request) -> web.Response:
        returned.append({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        return web.Response(text="Zendesk: account saved")

    zendesk_app = web.Application()
    zendesk_app.router.add_post(RETURN_PATH, finalizer)
    async with (
        serving(zendesk_app) as zendesk_url,
        serving(app) as url,
        aiohttp.ClientSession() as session,
    ):
        side = ZendeskSide(session, url, f"{zendesk_url}{RETURN_PATH}")
        side.returned = returned
        yield side


@pytest.fixture
async def zendesk(integration: ChannelIntegration) -> AsyncIterator[ZendeskSide]:
    """The integration served, and Zendesk's side of it. Tests register handlers before
    asking for it (or ask for ``integration`` only and serve it themselves)."""
    async with zendesk_for(integration.web_app()) as side:
        yield side
