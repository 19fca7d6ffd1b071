"""The lifecycle events that prove each outcome, with deterministic ids.

An id is derived from what the event is about (the call, the recording event it
answers, the object's content), never from when it was emitted: a replay of the
same input emits the same ids and a consumer drops the repeats.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from callvault.contract.base import deterministic_id
from callvault.contract.call_events import RecordingStored
from callvault.contract.commands import LegalHoldPlace, LegalHoldRelease
from callvault.contract.lifecycle import (
    DeletionReason,
    DeletionRefused,
    DisclosureMissing,
    DisclosureVerified,
    LegalHoldPlaced,
    LegalHoldReleased,
    MetadataArchived,
    ObjectDeleted,
    ObjectRef,
    ObjectSealed,
    PausedSpan,
    PaymentSecured,
    PaymentWindow,
    PolicyCancelled,
    PolicyChanged,
    RecordingAccessed,
    RecordingAccessRefused,
    RecordingArchived,
    RecordingRejected,
    SubjectAccessFulfilled,
    SubjectErased,
    SubjectEventBase,
    SubjectExportAccessed,
    SubjectExportDeleted,
    SubjectExportDelivered,
    SubjectExtensionNotified,
    SubjectForwarded,
    SubjectIdentityVerified,
    SubjectObjected,
    SubjectRectified,
    SubjectRequestExtended,
    SubjectRequestReceived,
    SubjectRestricted,
    SubjectUnrestricted,
)
from callvault.rules.access import Grant, Want
from callvault.rules.call_state import CallState, Outcome
from callvault.rules.client_policy import PolicyVersion
from callvault.rules.data_classes import data_class
from callvault.rules.disclosure import DisclosureDetail, DisclosureFact
from callvault.rules.pause_audio import AudioFinding, PausedPart
from callvault.rules.payments import PaymentVerdict
from callvault.rules.purge import StoredObject, lateness_s
from callvault.rules.subject_requests import RequestRecord


def _rec(state: CallState) -> RecordingStored:
    assert state.recording is not None
    return state.recording


def _about(state: CallState, now: datetime, type_: str, *id_parts: str) -> dict[str, Any]:
    """The fields every lifecycle event of a call shares; the id from what it is about."""
    return {
        "event_id": deterministic_id(type_, state.call_id, *id_parts),
        "call_id": state.call_id,
        "tenant": state.tenant,
        "occurred_at": now,
    }


def _about_recording(state: CallState, now: datetime, type_: str, *more: str) -> dict[str, Any]:
    rec = _rec(state)
    return {**_about(state, now, type_, str(rec.event_id), *more), "recording_event_id": rec.event_id}


def disclosure_verified(state: CallState, evidence: DisclosureFact, now: datetime) -> DisclosureVerified:
    rec = _rec(state)
    return DisclosureVerified(
        **_about_recording(state, now, "disclosure.verified"),
        disclosure_event_id=evidence.event_id,
        prompt_id=evidence.prompt_id,
        played_at=evidence.played_at,
        recording_started_at=rec.recording_started_at,
    )


def disclosure_missing(state: CallState, detail: DisclosureDetail, now: datetime) -> DisclosureMissing:
    rec = _rec(state)
    assert state.recording_seen_at is not None
    waited = max(timedelta(0), now - state.recording_seen_at).total_seconds()
    return DisclosureMissing(
        **_about_recording(state, now, "disclosure.missing"),
        recording_started_at=rec.recording_started_at,
        detail=detail.value,  # type: ignore[arg-type]
        waited_s=round(waited, 3),
    )


def recording_archived(
    state: CallState,
    obj: ObjectRef,
    expires_at: datetime,
    now: datetime,
    policy_version: int | None = None,
    policy_known: int | None = None,
    sealed: tuple[str, str] | None = None,
) -> RecordingArchived:
    """`sealed`: the key id and the stored bytes' SHA-256 of a recording sealed under its client's key."""
    rec = _rec(state)
    return RecordingArchived(
        **_about_recording(state, now, "recording.archived"),
        object=obj,
        source_uri=rec.source_uri,
        recording_started_at=rec.recording_started_at,
        expires_at=expires_at,
        policy_version=policy_version,
        policy_known=policy_known,
        queue=state.queue,
        **_sealed(sealed),
    )


def _sealed(sealed: tuple[str, str] | None) -> dict[str, str]:
    return {"key_id": sealed[0], "stored_sha256": sealed[1]} if sealed else {}


def payment_secured(
    state: CallState,
    verdict: PaymentVerdict,
    parts: list[PausedPart],
    finding: AudioFinding,
    margin: timedelta,
    threshold_dbfs: float,
    now: datetime,
) -> PaymentSecured:
    """The proof that an archived recording's payments lay inside pauses, and what its paused audio
    measured."""
    rec = _rec(state)
    start = rec.recording_started_at

    def at(ms: int) -> datetime:
        return start + timedelta(milliseconds=ms)

    return PaymentSecured(
        **_about_recording(state, now, "payment.secured"),
        recording_started_at=start,
        recording_ended_at=rec.recording_ended_at,
        pauses=[
            PausedSpan(
                started_at=at(p.clock_start_ms),
                ended_at=at(p.clock_end_ms),
                mode=p.mode,
                audio_start_ms=max(0, p.start_ms),
                audio_end_ms=max(0, p.end_ms),
                resumed=p.resumed,
            )  # fmt: skip
            for p in parts
        ],
        windows=[PaymentWindow(started_at=w.start, ended_at=w.end or w.start) for w in verdict.windows],
        margin_s=margin.total_seconds(),
        audio_checked=finding.checked,
        loudest_paused_dbfs=finding.loudest_dbfs,
        silence_threshold_dbfs=threshold_dbfs,
        detail=f"{verdict.detail}; {finding.detail}",
    )


def recording_rejected(
    state: CallState, reason: Outcome, detail: str, source_deleted: bool, now: datetime
) -> RecordingRejected:
    rec = _rec(state)
    return RecordingRejected(
        **_about_recording(state, now, "recording.rejected", reason),
        reason=reason.value,  # type: ignore[arg-type]
        detail=detail,
        source_uri=rec.source_uri,
        source_deleted=source_deleted,
    )


def metadata_archived(
    state: CallState,
    obj: ObjectRef,
    call_started_at: datetime,
    expires_at: datetime,
    now: datetime,
    policy_version: int | None = None,
    policy_known: int | None = None,
    sealed: tuple[str, str] | None = None,
) -> MetadataArchived:
    return MetadataArchived(
        **_about(state, now, "metadata.archived", obj.key, obj.sha256),
        object=obj,
        call_started_at=call_started_at,
        expires_at=expires_at,
        policy_version=policy_version,
        policy_known=policy_known,
        queue=state.queue,
        **_sealed(sealed),
    )


def metadata_rewritten(
    tenant: str, call_id: str, obj: ObjectRef, doc: dict[str, Any], dating: dict[str, str], now: datetime,
    sealed: tuple[str, str] | None = None,
) -> MetadataArchived:  # fmt: skip
    """The archive event of a metadata document's new version written outside the call's processing (a
    rectification): the log names every version that holds data, so `audit verify-store` knows it."""
    known = dating.get("policy-known")
    version = dating.get("policy-version")
    return MetadataArchived(
        event_id=deterministic_id("metadata.archived", call_id, obj.key, obj.sha256),
        call_id=call_id,
        tenant=tenant,
        occurred_at=now,
        object=obj,
        call_started_at=doc["started_at"],
        expires_at=doc["expires_at"],
        policy_version=int(version) if version else None,
        policy_known=int(known) if known else None,
        queue=dating.get("queue"),
        **_sealed(sealed),
    )


def object_sealed(
    tenant: str, call_id: str, obj: ObjectRef, replaced: list[str], stored_sha256: str, key_id: str,
    now: datetime,
) -> ObjectSealed:  # fmt: skip
    """The proof that an object archived unsealed was sealed in place; its id from the sealed version, so
    a run resumed after a crash proves it again with the same id."""
    return ObjectSealed(
        event_id=deterministic_id("object.sealed", obj.bucket, obj.key, obj.version_id or "null"),
        call_id=call_id,
        tenant=tenant,
        occurred_at=now,
        object=obj,
        replaced_version_ids=replaced,
        stored_sha256=stored_sha256,
        key_id=key_id,
    )


def object_deleted(obj: StoredObject, deleted_at: datetime, reason: DeletionReason) -> ObjectDeleted:
    """The proof that every version of an archived object is gone.

    Its id comes from the object's identity and content, so a pass repeated after
    a crash proves the same deletion with the same id.
    """
    kind = data_class(obj.retention_class)
    type_ = kind.deleted_event
    return kind.deleted_model(
        event_id=deterministic_id(type_, obj.call_id, obj.bucket, obj.key, obj.sha256),
        call_id=obj.call_id,
        tenant=obj.tenant,
        occurred_at=deleted_at,
        object=ObjectRef(bucket=obj.bucket, key=obj.key, sha256=obj.sha256, size_bytes=obj.size_bytes),
        due_at=obj.due_at,
        deleted_at=deleted_at,
        lateness_s=round(lateness_s(obj.due_at, deleted_at), 3),
        reason=reason,
        versions_deleted=len(obj.versions),
        policy_version=obj.policy_version,
    )


def deletion_refused(
    obj: StoredObject, answer: str, first_refused_at: datetime, passes: int
) -> DeletionRefused:
    """The store refused to delete a due object; one id per object and streak (its first refusal)."""
    return DeletionRefused(
        event_id=deterministic_id("deletion.refused", obj.bucket, obj.key, first_refused_at.isoformat()),
        call_id=obj.call_id,
        tenant=obj.tenant,
        occurred_at=first_refused_at,
        bucket=obj.bucket,
        key=obj.key,
        version_id=obj.versions[0] if obj.versions else "null",
        retention_class=str(obj.retention_class),
        due_at=obj.due_at,
        answer=answer,
        first_refused_at=first_refused_at,
        passes=passes,
    )


def legal_hold_event(
    command: LegalHoldPlace | LegalHoldRelease, tenant: str, now: datetime
) -> LegalHoldPlaced | LegalHoldReleased:
    """What a hold command did; one event per command, whatever the redeliveries."""
    kind = LegalHoldPlaced if isinstance(command, LegalHoldPlace) else LegalHoldReleased
    type_ = "legal_hold.placed" if kind is LegalHoldPlaced else "legal_hold.released"
    return kind(
        event_id=deterministic_id(type_, command.call_id, str(command.event_id)),
        call_id=command.call_id,
        tenant=tenant,
        occurred_at=now,
        command_id=command.event_id,
        requested_by=command.requested_by,
        on_behalf_of=command.on_behalf_of,
        reason=command.reason,
    )


def recording_accessed(
    grant: Grant,
    tenant: str,
    call_id: str,
    what: Want,
    purpose: str,
    request_id: str,
    now: datetime,
    client_request_id: str | None = None,
    site_country: str | None = None,
) -> RecordingAccessed:
    """One access through the API; callvault's own request id makes it one event however often
    it is resent (a client's id never does: it could collide with another's)."""
    return RecordingAccessed(
        event_id=deterministic_id("recording.accessed", call_id, request_id),
        call_id=call_id,
        tenant=tenant,
        occurred_at=now,
        accessed_by=grant.subject,
        role=grant.role,
        purpose=purpose,
        what=what.value,  # type: ignore[arg-type]
        token_id=grant.token_id,
        granted_tenants=sorted(grant.tenants),
        request_id=request_id,
        client_request_id=client_request_id,
        site=grant.site,
        site_country=site_country,
    )


def access_refused(
    grant: Grant,
    tenant: str,
    call_id: str | None,
    what: str,
    reason: str,
    request_id: str,
    now: datetime,
    site_country: str | None,
) -> RecordingAccessRefused:
    """A read refused for the reader's site: one event per API request."""
    return RecordingAccessRefused(
        event_id=deterministic_id("recording.access_refused", tenant, call_id or "", request_id),
        call_id=call_id,
        tenant=tenant,
        occurred_at=now,
        what=what,  # type: ignore[arg-type]
        accessed_by=grant.subject,
        role=grant.role,
        site=grant.site,
        site_country=site_country,
        reason=reason,
        token_id=grant.token_id,
        request_id=request_id,
    )


