"""What only the real broker and S3 endpoint show of the outcome table.

The table's rows themselves (the grace, each kind of non-compliant disclosure,
objection, checksum mismatch and resend, a missing source, elapsed retention,
disorder and duplicates) run in memory in `tests/unit/test_harness.py`, on the
same processor. Here stay the archive's tags and bytes on a real store, a
same-size different-bytes copy only the store's checksum catches, an upload
that lands during the retries, metadata waiting for the call's start, a source
the store refuses, and no phone number on any topic.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import pytest

from callvault.contract.fields import format_rfc3339
from callvault.embedded.processes import ChildProcess
from callvault.rules.retention import RetentionClass
from callvault.settings import Settings
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


async def test_same_sha_wrong_bytes_is_a_checksum_mismatch(settings: Settings, worker: ChildProcess) -> None:
    """Same size, other bytes: only the store-computed SHA-256 can tell."""
    async with Bus(settings) as bus:
        call = bus.script()
        flipped = bytes([call.audio[0] ^ 0xFF]) + call.audio[1:]
        await bus.upload(call, body=flipped)
        await bus.send(call.started(), call.disclosure(), call.stored())
        await bus.wait_types(call.call_id, "recording.rejected")
        rejected = bus.events_of(call.call_id, "recording.rejected")[0]
        assert rejected["reason"] == "checksum_mismatch"
        assert "SHA-256" in rejected["detail"]
        assert bus.versions(settings.recordings_bucket, _rec_key(call)) == 0, "no copy left behind"


async def test_a_source_the_store_refuses_is_rejected_and_the_partition_goes_on(
    settings: Settings, worker: ChildProcess
) -> None:
    """A source in an archive tier: HEAD answers, the copy and a read answer 403 for good.

    On main the worker retried the copy for ever, so the call's partition stalled.
    """
    async with Bus(settings) as bus:
        call = bus.script()
        await asyncio.to_thread(
            bus.s3.put_object,
            Bucket=settings.staging_bucket,
            Key=call.staging_key,
            Body=call.audio,
            StorageClass="GLACIER",
        )
        await bus.send(call.started(), call.disclosure(), call.stored(), call.ended())
        await bus.wait_types(call.call_id, "recording.rejected", timeout=40)
        rejected = bus.events_of(call.call_id, "recording.rejected")[0]
        assert rejected["reason"] == "source_unreadable"
        assert "InvalidObjectState" in rejected["detail"] and rejected["source_deleted"] is False
        assert bus.exists(settings.staging_bucket, call.staging_key), "the source is the producer's to fix"
        after = bus.script(call_id=call.call_id + "-next")
        await bus.send_call(after)
        await bus.wait_types(after.call_id, "recording.archived")
        # Other tests read every object in staging; one in an archive tier cannot be read.
        await asyncio.to_thread(bus.s3.delete_object, Bucket=settings.staging_bucket, Key=call.staging_key)


async def test_missing_source_uploaded_during_the_retries_is_archived(
    settings: Settings, worker: ChildProcess
) -> None:
    async with Bus(settings) as bus:
        call = bus.script()
        await bus.send(call.started(), call.disclosure(), call.stored())
        await bus.settle(0.3)
        await bus.upload(call)
        await bus.wait_types(call.call_id, "recording.archived", timeout=40)
        assert not bus.events_of(call.call_id, "recording.rejected")


async def test_metadata_is_written_once_the_start_is_known(settings: Settings, worker: ChildProcess) -> None:
    async with Bus(settings) as bus:
        call = bus.script()
        await bus.send_call(call, call.disclosure(), call.stored())
        await bus.wait_types(call.call_id, "recording.archived")
        await bus.send(call.started(), call.ended())
        events = await bus.wait_types(call.call_id, "metadata.archived")
        meta = [e for e in events if e["type"] == "metadata.archived"][-1]
        doc = json.loads(
            bus.s3.get_object(Bucket=settings.metadata_bucket, Key=meta["object"]["key"])["Body"].read()
        )
        assert doc["start_reported"] is True
        assert doc["duration_s"] == 38.0


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
