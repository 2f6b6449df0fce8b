"""Zendesk's calls on an installed integration: channelback (once per identifier), pull,
clickthrough, healthcheck, the manifest and the event callback; and what proves their origin."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from anychannel_async import (
    AccountStore,
    InactiveAccountError,
    PushPool,
    UnknownAccountError,
    ValidationError,
)
from anychannel_async._serde import encode_body
from anychannel_async.integration import (
    ChannelbackFailed,
    ChannelbackRequest,
    ChannelIntegration,
    ClickthroughRequest,
    IntegrationEvent,
    PullRequest,
    PullResponse,
)
from anychannel_async.integration._signing import Signer
from anychannel_async.testing import Faults, ZendeskEmulator

from .conftest import FAST_RETRY, REPORT_ERROR_PATH, resource, wait_until
from .integration_support import (
    IPID,
    OTHER_SECRET,
    SECRET,
    TOKEN,
    TYPED,
    ZendeskSide,
    event,
    make_integration,
    zendesk_for,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def arrivals_of(app: web.Application) -> list[str]:
    """The paths of the requests app received, as they arrive (before any handler runs)."""
    arrivals: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        arrivals.append(request.path)
        return await handler(request)

    app.middlewares.append(record)
    return arrivals


# -- the manifest and the healthcheck --------------------------------------------------------


async def test_the_manifest_names_the_routes_whose_handlers_are_registered(
    integration: ChannelIntegration, zendesk: ZendeskSide
) -> None:
    """admin_ui, healthcheck_url and event_callback_url always; pull_url and channelback_url
    once registered; each absolute under base_url."""
    base = "https://bridge.example.com"
    async with zendesk.session.get(f"{zendesk.url}/manifest.json") as response:
        assert response.status == 200
        assert await response.json() == {
            "name": "Acme Social",
            "id": "com.acme.social",
            "urls": {
                "admin_ui": f"{base}/admin_ui",
                "healthcheck_url": f"{base}/healthcheck",
                "event_callback_url": f"{base}/event_callback",
            },
        }

    @integration.pull
    async def pull(request: PullRequest) -> PullResponse:
        return PullResponse()

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        return "x"

    @integration.clickthrough
    async def link(request: ClickthroughRequest) -> str:
        return "https://social.example/x"

    async with zendesk.session.get(f"{zendesk.url}/manifest.json") as response:
        urls = (await response.json())["urls"]
    assert urls["pull_url"] == f"{base}/pull"
    assert urls["channelback_url"] == f"{base}/channelback"
    assert urls["clickthrough_url"] == f"{base}/clickthrough"


async def test_a_route_without_its_handler_answers_404(zendesk: ZendeskSide) -> None:
    """No pull handler: /pull is not there, even with valid metadata."""
    installed = await zendesk.install()
    async with zendesk.session.post(
        f"{zendesk.url}/pull", data={"metadata": installed.metadata}
    ) as response:
        assert response.status == 404


async def test_the_healthcheck_answers_200_while_the_store_answers(zendesk: ZendeskSide) -> None:
    """GET /healthcheck is 200 when the service can work."""
    async with zendesk.session.get(f"{zendesk.url}/healthcheck") as response:
        assert response.status == 200


# -- channelback ------------------------------------------------------------------------------


async def test_a_channelback_reaches_the_handler_typed_and_answers_its_external_id(
    integration: ChannelIntegration, zendesk: ZendeskSide
) -> None:
    """The handler gets the account (with its settings) and every field under its wire name;
    Zendesk gets {"external_id": ..., "allow_channelback": true}."""
    seen: list[ChannelbackRequest] = []

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        seen.append(request)
        return "reply-77"

    installed = await zendesk.install()
    status, body = await zendesk.channelback(
        installed.metadata,
        file_urls=["https://acme.zendesk.com/a.png", "https://acme.zendesk.com/b.pdf"],
        request_unique_identifier="rui-77",
    )
    assert (status, body) == (200, {"external_id": "reply-77", "allow_channelback": True})
    (request,) = seen
    assert request.account.instance_push_id == IPID
    assert request.account.settings == TYPED
    assert request.message == "Thanks, we are on it"
    assert request.parent_id == "post-1"
    assert request.recipient_id == "author-1"
    assert request.thread_id is None  # sent empty
    assert request.file_urls == ("https://acme.zendesk.com/a.png", "https://acme.zendesk.com/b.pdf")
    assert request.request_unique_identifier == "rui-77"


def tampered(metadata: str) -> str:
    version, _, signature = metadata.split(".")
    return f"{version}.{Signer(SECRET).metadata('someone-else').split('.')[1]}.{signature}"


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda good: "", id="none"),
        pytest.param(tampered, id="tampered"),
        pytest.param(lambda good: good[:-2] + ("AA" if good[-2:] != "AA" else "BB"), id="resigned"),
        pytest.param(lambda good: Signer(OTHER_SECRET).metadata(IPID), id="foreign"),
        pytest.param(lambda good: Signer(SECRET).metadata("not-installed"), id="not-in-store"),
        pytest.param(lambda good: good + "x" * 5000, id="too-long"),
    ],
)
async def test_a_channelback_or_pull_whose_metadata_does_not_verify_is_403_and_reaches_no_handler(
    integration: ChannelIntegration,
    zendesk: ZendeskSide,
    forge: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Absent, altered, signed by another secret, naming an account not in the store, or too
    long: 403, the same answer each time, and no handler runs; the metadata is not logged."""
    called: list[object] = []

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        called.append(request)
        return "x"

    @integration.pull
    async def pull(request: PullRequest) -> PullResponse:
        called.append(request)
        return PullResponse()

    installed = await zendesk.install()
    forged = forge(installed.metadata)
    assert await zendesk.channelback(forged) == (403, {"error": "forbidden"})
    assert await zendesk.pull(forged) == (403, {"error": "forbidden"})
    assert called == []
    if forged:
        assert forged not in caplog.text


