"""The pytest plugin (entry point `anychannel_async`): the `zendesk_emulator` fixture.

pytest loads this module in every run of an environment where the package is installed, so it
imports only stdlib and pytest; the emulator (and aiohttp) is imported when a test asks for it.
It needs no async plugin: the emulator runs in its own thread.
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
    """A running emulator with the default account, reset and with default faults for each test."""
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
