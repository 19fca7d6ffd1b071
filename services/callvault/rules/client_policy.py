"""Client policies: each tenant's own terms, versioned, and which version dates an object. Pure.

callvault's users answer calls for many clients. As a controller the centre
keeps its own quality-control data for the privacy statement's terms (the
settings' defaults); as a processor it must erase each client's data after the
term agreed with that client. A policy sets, for one tenant, the term of each
data class (see `rules.data_classes`), the disclosure grace and whether
recording is allowed at all, and optional rules by `queue` (the queue, campaign
or skill of `call.started`) that override the tenant's own.

Every change is a new version, a whole snapshot built on the one before, with
who, when, why and the instant it takes effect. Which version applies:

- an object's due date comes from the version in force when it is archived;
- a later version that shortens a term applies to objects already archived
  too (a due date only ever moves earlier: data minimisation). If the shorter
  date has already passed when the change takes effect, the object is due at
  the change's effective instant;
- a later version that lengthens a term applies to objects archived after it.

So an object's due date is never later than the term in force when it was
archived, and never earlier than the shortest term in force since.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from callvault.contract.fields import Tenant, Timestamp
from callvault.rules.data_classes import DATA_CLASSES, data_class
from callvault.rules.durations import CalendarDuration
from callvault.rules.retention import RetentionClass, RetentionPolicy

QUEUE_PATTERN = r"^[a-z0-9._-]{1,64}$"
Queue = Annotated[str, Field(pattern=QUEUE_PATTERN)]


class Scope(BaseModel):
    """What one scope (the tenant, or one of its queues) sets; None inherits from the scope above."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    terms: dict[str, str] = Field(default_factory=dict, description="data class -> ISO 8601 duration")
    grace: str | None = None
    recording_allowed: bool | None = None

    def merged(self, change: Scope) -> Scope:
        return Scope(
            terms={**self.terms, **change.terms},
            grace=change.grace if change.grace is not None else self.grace,
            recording_allowed=(
                change.recording_allowed if change.recording_allowed is not None else self.recording_allowed
            ),
        )

    def described(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.terms)
        if self.grace is not None:
            out["grace"] = self.grace
        if self.recording_allowed is not None:
            out["recording_allowed"] = self.recording_allowed
        return out


class PolicyVersion(BaseModel):
    """One version of a tenant's policy: the whole of it, as it stands from `effective_at`."""

    model_config = ConfigDict(frozen=True)

    tenant: Tenant
    version: int = Field(ge=1)
    effective_at: Timestamp
    changed_at: Timestamp
    changed_by: str
    reason: str
    tenant_rules: Scope = Field(default_factory=Scope)
    queues: dict[str, Scope] = Field(default_factory=dict)
    allowed_sites: list[str] = Field(
        default_factory=list, description="processing sites outside the EEA the client allows (issue 17)"
    )
    change: dict[str, Any] = Field(default_factory=dict, description="what this version changed")


@dataclass(frozen=True, slots=True)
class Defaults:
    """The controller's own terms, for tenants (and classes) no policy speaks of."""

    retention: RetentionPolicy
    grace: CalendarDuration

    @property
    def zone(self) -> ZoneInfo:
        return self.retention.zone


@dataclass(frozen=True, slots=True)
class Bounds:
    """The shortest and longest term a policy may set (settings)."""

    shortest: CalendarDuration
    longest: CalendarDuration


@dataclass(frozen=True, slots=True)
class Terms:
    """What applies to one call of one tenant and queue at one instant."""

    retention: RetentionPolicy
    grace: timedelta
    recording_allowed: bool
    version: int | None  # None: no policy, the defaults


class PolicyRefused(ValueError):
    """A change that cannot be made; the message says why."""


def least_days(d: CalendarDuration) -> float:
    """The fewest days the duration can span (28-day months, 365-day years)."""
    return d.years * 365 + d.months * 28 + d.days + d.seconds / 86400


def most_days(d: CalendarDuration) -> float:
    """The most days the duration can span (31-day months, 366-day years)."""
    return d.years * 366 + d.months * 31 + d.days + d.seconds / 86400


