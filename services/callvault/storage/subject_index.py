"""The subject index: from a participant's pseudonym to the calls they took part in.

Metadata is laid out by tenant and day, so "every call of this person" would
otherwise mean reading six months of documents. The index answers it with one
listing: `_callvault/subject-index/{tenant}/{pseudonym}/{call_id}.json` in the
metadata bucket, one small entry per participant and call, naming the call's
archived keys.

An entry must not outlive the data it points to. It is written just before the
call's metadata and carries the metadata's tags (the lifecycle backstop covers
it); the metadata document names its participants in its user metadata
(`SUBJECTS_META`), so whoever deletes the document (the purger, an erasure)
deletes the entries of that call with it. Blocking (boto3): call off the loop.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.client import BaseClient
from pydantic import BaseModel, model_validator

from callvault.contract.fields import CallId, Tenant
from callvault.storage.archive import delete_all_versions
from callvault.storage.layout import tagging_header

INDEX_PREFIX = "_callvault/subject-index/"
SUBJECTS_META = "callvault-subjects"  # on a metadata document: its participants' pseudonyms, space-separated


class IndexEntry(BaseModel):
    call_id: CallId
    tenant: Tenant
    subjects: list[str]  # every participant of the call, so erasing one call removes all its entries
    # The call's archived objects by data-class name (`rules.data_classes`): what erasure and exports take.
    objects: dict[str, str]
    call_started_at: datetime
    expires_at: datetime  # the metadata's

    @model_validator(mode="before")
    @classmethod
    def _one_field_per_class(cls, data: Any) -> Any:
        """Entries written before the registry named the keys had a field per class."""
        if isinstance(data, dict) and "objects" not in data:
            data = dict(data)
            named = {"metadata": data.pop("metadata_key", None), "recording": data.pop("recording_key", None)}
            data["objects"] = {name: key for name, key in named.items() if key}
        return data


def entry_key(tenant: str, subject: str, call_id: str) -> str:
    return f"{INDEX_PREFIX}{tenant}/{subject}/{call_id}.json"


def put_entries(s3: BaseClient, bucket: str, entry: IndexEntry, tags: dict[str, str]) -> None:
    body = entry.model_dump_json().encode()
    for subject in sorted(set(entry.subjects)):
        s3.put_object(
            Bucket=bucket,
            Key=entry_key(entry.tenant, subject, entry.call_id),
            Body=body,
            ContentType="application/json",
            Tagging=tagging_header(tags),
        )


def calls_of(s3: BaseClient, bucket: str, tenant: str, subject: str) -> list[IndexEntry]:
    """Every indexed call of the subject in the tenant, oldest first."""
    prefix = f"{INDEX_PREFIX}{tenant}/{subject}/"
    entries = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            entries.append(IndexEntry.model_validate_json(body))
    return sorted(entries, key=lambda e: (e.call_started_at, e.call_id))


def remove_entries(s3: BaseClient, bucket: str, tenant: str, subjects: list[str], call_id: str) -> int:
    """Delete the call's entries, every version: what is left of the index once its data is gone."""
    return sum(delete_all_versions(s3, bucket, entry_key(tenant, s, call_id)) for s in set(subjects))


def subjects_of(user_metadata: dict[str, str]) -> tuple[str, ...]:
    """The pseudonyms a metadata document's user metadata names (none on older documents)."""
    return tuple(sorted(user_metadata.get(SUBJECTS_META, "").split()))
