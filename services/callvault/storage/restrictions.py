"""Restricted subjects (GDPR article 18): the registry the API obeys before showing a call.

One small JSON object per restricted subject, under
`_callvault/restricted-subjects/{tenant}/{pseudonym}.json` in the metadata bucket,
beside the legal holds and for the same reasons: it outlives any broker, every
API replica reads it with one listing per tenant. A subject is named by its
pseudonym only, and since metadata names participants by the same pseudonym,
a call is restricted when any of its participants is; calls recorded after the
restriction are covered without touching them. Blocking (boto3): call off the loop.
"""

from __future__ import annotations

from datetime import datetime

from botocore.client import BaseClient
from pydantic import BaseModel

from callvault.contract.fields import Tenant
from callvault.storage.archive import delete_all_versions
from callvault.storage.registry import entry_names

RESTRICTIONS_PREFIX = "_callvault/restricted-subjects/"


class RestrictionRecord(BaseModel):
    subject: str  # the HMAC pseudonym, never the number
    tenant: Tenant
    reason: str
    requested_by: str
    restricted_at: datetime


def _key(tenant: str, subject: str) -> str:
    return f"{RESTRICTIONS_PREFIX}{tenant}/{subject}.json"


def put_restriction(s3: BaseClient, bucket: str, record: RestrictionRecord) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=_key(record.tenant, record.subject),
        Body=record.model_dump_json().encode(),
        ContentType="application/json",
    )


def remove_restriction(s3: BaseClient, bucket: str, tenant: str, subject: str) -> None:
    delete_all_versions(s3, bucket, _key(tenant, subject))


def restricted_subjects(s3: BaseClient, bucket: str, tenant: str) -> frozenset[str]:
    """The pseudonyms restricted in one tenant: one listing, no reads."""
    return frozenset(entry_names(s3, bucket, f"{RESTRICTIONS_PREFIX}{tenant}/"))
