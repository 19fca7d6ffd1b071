"""The archive's S3 operations. Blocking (boto3): call them off the event loop.

Each is idempotent, so a worker that dies halfway and does it again ends in the
same objects: a target already holding the expected bytes is not copied again,
an absent source is not an error when its copy is already archived.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from callvault.contract.lifecycle import ObjectRef
from callvault.contract.sealed import SealedRefused
from callvault.storage.errors import (
    NameTaken,
    SourceFault,
    StorageFault,
    error_code,
    is_not_found,
    is_permanent,
    name_taken,
)
from callvault.storage.layout import tagging_header
from callvault.storage.sealing import (
    KEY_META,
    SEALING_META,
    STORED_META,
    KeyRefused,
    Keyring,
    Seal,
    SealingReader,
    is_sealed,
    open_plain,
    opened,
    seal_bytes,
    sealed_metadata,
)

SHA_META = "sha256"  # user metadata on archived objects: the expected content hash (the plaintext's)
PLAIN_SIZE_META = "plain-size"  # ... and, on a sealed one, the plaintext's length
# ... and its due date, copied from the `expires-at` tag: a HEAD tells the purger
# both what it deletes and when, where reading tags would take a second request.
EXPIRES_META = "expires-at"
STREAM_PART = 16 * 1024 * 1024  # part size when a recording is streamed across stores
DELETE_BATCH = 1000  # the most keys DeleteObjects takes in one request


def head(s3: BaseClient, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def head_source(s3: BaseClient, bucket: str, key: str) -> dict[str, Any] | None:
    """A producer's source as `head` finds it; a bucket the store has not got is refused for good.

    HEAD has no body, so a missing bucket answers the same bare 404 as a missing key
    (moto's server, Ceph RGW): only then is the bucket asked after. A key may yet
    arrive; a bucket named in CALLVAULT_SOURCE_BUCKETS that does not exist will
    not, so it is `NoSuchBucket`, a permanent refusal, and the call ends as
    `source_unreadable` instead of waiting through its lookups.
    """
    found = head(s3, bucket, key)
    if found is None and not _bucket_exists(s3, bucket):
        raise ClientError(
            {
                "Error": {"Code": "NoSuchBucket", "Message": f"the bucket {bucket} does not exist"},
                "ResponseMetadata": {"HTTPStatusCode": 404},
            },
            "HeadObject",
        )
    return found


def _bucket_exists(s3: BaseClient, bucket: str) -> bool:
    """False only when the store says the bucket is not there; any other answer leaves it to the key."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        return error_code(exc) not in ("404", "NoSuchBucket")
    return True


def on_source(fn: Any, s3: BaseClient, bucket: str, key: str, *args: Any) -> Any:
    """`fn(s3, bucket, key, *args)` on a producer's source: what fails is the source's fault, not the
    archive's."""
    try:
        return fn(s3, bucket, key, *args)
    except Exception as exc:
        raise SourceFault(exc) from exc


def _read_first_byte(s3: BaseClient, bucket: str, key: str) -> None:
    """Whether the source can be read at all: a copy's 403 may be about either side."""
    try:
        s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-0")["Body"].close()
    except Exception as exc:
        if error_code(exc) != "InvalidRange":  # an empty object has no first byte, and is readable
            raise


def delete_source(s3: BaseClient, bucket: str, key: str) -> int:
    """Erase a producer's source (every version); the store's refusal is the source's fault."""
    return int(on_source(delete_object, s3, bucket, key))


def _user_metadata(sha256: str, tags: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    due = {EXPIRES_META: tags["expires-at"]} if "expires-at" in tags else {}
    return {SHA_META: sha256, **due, **(extra or {})}


def _ref(bucket: str, key: str, sha: str, size: int, version: str | None) -> ObjectRef:
    return ObjectRef(bucket=bucket, key=key, sha256=sha, size_bytes=size, version_id=version)


def archived_copy(
    s3: BaseClient, bucket: str, key: str, sha256: str, *, remove_mismatch: bool = False,
    keyring: Keyring | None = None,
) -> ObjectRef | None:  # fmt: skip
    """The object at `key` if it already holds content with this SHA-256.

    The store's own checksum decides, not the hash callvault wrote beside it: a copy
    whose bytes did not match names the announced hash in its metadata all the
    same. Such a copy is left when the worker died, or its connection was cut,
    between the copy and removing it; `remove_mismatch` removes it then, so the
    archive keeps no recording that no event proves.
    """
    found = head(s3, bucket, key)
    if found is None or found.get("Metadata", {}).get(SHA_META) != sha256:
        return None
    version = found.get("VersionId")
    if is_sealed(found.get("Metadata")):
        return _archived_sealed(s3, bucket, key, sha256, found, remove_mismatch, keyring)
    if _stored_sha256(s3, bucket, key, version, found.get("ChecksumSHA256")) != sha256:
        if remove_mismatch:
            _delete_version(s3, bucket, key, version)
        return None
    return _ref(bucket, key, sha256, int(found["ContentLength"]), version)


def _archived_sealed(
    s3: BaseClient, bucket: str, key: str, sha256: str, found: dict[str, Any], remove_mismatch: bool,
    keyring: Keyring | None,
) -> ObjectRef | None:  # fmt: skip
    """A sealed copy counts when its stored bytes are the ones its metadata names (the store's checksum
    says so); where it names none (an upload in parts), when its plaintext, opened, has the SHA-256."""
    version, meta = found.get("VersionId"), found.get("Metadata", {})
    stored = meta.get(STORED_META)
    if stored:
        size = int(meta.get(PLAIN_SIZE_META) or 0)
        proven = _stored_sha256(s3, bucket, key, version, found.get("ChecksumSHA256")) == stored
    else:
        if keyring is None:
            raise ValueError(f"s3://{bucket}/{key} is sealed: checking it needs the keyring that opens it")
        try:
            actual, size = _plain_sha256(s3, keyring, bucket, key, version)
        except (SealedRefused, KeyRefused):
            actual = ""  # it does not open: not a copy of this recording, whatever it claims
        proven = actual == sha256
    if proven:
        return _ref(bucket, key, sha256, size, version)
    if remove_mismatch:
        _delete_version(s3, bucket, key, version)
    return None


def plaintext_check(
    s3: BaseClient, keyring: Keyring, bucket: str, key: str, version: str
) -> tuple[bool, str | None]:
    """Whether this version is stored sealed, and what is wrong with its plaintext (None: it opens, and
    hashes to the SHA-256 its metadata names): `audit verify-store --decrypt`, one version at a time."""
    version_id = None if version == "null" else version
    found = s3.head_object(Bucket=bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
    sealed, named = is_sealed(found.get("Metadata")), (found.get("Metadata") or {}).get(SHA_META)
    try:
        actual, _ = _plain_sha256(s3, keyring, bucket, key, version_id)
    except (SealedRefused, KeyRefused) as exc:
        return sealed, f"does not open: {exc}"
    if named and actual != named:
        return sealed, f"its plaintext hashes to {actual}, its metadata names {named}"
    return sealed, None


def _plain_sha256(
    s3: BaseClient, keyring: Keyring, bucket: str, key: str, version: str | None
) -> tuple[str, int]:
    body = open_plain(s3, keyring, bucket, key, version=version)
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: body.read(1024 * 1024), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


# Buckets whose object-lock configuration this process has read: archived objects go under GOVERNANCE
# retention where the bucket has object lock (one request per bucket; lock cannot be turned off).
_LOCKING: dict[str, bool] = {}
NO_LOCK_CODES = frozenset({"ObjectLockConfigurationNotFoundError", "InvalidRequest", "NotImplemented"})


def governance(s3: BaseClient, bucket: str, retain_until: datetime | None) -> dict[str, Any]:
    """The arguments that put a new object under GOVERNANCE retention until its due date.

    Without them any holder of `s3:DeleteObject` on the bucket could erase an
    archived recording behind callvault's back, and the audit would only learn it
    afterwards. GOVERNANCE refuses a version's deletion until the date to anyone
    who does not send `x-amz-bypass-governance-retention` with the permission to
    (`s3:BypassGovernanceRetention`): callvault's own deletions do, because a
    purge may come before the date (a shortened client term, an erasure). Empty
    where the bucket has no object lock, or with no date.
    """
    if retain_until is None:
        return {}
    if bucket not in _LOCKING:
        try:
            found = s3.get_object_lock_configuration(Bucket=bucket).get("ObjectLockConfiguration", {})
            _LOCKING[bucket] = found.get("ObjectLockEnabled") == "Enabled"
        except Exception as exc:
            if error_code(exc) not in NO_LOCK_CODES:
                raise
            _LOCKING[bucket] = False
    if not _LOCKING[bucket]:
        return {}
    return {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": retain_until}


def retain(s3: BaseClient, bucket: str, key: str, version: str | None, retain_until: datetime | None) -> None:
    """Put an object already written under GOVERNANCE retention (see `governance`).

    For a copy or a multipart upload, which some stores refuse with retention in
    the request itself (moto asks a copy for a Content-MD5 it cannot have); set
    again on a replay, passing the retention in case a new date is earlier.
    """
    lock = governance(s3, bucket, retain_until)
    if not lock:
        return
    kwargs = {"VersionId": version} if version else {}
    s3.put_object_retention(
        Bucket=bucket, Key=key, BypassGovernanceRetention=True,
        Retention={"Mode": lock["ObjectLockMode"], "RetainUntilDate": lock["ObjectLockRetainUntilDate"]},
        **kwargs,
    )  # fmt: skip


def _delete_version(s3: BaseClient, bucket: str, key: str, version: str | None) -> None:
    """Remove that one version, not just hide it behind a delete marker."""
    if version:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True)
    else:
        s3.delete_object(Bucket=bucket, Key=key)


def _stored_sha256(s3: BaseClient, bucket: str, key: str, version: str | None, checksum: str | None) -> str:
    """The SHA-256 the store computed, or (a multipart composite, a store without checksums) read back."""
    if checksum and "-" not in checksum:
        return base64.b64decode(checksum).hex()
    return _stream_sha256(s3, bucket, key, version)


@dataclass(frozen=True, slots=True)
class Sealing:
    """What a sealed object's archive event says of it: the key that wrapped its data key, and the
    SHA-256 of its stored bytes (`ObjectRef.sha256` stays the plaintext's)."""

    key_id: str
    stored_sha256: str

    @staticmethod
    def pair(sealing: Sealing | None) -> tuple[str, str] | None:
        """(key id, stored SHA-256), as the archive events take it."""
        return (sealing.key_id, sealing.stored_sha256) if sealing is not None else None


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    status: Literal["archived", "source_missing", "mismatch"]
    object: ObjectRef | None = None
    detail: str = ""
    sealing: Sealing | None = None


@dataclass(frozen=True, slots=True)
class Written:
    """A document written: its reference, and how it was sealed (None: stored as it is)."""

    ref: ObjectRef
    sealing: Sealing | None = None


def version_sha256(s3: BaseClient, bucket: str, key: str, version: str) -> str | None:
    """The SHA-256 of one version's bytes as the store holds them (not as its metadata claims:
    a version written behind callvault's back can claim anything); None when it is gone."""
    kwargs = {} if version == "null" else {"VersionId": version}
    try:
        found = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **kwargs)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    return _stored_sha256(
        s3, bucket, key, None if version == "null" else version, found.get("ChecksumSHA256")
    )


def _stream_sha256(s3: BaseClient, bucket: str, key: str, version: str | None) -> str:
    """Fallback for stores that do not compute checksums on copy: read it back, in chunks."""
    kwargs = {"VersionId": version} if version else {}
    body = s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(1024 * 1024), b""):
        digest.update(chunk)
    return digest.hexdigest()


def copy_recording(
    s3: BaseClient,
    *,
    source_s3: BaseClient | None = None,
    source_bucket: str,
    source_key: str,
    target_bucket: str,
    target_key: str,
    sha256: str,
    size_bytes: int,
    content_type: str,
    tags: dict[str, str],
    extra_metadata: dict[str, str],
    retain_until: datetime | None = None,
    check_tags: bool = True,
    seal: Seal | None = None,
    keyring: Keyring | None = None,
    write_once: bool = False,
    plain: bytes | None = None,
) -> CopyOutcome:
    """Copy a recording into the archive and prove its bytes are the announced ones.

    In one store: a server-side copy with the store computing SHA-256, so no audio
    passes through here. Across stores (`source_s3` given): streamed as a multipart
    upload and hashed on the way. A recording already in the archive with this
    SHA-256 (a replay after a crash, before or after its source was deleted)
    counts as archived and is not copied again: one version per recording.
    With `seal`, the recording is read, sealed under its tenant's key and
    written (`_seal_recording`): a store-side copy would keep it readable.
    `keyring` opens a copy sealed by an earlier run (sealing since turned off).

    `write_once` (the store was seen to refuse a second write of a name: `store_profile`): a sealed
    recording of one PUT is written only if its name is free, and the archive is looked at only when
    that write, or the source, says something is amiss: a request fewer for every call that is not a
    replay. Elsewhere the archive is looked at first.

    `plain` (with `seal`): the source, already read whole (to hear its pauses: `pause_reads.hear_source`),
    is sealed from these bytes instead of read again.
    """
    keyring = keyring or (seal.keyring if seal is not None else None)  # opens a copy sealed before

    def replayed() -> CopyOutcome | None:
        done = archived_copy(s3, target_bucket, target_key, sha256, remove_mismatch=True, keyring=keyring)
        if done is None:
            return None
        # A replay: its tags are checked too, or a store losing them would pass.
        ensure_tags(s3, target_bucket, target_key, done.version_id, tags)
        retain(s3, target_bucket, target_key, done.version_id, retain_until)
        return CopyOutcome("archived", done, "already archived")

    metadata = _user_metadata(sha256, tags, extra_metadata)
    first: CopyOutcome | None = None  # the write to a free name, where it was tried and did not archive
    if seal is not None and write_once and size_bytes <= STREAM_PART:
        try:
            first = _seal_recording(
                source_s3 or s3, s3, source_bucket, source_key, target_bucket, target_key, sha256, size_bytes,
                tags, {"ContentType": content_type, "Metadata": metadata}, seal, retain_until, if_absent=True,
                plain=plain,
            )  # fmt: skip
        except NameTaken:
            first = None  # a copy is there: this recording's (a replay), or one removed below as no proof
        if first is not None and first.status == "archived":
            return first
    # Looked at first where the store was not seen to refuse a second write; otherwise only now that the
    # source is gone or not the announced one (a replay after its removal), or the name is taken.
    done = replayed()
    if done is not None:
        return done
    if first is not None:
        return first
    # Nothing there, or a copy that proved nothing and is removed now: written as any other.
    if seal is not None:  # one GET, whose answer also says whether the source is there, and its size
        return _seal_recording(
            source_s3 or s3, s3, source_bucket, source_key, target_bucket, target_key, sha256, size_bytes,
            tags, {"ContentType": content_type, "Metadata": metadata}, seal, retain_until, plain=plain,
        )  # fmt: skip
    source = on_source(head_source, source_s3 or s3, source_bucket, source_key)
    if source is None:
        return _missing(source_bucket, source_key)
    if int(source["ContentLength"]) != size_bytes:
        return _size_mismatch(int(source["ContentLength"]), size_bytes)
    if source_s3 is not None:
        outcome = _stream_across_stores(
            source_s3, s3, source_bucket, source_key, target_bucket, target_key,
            sha256, size_bytes, tags, {"ContentType": content_type, "Metadata": metadata},
        )  # fmt: skip
        if outcome.object is not None:
            retain(s3, target_bucket, target_key, outcome.object.version_id, retain_until)
        return outcome
    try:
        response = s3.copy_object(
            CopySource={"Bucket": source_bucket, "Key": source_key},
            Bucket=target_bucket,
            Key=target_key,
            ContentType=content_type,
            MetadataDirective="REPLACE",
            Metadata=metadata,
            TaggingDirective="REPLACE",
            Tagging=tagging_header(tags),
            ChecksumAlgorithm="SHA256",
        )
    except Exception as exc:
        if is_permanent(exc):
            on_source(_read_first_byte, s3, source_bucket, source_key)  # the source's fault, if it fails
        raise  # otherwise the archive's: callvault's own bucket
    version = response.get("VersionId")
    checksum = response.get("CopyObjectResult", {}).get("ChecksumSHA256")
    if version is None:  # Ceph RGW names no version in a copy's answer, even in a versioned bucket
        written = head(s3, target_bucket, target_key) or {}
        version, checksum = written.get("VersionId"), checksum or written.get("ChecksumSHA256")
    actual = _stored_sha256(s3, target_bucket, target_key, version, checksum)
    if actual != sha256:
        _delete_version(s3, target_bucket, target_key, version)
        return CopyOutcome(
            "mismatch", detail=f"the source's SHA-256 is {actual}, the event announced {sha256}"
        )
    if check_tags:  # where `storage init` saw the store lose a copy's tags, or measured nothing
        ensure_tags(s3, target_bucket, target_key, version, tags)
    retain(s3, target_bucket, target_key, version, retain_until)
    return CopyOutcome("archived", _ref(target_bucket, target_key, sha256, size_bytes, version))


def object_tags(s3: BaseClient, bucket: str, key: str, version: str | None = None) -> dict[str, str]:
    kwargs = {"VersionId": version} if version else {}
    answer = s3.get_object_tagging(Bucket=bucket, Key=key, **kwargs)
    return {tag["Key"]: tag["Value"] for tag in answer.get("TagSet", [])}  # RGW leaves TagSet out when empty


def ensure_tags(s3: BaseClient, bucket: str, key: str, version: str | None, tags: dict[str, str]) -> None:
    """Make sure this version carries exactly `tags`; set them again where the store did not keep them.

    The tags are what the lifecycle backstop and the purger's walk read, so an
    archived object without them would outlive its term unseen. Ceph RGW 16.2
    keeps the source's tags on a copy with `TaggingDirective=REPLACE` (and none
    at all with `MetadataDirective=REPLACE`); AWS, MinIO and moto keep the new
    ones, and there this costs one read.
    """
    if object_tags(s3, bucket, key, version) == tags:
        return
    kwargs = {"VersionId": version} if version else {}
    tag_set = [{"Key": name, "Value": value} for name, value in tags.items()]
    s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set}, **kwargs)
    kept = object_tags(s3, bucket, key, version)
    if kept != tags:
        raise StorageFault(
            f"s3://{bucket}/{key} does not keep its lifecycle tags (asked {sorted(tags)}, "
            f"it holds {sorted(kept)}); callvault will not archive into a store that loses them"
        )


