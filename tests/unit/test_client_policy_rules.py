"""The client-policy rules: which version dates an object, and the walk that must find it. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callvault.rules.client_policy import (
    Bounds,
    Dated,
    Defaults,
    PolicyRefused,
    PolicyVersion,
    Scope,
    due_at,
    next_version,
    terms_at,
    terms_ever,
    version_at,
)
from callvault.rules.durations import CalendarDuration, add_duration
from callvault.rules.purge import Due, period_due_within
from callvault.rules.retention import RetentionClass, RetentionPolicy

ZONE = ZoneInfo("Europe/Brussels")
DEFAULTS = Defaults(
    RetentionPolicy(
        {
            RetentionClass.RECORDING: CalendarDuration(months=1),
            RetentionClass.METADATA: CalendarDuration(months=6),
        },
        ZONE,
    ),
    CalendarDuration.parse("PT5M"),
)
BOUNDS = Bounds(CalendarDuration(days=1), CalendarDuration(years=10))
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
REC = RetentionClass.RECORDING

terms = st.sampled_from(["P1D", "P3D", "P7D", "P14D", "P1M", "P2M", "P3M", "P6M", "P1Y"])
queues = st.sampled_from([None, "sales", "complaints"])
# A history: each change (after some days) sets the recording term of the tenant or of a queue.
changes = st.lists(st.tuples(st.integers(0, 60), queues, terms), min_size=0, max_size=6)


def build(steps: list[tuple[int, str | None, str]]) -> list[PolicyVersion]:
    history: list[PolicyVersion] = []
    at = T0
    for days, queue, term in steps:
        at = at + timedelta(days=days)
        history.append(
            next_version(
                history,
                "acme",
                Scope(terms={"recording": term}),
                queue,
                changed_by="dpo",
                reason="contract",
                changed_at=at,
                effective_at=at,
                bounds=BOUNDS,
            )  # fmt: skip
        )
    return history


def in_force_since(
    history: list[PolicyVersion], queue: str | None, archived: datetime, as_of: datetime
) -> list:
    moments = [archived, *(v.effective_at for v in history if archived < v.effective_at <= as_of)]
    return [terms_at(history, queue, m, DEFAULTS).retention.duration_for(REC) for m in moments]


@settings(max_examples=300, deadline=None)
@given(changes, queues, st.integers(0, 120), st.integers(0, 200), st.integers(0, 400))
def test_a_due_date_is_never_later_than_the_term_at_archive_nor_earlier_than_the_shortest_since(
    steps: list[tuple[int, str | None, str]], queue: str | None, start_d: int, archive_h: int, as_of_d: int
) -> None:
    history = build(steps)
    started = T0 + timedelta(days=start_d)
    archived = started + timedelta(hours=archive_h)
    as_of = archived + timedelta(days=as_of_d)

    dated = due_at(REC, started, archived, queue, history, DEFAULTS, as_of)

    at_archive = terms_at(history, queue, archived, DEFAULTS).retention.duration_for(REC)
    assert dated.due_at <= add_duration(started, at_archive, ZONE)
    shortest = min(add_duration(started, t, ZONE) for t in in_force_since(history, queue, archived, as_of))
    assert dated.due_at >= shortest
    assert dated.due_at >= min(add_duration(started, at_archive, ZONE), archived), "never before it was known"


@settings(max_examples=300, deadline=None)
@given(changes, queues, st.integers(0, 120), st.integers(0, 48), st.integers(0, 400))
def test_the_walk_never_misses_a_due_object_nor_claims_one_that_is_not(
    steps: list[tuple[int, str | None, str]], queue: str | None, start_d: int, archive_h: int, as_of_d: int
) -> None:
    history = build(steps)
    started = T0 + timedelta(days=start_d, hours=3)
    archived = started + timedelta(hours=archive_h)
    as_of = T0 + timedelta(days=as_of_d)
    if as_of < archived:
        return
    due = due_at(REC, started, archived, queue, history, DEFAULTS, as_of).due_at
    day = started.astimezone(UTC).date()

    verdict = period_due_within(day, day, terms_ever(REC, history, DEFAULTS), ZONE, as_of)

    if verdict is Due.NONE:
        assert due > as_of, "the walk skipped a day that holds a due object"
    if verdict is Due.ALL:
        assert due <= as_of, "the walk said all of a day was due when this object was not"


def test_the_version_in_force_and_the_defaults() -> None:
    history = build([(0, None, "P7D"), (10, "sales", "P3D")])
    assert version_at(history, T0 - timedelta(seconds=1)) is None
    assert terms_at(history, "sales", T0, DEFAULTS).retention.duration_for(REC) == CalendarDuration(days=7)
    later = T0 + timedelta(days=10)
    assert terms_at(history, "sales", later, DEFAULTS).retention.duration_for(REC) == CalendarDuration(days=3)
    assert terms_at(history, None, later, DEFAULTS).retention.duration_for(RetentionClass.METADATA) == (
        CalendarDuration(months=6)
    ), "a class the policy does not set keeps the default"


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        (Scope(terms={"recording": "PT1H"}), "shorter than the shortest allowed (P1D)"),
        (Scope(terms={"recording": "P11Y"}), "longer than the longest allowed (P10Y)"),
        (Scope(terms={"transcript": "P7D"}), "'transcript' is not a data class callvault keeps"),
        (Scope(terms={"recording": "7 days"}), "is not an ISO 8601 duration"),
        (Scope(grace="P2D"), "at most P1D"),
        (Scope(), "the change sets nothing"),
    ],
)
def test_a_change_that_cannot_be_made_is_refused_with_a_sentence(change: Scope, sentence: str) -> None:
    with pytest.raises(PolicyRefused, match=sentence.replace("(", r"\(").replace(")", r"\)")):
        next_version(
            [],
            "acme",
            change,
            None,
            changed_by="dpo",
            reason="r",
            changed_at=T0,
            effective_at=None,
            bounds=BOUNDS,
        )


def test_a_change_cannot_take_effect_in_the_past_or_before_the_last() -> None:
    history = build([(0, None, "P7D")])
    with pytest.raises(PolicyRefused, match="in the past"):
        next_version(
            history, "acme", Scope(terms={"recording": "P3D"}), None, changed_by="dpo", reason="r",
            changed_at=T0, effective_at=T0 - timedelta(days=1), bounds=BOUNDS,
        )  # fmt: skip
    future = next_version(
        history, "acme", Scope(terms={"recording": "P3D"}), None, changed_by="dpo", reason="r",
        changed_at=T0, effective_at=T0 + timedelta(days=9), bounds=BOUNDS,
    )  # fmt: skip
    with pytest.raises(PolicyRefused, match="cannot take effect before it"):
        next_version(
            [*history, future], "acme", Scope(terms={"recording": "P1M"}), None, changed_by="dpo",
            reason="r", changed_at=T0, effective_at=T0 + timedelta(days=2), bounds=BOUNDS,
        )  # fmt: skip


def test_a_version_replaced_at_the_instant_it_takes_effect_shortens_nothing() -> None:
    """P1D then P3D, both effective at one instant: P1D was never in force (hypothesis found it)."""
    history = build([(1, None, "P1D"), (0, None, "P3D")])
    dated = due_at(REC, T0, T0, None, history, DEFAULTS, T0 + timedelta(days=1))
    assert dated == Dated(T0 + timedelta(days=3), 2)