async def test_a_repeated_channelback_runs_the_handler_once_and_repeats_its_answer(
    integration: ChannelIntegration, zendesk: ZendeskSide
) -> None:
    """Zendesk repeats a channelback after a network error with the same
    request_unique_identifier: the repeat gets the first answer; the handler ran once. Another
    identifier is another reply."""
    calls: list[str] = []

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        calls.append(request.message)
        return f"reply-{len(calls)}"

    installed = await zendesk.install()
    first = await zendesk.channelback(installed.metadata, request_unique_identifier="rui-1")
    again = await zendesk.channelback(installed.metadata, request_unique_identifier="rui-1")
    other = await zendesk.channelback(installed.metadata, request_unique_identifier="rui-2")
    assert first == again == (200, {"external_id": "reply-1", "allow_channelback": True})
    assert other == (200, {"external_id": "reply-2", "allow_channelback": True})
    assert len(calls) == 2


async def test_a_repeat_arriving_while_the_first_still_runs_gets_the_first_answer(
    integration: ChannelIntegration,
) -> None:
    """Two channelbacks with one identifier at once: the handler runs once, both get its
    answer."""
    entered, release = asyncio.Event(), asyncio.Event()
    calls = 0

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        nonlocal calls
        calls += 1
        entered.set()
        await release.wait()
        return f"reply-{calls}"

    app = integration.web_app()
    arrivals = arrivals_of(app)
    async with zendesk_for(app) as zendesk:
        installed = await zendesk.install()
        first = asyncio.create_task(zendesk.channelback(installed.metadata))
        await entered.wait()
        second = asyncio.create_task(zendesk.channelback(installed.metadata))
        await wait_until(lambda: arrivals.count("/channelback") == 2)
        release.set()
        answers = list(await asyncio.gather(first, second))
    assert answers == [(200, {"external_id": "reply-1", "allow_channelback": True})] * 2
    assert calls == 1


