"""Legal holds in the store: the registry the purger obeys, and S3 object-lock holds.

The registry is one small JSON object per held call, under `_callvault/legal-holds/`
in the metadata bucket (no tenant name starts with `_`, so it never mixes with
archived keys). It lives in S3 rather than in a topic because it must outlive
any broker and be readable by every worker and by `callvault hold list` with one
listing. The object-lock legal hold, set on every version of the call's objects
where the store supports it, is the second wall: even a delete from outside
callvault then fails. Blocking (boto3): call these off the event loop.
"""

from __future__ import annotations

import json
from datetime import datetime

from botocore.client import BaseClient
from pydantic import BaseModel

from callvault.contract.fields import CallId, Tenant
from callvault.rules.purge import Hold
from callvault.storage.archive import delete_all_versions
from callvault.storage.errors import error_code, is_not_found
from callvault.storage.inventory import all_days, list_versions
from callvault.storage.layout import day_prefix
from callvault.storage.registry import entry_names

HOLDS_PREFIX = "_callvault/legal-holds/"


class HoldRecord(BaseModel):
    call_id: CallId
    tenant: Tenant
    reason: str
    placed_by: str
    placed_at: datetime
    command_id: str

    def as_hold(self) -> Hold:
        return Hold(self.call_id, self.reason, self.placed_at, self.placed_by)


def _key(call_id: str) -> str:
    return f"{HOLDS_PREFIX}{call_id}.json"


def put_hold(s3: BaseClient, bucket: str, record: HoldRecord) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=_key(record.call_id),
        Body=record.model_dump_json().encode(),
        ContentType="application/json",
    )


def get_hold(s3: BaseClient, bucket: str, call_id: str) -> HoldRecord | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=_key(call_id))["Body"].read()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    return HoldRecord.model_validate(json.loads(body))


def remove_hold(s3: BaseClient, bucket: str, call_id: str) -> None:
    delete_all_versions(s3, bucket, _key(call_id))


def held_call_ids(s3: BaseClient, bucket: str) -> set[str]:
    """One listing, no reads: what the worker checks before archiving or deleting."""
    return entry_names(s3, bucket, HOLDS_PREFIX)


def load_holds(s3: BaseClient, bucket: str) -> dict[str, HoldRecord]:
    found = {}
    for call_id in sorted(held_call_ids(s3, bucket)):
        record = get_hold(s3, bucket, call_id)
        if record is not None:
            found[call_id] = record
    return found


def find_call_versions(s3: BaseClient, bucket: str, call_id: str) -> list[tuple[str, str]]:
    """Every (key, version) holding data of this call: one listing per tenant-day in the bucket.

    A hold names only a call; its date and tenant are found by asking each day
    for keys that start with the call id. Holds are rare and this is bounded by
    the days the bucket keeps (a month of recordings, six of metadata).
    """
    found: list[tuple[str, str]] = []
    for tenant, day in all_days(s3, bucket):
        for entry in list_versions(s3, bucket, f"{day_prefix(tenant, day)}/{call_id}."):
            if entry.data_version is not None:
                found.extend((entry.key, v) for v in entry.versions)
    return found


def set_object_lock_hold(s3: BaseClient, bucket: str, targets: list[tuple[str, str]], on: bool) -> str:
    """Turn the S3 legal hold on or off for these versions; says what the store allowed."""
    status = "ON" if on else "OFF"
    done = 0
    for key, version in targets:
        kwargs = {} if version == "null" else {"VersionId": version}
        try:
            s3.put_object_legal_hold(Bucket=bucket, Key=key, LegalHold={"Status": status}, **kwargs)
            done += 1
        except Exception as exc:
            code = error_code(exc)
            if code in {"InvalidRequest", "NotImplemented", "ObjectLockConfigurationNotFoundError"}:
                return "unsupported"
            if code in {"MethodNotAllowed", "NoSuchVersion"} or is_not_found(exc):
                continue  # a delete marker or a version removed meanwhile: nothing to hold
            raise
    return f"{status.lower()} on {done} versions" if targets else "no objects yet"
