"""Deleting archived objects so that a kill at any point leaves them deleted *and* proven.

The purger (retention) and subject requests (erasure, objection) delete the
same way: journal the batch, delete every version, drop the subject-index
entries of deleted metadata, emit the proofs, clear the journal. A batch
interrupted anywhere is finished by the next purge pass from its journal entry,
with the reason it was journaled under.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta

from callvault.clock import Clock
from callvault.contract.lifecycle import DeletionReason
from callvault.rules import evidence
from callvault.rules.data_classes import SUBJECT_INDEX, data_class
from callvault.rules.purge import StoredObject
from callvault.storage import archive, inventory
from callvault.storage import journal as purge_journal
from callvault.storage.subject_index import remove_entries
from callvault.stream.bus import Emit
from callvault.stream.offloop import S3Runner

# Batches this process is deleting right now: the purger must not finish them as if
# they had been interrupted. Another process's batches are told apart by age instead.
_UNDER_WAY: set[str] = set()


class Deleter:
    def __init__(
        self, s3: S3Runner, journal_bucket: str, emit: Emit, clock: Clock, in_flight_s: float = 30.0
    ) -> None:
        self.s3 = s3
        # A journal entry younger than this may be another worker's deletion still under way.
        self.in_flight = timedelta(seconds=in_flight_s)
        self.journal_bucket = journal_bucket
        self.emit = emit
        self.clock = clock

    async def delete(
        self, bucket: str, batch: list[StoredObject], reason: DeletionReason
    ) -> tuple[list[StoredObject], dict[str, str]]:
        """Delete and prove one batch of one bucket; returns what went and what the store refused."""
        batch = list(await asyncio.gather(*(self._with_dependents(obj) for obj in batch)))
        entry = purge_journal.JournalEntry(
            batch_id=str(uuid.uuid4()), written_at=self.clock.now(), reason=reason, objects=batch
        )
        _UNDER_WAY.add(entry.batch_id)
        try:
            await self.s3.run(
                "writing the purge journal", purge_journal.write_entry, self.journal_bucket, entry
            )
            targets = [(obj.key, version) for obj in batch for version in obj.versions]
            failed = await self.s3.run(
                f"deleting {len(batch)} objects in {bucket}", archive.delete_versions, bucket, targets
            )
            done = [obj for obj in batch if obj.key not in failed]
            await self._prove(done, reason, entry.batch_id)
        finally:
            _UNDER_WAY.discard(entry.batch_id)
        return done, failed

    async def _with_dependents(self, obj: StoredObject) -> StoredObject:
        """The object with every dependent any of its versions names, read before they are deleted.

        Journaled with the batch, so a kill after the delete still finds them.
        """
        if SUBJECT_INDEX not in data_class(obj.retention_class).dependents:
            return obj
        named = await self.s3.run(
            f"reading who s3://{obj.bucket}/{obj.key} names",
            inventory.subjects_of_versions,
            obj.bucket,
            obj.key,
            obj.versions,
        )
        return replace(obj, subjects=tuple(sorted({*obj.subjects, *named})))

    async def _prove(self, done: list[StoredObject], reason: DeletionReason, batch_id: str) -> None:
        for obj in done:
            if obj.subjects and SUBJECT_INDEX in data_class(obj.retention_class).dependents:
                await self.s3.run(
                    f"dropping the subject index of {obj.call_id}",
                    remove_entries,
                    obj.bucket,
                    obj.tenant,
                    list(obj.subjects),
                    obj.call_id,
                )
        deleted_at = self.clock.now()
        await self.emit([evidence.object_deleted(obj, deleted_at, reason) for obj in done])
        await self.s3.run(
            "clearing the purge journal", purge_journal.clear_entry, self.journal_bucket, batch_id
        )

    async def finish_journal(self, reason: DeletionReason | None = None) -> list[StoredObject]:
        """Complete the batches an interrupted deletion journaled: delete what is left, then prove it.

        With `reason`, only that reason's batches, however young: an offboarding run that
        starts again finishes its own killed batches at once (no other process makes them).
        """
        entries = await self.s3.run(
            "reading the purge journal", purge_journal.pending_entries, self.journal_bucket
        )
        proven: list[StoredObject] = []
        settled_before = self.clock.now() - self.in_flight
        for entry in entries:
            if reason is not None:
                if entry.reason != reason or entry.batch_id in _UNDER_WAY:
                    continue
            elif entry.batch_id in _UNDER_WAY or entry.written_at > settled_before:
                continue
            by_bucket: dict[str, list[tuple[str, str]]] = {}
            for obj in entry.objects:
                by_bucket.setdefault(obj.bucket, []).extend((obj.key, v) for v in obj.versions)
            failed: dict[str, str] = {}
            for bucket, targets in by_bucket.items():
                failed.update(
                    await self.s3.run("finishing a journaled batch", archive.delete_versions, bucket, targets)
                )
            # Deleted at some instant up to now: claiming now can only overstate lateness.
            done = [obj for obj in entry.objects if obj.key not in failed]
            await self._prove(done, _reason(entry.reason), entry.batch_id)
            proven.extend(done)
        return proven


def _reason(text: str) -> DeletionReason:
    return text if text in ("erasure_request", "objection", "contract_end") else "retention_elapsed"  # type: ignore[return-value]