def _open_body(s3: BaseClient, bucket: str, key: str) -> Any:
    return s3.get_object(Bucket=bucket, Key=key)["Body"]


class _HashingReader:
    """A read-only stream that hashes and counts what passes through it, in order."""

    def __init__(self, body: Any) -> None:
        self._body = body
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, amount: int = -1) -> bytes:
        chunk = self._body.read() if amount is None or amount < 0 else self._body.read(amount)
        self.digest.update(chunk)
        self.size += len(chunk)
        return bytes(chunk)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False  # s3transfer then reads it once, from start to end


def _stream_across_stores(
    source_s3: BaseClient,
    s3: BaseClient,
    source_bucket: str,
    source_key: str,
    target_bucket: str,
    target_key: str,
    sha256: str,
    size_bytes: int,
    tags: dict[str, str],
    extra_args: dict[str, Any],
) -> CopyOutcome:
    extra_args = {**extra_args, "Tagging": tagging_header(tags)}
    body = on_source(_open_body, source_s3, source_bucket, source_key)
    reader = _HashingReader(body)
    config = TransferConfig(
        multipart_threshold=STREAM_PART, multipart_chunksize=STREAM_PART, use_threads=False
    )
    try:
        s3.upload_fileobj(reader, target_bucket, target_key, ExtraArgs=extra_args, Config=config)
    finally:
        body.close()
    actual = reader.digest.hexdigest()
    if actual == sha256 and reader.size == size_bytes:
        version = (head(s3, target_bucket, target_key) or {}).get("VersionId")
        ensure_tags(s3, target_bucket, target_key, version, tags)
        return CopyOutcome("archived", _ref(target_bucket, target_key, sha256, size_bytes, version))
    written = head(s3, target_bucket, target_key)
    if written is not None:
        _delete_version(s3, target_bucket, target_key, written.get("VersionId"))
    return CopyOutcome("mismatch", detail=f"the source's SHA-256 is {actual}, the event announced {sha256}")


