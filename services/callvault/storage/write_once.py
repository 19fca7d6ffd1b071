"""A name written once: of two writers of one name at the same moment, exactly one is told it wrote it.

Two DPOs making version N of a client policy, two workers signing checkpoint N
in a rebalance: a look (HEAD) then a write tells both they made it, and the
store keeps one document under two object versions. Where the store refuses a
second write of a name (`If-None-Match: *`: moto, measured; AWS and MinIO document it; `storage
init` measures it, `store_profile.refuses_second_write`) one request decides.
Elsewhere (Ceph RGW 16.2 ignores the header), or where nothing was measured,
each writer puts a claim under `{key}.claim` and the store's own order of that
key's versions decides: the oldest claim wins, and every writer that looks
after its own claim sees the same oldest one. Needs a versioned bucket, as
callvault's locked buckets are. Blocking (boto3): call off the event loop.
"""

from __future__ import annotations

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


def _first_claim(s3: BaseClient, bucket: str, claim: str) -> bool:
    """Whether this writer's claim is the oldest version of the claim key (listed newest first)."""
    mine = s3.put_object(Bucket=bucket, Key=claim, Body=uuid.uuid4().hex.encode()).get("VersionId")
    if not mine or mine == "null":
        raise StorageFault(
            f"the bucket {bucket} keeps no object versions and the store was not seen to refuse a second "
            "write of a name (storage init): two writers of one name could not be told apart"
        )
    versions = [
        v["VersionId"]
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=claim)
        for v in page.get("Versions", ())
        if v["Key"] == claim
    ]
    return bool(versions) and versions[-1] == mine
