"""A name written once: of two writers of one name at the same moment, exactly one is told it wrote it.

Two DPOs making version N of a client policy, two workers signing checkpoint N
in a rebalance: a look (HEAD) then a write tells both they made it, and the
store keeps one document under two object versions. Where the store refuses a
second write of a name (`If-None-Match: *`: moto, measured; AWS and MinIO document it; `storage
init` measures it, `store_profile.refuses_second_write`) one request decides.
Elsewhere (Ceph RGW 16.2 ignores the header), or where nothing was measured,
each writer puts a claim under `{key}.claim` and the store's own order of that
key's versions decides: the oldest claim wins. A writer whose claim looks
oldest looks once more a moment later (`CONFIRM_S`), when every claim made at
the same instant stands, so that all see the same order even on a store that
lists one instant's versions oldest first (moto). Needs a versioned bucket, as
callvault's locked buckets are. Blocking (boto3): call off the event loop.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from callvault.storage.archive import head
from callvault.storage.errors import StorageFault, name_taken

CLAIM_SUFFIX = ".claim"

Put = Callable[..., Any]  # the write itself, given the extra arguments (IfNoneMatch) to send with it


def put_once(s3: BaseClient, bucket: str, key: str, put: Put, *, conditional: bool | None) -> bool:
    """Write `key` with `put` only if no object has that name yet: True if written, False if taken."""
    if conditional:
        try:
            put(IfNoneMatch="*")
        except ClientError as exc:
            if name_taken(exc):
                return False
            raise
        return True
    if head(s3, bucket, key) is not None or not _first_claim(s3, bucket, f"{key}{CLAIM_SUFFIX}"):
        return False
    put()
    return True


CONFIRM_S = 0.25  # a claim that looked oldest is looked at again after this long (see _first_claim)


def _first_claim(s3: BaseClient, bucket: str, claim: str) -> bool:
    """Whether this writer's claim is the oldest version of the claim key (listed newest first).

    A claim that looks oldest is looked at once more, a moment later, and must still be. A store that
    times versions to the millisecond (moto) lists two claims of one millisecond oldest first: the
    writer that looked while its claim stood alone took itself for the first, and so did the other
    (a fresh-clone CI run of 53d06d0: both writers of one policy version told they made it). Looked
    at again once both claims stand, every writer sees the same order, whatever order that is.
    """
    mine = s3.put_object(Bucket=bucket, Key=claim, Body=uuid.uuid4().hex.encode()).get("VersionId")
    if not mine or mine == "null":
        raise StorageFault(
            f"the bucket {bucket} keeps no object versions and the store was not seen to refuse a second "
            "write of a name (storage init): two writers of one name could not be told apart"
        )
    if _oldest_claim(s3, bucket, claim) != mine:
        return False
    time.sleep(CONFIRM_S)  # a claim made at the same moment stands by now
    return _oldest_claim(s3, bucket, claim) == mine


def _oldest_claim(s3: BaseClient, bucket: str, claim: str) -> str | None:
    versions = [
        v["VersionId"]
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=claim)
        for v in page.get("Versions", ())
        if v["Key"] == claim
    ]
    return versions[-1] if versions else None
