"""Signed checkpoints in the audit bucket, beside the segments. Blocking (boto3).

`checkpoints/{seq}.json` (the sequence number zero-padded, so names sort in
order), written once under the segments' COMPLIANCE retention. Finding the
checkpoint before an instant lists the names (a few pages a year at one an
hour) and reads O(log n) of them: checkpoints are written in time order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from botocore.client import BaseClient

from callvault.rules.audit_checkpoint import Checkpoint, parse_checkpoint
from callvault.storage.audit_archive import write_locked

PREFIX = "checkpoints/"


def checkpoint_key(seq: int) -> str:
    return f"{PREFIX}{seq:012d}.json"


def write_checkpoint(s3: BaseClient, bucket: str, cp: Checkpoint, retain_until: datetime) -> str:
    kwargs = {"Bucket": bucket, "Key": checkpoint_key(cp.seq), "Body": cp.document(),
              "ContentType": "application/json"}  # fmt: skip
    return write_locked(s3, kwargs, retain_until)


def checkpoint_keys(s3: BaseClient, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        keys.extend(item["Key"] for item in page.get("Contents", ()))
    return sorted(keys)


def read_checkpoint(s3: BaseClient, bucket: str, key: str) -> Checkpoint:
    """ValueError with a sentence if it is not a checkpoint."""
    return parse_checkpoint(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def last_checkpoint(s3: BaseClient, bucket: str) -> Checkpoint | None:
    keys = checkpoint_keys(s3, bucket)
    return read_checkpoint(s3, bucket, keys[-1]) if keys else None


def index_at_or_before(keys: list[str], at: datetime, read: Callable[[str], Checkpoint]) -> int | None:
    """The index in `keys` of the last checkpoint taken at or before `at`; None if all are later."""
    low, high, found = 0, len(keys) - 1, None
    while low <= high:
        middle = (low + high) // 2
        if read(keys[middle]).at <= at:
            found, low = middle, middle + 1
        else:
            high = middle - 1
    return found
