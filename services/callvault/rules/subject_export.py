"""What an access request's export holds: the subject's data and nothing of anyone else's. Pure.

The export is a ZIP (portable, GDPR art. 20): `manifest.json`, one
`calls/{call_id}.json` per call (the archived metadata document) and
`recordings/{call_id}.{ext}` for each recording still kept. A call has other
participants; their pseudonyms are personal data of someone else, so the copy
says only which side of the call the subject was on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from callvault.contract.fields import format_rfc3339
from callvault.contract.portable import PortableCall, PortableRecording

EXPORT_FORMAT = "callvault.subject-export/v1"
PORTABLE_ABOUT = (
    "Your calls with this organisation that callvault still keeps, to take elsewhere (GDPR art. 20): "
    "each call as calls/*.json (schema: https://callvault.dev/schemas/v1/exports/portable.call.json) and "
    "its recording while it is kept (recordings/*). Every file is listed here with its SHA-256."
)


def subject_view(doc: dict[str, Any], subject: str) -> dict[str, Any]:
    """The metadata document as the subject receives it: other participants left out."""
    view = dict(doc)
    participants = doc.get("participants") or {}
    roles = sorted(role for role, pseudonym in participants.items() if pseudonym == subject)
    if doc.get("agent_pseudonym") == subject:
        roles.append("agent")
    view["participants"] = {"subject_was": roles}
    view.pop("agent_pseudonym", None)
    return view


def manifest(
    *,
    request_id: str,
    tenant: str,
    subject: str,
    generated_at: datetime,
    expires_at: datetime,
    calls: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "request_id": request_id,
        "tenant": tenant,
        "subject": subject,
        "generated_at": format_rfc3339(generated_at),
        "expires_at": format_rfc3339(expires_at),
        "calls": calls,
        "about": (
            "Your calls with this organisation that callvault still keeps: each call's metadata "
            "(calls/*.json, JSON) and its recording while the 1-month retention lasts "
            "(recordings/*). Participants appear as pseudonyms; yours is `subject`."
        ),
    }


def portable_call(doc: dict[str, Any], subject: str, recording_file: str | None) -> PortableCall:
    """The call as the portable export carries it: what the subject provided or what was observed of them
    (times, direction, language, their side, the disclosure, their recording), no one else's data."""
    participants = doc.get("participants") or {}
    sides = sorted(role for role, pseudonym in participants.items() if pseudonym == subject)
    rec = doc.get("recording") or None
    disclosure = doc.get("disclosure") or {}
    return PortableCall(
        call_id=doc["call_id"],
        tenant=doc["tenant"],
        started_at=doc.get("started_at"),
        ended_at=doc.get("ended_at"),
        duration_s=doc.get("duration_s"),
        direction=doc.get("direction"),
        language=doc.get("language"),
        your_side=[s for s in sides if s in ("caller", "callee")],  # type: ignore[misc]
        recording_disclosed_at=disclosure.get("played_at"),
        recording=PortableRecording(
            file=recording_file, sha256=rec["sha256"], size_bytes=rec["size_bytes"],
            content_type=rec["content_type"], started_at=rec.get("started_at"), ended_at=rec.get("ended_at"),
        ) if rec and rec.get("sha256") else None,
    )  # fmt: skip
