"""Issue 29 in memory: each client's recordings and metadata sealed under its own key, read by range,
refused when altered, and unreadable once the client's key is shredded, but for its held calls."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest

from callvault.contract.sealed import SEGMENT_BYTES
from callvault.settings import Settings
from callvault.simulation.audio import make_wav
from callvault.storage.archive import put_document
from callvault.storage.holds import HoldRecord, put_hold
from callvault.storage.sealing import KeyRefused, Keyring, SealedRefused, open_plain, read_plain
from callvault.storage.tenant_keys import make_kms_client, tenant_key
from callvault.stream.offboarding import Offboarding
from callvault.testing import Harness
from tests.integration.helpers import CallScript
from tests.unit.test_subjects_in_memory import new_number


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        harness.s3.create_bucket(
            Bucket="backups", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield harness


async def archived(h: Harness, tenant: str = "acme", seconds: float = 1.0) -> CallScript:
    call = CallScript(
        call_id=f"c-{uuid.uuid4().hex[:8]}", tenant=tenant, start=h.clock.now(), caller=new_number(),
        audio=make_wav(int(uuid.uuid4().int % 10_000), seconds),
    )  # fmt: skip
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    assert {"recording.archived", "metadata.archived"} <= h.types(call.call_id)
    return call


def stored(h: Harness, event: dict[str, Any]) -> bytes:
    """The bytes at rest, as anyone who can read the bucket gets them."""
    obj = event["object"]
    return bytes(h.s3.get_object(Bucket=obj["bucket"], Key=obj["key"])["Body"].read())


def event_of(h: Harness, call: CallScript, type_: str) -> dict[str, Any]:
    return h.lifecycle(call.call_id, type_)[-1]


async def test_what_is_archived_is_sealed_under_the_clients_key_and_its_events_say_how(h: Harness) -> None:
    call = await archived(h, seconds=3.0)
    kms = make_kms_client(h.settings)
    arn = tenant_key(kms, "acme")["Arn"]  # type: ignore[index]  # made at the client's first call
    for type_, plain in (("recording.archived", call.audio), ("metadata.archived", None)):
        event = event_of(h, call, type_)
        at_rest = stored(h, event)
        opened = h.read(event["object"]["bucket"], event["object"]["key"])
        plain = plain if plain is not None else opened
        assert opened == plain and event["object"]["sha256"] == hashlib.sha256(plain).hexdigest()
        assert event["stored_sha256"] == hashlib.sha256(at_rest).hexdigest() != event["object"]["sha256"]
        assert event["key_id"] == arn and at_rest.startswith(b"CVS1")
        chunks = [plain[i : i + 32] for i in range(0, len(plain) - 32, 32)]
        assert not [c for c in chunks if c in at_rest], "no 32-byte piece of the plaintext is stored"
    doc = json.loads(
        h.read(h.settings.metadata_bucket, event_of(h, call, "metadata.archived")["object"]["key"])
    )
    assert doc["call_id"] == call.call_id and b"disclosure" not in stored(
        h, event_of(h, call, "metadata.archived")
    )


async def test_a_range_is_read_from_the_segments_it_covers_and_equals_the_source(h: Harness) -> None:
    call = await archived(h, seconds=10.0)  # 160 KB: three segments
    obj = event_of(h, call, "recording.archived")["object"]
    assert len(call.audio) > 2 * SEGMENT_BYTES
    keyring = Keyring.for_settings(h.settings)
    edges = [
        0,
        1,
        SEGMENT_BYTES - 1,
        SEGMENT_BYTES,
        SEGMENT_BYTES + 1,
        2 * SEGMENT_BYTES,
        len(call.audio) - 1,
    ]
    for first in edges:
        for last in edges:
            if last < first:
                continue
            body = open_plain(h.s3, keyring, obj["bucket"], obj["key"], first, last)
            assert body.read() == call.audio[first : last + 1], (first, last)
    whole = open_plain(h.s3, keyring, obj["bucket"], obj["key"])
    assert b"".join(iter(lambda: whole.read(10_000), b"")) == call.audio


@pytest.mark.parametrize("where", ["first segment", "last segment", "header", "wrapped key in metadata"])
async def test_an_altered_object_is_refused_with_a_sentence_never_garbage(h: Harness, where: str) -> None:
    call = await archived(h, seconds=5.0)
    obj = event_of(h, call, "recording.archived")["object"]
    answer = h.s3.get_object(Bucket=obj["bucket"], Key=obj["key"])
    data, meta = bytearray(answer["Body"].read()), dict(answer["Metadata"])
    header_end = 8 + int.from_bytes(data[4:8], "big")
    if where == "first segment":
        data[header_end + 100] ^= 1
    elif where == "last segment":
        data[-20] ^= 1
    elif where == "header":
        at = data.index(b'"salt":"') + 8  # the salt the object's key is derived with, edited
        data[at] = ord("B") if data[at] != ord("B") else ord("C")
    else:
        meta["wrapped-key"] = meta["wrapped-key"][:-8] + "AAAAAAA="
    # Behind callvault's back: a new version with the edit, same metadata.
    h.s3.put_object(Bucket=obj["bucket"], Key=obj["key"], Body=bytes(data), Metadata=meta)
    with pytest.raises((SealedRefused, KeyRefused)) as refused:
        h.read(obj["bucket"], obj["key"])
    assert "altered" in str(refused.value) or "edited" in str(refused.value), refused.value


async def test_a_shredded_clients_copies_open_no_more_but_its_held_call_and_other_clients_do(
    h: Harness,
) -> None:
    leaving = [await archived(h, "leaving") for _ in range(2)]
    staying = await archived(h, "staying")
    held = leaving[1]
    put_hold(h.s3, h.settings.metadata_bucket, HoldRecord(
        call_id=held.call_id, tenant="leaving", reason="dispute", placed_by="legal", placed_at=h.clock.now(),
        command_id=str(uuid.uuid4()),
    ))  # fmt: skip
    await h.advance(seconds=10)  # the worker rereads the holds
    # A copy outside callvault's reach: a backup of the stored object, bytes and metadata.
    rec = event_of(h, leaving[0], "recording.archived")["object"]
    answer = h.s3.get_object(Bucket=rec["bucket"], Key=rec["key"])
    backup = bytes(answer["Body"].read()), dict(answer["Metadata"])
    h.s3.put_object(Bucket="backups", Key="nightly/leaving.wav", Body=backup[0], Metadata=backup[1])

    job = Offboarding(h.settings, h._runner, h._emit, h.clock, dest=h.s3, settle_s=0)
    outcome = await job.run("leaving", reason="contract ended", by="dpo", return_to=None, erase=True)
    (destroyed,) = h.lifecycle(type_="tenant.key_destroyed")
    assert outcome.key is not None and "held call(s) kept under the hold key" in outcome.key, outcome.key

    fresh = Keyring.for_settings(h.settings)  # nothing unwrapped before the shred is reused
    with pytest.raises(KeyRefused, match="PendingDeletion: the client's data was shredded"):
        read_plain(h.s3, fresh, "backups", "nightly/leaving.wav")
    # An old version restored behind callvault's back: closed too.
    h.s3.put_object(Bucket=rec["bucket"], Key=rec["key"], Body=backup[0], Metadata=backup[1])
    with pytest.raises(KeyRefused):
        read_plain(h.s3, fresh, rec["bucket"], rec["key"])
    assert destroyed["key_id"] == backup[1]["key-id"]
    for call, audio in ((held, held.audio), (staying, staying.audio)):
        obj = event_of(h, call, "recording.archived")["object"]
        assert read_plain(h.s3, fresh, obj["bucket"], obj["key"])[0] == audio, call.tenant
        meta = event_of(h, call, "metadata.archived")["object"]
        assert json.loads(read_plain(h.s3, fresh, meta["bucket"], meta["key"])[0])["call_id"] == call.call_id


async def test_objects_stored_before_sealing_stay_readable(h: Harness) -> None:
    body = json.dumps({"call_id": "c-old"}).encode()
    put_document(h.s3, bucket=h.settings.metadata_bucket, key="acme/2026/03/01/c-old.json", body=body,
                 sha256=hashlib.sha256(body).hexdigest(), tags={"retention-class": "metadata"})  # fmt: skip
    assert h.read(h.settings.metadata_bucket, "acme/2026/03/01/c-old.json") == body


def test_encryption_off_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="CALLVAULT_ENCRYPTION_OFF_REASON"):
        Settings(encryption="off")
    assert Settings(encryption="off", encryption_off_reason="a test store").encryption_notice()
