"""The broker stops under a running worker and comes back: the worker resumes, nothing is lost.

Tansu keeps its log and the consumer groups' offsets in S3 here (its
`s3://` storage engine on a moto of this test's own), and Apache Kafka (the
Kafka lane) in its log directory, so a restarted broker has what the stopped
one had. The worker is never restarted: it has to ride
out the outage itself.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import pytest

from callvault.embedded.stack import EmbeddedStack
from callvault.simulation.publish import publish_calls
from tests.conftest import ARTIFACTS, make_settings, prepare_async, spawn_worker
from tests.faults.traffic import (
    assert_nothing_doubled_or_left,
    assert_one_expected_outcome_each,
    decided,
    mixed_traffic,
    volume,
)
from tests.integration.helpers import Bus
from tests.stack import embedded_servers

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]

CALLS = volume(300, 60)
DOWN_S = 8.0


@pytest.fixture(scope="module")
def durable_stack() -> Iterator[EmbeddedStack]:
    run_dir = ARTIFACTS / f"durable-broker-{secrets.token_hex(3)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    with EmbeddedStack(run_dir, broker_storage="s3://tansu-broker/") as stack:
        yield stack


async def test_the_worker_resumes_after_the_broker_restarts(durable_stack: EmbeddedStack) -> None:
    tansu = durable_stack.broker_kind == "tansu"  # Apache Kafka keeps its log in the stack's run folder
    servers = embedded_servers(durable_stack, "embedded (Tansu on S3, moto)" if tansu else None)
    settings = make_settings(servers, "b" + secrets.token_hex(3), batch_size=32)
    await prepare_async(settings)
    plan = mixed_traffic(settings, CALLS, seed=14)
    first, second = plan[: CALLS // 2], plan[CALLS // 2 :]

    worker = spawn_worker(settings, "worker-broker-restart")
    try:
        async with Bus(settings) as bus:
            await publish_calls(settings, first)
            # Stop in the thick of it: a quarter decided, the rest in flight.
            await bus.lifecycle.wait_for(lambda w: decided(bus, first) >= CALLS // 4, 240, "a quarter")
        # The test's own clients go away with the broker; the worker stays.
        assert durable_stack.broker is not None
        durable_stack.broker.stop()
        stopped = time.monotonic()
        await asyncio.sleep(DOWN_S)
        assert worker.alive(), f"the worker died with the broker:\n{worker.tail(30)}"
        durable_stack.start_broker()
        print(f"broker down for {time.monotonic() - stopped:.1f}s")

        async with Bus(settings) as bus:  # reads lifecycle from the start: the whole story
            await publish_calls(settings, second)
            back = time.monotonic()
            await bus.lifecycle.wait_for(lambda w: decided(bus, plan) == CALLS, 300, "every call decided")
            print(f"every call decided {time.monotonic() - back:.1f}s after the broker came back")
            await bus.caught_up()
            assert worker.alive()
            assert_one_expected_outcome_each(bus, plan)
            assert_nothing_doubled_or_left(bus, plan)
    finally:
        worker.stop()