def checked_put_args(body: bytes) -> dict[str, Any]:
    """Both hashes of a body, for the store to check what it got (see `put_document`)."""
    return {
        "ChecksumAlgorithm": "SHA256",
        "ChecksumSHA256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
        "ContentMD5": base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode(),
    }


def _missing(bucket: str, key: str) -> CopyOutcome:
    return CopyOutcome("source_missing", detail=f"s3://{bucket}/{key} does not exist")


def _size_mismatch(actual: int, announced: int) -> CopyOutcome:
    return CopyOutcome(
        "mismatch", detail=f"the source has {actual} bytes but the event announced {announced}"
    )


def _seal_recording(
    source_s3: BaseClient, s3: BaseClient, source_bucket: str, source_key: str, target_bucket: str,
    target_key: str, sha256: str, size_bytes: int, tags: dict[str, str], extra_args: dict[str, Any],
    how: Seal, retain_until: datetime | None, if_absent: bool = False, plain: bytes | None = None,
) -> CopyOutcome:  # fmt: skip
    """Read the source (or take its bytes, `plain`), seal it and write it (`write_sealed`; `if_absent`:
    only to a free name)."""
    if plain is not None:
        body, actual_size = io.BytesIO(plain), len(plain)
    else:
        # None when the key is not there; a bucket that is not there answers NoSuchBucket, for good: a GET
        # has a body to say so, unlike a HEAD (see `head_source`).
        answer = on_source(get_or_none, source_s3, source_bucket, source_key)
        if answer is None:
            return _missing(source_bucket, source_key)
        body, actual_size = answer["Body"], int(answer["ContentLength"])
    if actual_size != size_bytes:  # not read: a source far larger than announced costs nothing
        body.close()
        return _size_mismatch(actual_size, size_bytes)
    try:
        written = write_sealed(
            s3, target_bucket, target_key, SourceBody(body, source_bucket, source_key), size_bytes, sha256,
            how, tags=tags, extra_args=extra_args, retain_until=retain_until,
            unlike=("the source", "the event announced"), if_absent=if_absent,
        )  # fmt: skip
    finally:
        body.close()
    if isinstance(written, str):
        return CopyOutcome("mismatch", detail=written)
    ref = _ref(target_bucket, target_key, sha256, size_bytes, written.version_id)
    return CopyOutcome("archived", ref, sealing=written.sealing)


