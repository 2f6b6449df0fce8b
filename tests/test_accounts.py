"""Accounts: `Account` values, the SQLite `AccountStore`, and the `accounts` commands."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import attrs
import pytest

from anychannel_async import (
    Account,
    AccountStore,
    AccountStoreError,
    AnyChannelError,
    ClosedError,
    ConfigurationError,
    UnknownAccountError,
    ValidationError,
)
from anychannel_async.testing import ZendeskEmulator
from tests.conftest import IPID, TOKEN, cli

# Distinctive, so a leak into any output is easy to spot.
SECRET = "s3cret-token-never-shown"


def acme(instance_push_id: str = "acme-1", token: str = SECRET) -> Account:
    """An account on a Zendesk subdomain with a bearer token."""
    return Account(instance_push_id, subdomain="acme", token=token)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def stored(path: Path, *accounts: Account) -> None:
    """Put accounts in the store at path, from blocking code."""

    async def put() -> None:
        async with AccountStore(path) as store:
            for account in accounts:
                await store.put(account)

    asyncio.run(put())


def read(path: Path) -> list[Account]:
    """The accounts the store at path holds, from blocking code."""

    async def listing() -> list[Account]:
        async with AccountStore(path) as store:
            return await store.list()

    return asyncio.run(listing())


# -- Account ------------------------------------------------------------------------------


def test_account_reads_back_what_was_given_and_derives_the_base_url() -> None:
    """A subdomain gives https://SUBDOMAIN.zendesk.com; every field reads back as given."""
    account = acme()
    assert account.instance_push_id == "acme-1"
    assert account.subdomain == "acme"
    assert account.base_url == "https://acme.zendesk.com"
    assert account.token == SECRET
    assert account.basic_auth is None


def test_account_reads_back_a_base_url_as_given() -> None:
    """A base_url is kept exactly as written, without subdomain."""
    account = Account("x", base_url="http://127.0.0.1:8080/", basic_auth=("ada@acme.com", SECRET))
    assert account.base_url == "http://127.0.0.1:8080/"
    assert account.subdomain is None
    assert account.basic_auth == ("ada@acme.com", SECRET)


def test_account_keeps_basic_auth_given_as_a_list_as_a_tuple() -> None:
    """A list (as JSON gives it) becomes a tuple, so the account stays hashable."""
    account = Account("x", subdomain="acme", basic_auth=["ada@acme.com", SECRET])
    assert account.basic_auth == ("ada@acme.com", SECRET)
    assert hash(account) == hash(
        Account("x", subdomain="acme", basic_auth=("ada@acme.com", SECRET))
    )


def test_account_is_a_frozen_value() -> None:
    """Accounts with the same fields are equal, and none can be changed."""
    assert acme() == acme()
    assert acme() != acme(token="another")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        acme().token = "another"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("subdomain", "base_url"),
    [(None, None), ("acme", "https://acme.zendesk.com")],
    ids=["neither", "both"],
)
def test_account_needs_exactly_one_of_subdomain_and_base_url(
    subdomain: str | None, base_url: str | None
) -> None:
    """Neither or both places is a ConfigurationError naming the two."""
    with pytest.raises(ConfigurationError, match="exactly one of subdomain and base_url"):
        Account("x", subdomain=subdomain, base_url=base_url, token=SECRET)


@pytest.mark.parametrize(
    "auth", [{}, {"token": SECRET, "basic_auth": ("ada", SECRET)}], ids=["neither", "both"]
)
def test_account_needs_exactly_one_of_token_and_basic_auth(auth: dict[str, object]) -> None:
    """Neither or both credentials is a ConfigurationError naming the two."""
    with pytest.raises(ConfigurationError, match="exactly one of token and basic_auth"):
        Account("x", subdomain="acme", **auth)  # type: ignore[arg-type]


@pytest.mark.parametrize("instance_push_id", ["", "x" * 256, 42], ids=["empty", "256", "int"])
def test_account_needs_an_instance_push_id_of_1_to_255_characters(instance_push_id: str) -> None:
    """An empty, too long or non-string instance_push_id is refused."""
    with pytest.raises(ConfigurationError, match=r"instance_push_id .* 1\.\.255 characters"):
        acme(instance_push_id)


def test_account_checks_its_place_as_the_client_does() -> None:
    """Plain http to a host that is not loopback is refused, as AnyChannelClient refuses it."""
    with pytest.raises(ConfigurationError, match="plain http"):
        Account("x", base_url="http://acme.example.com", token=SECRET)


