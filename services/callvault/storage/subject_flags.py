"""Flags on subjects that callvault obeys: restricted (GDPR art. 18) and objecting (art. 21).

One small JSON object per flagged subject, under
`_callvault/{restricted,objecting}-subjects/{tenant}/{pseudonym}.json` in the
metadata bucket, beside the legal holds and for the same reasons: it outlives
any broker, and every API replica or worker reads it with one listing. A
subject is named by its pseudonym only; metadata names participants by the
same pseudonym, so a call is restricted (or its recording refused) when any of
its participants is flagged, and calls made after the flag are covered without
touching them. Blocking (boto3): call off the loop.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from botocore.client import BaseClient
from pydantic import BaseModel

from callvault.contract.fields import Tenant
from callvault.storage.archive import delete_all_versions
from callvault.storage.registry import entry_names, write_entry


class SubjectFlag(StrEnum):
    RESTRICTED = "restricted"  # QA may not open the subject's calls
    OBJECTING = "objecting"  # the subject's recordings are refused


def _prefix(flag: SubjectFlag) -> str:
    return f"_callvault/{flag.value}-subjects/"


class FlagRecord(BaseModel):
    subject: str  # the HMAC pseudonym, never the number
    tenant: Tenant
    reason: str
    requested_by: str
    flagged_at: datetime
    request_id: str | None = None


def _key(flag: SubjectFlag, tenant: str, subject: str) -> str:
    return f"{_prefix(flag)}{tenant}/{subject}.json"


def put_flag(s3: BaseClient, bucket: str, flag: SubjectFlag, record: FlagRecord) -> None:
    write_entry(s3, bucket, _key(flag, record.tenant, record.subject), record)


def remove_flag(s3: BaseClient, bucket: str, flag: SubjectFlag, tenant: str, subject: str) -> None:
    delete_all_versions(s3, bucket, _key(flag, tenant, subject))


def flagged_subjects(s3: BaseClient, bucket: str, flag: SubjectFlag, tenant: str) -> frozenset[str]:
    """The pseudonyms flagged in one tenant: one listing, no reads."""
    return frozenset(entry_names(s3, bucket, f"{_prefix(flag)}{tenant}/"))


def flagged_everywhere(s3: BaseClient, bucket: str, flag: SubjectFlag) -> frozenset[str]:
    """`{tenant}/{pseudonym}` of every flagged subject: one listing for the worker's cache."""
    return frozenset(entry_names(s3, bucket, _prefix(flag)))
