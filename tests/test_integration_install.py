"""Installing an integration through its admin UI, as Zendesk and an administrator's browser do:
the form, the token checked with Zendesk, the account stored, the way back to Zendesk."""

from __future__ import annotations

import logging

import pytest

from anychannel_async import Account, AccountStore, PushPool, StatusCode
from anychannel_async.integration import ChannelbackRequest, ChannelIntegration
from anychannel_async.integration._signing import Signer
from anychannel_async.testing import ZendeskEmulator

from .conftest import FAST_RETRY, VALIDATE_TOKEN_PATH, resource
from .integration_support import (
    IPID,
    SECRET,
    TOKEN,
    TYPED,
    ZendeskSide,
    zendesk_for,
)

FORGED_TOKEN = "forged-token-zendesk-never-issued"


def validations(emulator: ZendeskEmulator) -> int:
    return sum(1 for r in emulator.requests if r.path == VALIDATE_TOKEN_PATH)


async def test_an_install_stores_the_account_and_posts_name_and_metadata_back_to_zendesk(
    zendesk: ZendeskSide, store: AccountStore, emulator: ZendeskEmulator
) -> None:
    """The browser fills in the form, the token is checked with Zendesk, the account is kept
    with what the form asked, and the return page posts name and metadata to return_url."""
    installed = await zendesk.install(name="Acme on Social")
    assert installed.name == "Acme on Social"
    assert installed.metadata
    assert len(installed.metadata) <= 5000
    assert zendesk.returned == [{"name": "Acme on Social", "metadata": installed.metadata}]
    assert validations(emulator) == 1
    account = await store.get(IPID)
    assert account == Account(
        IPID,
        base_url=emulator.base_url,
        token=TOKEN,
        name="Acme on Social",
        settings=TYPED,
    )
    assert account is not None
    assert account.active


async def test_the_admin_form_asks_name_and_each_admin_field_and_signs_what_zendesk_sent(
    zendesk: ZendeskSide,
) -> None:
    """A new account's page is one form: text inputs name, handle and api_key, empty; hidden
    inputs with Zendesk's fields and a signature; never cached."""
    page = await zendesk.open_admin()
    assert page.status == 200
    (form,) = page.forms
    assert form.of_type("text") == {"name": "", "handle": "", "api_key": ""}
    hidden = form.of_type("hidden")
    assert hidden["instance_push_id"] == IPID
    assert hidden["return_url"] == zendesk.return_url
    assert hidden["signature"].startswith("v1.")
    assert page.headers["Cache-Control"] == "no-store"
    assert "Social handle" in page.text
    assert "API key" in page.text


async def test_the_installed_account_is_pushed_to_by_a_push_pool_over_the_same_store(
    zendesk: ZendeskSide, store: AccountStore, emulator: ZendeskEmulator
) -> None:
    """The stored account is usable as it is: a PushPool over the store pushes with it."""
    await zendesk.install()
    async with PushPool(store, retry=FAST_RETRY, max_latency=0.01) as pool:
        result = await pool.push(IPID, resource("post-1"))
    assert result.code is StatusCode.SUCCESS
    assert emulator.ticket_for("post-1") is not None


