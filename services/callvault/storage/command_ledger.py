"""The commands already taken: `_callvault/commands/{command_id}.json` in the metadata bucket.

A signed command proves who issued it, not that it is new: the same bytes sent
again would release a hold placed since, or erase a subject's later calls. So the
worker notes where on `commands` it first took each command id, before carrying
it out. The same id again at that partition and offset is Kafka redelivering it
after a crash (carried out again, idempotently); anywhere else it is a replay.

An entry names no person: the id, the key's name, where and when. Blocking
(boto3): call these off the event loop.
"""

from __future__ import annotations

from datetime import datetime

from botocore.client import BaseClient
from pydantic import BaseModel

from callvault.storage.registry import read_entry, write_entry

LEDGER_PREFIX = "_callvault/commands/"


class LedgerEntry(BaseModel):
    command_id: str
    partition: int
    offset: int
    signed_by: str
    taken_at: datetime

    @property
    def position(self) -> tuple[int, int]:
        return self.partition, self.offset


def _key(command_id: str) -> str:
    return f"{LEDGER_PREFIX}{command_id}.json"


def first_taken(s3: BaseClient, bucket: str, command_id: str) -> LedgerEntry | None:
    return read_entry(s3, bucket, _key(command_id), LedgerEntry)


def note_taken(s3: BaseClient, bucket: str, entry: LedgerEntry) -> None:
    write_entry(s3, bucket, _key(entry.command_id), entry)
