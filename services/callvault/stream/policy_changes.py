"""Changing a client policy: the new version stored, the backstop kept in step, the change proven.

Used by `callvault policy` and by the DPO's API routes alike. The order:

1. read the tenant's history and build the next version (`rules.client_policy`,
   which refuses a change it cannot make, with a sentence);
2. store it (`storage.policies`; never over another change's version: a race
   reads the history again);
3. bring the lifecycle backstop rules in step, so that no rule of the store
   ever expires an object before a term in force;
4. emit `policy.changed` on `lifecycle`, with an id of (tenant, version): sent
   again after a crash, it is the same event.

Workers and the purger reread the policies every few seconds; a version with
a later `effective_at` applies from that instant.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from botocore.client import BaseClient

from callvault.rules import evidence
from callvault.rules.client_policy import PolicyRefused, PolicyVersion, Scope, next_version, site_version
from callvault.rules.sites import in_eea
from callvault.settings import Settings
from callvault.storage import policies
from callvault.storage.bootstrap import apply_backstops

log = logging.getLogger("callvault.policy")

Emit = Callable[[Sequence[Any]], Awaitable[None]]
ATTEMPTS = 3


def _store_next(
    s3: BaseClient, settings: Settings, tenant: str, make: Callable[[list[PolicyVersion]], PolicyVersion]
) -> PolicyVersion:
    bucket = settings.metadata_bucket
    for attempt in range(1, ATTEMPTS + 1):
        version = make(policies.history(s3, bucket, tenant))
        try:
            policies.put_version(s3, bucket, version)
        except policies.VersionTaken:
            if attempt == ATTEMPTS:
                raise
            continue
        reports = apply_backstops(s3, settings, policies.load_book(s3, bucket))
        for report in reports:
            for note in report.notes:
                log.warning("backstop of %s: %s", report.bucket, note)
        return version
    raise AssertionError("unreachable")


async def change_policy(
    s3: BaseClient,
    settings: Settings,
    emit: Emit,
    tenant: str,
    change: Scope,
    *,
    queue: str | None,
    changed_by: str,
    reason: str,
    now: datetime,
    effective_at: datetime | None = None,
) -> PolicyVersion:
    """Make, store and prove one change; `PolicyRefused` (a sentence) if it cannot be made."""

    def make(history: list[PolicyVersion]) -> PolicyVersion:
        return next_version(
            history, tenant, change, queue, changed_by=changed_by, reason=reason, changed_at=now,
            effective_at=effective_at, bounds=settings.policy_bounds,
        )  # fmt: skip

    return await _prove(s3, settings, emit, tenant, make)


async def change_site(
    s3: BaseClient,
    settings: Settings,
    emit: Emit,
    tenant: str,
    site: str,
    *,
    allow: bool,
    changed_by: str,
    reason: str,
    now: datetime,
) -> PolicyVersion:
    """Allow (or stop allowing) a processing site outside the EEA for a client; in force at once."""
    country = settings.site_countries.get(site)
    if country is None:
        declared = ", ".join(sorted(settings.site_countries)) or "none"
        raise PolicyRefused(f"the site {site!r} is not declared in CALLVAULT_SITES (declared: {declared})")
    if allow and in_eea(country):
        raise PolicyRefused(
            f"the site {site} is in {country}, inside the EEA: every tenant may be read there"
        )

    def make(history: list[PolicyVersion]) -> PolicyVersion:
        return site_version(
            history, tenant, site, allow, changed_by=changed_by, reason=reason, changed_at=now
        )

    return await _prove(s3, settings, emit, tenant, make)


async def _prove(
    s3: BaseClient,
    settings: Settings,
    emit: Emit,
    tenant: str,
    make: Callable[[list[PolicyVersion]], PolicyVersion],
) -> PolicyVersion:
    version = await asyncio.to_thread(_store_next, s3, settings, tenant, make)
    await emit([evidence.policy_changed(version)])
    log.info("policy of %s is now version %d (from %s)", tenant, version.version, version.effective_at)
    return version
