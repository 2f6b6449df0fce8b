"""Two-way, end to end: the emulator plays Zendesk's side toward a real `ChannelIntegration`
served over TCP; posts go in through a `PushPool`, agents answer through the channelback, and
the ticket behind each pushed resource is learnt from Zendesk's events (`ticket_of`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp
import attrs
import pytest
from aiohttp import web

from anychannel_async import (
    AccountStore,
    AnyChannelClient,
    AuthenticationError,
    ConfigurationError,
    ExternalResource,
    InactiveAccountError,
    PushPipeline,
    PushPool,
    StatusCode,
    TicketLedger,
    TicketUnknownError,
    UnknownAccountError,
)
from anychannel_async.integration import (
    ChannelbackFailed,
    ChannelbackRequest,
    ChannelIntegration,
    PullRequest,
    PullResponse,
)
from anychannel_async.testing import (
    ChannelbackFault,
    Instance,
    IntegrationCallError,
    ZendeskEmulator,
)

from .conftest import FAST_RETRY, IPID, resource, wait_until
from .integration_support import SECRET


@attrs.define
class Origin:
    """The origin network: what the integration posted there, and what it will hand a pull."""

    #: (external id, message, parent id) of each message posted by a channelback, in order.
    posted: list[tuple[str, str, str | None]] = attrs.field(factory=list)
    inbox: list[ExternalResource] = attrs.field(factory=list)
    #: Channelbacks to fail with a crash (a 500) before posting, then to serve.
    crash_next: int = 0


@attrs.frozen
class TwoWay:
    emulator: ZendeskEmulator
    integration: ChannelIntegration
    store: AccountStore
    pool: PushPool
    ledger: TicketLedger
    origin: Origin
    manifest_url: str


def build_integration(
    store: AccountStore, emulator: ZendeskEmulator, base_url: str, ledger: TicketLedger
) -> tuple[ChannelIntegration, Origin]:
    origin = Origin()
    integration = ChannelIntegration(
        name="Acme Social",
        integration_id="com.acme.social",
        base_url=base_url,
        secret=SECRET,
        accounts=store,
        admin_fields={"handle": "Social handle"},
        zendesk_url=emulator.base_url,
        timeout=5.0,
        tickets=ledger,
    )

    @integration.channelback
    async def channelback(request: ChannelbackRequest) -> str:
        if request.message.startswith("refuse"):
            raise ChannelbackFailed("the network refuses this reply", status=422)
        if origin.crash_next:
            origin.crash_next -= 1
            raise RuntimeError("the origin network is down")
        external_id = f"out-{len(origin.posted) + 1}"
        origin.posted.append((external_id, request.message, request.parent_id))
        return external_id

    @integration.pull
    async def pull(request: PullRequest) -> PullResponse:
        taken, origin.inbox[:] = list(origin.inbox), []
        pulled = int(request.state or "0") + len(taken)
        return PullResponse(taken, state=str(pulled))

    return integration, origin


@pytest.fixture
async def two_way(store: AccountStore, emulator: ZendeskEmulator) -> AsyncIterator[TwoWay]:
    ledger = TicketLedger()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        integration, origin = build_integration(store, emulator, base_url, ledger)
        runner = web.AppRunner(integration.web_app(), access_log=None)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            async with PushPool(store, tickets=ledger, max_latency=0.005, retry=FAST_RETRY) as pool:
                yield TwoWay(
                    emulator, integration, store, pool, ledger, origin, f"{base_url}/manifest.json"
                )
                await emulator.settle()
        finally:
            await runner.cleanup()


async def install(world: TwoWay, handle: str = "@acme", **extra: str) -> Instance:
    return await world.emulator.install(
        world.manifest_url, subdomain="acme", name=f"Acme {handle}", settings={"handle": handle}
    )


# -- install -----------------------------------------------------------------------------------


async def test_install_drives_the_admin_ui_and_stores_an_account_that_pushes(
    two_way: TwoWay,
) -> None:
    """install reads the manifest, fills in and saves the admin form as a browser would, and
    follows the page back: the integration stores the account with what was typed, the
    emulator holds its metadata, and the pool pushes with its token."""
    instance = await install(two_way)
    account = await two_way.store.get(instance.instance_push_id)
    assert account is not None
    assert account.settings == {"handle": "@acme"}
    assert account.name == "Acme @acme"
    assert account.token == instance.token
    assert instance.metadata
    assert two_way.emulator.instance(instance.instance_push_id) == instance
    result = await two_way.pool.push(instance.instance_push_id, resource("post-1"))
    assert result.code is StatusCode.SUCCESS
    ticket = two_way.emulator.ticket_for("post-1")
    assert ticket is not None
    assert ticket.instance_push_id == instance.instance_push_id


async def test_install_tells_the_integration_of_the_new_instance(two_way: TwoWay) -> None:
    """A create_integration_instance event reaches the integration, with metadata it verifies."""
    seen: list[str | None] = []

    @two_way.integration.on_event
    async def hook(event: object) -> None:
        seen.append(getattr(event, "instance_push_id", None))

    instance = await install(two_way)
    (callback,) = two_way.emulator.event_callbacks
    assert callback.type_ids == ("create_integration_instance",)
    assert callback.status == 200
    assert seen == [instance.instance_push_id]


async def test_two_installs_are_two_accounts(two_way: TwoWay) -> None:
    """Each install gets its own instance push id and token."""
    first = await install(two_way, "@one")
    second = await install(two_way, "@two")
    assert first.instance_push_id != second.instance_push_id
    assert first.token != second.token
    assert [i.instance_push_id for i in two_way.emulator.instances] == [
        first.instance_push_id,
        second.instance_push_id,
    ]


async def test_an_install_asking_a_field_the_form_lacks_fails_and_leaves_no_account(
    two_way: TwoWay,
) -> None:
    """A settings key the admin form does not ask is an IntegrationCallError naming it; the
    half-made instance's token is not accepted afterwards."""
    with pytest.raises(IntegrationCallError, match="asks no api_key") as caught:
        await two_way.emulator.install(two_way.manifest_url, settings={"api_key": "k"})
    assert isinstance(caught.value, IntegrationCallError)
    assert two_way.emulator.instances == []
    assert await two_way.store.list() == []


