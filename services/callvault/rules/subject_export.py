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

EXPORT_FORMAT = "callvault.subject-export/v1"


def subject_view(doc: dict[str, Any], subject: str) -> dict[str, Any]:
    """The metadata document as the subject receives it: other participants left out."""
    view = dict(doc)
    participants = doc.get("participants") or {}
    roles = sorted(role for role, pseudonym in participants.items() if pseudonym == subject)
    view["participants"] = {"subject_was": roles}
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
