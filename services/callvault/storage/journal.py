"""The purge journal: what a batch is about to delete, written before it deletes.

Deleting and proving cannot be one atomic step. Without a journal, a worker
killed between DeleteObjects and the proof events would leave objects gone and
unproven. With it, the next pass finds the entry, deletes whatever of it is
still there and emits the proofs (their ids are deterministic, so a proof that
did go out before the kill is repeated with the same id, never with a new one).
Entries live under `_callvault/purge-journal/` in the metadata bucket and are
removed, every version, once their proofs are out. Blocking (boto3).
"""

from __future__ import annotations

from datetime import datetime

from botocore.client import BaseClient
from pydantic import BaseModel

from callvault.rules.purge import StoredObject
from callvault.storage import registry
from callvault.storage.archive import delete_all_versions

JOURNAL_PREFIX = "_callvault/purge-journal/"


class JournalEntry(BaseModel):
    batch_id: str
    written_at: datetime
    reason: str
    objects: list[StoredObject]


def write_entry(s3: BaseClient, bucket: str, entry: JournalEntry) -> None:
    registry.write_entry(s3, bucket, f"{JOURNAL_PREFIX}{entry.batch_id}.json", entry)


def pending_entries(s3: BaseClient, bucket: str) -> list[JournalEntry]:
    entries = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=JOURNAL_PREFIX):
        for item in page.get("Contents", ()):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            entries.append(JournalEntry.model_validate_json(body))
    return sorted(entries, key=lambda e: e.written_at)


def clear_entry(s3: BaseClient, bucket: str, batch_id: str) -> None:
    delete_all_versions(s3, bucket, f"{JOURNAL_PREFIX}{batch_id}.json")
