"""AnyChannelClient against the emulator over TCP: endpoints, errors, retries, secrecy."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from anychannel_async import (
    Account,
    AnyChannelClient,
    AnyChannelError,
    AuthenticationError,
    ClosedError,
    ConfigurationError,
    ProtocolError,
    RateLimitedError,
    RequestRejectedError,
    RetryPolicy,
    StatusCode,
    TransportError,
    __version__,
)
from anychannel_async.testing import Fault, Faults, ZendeskEmulator

from .conftest import FAST_RETRY, IPID, TOKEN, resource, wait_until


async def test_push_returns_results_in_input_order(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Each resource gets its own result, in the order it was sent."""
    results = await client.push(
        IPID, [resource("post"), resource("reply", parent_id="post"), resource("post")]
    )
    assert [(r.external_id, r.code) for r in results] == [
        ("post", StatusCode.SUCCESS),
        ("reply", StatusCode.SUCCESS),
        ("post", StatusCode.ALREADY_IMPORTED),
    ]
    ticket = emulator.ticket_for("post")
    assert ticket is not None
    assert [c.external_id for c in ticket.comments] == ["post", "reply"]


async def test_missing_parent_is_reported_with_its_id(client: AnyChannelClient) -> None:
    """A reply to an unknown parent comes back could_not_locate_parent with the parent's id."""
    [result] = await client.push(IPID, [resource("orphan", parent_id="nowhere")])
    assert result.code is StatusCode.COULD_NOT_LOCATE_PARENT
    assert result.description == "nowhere"
    assert not result.imported


