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

A version may take effect later than its change (`--effective`, at most
`Bounds.lead` ahead). While it is pending, nothing may lock the client out of
an urgent change (issue 32): a shortening of a term, `--no-recording` and the
withdrawal of a site apply at once, and are carried into every pending version
as a new version at that version's own instant, so they hold after it takes
effect too. What makes callvault less strict waits for the pending version or
replaces it (a change effective at its instant), or the pending version is
cancelled (a version at its instant that restores what stood before). Of the
versions that have taken effect, the one in force is the latest to take
effect, and of several at one instant the highest number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from callvault.contract.fields import Tenant, Timestamp
from callvault.rules.data_classes import data_class, data_classes
from callvault.rules.durations import CalendarDuration, add_duration
from callvault.rules.retention import RetentionPolicy

QUEUE_PATTERN = r"^[a-z0-9._-]{1,64}$"
Role = Literal["controller", "processor"]
# Additive (2026-12-06): whether a recorded call may take a payment at all (`rules.payments` judges the
# pauses when it may; `forbidden` rejects any recording spanning a payment window).
Payments = Literal["allowed_in_pause", "forbidden"]
Queue = Annotated[str, Field(pattern=QUEUE_PATTERN)]


class Scope(BaseModel):
    """What one scope (the tenant, or one of its queues) sets; None inherits from the scope above."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    terms: dict[str, str] = Field(default_factory=dict, description="data class -> ISO 8601 duration")
    grace: str | None = None
    recording_allowed: bool | None = None
    payments: Payments | None = None

    def merged(self, change: Scope) -> Scope:
        return Scope(
            terms={**self.terms, **change.terms},
            grace=change.grace if change.grace is not None else self.grace,
            recording_allowed=(
                change.recording_allowed if change.recording_allowed is not None else self.recording_allowed
            ),
            payments=change.payments if change.payments is not None else self.payments,
        )

    def described(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.terms)
        if self.grace is not None:
            out["grace"] = self.grace
        if self.recording_allowed is not None:
            out["recording_allowed"] = self.recording_allowed
        if self.payments is not None:
            out["payments"] = self.payments
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
    # Whose data the tenant's calls are: the company's own (its QA, as controller, the default), or the
    # client's, processed on its instructions; then data-subject requests go to `contact`.
    role: Role = "controller"
    contact: str | None = Field(
        None, description="where requests on a processor tenant's calls are forwarded"
    )
    # Additive (issue 29): the client's own KMS key (bring your own key), its objects sealed under it;
    # None: the key callvault keeps for the tenant (alias/callvault/{tenant}).
    kms_key: str | None = Field(
        None, description="the client's own KMS key ARN its objects are sealed under; none: callvault's"
    )
    # Additive (issue 33): written True since versions are proven before they apply: such a version is
    # applied only once its `policy.changed` was sent (a marker beside it says so); older ones were
    # proven as they were stored.
    needs_proof: bool = False


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
    """The shortest and longest term a policy may set, and how far ahead a version may take
    effect (settings): a version dated years ahead by mistake would stand pending that long."""

    shortest: CalendarDuration
    longest: CalendarDuration
    lead: CalendarDuration = CalendarDuration(years=1)


@dataclass(frozen=True, slots=True)
class Terms:
    """What applies to one call of one tenant and queue at one instant."""

    retention: RetentionPolicy
    grace: timedelta
    recording_allowed: bool
    version: int | None  # None: no policy, the defaults
    payments_forbidden: bool = False


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
    # Each bound may itself be set: a term is refused only when it may fall outside, whatever the calendar.
    if not _not_longer(bounds.shortest, duration):
        raise PolicyRefused(
            f"the {name} term {text} is shorter than the shortest allowed ({bounds.shortest})"
        )
    if not _not_longer(duration, bounds.longest):
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


def _checked_change(
    change: Scope, reason: str, changed_at: datetime, effective_at: datetime | None, bounds: Bounds
) -> datetime:
    """The instant a change takes effect, once what it says is within the bounds; refused otherwise."""
    if not reason.strip():
        raise PolicyRefused("a policy change needs a reason (--reason): the auditor reads it")
    if (
        not change.terms
        and change.grace is None
        and change.recording_allowed is None
        and change.payments is None
    ):
        raise PolicyRefused(
            "the change sets nothing: give a term, a grace, --no-recording/--recording or --payments"
        )
    check_scope(change, bounds)
    effective = effective_at or changed_at
    if effective < changed_at:
        raise PolicyRefused(
            "a change cannot take effect in the past: what was archived then was dated already"
        )
    if effective > add_duration(changed_at, bounds.lead, ZoneInfo("UTC")):
        raise PolicyRefused(
            f"--effective {effective:%Y-%m-%dT%H:%M:%SZ} is further ahead than {bounds.lead} "
            "(CALLVAULT_POLICY_MAX_LEAD): a version that far out would stand pending until then"
        )
    return effective


def _not_longer(term: CalendarDuration, than: CalendarDuration) -> bool:
    """Whether `term` is certainly no longer than `than`, whatever the calendar (P1M against P30D is not)."""
    return term == than or most_days(term) <= least_days(than)


def _tightens(change: Scope, base: PolicyVersion | None, queue: str | None, defaults: Defaults) -> bool:
    """Whether the change only makes callvault stricter than `base` for this scope: shorter terms, or
    recording no longer allowed. Only such a change may apply while another version is pending."""
    if change.grace is not None or change.recording_allowed is True or change.payments == "allowed_in_pause":
        return False
    standing = _scope_terms(base, queue, defaults).retention
    return all(
        _not_longer(CalendarDuration.parse(text), standing.duration_for(data_class(name).name))
        for name, text in change.terms.items()
    )


def _scope_of(version: PolicyVersion | None, queue: str | None) -> Scope:
    if version is None:
        return Scope()
    return version.tenant_rules if queue is None else version.queues.get(queue, Scope())


def _with_scope(
    version: PolicyVersion | None, queue: str | None, scope: Scope
) -> tuple[Scope, dict[str, Scope]]:
    tenant_rules = version.tenant_rules if version else Scope()
    queues = dict(version.queues) if version else {}
    if queue is None:
        return scope, queues
    queues[queue] = scope
    return tenant_rules, queues


def _carried(change: Scope, into: PolicyVersion, queue: str | None, defaults: Defaults) -> Scope | None:
    """What a tightening change makes of a pending version's scope: each term the shorter of the two,
    recording off where the change turns it off; None when the pending version is as strict already."""
    scope = _scope_of(into, queue)
    standing = _scope_terms(into, queue, defaults).retention
    terms = dict(scope.terms)
    for name, text in change.terms.items():
        if not _not_longer(standing.duration_for(data_class(name).name), CalendarDuration.parse(text)):
            terms[name] = text
    allowed = False if change.recording_allowed is False else scope.recording_allowed
    payments = "forbidden" if change.payments == "forbidden" else scope.payments
    carried = Scope(terms=terms, grace=scope.grace, recording_allowed=allowed, payments=payments)
    if carried == scope and (change.recording_allowed is not False or scope.recording_allowed is False):
        return None
    return carried


@dataclass(frozen=True, slots=True)
class Author:
    """Who makes a change, why and when: what every version it writes records."""

    changed_by: str
    reason: str
    changed_at: datetime


def _numbered(history: Sequence[PolicyVersion]) -> Callable[[], int]:
    numbers = iter(range(max((v.version for v in history), default=0) + 1, 1 << 62))
    return lambda: next(numbers)


def next_versions(
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
    defaults: Defaults,
) -> list[PolicyVersion]:
    """The versions a change makes, in the order to store them; refused with a sentence if it cannot be.

    Nothing pending after its instant: one version, the one in force then with the change merged in.
    Pending versions after it: a tightening change is carried into each of them first (a version at
    its instant), then takes effect itself; any other change is refused with what to do instead.
    """
    if queue is not None and not re.fullmatch(QUEUE_PATTERN, queue):
        raise PolicyRefused(
            f"the queue {queue!r} is not a queue name (lowercase letters, digits, '.', '_', '-'; at most 64)"
        )
    effective = _checked_change(change, reason, changed_at, effective_at, bounds)
    author = Author(changed_by, reason, changed_at)
    base = version_at(history, effective)
    later = pending_versions(history, effective)
    if later and not _tightens(change, base, queue, defaults):
        first = later[0]
        raise PolicyRefused(
            f"version {first.version} takes effect at {first.effective_at:%Y-%m-%dT%H:%M:%SZ}; only a "
            "shorter term or --no-recording applies before it (and is carried into it). Change the rest "
            f"from its instant (--effective), or cancel it first: callvault policy cancel {tenant} "
            f"{first.version} --reason ..."
        )
    number = _numbered(history)
    described = change.described()
    out: list[PolicyVersion] = []
    for pending in later:
        carried = _carried(change, pending, queue, defaults)
        if carried is not None:
            tenant_rules, queues = _with_scope(pending, queue, carried)
            out.append(
                _version(tenant, number(), pending.effective_at, author, tenant_rules, queues,
                         pending.allowed_sites, {"carried_into": pending.version, **_where(queue, described)},
                         pending)
            )  # fmt: skip
    tenant_rules, queues = _with_scope(base, queue, _scope_of(base, queue).merged(change))
    sites = base.allowed_sites if base else []
    out.append(
        _version(
            tenant, number(), effective, author, tenant_rules, queues, sites, _where(queue, described), base
        )
    )
    return out


def _where(queue: str | None, described: dict[str, Any]) -> dict[str, Any]:
    return {"queue": queue, **described} if queue else described


def _version(
    tenant: str,
    number: int,
    effective_at: datetime,
    author: Author,
    tenant_rules: Scope,
    queues: dict[str, Scope],
    sites: Iterable[str],
    change: dict[str, Any],
    standing: PolicyVersion | None,
) -> PolicyVersion:
    """A version; its role and contact those of `standing` (what it is built on) unless it changes them."""
    return PolicyVersion(
        tenant=tenant,
        version=number,
        effective_at=effective_at,
        changed_at=author.changed_at,
        changed_by=author.changed_by,
        reason=author.reason,
        tenant_rules=tenant_rules,
        queues=queues,
        allowed_sites=sorted(sites),
        change=change,
        role=change.get("role", standing.role if standing else "controller"),
        contact=change["contact"] if "contact" in change else (standing.contact if standing else None),
        kms_key=change["kms_key"] if "kms_key" in change else (standing.kms_key if standing else None),
    )


KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):(key|alias)/[A-Za-z0-9/_:-]{1,256}$")


def key_versions(
    history: Sequence[PolicyVersion],
    tenant: str,
    kms_key: str | None,
    allowed_regions: frozenset[str],
    *,
    changed_by: str,
    reason: str,
    changed_at: datetime,
) -> list[PolicyVersion]:
    """The version that seals the tenant's new objects under the client's own KMS key (`kms_key`, an ARN
    in a region the settings allow), or again under callvault's (None), at once. What was sealed before
    stays under the key it was sealed with."""
    if not reason.strip():
        raise PolicyRefused("a policy change needs a reason (--reason): the auditor reads it")
    if kms_key is not None:
        found = KMS_KEY_ARN.match(kms_key)
        if found is None:
            raise PolicyRefused(
                "a client's own key is named by its KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), "
                f"not {kms_key!r}"
            )
        if found.group(1) not in allowed_regions:
            raise PolicyRefused(
                f"the key is in {found.group(1)}, which CALLVAULT_ALLOWED_REGIONS does not allow: the keys "
                "that open the client's data stay where its data may be"
            )
    _refuse_while_pending(history, tenant, changed_at, "key")
    base = version_at(history, changed_at)
    rules, queues = _with_scope(base, None, _scope_of(base, None))
    sites = base.allowed_sites if base else []
    author = Author(changed_by, reason, changed_at)
    change: dict[str, Any] = {"kms_key": kms_key}
    return [_version(tenant, _numbered(history)(), changed_at, author, rules, queues, sites, change, base)]


def kms_key_at(history: Sequence[PolicyVersion], at: datetime) -> str | None:
    """The client's own KMS key at `at` (None: callvault's key for the tenant)."""
    version = version_at(history, at)
    return version.kms_key if version is not None else None


def site_versions(
    history: Sequence[PolicyVersion],
    tenant: str,
    site: str,
    allow: bool,
    *,
    changed_by: str,
    reason: str,
    changed_at: datetime,
) -> list[PolicyVersion]:
    """The versions that allow (or no longer allow) a processing site outside the EEA, in force at once.

    A withdrawal is never held back: it is carried into every pending version too. Allowing a site
    while a version is pending is refused: the pending version, built before, would withdraw it again.
    """
    if not reason.strip():
        raise PolicyRefused("a policy change needs a reason (--reason): the auditor reads it")
    author = Author(changed_by, reason, changed_at)
    base = version_at(history, changed_at)
    later = pending_versions(history, changed_at)
    number = _numbered(history)
    if allow:
        if later:
            first = later[0]
            raise PolicyRefused(
                f"version {first.version} takes effect at {first.effective_at:%Y-%m-%dT%H:%M:%SZ}; allow "
                f"the site once it has, or cancel it first: callvault policy cancel {tenant} "
                f"{first.version} --reason ..."
            )
        if base is not None and site in base.allowed_sites:
            raise PolicyRefused(f"tenant {tenant!r} allows the site {site!r} already")
        sites = {*(base.allowed_sites if base else ()), site}
        rules, queues = _with_scope(base, None, _scope_of(base, None))
        return [
            _version(tenant, number(), changed_at, author, rules, queues, sites, {"allow_site": site}, base)
        ]
    holding = [v for v in (base, *later) if v is not None and site in v.allowed_sites]
    if not holding:
        raise PolicyRefused(f"tenant {tenant!r} does not allow the site {site!r}; nothing to deny")
    out = [
        _version(tenant, number(), v.effective_at, author, v.tenant_rules, dict(v.queues),
                 set(v.allowed_sites) - {site}, {"deny_site": site, "carried_into": v.version}, v)
        for v in later if site in v.allowed_sites
    ]  # fmt: skip
    if base is not None and site in base.allowed_sites:
        out.append(
            _version(tenant, number(), changed_at, author, base.tenant_rules, dict(base.queues),
                     set(base.allowed_sites) - {site}, {"deny_site": site}, base)
        )  # fmt: skip
    return out


def cancel_version(
    history: Sequence[PolicyVersion], tenant: str, cancelled: int, *, changed_by: str, reason: str,
    changed_at: datetime,
) -> PolicyVersion:  # fmt: skip
    """The version that cancels a pending one: at its instant, what stood just before it.

    Only the last pending version can be cancelled (a later one was built on it), and only while it
    is pending: once in force, objects were dated by it, and a new change is what replaces it.
    """
    if not reason.strip():
        raise PolicyRefused("a cancellation needs a reason (--reason): the auditor reads it")
    target = next((v for v in history if v.version == cancelled), None)
    if target is None:
        raise PolicyRefused(f"tenant {tenant!r} has no policy version {cancelled}")
    if target.effective_at <= changed_at:
        raise PolicyRefused(
            f"version {cancelled} took effect at {target.effective_at:%Y-%m-%dT%H:%M:%SZ}: objects were "
            "dated by it; a new change (callvault policy set) is what replaces it"
        )
    standing = version_at(history, target.effective_at)
    if standing is not None and standing is not target:
        raise PolicyRefused(
            f"version {cancelled} was replaced at its instant by version {standing.version}; "
            f"cancel version {standing.version}"
        )
    after = pending_versions(history, target.effective_at)
    if after:
        raise PolicyRefused(
            f"version {after[0].version} takes effect after version {cancelled} and was built on it; "
            f"cancel version {after[0].version} first"
        )
    before = version_at([v for v in history if v.effective_at < target.effective_at], target.effective_at)
    rules, queues = _with_scope(before, None, _scope_of(before, None))
    sites = before.allowed_sites if before else []
    author = Author(changed_by, reason, changed_at)
    number = _numbered(history)
    return _version(
        tenant, number(), target.effective_at, author, rules, queues, sites, {"cancels": cancelled}, before
    )


def _refuse_while_pending(history: Sequence[PolicyVersion], tenant: str, at: datetime, what: str) -> None:
    """A change in force at once is refused while a version is pending: built before, that version would
    undo it when it takes effect."""
    later = pending_versions(history, at)
    if later:
        first = later[0]
        raise PolicyRefused(
            f"version {first.version} takes effect at {first.effective_at:%Y-%m-%dT%H:%M:%SZ}; change the "
            f"{what} once it has, or cancel it first: callvault policy cancel {tenant} {first.version} "
            "--reason ..."
        )


def role_versions(
    history: Sequence[PolicyVersion],
    tenant: str,
    role: Role | None,
    contact: str | None,
    *,
    changed_by: str,
    reason: str,
    changed_at: datetime,
) -> list[PolicyVersion]:
    """The version that says whose data the tenant's calls are (and where its requests go), at once.

    A processor tenant needs a contact: its subjects' requests are forwarded there. Refused while a
    version is pending, which, built before, would undo it when it takes effect.
    """
    if not reason.strip():
        raise PolicyRefused("a policy change needs a reason (--reason): the auditor reads it")
    if role is None and contact is None:
        raise PolicyRefused("give --role, --contact or both")
    if contact is not None and not contact.strip():
        raise PolicyRefused("--contact is empty: say where the client takes its subjects' requests")
    _refuse_while_pending(history, tenant, changed_at, "role")
    base = version_at(history, changed_at)
    change: dict[str, Any] = {}
    if role is not None:
        change["role"] = role
    if contact is not None:
        change["contact"] = contact.strip()
    becomes = change.get("role", base.role if base else "controller")
    if becomes == "processor" and not change.get("contact", base.contact if base else None):
        raise PolicyRefused(
            f"a processor tenant's subject requests are forwarded to the client: give --contact (who at "
            f"{tenant} takes them)"
        )
    rules, queues = _with_scope(base, None, _scope_of(base, None))
    sites = base.allowed_sites if base else []
    author = Author(changed_by, reason, changed_at)
    return [_version(tenant, _numbered(history)(), changed_at, author, rules, queues, sites, change, base)]


def role_at(history: Sequence[PolicyVersion], at: datetime) -> tuple[Role, str | None]:
    """Whose data the tenant's calls were at `at`, and where its requests go: the controller's by default."""
    version = version_at(history, at)
    return (version.role, version.contact) if version is not None else ("controller", None)


def allowed_sites_at(history: Sequence[PolicyVersion], at: datetime) -> frozenset[str]:
    """The sites outside the EEA the tenant allows at `at` (none without a policy)."""
    version = version_at(history, at)
    return frozenset(version.allowed_sites) if version is not None else frozenset()


def version_at(history: Sequence[PolicyVersion], at: datetime) -> PolicyVersion | None:
    """The version in force at `at`: of those that have taken effect, the latest to take effect, and of
    several taking effect at one instant the highest number (it replaced, rebased or cancelled the
    others); None before the first. Reads `history` in any order."""
    found = None
    for version in history:
        if version.effective_at <= at and (
            found is None or (version.effective_at, version.version) > (found.effective_at, found.version)
        ):
            found = version
    return found


def pending_versions(history: Sequence[PolicyVersion], after: datetime) -> list[PolicyVersion]:
    """The versions that will stand after `after`: for each later instant, the one in force from it."""
    instants = sorted({v.effective_at for v in history if v.effective_at > after})
    return [v for v in (version_at(history, at) for at in instants) if v is not None]


def _scope_terms(version: PolicyVersion | None, queue: str | None, defaults: Defaults) -> Terms:
    scope = Scope()
    if version is not None:
        scope = version.tenant_rules
        if queue is not None and queue in version.queues:
            scope = scope.merged(version.queues[queue])
    terms = {
        c.name: CalendarDuration.parse(scope.terms[c.name])
        if c.name in scope.terms
        else defaults.retention.duration_for(c.name)
        for c in data_classes()
    }
    grace = CalendarDuration.parse(scope.grace) if scope.grace is not None else defaults.grace
    return Terms(
        retention=RetentionPolicy(terms=terms, zone=defaults.zone),
        grace=grace.as_timedelta(),
        recording_allowed=scope.recording_allowed is not False,
        version=version.version if version is not None else None,
        payments_forbidden=scope.payments == "forbidden",
    )


def terms_at(history: Sequence[PolicyVersion], queue: str | None, at: datetime, defaults: Defaults) -> Terms:
    """What applies at `at` to a call of this tenant (its `history`) and queue."""
    return _scope_terms(version_at(history, at), queue, defaults)


class Dated(NamedTuple):
    due_at: datetime
    policy_version: int | None  # the version whose term gave the date; None: the defaults


def due_at(
    retention_class: str,
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
    retention_class: str,
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


def redated_from_archive(
    tagged: Dated,
    retention_class: str,
    started_at: datetime,
    archived_at: datetime,
    queue: str | None,
    history: Sequence[PolicyVersion],
    defaults: Defaults,
    as_of: datetime,
    *,
    known: int | None,
) -> Dated:
    """`redated`, and more: a worker reads new versions every few seconds, so an object archived in
    between was dated by the version before. Where the object says which was the newest version its
    worker knew (`known`) and the version in force at its archive is newer, that version dates it,
    up or down: a lengthening applies to what is archived after it (issue 31). Objects archived before
    workers said what they knew keep their tags' date."""
    in_force = version_at(history, archived_at)
    stored_before = in_force is not None and in_force.changed_at < archived_at
    if known is not None and in_force is not None and stored_before and in_force.version > known:
        return due_at(retention_class, started_at, archived_at, queue, history, defaults, as_of)
    return redated(tagged, retention_class, started_at, archived_at, queue, history, defaults, as_of)


def terms_ever(
    retention_class: str, history: Iterable[PolicyVersion], defaults: Defaults
) -> list[CalendarDuration]:
    """Every term a rule of this tenant gives the class (and the default's): what the purger's walk
    prunes with, and what the lifecycle backstop must never undercut."""
    found = [defaults.retention.duration_for(retention_class)]
    for version in history:
        for queue in (None, *version.queues):
            found.append(_scope_terms(version, queue, defaults).retention.duration_for(retention_class))
    unique: dict[str, CalendarDuration] = {str(d): d for d in found}
    return list(unique.values())