class SourceBody:
    """A producer's body whose read failures are the source's fault (`SourceFault`), not the archive's."""

    def __init__(self, body: Any, bucket: str, key: str) -> None:
        self._body, self._where = body, (bucket, key)

    def read(self, amount: int = -1) -> bytes:
        try:
            return bytes(self._body.read(amount) if amount is not None and amount >= 0 else self._body.read())
        except Exception as exc:
            raise SourceFault(exc) from exc


@dataclass(frozen=True, slots=True)
class SealedWrite:
    version_id: str | None
    sealing: Sealing


def write_sealed(
    s3: BaseClient, bucket: str, key: str, body: Any, size: int, sha256: str, how: Seal, *,
    tags: dict[str, str], extra_args: dict[str, Any], retain_until: datetime | None, held: bool = False,
    unlike: tuple[str, str] = ("the plaintext", "it was announced as"), if_absent: bool = False,
) -> SealedWrite | str:  # fmt: skip
    """Seal a plaintext `body` of `size` bytes and write it as a new version of `key`, with its tags, its
    GOVERNANCE retention and, `held`, its legal hold; its version and how it was sealed. Up to `STREAM_PART`
    in one PUT, checked by the store, nothing written unless the plaintext has the SHA-256; beyond, in
    parts, the plaintext hashed on the way and the version written removed if it has not. A sentence
    instead (`unlike`: whose bytes, and whose word, it names) when the plaintext is not the one expected.
    `if_absent`: the one PUT is sent with `If-None-Match: *`; `NameTaken` when the store refuses it.
    """
    extra = {**extra_args, "Tagging": tagging_header(tags)}
    meta = {**extra_args.get("Metadata", {}), PLAIN_SIZE_META: str(size)}

    def mismatch(actual: str) -> str:
        return f"{unlike[0]}'s SHA-256 is {actual}, {unlike[1]} {sha256}"

    if size <= STREAM_PART:
        plain = body.read()
        if len(plain) != size or hashlib.sha256(plain).hexdigest() != sha256:
            return mismatch(hashlib.sha256(plain).hexdigest())
        sealed = seal_bytes(how, plain)
        extra["Metadata"] = {**meta, **sealed.metadata()}
        try:
            answer = s3.put_object(
                Bucket=bucket, Key=key, Body=sealed.body, **extra,
                **checked_put_args(sealed.body), **governance(s3, bucket, retain_until),
                **({"ObjectLockLegalHoldStatus": "ON"} if held else {}),
                **({"IfNoneMatch": "*"} if if_absent else {}),
            )  # fmt: skip
        except ClientError as exc:
            if if_absent and name_taken(exc):
                raise NameTaken(f"s3://{bucket}/{key}") from exc
            raise
        return SealedWrite(answer.get("VersionId"), Sealing(sealed.key_id, sealed.stored_sha256))
    reader = SealingReader(how, body, size)
    # The stored bytes' SHA-256 is not known before the last part: the event names it, not the metadata.
    extra["Metadata"] = {**meta, **sealed_metadata(reader.header)}
    config = TransferConfig(
        multipart_threshold=STREAM_PART, multipart_chunksize=STREAM_PART, use_threads=False
    )
    try:
        s3.upload_fileobj(reader, bucket, key, ExtraArgs=extra, Config=config)
    except SealedRefused as exc:  # longer or shorter than `size`: the upload was aborted
        return str(exc)
    written = head(s3, bucket, key)
    version = (written or {}).get("VersionId")
    if reader.plain_digest.hexdigest() != sha256 or reader.plain_size != size:
        if written is not None:
            _delete_version(s3, bucket, key, version)
        return mismatch(reader.plain_digest.hexdigest())
    ensure_tags(s3, bucket, key, version, tags)
    retain(s3, bucket, key, version, retain_until)
    if held and version:
        s3.put_object_legal_hold(Bucket=bucket, Key=key, VersionId=version, LegalHold={"Status": "ON"})
    return SealedWrite(version, Sealing(reader.key_id, reader.stored_digest.hexdigest()))


