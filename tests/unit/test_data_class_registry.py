"""One place per data class: the registry, and a throwaway class that needs no other edit.

A "transcript" class is declared here, in the test, as a new class would be in
`rules/data_classes.py`: its entry, a deletion event of its own and its two
settings. Registered for the test's duration, the real pieces handle it as they
handle recordings and metadata: the purger deletes it on its own term and
proves it, `audit verify-store`'s walk knows its bucket, erasure and the access
export take it by the subject index, offboarding returns and erases it, and the
replay judges its deletion by the field its term counts from.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import pytest
from pydantic import ValidationError

from callvault.audit.store_facts import LogFacts
from callvault.audit.store_walk import compare_by_day
from callvault.contract.base import deterministic_id
from callvault.contract.fields import Timestamp
from callvault.contract.lifecycle import LifecycleBase, LifecycleEvent, ObjectDeleted, ObjectRef
from callvault.rules.audit_replay import replay
from callvault.rules.data_classes import BUILT_IN, DataClass, data_class, data_classes, registered
from callvault.rules.retention import RetentionClass
from callvault.settings import IsoDuration, Settings, bucket_settings
from callvault.storage import archive as s3ops
from callvault.storage.layout import dating_metadata, day_prefix, lifecycle_tags
from callvault.storage.subject_index import IndexEntry, calls_of, put_entries
from callvault.stream.offboarding import Offboarding
from callvault.testing import Harness
from tests.integration.helpers import CallScript
from tests.unit.test_subjects_in_memory import archived_call, ask, new_number, pseudonym

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "lifecycle"
TOLERANCE = timedelta(minutes=10)


# -- the registry agrees with the enum, the settings and the contract -------------------


def test_the_enum_names_exactly_the_built_in_classes() -> None:
    assert {str(c.name) for c in BUILT_IN} == {m.value for m in RetentionClass}


@pytest.mark.parametrize("kind", BUILT_IN, ids=lambda c: str(c.name))
def test_each_class_has_its_settings_and_its_events_in_the_contract(kind: DataClass) -> None:
    fields = Settings.model_fields
    assert kind.bucket_setting in fields and kind.default_term_setting in fields
    assert kind.bucket_setting in bucket_settings()
    with pytest.raises(ValidationError, match="ISO 8601"):
        Settings(**{kind.default_term_setting: "a month"})
    union = {m.model_fields["type"].default for m in get_args(get_args(LifecycleEvent)[0])}
    assert {kind.archived_event, kind.deleted_event} <= union
    for event in (kind.archived_event, kind.deleted_event):
        assert (SCHEMAS / f"{event}.json").is_file(), f"no schema for {event}: run `callvault schemas write`"
    archived = next(
        m
        for m in get_args(get_args(LifecycleEvent)[0])
        if m.model_fields["type"].default == kind.archived_event
    )
    assert kind.counts_from in archived.model_fields, f"{kind.archived_event} has no {kind.counts_from}"
    settings = Settings()
    assert kind.bucket(settings) in settings.own_buckets
    assert kind.name in settings.retention.terms


def test_an_unknown_class_is_a_sentence_naming_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match="'transcript' is not a data class callvault keeps .*recording, metadata"
    ):
        data_class("transcript")


# -- a throwaway class ----------------------------------------------------------------


class TranscriptDeleted(ObjectDeleted):
    type: Literal["transcript.deleted"] = "transcript.deleted"


class TranscriptArchived(LifecycleBase):
    """What a transcript producer would emit; the replay and the walk read these fields."""

    type: Literal["transcript.archived"] = "transcript.archived"
    object: ObjectRef
    call_started_at: Timestamp
    expires_at: Timestamp


TRANSCRIPT = DataClass(
    name="transcript",
    bucket_setting="transcripts_bucket",
    default_term_setting="transcript_retention",
    counts_from="call_started_at",
    archived_event="transcript.archived",
    deleted_model=TranscriptDeleted,
    key_layout="{tenant}/{YYYY}/{MM}/{DD}/{call_id}.txt, dated by the call's start in UTC",
    served_as="transcript",
)


class TranscriptSettings(Settings):
    transcripts_bucket: str = "callvault-transcripts"
    transcript_retention: IsoDuration = "P2M"


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    with registered(TRANSCRIPT):
        async with Harness(TranscriptSettings()) as harness:
            yield harness


async def transcribe(h: Harness, call: CallScript) -> str:
    """A transcript of the call archived as a producer of the class would: dated, tagged, locked,
    named by the call's subject-index entries, and proven by its archived event."""
    settings, now = h.settings, h.clock.now()
    bucket = TRANSCRIPT.bucket(settings)
    key = f"{day_prefix(call.tenant, call.start.date())}/{call.call_id}.txt"
    body = f"transcript of {call.call_id}".encode()
    sha = hashlib.sha256(body).hexdigest()
    expires = settings.retention.expires_at(TRANSCRIPT.name, call.start)
    tags = lifecycle_tags(TRANSCRIPT.name, expires, call.tenant)
    ref = s3ops.put_document(
        h.s3, bucket=bucket, key=key, body=body, sha256=sha, tags=tags,
        extra_metadata=dating_metadata(call.start, now, None, None), retain_until=expires,
    ).ref  # fmt: skip
    for entry in calls_of(
        h.s3, settings.metadata_bucket, call.tenant, pseudonym(h, call.caller, call.tenant)
    ):
        if entry.call_id == call.call_id:
            named = IndexEntry.model_validate(
                entry.model_dump() | {"objects": entry.objects | {"transcript": key}}
            )
            put_entries(h.s3, settings.metadata_bucket, named, tags)
    await h._emit([
        TranscriptArchived(
            event_id=deterministic_id("transcript.archived", call.call_id, sha), call_id=call.call_id,
            tenant=call.tenant, occurred_at=now, object=ref, call_started_at=call.start, expires_at=expires,
        )
    ])  # fmt: skip
    return key


