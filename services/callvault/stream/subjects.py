"""Carrying out data-subject requests: access, erase, restrict, unrestrict, object, extend.

Every request is recorded in the registry with its deadline (the CLI or API
may have recorded it already, before sending) and announced in the audit log
(`subject.request_received`), then carried out, then answered with its outcome
event and counts, and the registry entry marked fulfilled. A redelivered
command whose request is fulfilled re-sends the same answer and does nothing
else; one that failed half-way does the rest (every step is idempotent).

The subject's calls come from the subject index. Deletions go through the same
journal as the purger's, so a kill mid-erasure is finished and proven by the
next purge pass. A call under a legal hold is reported and left alone.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from botocore.exceptions import BotoCoreError, ClientError

from callvault.clock import Clock
from callvault.contract.commands import SubjectExecute, SubjectExtend, SubjectRequest, SubjectVerifyIdentity
from callvault.contract.lifecycle import DeletionReason, LifecycleBase, SubjectEventBase, lifecycle_adapter
from callvault.rules import evidence
from callvault.rules.call_ref import call_ref
from callvault.rules.client_policy import role_at
from callvault.rules.data_classes import SUBJECT_INDEX, DataClass, data_classes
from callvault.rules.durations import CalendarDuration, add_duration
from callvault.rules.purge import StoredObject
from callvault.rules.retention import RetentionClass
from callvault.rules.subject_requests import (
    ExtensionRefused,
    IdentityRefused,
    RequestRecord,
    RequestStatus,
    due_at,
    extend,
    latest_due_at,
    new_record,
    verify_identity,
)
from callvault.settings import Settings
from callvault.storage import exports, inventory, policies
from callvault.storage import subject_requests as requests_registry
from callvault.storage.errors import StorageFault, describe
from callvault.storage.holds import held_calls
from callvault.storage.location import destination_problem
from callvault.storage.sealing import KeyRefused, SealedRefused
from callvault.storage.subject_flags import FlagRecord, SubjectFlag, put_flag, remove_flag
from callvault.storage.subject_index import IndexEntry, calls_of, remove_entries
from callvault.stream.bus import Emit
from callvault.stream.command_errors import CommandRefused
from callvault.stream.offloop import S3Runner
from callvault.stream.subject_rewrites import MetadataRewrites

log = logging.getLogger("callvault.subjects")


# Tries at building one export before the request is refused with a sentence.
EXPORT_ATTEMPTS = 3


@dataclass
class Erasure:
    """What an erasure (or an objection's) did, for its outcome event."""

    calls: int = 0
    by_class: Counter[str] = field(default_factory=Counter)  # objects deleted, by data-class name
    held_calls: list[str] = field(default_factory=list)

    @property
    def recordings(self) -> int:
        return self.by_class[RetentionClass.RECORDING]

    @property
    def metadata(self) -> int:
        return self.by_class[RetentionClass.METADATA]

    def counts(self) -> dict[str, object]:
        """The outcome event's fields (the contract counts recordings and metadata)."""
        return {
            "calls": self.calls,
            "recordings": self.recordings,
            "metadata": self.metadata,
            "held_calls": self.held_calls,
        }


class SubjectHandler(MetadataRewrites):
    def __init__(
        self,
        settings: Settings,
        s3: S3Runner,
        emit: Emit,
        clock: Clock,
        on_objection: Callable[[str], None] = lambda tenant_subject: None,
    ) -> None:
        super().__init__(settings, s3, emit, clock)
        # Tells this worker's archiver at once; other workers reread the registry.
        self.on_objection = on_objection

    async def handle(
        self, command: SubjectRequest | SubjectExtend | SubjectVerifyIdentity | SubjectExecute
    ) -> None:
        if isinstance(command, SubjectExtend):
            await self._extend(command)
            return
        if isinstance(command, SubjectVerifyIdentity):
            record = await self._verify_identity(command)
        elif isinstance(command, SubjectExecute):
            record = await self._instructed(command)
        else:
            record = await self._receive(command)
        if record.status is RequestStatus.FULFILLED and record.outcome is not None:
            await self.emit([lifecycle_adapter.validate_python(record.outcome)])  # type: ignore[list-item]
            return
        if record.instructed_by is None:  # the client's instruction decides the rest (identity included)
            if await self._forwarded(record):
                return
            if record.awaiting_identity:
                log.info("subject request %s waits for its identity check", record.request_id)
                return
        await self._execute(record)

    async def _forwarded(self, record: RequestRecord) -> bool:
        """Whether the request is the client's to answer (its tenant a processor's when it was received):
        then it is passed to the client's contact and proven, not carried out."""
        if record.status is not RequestStatus.FORWARDED:
            history = await self.s3.run("reading the policy", policies.history, self.meta, record.tenant)
            role, contact = role_at(history, record.received_at)
            if role != "processor":
                return False
            record = record.model_copy(
                update={"status": RequestStatus.FORWARDED, "forwarded_to": contact or "the client"}
            )
            await self.s3.run("recording the forwarding", requests_registry.put_request, self.meta, record)
            log.info("subject request %s forwarded to %s's contact", record.request_id, record.tenant)
        await self.emit([evidence.subject_forwarded(record, self.clock.now())])
        return True

    async def _instructed(self, command: SubjectExecute) -> RequestRecord:
        """A forwarded request the client now instructs: recorded with who instructed it, then carried out."""
        record = await self._recorded(command.tenant, str(command.request_id))
        if record.forwarded_to is None:
            raise CommandRefused(
                f"request {record.request_id} was not forwarded to a client: callvault answers it as the "
                "controller, with no instruction to wait for"
            )
        if record.instructed_by is None:
            record = record.model_copy(
                update={"instructed_by": command.instructed_by, "status": RequestStatus.RECEIVED}
            )
            await self.s3.run("recording the instruction", requests_registry.put_request, self.meta, record)
        return record

    async def _execute(self, record: RequestRecord) -> None:
        try:
            answer = await self._carry_out(record)
        except CommandRefused as exc:
            refused = record.model_copy(update={"status": RequestStatus.REFUSED, "refusal": str(exc)})
            await self.s3.run("recording the refusal", requests_registry.put_request, self.meta, refused)
            raise
        await self.emit([answer])
        done = record.model_copy(
            update={
                "status": RequestStatus.FULFILLED,
                "fulfilled_at": answer.occurred_at,
                "refusal": None,
                "outcome": answer.model_dump(mode="json"),
            }
        )
        await self.s3.run("recording the answer", requests_registry.put_request, self.meta, done)
        log.info("subject request %s (%s) fulfilled", record.request_id, record.kind)

    async def _receive(self, command: SubjectRequest) -> RequestRecord:
        tenant, request_id = command.tenant, str(command.event_id)
        record = await self.s3.run(
            "reading the request", requests_registry.get_request, self.meta, tenant, request_id
        )
        signed = new_record(command, self.settings.zone, self.settings.identity_check)
        if record is None:
            record = signed
            await self.s3.run("recording the request", requests_registry.put_request, self.meta, record)
        elif (record.kind, record.subject) != (signed.kind, signed.subject):
            raise CommandRefused(
                f"the registry's record of request {request_id} is of another kind or subject than the "
                "signed command: it was changed after it was filed; file the request again"
            )
        elif (
            as_signed := record.model_copy(update=_signed_facts(record, signed, self.settings.zone))
        ) != record:
            # Filed by the CLI or the API with what the sender claimed; the signed command decides.
            record = as_signed
            await self.s3.run("recording the request", requests_registry.put_request, self.meta, record)
        await self.emit([evidence.subject_request_received(record, self.clock.now())])
        return record

    async def _carry_out(self, record: RequestRecord) -> LifecycleBase:
        entries = await self.s3.run(
            "finding the subject's calls", calls_of, self.meta, record.tenant, record.subject
        )
        if record.kind == "access":
            return await self._access(record, entries)
        if record.kind == "rectify":
            return await self._rectify(record, entries)
        if record.kind in ("restrict", "unrestrict"):
            await self._flag(record, SubjectFlag.RESTRICTED, on=record.kind == "restrict")
            return evidence.subject_outcome(record, self.clock.now(), calls=len(entries))
        if record.kind == "object":
            await self._flag(record, SubjectFlag.OBJECTING, on=True)
            self.on_objection(f"{record.tenant}/{record.subject}")
            if record.agent:  # later recordings of their calls are refused; the archived follow their term
                return evidence.subject_outcome(record, self.clock.now(), calls=len(entries))
            done = await self._erase(entries, "objection", objection=True)
            return evidence.subject_outcome(record, self.clock.now(), **done.counts())
        if record.agent:
            return await self._erase_agent(record, entries)
        done = await self._erase(entries, "erasure_request", objection=False)
        return evidence.subject_outcome(record, self.clock.now(), **done.counts())

    async def _flag(self, record: RequestRecord, flag: SubjectFlag, on: bool) -> None:
        if not on:
            await self.s3.run(
                f"removing the {flag.value} flag", remove_flag, self.meta, flag, record.tenant, record.subject
            )
            return
        entry = FlagRecord(
            subject=record.subject,
            tenant=record.tenant,
            reason=record.reason,
            requested_by=record.requested_by,
            flagged_at=self.clock.now(),
            request_id=record.request_id,
        )
        await self.s3.run(f"flagging the subject {flag.value}", put_flag, self.meta, flag, entry)

    async def _access(self, record: RequestRecord, entries: list[IndexEntry]) -> LifecycleBase:
        now = self.clock.now()
        life = CalendarDuration.parse(self.settings.export_retention)
        expires = add_duration(now, life, self.settings.zone)
        if record.deliver_to is not None:  # checked first: a refused recipient costs no export
            bucket = record.deliver_to.removeprefix("s3://").partition("/")[0]
            problem = await self.s3.run("checking the recipient", destination_problem, self.settings, bucket)
            if problem is not None:
                raise CommandRefused(f"the export of request {record.request_id} was not sent: {problem}")
        try:
            built = await self.s3.run(
                f"building the export of request {record.request_id}",
                exports.build_export,
                buckets={c.name: c.bucket(self.settings) for c in data_classes()},
                exports_bucket=self.settings.exports_bucket,
                entries=entries,
                subject=record.subject,
                request_id=record.request_id,
                tenant=record.tenant,
                now=now,
                expires_at=expires,
                single_put_limit=self.settings.s3_max_put_bytes,
                attempts=EXPORT_ATTEMPTS,
                portable=record.export_format == "portable",
                keyring=self.keyring,
            )
        except (KeyRefused, SealedRefused) as exc:
            raise CommandRefused(
                f"the export of request {record.request_id} could not be built: a stored object does not "
                f"open ({exc}); nothing was handed out and the request stays open"
            ) from exc
        except (BotoCoreError, ClientError, StorageFault) as exc:
            # Rebuilding the whole ZIP again and again would hold the commands agent for ever.
            raise CommandRefused(
                f"the export of request {record.request_id} could not be built "
                f"({describe(exc, self.settings.s3_endpoint)}); nothing was handed out and the request "
                "stays open: file it again once the store takes it"
            ) from exc
        log.info("export of request %s: %d calls, %d bytes", record.request_id, built.calls, built.size_bytes)
        where = None
        if record.deliver_to is not None:
            where, size = await self.s3.run(
                f"delivering the export of request {record.request_id}",
                exports.deliver,
                built.uri,
                record.deliver_to,
                record.request_id,
            )
            await self.emit(
                [evidence.export_delivered(record, built.uri, where, built.sha256, size, self.clock.now())]
            )
        return evidence.subject_outcome(
            record,
            self.clock.now(),
            calls=built.calls,
            recordings=built.recordings,
            metadata=built.metadata,
            export_uri=built.uri,
            export_expires_at=expires,
            export_format=record.export_format,
            delivered_to=where,
        )

    async def _erase(self, entries: list[IndexEntry], reason: DeletionReason, *, objection: bool) -> Erasure:
        """Every indexed object of the subject's calls (an objection: of the classes it erases), class by
        class in the registry's order, each batch journaled and proven; held calls are left and named."""
        held = await self.s3.run("reading legal holds", held_calls, self.meta)
        done = Erasure()
        classes = [c for c in data_classes() if c.erased_on_objection or not objection]
        batches: dict[str, list[StoredObject]] = {c.name: [] for c in classes}
        for entry in entries:
            if call_ref(entry.tenant, entry.call_id) in held:
                done.held_calls.append(entry.call_id)
                continue
            for kind in classes:
                key = entry.objects.get(kind.name)
                if key is None:
                    continue
                found = await self._find(kind, key, entry)
                if not found and SUBJECT_INDEX in kind.dependents:
                    # What the index goes with went already: only its entries are left.
                    await self.s3.run(
                        "dropping stale index entries",
                        remove_entries,
                        self.meta,
                        entry.tenant,
                        entry.subjects,
                        entry.call_id,
                    )
                batches[kind.name].extend(found)
        refused: dict[str, str] = {}
        for kind in classes:
            if batches[kind.name]:
                gone, failed = await self.deleter.delete(
                    kind.bucket(self.settings), batches[kind.name], reason
                )
                refused.update(failed)
                done.by_class[kind.name] = len(gone)
        if refused:
            key, why = next(iter(refused.items()))
            raise CommandRefused(
                f"the store refused to delete {len(refused)} objects (first: {key}: {why}); "
                "the rest is deleted and proven, and sending the command again retries"
            )
        done.calls = len({o.call_id for batch in batches.values() for o in batch})
        return done

    async def _find(self, kind: DataClass, key: str, entry: IndexEntry) -> list[StoredObject]:
        bucket = kind.bucket(self.settings)
        obj = await self.s3.run(
            f"looking at s3://{bucket}/{key}",
            inventory.find_object,
            bucket,
            key,
            kind.name,
            entry.tenant,
            entry.call_id,
        )
        if obj is None:
            return []
        if SUBJECT_INDEX in kind.dependents:
            # The entry knows every participant even if the document predates the subjects tag.
            obj = replace(obj, subjects=tuple(sorted(set(entry.subjects))))
        return [obj]

    async def _recorded(self, tenant: str, request_id: str) -> RequestRecord:
        record = await self.s3.run(
            "reading the request", requests_registry.get_request, self.meta, tenant, request_id
        )
        if record is None:
            raise CommandRefused(f"no subject request {request_id} is recorded for tenant {tenant!r}")
        return record

    async def _verify_identity(self, command: SubjectVerifyIdentity) -> RequestRecord:
        """The identity check recorded (its month runs from it) and proven; a redelivery says it again."""
        record = await self._recorded(command.tenant, str(command.request_id))
        at = command.verified_at or command.requested_at
        if record.identity_verified_at is None:
            try:
                record = verify_identity(record, command.verified_by, at, self.settings.zone)
            except IdentityRefused as exc:
                raise CommandRefused(str(exc)) from exc
            await self.s3.run(
                "recording the identity check", requests_registry.put_request, self.meta, record
            )
        elif (record.identity_verified_at, record.verified_by) != (at, command.verified_by):
            raise CommandRefused(
                f"request {record.request_id}'s identity was verified already, at "
                f"{record.identity_verified_at:%Y-%m-%d %H:%M} by {record.verified_by}"
            )
        await self.emit([evidence.subject_identity_verified(record, command.requested_by, self.clock.now())])
        return record

    async def _extend(self, command: SubjectExtend) -> None:
        request_id, tenant = str(command.request_id), command.tenant
        record = await self._recorded(tenant, request_id)
        if (
            record.extended_reason is not None
            and record.extended_by == command.requested_by
            and (record.extended_reason == command.reason)
        ):
            extended = record  # a redelivery: same answer
        else:
            try:
                extended = extend(
                    record, command.reason, command.requested_by, self.settings.zone, command.on_behalf_of
                )
            except ExtensionRefused as exc:
                raise CommandRefused(str(exc)) from exc
            told = command.notified_on or command.requested_at
            extended = extended.model_copy(update={"extension_notified_on": told})
            await self.s3.run("recording the extension", requests_registry.put_request, self.meta, extended)
        now = self.clock.now()
        said: list[LifecycleBase | SubjectEventBase] = [evidence.subject_request_extended(extended, now)]
        if extended.extension_notified_on is not None:
            said.append(evidence.subject_extension_notified(extended, now))
        await self.emit(said)


def _signed_facts(record: RequestRecord, signed: RequestRecord, zone: ZoneInfo) -> dict[str, object]:
    """What of a request record the signed command decides: who asked (the verified key), for whom,
    who checked the identity, why, and when it was received, which dates its deadline (an extended
    one included)."""
    names = ["requested_by", "on_behalf_of", "reason", "identity_pending"]
    if record.identity_verified_at is None:  # else who checked the identity is the check's own word
        names.append("verified_by")
    facts: dict[str, object] = {name: getattr(signed, name) for name in names}
    if signed.rectify is not None:  # what the command signs decides; the values stay the registry's
        facts["rectify"] = {**(record.rectify or {}), **signed.rectify}
    if record.received_at != signed.received_at or record.identity_pending != signed.identity_pending:
        facts["received_at"] = signed.received_at
        started = record.identity_verified_at or signed.received_at
        if record.extended_reason is not None:
            facts["due_at"] = latest_due_at(started, zone)
        elif record.identity_verified_at is not None:
            facts["due_at"] = due_at(started, zone)
        else:
            facts["due_at"] = signed.due_at
    return facts