async def test_an_install_from_a_manifest_that_is_none_fails(two_way: TwoWay) -> None:
    """A URL that serves no manifest is an IntegrationCallError, not an aiohttp error."""
    with pytest.raises(IntegrationCallError, match="manifest"):
        await two_way.emulator.install(two_way.manifest_url.replace("manifest.json", "nothing"))


async def test_an_instance_shows_neither_its_token_nor_its_metadata(two_way: TwoWay) -> None:
    """repr(Instance) holds no secret."""
    instance = await install(two_way)
    assert instance.token not in repr(instance)
    assert instance.metadata not in repr(instance)


# -- the ticket behind each result ---------------------------------------------------------------


async def test_ticket_of_names_the_ticket_and_comment_each_resource_became(
    two_way: TwoWay,
) -> None:
    """The push carries a request id; Zendesk's resources_created_from_external_ids event for
    it reaches the integration, and ticket_of answers which ticket and comment each became."""
    instance = await install(two_way)
    ipid = instance.instance_push_id
    await two_way.pool.push(ipid, resource("post-1"))
    await two_way.pool.push(ipid, resource("reply-1", parent_id="post-1"))
    opened = await two_way.pool.ticket_of(ipid, "post-1", timeout=10)
    replied = await two_way.pool.ticket_of(ipid, "reply-1", timeout=10)
    ticket = two_way.emulator.ticket_for("post-1")
    assert ticket is not None
    assert (opened.ticket_id, replied.ticket_id) == (ticket.id, ticket.id)
    assert [opened.comment_id, replied.comment_id] == [c.id for c in ticket.comments]
    assert (opened.kind, replied.kind) == ("comment_on_new_ticket", "comment_on_existing_ticket")
    requests = [r for r in two_way.emulator.requests if r.path.endswith("/push")]
    assert opened.request_id == requests[0].request_id
    assert len(opened.request_id) == 32


