"""The storage adapter's one test case, run on every store lane with the same assertions.

What callvault needs of a store: buckets made as planned, a recording archived
with its tags and a checksum the store computed, versions and delete markers
erased for real, legal holds and COMPLIANCE retention that refuse deletion,
presigned links that open only untampered, uploads in parts, and a bucket's
location. Where a store falls short (Ceph RGW keeps a copy's source tags,
returns no checksum, refuses SSE-S3, has no AWS regions), callvault works
around it or says so; it never archives silently wrong.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from callvault.rules.audit_checkpoint import next_checkpoint, private_key
from callvault.rules.client_policy import PolicyVersion, Scope
from callvault.rules.retention import RetentionClass
from callvault.storage import audit_checkpoints, policies, store_profile
from callvault.storage.archive import (
    copy_recording,
    delete_object,
    delete_versions,
    object_tags,
    put_document,
    read_document,
)
from callvault.storage.audit_archive import write_segment
from callvault.storage.bootstrap import bucket_plans, init_storage
from callvault.storage.client import make_s3_client
from callvault.storage.errors import SourceFault, error_code, is_permanent
from callvault.storage.exports import presign
from callvault.storage.holds import set_object_lock_hold
from callvault.storage.location import reported_location, residency_problems
from callvault.storage.registry import write_entry
from callvault.storage.rewrapping import rewrap_object
from callvault.storage.sealing import Keyring, SealedRefused, open_plain, read_plain
from callvault.storage.tenant_keys import ensure_hold_key
from callvault.storage.uploads import MIN_PART_BYTES, PartUpload
from tests.stores.conftest import Store
from tests.stores.lanes import ACCEPTS_TAMPERED_LINKS, ACCEPTS_WRONG_MD5, SHORTENS_COMPLIANCE

pytestmark = pytest.mark.stores

TAGS = {"retention-class": RetentionClass.RECORDING.value, "expires-at": "2027-01-01T00:00:00Z"}


def _versions(store: Store, bucket: str, key: str) -> list[str]:
    page = store.s3.list_object_versions(Bucket=bucket, Prefix=key)
    entries = [*page.get("Versions", ()), *page.get("DeleteMarkers", ())]
    return [entry["VersionId"] for entry in entries if entry["Key"] == key]


def _keys(store: Store, bucket: str) -> list[str]:
    page = store.s3.list_object_versions(Bucket=bucket)
    return [entry["Key"] for entry in (*page.get("Versions", ()), *page.get("DeleteMarkers", ()))]


def _staged(store: Store, body: bytes, key: str = "t/c-1.wav") -> str:
    """A producer's upload, with a tag of its own that must not reach the archive."""
    store.s3.put_object(Bucket=store.settings.staging_bucket, Key=key, Body=body, Tagging="uploaded-by=pbx")
    return key


def _archive(store: Store, key: str, body: bytes, sha256: str | None = None, **kwargs: object):  # noqa: ANN202
    return copy_recording(
        store.s3, source_bucket=store.settings.staging_bucket, source_key=key,
        target_bucket=store.settings.recordings_bucket, target_key=f"acme/{key}",
        sha256=sha256 or hashlib.sha256(body).hexdigest(), size_bytes=len(body),
        content_type="audio/wav", tags=TAGS, extra_metadata={}, **kwargs,
    )  # fmt: skip


def test_init_makes_every_bucket_as_planned_and_again_changes_nothing(store: Store) -> None:
    by_name = {report.bucket: report for report in store.reports}
    for plan in bucket_plans(store.settings):
        report = by_name[plan.name]
        assert report.created
        if plan.versioning:
            assert report.versioning == "enabled"
        if plan.object_lock:
            assert report.object_lock == "enabled", report.notes
        # SSE-S3 where the store has it; where it refuses (Ceph RGW), the report says so.
        assert report.encryption == "AES256" or any("encryption" in note for note in report.notes)
        rules = (
            store.s3.get_bucket_lifecycle_configuration(Bucket=plan.name)["Rules"] if plan.expirations else []
        )
        for rule_id, tag, days, _prefix in plan.expirations:
            rule = next(r for r in rules if r["ID"] == rule_id)
            assert rule["Expiration"]["Days"] == days
            if tag:
                assert rule["Filter"] == {"Tag": {"Key": "retention-class", "Value": tag}}
    assert by_name[store.settings.recordings_bucket].lifecycle == ["backstop-recording: 38 days"]
    again = init_storage(store.s3, store.settings)
    assert not any(report.created for report in again)


