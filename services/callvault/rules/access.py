"""Who may see which call, and what the API answers when they may not.

The privacy statement limits access to staff who need it for quality control;
GDPR article 18 limits a restricted subject's data to storage. The verdict is a
pure function of the caller's grant, what the store says about the call, and
the time, so every refusal can be unit-tested and explained.

Order matters: a call of a tenant outside the grant is "not found" before any
other check, so a refusal never confirms that another client's call exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from callvault.contract.roles import Role

ALL_TENANTS = "*"


class Want(StrEnum):
    SEARCH = "search"
    METADATA = "metadata"
    AUDIO = "audio"
    SUBJECT_REQUESTS = "subject_requests"  # file and follow data-subject requests
    POLICIES = "policies"  # change a client's policy
    POLICY_READ = "policy_read"  # read a client's policy and its history


_CALLS = frozenset({Want.SEARCH, Want.METADATA, Want.AUDIO})
# Auditors check who listened to what; they do not need to listen themselves.
# Subject requests are the DPO's alone: they erase data and read whole histories.
PERMISSIONS: dict[Role, frozenset[Want]] = {
    Role.QA: _CALLS,
    Role.AUDITOR: frozenset({Want.SEARCH, Want.METADATA, Want.POLICY_READ}),
    Role.DPO: frozenset(Want),
    Role.ADMIN: _CALLS,
}

# Restriction leaves storage and the handling of the subject's own request: the DPO's job.
OPENS_RESTRICTED: frozenset[Role] = frozenset({Role.DPO})


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token allows: one person, one role, some tenants."""

    subject: str
    role: Role
    tenants: frozenset[str]
    token_id: str
    site: str | None = None  # the processing site of the person (see rules.sites)

    def sees(self, tenant: str) -> bool:
        return ALL_TENANTS in self.tenants or tenant in self.tenants

    def may(self, want: Want) -> bool:
        return want in PERMISSIONS[self.role]


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the archived metadata says about a call, as far as access is concerned."""

    tenant: str
    metadata_expires_at: datetime
    recording_archived: bool
    recording_expires_at: datetime | None
    recording_outcome: str | None
    restricted: bool = False


class Answer(StrEnum):
    ALLOW = "allow"
    NOT_FOUND = "not_found"  # 404
    FORBIDDEN = "forbidden"  # 403: the role, never the tenant
    GONE = "gone"  # 410: past retention or deleted
    RESTRICTED = "restricted"  # 451: a subject's restriction


@dataclass(frozen=True, slots=True)
class Verdict:
    answer: Answer
    reason: str

    @property
    def allowed(self) -> bool:
        return self.answer is Answer.ALLOW


def decide(
    grant: Grant,
    want: Want,
    tenant: str,
    call_id: str,
    facts: CallFacts | None,
    now: datetime,
    *,
    day_erased: bool = False,
) -> Verdict:
    """May `grant` have `want` of call `call_id` of `tenant`?

    `facts` is None when the store has no metadata for the call; `day_erased` says
    whether every call of that day is past its metadata retention (then the call,
    if it existed, is gone rather than unknown).
    """
    if not grant.sees(tenant):
        return Verdict(Answer.NOT_FOUND, f"no call {call_id!r} in tenant {tenant!r}")
    if not grant.may(want):
        return Verdict(Answer.FORBIDDEN, f"the role {grant.role.value!r} may not {_verb(want)}")
    if facts is None:
        if day_erased:
            return Verdict(Answer.GONE, "calls of that day are past their metadata retention and erased")
        return Verdict(Answer.NOT_FOUND, f"no call {call_id!r} in tenant {tenant!r}")
    if facts.metadata_expires_at <= now:
        return Verdict(Answer.GONE, f"the call's metadata expired at {facts.metadata_expires_at.isoformat()}")
    if facts.restricted and grant.role not in OPENS_RESTRICTED:
        return Verdict(
            Answer.RESTRICTED,
            "a participant of this call asked to restrict the processing of their data "
            "(GDPR article 18); until that is lifted only the DPO may open it",
        )
    if want is Want.AUDIO:
        if not facts.recording_archived:
            outcome = facts.recording_outcome or "no recording reported"
            return Verdict(Answer.NOT_FOUND, f"this call has no archived recording ({outcome})")
        if facts.recording_expires_at is not None and facts.recording_expires_at <= now:
            return Verdict(
                Answer.GONE,
                f"the recording expired at {facts.recording_expires_at.isoformat()} and is erased",
            )
    return Verdict(Answer.ALLOW, "allowed")


def _verb(want: Want) -> str:
    return {
        Want.SEARCH: "search calls",
        Want.METADATA: "read call metadata",
        Want.AUDIO: "listen to recordings",
        Want.SUBJECT_REQUESTS: "handle data-subject requests",
    }[want]


def days_left(expires_at: datetime, now: datetime) -> int:
    """Whole days until expiry, rounded up (a coach reads "1 day left" until the last second)."""
    seconds = (expires_at - now).total_seconds()
    return max(0, math.ceil(seconds / 86400))
