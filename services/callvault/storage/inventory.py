"""The purger's reads and deletes. Blocking (boto3): call them off the event loop.

Finding due objects walks the date-prefixed keys from the top: tenants, then
years, months and days, skipping every period in which nothing can be due yet
(`callvault.rules.purge.period_due`). A pass therefore lists what is due, what a
legal hold keeps, and at most the day or two in which objects are falling due
now; never the whole store. Versions are listed rather than objects, so data
hidden behind a delete marker is found and erased too.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from botocore.client import BaseClient

from callvault.rules.client_policy import Dated, Defaults, PolicyVersion, redated_from_archive
from callvault.rules.durations import CalendarDuration, add_duration
from callvault.rules.purge import Due, StoredObject, month_span, period_due_within, period_start, year_span
from callvault.rules.retention import RetentionPolicy
from callvault.storage.archive import EXPIRES_META, PLAIN_SIZE_META, SHA_META
from callvault.storage.errors import error_code, is_not_found
from callvault.storage.layout import (
    ARCHIVED_META,
    KNOWN_META,
    POLICY_META,
    QUEUE_META,
    STARTED_META,
    day_prefix,
)
from callvault.storage.subject_index import subjects_of

# What a HEAD of a delete marker's version id answers (S3: 405 Method Not Allowed).
DELETE_MARKER_CODES = frozenset({"405", "MethodNotAllowed"})


@dataclass(frozen=True, slots=True)
class DuePeriod:
    """One day of one tenant's keys that holds due objects (some or all of them)."""

    tenant: str
    day: date

    @property
    def prefix(self) -> str:
        return f"{day_prefix(self.tenant, self.day)}/"


@dataclass(frozen=True, slots=True)
class KeyVersions:
    key: str
    versions: tuple[str, ...]  # every version id and delete marker of the key
    data_version: str | None  # the newest version holding bytes; None when only markers are left
    data_versions: tuple[str, ...] = ()  # every version holding bytes, newest first


@dataclass(frozen=True, slots=True)
class Described:
    due_at: datetime
    sha256: str
    size_bytes: int
    subjects: tuple[str, ...] = ()
    # How it was dated (absent on objects archived before client policies): see layout.dating_metadata.
    started_at: datetime | None = None
    archived_at: datetime | None = None
    queue: str | None = None
    policy_version: int | None = None
    policy_known: int | None = None  # the newest version the worker had read then (layout.KNOWN_META)


def _children(s3: BaseClient, bucket: str, prefix: str) -> list[str]:
    """The next path segment under `prefix`, from versions too: a marker-hidden key still counts."""
    names: list[str] = []
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for common in page.get("CommonPrefixes", ()):
            names.append(common["Prefix"][len(prefix) :].rstrip("/"))
    return names


def _numbers(names: list[str], width: int) -> list[int]:
    return sorted(int(n) for n in names if len(n) == width and n.isdigit())


def tenants(s3: BaseClient, bucket: str) -> list[str]:
    """The tenants with keys in `bucket`, sorted; `_callvault/` holds callvault's own records."""
    return sorted(name for name in _children(s3, bucket, "") if name and not name.startswith("_"))


def _walk_days(
    s3: BaseClient,
    bucket: str,
    enter: Callable[[date, date], bool] = lambda first, last: True,
    only: str | None = None,
) -> Iterator[tuple[str, date]]:
    """Every tenant-day present in `bucket` (of tenant `only`, if given), oldest first per tenant.

    `enter(first_day, last_day)` is asked of each year, month and day before it is
    walked; False skips that period and every later one of its tenant, year or month.
    """
    for tenant in [only] if only is not None else tenants(s3, bucket):
        for year in _numbers(_children(s3, bucket, f"{tenant}/"), 4):
            if not enter(*year_span(year)):
                break
            for month in _numbers(_children(s3, bucket, f"{tenant}/{year:04d}/"), 2):
                if not 1 <= month <= 12:
                    continue
                if not enter(*month_span(year, month)):
                    break
                for number in _numbers(_children(s3, bucket, f"{tenant}/{year:04d}/{month:02d}/"), 2):
                    try:
                        day = date(year, month, number)
                    except ValueError:
                        continue
                    if not enter(day, day):
                        break
                    yield tenant, day