async def test_answers_are_kept_in_the_store_for_another_process_and_a_restart(
    tmp_path: Path, emulator: ZendeskEmulator
) -> None:
    """Two services over one store file (two processes, say): a repeat sent to the other one
    while the first runs the handler waits for its answer; after a restart the answer is still
    there. The handler ran once in all."""
    path = tmp_path / "accounts.sqlite"
    entered, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def reply(request: ChannelbackRequest) -> str:
        nonlocal calls
        calls += 1
        entered.set()
        await release.wait()
        return f"reply-{calls}"

    async with AccountStore(path) as one_store, AccountStore(path) as other_store:
        one, other = make_integration(one_store, emulator), make_integration(other_store, emulator)
        one.channelback(reply)
        other.channelback(reply)
        other_app = other.web_app()
        arrivals = arrivals_of(other_app)
        async with zendesk_for(one.web_app()) as first, zendesk_for(other_app) as second:
            installed = await first.install()
            sent = asyncio.create_task(first.channelback(installed.metadata))
            await entered.wait()
            repeat = asyncio.create_task(second.channelback(installed.metadata))
            await wait_until(lambda: arrivals == ["/channelback"])
            release.set()
            answers = list(await asyncio.gather(sent, repeat))
    async with AccountStore(path) as reopened:
        restarted = make_integration(reopened, emulator)
        restarted.channelback(reply)
        async with zendesk_for(restarted.web_app()) as third:
            answers.append(await third.channelback(installed.metadata))
    assert answers == [(200, {"external_id": "reply-1", "allow_channelback": True})] * 3
    assert calls == 1


async def test_channelback_failed_is_a_4xx_with_its_description_and_is_repeated_as_is(
    integration: ChannelIntegration, zendesk: ZendeskSide
) -> None:
    """A refusal is an answer: its status and description go to Zendesk, and a repeat gets
    the same refusal without running the handler again."""
    calls = 0

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        nonlocal calls
        calls += 1
        raise ChannelbackFailed("the recipient blocked this account", status=422)

    installed = await zendesk.install()
    refusal = (
        422,
        {"error": "channelback_failed", "description": "the recipient blocked this account"},
    )
    assert await zendesk.channelback(installed.metadata) == refusal
    assert await zendesk.channelback(installed.metadata) == refusal
    assert calls == 1


async def test_a_handler_that_crashes_gives_a_500_that_leaks_nothing_and_is_logged(
    integration: ChannelIntegration, zendesk: ZendeskSide, caplog: pytest.LogCaptureFixture
) -> None:
    """Any other exception: a 500 whose body says nothing of it, logged with its traceback.
    It is no answer, so a repeat runs the handler again."""
    calls = 0

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        nonlocal calls
        calls += 1
        raise RuntimeError("database password is hunter2")

    installed = await zendesk.install()
    assert await zendesk.channelback(installed.metadata) == (500, {"error": "internal_error"})
    assert "hunter2" in caplog.text  # logged for the operator, not answered
    assert await zendesk.channelback(installed.metadata) == (500, {"error": "internal_error"})
    assert calls == 2


@pytest.mark.parametrize("returned", ["", "é-not-ascii", "x" * 256, None])
async def test_a_handler_returning_no_valid_external_id_is_a_500(
    integration: ChannelIntegration, zendesk: ZendeskSide, returned: str | None
) -> None:
    """An external id must be 1..255 ASCII characters: anything else is the handler's bug."""

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        return returned  # type: ignore[return-value]

    installed = await zendesk.install()
    assert await zendesk.channelback(installed.metadata) == (500, {"error": "internal_error"})


async def test_a_channelback_field_beyond_its_limit_is_a_400_naming_it(
    integration: ChannelIntegration, zendesk: ZendeskSide
) -> None:
    """A message over 65,535 characters never reaches the handler."""

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        raise AssertionError("not reached")

    installed = await zendesk.install()
    status, body = await zendesk.channelback(installed.metadata, message="x" * 65_536)
    assert status == 400
    assert "message" in str(body["description"])


