"""The store fails under a running worker: 503s, refused and cut connections, slow connects.

The worker talks to S3 through `FaultProxy`; the test's own producer and
checks go straight to the store. Each phase publishes calls while the fault
lasts. While nothing can be written, nothing is proven archived, the worker
says so (S3 error counts, unready, consumer lag on its input), and a
worker killed in the middle of it loses nothing: its offsets were not
committed past writes that never happened. Once the store heals, every call
reaches its one expected outcome, and a write carried out whose answer was
cut off is not done twice.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from urllib.parse import urlsplit

import httpx
import pytest

from callvault.embedded.processes import free_port
from callvault.simulation.publish import publish_calls
from tests.conftest import make_settings, prepare_async, spawn_worker
from tests.faults.s3_proxy import FaultProxy, Mode
from tests.faults.traffic import (
    assert_nothing_doubled_or_left,
    assert_one_expected_outcome_each,
    decided,
    mixed_traffic,
    undecided,
    volume,
)
from tests.integration.helpers import Bus
from tests.integration.ops_probe import Samples, scrape, total, value, wait_ok
from tests.stack import Servers

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]

PER_PHASE = volume(60, 20)
# (fault, seconds it lasts after the phase's calls are published)
PHASES: list[tuple[Mode, float]] = [("503", 8.0), ("refuse", 6.0), ("cut", 6.0), ("delay", 6.0)]
NO_WRITES = {"503", "refuse"}  # faults under which no write can reach the store


def _archived(bus: Bus, call_ids: set[str]) -> int:
    return sum(1 for c in call_ids if "recording.archived" in bus.lifecycle.types_for(c))


def _s3_errors(samples: Samples) -> dict[str, float]:
    counted = samples.items()
    return {dict(labels)["code"]: v for (name, labels), v in counted if name == "callvault_s3_errors_total"}


async def _has_its_partitions(base: str, timeout: float) -> None:
    """Wait for the worker to own its partitions; /readyz cannot say it while the store is down."""
    await wait_ok(f"{base}/healthz", 30)
    deadline = time.monotonic() + timeout
    while value(scrape(base), "callvault_worker_ready") != 1:
        assert time.monotonic() < deadline, f"the worker did not get its partitions within {timeout}s"
        await asyncio.sleep(0.5)


async def test_a_failing_store_loses_nothing_and_doubles_nothing(servers: Servers) -> None:
    settings = make_settings(servers, "s" + secrets.token_hex(3), batch_size=32)
    await prepare_async(settings)
    store = urlsplit(settings.s3_endpoint)
    proxy = FaultProxy(store.hostname or "127.0.0.1", store.port or 80).start()
    through_proxy = settings.model_copy(update={"s3_endpoint": proxy.url})
    plan = mixed_traffic(settings, PER_PHASE * len(PHASES), seed=13)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    errors: dict[str, dict[str, float]] = {}  # S3 error counts by code, per worker

    async with Bus(settings) as bus:
        worker = spawn_worker(through_proxy, "worker-s3-0", http_port=port)
        try:
            await wait_ok(f"{base}/readyz", 60)
            for n, (mode, lasts) in enumerate(PHASES):
                batch = plan[n * PER_PHASE : (n + 1) * PER_PHASE]
                ids = {c.call_id for c in batch}
                proxy.set(mode)
                await publish_calls(settings, batch)
                await asyncio.sleep(lasts)
                samples = scrape(base)
                print(f"{mode}: {_archived(bus, ids)} of {len(ids)} archived while it lasted")
                if mode in NO_WRITES:
                    assert _archived(bus, ids) == 0, f"archived while the store was down ({mode})"
                    # Processed where they land or passed on through `calls`: offsets wait on either.
                    lag = sum(
                        total(samples, "callvault_consumer_lag", topic=topic)
                        for topic in (settings.call_events_topic, settings.calls_topic)
                    )
                    assert lag > 0, "offsets committed past calls not written"
                    unready = httpx.get(f"{base}/readyz", timeout=10)
                    assert unready.status_code == 503 and "s3" in unready.text
                    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200, "alive all the same"
                if mode == "503":
                    errors["killed"] = _s3_errors(samples)
                    # Killed in the middle of the outage: what it had read comes back to its successor.
                    worker.kill()
                    worker.stop()
                    worker = spawn_worker(through_proxy, "worker-s3-1", http_port=port)
                    await _has_its_partitions(base, 90)  # after the dead member's session times out
            proxy.set("pass")
            healed = time.monotonic()
            try:
                await bus.lifecycle.wait_for(lambda w: decided(bus, plan) == len(plan), 240, "all decided")
            except TimeoutError:
                waiting = [c.call_id for c in undecided(bus, plan)]
                raise AssertionError(f"{len(waiting)} calls never decided, e.g. {waiting[:5]}") from None
            print(f"healed: every call decided {time.monotonic() - healed:.1f}s after the store came back")
            await bus.caught_up()
            errors["healed"] = _s3_errors(scrape(base))
        finally:
            worker.stop()
            proxy.stop()

    print(f"S3 errors counted by code: {errors}")
    assert errors["killed"].get("ServiceUnavailable", 0) >= 3, "the 503s were retried and counted"
    assert set(errors["healed"]) & {"EndpointConnectionError", "ConnectionClosedError"}, "refused or cut"
    assert_one_expected_outcome_each(bus, plan)
    assert_nothing_doubled_or_left(bus, plan)