def put_document(
    s3: BaseClient,
    *,
    bucket: str,
    key: str,
    body: bytes,
    sha256: str,
    tags: dict[str, str],
    extra_metadata: dict[str, str] | None = None,
    retain_until: datetime | None = None,
    seal: Seal | None = None,
) -> Written:
    """Write a JSON document (sealed under its tenant's key with `seal`); the store checks the bytes it
    got against the hashes we send.

    Both hashes of the stored bytes go: the SHA-256 checksum, which AWS and MinIO
    verify, and Content-MD5, which AWS, MinIO and Ceph RGW verify (RGW 16.2 accepts
    a wrong SHA-256 checksum without a word; moto checks neither). A `sha256` that
    is not the body's is callvault's own mistake, refused before anything is sent.
    """
    if hashlib.sha256(body).hexdigest() != sha256:
        raise ValueError(f"s3://{bucket}/{key}: the document's bytes do not have the SHA-256 {sha256}")
    metadata = _user_metadata(sha256, tags, extra_metadata)
    stored, sealing = body, None
    if seal is not None:
        sealed = seal_bytes(seal, body)
        stored, sealing = sealed.body, Sealing(sealed.key_id, sealed.stored_sha256)
        metadata = {**metadata, **sealed.metadata(), PLAIN_SIZE_META: str(len(body))}
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=stored,
        ContentType="application/json",
        Metadata=metadata,
        Tagging=tagging_header(tags),
        **checked_put_args(stored),
        **governance(s3, bucket, retain_until),
    )
    return Written(_ref(bucket, key, sha256, len(body), response.get("VersionId")), sealing)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A JSON document as the store holds it now: what a rewrite keeps of it."""

    doc: dict[str, Any]
    version_id: str | None
    tags: dict[str, str]
    metadata: dict[str, str]  # user metadata, the content hash and due date left out
    retain_until: datetime | None
    key_id: str | None = None  # the KMS key it is sealed under; None: stored unsealed


def get_or_none(s3: BaseClient, bucket: str, key: str) -> dict[str, Any] | None:
    """The store's answer to a GET of `key` (its body still to read), or None when it is not there."""
    try:
        return dict(s3.get_object(Bucket=bucket, Key=key))
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def read_document(s3: BaseClient, keyring: Keyring, bucket: str, key: str) -> StoredDocument | None:
    """The document at `key` (opened, where it is sealed), or None when there is none."""
    answer = get_or_none(s3, bucket, key)
    if answer is None:
        return None
    found = answer.get("VersionId")
    version = found if found and found != "null" else None
    written = (SHA_META, EXPIRES_META, PLAIN_SIZE_META, *SEALING_META)
    kept = {k: v for k, v in (answer.get("Metadata") or {}).items() if k not in written}
    return StoredDocument(
        doc=json.loads(opened(keyring, answer, key)),
        version_id=version,
        tags=object_tags(s3, bucket, key, version),
        metadata=kept,
        retain_until=answer.get("ObjectLockRetainUntilDate"),
        key_id=(answer.get("Metadata") or {}).get(KEY_META) if is_sealed(answer.get("Metadata")) else None,
    )


