"""The disclosure rule: told at the start, or not compliant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from callvault.rules.disclosure import DisclosureDetail, DisclosureFact, disclosure_verdict

T0 = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def fact(offset_s: float, completed: bool = True, event_id: str = "e") -> DisclosureFact:
    return DisclosureFact(event_id, T0 + timedelta(seconds=offset_s), completed, "p1")


def test_no_disclosure() -> None:
    v = disclosure_verdict([], T0)
    assert not v.compliant and v.detail is DisclosureDetail.NONE


def test_completed_before_start_is_compliant() -> None:
    v = disclosure_verdict([fact(-5)], T0)
    assert v.compliant and v.evidence == fact(-5)


def test_at_the_very_start_is_compliant() -> None:
    assert disclosure_verdict([fact(0)], T0).compliant


def test_one_microsecond_after_start_is_not() -> None:
    late = DisclosureFact("e", T0 + timedelta(microseconds=1), True, "p1")
    assert disclosure_verdict([late], T0).detail is DisclosureDetail.AFTER_START


def test_interrupted_before_start_is_not() -> None:
    assert disclosure_verdict([fact(-5, completed=False)], T0).detail is DisclosureDetail.INCOMPLETE


def test_a_retry_that_completes_before_start_is_compliant() -> None:
    v = disclosure_verdict([fact(-9, completed=False, event_id="a"), fact(-4, event_id="b")], T0)
    assert v.compliant and v.evidence is not None and v.evidence.event_id == "b"


facts = st.builds(
    DisclosureFact,
    event_id=st.uuids().map(str),
    played_at=st.integers(-600, 600).map(lambda s: T0 + timedelta(seconds=s)),
    completed=st.booleans(),
    prompt_id=st.sampled_from(["p1", "p2"]),
)


@given(st.lists(facts, max_size=8), st.randoms())
def test_order_of_arrival_does_not_matter(items: list[DisclosureFact], rnd) -> None:  # noqa: ANN001
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert disclosure_verdict(items, T0) == disclosure_verdict(shuffled, T0)


@given(st.lists(facts, max_size=8))
def test_compliant_iff_some_completed_playback_began_by_the_start(items: list[DisclosureFact]) -> None:
    v = disclosure_verdict(items, T0)
    assert v.compliant == any(d.completed and d.played_at <= T0 for d in items)
    if v.compliant:
        assert v.evidence is not None and v.evidence.completed and v.evidence.played_at <= T0
    else:
        assert v.evidence is None


@given(st.lists(facts, max_size=8), facts)
def test_more_evidence_never_revokes_compliance(items: list[DisclosureFact], extra: DisclosureFact) -> None:
    if disclosure_verdict(items, T0).compliant:
        assert disclosure_verdict([*items, extra], T0).compliant


@given(st.lists(facts, max_size=8))
def test_duplicates_change_nothing(items: list[DisclosureFact]) -> None:
    assert disclosure_verdict(items + items, T0) == disclosure_verdict(items, T0)
