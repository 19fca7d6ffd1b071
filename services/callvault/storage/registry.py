"""Callvault's small registries in the metadata bucket (`_callvault/...`): one JSON object per entry.

Legal holds and restricted subjects are both named by their keys, so whoever
only needs to know *which* entries exist pays one listing and no reads.
"""

from __future__ import annotations

from botocore.client import BaseClient


def entry_names(s3: BaseClient, bucket: str, prefix: str) -> set[str]:
    """The names of the `{prefix}{name}.json` objects: one listing, no reads."""
    names: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", ()):
            name = entry["Key"][len(prefix) :]
            if name.endswith(".json"):
                names.add(name[: -len(".json")])
    return names
