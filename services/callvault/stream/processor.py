"""What the worker does with one message of the `calls` topic.

Read the call's state, fold the fact in, ask the rules what follows, do the S3
work they decided, emit the lifecycle events that prove it, then save the
state. The order matters for at-least-once delivery: proof is delivered before
the state says "done", so a crash in between repeats idempotent work and
re-emits events with the same ids, and never leaves work done without proof.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.client import BaseClient

from callvault.clock import Clock
from callvault.contract.lifecycle import DeletionReason, LifecycleBase, ObjectRef
from callvault.observability.metrics import STATE_WRITES
from callvault.rules import evidence
from callvault.rules.call_ref import call_ref
from callvault.rules.call_state import (
    Archive,
    CallState,
    Outcome,
    Reject,
    apply_fact,
    card_data_erases_recording,
    evict_at,
    is_settled,
    late_payment_to_prove,
    metadata_ready,
    next_recording_step,
    objection_erases_recording,
    paused_parts,
    payment_verdict,
    source_retry_at,
    wake_at,
)
from callvault.rules.client_policy import Terms, kms_key_at, terms_at
from callvault.rules.durations import CalendarDuration
from callvault.rules.metadata_doc import canonical_bytes, metadata_document, sha256_hex
from callvault.rules.pause_audio import AudioFinding
from callvault.rules.retention import RetentionClass
from callvault.settings import Settings
from callvault.storage import archive as s3ops
from callvault.storage import inventory
from callvault.storage.holds import set_object_lock_hold
from callvault.storage.layout import dating_metadata, lifecycle_tags, metadata_key, recording_key
from callvault.storage.pause_reads import hear_source, measure_paused_audio
from callvault.storage.policies import PolicyBook
from callvault.storage.store_profile import StoreProfile
from callvault.storage.subject_index import SUBJECTS_META, IndexEntry, put_entries
from callvault.stream.bus import Emit
from callvault.stream.call_locks import CallLocks
from callvault.stream.messages import CallMessage
from callvault.stream.offloop import S3Runner, SourceUnreadable
from callvault.stream.worker_part import WorkerPart

log = logging.getLogger("callvault.worker")

StateStore = MutableMapping[bytes, dict[str, Any]]


class CallProcessor(WorkerPart):
    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        s3: S3Runner,
        emit: Emit,
        clock: Clock,
        staging_s3: BaseClient | None = None,
        registries: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(settings, s3, emit, clock)
        self.store = store
        # Set when uploads live in another store: recordings are then streamed across.
        self.staging_s3 = staging_s3
        # Each tenant's client-policy history, refreshed by the worker from the store.
        self.policies: PolicyBook = {}
        # Tenants whose contract ended (offboarding or offboarded): none of their calls goes on.
        self.closed_tenants: set[str] = set()
        # What `storage init` measured of the store (`learn_store`): whether it keeps a copy's new tags
        # (until known, every copy's tags are read back and checked) and refuses a second write of a
        # name (then a sealed recording is written to a free name without looking first).
        self.copy_tags_kept = False
        self.writes_once = False
        # Reads the holds, objections and policies above; awaited once before the first call.
        self._registries = registries
        self.retry_backoff = CalendarDuration.parse(settings.source_retry_backoff).as_timedelta()
        self.payment_margin = CalendarDuration.parse(settings.payment_margin).as_timedelta()
        self.ttl = _ttl(settings.settled_state_ttl)
        self._turns = CallLocks()
        # state key (`{tenant}/{call_id}`) -> next wake-up; rebuilt from the table after a rebalance.
        self.wakes: dict[bytes, datetime] = {}
        # Calls under a legal hold (`{tenant}/{call_id}`), refreshed by the worker from the
        # registry: what is archived for them gets the S3 object-lock hold at once.
        self.held_calls: set[str] = set()
        # `{tenant}/{pseudonym}` of subjects who objected (subject.object): their recordings are refused.
        self.objecting: set[str] = set()

    def learn_store(self, profile: StoreProfile | None) -> None:
        """Take what `storage init` measured of the store; None (nothing measured): check everything."""
        self.copy_tags_kept = profile is not None and profile.keeps_copy_tags
        self.writes_once = profile is not None and bool(profile.refuses_second_write)

    def load(self, key: bytes) -> CallState | None:
        raw = self.store.get(key)
        return None if raw is None else CallState.model_validate(raw["state"])

    def terms(self, state: CallState, at: datetime) -> Terms:
        """What applies to this call at `at`: its tenant's (and queue's) client policy, else the defaults."""
        history = self.policies.get(state.tenant, ())
        return terms_at(history, state.queue, at, self.settings.policy_defaults)

    def _seal(self, state: CallState, data_class: str, at: datetime) -> s3ops.Seal | None:
        """How an object of this call is sealed: under the client's own key where its policy names one
        (bring your own key), else callvault's key for the tenant; None when sealing is off."""
        kms_key = kms_key_at(self.policies.get(state.tenant, ()), at)
        return self.keyring.seal_for(state.tenant, data_class, kms_key)

    def known_version(self, state: CallState) -> int:
        """The newest version of the call's tenant's policy this worker has read (0: none): written
        beside an object's date, so the purger can tell a version it had not read yet (issue 31)."""
        return max((v.version for v in self.policies.get(state.tenant, ())), default=0)

    def save(self, key: bytes, state: CallState, now: datetime, judged: datetime | None = None) -> None:
        """Keep the call's state, and when it next needs a wake-up as judged at `judged` (`wake_at`)."""
        terms = self.terms(state, now)
        wake = wake_at(
            state,
            now,
            terms.retention,
            terms.grace,
            self.ttl,
            terms.recording_allowed,
            self.payment_margin,
            judged=judged,
        )
        self.store[key] = {
            "state": state.model_dump(mode="json", exclude_none=True),
            "wake_at": wake.isoformat() if wake else None,
        }
        self._remember_wake(key, wake)

    def _remember_wake(self, key: bytes, wake: datetime | None) -> None:
        if wake is None:
            self.wakes.pop(key, None)
        else:
            self.wakes[key] = wake

    def rebuild_wakes(self) -> int:
        """Read every local call's next wake-up from the table (after recovery or a rebalance)."""
        wakes: dict[bytes, datetime] = {}
        for key, raw in list(self.store.items()):
            text = raw.get("wake_at") if isinstance(raw, dict) else None
            if text:
                wakes[key] = datetime.fromisoformat(text)
        self.wakes = wakes
        return len(wakes)

    def _adopt_older_key(self, key: bytes, message: CallMessage) -> CallState | None:
        """The call's state as an older version kept it, under the bare call id, moved to `key`.

        Only a state of the same tenant is taken: another tenant's call of that id stays its own.
        """
        tenant = message.call_tenant
        older = message.call_id.encode()
        if tenant is None or older == key:
            return None
        state = self.load(older)
        if state is None or state.tenant != tenant:
            return None
        self.store.pop(older, None)
        self.wakes.pop(older, None)
        return state

    async def handle(self, message: CallMessage) -> None:
        """One message of a call, in its call's turn; what it failed on is raised."""
        for _, exc in await self.handle_batch([message]):
            raise exc

    async def handle_batch(self, messages: Sequence[CallMessage]) -> list[tuple[int, Exception]]:
        """Messages of a batch, each call's in order and in its turn: the intake and the `calls` agent
        both call this. Returns the failures, by the message's index, for the caller to dead-letter;
        a failed message leaves its call's state as the messages before it left it, and the rest go on.

        A call's state is written once, after its last message here, not after each: a call's events
        read together (a backlog, a platform that sends them at the call's end) cost one changelog
        record, as Kafka Streams' record cache does. Nothing is acknowledged before that write: a worker
        stopped between does the (idempotent) work again from the state before the batch.
        """
        failures: list[tuple[int, Exception]] = []
        by_key: dict[bytes, list[int]] = {}
        for index, message in enumerate(messages):
            by_key.setdefault(message.state_key, []).append(index)
        for key, indexes in by_key.items():
            async with self._turns.turn(key):
                slot = _Slot(key)
                for index in indexes:
                    try:
                        await self._handle(messages[index], slot)
                    except Exception as exc:  # noqa: BLE001 - the caller dead-letters it; the call goes on
                        failures.append((index, exc))
                try:
                    self._close(slot)
                except Exception as exc:  # noqa: BLE001 - as above: the state the last message left is lost
                    failures.append((indexes[-1], exc))
        return failures

    def _close(self, slot: _Slot) -> None:
        """Write what the messages left: the new state (and its wake-up), or the call forgotten."""
        if slot.forgotten:
            self.store.pop(slot.key, None)
            self.wakes.pop(slot.key, None)
        elif slot.changed is not None:
            assert slot.state is not None
            self.save(slot.key, slot.state, *slot.changed)
            STATE_WRITES.inc()

    async def _handle(self, message: CallMessage, slot: _Slot) -> None:
        if self._registries is not None:
            await self._registries()  # waits for the store like every S3 call here
            self._registries = None
        now = self.clock.now()
        key = slot.key
        if message.call_tenant in self.closed_tenants:
            # Its data is being returned or erased: nothing more is archived; the call is forgotten.
            slot.forget()
            return
        if not slot.loaded:
            state = self.load(key)
            slot.take(state)
            if state is None and (state := self._adopt_older_key(key, message)) is not None:
                slot.keep(state, now, now)  # moved: written under its new key whatever comes next
        state = slot.state
        if message.kind == "fact":
            assert message.fact is not None
            state, changed = apply_fact(state, message.fact, now)
            if not changed:
                return  # a repeated event_id: nothing new to learn or do
        elif state is None:
            self.wakes.pop(key, None)
            return
        judged = judged_at(now, message)
        state = await self._advance(state, now, judged)
        forget = evict_at(state, self.terms(state, now).retention, self.ttl)
        if forget is not None and now >= forget:
            state = await self._write_metadata(state, now, final=True)
            slot.forget()
            log.debug("forgot call %s", state.call_id)
            return
        slot.keep(state, now, judged)

    async def _advance(self, state: CallState, now: datetime, judged: datetime) -> CallState:
        """Decide what the call's facts now allow, and do it. `judged` is the time its deadlines are
        judged at (`judged_at`): no later than `now`; `now` dates what is done."""
        objected = any(f"{state.tenant}/{p}" in self.objecting for p in state.subjects)
        terms = self.terms(state, now)
        step = next_recording_step(
            state,
            now,
            terms.retention,
            terms.grace,
            subject_objected=objected,
            recording_allowed=terms.recording_allowed,
            payment_margin=self.payment_margin,
            payments_forbidden=terms.payments_forbidden,
            judged=judged,
        )
        if isinstance(step, Archive):
            state = await self._archive(state, step, now, terms.version)
        elif isinstance(step, Reject):
            state = await self._reject(state, step, now)
        if objection_erases_recording(state):
            state = await self._erase_objected(state, now)
        elif card_data_erases_recording(state, self.payment_margin, judged, terms.grace):
            state = await self._erase_objected(state, now, reason="card_data_exposed")
        elif late_payment_to_prove(state, self.payment_margin, judged, terms.grace):
            state = await self._prove_late_payment(state, now)
        state = await self._write_metadata(state, now, judged=judged)
        if state.settled_at is None and is_settled(state):
            state = state.model_copy(update={"settled_at": now})
        return state

    async def _erase_objected(
        self, state: CallState, now: datetime, reason: DeletionReason = "objection"
    ) -> CallState:
        """The participant objected after the archive, or a late payment event showed card data in the
        recording: erase it now, proven with that reason (a legal hold keeps it)."""
        if self._held(state):
            log.info("call %s: objection after archiving; a legal hold keeps the recording", state.call_id)
            return state
        bucket, key = self.settings.recordings_bucket, self._target_key(state)
        obj = await self.s3.run(
            f"looking at s3://{bucket}/{key}",
            inventory.find_object,
            bucket,
            key,
            RetentionClass.RECORDING,
            state.tenant,
            state.call_id,
        )
        if obj is not None:
            _, failed = await self.deleter.delete(bucket, [obj], reason)
            if failed:
                log.warning("call %s: the store refused to erase %s: %s", state.call_id, key, failed[key])
                return state  # tried again at the call's next event or wake-up
        return state.model_copy(update={"recording_erased_at": now})

    async def _prove_late_payment(self, state: CallState, now: datetime) -> CallState:
        """Payment events that came after the archive, every window inside a pause: hear the archived
        audio's pauses now; silent, prove it (`payment.secured`); not silent, erase it at once."""
        verdict = payment_verdict(state, self.payment_margin, now, now, ended=True)
        heard = await self._hear_pauses(state, (self.settings.recordings_bucket, self._target_key(state)))
        if heard is not None and not heard.silent:
            log.warning("call %s: a late payment's pause is not silent in the archived audio", state.call_id)
            return await self._erase_objected(state, now, reason="card_data_exposed")
        heard = heard or AudioFinding(False, True, "the archived recording was gone before it was heard")
        parts = paused_parts(state)
        await self.emit(
            [evidence.payment_secured(state, verdict, parts, heard, self.payment_margin,
                                      self.settings.pause_silence_dbfs, now)]
        )  # fmt: skip
        return state.model_copy(update={"payment_proven": True})

    def _target_key(self, state: CallState) -> str:
        rec = state.recording
        assert rec is not None
        return recording_key(state.tenant, state.call_id, rec.recording_started_at, rec.extension)

    async def _sources_answer(self) -> bool:
        """Whether the store that holds uploads answers at all: if so, a source failing alone is stuck."""
        client = self.staging_s3 or self.s3.s3
        try:
            await self.s3.once(functools.partial(client.head_bucket, Bucket=self.settings.staging_bucket))
        except Exception:  # noqa: BLE001 - any failure means "not answering": keep waiting
            return False
        return True

    async def _archive(
        self, state: CallState, step: Archive, now: datetime, version: int | None
    ) -> CallState:
        rec = state.recording
        assert rec is not None
        target = self._target_key(state)
        outside = rec.source_problem(self.settings.upload_buckets)
        try:
            if outside is not None:  # decoded before the upload buckets changed: never read it
                raise SourceUnreadable(outside)
            heard, plain = None, None
            if step.payments is not None:
                heard, plain = await self._hear_source(state)
            if heard is not None and not heard.silent:
                return await self._reject(state, Reject(Outcome.PAUSE_NOT_SILENT, heard.detail), now)
            outcome = await self._copy(state, step, target, now, version, plain)
        except SourceUnreadable as exc:
            detail = f"the source cannot be read: {exc}"
            unreadable = evidence.recording_rejected(state, Outcome.SOURCE_UNREADABLE, detail, False, now)
            await self.emit([unreadable])
            return self._decided(state, Outcome.SOURCE_UNREADABLE, now)
        if outcome.status == "archived":
            assert outcome.object is not None
            await self._lock_if_held(state, outcome.object)
            await self._delete_source(state)
            proofs: list[LifecycleBase] = [
                evidence.disclosure_verified(state, step.evidence, now),
                evidence.recording_archived(
                    state,
                    outcome.object,
                    step.expires_at,
                    now,
                    version,
                    self.known_version(state),
                    s3ops.Sealing.pair(outcome.sealing),
                ),  # fmt: skip
            ]
            if step.payments is not None:
                heard = heard or AudioFinding(False, True, "the source was gone before its pauses were heard")
                proofs.append(
                    evidence.payment_secured(
                        state,
                        step.payments,
                        paused_parts(state),
                        heard,
                        self.payment_margin,
                        self.settings.pause_silence_dbfs,
                        now,
                    )  # fmt: skip
                )
            await self.emit(proofs)
            dated = {"recording_expires_at": step.expires_at, "recording_policy_version": version}
            proven = {"payment_proven": step.payments is not None}
            return self._decided(state, Outcome.ARCHIVED, now, **dated, **proven)
        if outcome.status == "source_missing":
            checks = state.source_checks + 1
            retry = source_retry_at(checks, now, self.settings.source_retries, self.retry_backoff)
            if retry is not None:
                log.info("call %s: %s; looking again at %s", state.call_id, outcome.detail, retry)
                return state.model_copy(update={"source_checks": checks, "source_retry_at": retry})
            detail = f"{outcome.detail} after {checks} lookups"
            await self.emit([evidence.recording_rejected(state, Outcome.SOURCE_MISSING, detail, False, now)])
            return self._decided(state, Outcome.SOURCE_MISSING, now, source_checks=checks)
        await self.emit(
            [evidence.recording_rejected(state, Outcome.CHECKSUM_MISMATCH, outcome.detail, False, now)]
        )
        return self._decided(state, Outcome.CHECKSUM_MISMATCH, now)

    def _what_to_hear(self, state: CallState) -> dict[str, Any]:
        """The recording's facts and the pauses to hear in it, as `storage.pause_reads` takes them."""
        rec = state.recording
        assert rec is not None
        return {
            "object_size": rec.size_bytes,
            "content_type": rec.content_type,
            "parts": paused_parts(state),
            "recording_ms": int((rec.recording_ended_at - rec.recording_started_at).total_seconds() * 1000),
            "threshold_dbfs": self.settings.pause_silence_dbfs,
        }

    async def _hear_source(self, state: CallState) -> tuple[AudioFinding | None, bytes | None]:
        """What the source's pauses say, read before the copy so a pause that is not silent never reaches
        the archive; and, where the recording is to be sealed in one PUT, its bytes: read once, by one GET,
        for both (`pause_reads.hear_source`)."""
        rec = state.recording
        assert rec is not None
        heard = await self.s3.run(
            f"hearing the pauses of call {state.call_id}",
            hear_source,
            rec.source_bucket,
            rec.source_key,
            whole=self.keyring.sealing and rec.size_bytes <= s3ops.STREAM_PART,
            **self._what_to_hear(state),
            on=self.staging_s3,
            stuck_after_s=self.settings.source_stuck_s,
            still_answering=self._sources_answer,
        )
        return heard.finding, heard.plain

    async def _hear_pauses(self, state: CallState, archived: tuple[str, str]) -> AudioFinding | None:
        """What the archived copy's (bucket, key) audio says of its pauses, for payment events that came
        late (`rules.pause_audio`); None when it is not there."""
        bucket, key = archived
        return await self.s3.run(
            f"hearing the pauses of call {state.call_id}",
            measure_paused_audio,
            bucket,
            key,
            **self._what_to_hear(state),
            keyring=self.keyring,
            stuck_after_s=self.settings.source_stuck_s,
            still_answering=self._sources_answer,
        )

    async def _copy(
        self, state: CallState, step: Archive, target: str, now: datetime, version: int | None,
        plain: bytes | None = None,
    ) -> s3ops.CopyOutcome:  # fmt: skip
        rec = state.recording
        assert rec is not None
        dating = dating_metadata(
            rec.recording_started_at, now, state.queue, version, self.known_version(state)
        )
        return await self.s3.run(
            f"archiving the recording of call {state.call_id}",
            s3ops.copy_recording,
            source_s3=self.staging_s3,
            source_bucket=rec.source_bucket,
            source_key=rec.source_key,
            target_bucket=self.settings.recordings_bucket,
            target_key=target,
            sha256=rec.sha256,
            size_bytes=rec.size_bytes,
            content_type=rec.content_type,
            tags=lifecycle_tags(RetentionClass.RECORDING, step.expires_at, state.tenant, version),
            extra_metadata={"call-id": state.call_id, "tenant": state.tenant, **dating},
            retain_until=step.expires_at,
            check_tags=not self.copy_tags_kept,
            seal=self._seal(state, RetentionClass.RECORDING.value, now),
            keyring=self.keyring,
            write_once=self.writes_once,
            plain=plain,
            stuck_after_s=self.settings.source_stuck_s,
            still_answering=self._sources_answer,
        )

    async def _reject(self, state: CallState, step: Reject, now: datetime) -> CallState:
        rec = state.recording
        assert rec is not None
        # A late duplicate of a call the worker already forgot must not undo its archive.
        already = await self.s3.run(
            "checking the archive",
            s3ops.archived_copy,
            self.settings.recordings_bucket,
            self._target_key(state),
            rec.sha256,
            keyring=self.keyring,
        )
        if already is not None:
            log.info("call %s: late duplicate of an archived recording, ignored", state.call_id)
            return self._decided(state, Outcome.ARCHIVED, now)
        deleted = await self._delete_source(state)
        proofs: list[LifecycleBase] = []
        if step.reason is Outcome.DISCLOSURE_MISSING:
            assert step.verdict is not None
            proofs.append(evidence.disclosure_missing(state, step.verdict, now))
        proofs.append(evidence.recording_rejected(state, step.reason, step.detail, deleted, now))
        await self.emit(proofs)
        return self._decided(state, step.reason, now)

    async def _delete_source(self, state: CallState) -> bool:
        """Delete the upload; False (and a log line) when the store refuses it for good."""
        rec = state.recording
        assert rec is not None
        if rec.source_problem(self.settings.upload_buckets) is not None:
            # Decoded before the upload buckets changed: never delete outside them.
            log.warning("call %s: the source is outside the upload buckets; left alone", state.call_id)
            return False
        try:
            await self.s3.run(
                f"deleting the source of call {state.call_id}",
                s3ops.delete_source,
                rec.source_bucket,
                rec.source_key,
                on=self.staging_s3,
                stuck_after_s=self.settings.source_stuck_s,
                still_answering=self._sources_answer,
            )
        except SourceUnreadable as exc:
            log.warning("call %s: the store refuses to delete the source: %s", state.call_id, exc)
            return False
        return True

    @staticmethod
    def _decided(state: CallState, outcome: Outcome, now: datetime, **extra: Any) -> CallState:
        update = {"recording_outcome": outcome, "recording_decided_at": now, "source_retry_at": None}
        return state.model_copy(update={**update, **extra})

    async def _write_metadata(
        self, state: CallState, now: datetime, final: bool = False, judged: datetime | None = None
    ) -> CallState:
        terms = self.terms(state, now)
        if not (final or metadata_ready(state, judged or now, terms.grace)):
            return state
        started_at = state.call_started_at()
        if started_at is None:
            return state
        expires, version = terms.retention.expires_at(RetentionClass.METADATA, started_at), terms.version
        if state.metadata_expires_at is not None and state.metadata_expires_at < expires:
            # Written before under a shorter term: a rewrite never brings the date later.
            expires, version = state.metadata_expires_at, state.metadata_policy_version
        rec_key = self._target_key(state) if state.recording is not None else None
        doc = metadata_document(state, started_at, terms.retention, rec_key, expires)
        body = canonical_bytes(doc)
        sha = sha256_hex(body)
        if sha == state.metadata_sha256:
            return state
        key = metadata_key(state.tenant, state.call_id, started_at)
        if now >= expires:
            return state  # its own window has passed: writing it now would keep it too long
        tags = lifecycle_tags(RetentionClass.METADATA, expires, state.tenant, version)
        dating = dating_metadata(started_at, now, state.queue, version, self.known_version(state))
        subjects = list(state.subjects)
        if subjects:
            # The index first: an erasure that finds the metadata must find it by its subjects too.
            entry = IndexEntry(
                call_id=state.call_id,
                tenant=state.tenant,
                subjects=subjects,
                objects=_archived_objects(key, (doc.get("recording") or {}).get("key")),
                call_started_at=started_at,
                expires_at=expires,
            )
            meta = self.settings.metadata_bucket
            await self.s3.run(f"indexing call {state.call_id}", put_entries, meta, entry, tags)
        written = await self.s3.run(
            f"writing metadata of call {state.call_id}",
            s3ops.put_document,
            bucket=self.settings.metadata_bucket,
            key=key,
            body=body,
            sha256=sha,
            tags=tags,
            extra_metadata={**dating, SUBJECTS_META: " ".join(subjects)} if subjects else dating,
            retain_until=expires,
            seal=self._seal(state, RetentionClass.METADATA.value, now),
        )
        ref = written.ref
        await self._lock_if_held(state, ref)
        known = self.known_version(state)
        sealed = s3ops.Sealing.pair(written.sealing)
        await self.emit(
            [evidence.metadata_archived(state, ref, started_at, expires, now, version, known, sealed)]
        )
        update = {
            "metadata_sha256": sha,
            "metadata_key": key,
            "metadata_expires_at": expires,
            "metadata_policy_version": version,
        }
        return state.model_copy(update=update)

    def _held(self, state: CallState) -> bool:
        return call_ref(state.tenant, state.call_id) in self.held_calls

    async def _lock_if_held(self, state: CallState, ref: ObjectRef) -> None:
        if not self._held(state):
            return
        target = [(ref.key, ref.version_id or "null")]
        said = await self.s3.run(f"holding {ref.key}", set_object_lock_hold, ref.bucket, target, True)
        log.info("call %s is under a legal hold: s3://%s/%s %s", state.call_id, ref.bucket, ref.key, said)


