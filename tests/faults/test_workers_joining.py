"""Workers joining a group mid-call: each takes its share of the calls with their state.

A worker alone takes the first half of many calls (started, disclosure heard);
two more workers join and the group splits the partitions; then the second half
of every call comes (recording, end). Every call must be archived: the worker
that now holds a call recovered its state, disclosure included. Before the
call-state table placed states by their `calls` partition, a worker recovered
the changelog partitions of its share while most states sat in others, and
such calls were rejected for a missing disclosure that had been heard.
"""

from __future__ import annotations

import json
import secrets

import pytest

from callvault.stream.bus import read_records
from tests.conftest import make_settings, prepare_async, spawn_worker
from tests.faults.shares import until_split
from tests.faults.traffic import OUTCOMES, volume
from tests.integration.helpers import Bus
from tests.stack import Servers

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]

CALLS = volume(120, 32)


async def test_workers_that_join_take_their_calls_with_their_state(servers: Servers) -> None:
    settings = make_settings(servers, "j" + secrets.token_hex(3), batch_size=32)
    await prepare_async(settings)
    workers = [spawn_worker(settings, "worker-first", ready=True)]
    try:
        async with Bus(settings) as bus:
            calls = [bus.script() for _ in range(CALLS)]
            for call in calls:
                await bus.upload(call)
                await bus.send(call.started(), call.disclosure())
            await bus.caught_up()  # the first worker has taken every first half (and written its state)

            workers += [spawn_worker(settings, f"worker-joining-{n}") for n in (1, 2)]
            await until_split(workers, settings.calls_topic, settings.partitions, 240)
            for n, call in enumerate(calls):  # half where a producer with another partitioner puts them
                send = bus.send_elsewhere if n % 2 else bus.send
                await send(call.stored(), call.ended())

            def decided(watcher: object) -> bool:
                return all(OUTCOMES & set(bus.lifecycle.types_for(c.call_id)) for c in calls)

            await bus.lifecycle.wait_for(decided, 240, "every call decided")
            await bus.caught_up()
    finally:
        for worker in workers:
            worker.stop()

    rejected = [c.call_id for c in calls if "recording.archived" not in bus.lifecycle.types_for(c.call_id)]
    assert not rejected, f"{len(rejected)} of {CALLS} calls lost their state to the rebalance: {rejected}"
    went_round = 0
    async for record in read_records(settings.kafka_bootstrap, settings.calls_topic):
        went_round += json.loads(record.value or b"{}").get("kind") == "fact"
    assert went_round, "no event was passed on through `calls`: the test did not cover that way in"