def findings(h: Harness, events: list[dict[str, Any]] | None = None) -> list[str]:
    """What `audit verify-store` finds of the store against the log."""
    with tempfile.TemporaryDirectory() as scratch:
        facts = LogFacts(Path(scratch) / "facts.sqlite")
        facts.add(h.events if events is None else events)
        try:
            _, found = compare_by_day(h.s3, h.settings, facts, set(), h.clock.now(), TOLERANCE)
        finally:
            facts.close()
    return [f"{f.rule} {f.key}" for f in found]


async def test_the_purger_the_walk_and_the_replay_handle_a_new_class(h: Harness) -> None:
    assert TRANSCRIPT in data_classes() and "callvault-transcripts" in h.settings.own_buckets
    call = await archived_call(h, new_number())
    key = await transcribe(h, call)
    bucket = TRANSCRIPT.bucket(h.settings)
    assert findings(h) == []
    log_before = list(h.events)
    planted = key.replace(call.call_id, "planted")
    h.s3.put_object(Bucket=bucket, Key=planted, Body=b"not in the log")
    assert findings(h) == [f"archived_without_event {planted}"]
    s3ops.delete_object(h.s3, bucket, planted)

    month = h.settings.retention.expires_at(RetentionClass.RECORDING, call.recording_start)
    await h.advance(seconds=(month - h.clock.now()).total_seconds() + 60)
    assert "recording.deleted" in h.types(call.call_id) and "transcript.deleted" not in h.types(call.call_id)
    due = h.settings.retention.expires_at(TRANSCRIPT.name, call.start)  # two months: its own term
    await h.advance(seconds=(due - h.clock.now()).total_seconds() + 60)
    (proof,) = h.lifecycle(call.call_id, "transcript.deleted")
    assert proof["reason"] == "retention_elapsed" and proof["object"]["key"] == key
    assert key not in h.objects(bucket)

    as_of = h.clock.now()
    judged = replay(h.events, as_of, TOLERANCE, h.settings.policy_defaults)
    assert judged.violations == [], judged.violations
    assert judged.deletions_on_time == 2  # the recording and the transcript; the metadata has six months
    unproven = replay(log_before, as_of + timedelta(hours=1), TOLERANCE, h.settings.policy_defaults)
    assert any(v.rule == "not_deleted" and key in v.detail for v in unproven.violations), unproven.violations


