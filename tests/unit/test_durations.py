"""Calendar arithmetic of retention: months in Europe/Brussels, month ends, DST."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callvault.rules.durations import CalendarDuration, add_duration, add_months_clamped
from callvault.rules.retention import RetentionClass, RetentionPolicy, backstop_days

BRUSSELS = ZoneInfo("Europe/Brussels")
P1M = CalendarDuration.parse("P1M")
P6M = CalendarDuration.parse("P6M")

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1M", CalendarDuration(months=1)),
        ("P6M", CalendarDuration(months=6)),
        ("P1Y2M3D", CalendarDuration(years=1, months=2, days=3)),
        ("P2W", CalendarDuration(days=14)),
        ("PT5M", CalendarDuration(seconds=300)),
        ("PT0.5S", CalendarDuration(seconds=0.5)),
        ("P1DT2H", CalendarDuration(days=1, seconds=7200)),
        ("pt30s", CalendarDuration(seconds=30)),
    ],
)
def test_parse(text: str, expected: CalendarDuration) -> None:
    assert CalendarDuration.parse(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "1M", "P1.5M", "P-1M", "month", "PT5"])
def test_parse_rejects_with_a_sentence(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 duration"):
        CalendarDuration.parse(text)


def test_str_round_trips() -> None:
    for text in ["P1M", "P6M", "P1Y2M3DT4H5M6S", "PT5M", "PT0S"]:
        assert str(CalendarDuration.parse(text)) == text


def _brussels(*args: int) -> datetime:
    return datetime(*args, tzinfo=BRUSSELS)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Month ends clamp: 31 January + P1M is the last day of February.
        (_brussels(2026, 1, 31, 14, 0), _brussels(2026, 2, 28, 14, 0)),
        (_brussels(2028, 1, 31, 14, 0), _brussels(2028, 2, 29, 14, 0)),
        (_brussels(2026, 3, 31, 9, 0), _brussels(2026, 4, 30, 9, 0)),
        # Across the spring DST change: same wall time, one hour less elapsed.
        (_brussels(2026, 3, 15, 10, 0), _brussels(2026, 4, 15, 10, 0)),
        # Across the autumn change.
        (_brussels(2026, 10, 10, 10, 0), _brussels(2026, 11, 10, 10, 0)),
        # A month counted in Brussels, not UTC: 00:30 on 1 March local is still February in UTC.
        (_brussels(2026, 3, 1, 0, 30), _brussels(2026, 4, 1, 0, 30)),
    ],
)
def test_p1m_examples(start: datetime, expected: datetime) -> None:
    assert add_duration(start, P1M, BRUSSELS) == expected.astimezone(UTC)


def test_spring_forward_gap_lands_after_the_gap() -> None:
    # 29 March 2026: 02:00 -> 03:00 in Brussels. 28 Feb 02:30 + P1M has no wall time 02:30.
    start = _brussels(2026, 2, 28, 2, 30)
    result = add_duration(start, CalendarDuration(days=29), BRUSSELS)
    assert result == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST, just after the gap
    assert result.astimezone(BRUSSELS).hour == 3


def test_ambiguous_autumn_time_takes_the_first_occurrence() -> None:
    # 25 October 2026: 03:00 CEST -> 02:00 CET, so 02:30 happens twice.
    start = _brussels(2026, 9, 25, 2, 30)
    result = add_duration(start, P1M, BRUSSELS)
    assert result == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, the first one


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        add_duration(datetime(2026, 1, 1), P1M, BRUSSELS)


@given(
    year=st.integers(1900, 2200), month=st.integers(1, 12), day=st.integers(1, 31), months=st.integers(0, 240)
)
def test_months_clamped_properties(year: int, month: int, day: int, months: int) -> None:
    day = min(day, calendar.monthrange(year, month)[1])
    y, m, d = add_months_clamped(year, month, day, months)
    assert (y * 12 + m) - (year * 12 + month) == months
    assert d == min(day, calendar.monthrange(y, m)[1])


@given(instants)
def test_p1m_keeps_the_local_wall_time_and_clamps_the_day(start: datetime) -> None:
    result = add_duration(start, P1M, BRUSSELS).astimezone(BRUSSELS)
    local = start.astimezone(BRUSSELS)
    target_month = local.month % 12 + 1
    assert result.month == target_month
    assert result.day == min(local.day, calendar.monthrange(result.year, result.month)[1])
    # The wall time is kept, except inside the spring-forward gap, where it moves by the gap.
    kept = datetime.combine(result.date(), local.time())
    assert abs(result.replace(tzinfo=None) - kept) in (timedelta(0), timedelta(hours=1))


@given(instants)
def test_p1m_is_between_28_and_31_days_give_or_take_dst(start: datetime) -> None:
    elapsed = add_duration(start, P1M, BRUSSELS) - start
    assert timedelta(days=28, hours=-1) <= elapsed <= timedelta(days=31, hours=1)


@given(instants, instants)
def test_retention_is_monotonic(a: datetime, b: datetime) -> None:
    early, late = sorted((a, b))
    for duration in (P1M, P6M):
        assert add_duration(early, duration, BRUSSELS) <= add_duration(late, duration, BRUSSELS)


@given(instants)
def test_metadata_outlives_the_recording(start: datetime) -> None:
    policy = RetentionPolicy({RetentionClass.RECORDING: P1M, RetentionClass.METADATA: P6M}, BRUSSELS)
    rec = policy.expires_at(RetentionClass.RECORDING, start)
    meta = policy.expires_at(RetentionClass.METADATA, start)
    assert start < rec < meta
    assert not policy.has_elapsed(RetentionClass.RECORDING, start, rec - timedelta(microseconds=1))
    assert policy.has_elapsed(RetentionClass.RECORDING, start, rec)


@given(instants)
def test_the_backstop_never_acts_before_the_due_date(start: datetime) -> None:
    for duration in (P1M, P6M, CalendarDuration.parse("P1Y"), CalendarDuration.parse("P45D")):
        due = add_duration(start, duration, BRUSSELS)
        assert start + timedelta(days=backstop_days(duration)) > due
