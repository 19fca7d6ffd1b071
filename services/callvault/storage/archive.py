"""The archive's S3 operations. Blocking (boto3): call them off the event loop.

Each is idempotent, so a worker that dies halfway and does it again ends in the
same objects: a target already holding the expected bytes is not copied again,
an absent source is not an error when its copy is already archived.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from botocore.client import BaseClient

from callvault.contract.lifecycle import ObjectRef
from callvault.storage.errors import is_not_found
from callvault.storage.layout import tagging_header
from callvault.stream.offloop import StorageFault

SHA_META = "sha256"  # user metadata on archived objects: the expected content hash


def head(s3: BaseClient, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def _ref(bucket: str, key: str, sha: str, size: int, version: str | None) -> ObjectRef:
    return ObjectRef(bucket=bucket, key=key, sha256=sha, size_bytes=size, version_id=version)


def archived_copy(s3: BaseClient, bucket: str, key: str, sha256: str) -> ObjectRef | None:
    """The object at `key` if it already holds content with this SHA-256."""
    found = head(s3, bucket, key)
    if found is None or found.get("Metadata", {}).get(SHA_META) != sha256:
        return None
    return _ref(bucket, key, sha256, int(found["ContentLength"]), found.get("VersionId"))


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    status: Literal["archived", "source_missing", "mismatch"]
    object: ObjectRef | None = None
    detail: str = ""


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
    source_bucket: str,
    source_key: str,
    target_bucket: str,
    target_key: str,
    sha256: str,
    size_bytes: int,
    content_type: str,
    tags: dict[str, str],
    extra_metadata: dict[str, str],
) -> CopyOutcome:
    """Server-side copy with the store computing SHA-256: no audio bytes pass through here.

    A source that is gone because an earlier run archived it and deleted it (a
    replay after a crash) counts as archived.
    """
    source = head(s3, source_bucket, source_key)
    if source is None:
        done = archived_copy(s3, target_bucket, target_key, sha256)
        if done is not None:
            return CopyOutcome("archived", done, "already archived")
        return CopyOutcome("source_missing", detail=f"s3://{source_bucket}/{source_key} does not exist")
    actual_size = int(source["ContentLength"])
    if actual_size != size_bytes:
        return CopyOutcome(
            "mismatch",
            detail=f"the source has {actual_size} bytes but the event announced {size_bytes}",
        )
    response = s3.copy_object(
        CopySource={"Bucket": source_bucket, "Key": source_key},
        Bucket=target_bucket,
        Key=target_key,
        ContentType=content_type,
        MetadataDirective="REPLACE",
        Metadata={SHA_META: sha256, **extra_metadata},
        TaggingDirective="REPLACE",
        Tagging=tagging_header(tags),
        ChecksumAlgorithm="SHA256",
    )
    version = response.get("VersionId")
    checksum = response.get("CopyObjectResult", {}).get("ChecksumSHA256")
    if checksum and "-" not in checksum:
        actual = base64.b64decode(checksum).hex()
    else:
        actual = _stream_sha256(s3, target_bucket, target_key, version)
    if actual != sha256:
        if version:
            s3.delete_object(Bucket=target_bucket, Key=target_key, VersionId=version)
        else:
            s3.delete_object(Bucket=target_bucket, Key=target_key)
        return CopyOutcome(
            "mismatch", detail=f"the source's SHA-256 is {actual}, the event announced {sha256}"
        )
    return CopyOutcome("archived", _ref(target_bucket, target_key, sha256, size_bytes, version))


def put_document(
    s3: BaseClient, *, bucket: str, key: str, body: bytes, sha256: str, tags: dict[str, str]
) -> ObjectRef:
    """Write a JSON document; the store checks the SHA-256 we send against the bytes it got."""
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        Metadata={SHA_META: sha256},
        Tagging=tagging_header(tags),
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
    )
    return _ref(bucket, key, sha256, len(body), response.get("VersionId"))


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


def _versions(s3: BaseClient, bucket: str, key: str) -> Iterator[dict[str, str]]:
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for entry in (*page.get("Versions", ()), *page.get("DeleteMarkers", ())):
            if entry["Key"] == key:
                yield {"Key": key, "VersionId": entry["VersionId"]}


def delete_all_versions(s3: BaseClient, bucket: str, key: str) -> int:
    """Erase an object for real: every version and delete marker, not a marker on top."""
    targets = list(_versions(s3, bucket, key))
    deleted = 0
    for start in range(0, len(targets), 1000):
        batch = targets[start : start + 1000]
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise StorageFault(
                f"could not delete s3://{bucket}/{key} version {first.get('VersionId')}: "
                f"{first.get('Code')} {first.get('Message')}"
            )
        deleted += len(batch)
    return deleted