async def test_a_forged_install_with_a_token_zendesk_does_not_know_stores_nothing(
    zendesk: ZendeskSide, store: AccountStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone can POST the admin form: with a token Zendesk refuses, saving stores nothing and
    shows an error page that quotes no token; nothing is posted back to Zendesk."""
    caplog.set_level(logging.DEBUG)
    form = await zendesk.open_admin(token=FORGED_TOKEN)
    page = await zendesk.submit(form, {"name": "Evil", **TYPED})
    assert page.status == 403
    assert "did not accept the access token" in page.text
    assert page.forms == []
    assert FORGED_TOKEN not in page.html
    assert await store.list() == []
    assert zendesk.returned == []
    assert FORGED_TOKEN not in caplog.text


@pytest.mark.parametrize(
    "change",
    [
        {"instance_push_id": "someone-elses-instance"},
        {"zendesk_access_token": FORGED_TOKEN},
        {"return_url": "https://evil.example/steal"},
        {"issued_at": "9999999999"},
        {"signature": "v1.AAAA"},
    ],
    ids=lambda change: next(iter(change)),
)
async def test_an_admin_form_changed_on_the_way_is_refused_before_asking_zendesk(
    zendesk: ZendeskSide, store: AccountStore, emulator: ZendeskEmulator, change: dict[str, str]
) -> None:
    """The hidden fields are signed: a changed one (or a bad signature) is a 403 error page,
    with no call to Zendesk and nothing stored."""
    page = await zendesk.open_admin()
    (form,) = page.forms
    filled = {**form.values(), "name": "Acme", **TYPED, **change}
    saved = await zendesk.post_page(f"{zendesk.url}/admin_ui/save", filled)
    assert saved.status == 403
    assert "not issued by this integration" in saved.text
    assert validations(emulator) == 0
    assert await store.list() == []


async def test_an_admin_form_signed_with_another_secret_is_refused(
    zendesk: ZendeskSide, store: AccountStore, emulator: ZendeskEmulator
) -> None:
    """A form issued by another integration (another secret) does not verify here."""
    other = ChannelIntegration(
        name="Other",
        integration_id="com.other",
        base_url="https://other.example.com",
        secret="x" * 32,
        accounts=store,
        zendesk_url=emulator.base_url,
    )
    async with zendesk_for(other.web_app()) as elsewhere:
        page = await elsewhere.open_admin()
    (form,) = page.forms
    saved = await zendesk.post_page(
        f"{zendesk.url}/admin_ui/save", {**form.values(), "name": "Acme", **TYPED}
    )
    assert saved.status == 403
    assert await store.list() == []


async def test_editing_an_account_shows_its_name_and_settings_and_saves_the_change(
    zendesk: ZendeskSide, store: AccountStore
) -> None:
    """Zendesk opens the admin UI with the account's metadata: the form is pre-filled; a save
    replaces the settings and returns the same metadata."""
    first = await zendesk.install(name="Acme on Social")
    page = await zendesk.open_admin(metadata=first.metadata)
    (form,) = page.forms
    assert form.of_type("text") == {"name": "Acme on Social", **TYPED}
    saved = await zendesk.submit(page, {"handle": "@acme_support"})
    second = await zendesk.follow_return(saved)
    assert second == first
    account = await store.get(IPID)
    assert account is not None
    assert account.settings == {**TYPED, "handle": "@acme_support"}


async def test_editing_with_a_refused_token_shows_an_error_and_not_the_settings(
    zendesk: ZendeskSide,
) -> None:
    """Stored settings may be credentials: opening an account's page with its metadata but a
    token Zendesk refuses shows an error page, without them."""
    installed = await zendesk.install()
    page = await zendesk.open_admin(metadata=installed.metadata, token=FORGED_TOKEN)
    assert page.status == 403
    assert page.forms == []
    assert TYPED["api_key"] not in page.html


@pytest.mark.parametrize(
    ("zendesk_sends", "says"),
    [
        ({"instance_push_id": ""}, "enable push"),
        ({"token": ""}, "enable push"),
        ({"return_url": "javascript:alert(1)"}, "no valid return URL"),
        ({"subdomain": "evil.example/x"}, "no valid subdomain"),
    ],
    ids=["no-instance", "no-token", "script-return-url", "bad-subdomain"],
)
async def test_an_admin_post_the_integration_cannot_use_shows_an_error(
    zendesk: ZendeskSide, zendesk_sends: dict[str, str], says: str
) -> None:
    """Without push enabled, or with a return URL that is no http(s) URL, or a subdomain that
    is none, the admin UI says so (400) and offers no form."""
    page = await zendesk.open_admin(**zendesk_sends)
    assert page.status == 400
    assert says in page.text
    assert page.forms == []


async def test_every_value_on_the_admin_pages_is_escaped(
    zendesk: ZendeskSide, store: AccountStore
) -> None:
    """Markup in a name or a setting stays text: the pages carry it escaped, and a browser
    reads back exactly what was typed."""
    name = '"><script>alert("name")</script>'
    typed = {"handle": "<b>&amp;'\"</b>", "api_key": "k"}
    installed = await zendesk.install(name=name, typed=typed)
    assert installed.name == name
    page = await zendesk.open_admin(metadata=installed.metadata)
    assert "<script>alert" not in page.html
    assert "<b>" not in page.html
    (form,) = page.forms
    assert form.of_type("text") == {"name": name, **typed}


async def test_the_channelback_of_an_installed_account_carries_its_settings(
    zendesk: ZendeskSide, integration: ChannelIntegration
) -> None:
    """The metadata the browser posted back to Zendesk is what Zendesk sends on a channelback:
    the handler gets the account with its settings."""
    seen: list[ChannelbackRequest] = []

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        seen.append(request)
        return "reply-1"

    installed = await zendesk.install()
    status, _ = await zendesk.channelback(installed.metadata)
    assert status == 200
    assert seen[0].account.settings == TYPED


async def test_installing_logs_no_token_secret_or_metadata(
    zendesk: ZendeskSide, caplog: pytest.LogCaptureFixture
) -> None:
    """A full install, an edit and a forged install log neither the token, the secret, the
    settings' values nor the metadata."""
    caplog.set_level(logging.DEBUG)
    installed = await zendesk.install()
    await zendesk.open_admin(metadata=installed.metadata)
    await zendesk.submit(await zendesk.open_admin(token=FORGED_TOKEN), {"name": "x"})
    for secret in (TOKEN, FORGED_TOKEN, SECRET, TYPED["api_key"], installed.metadata):
        assert secret not in caplog.text


async def test_an_admin_form_older_than_a_day_is_refused(
    zendesk: ZendeskSide, store: AccountStore, emulator: ZendeskEmulator
) -> None:
    """A form's life is bounded: one issued (and signed) more than a day ago is refused as
    expired, even with every field intact."""
    page = await zendesk.open_admin()
    (form,) = page.forms
    hidden = [(k, v) for kind, k, v in form.inputs if kind == "hidden" and k != "signature"]
    old = [(k, str(int(v) - 86_401) if k == "issued_at" else v) for k, v in hidden]
    filled = {**dict(old), "signature": Signer(SECRET).form_signature(old), "name": "A", **TYPED}
    saved = await zendesk.post_page(f"{zendesk.url}/admin_ui/save", filled)
    assert saved.status == 403
    assert "expired" in saved.text
    assert validations(emulator) == 0
    assert await store.list() == []
