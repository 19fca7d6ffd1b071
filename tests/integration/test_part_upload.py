"""Exports go up as they are built: one PUT when small, parts when larger than one PUT may carry."""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest

from callvault.settings import Settings
from callvault.storage.client import make_s3_client
from callvault.storage.uploads import MIN_PART_BYTES, PartUpload

pytestmark = pytest.mark.integration


def _write(upload: PartUpload, data: bytes, chunk: int = 256 * 1024) -> None:
    for start in range(0, len(data), chunk):
        upload.write(data[start : start + chunk])


def test_a_small_object_is_one_put(settings: Settings) -> None:
    s3, key = make_s3_client(settings), f"t/{uuid.uuid4()}.bin"
    upload = PartUpload(s3, settings.exports_bucket, key, single_put_limit=1024 * 1024)
    _write(upload, b"x" * 1000)
    upload.close()
    head = s3.head_object(Bucket=settings.exports_bucket, Key=key)
    assert head["ContentLength"] == 1000 and "-" not in head["ETag"] and not upload.multipart


def test_a_large_object_goes_up_in_parts_and_holds_the_same_bytes(settings: Settings) -> None:
    s3, key = make_s3_client(settings), f"t/{uuid.uuid4()}.bin"
    data = os.urandom(2 * MIN_PART_BYTES + 12345)
    upload = PartUpload(
        s3, settings.exports_bucket, key, single_put_limit=64 * 1024, part_bytes=MIN_PART_BYTES,
        extra_args={"ContentType": "application/zip", "Tagging": "retention-class=export"},
    )  # fmt: skip
    _write(upload, data)
    upload.close()
    assert upload.multipart and upload.size == len(data)
    head = s3.head_object(Bucket=settings.exports_bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3") and head["ContentType"] == "application/zip"
    body = s3.get_object(Bucket=settings.exports_bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    tags = s3.get_object_tagging(Bucket=settings.exports_bucket, Key=key)["TagSet"]
    assert {"Key": "retention-class", "Value": "export"} in tags


def test_an_aborted_upload_leaves_nothing(settings: Settings) -> None:
    s3, key = make_s3_client(settings), f"t/{uuid.uuid4()}.bin"
    upload = PartUpload(s3, settings.exports_bucket, key, single_put_limit=1024, part_bytes=MIN_PART_BYTES)
    _write(upload, os.urandom(MIN_PART_BYTES + 10))
    assert upload.multipart
    upload.abort()
    listed = s3.list_multipart_uploads(Bucket=settings.exports_bucket, Prefix=key).get("Uploads", [])
    assert listed == []
    assert "Contents" not in s3.list_objects_v2(Bucket=settings.exports_bucket, Prefix=key)


def test_a_part_below_s3s_minimum_is_refused_up_front(settings: Settings) -> None:
    with pytest.raises(ValueError, match="at least 5242880 bytes"):
        PartUpload(
            make_s3_client(settings), settings.exports_bucket, "k", single_put_limit=1, part_bytes=1024
        )