async def test_ticket_of_tells_the_accounts_apart(two_way: TwoWay) -> None:
    """Two accounts pushing the same external id get their own tickets."""
    first, second = await install(two_way, "@one"), await install(two_way, "@two")
    for instance in (first, second):
        await two_way.pool.push(instance.instance_push_id, resource("post-1"))
    one = await two_way.pool.ticket_of(first.instance_push_id, "post-1", timeout=10)
    two = await two_way.pool.ticket_of(second.instance_push_id, "post-1", timeout=10)
    assert one.ticket_id != two.ticket_id


async def test_ticket_of_a_resource_no_event_names_raises_ticket_unknown(two_way: TwoWay) -> None:
    """No event, no answer: after its timeout, ticket_of raises TicketUnknownError (an
    AnyChannelError), never asyncio's TimeoutError."""
    instance = await install(two_way)
    with pytest.raises(TicketUnknownError) as caught:
        await two_way.pool.ticket_of(instance.instance_push_id, "never-pushed", timeout=0.05)
    assert not isinstance(caught.value, TimeoutError)
    assert caught.value.external_id == "never-pushed"


async def test_a_forged_event_places_nothing(two_way: TwoWay) -> None:
    """Zendesk signs nothing: an event naming a request id the ledger never issued is ignored."""
    instance = await install(two_way)
    event = {
        "type_id": "resources_created_from_external_ids",
        "data": {
            "request_id": "f" * 32,
            "resource_events": [
                {"type_id": "comment_on_new_ticket", "external_id": "post-1", "ticket_id": 666}
            ],
        },
    }
    callback = f"{two_way.integration.base_url}/event_callback"
    async with (
        aiohttp.ClientSession() as session,
        session.post(callback, data=json.dumps({"events": [event]})) as response,
    ):
        assert response.status == 200
    assert two_way.ledger.known(instance.instance_push_id, "post-1") is None


async def test_a_pool_without_a_ledger_refuses_ticket_of(store: AccountStore) -> None:
    """ticket_of needs tickets=TicketLedger(): a ConfigurationError says so."""
    async with PushPool(store) as pool:
        with pytest.raises(ConfigurationError, match="TicketLedger"):
            await pool.ticket_of("any", "post-1")


# -- agents answer -----------------------------------------------------------------------------


async def test_an_agent_reply_goes_out_through_the_channelback(two_way: TwoWay) -> None:
    """agent_reply posts the channelback with parent_id the ticket's latest external id; the
    external id answered becomes the new comment's."""
    instance = await install(two_way)
    ipid = instance.instance_push_id
    await two_way.pool.push(ipid, resource("post-1"))
    await two_way.pool.push(ipid, resource("reply-1", parent_id="post-1"))
    ticket = two_way.emulator.ticket_for("post-1")
    assert ticket is not None
    reply = await two_way.emulator.agent_reply(ticket.id, "We are on it")
    assert two_way.origin.posted == [("out-1", "We are on it", "reply-1")]
    assert (reply.external_id, reply.tries) == ("out-1", 1)
    after = two_way.emulator.ticket_for("out-1")
    assert after is not None
    assert after.id == ticket.id
    assert after.comments[-1].by_agent
    assert after.comments[-1].id == reply.comment_id


async def test_an_origin_reply_to_an_agent_reply_lands_on_the_same_ticket(
    two_way: TwoWay,
) -> None:
    """The agent's reply's external id is the ticket's from then on: a reply to it threads
    there, and pushing it back is already_imported."""
    instance = await install(two_way)
    ipid = instance.instance_push_id
    await two_way.pool.push(ipid, resource("post-1"))
    ticket = two_way.emulator.ticket_for("post-1")
    assert ticket is not None
    reply = await two_way.emulator.agent_reply(ticket.id, "How can we help?")
    await two_way.pool.push(ipid, resource("reply-2", parent_id=reply.external_id))
    again = await two_way.pool.push(ipid, resource(reply.external_id, "How can we help?"))
    assert again.code is StatusCode.ALREADY_IMPORTED
    where = await two_way.pool.ticket_of(ipid, "reply-2", timeout=10)
    assert where.ticket_id == ticket.id


