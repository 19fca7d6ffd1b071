"""A write-only stream that lands in S3 as it is written: one PUT when small, parts when large.

An export (every recording of a person; the centre's own line takes part in
every call) can outgrow what one PUT may carry (5 GB on AWS) and what a worker
should hold. `PartUpload` keeps at most one part in memory: once the data
outgrows a part, or the single-PUT limit, it becomes a multipart upload. Blocking
(boto3): use it off the event loop.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qsl

from botocore.client import BaseClient

from callvault.storage.archive import ensure_tags

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part but the last
DEFAULT_PART_BYTES = 16 * 1024 * 1024


class PartUpload:
    """`write()` bytes, then `close()` to finish (or `abort()` to leave nothing behind)."""

    def __init__(
        self,
        s3: BaseClient,
        bucket: str,
        key: str,
        *,
        single_put_limit: int,
        part_bytes: int = DEFAULT_PART_BYTES,
        extra_args: dict[str, Any] | None = None,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"a part must be at least {MIN_PART_BYTES} bytes; S3 refuses smaller ones")
        self._s3, self._bucket, self._key = s3, bucket, key
        self._limit = single_put_limit
        self._part_bytes = part_bytes
        self._extra = extra_args or {}
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.size = 0
        self.closed = False
        self.digest = hashlib.sha256()  # of every byte written: the object's SHA-256 once closed

    @property
    def multipart(self) -> bool:
        return self._upload_id is not None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.size += len(data)
        self.digest.update(data)
        while self._part_due():
            size = min(len(self._buffer), self._part_bytes)
            self._send_part(bytes(self._buffer[:size]))
            del self._buffer[:size]
        return len(data)

    def _part_due(self) -> bool:
        """A full part, or (before the first part) more than one PUT may carry and enough for a part."""
        held = len(self._buffer)
        if held >= self._part_bytes:
            return True
        return self._upload_id is None and held > self._limit and held >= MIN_PART_BYTES

    def flush(self) -> None:
        """Nothing to flush before `close`: a part goes when it is full."""

    def _send_part(self, body: bytes) -> None:
        if self._upload_id is None:
            started = self._s3.create_multipart_upload(Bucket=self._bucket, Key=self._key, **self._extra)
            self._upload_id = started["UploadId"]
        number = len(self._parts) + 1
        answer = self._s3.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def close(self) -> None:
        if self.closed:
            return
        if self._upload_id is None and len(self._buffer) <= self._limit:
            self._s3.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer), **self._extra)
        else:
            if self._buffer or not self._parts:
                self._send_part(bytes(self._buffer))
            done = self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            if "Tagging" in self._extra:  # Ceph RGW drops the tags a multipart upload was started with
                tags = dict(parse_qsl(self._extra["Tagging"], keep_blank_values=True))
                ensure_tags(self._s3, self._bucket, self._key, done.get("VersionId"), tags)
        self._buffer = bytearray()
        self.closed = True

    def abort(self) -> None:
        """Drop what was sent: a half-built export must not be left as parts the store keeps."""
        self.closed = True
        self._buffer = bytearray()
        if self._upload_id is not None:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