async def test_push_of_nothing_sends_nothing(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """An empty push returns no results and makes no request."""
    assert await client.push(IPID, []) == []
    assert emulator.requests == []


async def test_requests_carry_the_user_agent(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Every request names the library and its version."""
    await client.validate_token(IPID)
    assert emulator.requests[0].user_agent == f"anychannel-async/{__version__}"


async def test_validate_token_accepts_a_good_token(client: AnyChannelClient) -> None:
    """validate_token returns without error for valid credentials."""
    await client.validate_token(IPID)


async def test_validate_token_refuses_a_bad_token_without_retrying(
    emulator: ZendeskEmulator,
) -> None:
    """A 401 raises AuthenticationError after exactly one request."""
    async with AnyChannelClient(
        token="wrong", base_url=emulator.base_url, retry=FAST_RETRY
    ) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.validate_token(IPID)
    assert info.value.status == 401
    assert len(emulator.requests) == 1


async def test_basic_auth_credentials_are_accepted() -> None:
    """An admin's (username, secret) pair authenticates as Basic credentials."""
    async with (
        ZendeskEmulator(accounts={IPID: ("admin@example.com/token", "api-secret")}) as emu,
        AnyChannelClient(
            basic_auth=("admin@example.com/token", "api-secret"), base_url=emu.base_url
        ) as client,
    ):
        await client.validate_token(IPID)
        [result] = await client.push(IPID, [resource("basic-1")])
    assert result.code is StatusCode.SUCCESS


async def test_report_channelback_error_is_recorded(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """report_channelback_error delivers the external id, description and request id."""
    await client.report_channelback_error(IPID, "cb-9", "HTML not supported", request_id="r-1")
    [reported] = emulator.reported_errors
    assert (reported.external_id, reported.description, reported.request_id) == (
        "cb-9",
        "HTML not supported",
        "r-1",
    )


async def test_server_errors_are_retried_until_success(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Two 503 answers, then success: the push succeeds on its third request."""
    emulator.script(Fault.SERVER_ERROR, Fault.SERVER_ERROR)
    [result] = await client.push(IPID, [resource("retry-1")])
    assert result.code is StatusCode.SUCCESS
    assert len(emulator.requests) == 3
    assert client.retries == 2


async def test_server_errors_beyond_the_tries_raise_transport_error(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """When every try gets a 5xx, TransportError carries the last status."""
    emulator.script(*[Fault.SERVER_ERROR] * FAST_RETRY.max_tries)
    with pytest.raises(TransportError) as info:
        await client.push(IPID, [resource("down-1")])
    assert info.value.status == 503
    assert len(emulator.requests) == FAST_RETRY.max_tries


async def test_no_try_starts_once_max_time_has_passed(emulator: ZendeskEmulator) -> None:
    """max_time counts from the first try: with none left, a 5xx is the last answer, however
    many tries max_tries would still allow."""
    emulator.script(Fault.SERVER_ERROR, Fault.SERVER_ERROR)
    async with AnyChannelClient(
        token=TOKEN,
        base_url=emulator.base_url,
        retry=RetryPolicy(initial_delay=0, max_tries=5, max_time=0),
    ) as client:
        with pytest.raises(TransportError) as info:
            await client.push(IPID, [resource("late-1")])
    assert info.value.status == 503
    assert len(emulator.requests) == 1
    assert client.retries == 0


# aiohttp's cookie jar keeps nothing an IP address sets: by name, the emulator's cookie is kept.
COOKIE = "__cfruid=abc123; Path=/; HttpOnly"


def by_name(emulator: ZendeskEmulator) -> str:
    return emulator.base_url.replace("127.0.0.1", "localhost")


async def test_the_clients_own_session_sends_no_cookie_back(emulator: ZendeskEmulator) -> None:
    """A cookie an answer sets (Cloudflare's, in front of Zendesk) is never sent back."""
    emulator.faults = Faults(set_cookie=COOKIE)
    async with AnyChannelClient(token=TOKEN, base_url=by_name(emulator)) as client:
        await client.push(IPID, [resource("cookie-1")])
        await client.push(IPID, [resource("cookie-2")])
    assert [r.cookie for r in emulator.requests] == [None, None]


async def test_a_session_given_keeps_its_own_cookie_jar(emulator: ZendeskEmulator) -> None:
    """A session of the user's own is used as it is: its jar sends the cookie back."""
    emulator.faults = Faults(set_cookie=COOKIE)
    async with (
        aiohttp.ClientSession() as session,
        AnyChannelClient(token=TOKEN, base_url=by_name(emulator), session=session) as client,
    ):
        await client.push(IPID, [resource("cookie-1")])
        await client.push(IPID, [resource("cookie-2")])
    assert [r.cookie for r in emulator.requests] == [None, "__cfruid=abc123"]


async def test_dropped_connection_is_retried(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A connection closed without an answer is a transport error worth retrying."""
    emulator.script(Fault.DROP)
    [result] = await client.push(IPID, [resource("drop-1")])
    assert result.code is StatusCode.SUCCESS
    assert emulator.import_count("drop-1") == 1


async def test_lost_answer_retry_yields_already_imported_and_no_duplicate(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """A push processed but answered 500 is retried: already_imported, one ticket only."""
    emulator.script(Fault.LOST_ANSWER)
    [result] = await client.push(IPID, [resource("lost-1")])
    assert result.code is StatusCode.ALREADY_IMPORTED
    assert result.imported
    assert emulator.import_count("lost-1") == 1
    assert len(emulator.tickets) == 1


async def test_rate_limit_waits_for_retry_after_before_any_request(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """After a 429, no request to the account (from any call) starts before Retry-After."""
    emulator.faults.retry_after = 1.0
    emulator.script(Fault.RATE_LIMITED)
    push = asyncio.create_task(client.push(IPID, [resource("rl-1")]))
    # Until the client has read the 429 (the emulator logs the request before it answers).
    await wait_until(lambda: client.pace.rate_limited == 1)
    await client.validate_token(IPID)
    [result] = await push
    assert result.code is StatusCode.SUCCESS
    first, *later = emulator.requests
    assert first.status == 429
    assert len(later) == 2
    assert all(request.at - first.at >= 1.0 for request in later)


async def test_rate_limit_beyond_the_tries_raises_rate_limited(emulator: ZendeskEmulator) -> None:
    """429 on every try raises RateLimitedError carrying Retry-After."""
    emulator.faults.retry_after = 0.1
    emulator.script(Fault.RATE_LIMITED, Fault.RATE_LIMITED)
    async with AnyChannelClient(
        token=TOKEN, base_url=emulator.base_url, retry=RetryPolicy(initial_delay=0, max_tries=2)
    ) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.push(IPID, [resource("rl-2")])
    assert info.value.retry_after == 1.0  # the emulator rounds Retry-After up to whole seconds


@pytest.mark.parametrize("fault", [Fault.GARBAGE, Fault.SHORT_RESULTS, Fault.WRONG_IDS])
async def test_answers_that_do_not_pair_raise_protocol_error(
    client: AnyChannelClient, emulator: ZendeskEmulator, fault: Fault
) -> None:
    """Garbage, a short results list or other ids raise ProtocolError, never a guessed pairing."""
    emulator.script(fault)
    with pytest.raises(ProtocolError):
        await client.push(IPID, [resource("p-1"), resource("p-2")])
    assert len(emulator.requests) == 1  # not retried: the same answer would come back


async def test_oversized_request_is_rejected_with_status_and_body(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """More resources than the server takes per request: RequestRejectedError(413)."""
    too_many = [resource(f"many-{i}") for i in range(emulator.max_resources_per_request + 1)]
    with pytest.raises(RequestRejectedError) as info:
        await client.push(IPID, too_many)
    assert info.value.status == 413
    assert "TooManyResources" in info.value.body
    assert len(emulator.requests) == 1


async def test_timeout_is_a_transport_error(emulator: ZendeskEmulator) -> None:
    """An answer slower than the timeout raises TransportError after the tries."""
    emulator.faults.latency = 0.5
    async with AnyChannelClient(
        token=TOKEN,
        base_url=emulator.base_url,
        timeout=0.1,
        retry=RetryPolicy(initial_delay=0, max_tries=2),
    ) as client:
        with pytest.raises(TransportError, match="no answer within"):
            await client.validate_token(IPID)


async def test_unreachable_server_is_a_transport_error() -> None:
    """A refused connection raises TransportError, not an aiohttp exception."""
    async with ZendeskEmulator() as emu:
        url = emu.base_url  # a port that was just free and is closed again below
    async with AnyChannelClient(
        token=TOKEN, base_url=url, retry=RetryPolicy(initial_delay=0, max_tries=2)
    ) as client:
        with pytest.raises(TransportError):
            await client.validate_token(IPID)


def fields_of(obj: object) -> dict[str, object]:
    """Every attribute an object holds (it has __slots__, no __dict__)."""
    names = [n for cls in type(obj).__mro__ for n in getattr(cls, "__slots__", ())]
    assert names
    return {name: getattr(obj, name) for name in names if hasattr(obj, name)}


async def test_token_never_appears_in_repr_errors_or_logs(
    emulator: ZendeskEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The credential is absent from the client's repr, every error message and every log."""
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    async with AnyChannelClient(token=TOKEN, base_url=emulator.base_url, retry=FAST_RETRY) as c:
        messages.append(repr(c))
        messages.append(repr(fields_of(c)))  # every attribute's repr, not only its own
        emulator.script(Fault.SERVER_ERROR, *[Fault.GARBAGE], *[Fault.SERVER_ERROR] * 4)
        for call in (
            c.push(IPID, [resource("s-1")]),
            c.push(IPID, [resource("s-2")]),
        ):
            with pytest.raises(AnyChannelError) as info:
                await call
            messages += [str(info.value), repr(info.value)]
    async with AnyChannelClient(token=TOKEN + "x", base_url=emulator.base_url) as wrong:
        with pytest.raises(AuthenticationError) as auth:
            await wrong.validate_token(IPID)
        messages += [str(auth.value), repr(auth.value), repr(wrong)]
    messages += [record.getMessage() for record in caplog.records]
    assert any("retrying" in m for m in messages)  # the logs were really captured
    for text in messages:
        assert TOKEN not in text


async def test_basic_auth_secret_is_never_shown(emulator: ZendeskEmulator) -> None:
    """Basic credentials stay out of the repr too."""
    client = AnyChannelClient(basic_auth=("me/token", "s3cret-value"), base_url=emulator.base_url)
    assert "s3cret-value" not in repr(client) + repr(fields_of(client))
    await client.close()


def test_plain_http_to_a_remote_host_is_refused() -> None:
    """A token must not cross a network in clear text."""
    with pytest.raises(ValueError, match="plain http"):
        AnyChannelClient(token=TOKEN, base_url="http://example.com")


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "https://x.io"]
)
def test_https_and_loopback_http_are_accepted(base_url: str) -> None:
    """https anywhere, and http to loopback (tests, the emulator), are fine."""
    assert AnyChannelClient(token=TOKEN, base_url=base_url).base_url.startswith("http")


def test_subdomain_builds_the_zendesk_url() -> None:
    """subdomain= means https://{subdomain}.zendesk.com."""
    assert AnyChannelClient(token=TOKEN, subdomain="acme").base_url == "https://acme.zendesk.com"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subdomain": "acme"},  # no credentials
        {"token": TOKEN, "basic_auth": ("a", "b"), "subdomain": "acme"},  # both credentials
        {"token": TOKEN},  # no address
        {"token": TOKEN, "subdomain": "acme", "base_url": "https://a.io"},  # both addresses
        {"token": TOKEN, "subdomain": "not a subdomain"},
        {"token": TOKEN, "subdomain": "acme\n"},  # `$` alone would match before the newline
        # Unicode letters that IGNORECASE folds into [a-z] ('\u017f' long s, '\u212a' Kelvin
        # sign): the URL's host (IDNA) would read 'support', 'acmek', another account's.
        {"token": TOKEN, "subdomain": "\u017fupport"},
        {"token": TOKEN, "subdomain": "acme\u212a"},
        {"token": TOKEN, "subdomain": "acme", "timeout": 0},
    ],
)
def test_bad_settings_are_refused_at_construction(kwargs: dict[str, object]) -> None:
    """Exactly one credential and one address, valid settings, or ValueError at once."""
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        AnyChannelClient(**kwargs)  # type: ignore[arg-type]


async def test_a_session_passed_in_is_used_and_left_open(emulator: ZendeskEmulator) -> None:
    """The caller's own aiohttp session serves the requests and is not closed by the client."""
    async with aiohttp.ClientSession() as session:
        async with AnyChannelClient(
            token=TOKEN, base_url=emulator.base_url, session=session
        ) as client:
            await client.validate_token(IPID)
        assert not session.closed


async def test_a_closed_client_refuses_requests(client: AnyChannelClient) -> None:
    """After close(), a call raises ClosedError (an AnyChannelError)."""
    await client.close()
    with pytest.raises(ClosedError):
        await client.validate_token(IPID)


async def test_client_accepts_201_as_an_answer(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Any 2xx with a valid body is an answer (production integrations see 201)."""
    # The emulator answers 200; the client's rule is 2xx, exercised here through validate.
    await client.validate_token(IPID)
    assert emulator.requests[-1].status == 200


async def test_faults_object_can_be_swapped_while_running(
    client: AnyChannelClient, emulator: ZendeskEmulator
) -> None:
    """Random faults from a seeded Faults are absorbed by retries."""
    emulator.faults = Faults(seed=7, server_error_rate=0.3)
    results = await client.push(IPID, [resource(f"f-{i}") for i in range(20)])
    assert all(r.imported for r in results)


@pytest.mark.parametrize(
    "token",
    ["SECRET\r\nX-Injected: yes", "SECRET\n", "SECRET\x00tok", "SECRET\x7f", "SECRET tok"],
)
def test_a_token_with_control_characters_is_refused_without_showing_it(token: str) -> None:
    """CR/LF (header injection), other control characters and whitespace are refused at
    construction, not by aiohttp on every request; the message does not hold the token."""
    with pytest.raises(ValueError, match="control characters") as exc:
        AnyChannelClient(token=token, base_url="https://x.io")
    assert "SECRET" not in str(exc.value)


@pytest.mark.parametrize(
    "basic_auth", [("me/token", "SECRET\r\n"), ("me\n/token", "SECRET"), ("me", "SE\x00CRET")]
)
def test_basic_auth_with_control_characters_is_refused_without_showing_it(
    basic_auth: tuple[str, str],
) -> None:
    """Each part of basic_auth is checked the same way."""
    with pytest.raises(ValueError, match="control characters") as exc:
        AnyChannelClient(basic_auth=basic_auth, base_url="https://x.io")
    assert "SECRET" not in str(exc.value)
    assert "CRET" not in str(exc.value)


async def test_a_non_ascii_token_is_sent_and_refused_by_the_server(
    emulator: ZendeskEmulator,
) -> None:
    """Printable non-control characters are not refused locally: the server decides."""
    async with AnyChannelClient(token="tok\u00e9n", base_url=emulator.base_url) as client:
        with pytest.raises(AuthenticationError):
            await client.validate_token(IPID)


async def test_a_closed_session_passed_in_raises_closed_error(emulator: ZendeskEmulator) -> None:
    """A caller's session closed by its owner is ClosedError (an AnyChannelError), not
    aiohttp's bare RuntimeError."""
    session = aiohttp.ClientSession()
    await session.close()
    async with AnyChannelClient(token=TOKEN, base_url=emulator.base_url, session=session) as c:
        with pytest.raises(ClosedError, match="session"):
            await c.push(IPID, [resource("closed-session")])
        with pytest.raises(ClosedError):
            await c.validate_token(IPID)
    assert emulator.requests == []


@pytest.mark.parametrize(
    "base_url",
    [
        "https://admin:hunter2@acme.zendesk.com",
        "https://admin@acme.zendesk.com",
        "https://:hunter2@acme.zendesk.com",
        "http://admin:hunter2@127.0.0.1:8080",
        "http://admin:hunter2@example.com",  # plain http too: credentials are said first
        "ftp://admin:hunter2@example.com",
        "https://admin:hunter2@acme.zendesk.com:99999",  # not even a valid URL
    ],
)
def test_a_base_url_with_credentials_is_refused_without_echoing_them(base_url: str) -> None:
    """Credentials in base_url would show in repr, base_url and errors: refused, and the
    message does not repeat them."""
    with pytest.raises(ValueError) as exc:  # noqa: PT011 - message checked below
        AnyChannelClient(token=TOKEN, base_url=base_url)
    assert "hunter2" not in str(exc.value)
    assert "admin" not in str(exc.value)


def test_a_base_url_with_credentials_names_the_fix() -> None:
    """The message says where credentials go instead."""
    with pytest.raises(ValueError, match="must not contain credentials; use token or basic_auth"):
        AnyChannelClient(token=TOKEN, base_url="https://admin:pw@acme.zendesk.com")


def test_an_at_sign_outside_the_authority_is_not_credentials() -> None:
    """'@' in a path is part of the URL, not a user."""
    url = "https://acme.zendesk.com/x@y"
    assert AnyChannelClient(token=TOKEN, base_url=url).base_url == url


@pytest.mark.parametrize(
    "base_url",
    ["https://acme.zendesk.com/zd?q=a@b", "https://acme.zendesk.com?key=1", "https://x.io/zd#top"],
)
def test_a_base_url_with_a_query_or_fragment_is_refused(base_url: str) -> None:
    """Requests go to the base URL's path followed by a route: a query or a fragment would be
    dropped from every one, so it is refused at once, naming base_url."""
    with pytest.raises(ConfigurationError, match="base_url must not have a query or fragment"):
        AnyChannelClient(token=TOKEN, base_url=base_url)
    with pytest.raises(ConfigurationError, match="base_url must not have a query or fragment"):
        Account("x", base_url=base_url, token=TOKEN)


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080/z\td",  # yarl drops a tab or a newline: requests went to /zd
        "https://acme.zendesk.com/zd\n",
        "https://acme.zendesk.com/\x1b[2J",  # shown as given by `accounts list`: the terminal
        "https://acme.zendesk.com/zd\x85",
    ],
)
def test_a_base_url_with_control_characters_is_refused_without_echoing_it(base_url: str) -> None:
    """A base URL's path is where requests go and what ``accounts`` shows: one with a control
    character is refused (no path requested may differ from the path given, no escape
    sequence reach a terminal), and the message does not repeat it."""
    for make in (
        lambda: AnyChannelClient(token=TOKEN, base_url=base_url),
        lambda: Account("x", base_url=base_url, token=TOKEN),
    ):
        with pytest.raises(ConfigurationError, match="base_url must not contain control") as exc:
            make()
        assert base_url not in str(exc.value)