def test_a_recording_is_archived_with_its_own_tags_and_a_checksum_the_store_proves(store: Store) -> None:
    body = os.urandom(40_000)
    outcome = _archive(store, _staged(store, body), body)
    assert outcome.status == "archived", outcome.detail
    ref = outcome.object
    assert ref is not None and ref.sha256 == hashlib.sha256(body).hexdigest()
    found = store.s3.head_object(Bucket=ref.bucket, Key=ref.key)
    assert ref.version_id == found["VersionId"]  # named even where the copy's answer does not (RGW)
    assert object_tags(store.s3, ref.bucket, ref.key, ref.version_id) == TAGS  # not the upload's tag
    assert found["Metadata"]["sha256"] == ref.sha256
    again = _archive(store, "t/c-1.wav", body)
    assert (again.status, again.detail) == ("archived", "already archived")
    assert _versions(store, ref.bucket, ref.key) == [ref.version_id]  # one version per recording


def test_storage_init_measures_whether_a_copy_keeps_its_new_tags(store: Store) -> None:
    """The worker reads each copy's tags back only where this says the store loses them (issue 25)."""
    profile = store_profile.load(store.s3, store.settings.metadata_bucket)
    assert profile is not None, "storage init records what it measured"
    if store.lane.name == "ceph rgw":
        assert not profile.keeps_copy_tags, "RGW 16.2 keeps the source's tags on a copy"
    elif store.lane.name.startswith("moto"):
        assert profile.keeps_copy_tags
    key = _staged(store, b"tagged once")
    outcome = _archive(store, key, b"tagged once", check_tags=not profile.keeps_copy_tags)
    assert outcome.status == "archived"
    assert object_tags(store.s3, store.settings.recordings_bucket, f"acme/{key}") == TAGS, "either way"
    assert not [k for k in _keys(store, store.settings.metadata_bucket) if "store-probe" in k], "probe gone"


def test_a_copy_whose_bytes_are_not_the_announced_ones_is_refused_and_removed(store: Store) -> None:
    body = os.urandom(10_000)
    outcome = _archive(store, _staged(store, body), body, sha256=hashlib.sha256(b"other").hexdigest())
    assert outcome.status == "mismatch" and "SHA-256" in outcome.detail
    assert _versions(store, store.settings.recordings_bucket, "acme/t/c-1.wav") == []


def test_a_recording_streamed_from_another_store_keeps_its_tags_and_hash(store: Store) -> None:
    body = os.urandom(70_000)
    outcome = _archive(store, _staged(store, body), body, source_s3=store.s3)  # the streamed path
    assert outcome.status == "archived", outcome.detail
    ref = outcome.object
    assert ref is not None and ref.version_id is not None
    assert object_tags(store.s3, ref.bucket, ref.key, ref.version_id) == TAGS
    read = store.s3.get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read()
    assert hashlib.sha256(read).hexdigest() == ref.sha256


