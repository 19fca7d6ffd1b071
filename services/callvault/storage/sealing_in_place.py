"""An object archived before sealing, sealed in place: `callvault storage encrypt-existing`.

A key's newest version, stored unsealed, is read, checked against the SHA-256 it was archived with,
sealed under its client's key and written as a new version with the same metadata, tags, retention and
legal hold. Then the caller proves it (`object.sealed`) and removes the unsealed version
(`drop_replaced`). Killed between the two, the next run finds the newest version sealed and an older
unsealed one with the same SHA-256: it proves it again (the same event id) and removes that one, so a
run is resumed by running it again. Blocking (boto3): call off the event loop.

A metadata document is rewritten by a subject request now and then: a version written by the worker
while this one was read makes this one stale, so it is removed at once and the key is left to the
next run (`written_over`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient

from callvault.storage import archive
from callvault.storage.archive import NO_LOCK_CODES, PLAIN_SIZE_META, SHA_META, object_tags
from callvault.storage.errors import error_code
from callvault.storage.sealing import (
    KEY_META,
    STORED_META,
    Seal,
    is_sealed,
    open_plain,
)


@dataclass(frozen=True, slots=True)
class SealedInPlace:
    """What `object.sealed` proves: the sealed version, and the unsealed ones it replaces."""

    bucket: str
    key: str
    version_id: str | None
    sha256: str
    size_bytes: int
    stored_sha256: str
    key_id: str
    replaced: tuple[str, ...] = field(default_factory=tuple)
    held: bool = False
    resumed: bool = False  # sealed by an earlier run cut short: only its proof and the removal were left


class SealRefused(Exception):
    """This object is not sealed in place; the message says why (it stays as it is)."""


def _versions(s3: BaseClient, bucket: str, key: str) -> list[dict[str, Any]]:
    """Every version of exactly this key holding bytes, newest first."""
    found = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        found += [v for v in page.get("Versions", ()) if v["Key"] == key]
    return sorted(found, key=lambda v: (not v.get("IsLatest"), -v["LastModified"].timestamp()))


def _head(s3: BaseClient, bucket: str, key: str, version: str) -> dict[str, Any]:
    return dict(
        s3.head_object(Bucket=bucket, Key=key, **({} if version == "null" else {"VersionId": version}))
    )


def _held(s3: BaseClient, bucket: str, key: str, version: str) -> bool:
    try:
        kwargs = {} if version == "null" else {"VersionId": version}
        return (
            s3.get_object_legal_hold(Bucket=bucket, Key=key, **kwargs).get("LegalHold", {}).get("Status")
            == "ON"
        )
    except Exception as exc:
        if error_code(exc) in {*NO_LOCK_CODES, "NoSuchObjectLockConfiguration"}:
            return False
        raise


def seal_key(s3: BaseClient, bucket: str, key: str, how: Seal) -> SealedInPlace | None:
    """Seal the key's newest version in place, or find one sealed before whose unsealed original is still
    there (a run cut short); None when there is nothing to do. `SealRefused` says why an object is left."""
    versions = _versions(s3, bucket, key)
    if not versions:
        return None
    if not versions[0].get("IsLatest"):  # a delete marker on top: sealing it would bring it back
        raise SealRefused(f"s3://{bucket}/{key} is deleted (a delete marker hides it): left for the purger")
    newest = versions[0]["VersionId"] or "null"
    head = _head(s3, bucket, key, newest)
    meta = dict(head.get("Metadata") or {})
    sha = meta.get(SHA_META)
    if not sha:
        raise SealRefused(f"s3://{bucket}/{key} names no SHA-256: not archived by callvault, left as it is")
    if is_sealed(meta):
        older = [v["VersionId"] or "null" for v in versions[1:]]
        left = [v for v in older if _is_unsealed_copy(s3, bucket, key, v, sha)]
        if not left:
            return None
        stored = meta.get(STORED_META) or archive.version_sha256(s3, bucket, key, newest) or ""
        size, held = int(meta.get(PLAIN_SIZE_META) or 0), _held(s3, bucket, key, newest)
        key_id = meta.get(KEY_META, "")
        return SealedInPlace(bucket, key, newest, sha, size, stored, key_id, tuple(left), held, resumed=True)
    held = _held(s3, bucket, key, newest)
    written = _write_sealed(s3, bucket, key, newest, head, meta, how, held)
    after = _versions(s3, bucket, key)
    if not after or (after[0]["VersionId"] or "null") != written.version_id:
        # The worker rewrote the document meanwhile: this copy is stale. Gone, and left to the next run.
        _drop(s3, bucket, key, [written.version_id or "null"], held)
        raise SealRefused(f"s3://{bucket}/{key} was written over while it was sealed: left to the next run")
    return written


def _is_unsealed_copy(s3: BaseClient, bucket: str, key: str, version: str, sha: str) -> bool:
    meta = _head(s3, bucket, key, version).get("Metadata") or {}
    return not is_sealed(meta) and meta.get(SHA_META) == sha


def _write_sealed(
    s3: BaseClient, bucket: str, key: str, version: str, head: dict[str, Any], meta: dict[str, str],
    how: Seal, held: bool,
) -> SealedInPlace:  # fmt: skip
    size, sha = int(head["ContentLength"]), meta[SHA_META]
    version_id = None if version == "null" else version
    body = open_plain(s3, how.keyring, bucket, key, version=version_id)
    try:
        written = archive.write_sealed(
            s3, bucket, key, body, size, sha, how, tags=object_tags(s3, bucket, key, version_id),
            extra_args={"ContentType": head.get("ContentType", "application/octet-stream"), "Metadata": meta},
            retain_until=head.get("ObjectLockRetainUntilDate"), held=held,
            unlike=(f"s3://{bucket}/{key}", "it was archived with"),
        )  # fmt: skip
    finally:
        body.close()
    if isinstance(written, str):
        raise SealRefused(written)
    sealing = written.sealing
    return SealedInPlace(
        bucket, key, written.version_id, sha, size, sealing.stored_sha256, sealing.key_id, (version,), held
    )


def drop_replaced(s3: BaseClient, done: SealedInPlace) -> None:
    """Remove the unsealed versions a sealed one replaces (once `object.sealed` proves it)."""
    _drop(s3, done.bucket, done.key, list(done.replaced), done.held)


def _drop(s3: BaseClient, bucket: str, key: str, versions: list[str], held: bool) -> None:
    for version in versions:
        kwargs = {} if version == "null" else {"VersionId": version}
        if held:
            s3.put_object_legal_hold(Bucket=bucket, Key=key, LegalHold={"Status": "OFF"}, **kwargs)
        s3.delete_object(Bucket=bucket, Key=key, BypassGovernanceRetention=True, **kwargs)
