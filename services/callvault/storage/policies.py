"""Client policies in the store, beside the legal holds: every version kept, none rewritten.

`_callvault/policies/{tenant}/v{version:06d}.json` in the metadata bucket. A
version is written once and never changed, so the history an auditor reads is
the one the worker applied; the zero-padded number keeps a listing in order.
Like the hold registry it lives in S3 so that it outlives any broker and every
worker, the API and the command line read it with one listing per tenant.
Blocking (boto3): call these off the event loop.
"""

from __future__ import annotations

from botocore.client import BaseClient

from callvault.rules.client_policy import PolicyVersion
from callvault.storage import store_profile
from callvault.storage.registry import write_new_entry

POLICIES_PREFIX = "_callvault/policies/"

PolicyBook = dict[str, list[PolicyVersion]]  # tenant -> versions, oldest first


def _key(tenant: str, version: int) -> str:
    return f"{POLICIES_PREFIX}{tenant}/v{version:06d}.json"


class VersionTaken(RuntimeError):
    """Another change wrote this version number first: read the history again and retry."""


def put_version(s3: BaseClient, bucket: str, version: PolicyVersion) -> None:
    """Write a new version only if its number is new: of two changes at once, one gets the number and
    the other `VersionTaken` (a look, then a write, told both they made it: issue 32)."""
    conditional = store_profile.refuses_second_write(s3, bucket)
    if not write_new_entry(
        s3, bucket, _key(version.tenant, version.version), version, conditional=conditional
    ):
        raise VersionTaken(f"version {version.version} of {version.tenant}'s policy exists already")


def history(s3: BaseClient, bucket: str, tenant: str) -> list[PolicyVersion]:
    """Every version of one tenant's policy, oldest first; empty when it has none."""
    versions = []
    prefix = f"{POLICIES_PREFIX}{tenant}/"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            if item["Key"].endswith(".json"):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                versions.append(PolicyVersion.model_validate_json(body))
    return sorted(versions, key=lambda v: v.version)


def load_book(s3: BaseClient, bucket: str, known: dict[str, PolicyVersion] | None = None) -> PolicyBook:
    """Every tenant's history: what the worker, the purger and the replay apply.

    One listing; a version is read once and kept in `known` (by key) for the next
    call, since versions never change.
    """
    cache = known if known is not None else {}
    book: PolicyBook = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=POLICIES_PREFIX):
        for item in page.get("Contents", ()):
            key = item["Key"]
            if not key.endswith(".json"):
                continue
            if key not in cache:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                cache[key] = PolicyVersion.model_validate_json(body)
            version = cache[key]
            book.setdefault(version.tenant, []).append(version)
    for versions in book.values():
        versions.sort(key=lambda v: v.version)
    return book