async def test_erasure_and_the_export_take_a_new_class(h: Harness) -> None:
    her = new_number()
    calls = [await archived_call(h, her) for _ in range(2)]
    keys = [await transcribe(h, call) for call in calls]
    bucket = TRANSCRIPT.bucket(h.settings)

    access = await ask(h, "access", her)
    assert access["type"] == "subject.access_fulfilled", access
    exported = h.s3.get_object(Bucket=h.settings.exports_bucket, Key=f"acme/{access['request_id']}.zip")
    with zipfile.ZipFile(io.BytesIO(exported["Body"].read())) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for call in calls:
            (item,) = [c for c in manifest["calls"] if c["call_id"] == call.call_id]
            assert item["transcript"] == f"transcripts/{call.call_id}.txt"
            assert archive.read(item["transcript"]) == f"transcript of {call.call_id}".encode()

    erased = await ask(h, "erase", her)
    assert erased["type"] == "subject.erased" and erased["calls"] == 2
    for call, key in zip(calls, keys, strict=True):
        (proof,) = h.lifecycle(call.call_id, "transcript.deleted")
        assert proof["reason"] == "erasure_request"
        assert key not in h.objects(bucket)


async def test_offboarding_returns_and_erases_a_new_class(h: Harness) -> None:
    h.s3.create_bucket(Bucket="leaving-own", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    call = await archived_call(h, new_number(), tenant="leaving")
    key = await transcribe(h, call)

    await Offboarding(h.settings, h._runner, h._emit, h.clock, dest=h.s3, settle_s=0).run(
        "leaving", reason="contract ended", by="dpo", return_to="s3://leaving-own/out", erase=True
    )

    manifest = json.loads(h.s3.get_object(Bucket="leaving-own", Key="out/manifest.json")["Body"].read())
    (returned,) = [f for f in manifest["files"] if f["class"] == "transcript"]
    assert returned["path"] == f"transcript/{key}"
    got = h.s3.get_object(Bucket="leaving-own", Key=f"out/{returned['path']}")["Body"].read()
    assert got == f"transcript of {call.call_id}".encode()
    assert key not in h.objects(TRANSCRIPT.bucket(h.settings))
    (proof,) = h.lifecycle(call.call_id, "transcript.deleted")
    assert proof["reason"] == "contract_end"


def test_the_registry_is_as_it_was_once_the_test_class_is_gone() -> None:
    with registered(TRANSCRIPT):
        assert data_class("transcript") is TRANSCRIPT
    assert data_classes() == BUILT_IN


class NoteDeleted(ObjectDeleted):
    type: Literal["note.deleted"] = "note.deleted"


# A second throwaway class: a coach's notes, with the texts the record of processing shows.
NOTE = DataClass(
    name="note", bucket_setting="notes_bucket", default_term_setting="note_retention",
    counts_from="call_started_at", archived_event="note.archived", deleted_model=NoteDeleted,
    key_layout="{tenant}/{YYYY}/{MM}/{DD}/{call_id}.md", served_as="note",
    holds="a coach's notes on the call", subjects="agents", readers="QA coaches",
)  # fmt: skip


def test_two_classes_registered_in_turn_do_not_share_the_replays_tables() -> None:
    from callvault.rules.audit_replay import _tables

    with registered(TRANSCRIPT):
        assert "transcript.deleted" in _tables().deleted
    with registered(NOTE):
        assert "note.deleted" in _tables().deleted and "transcript.deleted" not in _tables().deleted
    assert set(_tables().deleted) == {"recording.deleted", "metadata.deleted"}