def rewrite_document(
    s3: BaseClient, bucket: str, key: str, stored: StoredDocument, body: bytes, extra: dict[str, str],
    seal: Seal | None = None,
) -> Written:  # fmt: skip
    """A new version of the document with `body` (sealed afresh with `seal`), its tags, dates and lock as
    before (`extra` updates its user metadata); then the version it replaces is removed, so only the new
    one holds the data."""
    written = put_document(
        s3, bucket=bucket, key=key, body=body, sha256=hashlib.sha256(body).hexdigest(), tags=stored.tags,
        extra_metadata={**stored.metadata, **extra}, retain_until=stored.retain_until, seal=seal,
    )  # fmt: skip
    if stored.version_id is not None and stored.version_id != written.ref.version_id:
        _delete_version(s3, bucket, key, stored.version_id)
    return written


def delete_object(s3: BaseClient, bucket: str, key: str) -> int:
    """Erase one object for real, cheaply when the bucket keeps no versions.

    A plain DELETE is final in an unversioned bucket. In a versioned one it only
    lays a delete marker, which the answer reveals; then every version and marker
    is removed. Listing versions costs more on some stores (moto's is linear in
    the bucket), so it is done only where it is needed.
    """
    response = s3.delete_object(Bucket=bucket, Key=key)
    if response.get("DeleteMarker") or response.get("VersionId"):
        return delete_all_versions(s3, bucket, key)
    return 1


