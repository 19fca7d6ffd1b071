"""A worker killed with SIGKILL and restarted: call state comes back from the changelog."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter

import pytest

from callvault.settings import Settings
from callvault.stream.bus import read_topic
from tests.conftest import make_settings, prepare_async, spawn_worker
from tests.integration.helpers import Bus
from tests.stack import Servers

pytestmark = pytest.mark.integration


async def _state_saved(settings: Settings, call_id: str, needle: str) -> bool:
    topic = f"{settings.app_id}-call-state-changelog"
    async for key, value in read_topic(settings.kafka_bootstrap, topic, idle_s=0.5, max_s=5):
        if key == f"acme/{call_id}".encode() and value and needle.encode() in value:  # the table's key
            return True
    return False


async def _wait_saved(settings: Settings, call_id: str, needle: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _state_saved(settings, call_id, needle):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"state of {call_id} never reached the changelog")


async def test_state_survives_a_killed_worker(servers: Servers) -> None:
    settings = make_settings(servers, "r" + secrets.token_hex(3))
    await prepare_async(settings)
    first = spawn_worker(settings, "worker-to-kill")
    try:
        async with Bus(settings) as bus:
            told = bus.script()  # disclosure before the crash, recording after it
            untold = bus.script()  # recording before the crash, never a disclosure
            await bus.upload(told)
            await bus.upload(untold)
            await bus.send(told.started(), told.disclosure())
            await bus.send(untold.started(), untold.stored())
            await _wait_saved(settings, told.call_id, "disclosure.played")
            await _wait_saved(settings, untold.call_id, "recording.stored")
            first.kill()

            second = spawn_worker(settings, "worker-restarted")
            try:
                await bus.send(told.stored(), told.ended())
                await bus.wait_types(told.call_id, "disclosure.verified", "recording.archived", timeout=60)
                await bus.wait_types(untold.call_id, "disclosure.missing", "recording.rejected", timeout=60)
                await bus.caught_up()
                for call in (told, untold):
                    counts = Counter(e["type"] for e in bus.lifecycle.by_key[call.call_id])
                    assert counts["recording.archived"] + counts["recording.rejected"] == 1, counts
                ids = [e["event_id"] for e in bus.lifecycle.records]
                assert len(ids) == len(set(ids))
            finally:
                second.stop()
    finally:
        first.stop()
