"""The log's word checked against the store: what `callvault audit verify-store` flags. Pure.

The replay trusts the log; this trusts neither. Every key found in the
archive buckets is compared with what the lifecycle log says happened to it:

- `past_due_in_store`: a version of an object past its due date (plus the
  tolerance) is still in the store, and no legal hold keeps its call;
- `archived_without_event`: the store holds data the log never archived
  (written around callvault, or an event lost);
- `deleted_but_present`: the log proves a deletion, yet a version is still there;
- `missing_from_store`: the log says an object was archived and never proves
  its deletion, yet the store has no version of it (deleted behind callvault's
  back, or by a lifecycle rule that leaves no proof);
- `version_not_archived`: a version holds bytes that no archive event of its
  key names (overwritten behind callvault's back): neither its version id nor
  its SHA-256 is one the log recorded;
- `plaintext_not_proven` (with `--decrypt`): the newest version does not open
  under its client's key (a segment altered, the key destroyed) or its
  plaintext is not the SHA-256 it was archived with.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from callvault.rules.call_ref import call_ref
from callvault.rules.data_classes import archived_events, deleted_events
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
    # The versions holding bytes that the log does not name by id, each with the SHA-256 of its bytes
    # as the walk read them (None: gone by then). Read only by a walk given the log's view.
    unnamed_versions: tuple[tuple[str, str | None], ...] = ()
    # With --decrypt: whether the newest data version is stored sealed, and what is wrong with its
    # plaintext (None: it opens and has its SHA-256). None: not opened.
    opened: tuple[bool, str | None] | None = None


@dataclass(frozen=True, slots=True)
class StoreFinding:
    rule: str
    bucket: str
    key: str
    tenant: str
    call_id: str
    detail: str
    evidence: tuple[str, ...] = ()  # lifecycle event ids


Where = tuple[str, str]  # (bucket, key)


@dataclass
class LogView:
    """Per (bucket, key): the last event that archived it, whose call it is, the versions and bytes
    its archive events named, and the event that proved its deletion."""

    archived: dict[Where, str]
    deleted: dict[Where, str]
    calls: dict[Where, tuple[str, str]] = field(default_factory=dict)  # (tenant, call_id)
    versions: dict[Where, set[str]] = field(default_factory=dict)
    sha256s: dict[Where, set[str]] = field(default_factory=dict)

    def names_version(self, where: Where, version: str) -> bool:
        return version in self.versions.get(where, ())


def log_view(events: Iterable[dict[str, Any]]) -> LogView:
    view = LogView({}, {})
    archived, deleted = archived_events(), deleted_events()
    for event in events:
        kind = event.get("type")
        obj = event.get("object") or {}
        where = (str(obj.get("bucket", "")), str(obj.get("key", "")))
        if kind in archived:
            view.archived[where] = str(event.get("event_id"))
            view.calls[where] = (str(event.get("tenant")), str(event.get("call_id")))
        if kind in archived or kind == SEALED_IN_PLACE:  # a version sealed in place holds data the log names
            if obj.get("version_id"):
                view.versions.setdefault(where, set()).add(str(obj["version_id"]))
            # The bytes a version may hold: the plaintext's, or the stored ones where it was sealed.
            for sha in (obj.get("sha256"), event.get("stored_sha256")):
                if sha:
                    view.sha256s.setdefault(where, set()).add(str(sha))
        elif kind in deleted:
            view.deleted[where] = str(event.get("event_id"))
    return view


SEALED_IN_PLACE = "object.sealed"


def is_past_due(found: FoundKey, as_of: datetime, tolerance: timedelta) -> bool:
    if found.day_due is Due.ALL:
        return True
    if found.day_due is Due.SOME and found.due_at is not None:
        return found.due_at + tolerance <= as_of
    return False


def check_store(
    keys: Iterable[FoundKey],
    log: LogView,
    held: set[str],
    as_of: datetime,
    tolerance: timedelta,
    buckets: Collection[str] | None = None,
) -> list[StoreFinding]:
    """`held`: the calls under a legal hold, `{tenant}/{call_id}`. `buckets`: the buckets walked
    whole (by default those the keys lie in), where an archived object the store lacks is missing."""
    findings: list[StoreFinding] = []
    present: set[Where] = set()
    walked: set[str] = set(buckets or ())
    for found in keys:
        where = (found.bucket, found.key)
        walked.add(found.bucket)
        if found.has_data:
            present.add(where)
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
        if found.opened is not None and found.opened[1] is not None:
            detail = f"the stored object {found.opened[1]}"
            named = [log.archived[where]] if where in log.archived else []
            findings.append(_finding(found, "plaintext_not_proven", detail, *named))
        if where in log.archived:
            for version, sha in found.unnamed_versions:
                if sha is not None and sha not in log.sha256s.get(where, ()):
                    detail = (
                        f"version {version} holds bytes (SHA-256 {sha or 'unknown'}) that no archive event "
                        "of this key names: written behind callvault's back"
                    )
                    findings.append(_finding(found, "version_not_archived", detail, log.archived[where]))
    for where, event_id in sorted(log.archived.items()):
        if where[0] in walked and where not in present and where not in log.deleted:
            tenant, call_id = log.calls.get(where, ("", ""))
            detail = (
                "the log says it was archived and never proves its deletion, yet the store has no version"
            )
            findings.append(StoreFinding("missing_from_store", *where, tenant, call_id, detail, (event_id,)))
    return findings


def _finding(found: FoundKey, rule: str, detail: str, *evidence: str) -> StoreFinding:
    return StoreFinding(rule, found.bucket, found.key, found.tenant, found.call_id, detail, evidence)