def delete_versions(s3: BaseClient, bucket: str, targets: list[tuple[str, str]]) -> dict[str, str]:
    """Remove these (key, version) pairs, 1,000 a request; the keys that failed, with why.

    A version already gone counts as removed. A refusal (an object-lock legal hold
    callvault did not place, say) is reported for its key and does not stop the rest.
    """
    failed: dict[str, str] = {}
    for start in range(0, len(targets), DELETE_BATCH):
        chunk = targets[start : start + DELETE_BATCH]
        objects = [{"Key": k} if v == "null" else {"Key": k, "VersionId": v} for k, v in chunk]
        # callvault's own deletions pass the GOVERNANCE retention it set (`governance` above).
        response = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": objects, "Quiet": True}, BypassGovernanceRetention=True
        )
        for error in response.get("Errors", []):
            if error.get("Code") != "NoSuchVersion":
                failed[error["Key"]] = f"{error.get('Code')}: {error.get('Message')}"
    return failed


def refused_erasure(bucket: str, failed: dict[str, str]) -> StorageFault:
    """The fault to raise when the store kept some of what had to go: the first key, and why."""
    key, why = next(iter(failed.items()))
    return StorageFault(f"the store refused to erase s3://{bucket}/{key}: {why}")


def erase_under(
    s3: BaseClient, bucket: str, prefix: str, keep: Callable[[str], bool] = lambda key: False
) -> int:
    """Erase for real every version and delete marker of every key under `prefix`, but the keys `keep`
    names; how many versions went. Raises `StorageFault` when the store keeps any of them."""
    targets = [
        (entry["Key"], entry.get("VersionId") or "null")
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
        for entry in (*page.get("Versions", ()), *page.get("DeleteMarkers", ()))
        if not keep(entry["Key"])
    ]
    failed = delete_versions(s3, bucket, targets)
    if failed:
        raise refused_erasure(bucket, failed)
    return len(targets)


def delete_all_versions(s3: BaseClient, bucket: str, key: str) -> int:
    """Erase an object for real: every version and delete marker, not a marker on top."""
    return erase_under(s3, bucket, key, keep=lambda listed: listed != key)
