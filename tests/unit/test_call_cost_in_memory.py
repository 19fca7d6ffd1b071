"""What an archived call costs the store, counted by operation as `callvault_s3_requests_total` counts them.

Issue 25 asks at most 5 S3 requests per compliant call on a store that keeps tags on copy (moto here):
the source read (it is sealed), the sealed recording, the source's deletion, the subject index and the
metadata document. The index had an entry per subject (caller, callee, agent: 7 requests) until it became
one entry per call naming them all.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from callvault.observability.metrics import S3_REQUESTS
from callvault.testing import Harness
from tests.integration.helpers import CallScript, indexed_subjects

LISTINGS = {"ListObjectsV2", "ListObjectVersions"}  # the purger's passes, not the call's path


def counted() -> dict[str, float]:
    return {
        sample.labels["operation"]: sample.value
        for metric in S3_REQUESTS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


def uploaded(h: Harness) -> CallScript:
    call = CallScript(call_id=f"c-cost-{uuid.uuid4().hex[:8]}", start=h.clock.now())
    h.upload(call.staging_key, call.audio)  # the platform's upload: not the call's cost
    return call


async def send(h: Harness, call: CallScript) -> None:
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())


async def test_a_compliant_call_with_three_subjects_costs_five_requests(h: Harness) -> None:
    await send(h, uploaded(h))  # the first call also reads what the worker keeps (the buckets' object lock)
    call = uploaded(h)
    before = counted()

    await send(h, call)

    assert {"recording.archived", "metadata.archived"} <= h.types(call.call_id)
    spent = {op: n - before.get(op, 0) for op, n in counted().items() if n > before.get(op, 0)}
    path = {op: n for op, n in spent.items() if op not in LISTINGS}
    assert sum(path.values()) <= 5, f"the call's path cost {path}"
    assert path == {"GetObject": 1, "PutObject": 3, "DeleteObject": 1}, path
    assert len(indexed_subjects(h.objects(h.settings.metadata_bucket), call.call_id)) == 3, (
        "the caller, the callee and the agent, in one entry"
    )
