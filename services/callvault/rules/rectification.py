"""Rectification (GDPR art. 16): a subject's correction or completion of a call's metadata. Pure.

What may be corrected is what the platform told of the call and may be wrong about the subject: who took
part (`participants.caller`, `participants.callee`, a number the DPO's tools turn into its pseudonym
first), the agent, the queue, the language. Never the disclosure evidence, the recording's hash or the
audio: they are evidence, and a correction of them would be a forgery. A completion adds the subject's
own statement beside the data (`--statement`) and changes nothing of it.

The document keeps a list of what was rectified, when and by which request, never the previous value:
the old version of the document is deleted, and the audit log keeps only a digest of what it said.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from callvault.contract.fields import format_rfc3339

RECTIFIABLE = ("participants.caller", "participants.callee", "agent_id", "queue", "language")
PARTICIPANT_FIELDS = ("participants.caller", "participants.callee")


class RectificationRefused(ValueError):
    """A rectification the rules do not allow; the message says why."""


def check_field(field: str) -> None:
    if field not in RECTIFIABLE:
        raise RectificationRefused(
            f"{field!r} cannot be rectified; what can: {', '.join(RECTIFIABLE)} (the disclosure evidence, "
            "the recording's hash and the audio are evidence and stay as recorded)"
        )


def participants_of(doc: dict[str, Any]) -> set[str]:
    return {p for p in (doc.get("participants") or {}).values() if p}


def rectified(
    doc: dict[str, Any],
    *,
    subject: str,
    field: str,
    value: str | None,
    statement: str | None,
    request_id: str,
    at: datetime,
) -> tuple[dict[str, Any], Any]:
    """The document as rectified, and the value it held before (None for a completion).

    Only a participant of the call may have it rectified. A participant's new value is a pseudonym.
    """
    check_field(field)
    if (value is None) == (statement is None):
        raise RectificationRefused("give either a corrected value (--value) or a statement (--statement)")
    if subject not in participants_of(doc):
        raise RectificationRefused(f"the subject took no part in call {doc.get('call_id')!r}")
    fresh = copy.deepcopy(doc)
    note: dict[str, Any] = {"field": field, "at": format_rfc3339(at), "request_id": request_id}
    previous = None
    if value is not None:
        section, _, name = field.rpartition(".")
        target = fresh.setdefault(section, {}) if section else fresh
        if target is None:
            target = fresh[section] = {}
        previous = target.get(name)
        target[name] = value
        note["kind"] = "corrected"
    else:
        note |= {"kind": "completed", "statement": statement}
    fresh["rectifications"] = [*(doc.get("rectifications") or []), note]
    return fresh, previous
