"""Changing a client policy: the new version stored, the backstop kept in step, the change proven.

Used by `callvault policy` and by the DPO's API routes alike. The order:

1. read the tenant's history and build the versions the change makes
   (`rules.client_policy`, which refuses a change it cannot make, with a
   sentence): one, or a tightening carried into each pending version first;
2. bring the lifecycle backstop rules in step with them first, so that no rule
   of the store ever expires an object before a term in force (a change that
   needs a longer rule the store will not set is refused);
3. store them (`storage.policies`: a version number is written only if it is
   new; the loser of two changes at once reads the history again and makes
   the next number, at most `ATTEMPTS` times, then is refused), and bring the
   rules in step again with what is stored now;
4. emit one `policy.changed` per stored version on `lifecycle`, with an id of
   (tenant, version): sent again after a crash, it is the same event; a
   cancellation adds `policy.cancelled`.

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
from callvault.rules.client_policy import (
    PolicyRefused,
    PolicyVersion,
    Role,
    Scope,
    cancel_version,
    key_versions,
    next_versions,
    role_versions,
    site_versions,
)
from callvault.rules.sites import in_eea
from callvault.settings import Settings
from callvault.storage import policies
from callvault.storage.bootstrap import BucketPlan, apply_backstops, bucket_plans

log = logging.getLogger("callvault.policy")

Emit = Callable[[Sequence[Any]], Awaitable[None]]
ATTEMPTS = 3


def _store_next(
    s3: BaseClient,
    settings: Settings,
    tenant: str,
    make: Callable[[list[PolicyVersion]], list[PolicyVersion]],
) -> list[PolicyVersion]:
    """Store what `make` builds of the history; every version stored, across attempts, to prove."""
    bucket = settings.metadata_bucket
    stored: list[PolicyVersion] = []
    for attempt in range(1, ATTEMPTS + 1):
        try:
            made = make(policies.history(s3, bucket, tenant, proven_only=False))
            _backstops_first(s3, settings, tenant, made)
            for version in made:
                version = version.model_copy(update={"needs_proof": True})
                policies.put_version(s3, bucket, version)
                stored.append(version)
            break
        except policies.VersionTaken:
            if attempt == ATTEMPTS and not stored:
                raise PolicyRefused(
                    f"{ATTEMPTS} other changes to {tenant}'s policy were stored while this one was made; "
                    "read its history (callvault policy history) and try again"
                ) from None
        except PolicyRefused:
            if not stored:
                raise
            break  # a retry found the change made meanwhile: what was stored stands, and is proven
    reports = apply_backstops(s3, settings, policies.load_book(s3, bucket, proven_only=False))
    for report in reports:
        for note in report.notes:
            log.warning("backstop of %s: %s", report.bucket, note)
    return stored


def _backstops_first(s3: BaseClient, settings: Settings, tenant: str, made: list[PolicyVersion]) -> None:
    """Bring the lifecycle backstop in step with the versions about to be stored, before they are.

    A longer term that the store's own rules still cut short would expire objects early, unseen
    (issue 33): where the store will not change its rules, a change that needs a longer rule is
    refused with a sentence. One that only shortens goes on (the old, longer rules expire nothing
    early): a withdrawal must never wait on a permission.
    """
    before = policies.load_book(s3, settings.metadata_bucket, proven_only=False)
    after = {**before, tenant: [*before.get(tenant, []), *made]}
    refused = [r for r in apply_backstops(s3, settings, after) if r.lifecycle_refused]
    if refused and _needs_longer_rules(bucket_plans(settings, before), bucket_plans(settings, after)):
        where = ", ".join(f"{r.bucket} ({r.lifecycle_refused})" for r in refused)
        raise PolicyRefused(
            f"the lifecycle backstop could not be brought in step in {where}: the store's old rules would "
            "expire objects before this policy's terms; let callvault's identity change them "
            "(s3:PutLifecycleConfiguration) and try again"
        )


def _needs_longer_rules(before: list[BucketPlan], after: list[BucketPlan]) -> bool:
    """Whether some object would expire later under the new rules: a rule longer, or one gone."""
    old = {(p.name, rule[0]): rule[2] for p in before for rule in p.expirations}
    new = {(p.name, rule[0]): rule[2] for p in after for rule in p.expirations}
    return any(ident not in new or new[ident] > days for ident, days in old.items())


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

    def make(history: list[PolicyVersion]) -> list[PolicyVersion]:
        return next_versions(
            history, tenant, change, queue, changed_by=changed_by, reason=reason, changed_at=now,
            effective_at=effective_at, bounds=settings.policy_bounds, defaults=settings.policy_defaults,
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

    def make(history: list[PolicyVersion]) -> list[PolicyVersion]:
        return site_versions(
            history, tenant, site, allow, changed_by=changed_by, reason=reason, changed_at=now
        )

    return await _prove(s3, settings, emit, tenant, make)


async def change_role(
    s3: BaseClient,
    settings: Settings,
    emit: Emit,
    tenant: str,
    role: Role | None,
    contact: str | None,
    *,
    changed_by: str,
    reason: str,
    now: datetime,
) -> PolicyVersion:
    """Say whose data the tenant's calls are, and where its subjects' requests go; in force at once."""

    def make(history: list[PolicyVersion]) -> list[PolicyVersion]:
        return role_versions(
            history, tenant, role, contact, changed_by=changed_by, reason=reason, changed_at=now
        )

    return await _prove(s3, settings, emit, tenant, make)


CALLVAULT_KEY = "callvault"  # what `--kms-key` and the API's `kms_key` say for callvault's key for the tenant


async def change_kms_key(
    s3: BaseClient,
    settings: Settings,
    emit: Emit,
    tenant: str,
    kms_key: str | None,
    *,
    changed_by: str,
    reason: str,
    now: datetime,
) -> PolicyVersion:
    """Seal the tenant's new objects under the client's own KMS key (None: callvault's again), at once."""

    def make(history: list[PolicyVersion]) -> list[PolicyVersion]:
        return key_versions(
            history, tenant, kms_key, settings.allowed_places, changed_by=changed_by, reason=reason,
            changed_at=now,
        )  # fmt: skip

    return await _prove(s3, settings, emit, tenant, make)


async def cancel_policy(
    s3: BaseClient,
    settings: Settings,
    emit: Emit,
    tenant: str,
    cancelled: int,
    *,
    changed_by: str,
    reason: str,
    now: datetime,
) -> PolicyVersion:
    """Cancel a pending version: a version at its instant restores what stood before, proven by
    `policy.changed` for it and `policy.cancelled` naming the one cancelled."""

    def make(history: list[PolicyVersion]) -> list[PolicyVersion]:
        return [
            cancel_version(history, tenant, cancelled, changed_by=changed_by, reason=reason, changed_at=now)
        ]

    version = await _prove(s3, settings, emit, tenant, make)
    await emit([evidence.policy_cancelled(version, cancelled)])
    return version


async def _prove(
    s3: BaseClient,
    settings: Settings,
    emit: Emit,
    tenant: str,
    make: Callable[[list[PolicyVersion]], list[PolicyVersion]],
) -> PolicyVersion:
    """Store, then prove each stored version; the last is the change itself (earlier ones carry it
    into pending versions).

    A version applies only once proven (issue 33): its `policy.changed` sent, then a marker beside it.
    A version stored before by a change whose emit failed is re-sent first (the same event id), so no
    version stands applied without its event, nor one event for two versions."""
    bucket = settings.metadata_bucket
    owed = await asyncio.to_thread(policies.unproven, s3, bucket, tenant)
    if owed:
        log.warning("policy of %s: re-sending the proof of version(s) %s", tenant, [v.version for v in owed])
        await _send_proof(s3, bucket, emit, owed)
    stored = await asyncio.to_thread(_store_next, s3, settings, tenant, make)
    await _send_proof(s3, bucket, emit, stored)
    for version in stored:
        log.info("policy of %s: version %d stored (from %s)", tenant, version.version, version.effective_at)
    return stored[-1]


async def _send_proof(s3: BaseClient, bucket: str, emit: Emit, versions: list[PolicyVersion]) -> None:
    """`policy.changed` for each version, then its marker: from then on workers apply it."""
    await emit([evidence.policy_changed(version) for version in versions])
    for version in versions:
        await asyncio.to_thread(policies.mark_proven, s3, bucket, version)
