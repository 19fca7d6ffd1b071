"""The purger's passes in memory, on a clock the test turns: recovery from its journal, late versions.

Moved from tests/integration/test_purge.py, which drove the same Purger against
the session's store and waited on the wall clock for objects to fall due. The
real stack keeps what needs a worker process: on time with its proof, holds
placed and released from the command line, a kill mid-pass, one leader of two.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from callvault.rules.purge import StoredObject
from callvault.rules.retention import RetentionClass
from callvault.settings import Settings
from callvault.simulation.seed_archive import plant
from callvault.storage import archive, inventory
from callvault.storage import journal as purge_journal
from callvault.testing import Harness


@pytest.fixture
async def h() -> Any:
    async with Harness(Settings(recording_retention="PT10S")) as harness:
        yield harness


def _left(h: Harness, prefix: str) -> list[str]:
    return [k for k in h.objects(h.settings.recordings_bucket) if k.startswith(prefix)]


async def test_an_interrupted_batch_is_finished_and_proven_once(h: Harness) -> None:
    """A kill between DeleteObjects and the proofs: the journal has them; the next pass proves them."""
    now = h.clock.now()
    planted = plant(h.s3, h.settings, [now - timedelta(seconds=30 + i) for i in range(40)], tenant="journal")
    periods = inventory.due_periods(
        h.s3, h.settings.recordings_bucket, RetentionClass.RECORDING, h.settings.retention, now
    ).periods
    listed = [
        k for p in periods for k in inventory.list_versions(h.s3, h.settings.recordings_bucket, p.prefix)
    ]
    half = listed[:20]
    journaled = [
        StoredObject(
            h.settings.recordings_bucket,
            k.key,
            "journal",
            k.key.rsplit("/", 1)[1][:-4],
            RetentionClass.RECORDING,
            now,
            "0" * 64,
            256,
            k.versions,
        )  # fmt: skip
        for k in half
    ]
    entry = purge_journal.JournalEntry(
        batch_id="killed",
        written_at=now - timedelta(minutes=2),
        reason="retention_elapsed",
        objects=journaled,
    )
    purge_journal.write_entry(h.s3, h.settings.metadata_bucket, entry)
    archive.delete_versions(
        h.s3, h.settings.recordings_bucket, [(k.key, v) for k in half for v in k.versions]
    )

    report = await h.purger.run_pass()
    again = await h.purger.run_pass()

    assert report.recovered == 20
    assert len(report.deleted) == 20, "the other half, deleted by this pass"
    assert again.recovered == 0 and not again.deleted
    proofs = [e for e in h.events if e["type"] == "recording.deleted"]
    assert {e["object"]["key"] for e in proofs} == {p.key for p in planted}
    assert len({e["event_id"] for e in proofs}) == len(proofs) == 40, "one proof per object"
    assert not purge_journal.pending_entries(h.s3, h.settings.metadata_bucket)
    assert _left(h, "journal/") == []


async def test_a_version_written_after_the_listing_is_deleted_too(h: Harness) -> None:
    """Passes between scans work from the last listing; what changed since is looked at again."""
    [item] = plant(h.s3, h.settings, [h.clock.now() - timedelta(seconds=5)], tenant="versions")
    first = await h.purger.run_pass()  # lists the object, 5 s before it is due
    assert first.scanned and not first.deleted and first.not_due == 1
    plant(h.s3, h.settings, [h.clock.now() - timedelta(seconds=5)], tenant="versions")  # a 2nd version
    h.s3.delete_object(Bucket=item.bucket, Key=item.key)  # and a delete marker on top
    h.clock.advance(timedelta(seconds=6))

    second = await h.purger.run_pass()

    assert not second.scanned, "worked from the first listing"
    assert [obj.key for obj in second.deleted] == [item.key]
    assert second.deleted[0].versions and len(second.deleted[0].versions) == 3
    assert _left(h, "versions/") == []


async def test_a_deletion_the_store_refuses_is_proven_once_a_streak_and_the_replay_shows_its_cause(
    h: Harness,
) -> None:
    """Issue 31, item 4: an S3 legal hold set outside callvault refuses the purger's delete. On main that
    was a log line each pass and the auditor saw a late deletion with no cause."""
    from callvault.observability.metrics import DELETIONS_REFUSED
    from callvault.rules.audit_replay import replay

    now = h.clock.now()
    (planted,) = plant(h.s3, h.settings, [now], tenant="locked")
    key = planted.key
    version = h.s3.head_object(Bucket=h.settings.recordings_bucket, Key=key)["VersionId"]
    hold = {"Bucket": h.settings.recordings_bucket, "Key": key, "VersionId": version}
    h.s3.put_object_legal_hold(**hold, LegalHold={"Status": "ON"})  # by hand, not by callvault
    counted = DELETIONS_REFUSED._value.get()  # noqa: SLF001 - the counter's own value

    for _ in range(3):
        await h.advance(seconds=11)  # past due, then two more passes refused
    (refused,) = h.lifecycle(type_="deletion.refused")
    assert (refused["key"], refused["passes"], refused["version_id"]) == (key, 1, version)
    assert "AccessDenied" in refused["answer"] or "hold" in refused["answer"].lower(), refused["answer"]
    assert DELETIONS_REFUSED._value.get() == counted + 1, "once per object and streak"  # noqa: SLF001
    assert key in _left(h, "locked/")

    h.s3.put_object_legal_hold(**hold, LegalHold={"Status": "OFF"})
    await h.advance(seconds=11)
    (deleted,) = [e for e in h.lifecycle(type_="recording.deleted") if e["object"]["key"] == key]
    found = replay(h.lifecycle(), h.clock.now(), timedelta(seconds=5), h.settings.policy_defaults)
    flagged = [v for v in found.violations if v.rule == "deletion_refused"]
    assert [v.evidence for v in flagged] == [(refused["event_id"],)]
    assert refused["answer"] in flagged[0].detail
