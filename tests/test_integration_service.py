"""The integration service's settings, signatures and secrets: checked at construction, never
shown."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import anychannel_async
from anychannel_async import Account, AccountStore, ConfigurationError
from anychannel_async.integration import (
    ChannelbackFailed,
    ChannelbackRequest,
    ChannelIntegration,
    IntegrationEvent,
    PullRequest,
    PullResponse,
)
from anychannel_async.integration._signing import Signer

from .integration_support import OTHER_SECRET, SECRET, TOKEN, TYPED


def settings(**overrides: object) -> dict[str, object]:
    found: dict[str, object] = {
        "name": "Acme Social",
        "integration_id": "com.acme.social",
        "base_url": "https://bridge.example.com",
        "secret": SECRET,
        "accounts": AccountStore("unused.sqlite"),
    }
    found.update(overrides)
    return found


@pytest.mark.parametrize("secret", ["s" * 31, b"\x00" * 31, "", "é" * 15])
def test_a_secret_shorter_than_32_bytes_is_refused_without_showing_it(secret: str | bytes) -> None:
    """The secret signs everything: under 32 bytes is a ConfigurationError that does not quote
    it."""
    with pytest.raises(ConfigurationError, match="at least 32 bytes") as refused:
        ChannelIntegration(**settings(secret=secret))  # type: ignore[arg-type]
    if secret:
        assert str(secret) not in str(refused.value)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"name": ""}, "name"),
        ({"integration_id": "x" * 512}, "integration_id"),
        ({"base_url": "http://bridge.example.com"}, "plain http"),
        ({"base_url": "https://b.example/" + "p" * 500}, "room for the routes"),
        ({"accounts": {}}, "AccountStore"),
        ({"admin_fields": {"signature": "Sign"}}, "admin_fields"),
        ({"admin_fields": {"1st": "First"}}, "admin_fields"),
        ({"admin_fields": {"handle\n": "Handle"}}, "admin_fields"),  # `$` matches before \n
        ({"zendesk_url": "ftp://{subdomain}.example"}, "http"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_settings_out_of_range_are_refused_at_construction(
    overrides: dict[str, object], says: str
) -> None:
    """Each bad setting is a ConfigurationError naming it, before anything runs."""
    with pytest.raises(ConfigurationError, match=says):
        ChannelIntegration(**settings(**overrides))  # type: ignore[arg-type]


def test_handlers_must_be_async_functions() -> None:
    """A plain function registered as a handler is refused at registration."""
    integration = ChannelIntegration(**settings())  # type: ignore[arg-type]

    def reply(request: ChannelbackRequest) -> str:
        return "x"

    with pytest.raises(ConfigurationError, match="async"):
        integration.channelback(reply)  # type: ignore[type-var]


def test_metadata_verifies_only_under_its_own_secret_and_holds_the_instance() -> None:
    """A signer reads back its own metadata; another secret's, an altered one, another
    version's and one longer than 5,000 characters name nothing."""
    signer = Signer(SECRET)
    metadata = signer.metadata("instance-1")
    assert len(metadata) <= 5000
    assert signer.instance_of(metadata) == "instance-1"
    assert Signer(OTHER_SECRET).instance_of(metadata) is None
    assert signer.instance_of("v2" + metadata[2:]) is None
    assert signer.instance_of(metadata + "A") is None
    assert signer.instance_of(metadata.replace(".", "..", 1)) is None
    assert signer.instance_of("v1." + "A" * 5000) is None
    assert signer.instance_of("v1.\udcff.x") is None


def test_reprs_show_no_secret_token_or_settings_value() -> None:
    """The integration, a signer, an account with settings and the requests built from it
    show neither the secret, the token, a setting's value nor file URLs."""
    account = Account("i-1", subdomain="acme", token=TOKEN, name="Acme", settings=TYPED)
    texts = [
        repr(ChannelIntegration(**settings())),  # type: ignore[arg-type]
        repr(Signer(SECRET)),
        repr(account),
        repr(
            ChannelbackRequest(
                account=account, message="hi", file_urls=["https://x.example/f?sig=abc"]
            )
        ),
        repr(PullRequest(account=account, state="cursor-secret")),
        repr(IntegrationEvent(type_id="destroy_integration_instance", account=account)),
    ]
    assert repr(account) == (
        "Account('i-1', subdomain='acme', token=<redacted>, name='Acme',"
        " settings=<api_key, handle>)"
    )
    for text in texts:
        for secret in (SECRET, TOKEN, TYPED["api_key"], "sig=abc", "cursor-secret"):
            assert secret not in text


def test_channelback_failed_is_a_4xx() -> None:
    """ChannelbackFailed takes a 4xx status (400 by default), nothing else."""
    assert ChannelbackFailed("no").status == 400
    with pytest.raises(ValueError, match="status"):
        ChannelbackFailed("no", status=500)


def test_a_pull_response_is_empty_by_default() -> None:
    """PullResponse() answers nothing new and keeps Zendesk's state."""
    assert PullResponse() == PullResponse([], state=None, metadata_needs_update=False)


def test_the_integration_package_sits_on_top_of_the_core_and_nothing_core_imports_it() -> None:
    """integration/ imports the core modules (never cli, testing or sources), and no core
    module imports it: the pool and the client know nothing of the other direction."""
    package = Path(anychannel_async.__file__).parent

    def imported(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        found = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        found |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        return found

    for path in (package / "integration").glob("*.py"):
        for module in imported(path):
            assert not module.startswith(
                ("anychannel_async.cli", "anychannel_async.testing", "anychannel_async.sources")
            ), f"{path.name} imports {module}"
    for path in package.glob("_*.py"):
        assert not any("integration" in module for module in imported(path)), path.name