async def test_report_error_tells_zendesk_of_a_reply_that_failed_later(
    integration: ChannelIntegration,
    zendesk: ZendeskSide,
    emulator: ZendeskEmulator,
    store: AccountStore,
) -> None:
    """integration.report_error calls channelback/report_error with the account's token."""
    await zendesk.install()
    account = await store.get(IPID)
    assert account is not None
    await integration.report_error(account, "reply-1", "the network dropped it")
    (reported,) = emulator.reported_errors
    assert (reported.instance_push_id, reported.external_id, reported.description) == (
        IPID,
        "reply-1",
        "the network dropped it",
    )


async def test_the_integrations_session_sends_no_cookie_back(
    emulator: ZendeskEmulator, store: AccountStore
) -> None:
    """The session the integration opens to call Zendesk (the token check of the admin form,
    report_error), shared by every account, keeps no cookie an answer sets (Cloudflare's)."""
    emulator.faults = Faults(set_cookie="__cfruid=abc123; Path=/; HttpOnly")
    by_name = emulator.base_url.replace("127.0.0.1", "localhost")  # aiohttp keeps none by IP
    integration = make_integration(store, emulator, zendesk_url=by_name)
    async with zendesk_for(integration.web_app()) as zendesk:
        await zendesk.install()
        account = await store.get(IPID)
        assert account is not None
        await integration.report_error(account, "reply-1", "the network dropped it")
        await integration.report_error(account, "reply-2", "the network dropped it")
    assert [r.path for r in emulator.requests][-2:] == [REPORT_ERROR_PATH] * 2
    assert len(emulator.requests) == 3  # the token check, then the two reports
    assert [r.cookie for r in emulator.requests] == [None] * 3


# -- pull -------------------------------------------------------------------------------------


async def test_a_pull_answers_the_resources_as_push_sends_them_with_state(
    integration: ChannelIntegration, zendesk: ZendeskSide
) -> None:
    """The handler gets the state Zendesk sent; its resources are encoded exactly as a push
    encodes them, with the new state and metadata_needs_update."""
    seen: list[PullRequest] = []
    pulled = [resource("post-1"), resource("reply-1", parent_id="post-1")]

    @integration.pull
    async def pull(request: PullRequest) -> PullResponse:
        seen.append(request)
        return PullResponse(pulled, state="cursor-2", metadata_needs_update=True)

    installed = await zendesk.install()
    status, body = await zendesk.pull(installed.metadata, state="cursor-1")
    assert status == 200
    assert body == {
        "external_resources": [orjson.loads(encode_body(r)) for r in pulled],
        "state": "cursor-2",
        "metadata_needs_update": True,
    }
    assert seen[0].state == "cursor-1"
    assert seen[0].account.instance_push_id == IPID


async def test_a_pull_without_a_new_state_leaves_zendesk_s_as_it_is(
    integration: ChannelIntegration, zendesk: ZendeskSide
) -> None:
    """state None is omitted (Zendesk keeps the previous one); so is a false
    metadata_needs_update; a first pull's empty state reaches the handler as None."""
    seen: list[PullRequest] = []

    @integration.pull
    async def pull(request: PullRequest) -> PullResponse:
        seen.append(request)
        return PullResponse([])

    installed = await zendesk.install()
    assert await zendesk.pull(installed.metadata) == (200, {"external_resources": []})
    assert seen[0].state is None


def test_a_pull_response_holds_at_most_200_validated_resources() -> None:
    """201 resources, or anything but an ExternalResource, is a ValidationError."""
    PullResponse([resource(f"r-{i}") for i in range(200)])
    with pytest.raises(ValidationError, match="resources: 201 items exceed the limit of 200"):
        PullResponse([resource(f"r-{i}") for i in range(201)])
    with pytest.raises(ValidationError, match=r"resources\[0\]"):
        PullResponse([{"external_id": "x"}])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="state"):
        PullResponse([], state="s" * 5001)


