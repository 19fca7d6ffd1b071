"""Folding a call's events in any order, and what the worker must do next."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from callvault.contract.call_events import CallEnded, DisclosurePlayed, RecordingObjected, RecordingStored
from callvault.rules.call_state import (
    Archive,
    CallState,
    Nothing,
    Outcome,
    Reject,
    StartFacts,
    TenantConflict,
    Wait,
    apply_fact,
    evict_at,
    is_settled,
    metadata_ready,
    next_recording_step,
    source_retry_at,
    wake_at,
)
from callvault.rules.durations import CalendarDuration
from callvault.rules.retention import RetentionClass, RetentionPolicy

POLICY = RetentionPolicy(
    {
        RetentionClass.RECORDING: CalendarDuration(months=1),
        RetentionClass.METADATA: CalendarDuration(months=6),
    },
    ZoneInfo("Europe/Brussels"),
)
GRACE = timedelta(minutes=5)
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
NOW = START + timedelta(minutes=10)
SHA = "a" * 64


def _id() -> str:
    return str(uuid.uuid4())


def started() -> StartFacts:
    return StartFacts(event_id=_id(), call_id="c1", tenant="acme", occurred_at=START, direction="inbound",
                      caller="p" * 64, callee="q" * 64, agent_id="a1", language="nl-BE")  # fmt: skip


def disclosure(offset_s: float = 1, completed: bool = True) -> DisclosurePlayed:
    return DisclosurePlayed(event_id=_id(), call_id="c1", tenant="acme",
                            occurred_at=START + timedelta(seconds=offset_s), prompt_id="p",
                            language="nl-BE", completed=completed, duration_ms=4000)  # fmt: skip


def stored(start: datetime = START + timedelta(seconds=6)) -> RecordingStored:
    return RecordingStored(event_id=_id(), call_id="c1", tenant="acme", occurred_at=start,
                           source_uri="s3://staging-b/acme/c1.wav", sha256=SHA, size_bytes=10,
                           content_type="audio/wav", recording_started_at=start,
                           recording_ended_at=start + timedelta(minutes=3))  # fmt: skip


def ended() -> CallEnded:
    return CallEnded(event_id=_id(), call_id="c1", tenant="acme", occurred_at=START + timedelta(minutes=4),
                     duration_s=240)  # fmt: skip


def objected() -> RecordingObjected:
    return RecordingObjected(event_id=_id(), call_id="c1", tenant="acme", occurred_at=START)


def fold(*facts, now: datetime = NOW) -> CallState:  # noqa: ANN002
    state = None
    for f in facts:
        state, _ = apply_fact(state, f, now)
    assert state is not None
    return state


def test_a_repeated_event_id_is_ignored() -> None:
    d = disclosure()
    state, changed = apply_fact(None, d, NOW)
    again, changed_again = apply_fact(state, d, NOW)
    assert changed and not changed_again and again == state


def test_compliant_recording_is_archived_with_its_expiry() -> None:
    rec = stored()
    step = next_recording_step(fold(started(), disclosure(), rec), NOW, POLICY, GRACE)
    assert isinstance(step, Archive)
    assert step.expires_at == datetime(2026, 12, 24, 9, 0, 6, tzinfo=UTC)


def test_without_disclosure_it_waits_the_grace_then_rejects() -> None:
    state = fold(started(), stored(), now=NOW)
    assert next_recording_step(state, NOW, POLICY, GRACE) == Wait(NOW + GRACE)
    step = next_recording_step(state, NOW + GRACE, POLICY, GRACE)
    assert isinstance(step, Reject) and step.reason is Outcome.DISCLOSURE_MISSING


def test_the_grace_is_judged_at_when_the_message_was_sent_and_retention_at_the_clock() -> None:
    """A backlog read after the grace passed by the clock: a message sent within it is judged at
    its sending, so the disclosure a few records on is still awaited; a retention is never stretched."""
    state = fold(started(), stored(), now=NOW)
    later = NOW + GRACE + timedelta(minutes=30)
    assert next_recording_step(state, later, POLICY, GRACE, judged=NOW + timedelta(seconds=2)) == Wait(
        NOW + GRACE
    )
    step = next_recording_step(state, later, POLICY, GRACE, judged=NOW + GRACE)
    assert isinstance(step, Reject) and step.reason is Outcome.DISCLOSURE_MISSING
    # A sending time ahead of the clock judges nothing later than the clock.
    assert next_recording_step(state, NOW, POLICY, GRACE, judged=later) == Wait(NOW + GRACE)
    old = fold(disclosure(-40 * 86400), stored(START - timedelta(days=40)))
    step = next_recording_step(old, NOW, POLICY, GRACE, judged=START - timedelta(days=39))
    assert isinstance(step, Reject) and step.reason is Outcome.RETENTION_ELAPSED


TTL = timedelta(days=1)


def test_what_a_backlog_message_leaves_waiting_gets_a_wake_up() -> None:
    """A message sent within the grace, read after it passed by the clock, leaves the call waiting
    (the disclosure may be a few records on): the call's next wake-up is the grace's end, due as soon
    as the input is read that far. Judged by the clock, it got none: the grace was over, so only the
    call's eviction a month on was left (tests/faults/test_killed_worker.py: calls never rejected)."""
    state = fold(started(), stored(), ended(), now=NOW)
    later = NOW + GRACE + timedelta(seconds=30)
    sent = NOW + timedelta(seconds=2)
    assert next_recording_step(state, later, POLICY, GRACE, judged=sent) == Wait(NOW + GRACE)
    assert wake_at(state, later, POLICY, GRACE, TTL, judged=sent) == NOW + GRACE
    assert wake_at(state, later, POLICY, GRACE, TTL) != NOW + GRACE  # by the clock: nothing to wait for


