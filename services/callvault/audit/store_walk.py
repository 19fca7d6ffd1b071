"""What `audit verify-store` reads: every key of the archive buckets, with versions and due dates.

With `--decrypt` (a `keyring`), each key's newest version is also opened under its client's key and its
plaintext hashed: whether it is stored sealed, and whether it opens to the bytes it was archived with.

A walk of every tenant-day (unlike the purger's, which stops where nothing is
due): data the log does not know of can be anywhere. Due dates come from the
key's day where that alone decides (`rules.purge.period_due_within`, with every
term the tenant's client policies give the class), and from the object's own
metadata (one HEAD, brought earlier by a later shortening of its tenant's term)
on the days where it does not. Given the log's view, every version holding bytes
that no archive event names by its id is hashed (one HEAD, or a read where the
store keeps no SHA-256), so bytes written behind callvault's back are found.
Blocking (boto3): run it off any event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from itertools import groupby

from botocore.client import BaseClient

from callvault.audit.store_facts import LogFacts, day_of
from callvault.rules.client_policy import terms_ever
from callvault.rules.data_classes import data_classes
from callvault.rules.purge import Due, period_due_within, period_end
from callvault.rules.store_check import FoundKey, LogView, StoreFinding, check_store
from callvault.settings import Settings
from callvault.storage.archive import plaintext_check, version_sha256
from callvault.storage.inventory import all_days, dated_now, describe, list_versions
from callvault.storage.layout import day_prefix, parse_archive_key
from callvault.storage.policies import VersionCache, load_book, not_applied, tenant_of
from callvault.storage.sealing import Keyring


def walk_store(
    s3: BaseClient,
    settings: Settings,
    judge_at: datetime,
    on_day: Callable[[str, int, int], None] | None = None,
    views: Callable[[str, str], LogView] | None = None,
    keyring: Keyring | None = None,
) -> Iterator[FoundKey]:
    """Every archived key, tenant-day by tenant-day; `judge_at` is the instant due dates are judged at
    (now minus the tolerance). The log's word: `views(bucket, day)`, one tenant-day's, as
    `audit.store_facts` keeps it on disk."""
    book = load_book(s3, settings.metadata_bucket)
    defaults = settings.policy_defaults
    for data_class in data_classes():
        retention_class, bucket = data_class.name, data_class.bucket(settings)
        days = list(all_days(s3, bucket))
        for done, (tenant, day) in enumerate(days, start=1):
            history = book.get(tenant, [])
            terms = terms_ever(retention_class, history, defaults)
            day_due = period_due_within(day, day, terms, settings.zone, judge_at)
            day_view = views(bucket, day_prefix(tenant, day)) if views is not None else None
            for entry in list_versions(s3, bucket, f"{day_prefix(tenant, day)}/"):
                parsed = parse_archive_key(entry.key)
                if parsed is None:
                    continue
                due_at = None
                if day_due is Due.SOME and entry.data_version is not None:
                    described = describe(s3, bucket, entry.key, entry.data_version)
                    if described is not None:
                        end = period_end(day)
                        due_at = dated_now(
                            described, retention_class, end, history, defaults, judge_at
                        ).due_at
                where = (bucket, entry.key)
                unnamed = (
                    tuple(
                        (vid, version_sha256(s3, bucket, entry.key, vid))
                        for vid in entry.data_versions
                        if not day_view.names_version(where, vid)
                    )
                    if day_view is not None and where in day_view.archived
                    else ()
                )
                opened = (
                    plaintext_check(s3, keyring, bucket, entry.key, entry.data_version)
                    if keyring is not None and entry.data_version is not None
                    else None
                )
                yield FoundKey(
                    bucket=bucket,
                    key=entry.key,
                    tenant=parsed.tenant,
                    call_id=parsed.call_id,
                    versions=len(entry.versions),
                    has_data=entry.data_version is not None,
                    day_due=day_due,
                    due_at=due_at,
                    unnamed_versions=unnamed,
                    opened=opened,
                )
            if on_day is not None:
                on_day(bucket, done, len(days))


def compare_by_day(
    s3: BaseClient,
    settings: Settings,
    facts: LogFacts,
    held: set[str],
    now: datetime,
    tolerance: timedelta,
    on_day: Callable[[str, int, int], None] | None = None,
    keyring: Keyring | None = None,
    seen: Callable[[FoundKey], None] = lambda found: None,
) -> tuple[int, list[StoreFinding]]:
    """The store against the log one tenant-day at a time: neither is ever held whole.

    Each day the walk lists is checked against that day's facts; then each day
    the log names and the store no longer has at all (every object of it lost)
    is checked against an empty listing. The keys checked, and what was found;
    `seen` is shown every key as it is walked.
    """
    views = _LastView(facts)
    findings: list[StoreFinding] = []
    walked: set[tuple[str, str]] = set()
    checked = 0
    found = walk_store(s3, settings, now - tolerance, on_day, views=views, keyring=keyring)
    for (bucket, day), keys in groupby(found, key=lambda f: (f.bucket, day_of(f.key))):
        day_keys = list(keys)
        for key in day_keys:
            seen(key)
        checked += len(day_keys)
        findings += check_store(day_keys, views(bucket, day), held, now, tolerance, {bucket})
        walked.add((bucket, day))
    for data_class in data_classes():
        bucket = data_class.bucket(settings)
        for day in list(facts.days(bucket)):
            if (bucket, day) not in walked:
                findings += check_store([], facts.view_of(bucket, day), held, now, tolerance, {bucket})
    return checked, findings


class _LastView:
    """One tenant-day's facts, read once for the walk and again for the checks of that day."""

    def __init__(self, facts: LogFacts) -> None:
        self.facts = facts
        self._last: tuple[tuple[str, str], LogView] | None = None

    def __call__(self, bucket: str, day: str) -> LogView:
        if self._last is None or self._last[0] != (bucket, day):
            self._last = ((bucket, day), self.facts.view_of(bucket, day))
        return self._last[1]


def policy_findings(s3: BaseClient, settings: Settings) -> list[StoreFinding]:
    """A finding per file under the client policies' prefix that no process applies (issue 33): each is
    skipped alone, so the book stands, but an auditor sees it, with why."""
    known: VersionCache = {}
    load_book(s3, settings.metadata_bucket, known, bounds=settings.policy_bounds)
    return [
        StoreFinding("policy_file_not_applied", settings.metadata_bucket, key, tenant_of(key), "", why)
        for key, why in not_applied(known)
    ]