@pytest.mark.parametrize(
    "auth",
    [{"token": f"{SECRET} tail"}, {"basic_auth": ("ada", f"{SECRET}\n")}],
    ids=["token", "basic_auth"],
)
def test_account_errors_never_quote_the_credentials(auth: dict[str, object]) -> None:
    """A refused token or secret is named as a problem, never shown."""
    with pytest.raises(ConfigurationError) as refused:
        Account("x", subdomain="acme", **auth)  # type: ignore[arg-type]
    assert SECRET not in str(refused.value)


def test_account_repr_never_shows_the_token_or_secret() -> None:
    """The repr names the account and its place; credentials show as redacted."""
    by_token = repr(acme())
    by_basic = repr(Account("x", base_url="https://z.example", basic_auth=("ada", SECRET)))
    assert by_token == "Account('acme-1', subdomain='acme', token=<redacted>)"
    assert by_basic == "Account('x', base_url='https://z.example', basic_auth=<redacted>)"
    assert SECRET not in str(acme())


# -- errors ---------------------------------------------------------------------------------


def test_unknown_account_error_is_a_key_error_with_a_readable_message() -> None:
    """It is caught as KeyError and AnyChannelError; its str is a sentence, not a quoted key."""
    error = UnknownAccountError("acme-1")
    assert isinstance(error, KeyError)
    assert isinstance(error, AnyChannelError)
    assert error.instance_push_id == "acme-1"
    assert str(error) == "no account for instance push id 'acme-1'"


# -- AccountStore ---------------------------------------------------------------------------


async def test_store_gives_back_the_account_put_in_it(tmp_path: Path) -> None:
    """put then get returns an equal account, bearer and basic alike."""
    basic = Account("b", base_url="http://127.0.0.1:9", basic_auth=("ada@acme.com", SECRET))
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        await store.put(acme())
        await store.put(basic)
        assert await store.get("acme-1") == acme()
        assert await store.get("b") == basic


async def test_store_put_replaces_the_account_with_the_same_instance_push_id(
    tmp_path: Path,
) -> None:
    """A second put under one instance push id replaces the first, whatever its fields."""
    replacement = Account("acme-1", base_url="http://127.0.0.1:9", token="new-token")
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        await store.put(acme())
        await store.put(replacement)
        assert await store.list() == [replacement]


async def test_store_get_of_an_absent_instance_push_id_is_none(tmp_path: Path) -> None:
    """An id never put is None, not an error."""
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        assert await store.get("nobody") is None


async def test_store_list_gives_every_account_by_instance_push_id(tmp_path: Path) -> None:
    """list is sorted by instance push id, whatever the order of the puts."""
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        for name in ("c", "a", "b"):
            await store.put(acme(name))
        assert [a.instance_push_id for a in await store.list()] == ["a", "b", "c"]


async def test_store_remove_says_whether_there_was_an_account(tmp_path: Path) -> None:
    """remove is True for a stored account (then gone), False without error for an absent one."""
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        await store.put(acme())
        assert await store.remove("acme-1") is True
        assert await store.get("acme-1") is None
        assert await store.remove("acme-1") is False


async def test_store_accounts_persist_across_reopening(tmp_path: Path) -> None:
    """What one store put, a store opened later on the same file reads."""
    path = tmp_path / "accounts.sqlite"
    async with AccountStore(path) as store:
        await store.put(acme())
    async with AccountStore(path) as store:
        assert await store.list() == [acme()]


async def test_store_concurrent_puts_are_all_stored(tmp_path: Path) -> None:
    """Many puts awaited at once all land, none lost to another."""
    accounts = [acme(f"acme-{n:03}", token=f"token-{n}") for n in range(200)]
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        await asyncio.gather(*(store.put(account) for account in accounts))
        assert await store.list() == accounts


async def test_store_file_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    """The file and its WAL are 0600, whatever the umask lets others read."""
    path = tmp_path / "accounts.sqlite"
    previous = os.umask(0o022)
    try:
        async with AccountStore(path) as store:
            await store.put(acme())
            assert mode_of(path) == 0o600
            assert mode_of(Path(f"{path}-wal")) == 0o600
    finally:
        os.umask(previous)


async def test_store_refuses_a_file_others_can_read(tmp_path: Path) -> None:
    """An existing store readable by others is refused, left as it is, the fix named."""
    path = tmp_path / "accounts.sqlite"
    async with AccountStore(path) as store:
        await store.put(acme())
    path.chmod(0o644)
    with pytest.raises(AccountStoreError, match=r"mode 0644.*chmod 600") as refused:
        async with AccountStore(path):
            pass
    assert SECRET not in str(refused.value)
    assert mode_of(path) == 0o644


async def test_store_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    """sqlite's error on a file of another kind is an AccountStoreError."""
    path = tmp_path / "accounts.sqlite"
    path.write_bytes(b"not a database, but long enough to have a header " * 4)
    path.chmod(0o600)
    with pytest.raises(AccountStoreError, match="not an accounts store"):
        async with AccountStore(path):
            pass


