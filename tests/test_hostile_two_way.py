"""What a hostile or careless user does to the two-way loop: the emulator's calls on an
integration across a reset (the fixture resets between tests), forged events."""

from __future__ import annotations

import asyncio

from anychannel_async.integration import IntegrationEvent

from .conftest import resource
from .test_two_way import TwoWay, install, two_way  # noqa: F401 - the fixture, used by name

CREATED = "resources_created_from_external_ids"


async def test_an_event_delivered_across_a_reset_is_not_recorded_after_it(
    two_way: TwoWay,  # noqa: F811 - the fixture
) -> None:
    """A test that ends while an event callback is under way, and the next one (the fixture
    resets between them), must not see it: reset says deliveries under way finish unrecorded,
    so the next test's ``event_callbacks`` starts empty."""
    instance = await install(two_way)
    entered, release = asyncio.Event(), asyncio.Event()

    @two_way.integration.on_event
    async def hold(event: IntegrationEvent) -> None:
        if event.type_id == CREATED:
            entered.set()
            await release.wait()

    await two_way.pool.push(instance.instance_push_id, resource("post-1"))
    await entered.wait()
    two_way.emulator.reset()
    release.set()
    await two_way.emulator.settle()
    assert two_way.emulator.event_callbacks == []