async def test_a_lost_channelback_answer_is_repeated_and_posted_once(two_way: TwoWay) -> None:
    """After a network error the emulator repeats the channelback with the same
    request_unique_identifier: the integration answers the repeat with the first answer, and
    the origin gets the reply once."""
    instance = await install(two_way)
    await two_way.pool.push(instance.instance_push_id, resource("post-1"))
    ticket = two_way.emulator.ticket_for("post-1")
    assert ticket is not None
    two_way.emulator.script_channelback(ChannelbackFault.TIMEOUT, ChannelbackFault.TIMEOUT)
    reply = await two_way.emulator.agent_reply(ticket.id, "Once only")
    assert reply.tries == 3
    assert two_way.origin.posted == [("out-1", "Once only", "post-1")]
    assert reply.external_id == "out-1"


async def test_a_channelback_5xx_is_repeated_until_it_is_answered(two_way: TwoWay) -> None:
    """A 500 from the integration (its handler crashed) is repeated; the repeat runs the
    handler again and its answer is the comment's."""
    instance = await install(two_way)
    await two_way.pool.push(instance.instance_push_id, resource("post-1"))
    ticket = two_way.emulator.ticket_for("post-1")
    assert ticket is not None
    two_way.origin.crash_next = 1
    with caplog_quiet():
        reply = await two_way.emulator.agent_reply(ticket.id, "Second time lucky")
    assert reply.tries == 2
    assert two_way.origin.posted == [("out-1", "Second time lucky", "post-1")]


async def test_a_channelback_without_an_answer_in_its_tries_fails(two_way: TwoWay) -> None:
    """Tries used up (a proxy's 502 each time): IntegrationCallError, and no comment."""
    instance = await install(two_way)
    await two_way.pool.push(instance.instance_push_id, resource("post-1"))
    ticket = two_way.emulator.ticket_for("post-1")
    assert ticket is not None
    two_way.emulator.script_channelback(*[ChannelbackFault.BAD_GATEWAY] * 3)
    with pytest.raises(IntegrationCallError, match="3 tries"):
        await two_way.emulator.agent_reply(ticket.id, "Lost")
    assert len(two_way.emulator.tickets[0].comments) == 1
    assert two_way.origin.posted == []


async def test_a_refused_channelback_raises_with_its_status(two_way: TwoWay) -> None:
    """ChannelbackFailed in the integration is a 4xx the emulator does not repeat."""
    instance = await install(two_way)
    await two_way.pool.push(instance.instance_push_id, resource("post-1"))
    ticket = two_way.emulator.ticket_for("post-1")
    assert ticket is not None
    with pytest.raises(IntegrationCallError, match="refuses this reply") as caught:
        await two_way.emulator.agent_reply(ticket.id, "refuse me")
    assert caught.value.status == 422


def state_of(emulator: ZendeskEmulator, instance_push_id: str) -> str | None:
    instance = emulator.instance(instance_push_id)
    assert instance is not None
    return instance.state


# -- pull mode -----------------------------------------------------------------------------------


async def test_pull_imports_what_the_integration_answers_and_keeps_its_state(
    two_way: TwoWay,
) -> None:
    """pull posts metadata and state to pull_url, imports the resources answered as a push
    would, and keeps the answer's state for the next pull."""
    instance = await install(two_way)
    ipid = instance.instance_push_id
    two_way.origin.inbox.extend(
        [resource("dm-1", thread_id="t1"), resource("dm-2", thread_id="t1")]
    )
    assert await two_way.emulator.pull(ipid) == {"dm-1": "success", "dm-2": "success"}
    ticket = two_way.emulator.ticket_for("dm-1")
    assert ticket is not None
    assert [c.external_id for c in ticket.comments] == ["dm-1", "dm-2"]
    assert state_of(two_way.emulator, ipid) == "2"
    two_way.origin.inbox.append(resource("dm-3", thread_id="t1"))
    await two_way.emulator.pull(ipid)
    assert state_of(two_way.emulator, ipid) == "3"


