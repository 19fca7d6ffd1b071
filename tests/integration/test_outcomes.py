"""What only the real broker and S3 endpoint show of the outcome table.

The table's rows themselves (the grace, each kind of non-compliant disclosure,
objection, checksum mismatch and resend, same-size other bytes, a missing
source and one uploaded during the lookups, a source the store refuses,
elapsed retention, metadata waiting for the call's start, disorder and
duplicates) run in memory in `tests/unit/test_harness.py`, on the same
processor. Here stay a whole call through the worker process to a real store
(the archive's tags and bytes, the metadata document), and no phone number on
any topic.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from callvault.contract.fields import format_rfc3339
from callvault.embedded.processes import ChildProcess
from callvault.rules.retention import RetentionClass
from callvault.settings import Settings
from callvault.simulation.audio import make_wav
from callvault.storage.layout import metadata_key, recording_key
from tests.integration.helpers import CALLEE, CALLER, Bus

pytestmark = pytest.mark.integration


def _rec_key(call) -> str:  # noqa: ANN001
    return recording_key(call.tenant, call.call_id, call.recording_start, "wav")


def _meta_key(call) -> str:  # noqa: ANN001
    return metadata_key(call.tenant, call.call_id, call.start)


async def test_compliant_recording_is_archived_with_tags_and_metadata(
    settings: Settings, worker: ChildProcess
) -> None:
    async with Bus(settings) as bus:
        call = bus.script()
        await bus.send_call(call)
        events = await bus.wait_types(
            call.call_id, "disclosure.verified", "recording.archived", "metadata.archived"
        )

        archived = bus.events_of(call.call_id, "recording.archived")[0]
        assert archived["object"]["bucket"] == settings.recordings_bucket
        assert archived["object"]["key"] == _rec_key(call)
        assert archived["object"]["sha256"] == hashlib.sha256(call.audio).hexdigest()
        body = bus.s3.get_object(Bucket=settings.recordings_bucket, Key=_rec_key(call))["Body"].read()
        assert body == call.audio
        tags = {t["Key"]: t["Value"] for t in bus.s3.get_object_tagging(
            Bucket=settings.recordings_bucket, Key=_rec_key(call))["TagSet"]}  # fmt: skip
        expected_expiry = settings.retention.expires_at(RetentionClass.RECORDING, call.recording_start)
        assert tags == {
            "retention-class": "recording",
            "expires-at": format_rfc3339(expected_expiry),
            "tenant": "acme",
        }
        assert not bus.exists(settings.staging_bucket, call.staging_key), "source must be deleted"

        verified = bus.events_of(call.call_id, "disclosure.verified")[0]
        assert verified["prompt_id"] == "notice-v2"
        # Metadata: written, tagged, pseudonymized (no phone number anywhere in it).
        await bus.wait_types(call.call_id, "metadata.archived")
        meta_events = bus.events_of(call.call_id, "metadata.archived")
        meta_key = meta_events[-1]["object"]["key"]
        assert meta_key == _meta_key(call)
        raw = bus.s3.get_object(Bucket=settings.metadata_bucket, Key=meta_key)["Body"].read()
        doc = json.loads(raw)
        assert doc["recording"]["outcome"] == "archived"
        assert doc["disclosure"]["verdict"] == "compliant"
        assert CALLER.encode() not in raw and CALLER[1:].encode() not in raw
        assert CALLEE.encode() not in raw
        assert len(doc["participants"]["caller"]) == 64
        meta_tags = {t["Key"]: t["Value"] for t in bus.s3.get_object_tagging(
            Bucket=settings.metadata_bucket, Key=meta_key)["TagSet"]}  # fmt: skip
        assert meta_tags["retention-class"] == "metadata"
        # Every lifecycle event id is unique.
        ids = [e["event_id"] for e in events]
        assert len(ids) == len(set(ids))


async def test_no_phone_number_reaches_any_topic_but_call_events(
    settings: Settings, worker: ChildProcess
) -> None:
    from callvault.stream.bus import read_topic

    async with Bus(settings) as bus:
        call = bus.script()
        await bus.send_call(call)
        await bus.wait_types(call.call_id, "recording.archived", "metadata.archived")
    topics = [settings.lifecycle_topic, settings.calls_topic, f"{settings.app_id}-call-state-changelog"]
    for topic in topics:
        async for key, value in read_topic(settings.kafka_bootstrap, topic, idle_s=1.0):
            blob = (key or b"") + (value or b"")
            for number in (CALLER, CALLEE):
                assert number.encode() not in blob, f"{number} found on {topic}"
                assert number[1:].encode() not in blob, f"{number} found on {topic}"
                assert base64.b64encode(number.encode()) not in blob


async def test_payment_calls_are_secured_or_rejected_with_their_source_gone(
    settings: Settings, worker: ChildProcess
) -> None:
    """Card data (issue 28) through the worker process and a real store: a payment inside a silent pause
    is archived and proven; one the pause starts too late for, or whose paused audio is speech, is
    rejected, its upload deleted at once and nothing archived."""
    async with Bus(settings) as bus:
        clean = bus.script(audio=make_wav(281, 30.0, [(0.0, 25.0)]))
        late = bus.script(audio=make_wav(282, 30.0, [(3.0, 25.0)]))
        loud = bus.script(audio=make_wav(283, 30.0))
        for call, pause_s in ((clean, -5.0), (late, 3.0), (loud, -5.0)):
            events = [call.started(), call.disclosure(), *call.paused_payment(pause_s=pause_s), call.stored()]
            await bus.send_call(call, *events, call.ended())
        await bus.wait_types(clean.call_id, "recording.archived", "payment.secured", "metadata.archived")
        (secured,) = bus.events_of(clean.call_id, "payment.secured")
        assert secured["audio_checked"] and secured["loudest_paused_dbfs"] < settings.pause_silence_dbfs
        body = bus.s3.get_object(Bucket=settings.recordings_bucket, Key=_rec_key(clean))["Body"].read()
        assert body == clean.audio
        for call, reason in ((late, "card_data_exposed"), (loud, "pause_not_silent")):
            await bus.wait_types(call.call_id, "recording.rejected", "metadata.archived")
            (rejected,) = bus.events_of(call.call_id, "recording.rejected")
            assert rejected["reason"] == reason and rejected["source_deleted"], rejected
            left = bus.s3.list_object_versions(Bucket=settings.staging_bucket, Prefix=call.staging_key)
            assert not left.get("Versions"), "the upload is gone at once, every version"
            assert not bus.exists(settings.recordings_bucket, _rec_key(call))
            assert bus.events_of(call.call_id, "payment.secured") == []
