"""The blocking steps of a contract's end: list a tenant's data, copy it out, erase what is left.

`stream/offboarding.py` puts them in order and proves them; these only talk to
the stores. A copy is checked against the SHA-256 the archive recorded while
the bytes stream through, and skipped when the destination already holds that
file with that hash, so a run killed half-way is finished by the next without
copying twice. Blocking (boto3): call these off the event loop.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient

from callvault.storage.archive import SHA_META
from callvault.storage.errors import StorageFault, is_not_found
from callvault.storage.inventory import KeyVersions, all_days, list_versions
from callvault.storage.layout import day_prefix
from callvault.storage.sealing import Keyring, open_plain

MANIFEST = "manifest.json"
_TRANSFER = TransferConfig(multipart_threshold=64 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024)


def tenant_keys(s3: BaseClient, bucket: str, tenant: str) -> Iterator[KeyVersions]:
    """Every key of the tenant's days in `bucket`, with all its versions and delete markers."""
    for owner, day in all_days(s3, bucket, tenant):
        yield from list_versions(s3, bucket, f"{day_prefix(owner, day)}/")


class _Hashing:
    """A file-like view of a body that hashes what is read through it."""

    def __init__(self, body: BinaryIO) -> None:
        self.body = body
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, amount: int = -1) -> bytes:
        chunk = self.body.read(amount) if amount and amount > 0 else self.body.read()
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk


def copy_out(
    source: BaseClient,
    bucket: str,
    key: str,
    version: str,
    sha256: str,
    dest: BaseClient,
    dest_bucket: str,
    dest_key: str,
    keyring: Keyring,
) -> bool:
    """Copy one archived version to the client's store, opened (the client gets its data back, not
    bytes sealed under a key that is about to be shredded); False when it is there already."""
    try:
        there = dest.head_object(Bucket=dest_bucket, Key=dest_key)
        if there.get("Metadata", {}).get(SHA_META) == sha256:
            return False
    except Exception as exc:
        if not is_not_found(exc):
            raise
    body = open_plain(source, keyring, bucket, key, version=None if version == "null" else version)
    reader = _Hashing(body)
    dest.upload_fileobj(
        reader, dest_bucket, dest_key, ExtraArgs={"Metadata": {SHA_META: sha256}}, Config=_TRANSFER
    )
    if reader.digest.hexdigest() != sha256:
        dest.delete_object(Bucket=dest_bucket, Key=dest_key)
        raise StorageFault(
            f"s3://{bucket}/{key} does not hash to the SHA-256 the archive recorded; not returned"
        )
    return True


def manifest_bytes(files: list[dict[str, Any]], tenant: str, written_at: str) -> bytes:
    """The manifest: each returned file's path (under the prefix), class, size and SHA-256."""
    doc = {"tenant": tenant, "written_at": written_at, "files": sorted(files, key=lambda f: f["path"])}
    return json.dumps(doc, indent=1, sort_keys=True).encode()


def put_manifest(dest: BaseClient, bucket: str, key: str, body: bytes) -> str:
    dest.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return hashlib.sha256(body).hexdigest()