@dataclass
class DueWalk:
    """What a walk found: the due tenant-days, and when the next not-yet-due one starts falling due."""

    periods: list[DuePeriod]
    next_change: datetime | None = None


def due_periods(
    s3: BaseClient,
    bucket: str,
    retention_class: str,
    policy: RetentionPolicy,
    as_of: datetime,
    terms_of: Callable[[str], Sequence[CalendarDuration]] | None = None,
) -> DueWalk:
    """Every tenant-day of `bucket` in which something is due at `as_of`, oldest first.

    A period with nothing due ends the walk of its tenant, year or month: later
    ones are due later still. The earliest such period says when to look again.
    `terms_of(tenant)`: every term the tenant's client policies give the class
    (the walk prunes with the shortest); without it, `policy`'s term for all.
    """
    walk = DueWalk([])
    default = [policy.duration_for(retention_class)]

    def walk_tenant(tenant: str) -> None:
        terms = list(terms_of(tenant)) if terms_of is not None else default

        def enter(first: date, last: date) -> bool:
            if period_due_within(first, last, terms, policy.zone, as_of) is not Due.NONE:
                return True
            when = min(add_duration(period_start(first), t, policy.zone) for t in terms)
            if walk.next_change is None or when < walk.next_change:
                walk.next_change = when
            return False

        walk.periods.extend(DuePeriod(t, day) for t, day in _walk_days(s3, bucket, enter, only=tenant))

    for tenant in tenants(s3, bucket):
        walk_tenant(tenant)
    return walk


def all_days(s3: BaseClient, bucket: str, tenant: str | None = None) -> Iterator[tuple[str, date]]:
    """Every tenant-day present in `bucket` (of one tenant, if given): for finding one call's objects."""
    return _walk_days(s3, bucket, only=tenant)


def list_versions(s3: BaseClient, bucket: str, prefix: str) -> list[KeyVersions]:
    """Every key under `prefix` with all its versions and delete markers."""
    versions: dict[str, list[str]] = {}
    data: dict[str, list[tuple[bool, datetime, str]]] = {}
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Versions", ()):
            key, vid = entry["Key"], entry.get("VersionId") or "null"
            versions.setdefault(key, []).append(vid)
            data.setdefault(key, []).append((bool(entry.get("IsLatest")), entry["LastModified"], vid))
        for entry in page.get("DeleteMarkers", ()):
            versions.setdefault(entry["Key"], []).append(entry.get("VersionId") or "null")
    return [
        KeyVersions(
            key,
            tuple(vids),
            max(data[key])[2] if key in data else None,
            tuple(vid for _, _, vid in sorted(data.get(key, ()), reverse=True)),
        )
        for key, vids in sorted(versions.items())
    ]


def current_version(s3: BaseClient, bucket: str, key: str) -> str | None:
    """The id of the key's current version; None when it is gone or hidden by a delete marker."""
    try:
        return s3.head_object(Bucket=bucket, Key=key).get("VersionId") or "null"
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def _hex_of_checksum(value: str | None) -> str | None:
    if not value or "-" in value:  # a multipart composite is not the object's SHA-256
        return None
    return base64.b64decode(value).hex()


