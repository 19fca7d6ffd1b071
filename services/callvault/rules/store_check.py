"""The log's word checked against the store: what `callvault audit verify-store` flags. Pure.

The replay trusts the log; this trusts neither. Every key found in the
archive buckets is compared with what the lifecycle log says happened to it:

- `past_due_in_store`: a version of an object past its due date (plus the
  tolerance) is still in the store, and no legal hold keeps its call;
- `archived_without_event`: the store holds data the log never archived
  (written around callvault, or an event lost);
- `deleted_but_present`: the log proves a deletion, yet a version is still there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from callvault.rules.audit_replay import ARCHIVED, DELETED
from callvault.rules.call_ref import call_ref
from callvault.rules.purge import Due


@dataclass(frozen=True, slots=True)
class FoundKey:
    """One key in an archive bucket, as the store shows it."""

    bucket: str
    key: str
    tenant: str
    call_id: str
    versions: int  # versions and delete markers left
    has_data: bool  # a version holding bytes is left (current, or hidden behind a marker)
    day_due: Due  # the key's day judged at (as_of - tolerance)
    due_at: datetime | None = None  # read from the object when the day alone does not decide


@dataclass(frozen=True, slots=True)
class StoreFinding:
    rule: str
    bucket: str
    key: str
    tenant: str
    call_id: str
    detail: str
    evidence: tuple[str, ...] = ()  # lifecycle event ids


@dataclass
class LogView:
    """Per (bucket, key): the event that archived it and the one that proved its deletion."""

    archived: dict[tuple[str, str], str]
    deleted: dict[tuple[str, str], str]


def log_view(events: Iterable[dict[str, Any]]) -> LogView:
    view = LogView({}, {})
    for event in events:
        kind = event.get("type")
        obj = event.get("object") or {}
        where = (str(obj.get("bucket", "")), str(obj.get("key", "")))
        if kind in ARCHIVED:
            view.archived[where] = str(event.get("event_id"))
        elif kind in DELETED:
            view.deleted[where] = str(event.get("event_id"))
    return view


def is_past_due(found: FoundKey, as_of: datetime, tolerance: timedelta) -> bool:
    if found.day_due is Due.ALL:
        return True
    if found.day_due is Due.SOME and found.due_at is not None:
        return found.due_at + tolerance <= as_of
    return False


def check_store(
    keys: Iterable[FoundKey], log: LogView, held: set[str], as_of: datetime, tolerance: timedelta
) -> list[StoreFinding]:
    """`held`: the calls under a legal hold, `{tenant}/{call_id}`."""
    findings: list[StoreFinding] = []
    for found in keys:
        where = (found.bucket, found.key)
        if (
            found.versions
            and call_ref(found.tenant, found.call_id) not in held
            and is_past_due(found, as_of, tolerance)
        ):
            due = found.due_at.isoformat() if found.due_at else "its day's retention"
            detail = f"{found.versions} version(s) left past {due}, and no legal hold"
            findings.append(_finding(found, "past_due_in_store", detail))
        if found.has_data and where not in log.archived:
            detail = "data in the store that no archive event accounts for"
            findings.append(_finding(found, "archived_without_event", detail))
        if found.versions and where in log.deleted:
            detail = f"the log proves its deletion, yet {found.versions} version(s) are left"
            findings.append(_finding(found, "deleted_but_present", detail, log.deleted[where]))
    return findings


def _finding(found: FoundKey, rule: str, detail: str, *evidence: str) -> StoreFinding:
    return StoreFinding(rule, found.bucket, found.key, found.tenant, found.call_id, detail, evidence)
