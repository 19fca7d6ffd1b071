"""A contract's end: return a client's data to it, erase it, prove both. Resumable.

GDPR art. 28(3)(g): at the end of the contract the processor returns or
deletes all of the client's data. `callvault tenant offboard` runs this:

1. the tenant is marked `offboarding` (`storage.tenants`): from then on the
   worker dead-letters its new events, until `callvault tenant enable`;
2. an earlier run's deletion batches that were cut short are finished and
   proven (the purge journal, as every deletion here uses);
3. return (`--return-to s3://bucket/prefix`, the client's store): every
   archived recording and metadata document, checked against its SHA-256 as
   it streams, then `manifest.json` with each file's hash, then
   `tenant.returned` naming the destination, counts and the manifest's digest;
4. erase (`--erase`): every version of every object of the tenant, through
   the journaled deleter (each deletion proven with reason `contract_end`),
   except calls under a legal hold, which are reported and kept; then the
   subject index, the subject registries, exports and uploads left in
   staging; then `tenant.erased` with counts and the held calls;
5. the tenant is marked `offboarded`.

Killed at any point, the next run with the same options finishes it: copies
already made are skipped, journaled batches are finished, what is gone is not
listed again, and every event id is derived from what it proves, so nothing
is proven twice under two ids. The audit log is not erased: it is the proof
of what was done with the data, under its own retention.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient

from callvault.clock import Clock
from callvault.contract.base import deterministic_id
from callvault.contract.fields import format_rfc3339
from callvault.contract.lifecycle import TenantEnabled, TenantErased, TenantKeyDestroyed, TenantReturned
from callvault.rules.client_policy import kms_key_at
from callvault.rules.data_classes import DataClass, data_classes
from callvault.rules.purge import StoredObject, batches
from callvault.settings import Settings
from callvault.storage import archive, inventory, offboarding, policies, rewrapping, tenant_keys, tenants
from callvault.storage.errors import error_code
from callvault.storage.holds import held_calls
from callvault.storage.layout import parse_archive_key
from callvault.storage.location import destination_problem
from callvault.storage.subject_flags import SubjectFlag
from callvault.storage.subject_index import INDEX_PREFIX, parse_key
from callvault.storage.subject_requests import REQUESTS_PREFIX
from callvault.stream.offloop import S3Runner
from callvault.stream.worker_part import REGISTRIES_REFRESH_S, WorkerPart

log = logging.getLogger("callvault.offboarding")

Emit = Callable[[Sequence[Any]], Awaitable[None]]
Progress = Callable[[str, int, int], None]  # step, done, total
COPY_THREADS = 8
DESCRIBE_AT_ONCE = 64  # HEADs in flight while listing what to return or erase


class OffboardingRefused(ValueError):
    """The offboarding cannot be run as asked; the message says why."""


@dataclass
class Outcome:
    returned: dict[str, int] = field(default_factory=dict)
    manifest_sha256: str | None = None
    erased: Counter[str] = field(default_factory=Counter)
    held_calls: list[str] = field(default_factory=list)
    resumed: bool = False
    key: str | None = None  # what became of the client's KMS key (issue 29)
    key_note: str | None = None  # the client's own key (bring your own key): theirs to revoke


def parse_destination(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix` as (bucket, prefix without slashes at its ends)."""
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise OffboardingRefused(f"--return-to {uri!r} is not s3://bucket/prefix")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


