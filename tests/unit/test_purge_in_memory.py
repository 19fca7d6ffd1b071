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
from callvault.storage import inventory
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
    inventory.delete_versions(
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
