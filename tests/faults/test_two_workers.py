"""Two workers in one group; one is killed for good: the other takes its partitions, nothing is lost."""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import UTC, datetime

import pytest

from callvault.simulation.plan import TrafficOptions, plan_traffic
from callvault.simulation.publish import publish_calls
from tests.conftest import make_settings, prepare_async, spawn_worker
from tests.integration.helpers import Bus
from tests.stack import Servers

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]

CALLS = 1000
OUTCOMES = {"recording.archived", "recording.rejected"}


async def test_the_survivor_takes_over_and_nothing_is_lost(servers: Servers) -> None:
    settings = make_settings(servers, "w" + secrets.token_hex(3), batch_size=32)
    await prepare_async(settings)
    opts = TrafficOptions(
        calls=CALLS, tenants=("acme", "globex"), missing=0.1, late=0.1, after_start=0.05,
        objected=0.03, mismatch=0.02, duplicates=0.05, audio_seconds=0.2, seed=12,
        staging_bucket=settings.staging_bucket,
    )  # fmt: skip
    plan = plan_traffic(opts, datetime.now(UTC), settings.retention)
    expected = {c.call_id: c.expected for c in plan}

    async with Bus(settings) as bus:

        def decided() -> int:
            return sum(1 for c in expected if set(bus.lifecycle.types_for(c)) & OUTCOMES)

        first = spawn_worker(settings, "worker-pair-a")
        second = spawn_worker(settings, "worker-pair-b")
        try:
            publishing = asyncio.create_task(publish_calls(settings, plan))
            await bus.lifecycle.wait_for(lambda w: decided() >= CALLS // 3, 240, "a third decided")
            first.kill()
            await publishing
            await bus.lifecycle.wait_for(lambda w: decided() == CALLS, 300, "every call decided")
            await bus.settle(3)
            assert second.alive()
        finally:
            first.stop()
            second.stop()

        outcome_ids: dict[str, set[str]] = {c: set() for c in expected}
        got: dict[str, set[str]] = {c: set() for c in expected}
        for event in bus.lifecycle.records:
            call_id = str(event.get("call_id"))
            if call_id in expected and event["type"] in OUTCOMES:
                outcome_ids[call_id].add(event["event_id"])
                got[call_id].add("archived" if event["type"] == "recording.archived" else event["reason"])
        wrong = {c: (expected[c], sorted(got[c])) for c in expected if got[c] != {expected[c]}}
        assert not wrong, f"{len(wrong)} calls without their expected outcome, e.g. {list(wrong.items())[:3]}"
        assert all(len(ids) == 1 for ids in outcome_ids.values()), "an outcome proven under two ids"
        # They shared the partitions, then the survivor held all of them.
        survivor = second.log_path.read_text(errors="replace")
        shared = first.log_path.read_text(errors="replace")
        assert re.search(rf"{re.escape(settings.calls_topic)}\s*\|\s*\{{[0-9, ]+\}}", shared)
        assert re.search(rf"{re.escape(settings.calls_topic)}\s*\|\s*\{{0-3\}}", survivor)