def _about_request(record: RequestRecord, type_: str, now: datetime) -> dict[str, Any]:
    """The fields every event of a subject request shares; one id per request and type."""
    return {
        "event_id": deterministic_id(type_, record.request_id),
        "subject": record.subject,
        "tenant": record.tenant,
        "occurred_at": now,
        "request_id": record.request_id,
    }


def subject_request_received(record: RequestRecord, now: datetime) -> SubjectRequestReceived:
    return SubjectRequestReceived(
        **_about_request(record, "subject.request_received", now),
        kind=record.kind,
        received_at=record.received_at,
        due_at=record.due_at,
        requested_by=record.requested_by,
        on_behalf_of=record.on_behalf_of,
        verified_by=record.verified_by,
        reason=record.reason,
        identity_pending=record.identity_pending,
    )


def subject_identity_verified(
    record: RequestRecord, requested_by: str, now: datetime
) -> SubjectIdentityVerified:
    """The identity check done; the answer's month runs from it (one id per request)."""
    assert record.identity_verified_at is not None
    return SubjectIdentityVerified(
        **_about_request(record, "subject.identity_verified", now),
        verified_by=record.verified_by or requested_by,
        verified_at=record.identity_verified_at,
        due_at=record.due_at,
        requested_by=requested_by,
    )


