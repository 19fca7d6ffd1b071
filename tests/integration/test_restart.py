"""A worker killed with SIGKILL and restarted: call state comes back from the changelog."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from callvault.settings import Settings
from callvault.stream.bus import read_records, read_topic
from tests.conftest import make_settings, prepare_async, spawn_worker
from tests.integration.helpers import Bus, placed_by_kafka
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


async def test_a_calls_state_sits_in_the_changelog_partition_of_its_calls_partition(servers: Servers) -> None:
    """The changelog partition a worker recovers for its share of `calls` must hold those calls' states.

    faust recovers, for each `calls` partition a worker is given, the changelog partition of the same
    number (and keeps nothing else after recovery). A state written anywhere else is found only by a
    worker that happens to hold that other partition: with several workers, a call moved by a
    rebalance would go on with no state (its disclosure forgotten, its recording rejected).
    Half the calls' events are put where the contract's keying puts them, half on another partition
    (as a producer with its own partitioner puts them): each state sits where `calls` places its call.
    """
    settings = make_settings(servers, "p" + secrets.token_hex(3))
    assert settings.partitions > 1
    await prepare_async(settings)
    worker = spawn_worker(settings, "worker-placement", ready=True)
    try:
        async with Bus(settings) as bus:
            keyed = [bus.script(tenant=tenant) for tenant in ("acme", "globex") for _ in range(4)]
            elsewhere = [bus.script(tenant=tenant) for tenant in ("acme", "globex") for _ in range(4)]
            for call in keyed:
                await bus.send(call.started(), call.disclosure())
            for call in elsewhere:
                await bus.send_elsewhere(call.started(), call.disclosure())
            await bus.caught_up()
    finally:
        worker.stop()

    placed = {c.call_id: placed_by_kafka(c.call_id, settings.partitions) for c in [*keyed, *elsewhere]}
    # A worker holding every partition processes each event where it lands; what went round sat there too.
    async for record in read_records(settings.kafka_bootstrap, settings.calls_topic):
        if record.key is not None and record.key.decode() in placed:
            assert record.partition == placed[record.key.decode()], record
    in_changelog: dict[str, set[int]] = {}
    changelog = f"{settings.app_id}-call-state-changelog"
    async for record in read_records(settings.kafka_bootstrap, changelog):
        call_id = (record.key or b"").decode().rpartition("/")[2]  # the table's key: {tenant}/{call_id}
        if call_id in placed:
            in_changelog.setdefault(call_id, set()).add(record.partition)
    assert set(in_changelog) == set(placed), sorted(in_changelog)
    misplaced = {c: (placed[c], in_changelog[c]) for c in placed if in_changelog[c] != {placed[c]}}
    assert not misplaced, f"calls partition against changelog partitions: {misplaced}"


async def _saved_state(settings: Settings, call_id: str, needle: str, timeout: float = 60) -> dict:
    """The call's state as the changelog last holds it, once it contains `needle`."""
    topic = f"{settings.app_id}-call-state-changelog"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = None
        async for key, value in read_topic(settings.kafka_bootstrap, topic, idle_s=0.5, max_s=5):
            if key == f"acme/{call_id}".encode() and value and needle.encode() in value:
                found = value
        if found is not None:
            return json.loads(found)["state"]  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)
    raise AssertionError(f"state of {call_id} never reached the changelog")


async def test_a_disclosure_sent_while_no_worker_ran_is_judged_by_when_it_was_sent(servers: Servers) -> None:
    """A disclosure that reached Kafka within the grace after the recording is in time, however long
    the worker was down before it read it.

    The grace is counted from when the worker saw the recording. A worker killed after that, and
    back only once the grace had passed by the clock, judged the call on the first message it read
    (`call.ended`) or at the deadline's wake-up, before it had read the disclosure waiting in the
    backlog: the call was rejected for a missing disclosure and its recording deleted (seen as one
    call `disclosure_missing` in tests/faults/test_killed_worker.py on Apache Kafka).
    """
    grace_s = 6.0
    settings = make_settings(servers, "r" + secrets.token_hex(3), disclosure_grace=f"PT{grace_s:g}S")
    await prepare_async(settings)
    first = spawn_worker(settings, "worker-down", ready=True)
    try:
        async with Bus(settings) as bus:
            told_before_end, told_after_end = bus.script(), bus.script()
            calls = (told_before_end, told_after_end)
            for call in calls:
                await bus.upload(call)
                await bus.send(call.started(), call.stored())
            seen = [await _saved_state(settings, call.call_id, "recording.stored") for call in calls]
            first.kill()
            first.stop()
            await bus.send(told_before_end.disclosure(), told_before_end.ended())
            await bus.send(told_after_end.ended(), told_after_end.disclosure())
            sent = datetime.now(UTC)
            grace_ends = min(datetime.fromisoformat(s["recording_seen_at"]) for s in seen) + timedelta(
                seconds=grace_s
            )
            assert sent < grace_ends, "the disclosures were sent too late for this test to mean anything"
            # The worker comes back once the grace has passed by the clock, the disclosures unread.
            await asyncio.sleep((grace_ends - datetime.now(UTC)).total_seconds() + 1.0)
            second = spawn_worker(settings, "worker-back")
            try:
                for call in calls:
                    await bus.lifecycle.wait_for(
                        lambda w, c=call.call_id: bool({"recording.archived", "recording.rejected"}
                                                       & set(bus.lifecycle.types_for(c))),
                        60,
                        f"an outcome for {call.call_id}",
                    )  # fmt: skip
                got = {call.call_id: sorted(set(bus.lifecycle.types_for(call.call_id))) for call in calls}
                for call in calls:
                    assert "recording.archived" in got[call.call_id], got
                    assert "disclosure.missing" not in got[call.call_id], got
            finally:
                second.stop()
    finally:
        first.stop()