def _parse_term(name: str, text: str, bounds: Bounds) -> CalendarDuration:
    try:
        duration = CalendarDuration.parse(text)
    except ValueError as exc:
        raise PolicyRefused(f"the {name} term {text!r} is not an ISO 8601 duration: {exc}") from None
    if least_days(duration) < most_days(bounds.shortest):
        raise PolicyRefused(
            f"the {name} term {text} is shorter than the shortest allowed ({bounds.shortest})"
        )
    if most_days(duration) > least_days(bounds.longest):
        raise PolicyRefused(f"the {name} term {text} is longer than the longest allowed ({bounds.longest})")
    return duration


def check_scope(scope: Scope, bounds: Bounds) -> None:
    for name, text in scope.terms.items():
        try:
            data_class(name)
        except ValueError as exc:
            raise PolicyRefused(str(exc)) from None
        _parse_term(name, text, bounds)
    if scope.grace is not None:
        try:
            grace = CalendarDuration.parse(scope.grace)
        except ValueError as exc:
            raise PolicyRefused(f"the grace {scope.grace!r} is not an ISO 8601 duration: {exc}") from None
        if not grace.is_exact or grace.as_timedelta() > timedelta(days=1):
            raise PolicyRefused(
                f"the grace {scope.grace} must be exact (hours, minutes, seconds) and at most P1D"
            )


def next_version(
    history: Sequence[PolicyVersion],
    tenant: str,
    change: Scope,
    queue: str | None,
    *,
    changed_by: str,
    reason: str,
    changed_at: datetime,
    effective_at: datetime | None,
    bounds: Bounds,
) -> PolicyVersion:
    """The version a change makes of the latest one; refused with a sentence if it cannot be."""
    if not reason.strip():
        raise PolicyRefused("a policy change needs a reason (--reason): the auditor reads it")
    if not change.terms and change.grace is None and change.recording_allowed is None:
        raise PolicyRefused("the change sets nothing: give a term, a grace or --no-recording/--recording")
    check_scope(change, bounds)
    effective = effective_at or changed_at
    if effective < changed_at:
        raise PolicyRefused(
            "a change cannot take effect in the past: what was archived then was dated already"
        )
    latest = history[-1] if history else None
    if latest is not None and effective < latest.effective_at:
        raise PolicyRefused(
            f"version {latest.version} takes effect at {latest.effective_at:%Y-%m-%dT%H:%M:%SZ}; "
            "a later version cannot take effect before it"
        )
    tenant_rules = latest.tenant_rules if latest else Scope()
    queues = dict(latest.queues) if latest else {}
    if queue is None:
        tenant_rules = tenant_rules.merged(change)
    else:
        queues[queue] = queues.get(queue, Scope()).merged(change)
    described = change.described()
    return PolicyVersion(
        tenant=tenant,
        version=(latest.version + 1) if latest else 1,
        effective_at=effective,
        changed_at=changed_at,
        changed_by=changed_by,
        reason=reason,
        tenant_rules=tenant_rules,
        queues=queues,
        allowed_sites=list(latest.allowed_sites) if latest else [],
        change={"queue": queue, **described} if queue else described,
    )


def site_version(
    history: Sequence[PolicyVersion],
    tenant: str,
    site: str,
    allow: bool,
    *,
    changed_by: str,
    reason: str,
    changed_at: datetime,
) -> PolicyVersion:
    """The version that allows (or no longer allows) a processing site outside the EEA; in force at once."""
    if not reason.strip():
        raise PolicyRefused("a policy change needs a reason (--reason): the auditor reads it")
    latest = history[-1] if history else None
    if latest is not None and changed_at < latest.effective_at:
        raise PolicyRefused(
            f"version {latest.version} takes effect at {latest.effective_at:%Y-%m-%dT%H:%M:%SZ}; "
            "change the sites after it has"
        )
    sites = set(latest.allowed_sites) if latest else set()
    if allow and site in sites:
        raise PolicyRefused(f"tenant {tenant!r} allows the site {site!r} already")
    if not allow and site not in sites:
        raise PolicyRefused(f"tenant {tenant!r} does not allow the site {site!r}; nothing to deny")
    sites = sites | {site} if allow else sites - {site}
    return PolicyVersion(
        tenant=tenant,
        version=(latest.version + 1) if latest else 1,
        effective_at=changed_at,
        changed_at=changed_at,
        changed_by=changed_by,
        reason=reason,
        tenant_rules=latest.tenant_rules if latest else Scope(),
        queues=dict(latest.queues) if latest else {},
        allowed_sites=sorted(sites),
        change={"allow_site" if allow else "deny_site": site},
    )


