"""The in-memory lane: the worker's real logic on moto's in-process S3 and a clock the test turns.

No broker, no child process, no waiting on wall time: every row of the
contract's outcome table, a month of retention and a subject erasure.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from callvault.contract.fields import format_rfc3339
from callvault.settings import Settings
from callvault.testing import DEFAULT_START, Harness
from tests.integration.helpers import CALLER, CallScript


def a_call(call_id: str, start: datetime = DEFAULT_START) -> CallScript:
    """One call's events, built as the real-stack tests build them, on the harness's calendar."""
    return CallScript(call_id=call_id, start=start, caller=CALLER)


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


def _reason(h: Harness, call_id: str) -> str:
    return str(h.lifecycle(call_id, "recording.rejected")[0]["reason"])


async def test_a_compliant_call_is_archived_and_its_source_deleted(h: Harness) -> None:
    call = a_call("c-ok")
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    assert {"disclosure.verified", "recording.archived", "metadata.archived"} <= h.types("c-ok")
    assert h.objects(h.settings.recordings_bucket) == ["acme/2026/03/02/c-ok.wav"]
    assert h.objects(h.settings.staging_bucket) == []


async def test_no_disclosure_is_rejected_after_the_grace_and_not_before(h: Harness) -> None:
    call = a_call("c-nodisc")
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.stored(), call.ended())
    assert "recording.rejected" not in h.types("c-nodisc")  # within the grace: waiting
    await h.advance(minutes=4, seconds=59)
    assert "recording.rejected" not in h.types("c-nodisc")
    await h.advance(seconds=1)
    (rejected,) = h.lifecycle("c-nodisc", "recording.rejected")
    assert rejected["reason"] == "disclosure_missing" and rejected["source_deleted"] is True
    (missing,) = h.lifecycle("c-nodisc", "disclosure.missing")
    assert missing["detail"] == "no_disclosure" and missing["waited_s"] >= 300
    assert "metadata.archived" in h.types("c-nodisc") and "recording.archived" not in h.types("c-nodisc")
    assert h.objects(h.settings.recordings_bucket) == [] and h.objects(h.settings.staging_bucket) == []


async def test_a_backlog_read_after_the_grace_still_ends_in_a_verdict(h: Harness) -> None:
    """The worker saw the recording, then was down past the grace; back, it reads the call's end,
    sent within the grace. That message is judged at its sending (the disclosure might be a few
    records on), and the call must still be woken once the input is read that far: on the previous
    code it was not woken again until its eviction a month on, and never got an outcome
    (tests/faults/test_killed_worker.py on Apache Kafka, 2026-12-07)."""
    call = a_call("c-backlog")
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.stored())
    sent = h.clock.now() + timedelta(seconds=1)
    h.clock.advance(timedelta(minutes=5, seconds=30))  # the worker down: no timer ran
    await h.send(call.ended(), sent_at=sent)
    (rejected,) = h.lifecycle("c-backlog", "recording.rejected")
    assert rejected["reason"] == "disclosure_missing"


async def test_a_late_disclosure_within_the_grace_is_compliant(h: Harness) -> None:
    call = a_call("c-late")
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.stored())
    await h.advance(minutes=2)
    await h.send(call.disclosure(), call.ended())
    assert {"recording.archived", "metadata.archived"} <= h.types("c-late")
    assert "recording.rejected" not in h.types("c-late")


@pytest.mark.parametrize(
    ("name", "events", "reason", "detail"),
    [
        (
            "after-start",
            lambda c: [c.disclosure(offset_s=10)],
            "disclosure_missing",
            "disclosure_after_recording_start",
        ),
        (
            "interrupted",
            lambda c: [c.disclosure(completed=False)],
            "disclosure_missing",
            "disclosure_incomplete",
        ),
        ("objected", lambda c: [c.disclosure(), c.objected()], "objected", None),
    ],
)
async def test_outcome_rows_that_reject(
    h: Harness, name: str, events: Any, reason: str, detail: str | None
) -> None:
    call = a_call(f"c-{name}")
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), *events(call), call.stored(), call.ended())
    await h.advance(minutes=5)
    (rejected,) = h.lifecycle(call.call_id, "recording.rejected")
    assert rejected["reason"] == reason and rejected["source_deleted"] is True
    if detail is not None:
        assert h.lifecycle(call.call_id, "disclosure.missing")[0]["detail"] == detail
    assert "metadata.archived" in h.types(call.call_id)
    assert h.objects(h.settings.recordings_bucket) == [] and h.objects(h.settings.staging_bucket) == []


async def test_a_checksum_mismatch_keeps_the_source_and_a_resend_is_archived(h: Harness) -> None:
    call = a_call("c-sum")
    h.upload(call.staging_key, call.audio)
    h.upload(call.staging_key, call.audio + b"corrupted")
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    (rejected,) = h.lifecycle("c-sum", "recording.rejected")
    assert rejected["reason"] == "checksum_mismatch" and rejected["source_deleted"] is False
    assert h.objects(h.settings.staging_bucket) == [call.staging_key], "source kept for the producer"
    assert h.objects(h.settings.recordings_bucket) == [] and "metadata.archived" not in h.types("c-sum")
    h.upload(call.staging_key, call.audio)  # the producer uploads the right bytes and says so again
    await h.send(call.stored())
    assert {"recording.archived", "metadata.archived"} <= h.types("c-sum")
    assert h.read(h.settings.recordings_bucket, "acme/2026/03/02/c-sum.wav") == call.audio


async def test_a_missing_source_is_looked_for_then_rejected(h: Harness) -> None:
    call = a_call("c-missing")
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    for _ in range(6):
        await h.advance(seconds=30)
    (rejected,) = h.lifecycle("c-missing", "recording.rejected")
    assert rejected["reason"] == "source_missing" and "after 4 lookups" in rejected["detail"]


async def test_a_recording_past_its_retention_is_never_archived(h: Harness) -> None:
    call = a_call("c-old", start=DEFAULT_START - timedelta(days=40))
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    (rejected,) = h.lifecycle("c-old", "recording.rejected")
    assert rejected["reason"] == "retention_elapsed" and rejected["source_deleted"] is True
    assert h.objects(h.settings.recordings_bucket) == [] and h.objects(h.settings.staging_bucket) == []
    assert "metadata.archived" in h.types("c-old")  # its own 6 months have not passed


async def test_a_source_outside_the_upload_buckets_is_a_dead_letter(h: Harness) -> None:
    call = a_call("c-foreign")
    await h.send({**call.stored(), "source_uri": "s3://other-app/payroll.xlsx"})
    (letter,) = h.dead_letters
    assert "nothing was read or deleted" in letter.error


async def test_duplicates_and_disorder_give_one_outcome(h: Harness) -> None:
    call = a_call("c-dup")
    h.upload(call.staging_key, call.audio)
    started, disclosure, stored, ended = call.started(), call.disclosure(), call.stored(), call.ended()
    # Recording first, everything twice, the start last; then well past the grace.
    await h.send(stored, stored, ended, disclosure, ended, disclosure, started, stored)
    await h.advance(minutes=10)
    types = [e["type"] for e in h.lifecycle("c-dup")]
    assert types.count("recording.archived") == 1 and types.count("disclosure.verified") == 1
    assert "recording.rejected" not in types
    ids = [e["event_id"] for e in h.lifecycle("c-dup")]
    assert len(ids) == len(set(ids)), "a repeated input must not produce repeated proof"


async def test_a_month_later_the_recording_is_purged_and_six_months_later_the_metadata(h: Harness) -> None:
    call = a_call("c-month")
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    await h.advance(days=31)
    (deleted,) = h.lifecycle("c-month", "recording.deleted")
    assert deleted["reason"] == "retention_elapsed" and h.objects(h.settings.recordings_bucket) == []
    assert "metadata.deleted" not in h.types("c-month")
    await h.advance(days=31 * 5)
    assert "metadata.deleted" in h.types("c-month")
    left = h.objects(h.settings.metadata_bucket)
    assert "acme/2026/03/02/c-month.json" not in left, left


async def test_a_held_call_outlives_its_month_and_goes_once_released(h: Harness) -> None:
    call = a_call("c-held")
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    now = format_rfc3339(h.clock.now())
    await h.command(
        {
            "type": "legal_hold.place",
            "event_id": str(uuid.uuid4()),
            "call_id": "c-held",
            "requested_by": "legal",
            "requested_at": now,
            "reason": "dispute",
        }
    )
    await h.advance(days=40)
    assert "recording.deleted" not in h.types("c-held")
    assert h.objects(h.settings.recordings_bucket) == ["acme/2026/03/02/c-held.wav"]
    await h.command(
        {
            "type": "legal_hold.release",
            "event_id": str(uuid.uuid4()),
            "call_id": "c-held",
            "requested_by": "legal",
            "requested_at": format_rfc3339(h.clock.now()),
            "reason": "settled",
        }
    )
    assert "legal_hold.released" in h.types("c-held")
    (deleted,) = h.lifecycle("c-held", "recording.deleted")  # the next pass, right after the release
    assert deleted["reason"] == "retention_elapsed" and deleted["lateness_s"] > 8 * 86400, "late by the hold"
    assert h.objects(h.settings.recordings_bucket) == []


async def test_a_subject_erasure_removes_that_subjects_calls(h: Harness) -> None:
    from callvault.stream.subject_client import subject_command

    call = a_call("c-erase")
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    command = subject_command(
        h.settings,
        "erase",
        CALLER,
        "acme",
        command_id=uuid.uuid4(),
        requested_by="dpo",
        reason="e-mail",
        verified_by="desk",
        received_at=None,
        now=h.clock.now(),
    )
    await h.command(command)
    assert "subject.erased" in {e["type"] for e in h.events}
    assert h.objects(h.settings.recordings_bucket) == []


# -- moved from tests/integration/test_outcomes.py: what the processor decides, not the wiring --


async def test_same_size_other_bytes_is_a_checksum_mismatch_and_no_copy_is_left(h: Harness) -> None:
    """Same size, other bytes: only the store-computed SHA-256 can tell."""
    call = a_call("c-flip")
    h.upload(call.staging_key, bytes([call.audio[0] ^ 0xFF]) + call.audio[1:])
    await h.send(call.started(), call.disclosure(), call.stored())
    (rejected,) = h.lifecycle("c-flip", "recording.rejected")
    assert rejected["reason"] == "checksum_mismatch" and "SHA-256" in rejected["detail"]
    assert h.objects(h.settings.recordings_bucket) == [], "no copy left behind"


async def test_a_source_the_store_refuses_is_rejected_and_the_next_call_goes_on(h: Harness) -> None:
    """A source in an archive tier: HEAD answers, the copy and a read answer 403 for good."""
    call = a_call("c-glacier")
    h.s3.put_object(
        Bucket=h.settings.staging_bucket, Key=call.staging_key, Body=call.audio, StorageClass="GLACIER"
    )
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    (rejected,) = h.lifecycle("c-glacier", "recording.rejected")
    assert rejected["reason"] == "source_unreadable" and rejected["source_deleted"] is False
    assert "InvalidObjectState" in rejected["detail"]
    assert h.objects(h.settings.staging_bucket) == [call.staging_key], "the source is the producer's to fix"
    after = a_call("c-after-glacier")
    h.upload(after.staging_key, after.audio)
    await h.send(after.started(), after.disclosure(), after.stored(), after.ended())
    assert "recording.archived" in h.types("c-after-glacier")


async def test_a_missing_source_uploaded_during_the_lookups_is_archived(h: Harness) -> None:
    call = a_call("c-slow-upload")
    await h.send(call.started(), call.disclosure(), call.stored())
    await h.advance(seconds=30)
    assert "recording.archived" not in h.types("c-slow-upload")
    h.upload(call.staging_key, call.audio)
    await h.advance(seconds=30)
    assert "recording.archived" in h.types("c-slow-upload")
    assert "recording.rejected" not in h.types("c-slow-upload")


async def test_metadata_is_written_again_once_the_start_is_known(h: Harness) -> None:
    call = a_call("c-nostart")
    h.upload(call.staging_key, call.audio)
    await h.send(call.disclosure(), call.stored())
    assert "recording.archived" in h.types("c-nostart")
    await h.send(call.started(), call.ended())
    last = h.lifecycle("c-nostart", "metadata.archived")[-1]
    doc = json.loads(h.read(h.settings.metadata_bucket, last["object"]["key"]))
    assert doc["start_reported"] is True and doc["duration_s"] == 38.0


async def test_a_source_bucket_the_store_has_not_got_is_unreadable_at_once() -> None:
    """Allowed by CALLVAULT_SOURCE_BUCKETS, never made: `source_unreadable`, with no lookups to wait."""
    async with Harness(Settings(source_buckets="callvault-uploads-never-made")) as h:
        call = CallScript(
            call_id="c-no-bucket", start=DEFAULT_START, staging_bucket="callvault-uploads-never-made"
        )
        await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
        (rejected,) = h.lifecycle("c-no-bucket", "recording.rejected")
        assert rejected["reason"] == "source_unreadable", rejected
        assert "NoSuchBucket" in rejected["detail"] and rejected["source_deleted"] is False