async def test_a_pull_handler_that_crashes_gives_a_500_that_leaks_nothing(
    integration: ChannelIntegration, zendesk: ZendeskSide
) -> None:
    """As for a channelback: a 500 whose body says nothing."""

    @integration.pull
    async def pull(request: PullRequest) -> PullResponse:
        raise RuntimeError("secret detail")

    installed = await zendesk.install()
    assert await zendesk.pull(installed.metadata) == (500, {"error": "internal_error"})


# -- clickthrough -----------------------------------------------------------------------------


async def test_a_clickthrough_redirects_the_agent_to_the_handler_s_url(
    integration: ChannelIntegration, zendesk: ZendeskSide
) -> None:
    """GET ?external_id=...&metadata=...: a redirect to the URL the handler gives; bad metadata
    is a 403; a URL that is no http(s) URL is the handler's bug, a 500."""

    @integration.clickthrough
    async def link(request: ClickthroughRequest) -> str:
        if request.external_id == "evil":
            return "javascript:alert(1)"
        return f"https://social.example/{request.account.settings['handle']}/{request.external_id}"

    installed = await zendesk.install()

    async def click(external_id: str, metadata: str) -> aiohttp.ClientResponse:
        async with zendesk.session.get(
            f"{zendesk.url}/clickthrough",
            params={"external_id": external_id, "metadata": metadata},
            allow_redirects=False,
        ) as response:
            return response

    found = await click("post-1", installed.metadata)
    assert found.status == 302
    assert found.headers["Location"] == "https://social.example/@acme/post-1"
    assert (await click("post-1", Signer(OTHER_SECRET).metadata(IPID))).status == 403
    assert (await click("evil", installed.metadata)).status == 500


# -- events -----------------------------------------------------------------------------------


async def test_destroying_an_instance_removes_its_account_before_the_hook_runs(
    integration: ChannelIntegration, zendesk: ZendeskSide, store: AccountStore
) -> None:
    """destroy_integration_instance: the account is gone from the store when the hook sees the
    event, which names the account as it was and keeps the data without the metadata."""
    seen: list[tuple[IntegrationEvent, object]] = []

    @integration.on_event
    async def hook(event_: IntegrationEvent) -> None:
        seen.append((event_, await store.get(IPID)))

    installed = await zendesk.install()
    status, _ = await zendesk.events(event("destroy_integration_instance", installed.metadata))
    assert status == 200
    assert await store.get(IPID) is None
    ((got, stored_then),) = seen
    assert stored_then is None
    assert got.type_id == "destroy_integration_instance"
    assert got.instance_push_id == IPID
    assert got.account is not None
    assert got.account.token == TOKEN
    assert got.subdomain == "acme"
    assert got.timestamp == "2026-11-25T12:00:00Z"
    assert dict(got.data) == {}
    assert installed.metadata not in repr(got)


async def test_a_deactivated_instance_is_refused_by_the_pool_and_its_calls_until_reactivated(
    integration: ChannelIntegration, zendesk: ZendeskSide, store: AccountStore
) -> None:
    """deactivate_integration_instance marks the account inactive: a PushPool refuses it
    (InactiveAccountError, an UnknownAccountError), and so do channelbacks (403);
    activate_integration_instance brings it back."""

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        return "reply-1"

    seen: list[IntegrationEvent] = []

    @integration.on_event
    async def hook(event_: IntegrationEvent) -> None:
        seen.append(event_)

    installed = await zendesk.install()
    deactivate = event(
        "deactivate_integration_instance",
        installed.metadata,
        deactivated_by="error",
        deactivating_error="token revoked",
    )
    assert (await zendesk.events(deactivate))[0] == 200
    account = await store.get(IPID)
    assert account is not None
    assert not account.active
    assert seen[0].account == account  # the hook sees it inactive already
    assert dict(seen[0].data) == {"deactivated_by": "error", "deactivating_error": "token revoked"}
    async with PushPool(store, retry=FAST_RETRY, max_latency=0.01) as pool:
        with pytest.raises(InactiveAccountError) as refused:
            await pool.submit(IPID, resource("post-1"))
        assert isinstance(refused.value, UnknownAccountError)
        assert await zendesk.channelback(installed.metadata) == (403, {"error": "forbidden"})
        assert (await zendesk.events(event("activate_integration_instance", installed.metadata)))[
            0
        ] == 200
        assert await zendesk.channelback(installed.metadata, request_unique_identifier="rui-2") == (
            200,
            {"external_id": "reply-1", "allow_channelback": True},
        )