class Offboarding(WorkerPart):
    def __init__(
        self,
        settings: Settings,
        s3: S3Runner,
        emit: Emit,
        clock: Clock,
        dest: BaseClient | None = None,
        progress: Progress = lambda step, done, total: None,
        staging: BaseClient | None = None,
        settle_s: float = 2 * REGISTRIES_REFRESH_S,
        kms: BaseClient | None = None,
    ) -> None:
        super().__init__(settings, s3, emit, clock)
        self.dest = dest
        self.progress = progress
        # The store producers upload to, when it is not the archive's: its uploads are swept there.
        self.staging = staging
        # How long until every running worker has read that the tenant is closed (each rereads the
        # registries every REGISTRIES_REFRESH_S): what one archived before then is erased by a second
        # listing after it.
        self.settle_s = settle_s
        # The KMS holding the client's key (issue 29): destroyed once its data is erased. By default the
        # keyring's, where objects are sealed; None: no KMS, nothing to shred.
        self.kms = kms if kms is not None else (self.keyring.kms if settings.encryption == "on" else None)

    async def run(self, tenant: str, *, reason: str, by: str, return_to: str | None, erase: bool) -> Outcome:
        if not (return_to or erase):
            raise OffboardingRefused("say what to do with the data: --return-to s3://..., --erase, or both")
        if not reason.strip():
            raise OffboardingRefused("an offboarding needs a reason (--reason): the auditor reads it")
        destination = parse_destination(return_to) if return_to else None
        if destination is not None and self.dest is None:
            raise OffboardingRefused("no client for the return destination")
        if destination is not None and self.dest is not None:
            # Callvault's own and the producers' bucket names are refused on any store (an endpoint's
            # spelling proves nothing), and the client's bucket must be where the residency rule allows.
            problem = await self.s3.run(
                "checking the return destination", destination_problem, self.settings, destination[0],
                self.dest.meta.endpoint_url, on=self.dest, attempts=3,
            )  # fmt: skip
            if problem is not None:
                raise OffboardingRefused(f"--return-to: {problem}")
        record, outcome = await self._begin(tenant, reason, by, return_to, erase)
        await self.deleter.finish_journal(reason="contract_end")
        if destination is not None and not record.returned:
            await self._return(tenant, record, destination, return_to or "", outcome)
            record = record.model_copy(update={"returned": True})
            await self.s3.run("recording the return", tenants.put_record, self.meta, record)
        if record.erase:  # asked now, or by the run this one finishes
            await self._erase(tenant, record, outcome)
        done = record.model_copy(update={"status": "offboarded"})
        await self.s3.run("recording the offboarding", tenants.put_record, self.meta, done)
        return outcome

    async def _begin(
        self, tenant: str, reason: str, by: str, return_to: str | None, erase: bool
    ) -> tuple[tenants.TenantRecord, Outcome]:
        record = await self.s3.run("reading the tenant", tenants.get_record, self.meta, tenant)
        outcome = Outcome()
        if record is not None and record.status == "offboarding":
            outcome.resumed = True
            log.info("tenant %s: finishing the offboarding begun at %s", tenant, record.since)
            update = {"erase": record.erase or erase, "return_to": record.return_to or return_to}
            record = record.model_copy(update=update)
        else:
            record = tenants.TenantRecord(
                tenant=tenant, status="offboarding", since=self.clock.now(), by=by, reason=reason,
                return_to=return_to, erase=erase,
            )  # fmt: skip
        # First of all: no new data of the tenant from now on.
        await self.s3.run("closing the tenant", tenants.put_record, self.meta, record)
        return record, outcome

    # -- return --------------------------------------------------------------------------

    async def _return(
        self,
        tenant: str,
        record: tenants.TenantRecord,
        destination: tuple[str, str],
        uri: str,
        outcome: Outcome,
    ) -> None:
        bucket, prefix = destination
        files: list[dict[str, Any]] = []
        todo: list[tuple[DataClass, str, str, str, str]] = []  # class, key, version, sha, path
        for data_class in data_classes():
            source = data_class.bucket(self.settings)
            listed = await self.s3.run(f"listing {tenant} in {source}", _keys, source, tenant)
            archived = [
                e for e in listed if e.data_version is not None and parse_archive_key(e.key) is not None
            ]
            for entry, info in zip(archived, await self._describe(source, archived), strict=True):
                if info is None:
                    continue  # not callvault's writing: no hash to vouch for it
                path = f"{data_class.name}/{entry.key}"
                todo.append((data_class, entry.key, entry.data_version, info.sha256, path))
                files.append({"path": path, "class": data_class.name, "sha256": info.sha256,
                              "size_bytes": info.size_bytes})  # fmt: skip
        done = 0
        semaphore = asyncio.Semaphore(COPY_THREADS)

        async def one(item: tuple[DataClass, str, str, str, str]) -> None:
            nonlocal done
            data_class, key, version, sha, path = item
            async with semaphore:
                await asyncio.to_thread(
                    offboarding.copy_out, self.s3.s3, data_class.bucket(self.settings), key, version, sha,
                    self.dest, bucket, f"{prefix}/{path}" if prefix else path, self.keyring,
                )  # fmt: skip
            done += 1
            self.progress("returning", done, len(todo))

        self.progress("returning", 0, len(todo))
        await asyncio.gather(*(one(item) for item in todo))
        body = offboarding.manifest_bytes(files, tenant, format_rfc3339(record.since))
        manifest_key = f"{prefix}/{offboarding.MANIFEST}" if prefix else offboarding.MANIFEST
        digest = await asyncio.to_thread(offboarding.put_manifest, self.dest, bucket, manifest_key, body)
        outcome.returned = dict(Counter(f["class"] for f in files))
        outcome.manifest_sha256 = digest
        await self.emit(
            [
                TenantReturned(
                    **self._about(tenant, record, "tenant.returned", digest),
                    destination=uri,
                    counts=outcome.returned,
                    manifest_sha256=digest,
                )  # fmt: skip
            ]
        )

    # -- erase ---------------------------------------------------------------------------

    async def _erase(self, tenant: str, record: tenants.TenantRecord, outcome: Outcome) -> None:
        held = {
            ref.split("/", 1)[1]
            for ref in await self.s3.run("reading legal holds", held_calls, self.meta)
            if ref.startswith(f"{tenant}/")
        }
        outcome.held_calls = sorted(held)
        for data_class in data_classes():
            await self._erase_class(tenant, data_class, held, outcome)
        # A worker archives the tenant's calls until its next read of the registries: once every one
        # has read it, a second listing erases what they archived meanwhile (issue 33).
        waiting = f"waiting {self.settle_s:.0f} s for every worker to read that {tenant} is closed"
        self.progress(waiting, 0, 1)
        await asyncio.sleep(self.settle_s)
        self.progress(waiting, 1, 1)
        for data_class in data_classes():
            await self._erase_class(tenant, data_class, held, outcome)
        await self._erase_the_rest(tenant, held, outcome)
        await self.emit(
            [
                TenantErased(
                    **self._about(tenant, record, "tenant.erased"),
                    counts=dict(outcome.erased),
                    held_calls=outcome.held_calls,
                )  # fmt: skip
            ]
        )
        await self._shred(tenant, record, outcome)

    def _about(self, tenant: str, record: tenants.TenantRecord, type_: str, *more: str) -> dict[str, Any]:
        """What every event of one offboarding shares; its id from the offboarding, the type and `more`."""
        return {
            "event_id": deterministic_id(type_, tenant, record.since.isoformat(), *more),
            "tenant": tenant,
            "occurred_at": self.clock.now(),
            "requested_by": record.by,
            "reason": record.reason,
        }

    async def _shred(self, tenant: str, record: tenants.TenantRecord, outcome: Outcome) -> None:
        """Crypto-shredding: the client's KMS key scheduled for destruction, the shortest window the
        setting allows, proven by `tenant.key_destroyed`. A held call's objects are first wrapped under
        the hold key (`storage.rewrapping`), so the hold outlives the shred; every other copy sealed
        under the client's key (a replica, a backup, an old version restored) opens no more."""
        if self.kms is None:
            return
        book = await self.s3.run("reading client policies", policies.load_book, self.meta)
        own = kms_key_at(book.get(tenant, []), self.clock.now())
        if own is not None:  # the client's to revoke, not callvault's to destroy: say so
            outcome.key_note = (
                f"the client's own key {own} is the client's: revoking callvault's use of it closes what was "
                "sealed under it"
            )
        found = await asyncio.to_thread(_key_of, self.kms, tenant)  # KMS, not S3: its client retries
        if found is None:
            outcome.key = "none (the client had no key)"
            return
        arn, state = found
        if state == "PendingDeletion":
            outcome.key = f"{arn} already scheduled for destruction"
            return
        kept = await self._rewrap_held(tenant, set(outcome.held_calls)) if outcome.held_calls else 0
        days = self.settings.kms_deletion_days
        when = await asyncio.to_thread(tenant_keys.schedule_destruction, self.kms, arn, days)
        await self.emit(
            [
                TenantKeyDestroyed(
                    **self._about(tenant, record, "tenant.key_destroyed"),
                    key_id=arn,
                    deletion_date=when,
                )  # fmt: skip
            ]
        )
        outcome.key = f"{arn} destroyed by the KMS on {when:%Y-%m-%d}"
        if kept:
            outcome.key += (
                f" ({kept} object(s) of {len(outcome.held_calls)} held call(s) kept under the hold key)"
            )

    async def _rewrap_held(self, tenant: str, held: set[str]) -> int:
        """Every object of the tenant's held calls wrapped under the hold key; how many."""
        hold_key = await asyncio.to_thread(tenant_keys.ensure_hold_key, self.kms)
        targets: list[tuple[str, str]] = []  # bucket, key
        for data_class in data_classes():
            bucket = data_class.bucket(self.settings)
            listed = await self.s3.run(f"listing {tenant} in {bucket}", _keys, bucket, tenant)
            targets += [
                (bucket, entry.key)
                for entry in listed
                if entry.data_version is not None
                and (parsed := parse_archive_key(entry.key)) is not None
                and parsed.call_id in held
            ]
        step, now, moved = "keeping held calls under the hold key", self.clock.now(), 0
        for done, (bucket, key) in enumerate(targets):
            self.progress(step, done, len(targets))
            new = await self.s3.run(
                f"wrapping {key} under the hold key", rewrapping.rewrap_object, self.keyring, bucket, key,
                hold_key, now, held=True,
            )  # fmt: skip
            moved += new is not None
        self.progress(step, len(targets), len(targets))
        return moved

    async def _describe(
        self, bucket: str, entries: list[inventory.KeyVersions]
    ) -> list[inventory.Described | None]:
        """What each key's newest data version says (its hash, its date), read side by side."""

        async def one(entry: inventory.KeyVersions) -> inventory.Described | None:
            if entry.data_version is None or parse_archive_key(entry.key) is None:
                return None
            return await self.s3.run(
                f"reading {entry.key}", inventory.describe, bucket, entry.key, entry.data_version
            )

        found: list[inventory.Described | None] = []
        for start in range(0, len(entries), DESCRIBE_AT_ONCE):
            found.extend(await asyncio.gather(*(one(e) for e in entries[start : start + DESCRIBE_AT_ONCE])))
        return found

    async def _erase_class(
        self, tenant: str, data_class: DataClass, held: set[str], outcome: Outcome
    ) -> None:
        bucket = data_class.bucket(self.settings)
        due: list[StoredObject] = []
        leftovers: list[tuple[str, str]] = []  # markers, and keys callvault did not write: no proof to give
        listed = await self.s3.run(f"listing {tenant} in {bucket}", _keys, bucket, tenant)
        kept = [e for e in listed if (p := parse_archive_key(e.key)) is None or p.call_id not in held]
        for entry, info in zip(kept, await self._describe(bucket, kept), strict=True):
            parsed = parse_archive_key(entry.key)
            if info is None or parsed is None:
                leftovers.extend((entry.key, v) for v in entry.versions)
                continue
            obj = inventory.stored_object(bucket, entry, info, data_class.name, tenant, parsed.call_id)
            due.append(obj)
        done = 0
        self.progress(f"erasing {data_class.name}s", 0, len(due))
        for batch in batches(due, self.settings.purge_batch_keys):
            gone, failed = await self.deleter.delete(bucket, batch, "contract_end")
            if failed:
                raise archive.refused_erasure(bucket, failed)
            done += len(gone)
            outcome.erased[data_class.name] += len(gone)
            self.progress(f"erasing {data_class.name}s", done, len(due))
        if leftovers:
            failed = await self.s3.run("erasing the rest", archive.delete_versions, bucket, leftovers)
            if failed:
                raise archive.refused_erasure(bucket, failed)
            outcome.erased["other versions"] += len(leftovers)

    async def _erase_the_rest(self, tenant: str, held: set[str], outcome: Outcome) -> None:
        """The subject index (but held calls' entries), the subject registries, exports, uploads."""

        def of_held_call(key: str) -> bool:
            entry = parse_key(key)
            return entry is not None and entry[0] in held

        sweeps: list[tuple[str, str, str, Callable[[str], bool]]] = [
            ("subject index", self.meta, f"{INDEX_PREFIX}{tenant}/", of_held_call),
            ("subject requests", self.meta, f"{REQUESTS_PREFIX}{tenant}/", lambda key: False),
            *(
                ("subject flags", self.meta, f"_callvault/{flag.value}-subjects/{tenant}/", lambda key: False)
                for flag in SubjectFlag
            ),
            ("exports", self.settings.exports_bucket, f"{tenant}/", lambda key: False),
        ]
        # Every bucket producers upload to (the staging bucket and CALLVAULT_SOURCE_BUCKETS), in the
        # store they live in: a tenant's uploads sit under its name there.
        uploads = [
            ("uploads", b, f"{tenant}/", lambda key: False) for b in sorted(self.settings.upload_buckets)
        ]
        for what, bucket, prefix, keep in [*sweeps, *uploads]:
            on = self.staging if what == "uploads" else None
            try:
                count = await self.s3.run(f"erasing {what}", archive.erase_under, bucket, prefix, keep, on=on)
            except Exception as exc:
                if error_code(exc) != "NoSuchBucket":  # a bucket this store never had (exports, say)
                    raise
                count = 0
            if count:
                outcome.erased[what] += count


