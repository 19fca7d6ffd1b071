"""A worker killed with SIGKILL at random moments while 2,000 calls go through, and restarted.

Counts, not "no crash": every call reaches exactly the outcome the contract
promises, by one proof; no source is left in staging for a call whose source
had to go; no recording is archived twice; no fact is proven under two ids.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from callvault.simulation.plan import TrafficOptions, plan_traffic
from callvault.simulation.publish import publish_calls
from tests.conftest import make_settings, prepare_async, spawn_worker
from tests.integration.helpers import Bus
from tests.stack import Servers

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]

CALLS = 2000
KILLS = 3
OUTCOMES = {"recording.archived", "recording.rejected"}
# Sources the contract deletes once decided (a checksum mismatch keeps it for a resend).
SOURCE_GOES = {"archived", "disclosure_missing", "objected"}


def _outcome(event: dict[str, Any]) -> str:
    return "archived" if event["type"] == "recording.archived" else str(event["reason"])


async def test_random_kills_during_2000_calls_lose_nothing_and_double_nothing(servers: Servers) -> None:
    settings = make_settings(servers, "f" + secrets.token_hex(3), batch_size=32)
    await prepare_async(settings)
    opts = TrafficOptions(
        calls=CALLS, tenants=("acme", "globex"), missing=0.1, late=0.1, after_start=0.05,
        objected=0.03, mismatch=0.02, duplicates=0.05, audio_seconds=0.2, seed=11,
        staging_bucket=settings.staging_bucket,
    )  # fmt: skip
    plan = plan_traffic(opts, datetime.now(UTC), settings.retention)
    expected = {c.call_id: c.expected for c in plan}
    rng = random.Random(20261125)
    kills: list[float] = []

    async with Bus(settings) as bus:

        def decided() -> int:
            return sum(
                1 for c in expected if any(e["type"] in OUTCOMES for e in bus.lifecycle.by_key.get(c, []))
            )

        worker = spawn_worker(settings, "worker-fault-0")
        try:
            publishing = asyncio.create_task(publish_calls(settings, plan))
            began = time.monotonic()
            for n in range(KILLS):
                # Kill somewhere in the thick of it: after some progress, at a random moment.
                target = (n + 1) * CALLS // (KILLS + 2) + rng.randrange(0, CALLS // 10)
                await bus.lifecycle.wait_for(
                    lambda w, t=target: decided() >= t, 240, f"{target} calls decided"
                )
                await asyncio.sleep(rng.uniform(0.0, 2.0))
                kills.append(time.monotonic() - began)
                worker.kill()
                worker.stop()
                worker = spawn_worker(settings, f"worker-fault-{n + 1}")
            await publishing
            try:
                await bus.lifecycle.wait_for(lambda w: decided() == CALLS, 180, "every call decided")
            except TimeoutError:
                stuck = [
                    c
                    for c in plan
                    if not any(e["type"] in OUTCOMES for e in bus.lifecycle.by_key.get(c.call_id, []))
                ]
                by_kind = Counter(c.expected for c in stuck)
                sample = [(c.call_id, c.expected, bus.lifecycle.types_for(c.call_id)) for c in stuck[:5]]
                await _diagnose(settings, {c.call_id for c in stuck})
                raise AssertionError(
                    f"{len(stuck)} calls undecided ({dict(by_kind)}), e.g. {sample}"
                ) from None
            await bus.settle(5)  # late repeats, if any, arrive too
        finally:
            worker.stop()

        outcome_ids: dict[str, set[str]] = defaultdict(set)
        outcome_of: dict[str, set[str]] = defaultdict(set)
        ids_by_fact: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        for event in bus.lifecycle.records:
            call_id = str(event.get("call_id"))
            if call_id not in expected:
                continue
            if event["type"] in OUTCOMES:
                outcome_ids[call_id].add(event["event_id"])
                outcome_of[call_id].add(_outcome(event))
            what = (event.get("object") or {}).get("key") or event.get("recording_event_id") or ""
            ids_by_fact[(event["type"], call_id, str(what))].add(event["event_id"])
        records = [e for e in bus.lifecycle.records if str(e.get("call_id")) in expected]
        repeats = len(records) - len({e["event_id"] for e in records})
        print(
            f"kills at {[round(k, 1) for k in kills]} s; {len(records)} lifecycle records, {repeats} repeats"
        )

        wrong = {c: (expected[c], sorted(outcome_of[c])) for c in expected if outcome_of[c] != {expected[c]}}
        assert not wrong, (
            f"{len(wrong)} calls without their one expected outcome, e.g. {list(wrong.items())[:3]}"
        )
        assert all(len(ids) == 1 for ids in outcome_ids.values()), "an outcome proven twice under two ids"
        twice = [fact for fact, ids in ids_by_fact.items() if len(ids) > 1]
        assert not twice, f"facts proven under two ids: {twice[:3]}"

        staged = {
            o["Key"]
            for page in bus.s3.get_paginator("list_objects_v2").paginate(Bucket=settings.staging_bucket)
            for o in page.get("Contents", ())
        }
        left = [c.staging_key for c in plan if expected[c.call_id] in SOURCE_GOES and c.staging_key in staged]
        assert not left, f"{len(left)} sources left in staging, e.g. {left[:3]}"

        versions: Counter[str] = Counter()
        for page in bus.s3.get_paginator("list_object_versions").paginate(Bucket=settings.recordings_bucket):
            for v in page.get("Versions", ()):
                versions[v["Key"]] += 1
        archived = sum(1 for c in expected.values() if c == "archived")
        assert len(versions) == archived, "one archived object per archived call"
        doubled = [k for k, n in versions.items() if n > 1]
        assert not doubled, f"{len(doubled)} recordings archived twice, e.g. {doubled[:3]}"


async def _diagnose(settings: Any, stuck: set[str]) -> None:
    """On failure: where the undecided calls' messages sit, against the group's committed offsets.

    (How the lost-messages bug fixed in `callvault.stream.faust_fixes` was found.)
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    for topic in (settings.call_events_topic, settings.calls_topic):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, group_id=settings.app_id, enable_auto_commit=False
        )
        await consumer.start()
        try:
            parts = sorted(consumer.partitions_for_topic(topic) or ())
            tps = [TopicPartition(topic, p) for p in parts]
            consumer.assign(tps)
            committed = {tp.partition: await consumer.committed(tp) for tp in tps}
            ends = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            where: dict[int, list[int]] = defaultdict(list)
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                if not batch:
                    break
                for tp, records in batch.items():
                    where[tp.partition] += [r.offset for r in records if r.key and r.key.decode() in stuck]
        finally:
            await consumer.stop()
        for p in parts:
            offs = where[p]
            span = f"{min(offs)}..{max(offs)} ({len(offs)})" if offs else "none"
            end = ends[TopicPartition(topic, p)]
            print(f"DIAG {topic}[{p}] committed {committed[p]} end {end} stuck {span}")