async def test_poll_pulls_every_n_seconds(two_way: TwoWay) -> None:
    """poll(every=N) pulls on its own until stopped."""
    instance = await install(two_way)
    await two_way.emulator.poll(instance.instance_push_id, every=0.01)
    two_way.origin.inbox.append(resource("post-a"))
    await wait_until(lambda: two_way.emulator.ticket_for("post-a") is not None)
    two_way.origin.inbox.append(resource("post-b"))
    await wait_until(lambda: two_way.emulator.ticket_for("post-b") is not None)
    await two_way.emulator.stop_polling(instance.instance_push_id)


# -- uninstall, deactivate -----------------------------------------------------------------------


async def test_uninstall_removes_the_account_and_its_pushes_are_refused(two_way: TwoWay) -> None:
    """After an uninstall the integration removed the account (destroy event): the pool's
    submit raises UnknownAccountError, even with the account's pipeline open; and the old
    token no longer pushes at Zendesk."""
    instance = await install(two_way)
    ipid = instance.instance_push_id
    await two_way.pool.push(ipid, resource("post-1"))  # the pipeline is open
    await two_way.emulator.uninstall(ipid)
    assert await two_way.store.get(ipid) is None
    assert two_way.emulator.event_callbacks[-1].type_ids == ("destroy_integration_instance",)
    with pytest.raises(UnknownAccountError):
        await two_way.pool.submit(ipid, resource("post-2"))
    async with AnyChannelClient(
        token=instance.token, base_url=two_way.emulator.base_url, retry=FAST_RETRY
    ) as client:
        with pytest.raises(AuthenticationError):
            await client.push(ipid, [resource("post-3")])


async def test_deactivate_and_activate_reach_the_store(two_way: TwoWay) -> None:
    """A deactivation (by an error) makes the account inactive: its pushes are refused with
    InactiveAccountError; an activation lets them go again."""
    instance = await install(two_way)
    ipid = instance.instance_push_id
    await two_way.emulator.deactivate(ipid, error="token revoked")
    with pytest.raises(InactiveAccountError):
        await two_way.pool.submit(ipid, resource("post-1"))
    await two_way.emulator.activate(ipid)
    assert (await two_way.pool.push(ipid, resource("post-1"))).code is StatusCode.SUCCESS
    # The instance's events only: the push's own resources_created_from_external_ids event
    # is delivered after it, and may or may not be in by now.
    kinds = [c.type_ids[0] for c in two_way.emulator.event_callbacks]
    assert [kind for kind in kinds if kind.endswith("_integration_instance")] == [
        "create_integration_instance",
        "deactivate_integration_instance",
        "activate_integration_instance",
    ]


async def test_a_reset_forgets_installed_instances(two_way: TwoWay) -> None:
    """The emulator's reset forgets instances and their tokens, as it forgets tickets."""
    instance = await install(two_way)
    two_way.emulator.reset()
    assert two_way.emulator.instances == []
    assert two_way.emulator.event_callbacks == []
    with pytest.raises(ValueError, match="install"):
        await two_way.emulator.pull(instance.instance_push_id)


# -- the ledger alone ----------------------------------------------------------------------------


def created(request_id: str, *external_ids: str, ticket_id: int = 7) -> dict[str, object]:
    return {
        "request_id": request_id,
        "resource_events": [
            {
                "type_id": "comment_on_new_ticket",
                "external_id": external_id,
                "ticket_id": ticket_id,
                "comment_id": 100 + n,
            }
            for n, external_id in enumerate(external_ids)
        ],
    }


async def test_the_ledger_forgets_the_least_recently_used_beyond_its_bound() -> None:
    """max_entries bounds what the ledger holds: the oldest ticket is forgotten first."""
    ledger = TicketLedger(max_entries=2)
    request_id = ledger.issue("acct")
    assert ledger.created(created(request_id, "a", "b", "c")) == 3
    assert ledger.known("acct", "a") is None
    assert ledger.known("acct", "b") is not None
    assert ledger.known("acct", "c") is not None


