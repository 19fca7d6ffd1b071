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
from callvault.storage.layout import metadata_key, recording_key
from callvault.testing import read_archived
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
        assert read_archived(bus.s3, settings, settings.recordings_bucket, _rec_key(call)) == call.audio
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
        raw = read_archived(bus.s3, settings, settings.metadata_bucket, meta_key)
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
