"""A worker killed with SIGKILL at random moments while calls go through (2,000 at full volume), restarted.

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
from typing import Any

import pytest

from callvault.simulation.publish import publish_calls
from tests.conftest import make_settings, prepare_async, spawn_worker
from tests.faults.traffic import (
    assert_nothing_doubled_or_left,
    assert_one_expected_outcome_each,
    decided,
    mixed_traffic,
    undecided,
    volume,
)
from tests.integration.helpers import Bus
from tests.stack import Servers

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]

CALLS = volume(2000, 200)
KILLS = 3


async def test_random_kills_during_the_calls_lose_nothing_and_double_nothing(servers: Servers) -> None:
    settings = make_settings(servers, "f" + secrets.token_hex(3), batch_size=32)
    await prepare_async(settings)
    plan = mixed_traffic(settings, CALLS, seed=11)
    expected = {c.call_id: c.expected for c in plan}
    rng = random.Random(20261125)
    kills: list[float] = []

    async with Bus(settings) as bus:
        worker = spawn_worker(settings, "worker-fault-0")
        try:
            publishing = asyncio.create_task(publish_calls(settings, plan))
            began = time.monotonic()
            for n in range(KILLS):
                # Kill somewhere in the thick of it: after some progress, at a random moment.
                target = (n + 1) * CALLS // (KILLS + 2) + rng.randrange(0, CALLS // 10)
                await bus.lifecycle.wait_for(
                    lambda w, t=target: decided(bus, plan) >= t, 240, f"{target} calls decided"
                )
                await asyncio.sleep(rng.uniform(0.0, 2.0))
                kills.append(time.monotonic() - began)
                worker.kill()
                worker.stop()
                worker = spawn_worker(settings, f"worker-fault-{n + 1}")
            await publishing
            try:
                await bus.lifecycle.wait_for(lambda w: decided(bus, plan) == CALLS, 180, "every call decided")
            except TimeoutError:
                stuck = undecided(bus, plan)
                await _diagnose(settings, {c.call_id for c in stuck})
                for call in stuck[:5]:
                    print(f"DIAG {call.call_id}: lifecycle {sorted(bus.lifecycle.types_for(call.call_id))}")
                await _last_states(settings, {c.call_id for c in stuck[:5]})
                kinds = dict(Counter(c.expected for c in stuck))
                raise AssertionError(f"{len(stuck)} calls undecided ({kinds})") from None
            await bus.caught_up()  # late repeats, if any, are in by then
        finally:
            worker.stop()

        records = [e for e in bus.lifecycle.records if str(e.get("call_id")) in expected]
        repeats = len(records) - len({e["event_id"] for e in records})
        print(
            f"kills at {[round(k, 1) for k in kills]} s; {len(records)} lifecycle records, {repeats} repeats"
        )
        assert_one_expected_outcome_each(bus, plan)
        assert_nothing_doubled_or_left(bus, plan)


async def _diagnose(settings: Any, stuck: set[str]) -> None:
    """On failure: where the undecided calls' messages sit, against the group's committed offsets.

    (How the lost-messages bug fixed in `callvault.stream.faust_fixes` was found.)
    """
    from aiokafka import AIOKafkaConsumer

    from callvault.stream.bus import topic_partitions

    for topic in (settings.call_events_topic, settings.calls_topic):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, group_id=settings.app_id, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = await topic_partitions(consumer, topic)
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
        for tp in tps:
            offs = where[tp.partition]
            span = f"{min(offs)}..{max(offs)} ({len(offs)})" if offs else "none"
            at = f"committed {committed[tp.partition]} end {ends[tp]}"
            print(f"DIAG {topic}[{tp.partition}] {at} stuck {span}")


async def _last_states(settings: Any, stuck: set[str]) -> None:
    """On failure: each undecided call's last state in the changelog (pseudonyms, no phone number)."""
    from callvault.stream.bus import read_records

    last: dict[str, tuple[int, int, bytes | None]] = {}
    async for record in read_records(settings.kafka_bootstrap, f"{settings.app_id}-call-state-changelog"):
        call_id = (record.key or b"").decode().rpartition("/")[2]
        if call_id in stuck:
            last[call_id] = (record.partition, record.offset, record.value)
    for call_id in sorted(stuck):
        partition, offset, value = last.get(call_id, (-1, -1, None))
        print(f"DIAG state of {call_id} (changelog[{partition}] at {offset}): {(value or b'none')[:1500]!r}")
