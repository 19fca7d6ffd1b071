"""What an operator sees: the worker's probes, its metrics counting what it did, JSON log lines.

A worker of its own (own topics and buckets, JSON logs, a known health port),
so the counts asserted are this test's traffic and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from callvault.embedded.processes import ChildProcess
from callvault.settings import Settings
from callvault.storage.client import make_s3_client
from tests.conftest import stack_fixtures
from tests.integration.helpers import CALLER, Bus
from tests.integration.ops_probe import scrape, total, value, wait_ok

pytestmark = pytest.mark.integration


ops_settings, ops_worker, ops_worker_url = stack_fixtures("ops", "o", log_format="json")


async def test_probes_and_metrics_count_what_the_worker_did(
    ops_settings: Settings, ops_worker: ChildProcess, ops_worker_url: str
) -> None:
    proc, base = ops_worker, ops_worker_url
    topic = ops_settings.call_events_topic
    await wait_ok(f"{base}/healthz", 30)
    ready = await wait_ok(f"{base}/readyz", 60)
    assert ready.json() == {"status": "ready", "problems": [], "notes": []}
    # A file planted under the policies' prefix: skipped, noted by tenant, and the worker stays ready.
    s3 = make_s3_client(ops_settings)
    planted = "_callvault/policies/initech/v000001.json"
    s3.put_object(Bucket=ops_settings.metadata_bucket, Key=planted, Body=b"not a policy")
    deadline = asyncio.get_running_loop().time() + 30
    while not (notes := (await wait_ok(f"{base}/readyz", 10)).json()["notes"]):
        assert asyncio.get_running_loop().time() < deadline, "no note of the planted policy file"
        await asyncio.sleep(0.5)
    assert len(notes) == 1 and "tenant 'initech'" in notes[0] and planted in notes[0], notes

    async with Bus(ops_settings) as bus:
        good = [bus.script() for _ in range(3)]
        for call in good:
            await bus.send_call(call)
        late = bus.script()
        await bus.send_call(late, late.started(), late.stored(), late.ended())  # no disclosure at all
        await bus.send_raw(b"{this is not json", key=b"k-ops")
        for call in good:
            await bus.wait_types(call.call_id, "recording.archived", "metadata.archived")
        await bus.wait_types(late.call_id, "recording.rejected", "metadata.archived")
        await bus.dead_letter_where(lambda r: r.get("source", {}).get("topic") == topic)
    samples = scrape(base)
    assert value(samples, "callvault_events_in_total", topic=topic) == 3 * 4 + 3 + 1
    assert value(samples, "callvault_dead_letters_total", topic=topic) == 1
    assert value(samples, "callvault_outcomes_total", type="recording.archived", reason="") == 3
    assert value(samples, "callvault_outcomes_total", type="metadata.archived", reason="") == 4
    assert value(samples, "callvault_outcomes_total", type="disclosure.verified", reason="") == 3
    rejected = {"type": "recording.rejected", "reason": "disclosure_missing"}
    assert value(samples, "callvault_outcomes_total", **rejected) == 1
    assert value(samples, "callvault_worker_ready") == 1

    # Lag per assigned partition, falling to 0 once the offsets are committed (every second).
    lag = {labels: v for (name, labels), v in samples.items() if name == "callvault_consumer_lag"}
    partitions = {dict(labels)["partition"] for labels in lag if dict(labels)["topic"] == topic}
    assert partitions == {str(p) for p in range(ops_settings.partitions)}
    deadline = time.monotonic() + 20
    while True:
        lag_now = total(scrape(base), "callvault_consumer_lag", topic=topic)
        if lag_now == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert lag_now == 0

    text = httpx.get(f"{base}/metrics", timeout=5).text
    for call in [*good, late]:
        assert call.call_id not in text, "a call id became a label"

    # Every line the worker wrote is one JSON object, and none has the caller's number.
    lines = [line for line in proc.log_path.read_text().splitlines() if line.strip()]
    assert lines
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}")
    assert all({"ts", "level", "logger", "msg"} <= set(p) for p in parsed)
    assert any("health and metrics on" in p["msg"] for p in parsed)
    assert CALLER not in proc.log_path.read_text()
