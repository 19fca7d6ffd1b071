"""What a purge pass deletes: never early, never held, periods judged soundly (property-based)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from callvault.rules.durations import CalendarDuration
from callvault.rules.purge import (
    Due,
    Hold,
    StoredObject,
    batches,
    lateness_s,
    month_span,
    period_due,
    plan_pass,
    year_span,
)
from callvault.rules.retention import RetentionClass, RetentionPolicy

POLICY = RetentionPolicy(
    terms={
        RetentionClass.RECORDING: CalendarDuration.parse("P1M"),
        RetentionClass.METADATA: CalendarDuration.parse("P6M"),
    },
    zone=ZoneInfo("Europe/Brussels"),
)
CLASSES = st.sampled_from(list(RetentionClass))
days = st.dates(min_value=date(2020, 1, 1), max_value=date(2040, 12, 31))
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2041, 12, 31), timezones=st.just(UTC)
)
ORDER = {Due.NONE: 0, Due.SOME: 1, Due.ALL: 2}


@given(days, CLASSES, instants, st.integers(0, 86_399_999_999))
def test_a_day_judged_all_or_none_agrees_with_each_of_its_instants(
    day: date, cls: RetentionClass, as_of: datetime, micros: int
) -> None:
    moment = datetime.combine(day, time(), tzinfo=UTC) + timedelta(microseconds=micros)
    verdict = period_due(day, day, cls, POLICY, as_of)
    due = POLICY.expires_at(cls, moment) <= as_of
    if verdict is Due.ALL:
        assert due
    if verdict is Due.NONE:
        assert not due


@given(days, CLASSES, instants, st.integers(1, 400))
def test_later_days_are_never_more_due(day: date, cls: RetentionClass, as_of: datetime, gap: int) -> None:
    """The walk stops at the first day with nothing due: every later day must have nothing due."""
    earlier = period_due(day, day, cls, POLICY, as_of)
    later = period_due(day + timedelta(days=gap), day + timedelta(days=gap), cls, POLICY, as_of)
    assert ORDER[later] <= ORDER[earlier]


@given(days, CLASSES, instants, st.integers(0, 10**8))
def test_time_only_makes_more_due(day: date, cls: RetentionClass, as_of: datetime, later_s: int) -> None:
    before = period_due(day, day, cls, POLICY, as_of)
    after = period_due(day, day, cls, POLICY, as_of + timedelta(seconds=later_s))
    assert ORDER[after] >= ORDER[before]


@given(days, CLASSES, instants)
def test_a_month_or_year_with_nothing_due_holds_no_due_day(
    day: date, cls: RetentionClass, as_of: datetime
) -> None:
    if period_due(*month_span(day.year, day.month), cls, POLICY, as_of) is Due.NONE:
        assert period_due(day, day, cls, POLICY, as_of) is Due.NONE
    if period_due(*year_span(day.year), cls, POLICY, as_of) is Due.NONE:
        assert period_due(day, day, cls, POLICY, as_of) is Due.NONE


def test_month_spans_end_on_the_last_day() -> None:
    assert month_span(2028, 2) == (date(2028, 2, 1), date(2028, 2, 29))
    assert month_span(2026, 12) == (date(2026, 12, 1), date(2026, 12, 31))


def test_a_recording_of_31_january_is_due_at_the_end_of_february_in_brussels() -> None:
    jan31 = date(2027, 1, 31)
    assert (
        period_due(jan31, jan31, RetentionClass.RECORDING, POLICY, datetime(2027, 2, 27, tzinfo=UTC))
        is Due.NONE
    )
    assert (
        period_due(jan31, jan31, RetentionClass.RECORDING, POLICY, datetime(2027, 3, 1, tzinfo=UTC))
        is Due.ALL
    )


def _obj(i: int, due: datetime, versions: int = 1) -> StoredObject:
    return StoredObject(
        bucket="b", key=f"t/2026/01/01/c{i}.wav", tenant="t", call_id=f"c{i}",
        retention_class=RetentionClass.RECORDING, due_at=due, sha256="0" * 64, size_bytes=1,
        versions=tuple(f"v{j}" for j in range(versions)),
    )  # fmt: skip


objects = st.lists(st.tuples(instants, st.integers(1, 5)), max_size=60).map(
    lambda xs: [_obj(i, due, n) for i, (due, n) in enumerate(xs)]
)


@given(objects, instants, st.sets(st.integers(0, 59)))
def test_a_pass_never_deletes_early_or_held_and_accounts_for_every_object(
    objs: list[StoredObject], as_of: datetime, held_ids: set[int]
) -> None:
    holds = {f"t/c{i}": Hold(f"c{i}", "case", as_of, "dpo", "t") for i in held_ids}
    # The same ids held in another tenant keep nothing of tenant t.
    holds |= {f"u/c{i}": Hold(f"c{i}", "case", as_of, "dpo", "u") for i in range(60)}
    plan = plan_pass(objs, holds, as_of)
    assert all(o.due_at <= as_of and f"t/{o.call_id}" not in holds for o in plan.delete)
    assert all(o.due_at <= as_of and f"t/{o.call_id}" in holds for o, _ in plan.held)
    assert len(plan.delete) + len(plan.held) + plan.not_due == len(objs)


@given(objects, st.integers(1, 12))
def test_batches_keep_every_object_whole_and_within_the_request_limit(
    objs: list[StoredObject], max_keys: int
) -> None:
    groups = batches(objs, max_keys)
    assert [o for g in groups for o in g] == objs
    for group in groups:
        assert sum(len(o.versions) for o in group) <= max_keys or len(group) == 1


@given(instants, st.floats(-1e6, 1e6, allow_nan=False))
def test_lateness_is_never_negative(due: datetime, offset: float) -> None:
    assert lateness_s(due, due + timedelta(seconds=offset)) >= 0
