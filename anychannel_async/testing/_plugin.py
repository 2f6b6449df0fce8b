"""The pytest plugin (entry point `anychannel_async`): the `zendesk_emulator` fixture.

pytest loads this module in every run of an environment where the package is installed, so it
imports only stdlib and pytest; the emulator (and aiohttp) is imported when a test asks for it.

The fixture itself is synchronous: the emulator serves from a thread of its own, so a plain
test, a subprocess and an async test can all talk to it, and it works under any async test
plugin. An ``async def`` test needs one, as every async test in pytest does: pytest-asyncio
(``asyncio_mode = "auto"``, or ``@pytest.mark.asyncio``) or anyio's plugin
(``@pytest.mark.anyio``); both are tested.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from anychannel_async.testing._emulator import ZendeskEmulator

__all__ = ["zendesk_emulator"]

# One emulator per pytest run, started by the first test that needs it: starting a thread and a
# server per test would cost more than the tests themselves, and a reset isolates them as well.
_EMULATOR = pytest.StashKey["ZendeskEmulator"]()


@pytest.fixture
def zendesk_emulator(request: pytest.FixtureRequest) -> ZendeskEmulator:
    """A running `ZendeskEmulator`, reset for each test: no tickets, no recorded requests,
    default faults (none).

    It holds one account: instance push id ``DEFAULT_INSTANCE_PUSH_ID`` with the bearer token
    ``DEFAULT_TOKEN`` (both importable from ``anychannel_async.testing``); point a client at
    ``zendesk_emulator.base_url``. One emulator serves the whole run (started by the first test
    that asks for it) from its own thread, so sync and async tests alike can use it; an async
    test needs pytest-asyncio or anyio's plugin, as any async test does::

        async def test_push(zendesk_emulator: ZendeskEmulator) -> None:
            async with AnyChannelClient(
                token=DEFAULT_TOKEN, base_url=zendesk_emulator.base_url
            ) as client:
                [result] = await client.push(DEFAULT_INSTANCE_PUSH_ID, [resource])
            assert zendesk_emulator.import_count(resource.external_id) == 1

    Set ``zendesk_emulator.faults = Faults(...)`` to inject rate limits, latency, errors.
    """
    from anychannel_async.testing._emulator import ZendeskEmulator
    from anychannel_async.testing._faults import Faults

    config = request.config
    emulator = config.stash.get(_EMULATOR, None)
    if emulator is None:
        started = ZendeskEmulator().__enter__()
        config.add_cleanup(lambda: started.__exit__(None, None, None))
        config.stash[_EMULATOR] = emulator = started
    emulator.reset()
    emulator.faults = Faults()
    return emulator
