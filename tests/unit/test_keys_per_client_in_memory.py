"""Issue 29 in memory: each client's recordings and metadata sealed under its own key, read by range,
refused when altered, and unreadable once the client's key is shredded, but for its held calls."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from rich.console import Console

from callvault.audit.store_walk import walk_store
from callvault.clock import SystemClock
from callvault.contract.sealed import SEGMENT_BYTES
from callvault.rules.client_policy import PolicyRefused
from callvault.rules.store_check import check_store, log_view
from callvault.settings import Settings
from callvault.simulation.audio import make_wav
from callvault.storage.archive import put_document
from callvault.storage.holds import HoldRecord, put_hold, set_object_lock_hold
from callvault.storage.rewrapping import Rewrap, rewrap_tenant
from callvault.storage.sealing import KeyRefused, Keyring, Seal, SealedRefused, open_plain, read_plain
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


async def test_a_rotated_key_re_wraps_every_object_once_and_a_stopped_run_resumes(h: Harness) -> None:
    calls = [await archived(h) for _ in range(2)]
    keyring = Keyring.for_settings(h.settings)
    arn = str(tenant_key(keyring.kms, "acme")["Arn"])  # type: ignore[index]
    keyring.kms.rotate_key_on_demand(KeyId=arn)
    # The rotation's instant is compared with the store's own dates (LastModified): the wall clock's, as
    # the command's.
    record = Rewrap(tenant="acme", key_id=arn, rotated_at=SystemClock().now())
    buckets = [h.settings.recordings_bucket, h.settings.metadata_bucket]
    seen: list[tuple[str, int, int]] = []
    assert rewrap_tenant(h.s3, keyring, buckets, record, SystemClock(), lambda *step: seen.append(step)) == 4
    assert seen[-1] == (h.settings.metadata_bucket, 2, 2)
    assert rewrap_tenant(h.s3, keyring, buckets, record, SystemClock()) == 0, (
        "a resumed run skips what is done"
    )
    for call in calls:
        obj = event_of(h, call, "recording.archived")["object"]
        versions = h.s3.list_object_versions(Bucket=obj["bucket"], Prefix=obj["key"])["Versions"]
        assert len(versions) == 1 and h.read(obj["bucket"], obj["key"]) == call.audio
        assert h.s3.head_object(Bucket=obj["bucket"], Key=obj["key"])["Metadata"]["rewrapped-at"]


async def test_verify_store_with_decrypt_names_what_does_not_open_and_what_is_unsealed(h: Harness) -> None:
    call = await archived(h)
    obj = event_of(h, call, "recording.archived")["object"]
    answer = h.s3.get_object(Bucket=obj["bucket"], Key=obj["key"])
    data = bytearray(answer["Body"].read())
    data[-3] ^= 1
    h.s3.put_object(Bucket=obj["bucket"], Key=obj["key"], Body=bytes(data), Metadata=answer["Metadata"])
    plain = json.dumps({"call_id": "c-old"}).encode()
    put_document(h.s3, bucket=h.settings.metadata_bucket, key="acme/2026/03/02/c-old.json", body=plain,
                 sha256=hashlib.sha256(plain).hexdigest(), tags={"retention-class": "metadata"})  # fmt: skip
    found = {
        f.key: f
        for f in walk_store(h.s3, h.settings, h.clock.now(), keyring=Keyring.for_settings(h.settings))
    }
    assert found[obj["key"]].opened is not None and found[obj["key"]].opened[0] is True
    assert "does not open: segment 0" in str(found[obj["key"]].opened[1])
    assert found["acme/2026/03/02/c-old.json"].opened == (False, None), "unsealed, and intact"
    meta_key = event_of(h, call, "metadata.archived")["object"]["key"]
    assert found[meta_key].opened == (True, None)
    view = log_view(h.lifecycle())
    rules = [
        f.rule
        for f in check_store([found[obj["key"]]], view, set(), h.clock.now(), timedelta(minutes=5), set())
    ]
    assert "plaintext_not_proven" in rules


async def test_a_client_brings_its_own_key_and_keeps_it_at_the_contracts_end(h: Harness) -> None:
    kms = make_kms_client(h.settings)
    own = str(kms.create_key(Description="acme's own key")["KeyMetadata"]["Arn"])
    before = await archived(h)  # under callvault's key for acme
    with pytest.raises(PolicyRefused, match="which CALLVAULT_ALLOWED_REGIONS does not allow"):
        await h.set_kms_key("acme", own.replace("eu-west-1", "us-east-1"))
    with pytest.raises(PolicyRefused, match="named by its KMS key ARN"):
        await h.set_kms_key("acme", "my-key")
    version = await h.set_kms_key("acme", own)
    assert version.kms_key == own and h.lifecycle(type_="policy.changed")[-1]["version"] == version.version
    after = await archived(h)
    assert event_of(h, after, "recording.archived")["key_id"] == own
    assert event_of(h, after, "metadata.archived")["key_id"] == own
    assert event_of(h, before, "recording.archived")["key_id"] != own
    assert (
        h.read(h.settings.recordings_bucket, event_of(h, after, "recording.archived")["object"]["key"])
        == after.audio
    )

    outcome = await Offboarding(h.settings, h._runner, h._emit, h.clock, dest=h.s3, settle_s=0).run(
        "acme", reason="contract ended", by="dpo", return_to=None, erase=True
    )
    assert outcome.key_note is not None and own in outcome.key_note
    assert kms.describe_key(KeyId=own)["KeyMetadata"]["KeyState"] == "Enabled", "the client's, not ours"
    assert tenant_key(kms, "acme")["KeyState"] == "PendingDeletion"  # type: ignore[index]  # callvault's


async def test_objects_archived_before_sealing_are_sealed_in_place_proven_and_resumed() -> None:
    from callvault.cli.storage import _seal_one
    from callvault.storage.layout import parse_archive_key
    from callvault.storage.sealing_in_place import seal_key

    before = Settings(encryption="off", encryption_off_reason="archived before issue 29")
    async with Harness(before) as h:
        calls = [await archived(h), await archived(h)]
        put_hold(h.s3, h.settings.metadata_bucket, HoldRecord(
            call_id=calls[1].call_id, tenant="acme", reason="dispute", placed_by="legal",
            placed_at=h.clock.now(), command_id=str(uuid.uuid4()),
        ))  # fmt: skip
        keyring = Keyring(make_kms_client(h.settings))
        objs = [
            event_of(h, c, t)["object"] for c in calls for t in ("recording.archived", "metadata.archived")
        ]
        held_rec = objs[2]  # the S3 legal hold `hold place` sets on a held call's objects
        set_object_lock_hold(h.s3, held_rec["bucket"], [(held_rec["key"], held_rec["version_id"])], True)
        assert all(stored(h, {"object": o}) == h.read(o["bucket"], o["key"]) for o in objs), "unsealed so far"
        # A run cut short: the first recording sealed, never proven, its unsealed version still there.
        first = objs[0]
        how = Seal(keyring, "acme", "recording")
        cut = seal_key(h.s3, first["bucket"], first["key"], how)
        assert cut is not None and not cut.resumed
        for obj in objs:
            parsed = parse_archive_key(obj["key"])
            assert parsed is not None
            kind = "recording" if obj["bucket"] == h.settings.recordings_bucket else "metadata"
            how_now = Seal(keyring, "acme", kind)
            said = await _seal_one(h.s3, h._emit, obj["bucket"], obj["key"], parsed, how_now, Console())
            assert said == ("finished" if obj is first else "sealed"), obj["key"]
        for call, obj in zip([c for c in calls for _ in (0, 1)], objs, strict=True):
            at_rest = stored(h, {"object": obj})
            assert at_rest.startswith(b"CVS1") and len(h.s3.list_object_versions(
                Bucket=obj["bucket"], Prefix=obj["key"])["Versions"]) == 1  # fmt: skip
            if obj["bucket"] == h.settings.recordings_bucket:
                assert h.read(obj["bucket"], obj["key"]) == call.audio
        proofs = h.lifecycle(type_="object.sealed")
        assert len(proofs) == 4 and {p["object"]["key"] for p in proofs} == {o["key"] for o in objs}
        found = list(walk_store(h.s3, h.settings, h.clock.now(), views=lambda b, d: log_view(h.lifecycle())))
        buckets = {h.settings.recordings_bucket, h.settings.metadata_bucket}
        held = {f"acme/{calls[1].call_id}"}
        findings = check_store(
            found, log_view(h.lifecycle()), held, h.clock.now(), timedelta(minutes=5), buckets
        )
        assert [f for f in findings if f.rule == "version_not_archived"] == [], findings
        version = h.s3.head_object(Bucket=held_rec["bucket"], Key=held_rec["key"])["VersionId"]
        hold = h.s3.get_object_legal_hold(Bucket=held_rec["bucket"], Key=held_rec["key"], VersionId=version)
        assert hold["LegalHold"]["Status"] == "ON", "the held call's sealed copy is held too"
        assert await _seal_one(h.s3, h._emit, first["bucket"], first["key"], parse_archive_key(first["key"]),  # type: ignore[arg-type]
                               how, Console()) == "already"  # fmt: skip


async def test_a_clients_object_copied_under_another_clients_key_is_refused(h: Harness) -> None:
    """Genuine bytes under the wrong client's key: they open, but are not served as that client's."""
    globex = await archived(h, "globex")
    acme = await archived(h, "acme")
    source = event_of(h, globex, "recording.archived")["object"]
    target = event_of(h, acme, "recording.archived")["object"]
    answer = h.s3.get_object(Bucket=source["bucket"], Key=source["key"])
    h.s3.put_object(Bucket=target["bucket"], Key=target["key"], Body=answer["Body"].read(),
                    Metadata=answer["Metadata"])  # fmt: skip
    with pytest.raises(SealedRefused, match="sealed for tenant 'globex' but stored under 'acme'"):
        h.read(target["bucket"], target["key"])
    keyring = Keyring.for_settings(h.settings)
    with pytest.raises(SealedRefused, match="moved there"):
        open_plain(h.s3, keyring, target["bucket"], target["key"], 0, 99)


async def test_an_object_hidden_by_a_delete_marker_is_not_brought_back_by_sealing() -> None:
    from callvault.storage.sealing_in_place import SealRefused, seal_key

    async with Harness(Settings(encryption="off", encryption_off_reason="archived before issue 29")) as h:
        call = await archived(h)
        obj = event_of(h, call, "metadata.archived")["object"]
        h.s3.delete_object(Bucket=obj["bucket"], Key=obj["key"])  # a marker on top, the version beneath
        how = Seal(Keyring(make_kms_client(h.settings)), "acme", "metadata")
        with pytest.raises(SealRefused, match="a delete marker hides it"):
            seal_key(h.s3, obj["bucket"], obj["key"], how)
        with pytest.raises(Exception, match="Not Found|404"):
            h.s3.head_object(Bucket=obj["bucket"], Key=obj["key"])