@settings(max_examples=200, deadline=None)
@given(
    seen_s=st.integers(0, 600),
    sent_s=st.integers(0, 1200),
    clock_s=st.integers(0, 1200),
    disclosed=st.booleans(),
)
def test_a_call_left_waiting_always_has_a_wake_up_by_then(
    seen_s: int, sent_s: int, clock_s: int, disclosed: bool
) -> None:
    seen = NOW + timedelta(seconds=seen_s)
    facts = (started(), disclosure(), stored()) if disclosed else (started(), stored())
    state = fold(*facts, now=seen)
    now = seen + timedelta(seconds=clock_s)
    judged = seen + timedelta(seconds=sent_s)
    step = next_recording_step(state, now, POLICY, GRACE, judged=judged)
    if isinstance(step, Wait):
        wake = wake_at(state, now, POLICY, GRACE, TTL, judged=judged)
        assert wake is not None and wake <= step.until


def test_objection_wins_over_a_compliant_disclosure() -> None:
    step = next_recording_step(fold(disclosure(), objected(), stored()), NOW, POLICY, GRACE)
    assert isinstance(step, Reject) and step.reason is Outcome.OBJECTED


def test_a_subjects_objection_rejects_a_compliant_recording_and_names_the_participants() -> None:
    state = fold(started(), disclosure(), stored())
    assert state.participants == ("p" * 64, "q" * 64)
    assert isinstance(next_recording_step(state, NOW, POLICY, GRACE), Archive)
    step = next_recording_step(state, NOW, POLICY, GRACE, subject_objected=True)
    assert isinstance(step, Reject) and step.reason is Outcome.OBJECTED and "subject request" in step.detail


def test_retention_elapsed_on_arrival() -> None:
    old = stored(START - timedelta(days=40))
    step = next_recording_step(fold(disclosure(-40 * 86400), old), NOW, POLICY, GRACE)
    assert isinstance(step, Reject) and step.reason is Outcome.RETENTION_ELAPSED


def test_a_decided_recording_ignores_late_copies() -> None:
    state = fold(started(), disclosure(), stored()).model_copy(update={"recording_outcome": Outcome.ARCHIVED})
    again, _ = apply_fact(state, stored(), NOW)
    assert again.recording == state.recording
    assert isinstance(next_recording_step(again, NOW, POLICY, GRACE), Nothing)


def test_a_resend_after_a_checksum_mismatch_starts_over() -> None:
    state = fold(started(), disclosure(), stored()).model_copy(
        update={"recording_outcome": Outcome.CHECKSUM_MISMATCH}
    )
    resend = stored()
    again, _ = apply_fact(state, resend, NOW)
    assert again.recording == resend and again.recording_outcome is None
    assert isinstance(next_recording_step(again, NOW, POLICY, GRACE), Archive)


def test_source_retry_schedule_doubles_then_gives_up() -> None:
    b = timedelta(seconds=2)
    assert [source_retry_at(n, NOW, 3, b) for n in (1, 2, 3, 4)] == [NOW + b, NOW + 2 * b, NOW + 4 * b, None]


def test_metadata_waits_for_the_outcome_and_the_start() -> None:
    pending = fold(started(), stored(), ended())
    assert not metadata_ready(pending, NOW, GRACE)
    decided = pending.model_copy(update={"recording_outcome": Outcome.ARCHIVED, "recording_decided_at": NOW})
    assert metadata_ready(decided, NOW, GRACE)
    not_ended = fold(started(), stored()).model_copy(
        update={"recording_outcome": Outcome.ARCHIVED, "recording_decided_at": NOW}
    )
    assert not metadata_ready(not_ended, NOW, GRACE)
    assert metadata_ready(not_ended, NOW + GRACE, GRACE)
    no_start = fold(stored()).model_copy(
        update={"recording_outcome": Outcome.ARCHIVED, "recording_decided_at": NOW}
    )
    assert not metadata_ready(no_start, NOW, GRACE)
    assert metadata_ready(no_start, NOW + GRACE, GRACE)
    assert metadata_ready(fold(started(), ended()), NOW, GRACE)


def test_settled_calls_are_forgotten_after_the_ttl_and_others_at_the_recording_retention() -> None:
    ttl = timedelta(days=1)
    settled = fold(started(), ended()).model_copy(update={"metadata_sha256": SHA, "settled_at": NOW})
    assert is_settled(settled)
    assert evict_at(settled, POLICY, ttl) == NOW + ttl
    waiting = fold(started(), disclosure())
    assert evict_at(waiting, POLICY, ttl) == POLICY.expires_at(RetentionClass.RECORDING, START)


@settings(max_examples=60)
@given(
    st.permutations(["started", "disclosure", "stored", "ended"]),
    st.lists(st.sampled_from(["started", "disclosure", "stored", "ended"]), max_size=4),
)
def test_any_order_with_repeats_gives_the_same_step(order: list[str], repeats: list[str]) -> None:
    made = {"started": started(), "disclosure": disclosure(), "stored": stored(), "ended": ended()}
    reference = next_recording_step(fold(*made.values()), NOW, POLICY, GRACE)
    state = fold(*(made[n] for n in [*order, *repeats]))
    assert next_recording_step(state, NOW, POLICY, GRACE) == reference
    assert len(state.disclosures) == 1


def test_an_event_of_another_tenant_cannot_join_a_call() -> None:
    import pytest

    state = fold(started())
    other = disclosure().model_copy(update={"tenant": "globex"})
    with pytest.raises(TenantConflict, match="belongs to tenant 'acme'"):
        apply_fact(state, other, NOW)