def subject_forwarded(record: RequestRecord, now: datetime) -> SubjectForwarded:
    assert record.forwarded_to is not None
    return SubjectForwarded(
        **_about_request(record, "subject.forwarded", now), kind=record.kind, contact=record.forwarded_to
    )


def export_delivered(
    record: RequestRecord, export_uri: str, delivered_to: str, sha256: str, size: int, now: datetime
) -> SubjectExportDelivered:
    return SubjectExportDelivered(
        **_about_request(record, "subject.export_delivered", now),
        export_uri=export_uri, delivered_to=delivered_to, sha256=sha256, size_bytes=size,
    )  # fmt: skip


def subject_extension_notified(record: RequestRecord, now: datetime) -> SubjectExtensionNotified:
    assert record.extension_notified_on is not None
    return SubjectExtensionNotified(
        **_about_request(record, "subject.extension_notified", now),
        notified_on=record.extension_notified_on,
        due_at=record.due_at,
    )


def subject_request_extended(record: RequestRecord, now: datetime) -> SubjectRequestExtended:
    return SubjectRequestExtended(
        **_about_request(record, "subject.request_extended", now),
        due_at=record.due_at,
        requested_by=record.extended_by or record.requested_by,
        on_behalf_of=record.extended_on_behalf_of if record.extended_by else record.on_behalf_of,
        reason=record.extended_reason or "",
    )


