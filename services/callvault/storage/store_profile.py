"""What `storage init` measured of the store, so the worker pays for a check only where it is needed.

Every archived recording is a server-side copy that must carry callvault's own
lifecycle tags, which the purger's walk and the lifecycle backstop read. AWS,
MinIO and moto put the copy's new tags on it; Ceph RGW 16.2 keeps the
source's. Reading the tags back after every copy costs a request per call on
every store; `storage init` instead copies a probe once and records what the
store did in `_callvault/store-profile.json` in the metadata bucket. The worker
reads it at start and checks each copy's tags only where the store was seen to
lose them, or where nothing was measured (a store initialised by an older
version): unknown means checked. Likewise whether the store refuses a second
write of a name (`If-None-Match: *`), which decides how a registry entry is
written only once (`registry.write_new_entry`). Blocking (boto3): call off the loop.
"""

from __future__ import annotations

from botocore.client import BaseClient
from botocore.exceptions import ClientError
from pydantic import BaseModel

from callvault.storage.archive import delete_all_versions, object_tags
from callvault.storage.layout import tagging_header
from callvault.storage.registry import read_entry, write_entry

PROFILE_KEY = "_callvault/store-profile.json"
_PROBE = "_callvault/store-probe/"


class StoreProfile(BaseModel):
    keeps_copy_tags: bool  # a copy with TaggingDirective=REPLACE carries the tags it was given
    # a second PUT of a name with If-None-Match: * is refused (412); None: not measured (older profile)
    refuses_second_write: bool | None = None


def measure(s3: BaseClient, bucket: str) -> StoreProfile:
    """Copy a tagged probe with other tags, the way recordings are archived, and see what it keeps."""
    source, copy, once = f"{_PROBE}source", f"{_PROBE}copy", f"{_PROBE}once"
    try:
        s3.put_object(Bucket=bucket, Key=source, Body=b"probe", Tagging=tagging_header({"probe": "source"}))
        s3.copy_object(
            CopySource={"Bucket": bucket, "Key": source},
            Bucket=bucket,
            Key=copy,
            MetadataDirective="REPLACE",
            Metadata={"probe": "copy"},
            TaggingDirective="REPLACE",
            Tagging=tagging_header({"probe": "copy"}),
        )
        kept = object_tags(s3, bucket, copy) == {"probe": "copy"}
        refuses = _refuses_second_write(s3, bucket, once)
    finally:
        for key in (source, copy, once):
            delete_all_versions(s3, bucket, key)
    profile = StoreProfile(keeps_copy_tags=kept, refuses_second_write=refuses)
    write_entry(s3, bucket, PROFILE_KEY, profile)
    return profile


def _refuses_second_write(s3: BaseClient, bucket: str, key: str) -> bool:
    """Write a name twice with If-None-Match: *; only a store that refuses the second honours it."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"1", IfNoneMatch="*")
        s3.put_object(Bucket=bucket, Key=key, Body=b"2", IfNoneMatch="*")
    except ClientError as exc:
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412
    return False  # the header was ignored: both writes went through


def load(s3: BaseClient, bucket: str) -> StoreProfile | None:
    """What was measured; None when `storage init` has not measured this store."""
    return read_entry(s3, bucket, PROFILE_KEY, StoreProfile)


def refuses_second_write(s3: BaseClient, bucket: str) -> bool | None:
    """Whether the store was seen to refuse a second write of a name; None: not measured."""
    profile = load(s3, bucket)
    return profile.refuses_second_write if profile else None
