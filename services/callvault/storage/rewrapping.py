"""An archived object's data key wrapped under another KMS key, without re-encrypting a byte of it.

The segments of a sealed object are bound to its header's fixed fields, not to how its data key is
wrapped (`contract.sealed`), and the object's user metadata names the wrapping in force. So moving an
object to another key is: KMS re-encrypts the wrapped data key (`tenant_keys.rewrap`; the data key never
leaves KMS in the clear), and the store copies the object onto itself with the new wrapping in its
metadata (a server-side copy: no audio passes through here), under the same tags, retention and legal
hold; then the version it replaces is removed, so no version under the old wrapping is left.

Used for a held call at a contract's end (its client's key is shredded, the hold key keeps it readable)
and by `callvault tenant keys rotate --rewrap`. Blocking (boto3): call off the event loop.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore.client import BaseClient
from pydantic import BaseModel

from callvault.clock import Clock
from callvault.storage.archive import NO_LOCK_CODES, ensure_tags, governance, head, object_tags
from callvault.storage.errors import error_code
from callvault.storage.offboarding import tenant_keys
from callvault.storage.registry import read_entry, write_entry
from callvault.storage.sealing import KEY_META, WRAPPED_META, Keyring, is_sealed, sealed_header
from callvault.storage.tenant_keys import rewrap

REWRAPPED_META = "rewrapped-at"  # when the wrapping was last replaced: a resumed run skips it


def rewrap_object(
    s3: BaseClient, keyring: Keyring, bucket: str, key: str, to_key: str, now: datetime,
    *, held: bool = False, since: datetime | None = None,
) -> str | None:  # fmt: skip
    """Wrap the newest version's data key under `to_key`; the new version's id, or None when there was
    nothing to do (no such object, stored unsealed, or re-wrapped at or after `since` already)."""
    found = head(s3, bucket, key)
    if found is None or not is_sealed(found.get("Metadata")):
        return None
    meta: dict[str, str] = dict(found.get("Metadata") or {})
    if since is not None and (
        meta.get(REWRAPPED_META, "") >= since.isoformat() or found.get("LastModified", since) > since
    ):
        return None  # re-wrapped by a run that stopped half-way, or sealed after the rotation
    old = found.get("VersionId")
    tags = object_tags(s3, bucket, key, old)
    header, _ = sealed_header(s3, bucket, key, old)
    assert header is not None  # is_sealed said so
    key_id, wrapped = rewrap(keyring.kms, header, to_key)
    meta |= {
        KEY_META: key_id,
        WRAPPED_META: base64.b64encode(wrapped).decode(),
        REWRAPPED_META: now.isoformat(),
    }
    source: dict[str, Any] = {"Bucket": bucket, "Key": key, **({"VersionId": old} if old else {})}
    answer = s3.copy_object(
        CopySource=source, Bucket=bucket, Key=key, Metadata=meta, MetadataDirective="REPLACE",
        TaggingDirective="COPY", ContentType=found.get("ContentType", "application/octet-stream"),
    )  # fmt: skip
    new = answer.get("VersionId") or (head(s3, bucket, key) or {}).get("VersionId")
    ensure_tags(s3, bucket, key, new, tags)  # Ceph RGW drops them on a copy that replaces the metadata
    lock = governance(s3, bucket, found.get("ObjectLockRetainUntilDate"))
    if new and lock:
        s3.put_object_retention(
            Bucket=bucket, Key=key, VersionId=new, BypassGovernanceRetention=True,
            Retention={"Mode": lock["ObjectLockMode"], "RetainUntilDate": lock["ObjectLockRetainUntilDate"]},
        )  # fmt: skip
    if new and old and new != old:
        if held or found.get("ObjectLockLegalHoldStatus") == "ON":
            _legal_hold(s3, bucket, key, new, "ON")
            _legal_hold(s3, bucket, key, old, "OFF")
        s3.delete_object(Bucket=bucket, Key=key, VersionId=old, BypassGovernanceRetention=True)
    return new


def _legal_hold(s3: BaseClient, bucket: str, key: str, version: str, status: str) -> None:
    try:
        s3.put_object_legal_hold(Bucket=bucket, Key=key, VersionId=version, LegalHold={"Status": status})
    except Exception as exc:
        if error_code(exc) not in NO_LOCK_CODES:  # a bucket without object lock: no hold to carry
            raise


REWRAPS_PREFIX = "_callvault/rewraps/"


class Rewrap(BaseModel):
    """A tenant's re-wrap under way: resumed by the next `rotate --rewrap` instead of rotating again."""

    tenant: str
    key_id: str
    rotated_at: datetime
    done: bool = False


def rewrap_record(s3: BaseClient, bucket: str, tenant: str) -> Rewrap | None:
    return read_entry(s3, bucket, f"{REWRAPS_PREFIX}{tenant}.json", Rewrap)


def save_rewrap(s3: BaseClient, bucket: str, record: Rewrap) -> None:
    write_entry(s3, bucket, f"{REWRAPS_PREFIX}{record.tenant}.json", record)


def rewrap_tenant(
    s3: BaseClient, keyring: Keyring, buckets: list[str], record: Rewrap, clock: Clock,
    progress: Callable[[str, int, int], None] = lambda what, done, total: None,
) -> int:  # fmt: skip
    """Every sealed object of the tenant re-wrapped under its key's current version, those re-wrapped
    since the rotation skipped (a resumed run); how many were re-wrapped now. `clock` dates each."""
    done = 0
    for bucket in buckets:
        keys = [e.key for e in tenant_keys(s3, bucket, record.tenant) if e.data_version is not None]
        for count, key in enumerate(keys, start=1):
            moved = rewrap_object(
                s3, keyring, bucket, key, record.key_id, clock.now(), since=record.rotated_at
            )
            done += moved is not None
            progress(bucket, count, len(keys))
    return done
