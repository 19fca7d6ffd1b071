"""The in-memory lane: the worker's real logic on moto's in-process S3 and a clock the test turns.

No broker, no child process, no waiting on wall time: every row of the
contract's outcome table, a month of retention and a subject erasure.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callvault.contract.fields import format_rfc3339
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
    body = h.s3.get_object(Bucket=h.settings.recordings_bucket, Key="acme/2026/03/02/c-sum.wav")["Body"]
    assert body.read() == call.audio


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


async def test_a_held_call_outlives_its_month(h: Harness) -> None:
    call = a_call("c-held")
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    now = format_rfc3339(datetime.now(UTC))
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
