"""The audit bucket: hash-chained segments of `lifecycle`, and a pointer to each partition's last.

Segments are gzip JSON Lines under `segments/p{partition}/{first offset}.jsonl.gz`,
written once, under object-lock retention where the store has it (COMPLIANCE
mode: not even the account's root can shorten it). `heads/p{partition}.json` is
a plain, overwritable pointer to the last segment, so a restart reads one
object instead of listing years of segments; segments written after the
pointer (a crash between the two writes) are found with one listing from it.
Blocking (boto3).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.client import BaseClient

from callvault.storage.errors import error_code, is_not_found


@dataclass(frozen=True, slots=True)
class Head:
    key: str
    last_offset: int
    sha256: str


def segment_prefix(partition: int) -> str:
    return f"segments/p{partition:03d}/"


def segment_key(partition: int, first_offset: int) -> str:
    return f"{segment_prefix(partition)}{first_offset:020d}.jsonl.gz"


def _head_key(partition: int) -> str:
    return f"heads/p{partition:03d}.json"


def write_segment(s3: BaseClient, bucket: str, key: str, body: bytes, retain_until: datetime) -> str:
    """Store a segment; says whether it is locked ("compliance until …") or why not."""
    packed = gzip.compress(body, mtime=0)
    kwargs = {"Bucket": bucket, "Key": key, "Body": packed, "ContentType": "application/x-ndjson",
              "ContentEncoding": "gzip"}  # fmt: skip
    return write_locked(s3, kwargs, retain_until)


def write_locked(s3: BaseClient, kwargs: dict[str, Any], retain_until: datetime) -> str:
    """Put an object under COMPLIANCE retention where the bucket has object lock; says which it got."""
    try:
        s3.put_object(**kwargs, ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=retain_until)
        return f"compliance until {retain_until:%Y-%m-%d}"
    except Exception as exc:
        if error_code(exc) not in {
            "InvalidRequest",
            "NotImplemented",
            "ObjectLockConfigurationNotFoundError",
        }:
            raise
    s3.put_object(**kwargs)
    return "unlocked (the bucket has no object lock)"


def read_segment(s3: BaseClient, bucket: str, key: str) -> bytes:
    return gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def segment_keys(s3: BaseClient, bucket: str, partition: int, start_after: str = "") -> list[str]:
    keys = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=segment_prefix(partition), StartAfter=start_after):
        keys.extend(item["Key"] for item in page.get("Contents", ()))
    return sorted(keys)


def head_partitions(s3: BaseClient, bucket: str) -> list[int]:
    """The partitions that have a head in the bucket (one listing of `heads/`)."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="heads/p"):
        for item in page.get("Contents", ()):
            number = item["Key"][len("heads/p") :].removesuffix(".json")
            if number.isdigit():
                found.append(int(number))
    return sorted(found)


def read_head(s3: BaseClient, bucket: str, partition: int) -> Head | None:
    try:
        raw = json.loads(s3.get_object(Bucket=bucket, Key=_head_key(partition))["Body"].read())
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    return Head(raw["key"], int(raw["last_offset"]), raw["sha256"])


def deleted_keys(s3: BaseClient, bucket: str, prefix: str, after: str = "") -> list[str]:
    """Names under `prefix` (past `after`) whose newest version is a delete marker.

    callvault never deletes from the audit bucket, and COMPLIANCE retention keeps every version; but
    a plain DELETE still lays a delete marker over it, which hides the name from a listing. Such a
    name is the log cut by hand: a finding, however intact the rest of the chain looks.
    """
    kwargs = {"Bucket": bucket, "Prefix": prefix, **({"KeyMarker": after} if after else {})}
    found: set[str] = set()
    for page in s3.get_paginator("list_object_versions").paginate(**kwargs):
        found.update(m["Key"] for m in page.get("DeleteMarkers", ()) if m.get("IsLatest"))
    return sorted(found)


def write_head(s3: BaseClient, bucket: str, partition: int, head: Head) -> None:
    body = json.dumps({"key": head.key, "last_offset": head.last_offset, "sha256": head.sha256}).encode()
    s3.put_object(Bucket=bucket, Key=_head_key(partition), Body=body, ContentType="application/json")