async def test_an_instance_event_whose_metadata_does_not_verify_changes_nothing(
    integration: ChannelIntegration, zendesk: ZendeskSide, store: AccountStore
) -> None:
    """Anyone can POST the event callback: a destroy with foreign or no metadata is a 403;
    the account stays and the hook never sees it."""
    seen: list[IntegrationEvent] = []

    @integration.on_event
    async def hook(event_: IntegrationEvent) -> None:
        seen.append(event_)

    await zendesk.install()
    for forged in (Signer(OTHER_SECRET).metadata(IPID), None):
        status, _ = await zendesk.events(event("destroy_integration_instance", forged))
        assert status == 403
    assert await store.get(IPID) is not None
    assert seen == []


async def test_events_without_an_instance_reach_the_hook_in_order(
    integration: ChannelIntegration, zendesk: ZendeskSide
) -> None:
    """Several events per request, in order; one that names no instance has no account."""
    seen: list[IntegrationEvent] = []

    @integration.on_event
    async def hook(event_: IntegrationEvent) -> None:
        seen.append(event_)

    status, _ = await zendesk.events(event("create_integration"), event("destroy_user", user_id=42))
    assert status == 200
    assert [(e.type_id, e.account, dict(e.data)) for e in seen] == [
        ("create_integration", None, {}),
        ("destroy_user", None, {"user_id": 42}),
    ]


async def test_an_event_callback_that_is_not_the_documented_shape_is_a_400(
    zendesk: ZendeskSide,
) -> None:
    """Not JSON, no events list, an event without type_id: 400 naming what is wrong."""
    for body, field in ((b"not json", "body"), (b"{}", "events"), (b'{"events":[{}]}', "type_id")):
        async with zendesk.session.post(f"{zendesk.url}/event_callback", data=body) as response:
            assert response.status == 400
            assert field in (await response.json())["description"]


async def test_a_failing_event_hook_is_logged_and_the_other_events_go_on(
    integration: ChannelIntegration, zendesk: ZendeskSide, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook's exception is logged; the next event of the request still reaches it."""
    seen: list[str] = []

    @integration.on_event
    async def hook(event_: IntegrationEvent) -> None:
        seen.append(event_.type_id)
        if event_.type_id == "create_integration":
            raise RuntimeError("hook bug")

    status, _ = await zendesk.events(event("create_integration"), event("destroy_user"))
    assert status == 200
    assert seen == ["create_integration", "destroy_user"]
    assert "the event hook failed" in caplog.text


async def test_calls_log_no_token_secret_or_metadata(
    integration: ChannelIntegration, zendesk: ZendeskSide, caplog: pytest.LogCaptureFixture
) -> None:
    """A channelback, a crash, a refused pull and events leave no secret in the logs."""
    caplog.set_level(logging.DEBUG)

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        raise RuntimeError("boom")

    @integration.pull
    async def pull(request: PullRequest) -> PullResponse:
        raise AssertionError("not reached")

    installed = await zendesk.install()
    await zendesk.channelback(installed.metadata)
    await zendesk.pull(Signer(OTHER_SECRET).metadata(IPID))
    await zendesk.events(event("deactivate_integration_instance", installed.metadata))
    for secret in (TOKEN, SECRET, installed.metadata, TYPED["api_key"]):
        assert secret not in caplog.text