@pytest.mark.parametrize("sealed", [False, True], ids=["copied", "sealed"])
def test_a_source_in_a_bucket_the_store_has_not_got_is_unreadable_for_good(
    store: Store, sealed: bool
) -> None:
    """An allowed source bucket (CALLVAULT_SOURCE_BUCKETS) that does not exist: no retry can help.

    HEAD answers a bare 404 for it, like a missing key; on main the call ended as
    `source_missing` after its lookups instead of `source_unreadable`. Sealed, the
    recording is read by one GET, which names the missing bucket itself.
    """
    seal = store.keyring().seal_for("acme", "recording") if sealed else None
    with pytest.raises(SourceFault) as caught:
        copy_recording(
            store.s3, source_bucket=f"{store.settings.staging_bucket}-gone", source_key="t/c-1.wav",
            target_bucket=store.settings.recordings_bucket, target_key="acme/t/c-1.wav",
            sha256="0" * 64, size_bytes=1, content_type="audio/wav", tags=TAGS, extra_metadata={}, seal=seal,
        )  # fmt: skip
    assert is_permanent(caught.value.cause) and error_code(caught.value.cause) == "NoSuchBucket"
    assert not _versions(store, store.settings.recordings_bucket, "acme/t/c-1.wav")


def test_a_document_is_written_with_its_tags_and_the_store_checks_its_bytes(store: Store) -> None:
    bucket, body = store.settings.metadata_bucket, b'{"call_id": "c-1"}'
    tags = {"retention-class": RetentionClass.METADATA.value}
    ref = put_document(store.s3, bucket=bucket, key="acme/c-1.json", body=body,
                       sha256=hashlib.sha256(body).hexdigest(), tags=tags).ref  # fmt: skip
    assert object_tags(store.s3, bucket, ref.key, ref.version_id) == tags
    with pytest.raises(ValueError, match="do not have the SHA-256"):
        put_document(store.s3, bucket=bucket, key="acme/c-2.json", body=body,
                     sha256=hashlib.sha256(b"other").hexdigest(), tags=tags)  # fmt: skip
    assert _versions(store, bucket, "acme/c-2.json") == []


def test_bytes_changed_on_the_way_never_land(store: Store) -> None:
    """The store checks the Content-MD5 that put_document sends with every document."""
    store.lenient(ACCEPTS_WRONG_MD5)
    bucket, body = store.settings.metadata_bucket, b'{"call_id": "c-1"}'
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as refused:
        store.s3.put_object(Bucket=bucket, Key="acme/c-3.json", Body=body, ContentMD5=wrong_md5)
    assert refused.value.response["Error"]["Code"] in {"BadDigest", "InvalidDigest"}
    assert _versions(store, bucket, "acme/c-3.json") == []


def test_erasing_a_versioned_object_leaves_no_version_and_no_delete_marker(store: Store) -> None:
    bucket = store.settings.metadata_bucket
    for text in (b"one", b"two"):
        store.s3.put_object(Bucket=bucket, Key="acme/c-1.json", Body=text)
    assert len(_versions(store, bucket, "acme/c-1.json")) == 2
    assert delete_object(store.s3, bucket, "acme/c-1.json") >= 2
    assert _versions(store, bucket, "acme/c-1.json") == []


