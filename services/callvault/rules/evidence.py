"""The lifecycle events that prove each outcome, with deterministic ids.

An id is derived from what the event is about (the call, the recording event it
answers, the object's content), never from when it was emitted: a replay of the
same input emits the same ids and a consumer drops the repeats.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from callvault.contract.base import deterministic_id
from callvault.contract.lifecycle import (
    DisclosureMissing,
    DisclosureVerified,
    MetadataArchived,
    ObjectRef,
    RecordingArchived,
    RecordingRejected,
)
from callvault.rules.call_state import CallState, Outcome
from callvault.rules.disclosure import DisclosureDetail, DisclosureFact


def _rec(state: CallState):  # noqa: ANN202 - narrow Optional for the builders
    assert state.recording is not None
    return state.recording


def disclosure_verified(state: CallState, evidence: DisclosureFact, now: datetime) -> DisclosureVerified:
    rec = _rec(state)
    return DisclosureVerified(
        event_id=deterministic_id("disclosure.verified", state.call_id, str(rec.event_id)),
        call_id=state.call_id,
        tenant=state.tenant,
        occurred_at=now,
        recording_event_id=rec.event_id,
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
        event_id=deterministic_id("disclosure.missing", state.call_id, str(rec.event_id)),
        call_id=state.call_id,
        tenant=state.tenant,
        occurred_at=now,
        recording_event_id=rec.event_id,
        recording_started_at=rec.recording_started_at,
        detail=detail.value,  # type: ignore[arg-type]
        waited_s=round(waited, 3),
    )


def recording_archived(
    state: CallState, obj: ObjectRef, expires_at: datetime, now: datetime
) -> RecordingArchived:
    rec = _rec(state)
    return RecordingArchived(
        event_id=deterministic_id("recording.archived", state.call_id, str(rec.event_id)),
        call_id=state.call_id,
        tenant=state.tenant,
        occurred_at=now,
        recording_event_id=rec.event_id,
        object=obj,
        source_uri=rec.source_uri,
        recording_started_at=rec.recording_started_at,
        expires_at=expires_at,
    )


def recording_rejected(
    state: CallState, reason: Outcome, detail: str, source_deleted: bool, now: datetime
) -> RecordingRejected:
    rec = _rec(state)
    return RecordingRejected(
        event_id=deterministic_id("recording.rejected", state.call_id, str(rec.event_id), reason),
        call_id=state.call_id,
        tenant=state.tenant,
        occurred_at=now,
        recording_event_id=rec.event_id,
        reason=reason.value,  # type: ignore[arg-type]
        detail=detail,
        source_uri=rec.source_uri,
        source_deleted=source_deleted,
    )


def metadata_archived(
    state: CallState, obj: ObjectRef, call_started_at: datetime, expires_at: datetime, now: datetime
) -> MetadataArchived:
    return MetadataArchived(
        event_id=deterministic_id("metadata.archived", state.call_id, obj.key, obj.sha256),
        call_id=state.call_id,
        tenant=state.tenant,
        occurred_at=now,
        object=obj,
        call_started_at=call_started_at,
        expires_at=expires_at,
    )