def _key_of(kms: BaseClient, tenant: str) -> tuple[str, str] | None:
    found = tenant_keys.tenant_key(kms, tenant)
    return None if found is None else (str(found["Arn"]), str(found.get("KeyState", "")))


def _keys(s3: BaseClient, bucket: str, tenant: str) -> list[inventory.KeyVersions]:
    return list(offboarding.tenant_keys(s3, bucket, tenant))


async def enable(
    s3: S3Runner, settings: Settings, emit: Emit, clock: Clock, tenant: str, by: str, reason: str
) -> None:
    """Take an offboarded tenant on again: its events are accepted from now, with proof."""
    meta = settings.metadata_bucket
    record = await s3.run("reading the tenant", tenants.get_record, meta, tenant)
    if record is None or record.status == "enabled":
        raise OffboardingRefused(f"tenant {tenant!r} is not offboarded; nothing to enable")
    now = clock.now()
    enabled = tenants.TenantRecord(tenant=tenant, status="enabled", since=now, by=by, reason=reason)
    await s3.run("enabling the tenant", tenants.put_record, meta, enabled)
    event_id = deterministic_id("tenant.enabled", tenant, now.isoformat())
    await emit(
        [TenantEnabled(event_id=event_id, tenant=tenant, occurred_at=now, requested_by=by, reason=reason)]
    )
