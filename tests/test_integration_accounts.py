"""What the integration keeps in the accounts store: an account's name, settings and active
flag, an older store file migrated, and the channelback answers' claims."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from anychannel_async import Account, AccountStore, ConfigurationError

from .integration_support import TOKEN, TYPED

# The accounts table as the first release wrote it, before name, settings and active.
_OLD_SCHEMA = """
CREATE TABLE accounts (
    instance_push_id TEXT PRIMARY KEY, subdomain TEXT, base_url TEXT, token TEXT,
    basic_username TEXT, basic_secret TEXT, updated_at REAL NOT NULL
)
"""


def installed(instance_push_id: str = "i-1", *, active: bool = True) -> Account:
    return Account(
        instance_push_id, subdomain="acme", token=TOKEN, name="Acme", settings=TYPED, active=active
    )


def test_settings_read_back_as_a_read_only_mapping_and_keep_the_account_hashable() -> None:
    """Equal settings in any order make equal, equally hashed accounts; settings cannot be
    changed through the mapping."""
    one = installed()
    other = Account(
        "i-1", subdomain="acme", token=TOKEN, name="Acme", settings=dict(reversed(TYPED.items()))
    )
    assert one == other
    assert hash(one) == hash(other)
    assert one.settings == TYPED
    with pytest.raises(TypeError):
        one.settings["handle"] = "@evil"  # type: ignore[index]
    assert Account("i-1", subdomain="acme", token=TOKEN).active


@pytest.mark.parametrize(
    "fields",
    [{"settings": {"a": 1}}, {"settings": [("a",)]}, {"active": "yes"}, {"name": "n" * 256}],
)
def test_bad_settings_names_or_flags_are_refused(fields: dict[str, object]) -> None:
    """Settings map strings to strings, active is a bool, a name is at most 255 characters."""
    with pytest.raises(ConfigurationError):
        Account("i-1", subdomain="acme", token=TOKEN, **fields)  # type: ignore[arg-type]


async def test_the_store_keeps_name_settings_and_active(tmp_path: Path) -> None:
    """put then get gives back the name, settings and active flag; set_active changes the
    flag alone, and says whether the account was there."""
    async with AccountStore(tmp_path / "a.sqlite") as store:
        await store.put(installed())
        assert await store.get("i-1") == installed()
        assert await store.set_active("i-1", False)
        assert await store.get("i-1") == installed(active=False)
        assert not await store.set_active("nobody", False)


async def test_a_store_written_before_these_columns_gains_them(tmp_path: Path) -> None:
    """An older file opens: its accounts read back active, without name or settings, and new
    ones keep theirs."""
    path = tmp_path / "old.sqlite"
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    with sqlite3.connect(path) as db:
        db.execute(_OLD_SCHEMA)
        db.execute(
            "INSERT INTO accounts VALUES ('old-1', 'acme', NULL, ?, NULL, NULL, 0)", (TOKEN,)
        )
    db.close()
    async with AccountStore(path) as store:
        assert await store.get("old-1") == Account("old-1", subdomain="acme", token=TOKEN)
        await store.put(installed())
        assert await store.get("i-1") == installed()


async def test_a_claim_has_one_owner_until_it_is_answered_or_released(tmp_path: Path) -> None:
    """The first claim owns the key; another (another store on the file, as another process)
    neither owns nor finds an answer until one is remembered; a released claim is owned
    again; a claim past its lease is taken over."""
    path = tmp_path / "a.sqlite"
    async with AccountStore(path) as one, AccountStore(path) as other:
        assert (await one.claim_answer("k", lease=600, keep=3600)).owned
        busy = await other.claim_answer("k", lease=600, keep=3600)
        assert (busy.owned, busy.answer) == (False, None)
        await one.remember_answer("k", "answer")
        found = await other.claim_answer("k", lease=600, keep=3600)
        assert (found.owned, found.answer) == (False, "answer")
        assert (await one.claim_answer("r", lease=600, keep=3600)).owned
        await one.release_claim("r")
        assert (await other.claim_answer("r", lease=600, keep=3600)).owned
        assert (await one.claim_answer("r", lease=0, keep=3600)).owned  # its owner died


async def test_answers_older_than_keep_are_forgotten(tmp_path: Path) -> None:
    """An answer past ``keep`` seconds is gone: the key can be claimed afresh."""
    async with AccountStore(tmp_path / "a.sqlite") as store:
        assert (await store.claim_answer("k", lease=600, keep=3600)).owned
        await store.remember_answer("k", "answer")
        await asyncio.sleep(0.01)
        assert (await store.claim_answer("k", lease=600, keep=0.001)).owned
