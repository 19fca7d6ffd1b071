"""Uploads in another store than the archive: recordings streamed across, hashed on the way."""

from __future__ import annotations

import asyncio
import hashlib
import secrets

import pytest

from callvault.embedded.stack import EmbeddedStack
from callvault.storage.client import make_s3_client, make_staging_s3_client
from callvault.storage.layout import recording_key
from callvault.testing import read_archived
from tests.conftest import make_settings, prepare_async, spawn_worker
from tests.integration.helpers import Bus
from tests.stack import Servers

pytestmark = pytest.mark.integration


async def test_recordings_are_streamed_from_a_separate_staging_store(servers: Servers) -> None:
    producer_store = EmbeddedStack()  # only its object store: the platform's own S3
    producer_store.start_store()
    try:
        settings = make_settings(
            servers, "x" + secrets.token_hex(3), staging_s3_endpoint=producer_store.s3_endpoint
        )
        await prepare_async(settings)
        archive = make_s3_client(settings)
        staging = make_staging_s3_client(settings)
        assert staging.head_bucket(Bucket=settings.staging_bucket)  # made in the producer's store
        worker = spawn_worker(settings, "worker-staging-elsewhere")
        try:
            async with Bus(settings) as bus:
                bus.s3 = staging  # the producer uploads to its own store
                good, bad = bus.script(), bus.script()
                await bus.send_call(good)
                await bus.upload(bad, body=bytes([bad.audio[0] ^ 0xFF]) + bad.audio[1:])
                await bus.send(bad.started(), bad.disclosure(), bad.stored())

                await bus.wait_types(good.call_id, "recording.archived", "metadata.archived", timeout=60)
                key = recording_key(good.tenant, good.call_id, good.recording_start, "wav")
                body = read_archived(archive, settings, settings.recordings_bucket, key)
                assert hashlib.sha256(body).hexdigest() == hashlib.sha256(good.audio).hexdigest()
                assert not bus.exists(settings.staging_bucket, good.staging_key), "source deleted there"

                await bus.wait_types(bad.call_id, "recording.rejected", timeout=60)
                rejected = bus.events_of(bad.call_id, "recording.rejected")[0]
                assert rejected["reason"] == "checksum_mismatch"
                bad_key = recording_key(bad.tenant, bad.call_id, bad.recording_start, "wav")
                page = await asyncio.to_thread(
                    archive.list_object_versions, Bucket=settings.recordings_bucket, Prefix=bad_key
                )
                assert not page.get("Versions") and not page.get("DeleteMarkers"), "nothing left behind"
                assert bus.exists(settings.staging_bucket, bad.staging_key), "source kept for a resend"
        finally:
            worker.stop()
    finally:
        producer_store.stop()


def test_a_large_recording_streams_in_parts(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import os

    from callvault.storage import archive as s3ops

    monkeypatch.setattr(s3ops, "STREAM_PART", 5 * 1024 * 1024)  # S3's smallest part
    s3 = make_s3_client(settings)
    data = os.urandom(11 * 1024 * 1024)
    s3.put_object(Bucket=settings.staging_bucket, Key="big/source.wav", Body=data)
    outcome = s3ops.copy_recording(
        s3, source_s3=s3, source_bucket=settings.staging_bucket, source_key="big/source.wav",
        target_bucket=settings.recordings_bucket, target_key="big/2026/01/01/big.wav",
        sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), content_type="audio/wav",
        tags={"retention-class": "recording", "tenant": "big"}, extra_metadata={},
    )  # fmt: skip
    assert outcome.status == "archived", outcome.detail
    head = s3.head_object(Bucket=settings.recordings_bucket, Key="big/2026/01/01/big.wav")
    assert head["ETag"].strip('"').endswith("-3"), "three parts of at most 5 MiB"
    body = s3.get_object(Bucket=settings.recordings_bucket, Key="big/2026/01/01/big.wav")["Body"].read()
    assert body == data
    tags = s3.get_object_tagging(Bucket=settings.recordings_bucket, Key="big/2026/01/01/big.wav")["TagSet"]
    assert {"Key": "tenant", "Value": "big"} in tags


def test_a_mismatched_copy_left_by_a_crash_is_removed_by_the_replay(settings) -> None:  # noqa: ANN001
    """The copy happened, the answer never came (a kill, a cut connection): the replay removes it."""
    from callvault.storage import archive as s3ops

    s3 = make_s3_client(settings)
    announced = hashlib.sha256(b"the announced bytes").hexdigest()
    source, target = "crash/source.wav", "crash/2026/01/01/crash.wav"
    s3.put_object(Bucket=settings.staging_bucket, Key=source, Body=b"other bytes, same size!!")
    # What the copy that lost its answer left: other bytes, under the announced hash.
    s3.copy_object(
        CopySource={"Bucket": settings.staging_bucket, "Key": source},
        Bucket=settings.recordings_bucket, Key=target, MetadataDirective="REPLACE",
        Metadata={s3ops.SHA_META: announced}, ChecksumAlgorithm="SHA256",
    )  # fmt: skip
    outcome = s3ops.copy_recording(
        s3, source_bucket=settings.staging_bucket, source_key=source,
        target_bucket=settings.recordings_bucket, target_key=target, sha256=announced,
        size_bytes=len(b"other bytes, same size!!"), content_type="audio/wav",
        tags={"retention-class": "recording", "tenant": "crash"}, extra_metadata={},
    )  # fmt: skip
    assert outcome.status == "mismatch"
    versions = s3.list_object_versions(Bucket=settings.recordings_bucket, Prefix=target)
    assert not versions.get("Versions"), "neither the left copy nor the new one stays"
