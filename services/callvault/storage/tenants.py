"""The tenants whose contract ended: `_callvault/tenants/{tenant}.json` in the metadata bucket.

A tenant being offboarded (or offboarded) gets no new data: the worker
dead-letters its new events until `callvault tenant enable` takes it on again.
The record says how far its offboarding got, so a run killed half-way is
finished by the next. Blocking (boto3): call these off the event loop.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from botocore.client import BaseClient
from pydantic import BaseModel

from callvault.contract.fields import Tenant
from callvault.storage.registry import entry_names, read_entry, write_entry

TENANTS_PREFIX = "_callvault/tenants/"

Status = Literal["offboarding", "offboarded", "enabled"]


class TenantRecord(BaseModel):
    tenant: Tenant
    status: Status
    since: datetime
    by: str
    reason: str
    return_to: str | None = None
    erase: bool = False
    returned: bool = False  # the return finished (manifest written, event sent)


def _key(tenant: str) -> str:
    return f"{TENANTS_PREFIX}{tenant}.json"


def put_record(s3: BaseClient, bucket: str, record: TenantRecord) -> None:
    write_entry(s3, bucket, _key(record.tenant), record)


def get_record(s3: BaseClient, bucket: str, tenant: str) -> TenantRecord | None:
    return read_entry(s3, bucket, _key(tenant), TenantRecord)


def offboarded_sentence(tenant: str) -> str:
    """What a dead letter says of an event of a tenant whose contract ended."""
    return (
        f"tenant {tenant!r} is offboarded (its contract ended); its events are not taken "
        "until `callvault tenant enable` takes it on again"
    )


def closed_tenants(s3: BaseClient, bucket: str) -> set[str]:
    """The tenants that take no new data (offboarding or offboarded): one listing, a read each."""
    closed = set()
    for name in entry_names(s3, bucket, TENANTS_PREFIX):
        record = get_record(s3, bucket, name)
        if record is not None and record.status != "enabled":
            closed.add(name)
    return closed