@dataclass
class _Slot:
    """One call's state while a batch's messages of it are handled (`CallProcessor.handle_batch`)."""

    key: bytes
    loaded: bool = False
    state: CallState | None = None
    # (now, judged) of the message that last changed the state: its wake-up is judged as of then.
    changed: tuple[datetime, datetime] | None = None
    forgotten: bool = False

    def take(self, state: CallState | None) -> None:
        self.loaded, self.state = True, state

    def keep(self, state: CallState, now: datetime, judged: datetime) -> None:
        self.state, self.changed, self.forgotten = state, (now, judged), False

    def forget(self) -> None:
        """The call is gone (forgotten, or its tenant closed): a later message starts it afresh."""
        self.loaded, self.state, self.changed, self.forgotten = True, None, None, True


def judged_at(now: datetime, message: CallMessage) -> datetime:
    """The time a message's call is judged at: when its event reached Kafka, if that is earlier.

    A deadline (the disclosure's grace, a payment window's end) counts the time the platform had to
    send the events that settle it. Judged at the clock alone, a worker reading a backlog (back after
    a crash, or behind) would find the grace passed on the first message it read and reject a call
    whose disclosure was sent in time and waits a few records further on.
    """
    return min(now, message.published_at or now)


def _ttl(text: str) -> timedelta:
    duration = CalendarDuration.parse(text)
    if duration.is_exact:
        return duration.as_timedelta()
    return timedelta(days=duration.years * 366 + duration.months * 31 + duration.days)


def _archived_objects(metadata: str, recording: str | None) -> dict[str, str]:
    """The call's keys by data class, as its subject-index entries name them."""
    objects = {str(RetentionClass.METADATA): metadata}
    if recording:
        objects[str(RetentionClass.RECORDING)] = recording
    return objects