def allowed_sites_at(history: Sequence[PolicyVersion], at: datetime) -> frozenset[str]:
    """The sites outside the EEA the tenant allows at `at` (none without a policy)."""
    version = version_at(history, at)
    return frozenset(version.allowed_sites) if version is not None else frozenset()


def version_at(history: Sequence[PolicyVersion], at: datetime) -> PolicyVersion | None:
    """The version in force at `at`: the latest that has taken effect; None before the first."""
    found = None
    for version in history:
        if version.effective_at <= at:
            found = version
    return found


def _scope_terms(version: PolicyVersion | None, queue: str | None, defaults: Defaults) -> Terms:
    scope = Scope()
    if version is not None:
        scope = version.tenant_rules
        if queue is not None and queue in version.queues:
            scope = scope.merged(version.queues[queue])
    terms = {
        c.name: CalendarDuration.parse(scope.terms[c.name.value])
        if c.name.value in scope.terms
        else defaults.retention.duration_for(c.name)
        for c in DATA_CLASSES
    }
    grace = CalendarDuration.parse(scope.grace) if scope.grace is not None else defaults.grace
    return Terms(
        retention=RetentionPolicy(terms=terms, zone=defaults.zone),
        grace=grace.as_timedelta(),
        recording_allowed=scope.recording_allowed is not False,
        version=version.version if version is not None else None,
    )


def terms_at(history: Sequence[PolicyVersion], queue: str | None, at: datetime, defaults: Defaults) -> Terms:
    """What applies at `at` to a call of this tenant (its `history`) and queue."""
    return _scope_terms(version_at(history, at), queue, defaults)


class Dated(NamedTuple):
    due_at: datetime
    policy_version: int | None  # the version whose term gave the date; None: the defaults


def due_at(
    retention_class: RetentionClass,
    started_at: datetime,
    archived_at: datetime,
    queue: str | None,
    history: Sequence[PolicyVersion],
    defaults: Defaults,
    as_of: datetime,
) -> Dated:
    """When an object archived at `archived_at` is due, as the versions in force by `as_of` say.

    The term in force at archive dates it; every version that took effect since
    (and by `as_of`) may only bring that date earlier, never before its own
    effective instant.
    """
    terms = terms_at(history, queue, archived_at, defaults)
    at_archive = Dated(terms.retention.expires_at(retention_class, started_at), terms.version)
    return redated(at_archive, retention_class, started_at, archived_at, queue, history, defaults, as_of)


def redated(
    tagged: Dated,
    retention_class: RetentionClass,
    started_at: datetime,
    archived_at: datetime,
    queue: str | None,
    history: Sequence[PolicyVersion],
    defaults: Defaults,
    as_of: datetime,
) -> Dated:
    """An archived object's due date now: the one its tags say, unless a later shortening brings it
    earlier. `started_at` may be a bound (the end of the key's day, for objects that do not say):
    a later start gives a later date, so that never deletes early. A version that a later one
    replaced at the very instant it took effect was never in force, and shortens nothing."""
    for version in history:
        in_force = version_at(history, version.effective_at) is version
        if in_force and archived_at < version.effective_at <= as_of:
            shorter = _scope_terms(version, queue, defaults).retention.expires_at(retention_class, started_at)
            candidate = max(shorter, version.effective_at)
            if candidate < tagged.due_at:
                tagged = Dated(candidate, version.version)
    return tagged


def terms_ever(
    retention_class: RetentionClass, history: Iterable[PolicyVersion], defaults: Defaults
) -> list[CalendarDuration]:
    """Every term a rule of this tenant gives the class (and the default's): what the purger's walk
    prunes with, and what the lifecycle backstop must never undercut."""
    found = [defaults.retention.duration_for(retention_class)]
    for version in history:
        for queue in (None, *version.queues):
            found.append(_scope_terms(version, queue, defaults).retention.duration_for(retention_class))
    unique: dict[str, CalendarDuration] = {str(d): d for d in found}
    return list(unique.values())
