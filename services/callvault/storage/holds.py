"""Legal holds in the store: the registry the purger obeys, and S3 object-lock holds.

The registry is one small JSON object per held call,
`_callvault/legal-holds/{tenant}/{call_id}.json` in the metadata bucket (no
tenant name starts with `_`, so it never mixes with archived keys). A call is
(tenant, call_id): two clients may use the same id, and a hold on one must not
keep the other's. Entries an older version wrote under the bare id
(`_callvault/legal-holds/{call_id}.json`) are still read and obeyed, for the
tenant their record names. It lives in S3 rather than in a topic because it must outlive
any broker and be readable by every worker and by `callvault hold list` with one
listing. The object-lock legal hold, set on every version of the call's objects
where the store supports it, is the second wall: even a delete from outside
callvault then fails. Blocking (boto3): call these off the event loop.
"""

from __future__ import annotations

from datetime import datetime

from botocore.client import BaseClient
from pydantic import BaseModel

from callvault.contract.fields import CallId, Tenant
from callvault.rules.call_ref import call_ref, parse_call_ref
from callvault.rules.purge import Hold
from callvault.storage.archive import delete_all_versions
from callvault.storage.errors import error_code, is_not_found
from callvault.storage.inventory import all_days, list_versions
from callvault.storage.layout import day_prefix
from callvault.storage.registry import entry_names, read_entry, write_entry

HOLDS_PREFIX = "_callvault/legal-holds/"


class HoldRecord(BaseModel):
    call_id: CallId
    tenant: Tenant
    reason: str
    placed_by: str
    placed_at: datetime
    command_id: str

    @property
    def ref(self) -> str:
        return call_ref(self.tenant, self.call_id)

    def as_hold(self) -> Hold:
        return Hold(self.call_id, self.reason, self.placed_at, self.placed_by, self.tenant)


def _key(ref: str) -> str:
    return f"{HOLDS_PREFIX}{ref}.json"


def put_hold(s3: BaseClient, bucket: str, record: HoldRecord) -> None:
    write_entry(s3, bucket, _key(record.ref), record)


def _read(s3: BaseClient, bucket: str, name: str) -> HoldRecord | None:
    return read_entry(s3, bucket, _key(name), HoldRecord)


def get_hold(s3: BaseClient, bucket: str, tenant: str, call_id: str) -> HoldRecord | None:
    """The hold on this tenant's call: its own entry, or one an older version kept under the bare id."""
    record = _read(s3, bucket, call_ref(tenant, call_id))
    if record is None:
        older = _read(s3, bucket, call_id)
        record = older if older is not None and older.tenant == tenant else None
    return record


def remove_hold(s3: BaseClient, bucket: str, tenant: str, call_id: str) -> None:
    delete_all_versions(s3, bucket, _key(call_ref(tenant, call_id)))
    older = _read(s3, bucket, call_id)
    if older is not None and older.tenant == tenant:
        delete_all_versions(s3, bucket, _key(call_id))


def held_calls(s3: BaseClient, bucket: str) -> set[str]:
    """The held calls as `{tenant}/{call_id}`: one listing, and no reads unless an older
    version's entries (named by the bare id) are left. What the worker checks before
    archiving or deleting."""
    held: set[str] = set()
    for name in entry_names(s3, bucket, HOLDS_PREFIX):
        if parse_call_ref(name) is not None:
            held.add(name)
        elif (record := _read(s3, bucket, name)) is not None:
            held.add(record.ref)
    return held


def load_holds(s3: BaseClient, bucket: str) -> dict[str, HoldRecord]:
    """Every hold's record, by `{tenant}/{call_id}`."""
    found = {}
    for name in sorted(entry_names(s3, bucket, HOLDS_PREFIX)):
        record = _read(s3, bucket, name)
        if record is not None:
            found[record.ref] = record
    return found


def holds_of_call(s3: BaseClient, bucket: str, call_id: str) -> list[HoldRecord]:
    """The holds on every tenant's call of this id: for a release that names no tenant."""
    return [r for r in load_holds(s3, bucket).values() if r.call_id == call_id]


def find_call_versions(
    s3: BaseClient, bucket: str, call_id: str, tenant: str | None = None
) -> list[tuple[str, str]]:
    """Every (key, version) holding data of this call (of one tenant, if given).

    One listing per tenant-day in the bucket: a hold names a call, not its date,
    so each day is asked for keys that start with the call id. Holds are rare and
    this is bounded by the days the bucket keeps (a month of recordings, six of
    metadata). Without a tenant it looks in every tenant, to find whose call it is.
    """
    found: list[tuple[str, str]] = []
    for owner, day in all_days(s3, bucket, tenant):
        for entry in list_versions(s3, bucket, f"{day_prefix(owner, day)}/{call_id}."):
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