OUTCOMES: dict[str, type[SubjectEventBase]] = {
    "rectify": SubjectRectified,
    "access": SubjectAccessFulfilled,
    "erase": SubjectErased,
    "restrict": SubjectRestricted,
    "unrestrict": SubjectUnrestricted,
    "object": SubjectObjected,
}


def subject_outcome(record: RequestRecord, now: datetime, **fields: Any) -> SubjectEventBase:
    """How the request was answered, with its counts: the event that closes it."""
    kind = OUTCOMES[record.kind]
    type_ = str(kind.model_fields["type"].default)
    return kind(**_about_request(record, type_, now), instructed_by=record.instructed_by, **fields)


def export_deleted(
    *, subject: str, tenant: str, request_id: str, uri: str, due_at: datetime, deleted_at: datetime
) -> SubjectExportDeleted:
    return SubjectExportDeleted(
        event_id=deterministic_id("subject.export_deleted", request_id, uri),
        subject=subject,
        tenant=tenant,
        occurred_at=deleted_at,
        request_id=request_id,
        export_uri=uri,
        due_at=due_at,
        deleted_at=deleted_at,
    )


def export_accessed(
    record: RequestRecord,
    *,
    accessed_by: str,
    role: str | None,
    purpose: str,
    link_expires_at: datetime,
    handout_id: str,
    api_request_id: str | None,
    now: datetime,
) -> SubjectExportAccessed:
    """One hand-out of an export's link; `handout_id` (the API request's id, or the command's
    own) makes it one event however often it is resent."""
    outcome = record.outcome or {}
    return SubjectExportAccessed(
        event_id=deterministic_id("subject.export_accessed", record.request_id, handout_id),
        subject=record.subject,
        tenant=record.tenant,
        occurred_at=now,
        request_id=uuid.UUID(record.request_id),
        calls=int(outcome.get("calls", 0)),
        recordings=int(outcome.get("recordings", 0)),
        metadata=int(outcome.get("metadata", 0)),
        accessed_by=accessed_by,
        role=role,
        purpose=purpose,
        export_uri=str(outcome.get("export_uri", "")),
        link_expires_at=link_expires_at,
        api_request_id=api_request_id,
    )


def policy_cancelled(replaced_by: PolicyVersion, cancelled: int) -> PolicyCancelled:
    """The proof that a pending version was cancelled; one id per (tenant, version cancelled)."""
    return PolicyCancelled(
        event_id=deterministic_id("policy.cancelled", replaced_by.tenant, str(cancelled)),
        tenant=replaced_by.tenant,
        occurred_at=replaced_by.changed_at,
        version=cancelled,
        effective_at=replaced_by.effective_at,
        replaced_by=replaced_by.version,
        cancelled_by=replaced_by.changed_by,
        reason=replaced_by.reason,
    )


def policy_changed(version: PolicyVersion) -> PolicyChanged:
    """The proof of a new client-policy version; one id per (tenant, version), however often sent."""
    return PolicyChanged(
        event_id=deterministic_id("policy.changed", version.tenant, str(version.version)),
        tenant=version.tenant,
        occurred_at=version.changed_at,
        version=version.version,
        changes=version.change,
        changed_by=version.changed_by,
        reason=version.reason,
        effective_at=version.effective_at,
        policy=version.model_dump(
            mode="json", include={"tenant_rules", "queues", "allowed_sites", "role", "contact"}
        ),
    )
