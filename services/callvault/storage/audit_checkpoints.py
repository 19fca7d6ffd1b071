"""Signed checkpoints in the audit bucket, beside the segments. Blocking (boto3).

`checkpoints/{seq}.json` (the sequence number zero-padded, so names sort in
order), written once under the segments' COMPLIANCE retention. Once means once:
two leaders for a moment (a rebalance) both sign checkpoint N, and only the
first write of the name stands (`storage.write_once`); the other steps back.
A store that kept two versions of one name anyway (written before this rule, or
by hand) is read whole: every version of every name, so that a verifier can
tell two valid checkpoints for one number from a broken chain. Finding the
checkpoint before an instant lists the names (a few pages a year at one an
hour) and reads O(log n) of them: checkpoints are written in time order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore.client import BaseClient

from callvault.rules.audit_checkpoint import Checkpoint, parse_checkpoint
from callvault.storage.audit_archive import deleted_keys, write_locked
from callvault.storage.write_once import CLAIM_SUFFIX, put_once

PREFIX = "checkpoints/"
_NAME = re.compile(r"^checkpoints/(\d{12})\.json$")


def checkpoint_key(seq: int) -> str:
    return f"{PREFIX}{seq:012d}.json"


def write_checkpoint(
    s3: BaseClient, bucket: str, cp: Checkpoint, retain_until: datetime, *, conditional: bool | None
) -> str | None:
    """Store a checkpoint under a name no other has; how it is locked, or None when another signer
    wrote that number first (`conditional`: the store refuses a second write of a name, as measured)."""
    kwargs = {"Bucket": bucket, "Key": checkpoint_key(cp.seq), "Body": cp.document(),
              "ContentType": "application/json"}  # fmt: skip
    locked: list[str] = []

    def put(**once: Any) -> None:
        locked.append(write_locked(s3, {**kwargs, **once}, retain_until))

    return locked[0] if put_once(s3, bucket, checkpoint_key(cp.seq), put, conditional=conditional) else None


def checkpoint_versions(s3: BaseClient, bucket: str) -> dict[str, list[str]]:
    """Every checkpoint's name and its stored versions, newest first: one listing of versions. A name
    a delete marker hides is left out (it is a finding of its own)."""
    names: dict[str, list[str]] = {}
    hidden: set[str] = set()  # behind a delete marker: reported by `deleted_checkpoint_keys`
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=PREFIX):
        for item in page.get("Versions", ()):
            if seq_of(item["Key"]) is not None:
                names.setdefault(item["Key"], []).append(item.get("VersionId") or "null")
        hidden.update(m["Key"] for m in page.get("DeleteMarkers", ()) if m.get("IsLatest"))
    return {key: versions for key, versions in sorted(names.items()) if key not in hidden}


def deleted_checkpoint_keys(s3: BaseClient, bucket: str) -> list[str]:
    """Checkpoint names hidden by a delete marker (see `audit_archive.deleted_keys`)."""
    return [key for key in deleted_keys(s3, bucket, PREFIX) if key.endswith(".json")]


def seq_of(key: str) -> int | None:
    """The number a checkpoint's name gives; None for a name that is not one (a stray object)."""
    found = _NAME.fullmatch(key)
    return int(found[1]) if found else None


def checkpoint_keys(s3: BaseClient, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        keys.extend(item["Key"] for item in page.get("Contents", ()) if seq_of(item["Key"]) is not None)
    return sorted(keys)


def stray_keys(s3: BaseClient, bucket: str) -> list[str]:
    """Objects under `checkpoints/` that are neither a checkpoint's name nor a write-once claim: planted."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for item in page.get("Contents", ()):
            key = item["Key"]
            if seq_of(key) is None and not (key.endswith(CLAIM_SUFFIX) and seq_of(key[: -len(CLAIM_SUFFIX)])):
                keys.append(key)
    return sorted(keys)


def read_checkpoint(s3: BaseClient, bucket: str, key: str, version_id: str | None = None) -> Checkpoint:
    """ValueError with a sentence if it is not a checkpoint."""
    which = {"VersionId": version_id} if version_id and version_id != "null" else {}
    return parse_checkpoint(s3.get_object(Bucket=bucket, Key=key, **which)["Body"].read())


def last_checkpoint(s3: BaseClient, bucket: str) -> Checkpoint | None:
    """The newest checkpoint whose name and body agree; what the signer continues from. A planted
    object under `checkpoints/` (garbage, or a copy of an old checkpoint under a later name) is passed
    over, so it can neither stop the signing nor make it start again from an old number."""
    for key in reversed(checkpoint_keys(s3, bucket)):
        try:
            cp = read_checkpoint(s3, bucket, key)
        except ValueError:
            continue  # verify reports it
        if cp.seq == seq_of(key):
            return cp
    return None


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
