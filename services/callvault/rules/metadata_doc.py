"""The archived metadata of a call: what the privacy statement allows to keep 6 months.

Date and time, duration, who handled it, the disclosure evidence and the
recording's fate. Participants appear only as pseudonyms. The document is
canonical JSON, so the same facts give the same bytes and the same SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from callvault.contract.fields import format_rfc3339
from callvault.rules.call_state import CallState, Outcome, paused_parts
from callvault.rules.retention import RetentionClass, RetentionPolicy

METADATA_SCHEMA = "callvault.metadata/v1"


def _ts(moment: datetime | None) -> str | None:
    return None if moment is None else format_rfc3339(moment)


def metadata_document(
    state: CallState,
    started_at: datetime,
    policy: RetentionPolicy,
    recording_key: str | None,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """The call's metadata document; `expires_at` is its own due date (else the policy's)."""
    started = state.started
    rec = state.recording
    verdict = state.verdict() if rec is not None else None
    evidence = verdict.evidence if verdict is not None else None
    doc: dict[str, Any] = {
        "schema": METADATA_SCHEMA,
        "call_id": state.call_id,
        "tenant": state.tenant,
        "started_at": _ts(started_at),
        "start_reported": started is not None,
        "ended_at": _ts(state.ended.occurred_at) if state.ended else None,
        "duration_s": state.ended.duration_s if state.ended else None,
        "direction": started.direction if started else None,
        "agent_id": started.agent_id if started else None,
        "language": started.language if started else None,
        "participants": ({"caller": started.caller, "callee": started.callee} if started else None),
        "disclosure": None,
        "recording": None,
        "expires_at": _ts(expires_at or policy.expires_at(RetentionClass.METADATA, started_at)),
    }
    if started is not None and started.agent is not None:  # the agent as a subject, for restrictions
        doc["agent_pseudonym"] = started.agent
    if rec is not None and verdict is not None:
        doc["disclosure"] = {
            "verdict": verdict.detail.value,
            "prompt_id": evidence.prompt_id if evidence else None,
            "played_at": _ts(evidence.played_at) if evidence else None,
            "event_id": evidence.event_id if evidence else None,
            "reported": len(state.disclosures),
        }
        archived = state.recording_outcome is Outcome.ARCHIVED
        doc["recording"] = {
            "outcome": state.recording_outcome.value if state.recording_outcome else None,
            "key": recording_key if archived else None,
            "sha256": rec.sha256,
            "size_bytes": rec.size_bytes,
            "content_type": rec.content_type,
            "started_at": _ts(rec.recording_started_at),
            "ended_at": _ts(rec.recording_ended_at),
            "expires_at": (
                _ts(
                    state.recording_expires_at
                    or policy.expires_at(RetentionClass.RECORDING, rec.recording_started_at)
                )
                if archived
                else None
            ),
        }
        if state.recording_erased_at is not None:
            doc["recording"]["erased_at"] = _ts(state.recording_erased_at)
        if state.pauses:  # where the recording was paused, for the coaches' timeline (issue 28)
            doc["recording"]["pauses"] = [
                {
                    "start_ms": max(0, p.start_ms),
                    "end_ms": max(0, p.end_ms),
                    "mode": p.mode,
                    "resumed": p.resumed,
                }
                for p in paused_parts(state)
            ]
    if state.objected is not None:
        doc["objected_at"] = _ts(state.objected.occurred_at)
    return doc


def canonical_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
