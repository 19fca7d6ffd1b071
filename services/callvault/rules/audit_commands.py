"""Which legal holds and subject requests a verified command caused: the replay's check of who decided.

A hold or a subject request is the DPO's act, and `commands` accepts only what a
known key signed (`rules.command_signature`). The worker proves each command it
takes with `command.accepted`, carrying the command as it was sent, signature
included, so an auditor holding the public keys (`CALLVAULT_COMMAND_KEYS`)
checks the signature again. A hold, its release or a subject request's events
whose command no verified `command.accepted` proves are `unverified_command_effect`:
written to `lifecycle` by something other than a worker obeying a signed
command. Effects older than the first `command.accepted` in the log come from
before workers proved their commands, and are not judged. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from callvault.rules.command_signature import Verified, check_signature

# The events a command causes, and the field naming that command's `event_id`.
EFFECTS: dict[str, str] = {
    "legal_hold.placed": "command_id",
    "legal_hold.released": "command_id",
    "subject.request_received": "request_id",
    "subject.access_fulfilled": "request_id",
    "subject.erased": "request_id",
    "subject.restricted": "request_id",
    "subject.unrestricted": "request_id",
    "subject.objected": "request_id",
    "subject.forwarded": "request_id",
    "subject.rectified": "request_id",
}

Commands = dict[str, dict[str, Any]]  # command id -> {"accepted": {...}, "effects": [[event_id, kind, ...]]}


def note(commands: Commands, event: Mapping[str, Any], kind: str) -> None:
    """Keep what the check needs of a `command.accepted` or of an effect of a command."""
    if kind == "command.accepted":
        entry = commands.setdefault(str(event.get("command_id")), {})
        entry["accepted"] = {k: event.get(k) for k in ("event_id", "occurred_at", "command")}
    elif kind in EFFECTS:
        entry = commands.setdefault(str(event.get(EFFECTS[kind])), {})
        effect = [str(event.get("event_id")), kind, str(event.get("tenant")), str(event.get("call_id") or "")]
        entry.setdefault("effects", []).append([*effect, str(event.get("occurred_at"))])


def merge(shares: Iterable[Commands]) -> Commands:
    """Commands from several shares: a command and its effects may lie on different partitions."""
    merged: Commands = {}
    for share in shares:
        for command_id, entry in share.items():
            into = merged.setdefault(command_id, {})
            if "accepted" in entry:
                into["accepted"] = entry["accepted"]
            into.setdefault("effects", []).extend(entry.get("effects", []))
    return merged


def unverified(commands: Commands, keys: Mapping[str, str]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(call id, tenant, sentence, evidence) of each effect no verified command proves."""
    starts = [e["accepted"]["occurred_at"] for e in commands.values() if "accepted" in e]
    if not starts:
        return []  # no worker proved its commands in this log: nothing to judge against
    since = min(str(s) for s in starts)
    found = []
    for command_id, entry in sorted(commands.items()):
        why = _why_unproven(command_id, entry.get("accepted"), keys)
        if why is None:
            continue
        for event_id, kind, tenant, call_id, occurred_at in entry.get("effects", []):
            if occurred_at >= since:
                detail = f"a {kind} for command {command_id}, which {why}"
                found.append((call_id, tenant, detail, (event_id,)))
    return found


def _why_unproven(command_id: str, accepted: Mapping[str, Any] | None, keys: Mapping[str, str]) -> str | None:
    if accepted is None:
        return "no command.accepted in the log proves"
    command = accepted.get("command")
    if not isinstance(command, dict) or str(command.get("event_id")) != command_id:
        return f"command.accepted {accepted.get('event_id')} does not carry"
    verdict = check_signature(command, keys)
    if isinstance(verdict, Verified):
        return None
    return f"was not signed by a key the auditor holds ({verdict.sentence})"
