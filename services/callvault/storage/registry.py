"""Callvault's small registries in the metadata bucket (`_callvault/...`): one JSON object per entry.

Legal holds and restricted subjects are both named by their keys, so whoever
only needs to know *which* entries exist pays one listing and no reads.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from botocore.client import BaseClient
from botocore.exceptions import ClientError
from pydantic import BaseModel

from callvault.storage.errors import StorageFault, is_not_found

Entry = TypeVar("Entry", bound=BaseModel)


def read_entry(s3: BaseClient, bucket: str, key: str, model: type[Entry]) -> Entry | None:
    """One entry, read into its model; None when there is none."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    return model.model_validate_json(body)


def write_entry(s3: BaseClient, bucket: str, key: str, entry: BaseModel) -> None:
    """One entry, written as its model's JSON: the one way callvault's registries are written."""
    body = entry.model_dump_json().encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


# 412: the name exists; 409 (AWS): another conditional write of the name is under way.
_NAME_TAKEN_STATUS = frozenset({409, 412})


def write_new_entry(
    s3: BaseClient, bucket: str, key: str, entry: BaseModel, *, conditional: bool | None
) -> bool:
    """Write an entry only if no entry has its name yet: True if written, False if another writer has it.

    Two writers of one name (two DPOs making version N of a policy at once) must not both be told
    they made it. Where the store refuses a second write of a name (`If-None-Match: *`; AWS, MinIO,
    moto: `conditional`, as `storage init` measured it) that one request decides. Elsewhere, or when
    nothing was measured, each writer puts a claim under `{key}.claim` and the store's own order of
    that key's versions decides: the oldest claim wins, and every writer that looks after its own
    claim sees the same oldest one.
    """
    body = entry.model_dump_json().encode()
    if conditional:
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in _NAME_TAKEN_STATUS:
                return False
            raise
        return True
    if _exists(s3, bucket, key) or not _first_claim(s3, bucket, f"{key}.claim"):
        return False
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return True


def _exists(s3: BaseClient, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def _first_claim(s3: BaseClient, bucket: str, claim: str) -> bool:
    """Whether this writer's claim is the oldest version of the claim key (listed newest first)."""
    mine = s3.put_object(Bucket=bucket, Key=claim, Body=uuid.uuid4().hex.encode()).get("VersionId")
    if not mine or mine == "null":
        raise StorageFault(
            f"the bucket {bucket} keeps no object versions and the store was not seen to refuse a second "
            "write of a name (storage init): two writers of one entry could not be told apart"
        )
    versions = [
        v["VersionId"]
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=claim)
        for v in page.get("Versions", ())
        if v["Key"] == claim
    ]
    return bool(versions) and versions[-1] == mine


def entry_names(s3: BaseClient, bucket: str, prefix: str) -> set[str]:
    """The names of the `{prefix}{name}.json` objects: one listing, no reads."""
    names: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", ()):
            name = entry["Key"][len(prefix) :]
            if name.endswith(".json"):
                names.add(name[: -len(".json")])
    return names