def describe(s3: BaseClient, bucket: str, key: str, version: str) -> Described | None:
    """When a version is due and what it holds, from its metadata (its tags if it predates that)."""
    kwargs = {} if version == "null" else {"VersionId": version}
    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **kwargs)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    meta = head.get("Metadata", {})
    due_text = meta.get(EXPIRES_META)
    if due_text is None:
        tags = s3.get_object_tagging(Bucket=bucket, Key=key, **kwargs).get("TagSet", [])
        due_text = next((t["Value"] for t in tags if t["Key"] == "expires-at"), None)
    sha = meta.get(SHA_META) or _hex_of_checksum(head.get("ChecksumSHA256"))
    if due_text is None or sha is None:
        return None
    version_text, known_text = meta.get(POLICY_META, ""), meta.get(KNOWN_META, "")
    return Described(
        datetime.fromisoformat(due_text),
        sha,
        int(meta.get(PLAIN_SIZE_META) or head["ContentLength"]),  # a sealed object's plaintext's
        subjects_of(meta),
        started_at=_instant(meta.get(STARTED_META)),
        archived_at=_instant(meta.get(ARCHIVED_META)) or head.get("LastModified"),
        queue=meta.get(QUEUE_META),
        policy_version=int(version_text) if version_text.isdigit() else None,
        policy_known=int(known_text) if known_text.isdigit() else None,
    )


def subjects_of_versions(s3: BaseClient, bucket: str, key: str, versions: Sequence[str]) -> tuple[str, ...]:
    """Every participant that any version of a metadata document names.

    The newest version alone is not enough: a document rewritten from a call state
    the worker had forgotten (a late event after `settled_state_ttl`) names no one,
    yet the index entries the earlier version's participants got are still there,
    and they must go with the document.
    """
    names: set[str] = set()
    for version in versions:
        kwargs = {} if version == "null" else {"VersionId": version}
        try:
            head = s3.head_object(Bucket=bucket, Key=key, **kwargs)
        except Exception as exc:
            if is_not_found(exc) or error_code(exc) in DELETE_MARKER_CODES:
                continue  # gone, or a delete marker: it names no one
            raise
        names.update(subjects_of(head.get("Metadata", {})))
    return tuple(sorted(names))


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None  # not callvault's writing: the date in its tags still stands


def find_object(
    s3: BaseClient, bucket: str, key: str, retention_class: str, tenant: str, call_id: str
) -> StoredObject | None:
    """One archived key as the purger would see it, for deleting it outside a pass; None if gone."""
    entry = next((k for k in list_versions(s3, bucket, key) if k.key == key), None)
    if entry is None or entry.data_version is None:
        return None
    info = describe(s3, bucket, key, entry.data_version)
    if info is None:
        return None
    return stored_object(bucket, entry, info, retention_class, tenant, call_id)


def stored_object(
    bucket: str,
    entry: KeyVersions,
    info: Described,
    retention_class: str,
    tenant: str,
    call_id: str,
) -> StoredObject:
    """A listed key and what its metadata says, as one object a deletion can prove."""
    return StoredObject(
        bucket=bucket,
        key=entry.key,
        tenant=tenant,
        call_id=call_id,
        retention_class=retention_class,
        due_at=info.due_at,
        sha256=info.sha256,
        size_bytes=info.size_bytes,
        versions=entry.versions,
        subjects=info.subjects,
        policy_version=info.policy_version,
    )


def dated_now(
    info: Described,
    retention_class: str,
    day_end: datetime,
    history: Sequence[PolicyVersion],
    defaults: Defaults,
    as_of: datetime,
) -> Dated:
    """An object's due date now: the one it was archived with, unless its tenant's policy has since
    shortened the term, or a version its worker had not read yet was in force when it was archived
    (see `rules.client_policy.redated_from_archive`). `day_end`, the last instant of its key's
    day, stands in for the start of an object that does not say: a later start never deletes early."""
    tagged = Dated(info.due_at, info.policy_version)
    if not history or info.archived_at is None:
        return tagged
    started = info.started_at or day_end
    return redated_from_archive(
        tagged, retention_class, started, info.archived_at, info.queue, history, defaults, as_of,
        known=info.policy_known,
    )  # fmt: skip
