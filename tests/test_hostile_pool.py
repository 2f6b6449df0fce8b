"""What a hostile or careless caller does to a PushPool: ids that are no ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from anychannel_async import AccountStore, PushPool, ValidationError
from anychannel_async.testing import ZendeskEmulator

from .conftest import resource
from .test_pool import accounts_on, quick_pool, token


@pytest.fixture
async def host() -> AsyncIterator[ZendeskEmulator]:
    async with ZendeskEmulator(accounts={"a1": token("a1")}) as emu:
        yield emu


@pytest.mark.parametrize("instance_push_id", [["a1"], {"a1": 1}, b"a1", 12, None])
@pytest.mark.parametrize("kind", ["mapping", "store"])
async def test_an_instance_push_id_that_is_no_string_is_a_validation_error(
    host: ZendeskEmulator, tmp_path: Path, kind: str, instance_push_id: object
) -> None:
    """Not a TypeError from a dict lookup (a list, a dict), nor an unknown account: the call
    is wrong, and says which argument."""
    accounts = accounts_on(host, "a1")
    async with AccountStore(tmp_path / "accounts.sqlite") as store:
        await store.put(accounts["a1"])
        pool: PushPool = quick_pool(store if kind == "store" else accounts)
        async with pool:
            with pytest.raises(ValidationError, match="instance_push_id"):
                await pool.submit(instance_push_id, resource("r1"))  # type: ignore[arg-type]
            assert (await pool.push("a1", resource("r1"))).imported


@pytest.mark.parametrize("instance_push_id", ["", "x" * 256])
async def test_an_instance_push_id_no_account_can_have_is_a_validation_error(
    host: ZendeskEmulator, instance_push_id: str
) -> None:
    """Empty or beyond Zendesk's 255 characters: the call is wrong, not the account unknown."""
    async with quick_pool(accounts_on(host, "a1")) as pool:
        with pytest.raises(ValidationError, match=r"^instance_push_id: .*\b255 characters"):
            await pool.submit(instance_push_id, resource("r1"))
