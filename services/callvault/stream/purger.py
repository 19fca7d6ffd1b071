"""One purge pass: find what is due, delete every version of it, prove each deletion.

The decisions are `callvault.rules.purge`'s; this module does the I/O they
imply, in an order that survives a kill at any point:

1. finish what an earlier, interrupted pass journaled;
2. per due tenant-day: list versions, read each object's due date and hash
   (cached across passes), ask the rules what to delete;
3. per batch of at most `purge_batch_keys` versions: re-read the holds (one
   placed a moment ago wins), journal the batch, DeleteObjects, emit the proofs,
   clear the journal entry.

The worker runs it on its leader only; `callvault purge` runs it from the command
line. A dry run stops after step 2 and deletes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from callvault.clock import Clock, SystemClock
from callvault.contract.lifecycle import DeletionReason, LifecycleBase
from callvault.observability.metrics import DELETIONS_REFUSED
from callvault.rules import evidence
from callvault.rules.client_policy import terms_ever
from callvault.rules.data_classes import data_classes
from callvault.rules.durations import CalendarDuration
from callvault.rules.purge import Hold, RefusalStreaks, StoredObject, batches, period_end, plan_pass
from callvault.settings import Settings
from callvault.storage import archive, exports, inventory, policies
from callvault.storage import holds as registry
from callvault.storage.client import make_s3_client
from callvault.storage.errors import error_code
from callvault.storage.layout import parse_archive_key
from callvault.stream.bus import Emit, make_producer, send_lifecycle, start_client
from callvault.stream.offloop import S3Runner
from callvault.stream.worker_part import WorkerPart

log = logging.getLogger("callvault.purger")

REASON: DeletionReason = "retention_elapsed"


@dataclass
class PassReport:
    as_of: datetime
    dry_run: bool
    deleted: list[StoredObject] = field(default_factory=list)  # or, in a dry run, would be
    held: list[tuple[StoredObject, Hold]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # key -> what the store said
    not_due: int = 0
    skipped: list[str] = field(default_factory=list)  # keys callvault cannot date or did not write
    markers_removed: int = 0
    recovered: int = 0  # objects of an interrupted pass proven in this one
    exports_deleted: int = 0  # access-request exports past their short life
    days_listed: int = 0
    scanned: bool = False  # whether this pass listed the store or worked from the last listing


@dataclass
class Scan:
    """One listing of the store: the objects of every (partly) due period at `as_of`."""

    as_of: datetime
    dry_run: bool
    found: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    next_change: datetime | None = None  # when the next not-yet-due period starts falling due
    days_listed: int = 0
    skipped: list[str] = field(default_factory=list)
    markers_removed: int = 0


class Purger(WorkerPart):
    def __init__(self, settings: Settings, s3: S3Runner, emit: Emit, clock: Clock) -> None:
        super().__init__(settings, s3, emit, clock)
        self.policy = settings.retention
        # Each tenant's client-policy history, as of the last listing; versions read once each.
        self.policies: policies.PolicyBook = {}
        self._policy_cache: policies.VersionCache = {}
        self._exports: dict[str, exports.StoredExport] = {}  # what was read of each export, by key
        self._described: dict[tuple[str, str, str], inventory.Described | None] = {}
        # What the last scan found in (partly) due periods, and when to scan again.
        self._known: dict[tuple[str, str], StoredObject] = {}
        self._next_scan_at: datetime | None = None
        self._scanned_at: datetime | None = None
        self._scan_task: asyncio.Task[Scan] | None = None
        self._deleted_during_scan: set[tuple[str, str]] = set()
        self._refusals = RefusalStreaks()  # due objects the store refuses to delete, pass after pass

    @property
    def buckets(self) -> list[tuple[str, str]]:
        """Each data class's bucket, from the registry."""
        return [(c.name, c.bucket(self.settings)) for c in data_classes()]

    async def run_pass(self, *, dry_run: bool = False, as_of: datetime | None = None) -> PassReport:
        """A pass at `as_of`; only a dry run may look at another instant than now."""
        if as_of is not None and not dry_run:
            raise ValueError("a pass deletes as of now; another instant is only for a dry run")
        report = PassReport(as_of=as_of or self.clock.now(), dry_run=dry_run)
        if dry_run:
            scan = await self._scan(report.as_of, dry_run=True)
            self._take_counts(report, scan)
            candidates = scan.found
        else:
            recovered = await self._finish_journal()
            report.recovered = len(recovered)
            self._forget(recovered)
            await self._read_policies()  # a change since the last listing: list again now
            await self._refresh_known(report)
            candidates = self._known
        records = await self.s3.run("reading legal holds", registry.load_holds, self.settings.metadata_bucket)
        holds = {ref: record.as_hold() for ref, record in records.items()}
        plan = plan_pass(candidates.values(), holds, report.as_of)
        report.not_due, report.held = plan.not_due, plan.held
        if dry_run:
            report.deleted = plan.delete
            return report
        by_bucket: dict[str, list[StoredObject]] = {}
        for obj in plan.delete:
            by_bucket.setdefault(obj.bucket, []).append(obj)
        for bucket, due in by_bucket.items():
            for batch in batches(due, self.settings.purge_batch_keys):
                await self._delete_batch(bucket, batch, report)
        self._forget(report.deleted)
        report.exports_deleted = await self._purge_exports(report.as_of)
        return report

    async def _purge_exports(self, as_of: datetime) -> int:
        """Erase access-request exports whose time is up, each with its proof."""
        bucket = self.settings.exports_bucket
        try:
            stored = await self.s3.run("listing exports", exports.stored_exports, bucket, self._exports)
        except Exception as exc:  # noqa: BLE001 - a store initialised before exports existed
            if error_code(exc) == "NoSuchBucket":
                return 0
            raise
        self._exports = {item.key: item for item in stored}
        erased = 0
        for item in stored:
            if item.expires_at > as_of:
                continue
            await self.s3.run(f"erasing the export {item.key}", exports.erase_export, bucket, item.key)
            proof = evidence.export_deleted(
                subject=item.subject,
                tenant=item.tenant,
                request_id=item.request_id,
                uri=f"s3://{bucket}/{item.key}",
                due_at=item.expires_at,
                deleted_at=self.clock.now(),
            )
            await self.emit([proof])
            self._exports.pop(item.key, None)
            erased += 1
        return erased

    def _forget(self, deleted: list[StoredObject]) -> None:
        """Gone and proven: out of what is known, and out of any scan still listing it."""
        for obj in deleted:
            self._known.pop((obj.bucket, obj.key), None)
            self._deleted_during_scan.add((obj.bucket, obj.key))

    async def _refresh_known(self, report: PassReport) -> None:
        """Take in a finished scan; start the next when it is time.

        Scans run beside the passes: on a large store (or a slow one) listing takes
        longer than an interval, and deletions must not wait for it. Only when
        nothing is known yet (the first pass, or `callvault purge`) does a pass wait.
        """
        self._collect_scan(report)
        due = self._next_scan_at is None or report.as_of >= self._next_scan_at
        if self._scan_task is None and due:
            self._deleted_during_scan = set()
            self._scan_task = asyncio.create_task(self._scan(report.as_of, dry_run=False))
            if not self._known:
                await asyncio.wait([self._scan_task])
                self._collect_scan(report)

    async def finish_scan(self) -> bool:
        """Wait for a scan running beside the passes; whether there was one.

        The worker never needs to (the next pass takes it in); the in-memory
        harness does, so that one step of its clock gives one settled answer.
        """
        task = self._scan_task
        if task is None:
            return False
        await asyncio.wait([task])
        return True

    def _collect_scan(self, report: PassReport) -> None:
        task = self._scan_task
        if task is None or not task.done():
            return
        self._scan_task = None
        try:
            scan = task.result()
        except Exception:  # noqa: BLE001 - the next pass scans again
            log.exception("a purge scan failed")
            return
        self._adopt(scan, report)

    def _adopt(self, scan: Scan, report: PassReport) -> None:
        # What a pass deleted while the scan listed it is gone: never delete or prove it twice.
        self._known = {k: v for k, v in scan.found.items() if k not in self._deleted_during_scan}
        self._scanned_at = scan.as_of
        rescan = scan.as_of + timedelta(seconds=self.settings.purge_rescan_s)
        self._next_scan_at = min(rescan, scan.next_change) if scan.next_change is not None else rescan
        self._take_counts(report, scan)

    @staticmethod
    def _take_counts(report: PassReport, scan: Scan) -> None:
        report.scanned = True
        report.days_listed = scan.days_listed
        report.skipped = scan.skipped
        report.markers_removed = scan.markers_removed

    async def _scan(self, as_of: datetime, *, dry_run: bool) -> Scan:
        """Walk the store for every object in a period that is (partly) due at `as_of`.

        Between scans a pass works from what the last one found, reading only the
        journal and the holds; a scan comes every `purge_rescan_s`, and sooner when
        the walk saw that another day starts falling due.
        """
        scan = Scan(as_of=as_of, dry_run=dry_run)
        seen: set[tuple[str, str, str]] = set()
        if dry_run:  # a pass reads them itself before it starts a listing
            await self._read_policies()
        upcoming = [v.effective_at for h in self.policies.values() for v in h if v.effective_at > as_of]
        if upcoming:  # a change that takes effect later may bring due dates to that instant: look then
            scan.next_change = min(upcoming)
        for retention_class, bucket in self.buckets:
            walk = await self.s3.run(
                f"finding due days in {bucket}",
                inventory.due_periods,
                bucket,
                retention_class,
                self.policy,
                as_of,
                self._terms_of(retention_class),
            )
            if walk.next_change is not None and (
                scan.next_change is None or walk.next_change < scan.next_change
            ):
                scan.next_change = walk.next_change
            for period in walk.periods:
                scan.days_listed += 1
                for obj in await self._objects(bucket, retention_class, period.prefix, scan, seen):
                    scan.found[(obj.bucket, obj.key)] = obj
        self._described = {k: v for k, v in self._described.items() if k in seen}
        return scan

    async def _objects(
        self,
        bucket: str,
        retention_class: str,
        prefix: str,
        scan: Scan,
        seen: set[tuple[str, str, str]],
    ) -> list[StoredObject]:
        keys = await self.s3.run(f"listing s3://{bucket}/{prefix}", inventory.list_versions, bucket, prefix)
        markers_only = [k for k in keys if k.data_version is None]
        if markers_only and not scan.dry_run:
            # Delete markers with nothing under them: the data is already gone; tidy the key.
            targets = [(k.key, v) for k in markers_only for v in k.versions]
            await self.s3.run(
                f"removing bare delete markers in {bucket}", archive.delete_versions, bucket, targets
            )
            scan.markers_removed += len(targets)
        with_data = [k for k in keys if k.data_version is not None]
        described = await asyncio.gather(*(self._describe(bucket, k, seen) for k in with_data))
        objects = []
        for entry, info in zip(with_data, described, strict=True):
            parsed = parse_archive_key(entry.key)
            if parsed is None or info is None:
                scan.skipped.append(f"s3://{bucket}/{entry.key}")
                continue
            obj = inventory.stored_object(bucket, entry, info, retention_class, parsed.tenant, parsed.call_id)
            objects.append(self._redated(obj, info, period_end(parsed.day), scan.as_of))
        return objects

    async def _read_policies(self) -> None:
        """Every tenant's client-policy history; a change since the last listing means list again."""
        book = await self.s3.run(
            "reading client policies",
            policies.load_book,
            self.settings.metadata_bucket,
            self._policy_cache,
            bounds=self.settings.policy_bounds,
        )
        if book != self.policies:
            self.policies = book
            self._next_scan_at = None

    def _terms_of(self, retention_class: str) -> Callable[[str], list[CalendarDuration]]:
        defaults = self.settings.policy_defaults
        return lambda tenant: terms_ever(retention_class, self.policies.get(tenant, ()), defaults)

    def _redated(
        self, obj: StoredObject, info: inventory.Described, day_end: datetime, as_of: datetime
    ) -> StoredObject:
        """The object as its metadata dates it, brought earlier by a policy that shortened its term."""
        history = self.policies.get(obj.tenant, [])
        dated = inventory.dated_now(
            info, obj.retention_class, day_end, history, self.settings.policy_defaults, as_of
        )
        return replace(obj, due_at=dated.due_at, policy_version=dated.policy_version)

    async def _describe(
        self, bucket: str, entry: inventory.KeyVersions, seen: set[tuple[str, str, str]]
    ) -> inventory.Described | None:
        assert entry.data_version is not None
        cache_key = (bucket, entry.key, entry.data_version)
        seen.add(cache_key)
        if cache_key not in self._described:
            self._described[cache_key] = await self.s3.run(
                f"reading s3://{bucket}/{entry.key}",
                inventory.describe,
                bucket,
                entry.key,
                entry.data_version,
            )
        return self._described[cache_key]

    async def _fresh_versions(
        self, bucket: str, batch: list[StoredObject], as_of: datetime
    ) -> list[StoredObject]:
        """The batch as the store holds it now: every version, and what the newest one says.

        An object that was already due when the store was listed cannot change any
        more (the archiver never writes past due). One that fell due since may
        have gained a version or a delete marker: its current version is checked,
        and if the store has moved on its versions are listed and the newest data
        version read again. That version may name participants the listed one did
        not (`call.started` came late): their index entries must go with it.
        """
        scanned = self._scanned_at
        moved = [obj for obj in batch if scanned is None or obj.due_at > scanned]
        current = await asyncio.gather(
            *(self.s3.run(f"checking {obj.key}", inventory.current_version, bucket, obj.key) for obj in moved)
        )
        changed = {obj.key for obj, now in zip(moved, current, strict=True) if now not in obj.versions}
        fresh = []
        for obj in batch:
            if obj.key in changed:
                renewed = await self._reread(bucket, obj, as_of)
                if renewed is None or renewed.due_at > as_of:
                    continue  # gone meanwhile, or not due after all: the next listing decides
                obj = renewed
            fresh.append(obj)
        return fresh

    async def _reread(self, bucket: str, obj: StoredObject, as_of: datetime) -> StoredObject | None:
        listed = await self.s3.run(f"listing {obj.key}", inventory.list_versions, bucket, obj.key)
        entry = next((k for k in listed if k.key == obj.key), None)
        if entry is None or not entry.versions:
            return None  # nothing of it is left to delete or prove
        if entry.data_version is None:
            return replace(obj, versions=entry.versions)  # markers only: the data went; tidy them too
        info = await self.s3.run(
            f"reading s3://{bucket}/{obj.key}", inventory.describe, bucket, obj.key, entry.data_version
        )
        if info is None:
            return replace(obj, versions=entry.versions)
        subjects = tuple(sorted({*obj.subjects, *info.subjects}))
        parsed = parse_archive_key(obj.key)
        assert parsed is not None, "only archived keys are planned"
        renewed = self._redated(obj, info, period_end(parsed.day), as_of)
        if renewed.due_at > obj.due_at:  # a due date only ever moves earlier
            renewed = replace(renewed, due_at=obj.due_at, policy_version=obj.policy_version)
        return replace(
            renewed,
            versions=entry.versions,
            sha256=info.sha256,
            size_bytes=info.size_bytes,
            subjects=subjects,
        )

    async def _delete_batch(self, bucket: str, batch: list[StoredObject], report: PassReport) -> None:
        held_now = await self.s3.run(
            "reading legal holds", registry.held_calls, self.settings.metadata_bucket
        )
        kept = [obj for obj in batch if obj.call not in held_now]
        batch = await self._fresh_versions(bucket, kept, report.as_of)
        if not batch:
            return
        done, failed = await self.deleter.delete(bucket, batch, REASON)
        report.deleted.extend(done)
        report.failed.update({f"s3://{bucket}/{key}": why for key, why in failed.items()})
        self._refusals.ended(bucket, (obj.key for obj in done))
        refused = []
        for obj in batch:
            if obj.key not in failed:
                continue
            first, passes, new = self._refusals.refused(bucket, obj.key, report.as_of)
            log.warning(
                "could not delete s3://%s/%s (%d passes since %s): %s; it stays until a later pass can",
                bucket, obj.key, passes, first.isoformat(), failed[obj.key],
            )  # fmt: skip
            if new:  # once per object and streak: an auditor sees the cause of the late deletion
                refused.append(evidence.deletion_refused(obj, failed[obj.key], first, passes))
        if refused:
            DELETIONS_REFUSED.inc(len(refused))
            await self.emit(refused)

    async def _finish_journal(self) -> list[StoredObject]:
        """Complete the batches an interrupted pass (or erasure) journaled."""
        proven = await self.deleter.finish_journal()
        if proven:
            log.info("finished interrupted deletions: %d objects proven deleted", len(proven))
        return proven


async def standalone_pass(
    settings: Settings, *, dry_run: bool = False, as_of: datetime | None = None
) -> PassReport:
    """A pass outside the worker (`callvault purge`, the demo): its own S3 pool and producer.

    Unlike the worker it gives up on a store that keeps failing: a person is waiting.
    """
    s3 = S3Runner(
        make_s3_client(settings, attempts=2),
        max_workers=settings.s3_max_concurrency,
        endpoint=settings.s3_endpoint,
        give_up_after=3,
    )
    producer = make_producer(settings) if not dry_run else None
    if producer is not None:
        await start_client(producer, settings)

    async def emit(events: Sequence[LifecycleBase]) -> None:
        assert producer is not None, "a dry run emits nothing"
        await send_lifecycle(producer, settings, events)

    try:
        return await Purger(settings, s3, emit, SystemClock()).run_pass(dry_run=dry_run, as_of=as_of)
    finally:
        s3.close()
        if producer is not None:
            await producer.stop()
