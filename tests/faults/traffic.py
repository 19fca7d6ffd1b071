"""What the fault tests share: simulated traffic of every outcome, and the check of its outcomes."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from callvault.settings import Settings
from callvault.simulation.plan import SimulatedCall, TrafficOptions, plan_traffic
from tests.integration.helpers import Bus

OUTCOMES = {"recording.archived", "recording.rejected"}


def mixed_traffic(settings: Settings, calls: int, seed: int) -> list[SimulatedCall]:
    """Every outcome the contract names, with duplicates and late disclosures; small audio."""
    opts = TrafficOptions(
        calls=calls, tenants=("acme", "globex"), missing=0.1, late=0.1, after_start=0.05,
        objected=0.03, mismatch=0.02, duplicates=0.05, audio_seconds=0.2, seed=seed,
        staging_bucket=settings.staging_bucket,
    )  # fmt: skip
    return plan_traffic(opts, datetime.now(UTC), settings.retention)


def decided(bus: Bus, calls: list[SimulatedCall]) -> int:
    return sum(1 for c in calls if set(bus.lifecycle.types_for(c.call_id)) & OUTCOMES)


def outcome_of(event: dict[str, Any]) -> str:
    return "archived" if event["type"] == "recording.archived" else str(event["reason"])


def assert_one_expected_outcome_each(bus: Bus, calls: list[SimulatedCall]) -> None:
    """Every call got the outcome the contract promises it, proven under one event id."""
    expected = {c.call_id: c.expected for c in calls}
    ids: dict[str, set[str]] = defaultdict(set)
    got: dict[str, set[str]] = defaultdict(set)
    for event in bus.lifecycle.records:
        call_id = str(event.get("call_id"))
        if call_id in expected and event["type"] in OUTCOMES:
            ids[call_id].add(event["event_id"])
            got[call_id].add(outcome_of(event))
    wrong = {c: (expected[c], sorted(got[c])) for c in expected if got[c] != {expected[c]}}
    assert not wrong, f"{len(wrong)} calls without their one expected outcome, e.g. {list(wrong.items())[:3]}"
    assert all(len(n) == 1 for n in ids.values()), "an outcome proven under two ids"
