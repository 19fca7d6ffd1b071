"""Three ways an outsider fooled the audit, each failing on main fd3c12e (issue 18, item 0).

1. Every version of an archived recording deleted behind callvault's back:
   `audit verify-store` did not say the recording was missing.
2. An archived recording overwritten with other bytes (a second version):
   `verify-store` did not report the version no archive event accounts for.
3. A forged `recording.archived` with no disclosure, under the `event_id` of a
   real event: the replay took it for a duplicate, and hid what it says.

And the protection: an archived object is under GOVERNANCE retention until
its date, so a delete from outside callvault is refused, while callvault's
own purge still deletes it on time.

These run the same walk and checks `callvault audit verify-store` and
`callvault audit replay` run, on the in-memory harness's store and log. On
fd3c12e (with the walk and the checks called as they were then: the whole
log's view, no walked buckets) each failed on its assertion: no finding, no
finding, no violation, and the outside delete went through.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from callvault.audit.store_facts import LogFacts
from callvault.audit.store_walk import compare_by_day
from callvault.rules.audit_replay import replay
from callvault.rules.store_check import StoreFinding
from callvault.testing import Harness
from tests.integration.helpers import CallScript

TOLERANCE = timedelta(minutes=10)


@pytest.fixture
async def h() -> Any:
    # Starting at the real present: moto judges object-lock retention by the machine's clock, not the
    # harness's, so a call archived at the default start (March) would be past its date for moto already.
    async with Harness(start=datetime.now(UTC).replace(microsecond=0)) as harness:
        yield harness


async def archived(h: Harness) -> dict[str, Any]:
    """A compliant call archived; its `recording.archived` event."""
    call = CallScript(call_id=f"c-{uuid.uuid4().hex[:10]}", start=h.clock.now())
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    (event,) = h.lifecycle(call.call_id, "recording.archived")
    return event


def verify_store(h: Harness) -> list[StoreFinding]:
    """What `callvault audit verify-store` finds: the log's facts on disk, then the store and the log
    compared tenant-day by tenant-day (`audit.store_walk.compare_by_day`)."""
    with tempfile.TemporaryDirectory() as scratch:
        facts = LogFacts(Path(scratch) / "facts.sqlite")
        facts.add(h.events)
        try:
            _, findings = compare_by_day(h.s3, h.settings, facts, set(), h.clock.now(), TOLERANCE)
        finally:
            facts.close()
    return findings


def versions(h: Harness, bucket: str, key: str) -> list[str]:
    page = h.s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [
        v["VersionId"] for v in (*page.get("Versions", ()), *page.get("DeleteMarkers", ())) if v["Key"] == key
    ]


async def test_a_recording_deleted_behind_callvaults_back_is_reported_missing(h: Harness) -> None:
    obj = (await archived(h))["object"]
    assert verify_store(h) == []
    # Someone with the right to pass the retention (an administrator's key) erases every version.
    for version in versions(h, obj["bucket"], obj["key"]):
        h.s3.delete_object(
            Bucket=obj["bucket"], Key=obj["key"], VersionId=version, BypassGovernanceRetention=True
        )

    found = [(f.rule, f.key) for f in verify_store(h)]
    assert found == [("missing_from_store", obj["key"])]


async def test_a_recording_overwritten_with_other_bytes_is_reported(h: Harness) -> None:
    obj = (await archived(h))["object"]
    h.s3.put_object(Bucket=obj["bucket"], Key=obj["key"], Body=b"RIFF other words entirely")

    found = [(f.rule, f.key) for f in verify_store(h)]
    assert found == [("version_not_archived", obj["key"])]


async def test_a_forged_event_under_a_real_event_id_is_a_finding_not_a_duplicate(h: Harness) -> None:
    real = await archived(h)
    forged = {**real, "recording_event_id": str(uuid.uuid4())}  # a recording no disclosure verified
    clean = replay(h.events, h.clock.now(), TOLERANCE, h.settings.policy_defaults)
    assert clean.violations == [] and clean.duplicates == 0

    result = replay([*h.events, forged], h.clock.now(), TOLERANCE, h.settings.policy_defaults)

    assert [(v.rule, v.evidence) for v in result.violations] == [("conflicting_event", (real["event_id"],))]
    assert result.duplicates == 0
    again = replay([*h.events, dict(real)], h.clock.now(), TOLERANCE, h.settings.policy_defaults)
    assert again.violations == [] and again.duplicates == 1, "a true repeat is still a duplicate"


async def test_an_archived_recording_refuses_a_delete_from_outside_until_callvault_purges_it(
    h: Harness,
) -> None:
    event = await archived(h)
    obj = event["object"]
    (version,) = versions(h, obj["bucket"], obj["key"])
    with pytest.raises(ClientError, match="AccessDenied"):
        h.s3.delete_object(Bucket=obj["bucket"], Key=obj["key"], VersionId=version)
    # (moto's GetObjectRetention answers 500 after a PutObjectRetention; a HEAD shows the retention.)
    head = h.s3.head_object(Bucket=obj["bucket"], Key=obj["key"], VersionId=version)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"].isoformat().startswith(event["expires_at"][:16])

    await h.advance(days=31, minutes=1)  # past its month: the purger deletes it, passing the retention

    (deleted,) = h.lifecycle(event["call_id"], "recording.deleted")
    assert deleted["object"]["key"] == obj["key"] and versions(h, obj["bucket"], obj["key"]) == []
    assert verify_store(h) == []
