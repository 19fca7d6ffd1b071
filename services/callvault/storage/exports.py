"""Exports for access requests: built, stored for a short while, linked, and erased on time.

An export lives in the exports bucket under `{tenant}/{request_id}.zip`, with its
expiry in its user metadata and tags (the bucket's lifecycle rule is the
backstop; the purger erases it on the minute). The ZIP is written straight into
the store, a part at a time, never whole in memory or on disk: a subject with
many calls has many recordings. Blocking (boto3): call off the loop.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.client import BaseClient

from callvault.contract.fields import format_rfc3339
from callvault.contract.portable import SCHEMA_IDS, PortableFile, PortableManifest
from callvault.rules.data_classes import data_classes
from callvault.rules.retention import RetentionClass
from callvault.rules.subject_export import PORTABLE_ABOUT, manifest, portable_call, subject_view
from callvault.storage.archive import delete_object
from callvault.storage.errors import is_not_found
from callvault.storage.layout import tagging_header
from callvault.storage.sealing import Keyring, open_plain
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
    sha256: str = ""  # of the ZIP as stored

    @property
    def recordings(self) -> int:
        return self.by_class[RetentionClass.RECORDING]

    @property
    def metadata(self) -> int:
        return self.by_class[RetentionClass.METADATA]


def export_key(tenant: str, request_id: str) -> str:
    return f"{tenant}/{request_id}.zip"


def _get(s3: BaseClient, keyring: Keyring, bucket: str, key: str) -> Any | None:
    """The object's plaintext as a body (opened under its client's key where it is sealed: an export is
    for the subject to read), or None when it is gone."""
    try:
        return open_plain(s3, keyring, bucket, key)
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
    portable: bool = False,
    keyring: Keyring,
) -> BuiltExport:
    """Write the ZIP straight into the exports bucket, a part at a time (see `PartUpload`).

    `buckets`: each data class's bucket, by its name. Every class the registry exports goes in.
    `portable`: the calls as `contract.portable.PortableCall` and a manifest naming every file with its
    SHA-256 (GDPR art. 20), instead of the archived documents as the subject's view of them.

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
            files: list[PortableFile] | None = [] if portable else None
            for entry in entries:
                item = _add_call(s3, keyring, archive, entry, subject, built, buckets, files)
                if item is not None:
                    listed.append(item)
            if files is not None:
                about: dict[str, Any] = PortableManifest(
                    request_id=request_id, tenant=tenant, subject=subject, generated_at=now, files=files,
                    about=PORTABLE_ABOUT,
                ).model_dump(mode="json", by_alias=True)  # fmt: skip
            else:
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
    built.sha256 = upload.digest.hexdigest()
    return built


def _add_call(
    s3: BaseClient,
    keyring: Keyring,
    archive: zipfile.ZipFile,
    entry: IndexEntry,
    subject: str,
    built: BuiltExport,
    buckets: Mapping[str, str],
    files: list[PortableFile] | None = None,
) -> dict[str, Any] | None:
    """One call's document and its other objects into the ZIP; None when its document is gone already.
    `files`: a portable export's list of what it holds, each file with its SHA-256."""
    key = entry.objects.get(DOCUMENT)
    body = _get(s3, keyring, buckets[DOCUMENT], key) if key else None
    if body is None:
        return None
    doc = json.loads(body.read())
    name = f"calls/{entry.call_id}.json"
    item: dict[str, Any] = {"call_id": entry.call_id, DOCUMENT: name}
    built.by_class[DOCUMENT] += 1
    others = _add_others(s3, keyring, archive, entry, built, buckets, item, files)
    if files is None:
        archive.writestr(name, json.dumps(subject_view(doc, subject), indent=2, sort_keys=True))
        return item
    recording = others.get(str(RetentionClass.RECORDING))
    shown = portable_call(doc, subject, recording).model_dump_json(indent=2).encode()
    archive.writestr(name, shown)
    files.insert(len(files) - len(others), _file(name, shown, SCHEMA_IDS["portable.call"]))
    return item


def _file(path: str, data: bytes, schema: str | None = None) -> PortableFile:
    return PortableFile(
        path=path, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), schema=schema
    )


def _add_others(
    s3: BaseClient,
    keyring: Keyring,
    archive: zipfile.ZipFile,
    entry: IndexEntry,
    built: BuiltExport,
    buckets: Mapping[str, str],
    item: dict[str, Any],
    files: list[PortableFile] | None,
) -> dict[str, str]:
    """The call's objects of every other exported class, streamed in; their paths by class."""
    written: dict[str, str] = {}
    for kind in data_classes():
        if kind.name == DOCUMENT or not kind.in_export:
            continue
        item[kind.name] = None
        key = entry.objects.get(kind.name)
        found = _get(s3, keyring, buckets[kind.name], key) if key else None
        if found is None or key is None:
            continue
        path = item[kind.name] = f"{kind.name}s/{entry.call_id}.{key.rsplit('.', 1)[-1]}"
        digest, size = hashlib.sha256(), 0
        # Audio is already compressed (or not worth the CPU): stored as is, streamed.
        with archive.open(zipfile.ZipInfo(path), "w", force_zip64=True) as out:
            while chunk := found.read(1024 * 1024):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        found.close()
        built.by_class[kind.name] += 1
        written[kind.name] = path
        if files is not None:
            files.append(PortableFile(path=path, sha256=digest.hexdigest(), size_bytes=size))
    return written


def deliver(s3: BaseClient, export_uri: str, destination: str, request_id: str) -> tuple[str, int]:
    """Copy an export to another organisation's bucket (`s3://bucket/prefix`), server-side; where it went
    and its size as the destination holds it."""
    source_bucket, _, source_key = export_uri.removeprefix("s3://").partition("/")
    bucket, _, prefix = destination.removeprefix("s3://").partition("/")
    key = f"{prefix.strip('/')}/callvault-export-{request_id}.zip".lstrip("/")
    s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": source_bucket, "Key": source_key},
        MetadataDirective="REPLACE",  # callvault's own metadata and tags stay home
        TaggingDirective="REPLACE",
        ContentType="application/zip",
    )
    size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    return f"s3://{bucket}/{key}", size


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
