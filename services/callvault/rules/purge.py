"""What a purge pass at time T deletes: pure decisions, no I/O.

Archived keys are dated by the UTC day of the instant their retention counts
from (`{tenant}/{YYYY}/{MM}/{DD}/...`). Retention only ever moves an instant
forward, so a whole year, month or day of keys can be judged from its first and
last instant: nothing in it is due yet, all of it is due, or some of it is (then
each object's own due date decides). That is how a pass finds due objects
without reading the whole store: it walks only the periods that may hold some.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from callvault.rules.call_ref import call_ref
from callvault.rules.durations import CalendarDuration, add_duration
from callvault.rules.retention import RetentionPolicy

_TICK = timedelta(microseconds=1)


class Due(StrEnum):
    NONE = "none"  # nothing in the period is due at T
    SOME = "some"  # each object's own due date decides
    ALL = "all"  # every object in the period is due at T


def period_due(
    first_day: date, last_day: date, retention_class: str, policy: RetentionPolicy, as_of: datetime
) -> Due:
    """How much of the keys dated `first_day`..`last_day` (UTC, inclusive) is due at `as_of`."""
    return period_due_within(first_day, last_day, [policy.duration_for(retention_class)], policy.zone, as_of)


def period_due_within(
    first_day: date, last_day: date, terms: Sequence[CalendarDuration], zone: ZoneInfo, as_of: datetime
) -> Due:
    """As `period_due`, when each object's term is one of `terms` (a tenant's client policies):
    nothing is due while the shortest has not run out for the period's first instant; all of
    it once the longest has for its last."""
    start = period_start(first_day)
    end = period_end(last_day)
    if min(add_duration(start, t, zone) for t in terms) > as_of:
        return Due.NONE
    if max(add_duration(end, t, zone) for t in terms) <= as_of:
        return Due.ALL
    return Due.SOME


def period_start(first_day: date) -> datetime:
    return datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)


def period_end(last_day: date) -> datetime:
    """The last instant of `last_day` (UTC): the latest an object dated that day can have begun."""
    return datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC) - _TICK


def year_span(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, 31)


def month_span(year: int, month: int) -> tuple[date, date]:
    following = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, 1), following - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One archived key as the store shows it, with every version the key holds."""

    bucket: str
    key: str
    tenant: str
    call_id: str
    retention_class: str
    due_at: datetime
    sha256: str
    size_bytes: int
    versions: tuple[str, ...]  # version ids and delete markers; ("null",) in an unversioned bucket
    subjects: tuple[str, ...] = ()  # a metadata document's participants: their index entries go with it
    policy_version: int | None = None  # the client-policy version that dates it (None: the defaults)

    @property
    def call(self) -> str:
        """The call it belongs to, `{tenant}/{call_id}`."""
        return call_ref(self.tenant, self.call_id)


@dataclass(frozen=True, slots=True)
class Hold:
    call_id: str
    reason: str
    placed_at: datetime
    placed_by: str
    tenant: str


@dataclass(slots=True)
class PassPlan:
    delete: list[StoredObject] = field(default_factory=list)
    held: list[tuple[StoredObject, Hold]] = field(default_factory=list)
    not_due: int = 0


def plan_pass(objects: Iterable[StoredObject], holds: Mapping[str, Hold], as_of: datetime) -> PassPlan:
    """Due objects are deleted unless their call is under a legal hold; nothing is ever deleted early.

    `holds` is keyed by `{tenant}/{call_id}`: a hold keeps one tenant's call, not every call of that id.
    """
    plan = PassPlan()
    for obj in objects:
        if obj.due_at > as_of:
            plan.not_due += 1
        elif obj.call in holds:
            plan.held.append((obj, holds[obj.call]))
        else:
            plan.delete.append(obj)
    plan.delete.sort(key=lambda o: (o.due_at, o.bucket, o.key))
    return plan


def batches(objects: list[StoredObject], max_keys: int) -> list[list[StoredObject]]:
    """Objects grouped so that no batch names more than `max_keys` versions (DeleteObjects takes 1,000).

    An object is never split across batches: its proof must follow the removal of all its versions.
    """
    out: list[list[StoredObject]] = []
    current: list[StoredObject] = []
    count = 0
    for obj in objects:
        size = len(obj.versions)
        if current and count + size > max_keys:
            out.append(current)
            current, count = [], 0
        current.append(obj)
        count += size
    if current:
        out.append(current)
    return out


def lateness_s(due_at: datetime, deleted_at: datetime) -> float:
    """Seconds past due at deletion; never negative since nothing is deleted before it is due."""
    return max(0.0, (deleted_at - due_at).total_seconds())


@dataclass
class RefusalStreaks:
    """Which due objects the store keeps refusing to delete, since when and for how many passes.

    A refusal is proven once per streak (`deletion.refused` at its first pass); the purger tries
    again every pass, and an object deleted, or no longer due, ends its streak.
    """

    streaks: dict[tuple[str, str], tuple[datetime, int]] = field(default_factory=dict)

    def refused(self, bucket: str, key: str, now: datetime) -> tuple[datetime, int, bool]:
        """The streak's first refusal, its passes counting this one, and whether it starts now."""
        first, passes = self.streaks.get((bucket, key), (now, 0))
        self.streaks[(bucket, key)] = (first, passes + 1)
        return first, passes + 1, passes == 0

    def ended(self, bucket: str, keys: Iterable[str]) -> None:
        for key in keys:
            self.streaks.pop((bucket, key), None)
