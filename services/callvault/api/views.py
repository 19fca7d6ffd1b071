"""What the API shows of an archived metadata document, and what it never shows.

Participants are left out of every answer: a coach needs the agent, the time and
the disclosure evidence, not who called (even as a pseudonym). Pure functions
of the document, the restriction list and the time.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field

from callvault.rules.access import CallFacts, days_left

NO_RECORDING = "no_recording"


class DisclosureView(BaseModel):
    verdict: str = Field(description="compliant, or why not")
    prompt_id: str | None
    played_at: datetime | None
    event_id: str | None = Field(description="the disclosure.played event that proves it")


class PauseView(BaseModel):
    """Additive (2026-12-06): a span where the recording was paused, in milliseconds of its audio."""

    start_ms: int
    end_ms: int
    mode: str = Field(description="silence: in the audio, silent; skip: left out of the audio")
    resumed: bool = Field(True, description="false: never resumed, it ran to the recording's end")


class RecordingView(BaseModel):
    outcome: str | None
    content_type: str | None
    size_bytes: int | None
    sha256: str | None
    started_at: datetime | None
    ended_at: datetime | None
    expires_at: datetime | None
    days_left: int | None = Field(description="whole days before the recording is erased")
    pauses: list[PauseView] = Field(default_factory=list, description="where the recording was paused")


class CallSummary(BaseModel):
    call_id: str
    tenant: str
    day: date = Field(description="UTC date of the call's start: part of the call's address")
    started_at: datetime | None
    restricted: bool = Field(False, description="a participant restricted processing; details withheld")
    held: bool = Field(
        False, description="past its retention, kept by a legal hold; details withheld (additive)"
    )
    duration_s: float | None = None
    direction: str | None = None
    agent_id: str | None = None
    language: str | None = None
    outcome: str | None = Field(None, description="the recording's outcome, or no_recording")
    disclosure_verdict: str | None = None
    recording_days_left: int | None = None
    metadata_days_left: int | None = None
    href: str


class CallDetail(CallSummary):
    ended_at: datetime | None = None
    metadata_expires_at: datetime | None = None
    objected_at: datetime | None = None
    disclosure: DisclosureView | None = None
    recording: RecordingView | None = None
    audio_href: str | None = None


def _when(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def participants(doc: dict[str, Any]) -> set[str]:
    found = doc.get("participants") or {}
    return {p for p in found.values() if isinstance(p, str)}


def is_restricted(doc: dict[str, Any], restricted: frozenset[str]) -> bool:
    """Whether a participant of the call, or its agent, has restricted the processing of their data."""
    subjects = participants(doc) | ({doc["agent_pseudonym"]} if doc.get("agent_pseudonym") else set())
    return bool(restricted) and not subjects.isdisjoint(restricted)


def outcome(doc: dict[str, Any]) -> str:
    rec = doc.get("recording") or {}
    return str(rec.get("outcome") or NO_RECORDING)


def facts(doc: dict[str, Any], restricted: frozenset[str]) -> CallFacts:
    rec = doc.get("recording") or {}
    expires = _when(doc.get("expires_at"))
    if expires is None:
        raise ValueError(f"metadata of call {doc.get('call_id')!r} has no expires_at")
    return CallFacts(
        tenant=str(doc["tenant"]),
        metadata_expires_at=expires,
        recording_archived=rec.get("outcome") == "archived" and bool(rec.get("key")),
        recording_expires_at=_when(rec.get("expires_at")),
        recording_outcome=rec.get("outcome"),
        restricted=is_restricted(doc, restricted),
    )


def call_href(tenant: str, day: date, call_id: str) -> str:
    return f"/api/v1/calls/{tenant}/{day.isoformat()}/{quote(call_id, safe='')}"


def metadata_expires_at(doc: dict[str, Any]) -> datetime | None:
    return _when(doc.get("expires_at"))


def held_summary(tenant: str, day: date, call_id: str) -> CallSummary:
    """A call past its retention that a legal hold keeps: that it exists, nothing of what it holds."""
    return CallSummary(
        call_id=call_id,
        tenant=tenant,
        day=day,
        started_at=None,
        held=True,
        href=call_href(tenant, day, call_id),
    )


def summary(doc: dict[str, Any], day: date, restricted: frozenset[str], now: datetime) -> CallSummary:
    call_id, tenant = str(doc["call_id"]), str(doc["tenant"])
    base = {
        "call_id": call_id,
        "tenant": tenant,
        "day": day,
        "started_at": _when(doc.get("started_at")),
        "href": call_href(tenant, day, call_id),
    }
    if is_restricted(doc, restricted):
        return CallSummary(**base, restricted=True)
    rec = doc.get("recording") or {}
    rec_expires = _when(rec.get("expires_at"))
    meta_expires = _when(doc.get("expires_at"))
    return CallSummary(
        **base,
        duration_s=doc.get("duration_s"),
        direction=doc.get("direction"),
        agent_id=doc.get("agent_id"),
        language=doc.get("language"),
        outcome=outcome(doc),
        disclosure_verdict=(doc.get("disclosure") or {}).get("verdict"),
        recording_days_left=days_left(rec_expires, now) if rec_expires else None,
        metadata_days_left=days_left(meta_expires, now) if meta_expires else None,
    )


def detail(doc: dict[str, Any], day: date, now: datetime) -> CallDetail:
    """The full view; only reached once access was allowed, so never for a restricted call but by the DPO."""
    head = summary(doc, day, frozenset(), now)
    disclosure = doc.get("disclosure")
    rec = doc.get("recording")
    rec_view = None
    if rec:
        rec_expires = _when(rec.get("expires_at"))
        rec_view = RecordingView(
            outcome=rec.get("outcome"),
            content_type=rec.get("content_type"),
            size_bytes=rec.get("size_bytes"),
            sha256=rec.get("sha256"),
            started_at=_when(rec.get("started_at")),
            ended_at=_when(rec.get("ended_at")),
            expires_at=rec_expires,
            days_left=days_left(rec_expires, now) if rec_expires else None,
            pauses=[PauseView.model_validate(p) for p in rec.get("pauses") or [] if isinstance(p, dict)],
        )
    archived = bool(rec and rec.get("outcome") == "archived" and rec.get("key"))
    return CallDetail(
        **head.model_dump(),
        ended_at=_when(doc.get("ended_at")),
        metadata_expires_at=_when(doc.get("expires_at")),
        objected_at=_when(doc.get("objected_at")),
        disclosure=(
            DisclosureView(
                verdict=str(disclosure.get("verdict")),
                prompt_id=disclosure.get("prompt_id"),
                played_at=_when(disclosure.get("played_at")),
                event_id=disclosure.get("event_id"),
            )
            if disclosure
            else None
        ),
        recording=rec_view,
        audio_href=f"{head.href}/audio" if archived else None,
    )
