"""Callvault's small registries in the metadata bucket (`_callvault/...`): one JSON object per entry.

Legal holds and restricted subjects are both named by their keys, so whoever
only needs to know *which* entries exist pays one listing and no reads.
"""

from __future__ import annotations

from typing import Any, TypeVar

from botocore.client import BaseClient
from pydantic import BaseModel

from callvault.storage.errors import is_not_found
from callvault.storage.write_once import put_once

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


def write_new_entry(
    s3: BaseClient, bucket: str, key: str, entry: BaseModel, *, conditional: bool | None
) -> bool:
    """Write an entry only if no entry has its name yet: True if written, False if another writer has it
    (`storage.write_once`; `conditional`: the store refuses a second write of a name, as measured)."""
    body = entry.model_dump_json().encode()

    def put(**once: Any) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **once)

    return put_once(s3, bucket, key, put, conditional=conditional)


def entry_names(s3: BaseClient, bucket: str, prefix: str) -> set[str]:
    """The names of the `{prefix}{name}.json` objects: one listing, no reads."""
    names: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", ()):
            name = entry["Key"][len(prefix) :]
            if name.endswith(".json"):
                names.add(name[: -len(".json")])
    return names
