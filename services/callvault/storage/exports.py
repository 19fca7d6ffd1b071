"""Exports for access requests: built, stored for a short while, linked, and erased on time.

An export lives in the exports bucket under `{tenant}/{request_id}.zip`, with its
expiry in its user metadata and tags (the bucket's lifecycle rule is the
backstop; the purger erases it on the minute). The ZIP is written straight into
the store, a part at a time, never whole in memory or on disk: a subject with
many calls has many recordings. Blocking (boto3): call off the loop.
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.client import BaseClient

from callvault.contract.fields import format_rfc3339
from callvault.rules.data_classes import data_classes
from callvault.rules.retention import RetentionClass
from callvault.rules.subject_export import manifest, subject_view
from callvault.storage.archive import delete_object
from callvault.storage.errors import is_not_found
from callvault.storage.layout import tagging_header
from callvault.storage.subject_index import IndexEntry
from callvault.storage.uploads import DEFAULT_PART_BYTES, PartUpload

EXPIRES_META = "callvault-expires-at"
ABOUT_META = ("callvault-tenant", "callvault-subject", "callvault-request-id")


# The call's document: what the subject is shown of it (`subject_view`), and without which a call is gone.
DOCUMENT = RetentionClass.METADATA


@dataclass
class BuiltExport:
    uri: str
    calls: int = 0
    by_class: Counter[str] = field(default_factory=Counter)  # objects exported, by data-class name
    size_bytes: int = 0
    multipart: bool = False  # written in parts: larger than one PUT may carry

    @property
    def recordings(self) -> int:
        return self.by_class[RetentionClass.RECORDING]

    @property
    def metadata(self) -> int:
        return self.by_class[RetentionClass.METADATA]


def export_key(tenant: str, request_id: str) -> str:
    return f"{tenant}/{request_id}.zip"


def _get(s3: BaseClient, bucket: str, key: str) -> Any | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:
        if is_not_found(exc):
            return None  # erased meanwhile (its retention ended): nothing of it to give
        raise


def build_export(
    s3: BaseClient,
    *,
    buckets: Mapping[str, str],
    exports_bucket: str,
    entries: list[IndexEntry],
    subject: str,
    request_id: str,
    tenant: str,
    now: datetime,
    expires_at: datetime,
    single_put_limit: int,
    part_bytes: int = DEFAULT_PART_BYTES,
) -> BuiltExport:
    """Write the ZIP straight into the exports bucket, a part at a time (see `PartUpload`).

    `buckets`: each data class's bucket, by its name. Every class the registry exports goes in.

    Nothing of it stays behind if building fails: the multipart upload is aborted.
    """
    key = export_key(tenant, request_id)
    built = BuiltExport(uri=f"s3://{exports_bucket}/{key}")
    expiry = format_rfc3339(expires_at)
    upload = PartUpload(
        s3,
        exports_bucket,
        key,
        single_put_limit=single_put_limit,
        part_bytes=part_bytes,
        extra_args={
            "ContentType": "application/zip",
            "ContentDisposition": f'attachment; filename="callvault-export-{request_id}.zip"',
            "Metadata": dict(zip(ABOUT_META, (tenant, subject, request_id), strict=True))
            | {EXPIRES_META: expiry},
            "Tagging": tagging_header({"retention-class": "export", "expires-at": expiry, "tenant": tenant}),
        },
    )
    try:
        with zipfile.ZipFile(upload, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[arg-type]
            listed = []
            for entry in entries:
                item = _add_call(s3, archive, entry, subject, built, buckets)
                if item is not None:
                    listed.append(item)
            about = manifest(
                request_id=request_id,
                tenant=tenant,
                subject=subject,
                generated_at=now,
                expires_at=expires_at,
                calls=listed,
            )
            archive.writestr("manifest.json", json.dumps(about, indent=2, sort_keys=True))
        upload.close()
    except BaseException:
        upload.abort()
        raise
    built.calls = len(listed)
    built.size_bytes = upload.size
    built.multipart = upload.multipart
    return built


def _add_call(
    s3: BaseClient,
    archive: zipfile.ZipFile,
    entry: IndexEntry,
    subject: str,
    built: BuiltExport,
    buckets: Mapping[str, str],
) -> dict[str, Any] | None:
    """One call's document and its other objects into the ZIP; None when its document is gone already."""
    key = entry.objects.get(DOCUMENT)
    body = _get(s3, buckets[DOCUMENT], key) if key else None
    if body is None:
        return None
    doc = json.loads(body.read())
    name = f"calls/{entry.call_id}.json"
    archive.writestr(name, json.dumps(subject_view(doc, subject), indent=2, sort_keys=True))
    item: dict[str, Any] = {"call_id": entry.call_id, DOCUMENT: name}
    built.by_class[DOCUMENT] += 1
    for kind in data_classes():
        if kind.name == DOCUMENT or not kind.in_export:
            continue
        item[kind.name] = None
        key = entry.objects.get(kind.name)
        found = _get(s3, buckets[kind.name], key) if key else None
        if found is None or key is None:
            continue
        item[kind.name] = f"{kind.name}s/{entry.call_id}.{key.rsplit('.', 1)[-1]}"
        # Audio is already compressed (or not worth the CPU): stored as is, streamed.
        with archive.open(zipfile.ZipInfo(item[kind.name]), "w", force_zip64=True) as out:
            while chunk := found.read(1024 * 1024):
                out.write(chunk)
        found.close()
        built.by_class[kind.name] += 1
    return item


def presign(s3: BaseClient, bucket: str, key: str, seconds: int) -> str:
    return str(
        s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=max(1, seconds)
        )
    )


@dataclass(frozen=True, slots=True)
class StoredExport:
    key: str
    tenant: str
    subject: str
    request_id: str
    expires_at: datetime


def stored_exports(
    s3: BaseClient, bucket: str, known: dict[str, StoredExport] | None = None
) -> list[StoredExport]:
    """Every export in the bucket with its expiry: one listing, and a HEAD for each key not in `known`
    (an export is written once and never changed, so what was read of it stays true)."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            if known is not None and item["Key"] in known:
                found.append(known[item["Key"]])
                continue
            try:
                meta = s3.head_object(Bucket=bucket, Key=item["Key"]).get("Metadata", {})
            except Exception as exc:
                if is_not_found(exc):
                    continue
                raise
            if EXPIRES_META not in meta:
                continue
            tenant, subject, request_id = (meta.get(name, "") for name in ABOUT_META)
            expires = datetime.fromisoformat(meta[EXPIRES_META])
            found.append(StoredExport(item["Key"], tenant, subject, request_id, expires))
    return found


def erase_export(s3: BaseClient, bucket: str, key: str) -> int:
    return delete_object(s3, bucket, key)
