"""The simulator's payment calls get the outcome the plan promises, through the worker's logic in memory."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from callvault.simulation.plan import PAYMENT_OUTCOMES, TrafficOptions, plan_traffic
from callvault.testing import Harness


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


def observed(h: Harness, call_id: str) -> str:
    if "recording.archived" in h.types(call_id):
        return "archived"
    rejected = h.lifecycle(call_id, "recording.rejected")
    return str(rejected[0]["reason"]) if rejected else "no outcome"


async def test_every_payment_scenario_of_the_simulator_gets_its_outcome(h: Harness) -> None:
    opts = TrafficOptions(
        calls=25, tenants=("acme",), missing=0, late=0, after_start=0, objected=0, duplicates=0.2,
        payments=1.0, seed=3, staging_bucket=h.settings.staging_bucket,
    )  # fmt: skip
    plan = plan_traffic(opts, h.clock.now(), h.settings.retention)
    assert {c.scenario for c in plan} == set(PAYMENT_OUTCOMES), "each payment scenario is planned"
    for call in plan:
        h.upload(call.staging_key, call.audio)
        await h.send(*call.events)
    await h.advance(minutes=6)
    got = {c.call_id: observed(h, c.call_id) for c in plan}
    assert [(c.scenario, c.expected, got[c.call_id]) for c in plan if got[c.call_id] != c.expected] == []
    secured = Counter(c.scenario for c in plan if "payment.secured" in h.types(c.call_id))
    archived = Counter(c.scenario for c in plan if c.expected == "archived")
    assert secured == archived, "every archived payment call is proven, the late ones too"