def test_a_legal_hold_refuses_deletion_until_it_is_released(store: Store) -> None:
    bucket = store.settings.recordings_bucket
    version = store.s3.put_object(Bucket=bucket, Key="acme/c-1.wav", Body=b"audio")["VersionId"]
    assert set_object_lock_hold(store.s3, bucket, [("acme/c-1.wav", version)], True) == "on on 1 versions"
    with pytest.raises(ClientError) as refused:
        store.s3.delete_object(Bucket=bucket, Key="acme/c-1.wav", VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert set_object_lock_hold(store.s3, bucket, [("acme/c-1.wav", version)], False) == "off on 1 versions"
    store.s3.delete_object(Bucket=bucket, Key="acme/c-1.wav", VersionId=version)
    assert _versions(store, bucket, "acme/c-1.wav") == []


def test_an_archived_object_refuses_a_delete_from_outside_and_callvault_still_deletes_it(
    store: Store,
) -> None:
    """GOVERNANCE retention until the due date: only a delete that passes it (callvault's) goes through."""
    until = datetime.now(UTC) + timedelta(days=2)
    body = b"RIFF" + bytes(2048)
    outcome = _archive(store, _staged(store, body), body, retain_until=until)
    assert outcome.status == "archived" and outcome.object is not None
    document = put_document(
        store.s3, bucket=store.settings.metadata_bucket, key="acme/c-1.json", body=b"{}",
        sha256=hashlib.sha256(b"{}").hexdigest(), tags=TAGS, retain_until=until,
    ).ref  # fmt: skip
    for ref in (outcome.object, document):
        (version,) = _versions(store, ref.bucket, ref.key)
        with pytest.raises(ClientError) as refused:
            store.s3.delete_object(Bucket=ref.bucket, Key=ref.key, VersionId=version)
        assert refused.value.response["Error"]["Code"] == "AccessDenied", ref.key
        assert delete_versions(store.s3, ref.bucket, [(ref.key, version)]) == {}
        assert _versions(store, ref.bucket, ref.key) == []


def test_compliance_retention_refuses_deletion(store: Store) -> None:
    bucket, key = store.settings.audit_bucket, "segments/p000/00000000000000000000.jsonl.gz"
    until = datetime.now(UTC) + timedelta(days=2)
    assert write_segment(store.s3, bucket, key, b'{"n": 1}\n', until) == f"compliance until {until:%Y-%m-%d}"
    (version,) = _versions(store, bucket, key)
    with pytest.raises(ClientError) as refused:
        store.s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_compliance_retention_can_be_neither_shortened_nor_weakened(store: Store) -> None:
    store.lenient(SHORTENS_COMPLIANCE)
    bucket, key = store.settings.audit_bucket, "segments/p000/00000000000000000000.jsonl.gz"
    until = datetime.now(UTC) + timedelta(days=2)
    write_segment(store.s3, bucket, key, b'{"n": 1}\n', until)
    for mode, date in (("COMPLIANCE", until - timedelta(days=1)), ("GOVERNANCE", until)):
        with pytest.raises(ClientError) as refused:
            store.s3.put_object_retention(
                Bucket=bucket, Key=key, Retention={"Mode": mode, "RetainUntilDate": date}
            )
        assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_a_presigned_link_opens_the_recording(store: Store) -> None:
    bucket = store.settings.recordings_bucket
    store.s3.put_object(Bucket=bucket, Key="acme/c-1.wav", Body=b"audio bytes")
    assert store.lane.fetch(presign(store.s3, bucket, "acme/c-1.wav", 60)) == (200, b"audio bytes")


def _tampered(url: str) -> str:
    """The same link with one character of its signature changed, still a valid hex or base64 one."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    name = next(n for n, _ in query if n in {"X-Amz-Signature", "Signature"})
    signature = dict(query)[name]
    at = next(i for i, ch in enumerate(signature) if ch.isalnum())
    changed = signature[:at] + ("a" if signature[at] != "a" else "b") + signature[at + 1 :]
    query = [(n, changed if n == name else v) for n, v in query]
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_a_tampered_presigned_link_opens_nothing(store: Store) -> None:
    store.lenient(ACCEPTS_TAMPERED_LINKS)
    bucket = store.settings.recordings_bucket
    store.s3.put_object(Bucket=bucket, Key="acme/c-1.wav", Body=b"audio bytes")
    url = presign(store.s3, bucket, "acme/c-1.wav", 60)
    assert store.lane.fetch(_tampered(url))[0] == 403
    other = url.replace("acme/c-1.wav", "acme/c-2.wav")  # the same signature for another object
    assert store.lane.fetch(other)[0] == 403


def test_a_large_upload_goes_in_parts_and_holds_the_same_bytes(store: Store) -> None:
    bucket, data = store.settings.exports_bucket, os.urandom(2 * MIN_PART_BYTES + 12345)
    upload = PartUpload(
        store.s3, bucket, "acme/export.zip", single_put_limit=64 * 1024, part_bytes=MIN_PART_BYTES,
        extra_args={"ContentType": "application/zip", "Tagging": "retention-class=export"},
    )  # fmt: skip
    for start in range(0, len(data), 256 * 1024):
        upload.write(data[start : start + 256 * 1024])
    upload.close()
    assert upload.multipart and upload.size == len(data)
    head = store.s3.head_object(Bucket=bucket, Key="acme/export.zip")
    assert head["ETag"].strip('"').endswith("-3") and head["ContentType"] == "application/zip"
    body = store.s3.get_object(Bucket=bucket, Key="acme/export.zip")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert object_tags(store.s3, bucket, "acme/export.zip") == {"retention-class": "export"}


def test_a_small_upload_is_one_put(store: Store) -> None:
    upload = PartUpload(
        store.s3, store.settings.exports_bucket, "acme/small.zip", single_put_limit=1024 * 1024
    )
    upload.write(b"x" * 1000)
    upload.close()
    head = store.s3.head_object(Bucket=store.settings.exports_bucket, Key="acme/small.zip")
    assert head["ContentLength"] == 1000 and "-" not in head["ETag"] and not upload.multipart


def test_an_aborted_upload_leaves_nothing(store: Store) -> None:
    bucket = store.settings.exports_bucket
    upload = PartUpload(store.s3, bucket, "acme/half.zip", single_put_limit=1024, part_bytes=MIN_PART_BYTES)
    upload.write(os.urandom(MIN_PART_BYTES + 10))
    assert upload.multipart
    upload.abort()
    assert store.s3.list_multipart_uploads(Bucket=bucket, Prefix="acme/").get("Uploads", []) == []
    assert "Contents" not in store.s3.list_objects_v2(Bucket=bucket, Prefix="acme/")


def test_the_store_reports_where_each_bucket_is(store: Store) -> None:
    for plan in bucket_plans(store.settings):
        location = reported_location(store.s3, plan.name)
        assert location == (store.lane.location or location), plan.name
    if store.lane.location == "default":  # a store on premises says nothing of its country
        assert any("does not know the region" in note for note in store.reports[0].notes)


def test_residency_is_checked_where_each_store_says_its_buckets_are(store: Store) -> None:
    problems = residency_problems(store.s3, store.settings)
    if store.lane.location == "default":  # Ceph RGW: no region, so the country must be declared
        assert problems and all("CALLVAULT_STORAGE_COUNTRY" in p for p in problems), problems
    elif store.lane.location is not None:
        assert problems == []  # moto, in eu-west-1 as asked
    declared = store.settings.model_copy(update={"storage_country": "BE"})
    assert residency_problems(store.s3, declared) == []

    # Issue 33, item 6: on main a declared country overrode AWS's own answer, and a store elsewhere
    # that answered eu-west-1 passed with no country declared.
    if store.lane.endpoint:  # not AWS: outside the embedded and test stacks, the country must be declared
        prod = store.settings.model_copy(update={"env": "prod"})
        undeclared = residency_problems(store.s3, prod)
        assert undeclared and all("CALLVAULT_STORAGE_COUNTRY" in p for p in undeclared), undeclared
        assert residency_problems(store.s3, prod.model_copy(update={"storage_country": "BE"})) == []
    else:  # AWS's own endpoint (moto in process): the region decides, whatever country is declared
        far = f"{store.settings.recordings_bucket}-us"
        us = make_s3_client(store.settings.model_copy(update={"s3_region": "us-east-1"}), attempts=2)
        us.create_bucket(Bucket=far)  # us-east-1: no location constraint
        moved = declared.model_copy(update={"recordings_bucket": far})
        (problem,) = residency_problems(store.s3, moved)
        assert f"s3://{far} is in us-east-1 (US)" in problem


def _policy_version(tenant: str, term: str) -> PolicyVersion:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    return PolicyVersion(
        tenant=tenant, version=1, effective_at=at, changed_at=at, changed_by=f"dpo for {term}",
        reason="two DPOs at once", tenant_rules=Scope(terms={"recording": term}),
    )  # fmt: skip


@pytest.mark.parametrize("how", ["as measured", "by claims"])
def test_two_writers_of_one_policy_version_never_both_make_it(store: Store, how: str) -> None:
    """Issue 32: on main both writers looked (HEAD), then both wrote, and both were told they made
    version 1 (the store kept one document under two object versions). Now a version is written only
    if its name is new: with If-None-Match where `storage init` saw the store refuse a second write,
    else by the oldest claim; either way, every round has exactly one winner, whose document stands."""
    bucket = store.settings.metadata_bucket
    profile = store_profile.load(store.s3, bucket)
    assert profile is not None
    if store.lane.name.startswith("moto"):
        assert profile.refuses_second_write, "moto refuses a second write of a name (If-None-Match: *)"
    if how == "by claims":
        write_entry(
            store.s3,
            bucket,
            store_profile.PROFILE_KEY,
            profile.model_copy(update={"refuses_second_write": None}),
        )
    clients = [make_s3_client(store.settings, attempts=2) for _ in range(2)]
    for round_ in range(8):
        tenant = f"race{round_}"
        won = _race(clients, bucket, tenant)
        assert len(won) == 1, f"round {round_}: {len(won)} writers were told they made version 1"
        (stored,) = policies.history(store.s3, bucket, tenant)
        assert stored.tenant_rules.terms["recording"] == won[0], "the winner's document is the one stored"


def _race(clients: list[BaseClient], bucket: str, tenant: str) -> list[str]:
    """Two writers of version 1 of one tenant's policy, let go at once; the terms of those told they won."""
    start = threading.Barrier(len(clients))
    won: list[str] = []

    def write(s3: BaseClient, term: str) -> None:
        start.wait()
        try:
            policies.put_version(s3, bucket, _policy_version(tenant, term))
        except policies.VersionTaken:
            return
        won.append(term)

    terms = ("P7D", "P3M")
    threads = [threading.Thread(target=write, args=pair) for pair in zip(clients, terms, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return won


def test_a_policy_version_is_never_written_over(store: Store) -> None:
    bucket = store.settings.metadata_bucket
    policies.put_version(store.s3, bucket, _policy_version("once", "P7D"))
    with pytest.raises(policies.VersionTaken, match="version 1 of once's policy exists already"):
        policies.put_version(store.s3, bucket, _policy_version("once", "P3M"))
    (stored,) = policies.history(store.s3, bucket, "once")
    assert stored.tenant_rules.terms == {"recording": "P7D"}


def test_a_checkpoint_number_is_written_once_under_compliance_retention(store: Store) -> None:
    """Issue 31, item 2: a second signer of one number is told so (None) and the first one stands."""
    key = private_key("11" * 32)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    first, second = (next_checkpoint(None, {}, at + timedelta(seconds=s), key) for s in (0, 1))
    bucket, until = store.settings.audit_bucket, datetime.now(UTC) + timedelta(days=1)
    conditional = store_profile.refuses_second_write(store.s3, store.settings.metadata_bucket)
    assert audit_checkpoints.write_checkpoint(store.s3, bucket, first, until, conditional=conditional)
    assert (
        audit_checkpoints.write_checkpoint(store.s3, bucket, second, until, conditional=conditional) is None
    )
    assert audit_checkpoints.checkpoint_keys(store.s3, bucket) == [audit_checkpoints.checkpoint_key(0)]
    (stored,) = audit_checkpoints.checkpoint_versions(store.s3, bucket).values()
    assert len(stored) == 1 and audit_checkpoints.last_checkpoint(store.s3, bucket) == first


# -- sealed under the client's key (issue 29) ---------------------------------------------------------


def _plain_chunks_in(plain: bytes, stored: bytes) -> list[bytes]:
    """Every 32-byte piece of the plaintext that the stored bytes hold: none, where they are sealed."""
    return [plain[i : i + 32] for i in range(0, len(plain) - 32, 32) if plain[i : i + 32] in stored]


def test_a_sealed_recording_holds_no_plaintext_and_reads_back_whole_and_by_range(store: Store) -> None:
    keyring = store.keyring()
    body = os.urandom(150 * 1024)  # three segments
    outcome = _archive(store, _staged(store, body), body, seal=keyring.seal_for("acme", "recording"))
    assert outcome.status == "archived" and outcome.object is not None and outcome.sealing is not None
    bucket, key = outcome.object.bucket, outcome.object.key
    at_rest = store.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert at_rest.startswith(b"CVS1") and not _plain_chunks_in(body, at_rest)
    assert outcome.sealing.stored_sha256 == hashlib.sha256(at_rest).hexdigest()
    assert object_tags(store.s3, bucket, key) == TAGS, "a sealed copy keeps its own tags"
    assert open_plain(store.s3, keyring, bucket, key).read() == body
    for first, last in ((0, 99), (65_530, 65_545), (131_072, len(body) - 1), (70_000, 70_000)):
        assert open_plain(store.s3, keyring, bucket, key, first, last).read() == body[first : last + 1]
    again = _archive(store, _staged(store, body), body, seal=keyring.seal_for("acme", "recording"))
    assert again.detail == "already archived" and len(_versions(store, bucket, key)) == 1
    gone = _archive(store, "t/never-uploaded.wav", body, seal=keyring.seal_for("acme", "recording"))
    assert gone.status == "source_missing"
    longer = _archive(
        store, _staged(store, body + b"x", "t/c-3.wav"), body, seal=keyring.seal_for("acme", "recording")
    )
    assert longer.status == "mismatch" and "bytes but the event announced" in longer.detail


def test_a_sealed_recording_is_written_to_a_free_name_without_a_look_and_a_replay_still_counts(
    store: Store,
) -> None:
    """Issue 25: where `storage init` saw the store refuse a second write of a name, a sealed recording
    costs a GET of its source and a PUT (`If-None-Match: *`), no HEAD of the archive first; a replay
    (its source gone, or still there) still counts as archived, and a copy at the name that proves
    nothing is removed and replaced. Elsewhere (Ceph RGW 16.2) the archive is looked at first."""
    profile = store_profile.load(store.s3, store.settings.metadata_bucket)
    once = profile is not None and bool(profile.refuses_second_write)
    if store.lane.name.startswith("moto"):
        assert once, "moto refuses a second write of a name"
    keyring, body = store.keyring(), os.urandom(20_000)
    seal = keyring.seal_for("acme", "recording")
    staged, sent = _staged(store, body), list[str]()
    hook = store.s3.meta.events.register("before-send.s3.*", lambda event_name, **_: sent.append(event_name))
    try:
        outcome = _archive(store, staged, body, seal=seal, write_once=once)
    finally:
        store.s3.meta.events.unregister("before-send.s3.*", hook)
    assert outcome.status == "archived" and outcome.object is not None, outcome.detail
    bucket, key = outcome.object.bucket, outcome.object.key
    asked = [name.rsplit(".", 1)[-1] for name in sent]
    assert asked.count("HeadObject") == (0 if once else 1), asked
    assert asked.count("GetObject") == 1 and asked.count("PutObject") == 1, asked
    again = _archive(store, _staged(store, body), body, seal=seal, write_once=once)
    assert again.detail == "already archived" and len(_versions(store, bucket, key)) == 1
    store.s3.delete_object(Bucket=store.settings.staging_bucket, Key="t/c-1.wav")
    after = _archive(store, "t/c-1.wav", body, seal=seal, write_once=once)
    assert after.detail == "already archived", "its source gone after the archive: a replay, not missing"
    # A copy at the name that proves nothing (its stored bytes are not the ones its metadata names).
    store.s3.put_object(Bucket=bucket, Key=key, Body=b"CVS1 not this recording", Metadata={
        "sha256": hashlib.sha256(body).hexdigest(), "sealed": "CVS1", "stored-sha256": "0" * 64})  # fmt: skip
    replaced = _archive(store, _staged(store, body), body, seal=seal, write_once=once)
    assert replaced.status == "archived" and replaced.detail != "already archived", replaced.detail
    assert open_plain(store.s3, keyring, bucket, key).read() == body


def test_a_sealed_recording_streamed_in_parts_reads_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callvault.storage import archive

    keyring = store.keyring()
    monkeypatch.setattr(archive, "STREAM_PART", MIN_PART_BYTES)  # S3's smallest part: two of them
    body = os.urandom(MIN_PART_BYTES + 300 * 1024)
    outcome = _archive(store, _staged(store, body), body, seal=keyring.seal_for("acme", "recording"))
    assert outcome.status == "archived" and outcome.object is not None and outcome.sealing is not None
    bucket, key = outcome.object.bucket, outcome.object.key
    at_rest = store.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert outcome.sealing.stored_sha256 == hashlib.sha256(at_rest).hexdigest()
    assert (
        open_plain(store.s3, keyring, bucket, key, MIN_PART_BYTES - 10, MIN_PART_BYTES + 10).read()
        == (body[MIN_PART_BYTES - 10 : MIN_PART_BYTES + 11])
    )
    wrong = _archive(store, _staged(store, body, "t/c-2.wav"), body, hashlib.sha256(b"x").hexdigest(),
                     seal=keyring.seal_for("acme", "recording"))  # fmt: skip
    assert (
        wrong.status == "mismatch"
        and _versions(store, store.settings.recordings_bucket, "acme/t/c-2.wav") == []
    )


def test_a_sealed_object_altered_in_the_store_is_refused(store: Store) -> None:
    keyring = store.keyring()
    body = os.urandom(100 * 1024)
    outcome = _archive(store, _staged(store, body), body, seal=keyring.seal_for("acme", "recording"))
    assert outcome.object is not None
    bucket, key = outcome.object.bucket, outcome.object.key
    answer = store.s3.get_object(Bucket=bucket, Key=key)
    data = bytearray(answer["Body"].read())
    data[-5000] ^= 0x40  # a bit of the second segment
    store.s3.put_object(Bucket=bucket, Key=key, Body=bytes(data), Metadata=answer["Metadata"])
    assert open_plain(store.s3, keyring, bucket, key, 0, 99).read() == body[:100], (
        "the first segment is intact"
    )
    with pytest.raises(
        SealedRefused, match="segment 1 does not open under its key: the stored object was altered"
    ):
        open_plain(store.s3, keyring, bucket, key).read()


def test_a_sealed_document_reads_back_and_is_moved_to_another_key_without_re_encrypting(store: Store) -> None:
    keyring = store.keyring()
    bucket, body = store.settings.metadata_bucket, b'{"call_id": "c-1", "agent_id": "a-17"}'
    until = datetime.now(UTC) + timedelta(days=2)
    written = put_document(
        store.s3, bucket=bucket, key="acme/c-1.json", body=body, sha256=hashlib.sha256(body).hexdigest(),
        tags=TAGS, retain_until=until, seal=keyring.seal_for("acme", "metadata"),
    )  # fmt: skip
    assert (
        written.sealing is not None
        and b"a-17" not in store.s3.get_object(Bucket=bucket, Key="acme/c-1.json")["Body"].read()
    )
    stored = read_document(store.s3, keyring, bucket, "acme/c-1.json")
    assert stored is not None and stored.doc["agent_id"] == "a-17"
    (before,) = _versions(store, bucket, "acme/c-1.json")
    set_object_lock_hold(store.s3, bucket, [("acme/c-1.json", before)], True)
    hold_key = ensure_hold_key(keyring.kms)
    after = rewrap_object(store.s3, keyring, bucket, "acme/c-1.json", hold_key, datetime.now(UTC), held=True)
    assert after is not None and _versions(store, bucket, "acme/c-1.json") == [after]
    assert read_plain(store.s3, Keyring.for_settings(store.settings), bucket, "acme/c-1.json")[0] == body
    head = store.s3.head_object(Bucket=bucket, Key="acme/c-1.json")
    assert (
        head["Metadata"]["key-id"] != written.sealing.key_id
        and object_tags(store.s3, bucket, "acme/c-1.json") == TAGS
    )
    with pytest.raises(ClientError):
        store.s3.delete_object(Bucket=bucket, Key="acme/c-1.json", VersionId=after)  # still held
    set_object_lock_hold(store.s3, bucket, [("acme/c-1.json", after)], False)