async def test_the_ledger_forgets_requests_beyond_its_bound() -> None:
    """A request pushed so long ago that max_entries newer ones followed is no longer known:
    its event places nothing."""
    ledger = TicketLedger(max_entries=2)
    old = ledger.issue("acct")
    ledger.issue("acct")
    ledger.issue("acct")
    assert ledger.created(created(old, "a")) == 0


async def test_the_ledger_drops_an_event_verified_for_another_account() -> None:
    """An event whose verified instance is not the one the request was pushed for places
    nothing."""
    ledger = TicketLedger()
    request_id = ledger.issue("acct")
    assert ledger.created(created(request_id, "a"), instance_push_id="other") == 0
    assert ledger.created(created(request_id, "a"), instance_push_id="acct") == 1


async def test_a_waiter_is_answered_by_an_event_that_comes_later() -> None:
    """ticket_of waits for the event, and gets its answer when it comes."""
    ledger = TicketLedger()
    request_id = ledger.issue("acct")
    waiting = asyncio.ensure_future(ledger.ticket_of("acct", "a", timeout=10))
    await asyncio.sleep(0)
    ledger.created(created(request_id, "a", ticket_id=42))
    assert (await waiting).ticket_id == 42


async def test_a_waiter_is_answered_by_an_event_from_another_thread() -> None:
    """The integration may serve on another thread's loop: its event still wakes the waiter."""
    ledger = TicketLedger()
    request_id = ledger.issue("acct")
    waiting = asyncio.ensure_future(ledger.ticket_of("acct", "a", timeout=10))
    await asyncio.sleep(0)
    await asyncio.to_thread(ledger.created, created(request_id, "a", ticket_id=43))
    assert (await waiting).ticket_id == 43


@pytest.mark.parametrize(
    "settings", [{"max_entries": 0}, {"max_entries": 1.5}, {"keep": 0}, {"keep": float("inf")}]
)
def test_the_ledger_s_settings_are_checked(settings: dict[str, object]) -> None:
    """A bound out of range is a ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        TicketLedger(**settings)  # type: ignore[arg-type]


@contextlib.contextmanager
def caplog_quiet() -> Iterator[None]:
    """The integration logs its handler's crash: expected here."""
    logger = logging.getLogger("anychannel_async.integration")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield None
    finally:
        logger.setLevel(level)


async def test_a_pipeline_given_a_ledger_pushes_with_the_request_ids_it_issued(
    emulator: ZendeskEmulator, client: AnyChannelClient
) -> None:
    """A PushPipeline takes tickets= too: each push request carries a request id the ledger
    issued, for the account it was pushed for."""
    ledger = TicketLedger()
    async with PushPipeline(client, IPID, tickets=ledger, max_latency=0.005) as pipeline:
        await pipeline.push(resource("post-1"))
    (request,) = [r for r in emulator.requests if r.path.endswith("/push")]
    assert request.request_id is not None
    assert ledger.created(created(request.request_id, "post-1")) == 1
    assert ledger.known(IPID, "post-1") is not None


async def test_no_secret_reaches_the_logs_or_an_error(
    two_way: TwoWay, caplog: pytest.LogCaptureFixture
) -> None:
    """Through install, push, events, channelback repeats, pull and uninstall, neither the
    instance's token nor its metadata is logged; an install that fails says neither."""
    caplog.set_level(logging.DEBUG)
    instance = await install(two_way)
    await two_way.pool.push(instance.instance_push_id, resource("post-1"))
    await two_way.pool.ticket_of(instance.instance_push_id, "post-1", timeout=10)
    ticket = two_way.emulator.ticket_for("post-1")
    assert ticket is not None
    two_way.emulator.script_channelback(ChannelbackFault.TIMEOUT)
    await two_way.emulator.agent_reply(ticket.id, "Hello")
    await two_way.emulator.pull(instance.instance_push_id)
    await two_way.emulator.uninstall(instance.instance_push_id)
    with pytest.raises(IntegrationCallError) as caught:
        await two_way.emulator.install(two_way.manifest_url, settings={"nope": "x"})
    text = caplog.text + str(caught.value) + repr(caught.value)
    assert instance.token not in text
    assert instance.metadata not in text
    assert SECRET not in text