async def test_store_refuses_another_sqlite_database_and_leaves_it_unchanged(
    tmp_path: Path,
) -> None:
    """A SQLite file of something else (an outbox given by mistake) gets no accounts table."""
    path = tmp_path / "outbox.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY)")
    db.close()
    path.chmod(0o600)
    with pytest.raises(AccountStoreError, match="not an accounts store"):
        async with AccountStore(path):
            pass
    with sqlite3.connect(path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master")]
    db.close()
    assert tables == ["outbox"]


async def test_store_an_invalid_row_is_an_error_that_names_it_not_its_token(
    tmp_path: Path,
) -> None:
    """A row another program wrote wrong is an AccountStoreError naming the account."""
    path = tmp_path / "accounts.sqlite"
    async with AccountStore(path) as store:
        await store.put(acme())
    with sqlite3.connect(path) as db:
        db.execute("UPDATE accounts SET subdomain = 'not a subdomain'")
    db.close()
    async with AccountStore(path) as store:
        with pytest.raises(AccountStoreError, match="'acme-1' is invalid") as refused:
            await store.get("acme-1")
    assert SECRET not in str(refused.value)


async def test_store_put_refuses_what_is_not_an_account(tmp_path: Path) -> None:
    """Only an Account can be put: anything else is a ValidationError, nothing written."""
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        with pytest.raises(ValidationError, match="must be an Account"):
            await store.put({"instance_push_id": "x"})  # type: ignore[arg-type]
        assert await store.list() == []


async def test_store_used_before_it_was_opened_says_so(tmp_path: Path) -> None:
    """A call on a store never entered raises AccountStoreError naming `async with`."""
    with pytest.raises(AccountStoreError, match="not open"):
        await AccountStore(tmp_path / "accounts.sqlite").list()


async def test_store_is_closed_for_good_after_the_block(tmp_path: Path) -> None:
    """After leaving `async with`, calls and a second entry raise ClosedError."""
    store = AccountStore(tmp_path / "accounts.sqlite")
    async with store:
        pass
    with pytest.raises(ClosedError):
        await store.get("acme-1")
    with pytest.raises(ClosedError):
        await store.__aenter__()


# -- the command line -----------------------------------------------------------------------


def add_acme(
    path: Path, *, token: str | None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `accounts add PATH` for acme-1 on the acme subdomain."""
    return cli(
        "accounts", "add", str(path), "--instance-push-id", "acme-1", "--subdomain", "acme",
        token=token, stdin=stdin,
    )  # fmt: skip


def check(path: Path, *accounts: Account) -> subprocess.CompletedProcess[str]:
    """Store accounts at path, then run `accounts check PATH` with no token in the environment."""
    stored(path, *accounts)
    return cli("accounts", "check", str(path), token=None)


def check_rows(stdout: str) -> dict[str, str]:
    """The result column of `accounts check`'s table, by instance push id."""
    header, *lines = stdout.splitlines()
    assert header.split() == ["instance", "push", "id", "base", "URL", "result"]
    table = lines[: lines.index("")]  # a blank line, then the summary
    return {row.split(maxsplit=2)[0]: row.split(maxsplit=2)[2] for row in table}


def test_cli_add_takes_the_token_from_the_environment_and_never_prints_it(
    tmp_path: Path,
) -> None:
    """accounts add stores the token in $ANYCHANNEL_TOKEN and a file readable by its owner."""
    path = tmp_path / "accounts.sqlite"
    done = add_acme(path, token=SECRET)
    assert done.returncode == 0, done.stderr
    assert "added acme-1 (https://acme.zendesk.com)" in done.stdout
    assert SECRET not in done.stdout + done.stderr
    assert read(path) == [acme()]
    assert mode_of(path) == 0o600


def test_cli_add_reads_one_line_of_stdin_when_the_environment_has_no_token(
    tmp_path: Path,
) -> None:
    """Without $ANYCHANNEL_TOKEN, the first line of standard input is the token."""
    path = tmp_path / "accounts.sqlite"
    done = add_acme(path, token=None, stdin=f"{SECRET}\nignored\n")
    assert done.returncode == 0, done.stderr
    assert read(path) == [acme()]


def test_cli_add_without_a_token_is_a_usage_error(tmp_path: Path) -> None:
    """No token anywhere: exit 2, nothing stored."""
    path = tmp_path / "accounts.sqlite"
    done = add_acme(path, token=None, stdin="")
    assert done.returncode == 2
    assert "ANYCHANNEL_TOKEN" in done.stderr
    assert not path.exists()


def test_cli_add_says_it_replaced_an_account(tmp_path: Path) -> None:
    """Adding an instance push id already stored replaces it, and says so."""
    path = tmp_path / "accounts.sqlite"
    stored(path, acme(token="old-token"))
    done = add_acme(path, token=SECRET)
    assert done.returncode == 0, done.stderr
    assert "replaced acme-1" in done.stdout
    assert read(path) == [acme()]


def test_cli_list_shows_ids_and_base_urls_and_no_token(tmp_path: Path) -> None:
    """accounts list is a table of instance push id and base URL, tokens left out."""
    path = tmp_path / "accounts.sqlite"
    stored(path, acme("acme-1"), Account("local", base_url="http://127.0.0.1:9", token=SECRET))
    done = cli("accounts", "list", str(path))
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert lines == [
        ["instance", "push", "id", "base", "URL"],
        ["acme-1", "https://acme.zendesk.com"],
        ["local", "http://127.0.0.1:9"],
    ]
    assert SECRET not in done.stdout + done.stderr


def test_cli_list_of_a_missing_store_is_a_usage_error_that_creates_nothing(
    tmp_path: Path,
) -> None:
    """A path with no store (a typo) is exit 2, not an empty store made on the spot."""
    path = tmp_path / "typo.sqlite"
    done = cli("accounts", "list", str(path))
    assert done.returncode == 2
    assert "no accounts store" in done.stderr
    assert not path.exists()


def test_cli_remove_forgets_the_account(tmp_path: Path) -> None:
    """accounts remove PATH ID removes that account only."""
    path = tmp_path / "accounts.sqlite"
    stored(path, acme("acme-1"), acme("acme-2"))
    done = cli("accounts", "remove", str(path), "acme-1")
    assert done.returncode == 0, done.stderr
    assert read(path) == [acme("acme-2")]


def test_cli_remove_of_an_absent_account_exits_1(tmp_path: Path) -> None:
    """Removing an id not stored (a typo?) says so and exits 1."""
    path = tmp_path / "accounts.sqlite"
    stored(path, acme())
    done = cli("accounts", "remove", str(path), "acme-2")
    assert done.returncode == 1
    assert "no account acme-2" in done.stderr
    assert read(path) == [acme()]


def test_cli_check_of_valid_tokens_exits_0(tmp_path: Path, emulator: ZendeskEmulator) -> None:
    """Every token Zendesk accepts: a table of ok, exit 0."""
    done = check(
        tmp_path / "accounts.sqlite", Account(IPID, base_url=emulator.base_url, token=TOKEN)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert check_rows(done.stdout) == {IPID: "ok"}
    assert "1 ok, 0 refused, 0 errors" in done.stdout


def test_cli_check_reports_a_refused_token_and_exits_1(
    tmp_path: Path, emulator: ZendeskEmulator
) -> None:
    """One token right, one wrong: the table says ok and refused, exit 1, no token shown."""
    done = check(
        tmp_path / "accounts.sqlite",
        Account(IPID, base_url=emulator.base_url, token=TOKEN),
        Account("other-install", base_url=emulator.base_url, token=SECRET),
    )
    assert done.returncode == 1
    rows = check_rows(done.stdout)
    assert rows[IPID] == "ok"
    assert rows["other-install"] == "refused (HTTP 401)"
    assert "1 ok, 1 refused, 0 errors" in done.stdout
    assert TOKEN not in done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_cli_check_reports_an_unreachable_host_as_an_error(
    tmp_path: Path, emulator: ZendeskEmulator
) -> None:
    """A host that does not answer is an error in its row, the others still checked, exit 1."""
    done = check(
        tmp_path / "accounts.sqlite",
        Account(IPID, base_url=emulator.base_url, token=TOKEN),
        Account("down", base_url="http://127.0.0.1:1", token=SECRET),
    )
    assert done.returncode == 1
    rows = check_rows(done.stdout)
    assert rows[IPID] == "ok"
    assert rows["down"].startswith("error: TransportError: ")
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize("action", ["add", "list", "check", "remove"])
def test_cli_accounts_show_an_id_with_control_characters_escaped(
    tmp_path: Path, action: str
) -> None:
    """An instance push id that would drive the terminal (an escape sequence, stored by hand
    or by an install) is shown quoted and escaped by every accounts command, as push shows
    one; never raw."""
    evil = "evil\x1b[2J\x07"
    path = tmp_path / "accounts.sqlite"
    if action == "add":
        done = cli(
            "accounts", "add", str(path), "--instance-push-id", evil,
            "--base-url", "http://127.0.0.1:1", token=SECRET,
        )  # fmt: skip
    else:
        stored(path, Account(evil, base_url="http://127.0.0.1:1", token=SECRET))
        extra = [evil] if action == "remove" else []
        done = cli("accounts", action, str(path), *extra, token=None)
    assert "\x1b" not in done.stdout + done.stderr
    assert "'evil\\x1b[2J\\x07'" in done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr
