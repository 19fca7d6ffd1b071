"""The card-data verdict, pure: for generated timelines of pauses and payments, a recording is archivable
exactly when every payment instant the recording spans (with the margin) is paused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from callvault.rules.payments import Span, judge, pause_spans, payment_windows

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MARGIN = timedelta(seconds=2)
REC = Span(T0, T0 + timedelta(seconds=120))


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# Near the recording's ends too (-10..130 s around a 120 s recording): a window's margin reaching past
# the recording asks nothing of the pause there.
intervals = st.lists(
    st.tuples(st.integers(-10, 128), st.integers(1, 30)).map(lambda p: (p[0], p[0] + p[1])),
    max_size=4,
)


def _paused(t: float, spans: list[tuple[int, int]]) -> bool:
    return any(a <= t <= b for a, b in spans)


@settings(max_examples=1000, deadline=None)
@given(pauses=intervals, payments=intervals)
def test_archivable_exactly_when_every_paid_instant_is_paused(
    pauses: list[tuple[int, int]], payments: list[tuple[int, int]]
) -> None:
    pause_events = [(at(a), True) for a, _ in pauses] + [(at(b), False) for _, b in pauses]
    spans = pause_spans(pause_events, REC.end)  # type: ignore[arg-type]
    merged = [(int((s.start - T0).total_seconds()), int((s.end - T0).total_seconds())) for s in spans]  # type: ignore[operator]
    pay_events = [(at(a), True, f"p{i}") for i, (a, _) in enumerate(payments)]
    pay_events += [(at(b), False, f"p{i}") for i, (_, b) in enumerate(payments)]
    verdict = judge(
        spans, payment_windows(pay_events), margin=MARGIN, recording=REC, now=at(200), wait_until=at(200)
    )
    # The oracle, independent of the code: every half second of each window, widened by the margin and
    # cut to the recording, must lie in a pause (as the code merged them, pauses overlapping or touching).
    exposed = any(
        not _paused(t / 2, merged)
        for a, b in payments
        for t in range(2 * max(0, a - 2), 2 * min(120, b + 2) + 1)
        if not (b + 2 <= 0 or a - 2 >= 120)
    )
    assert verdict.archivable is not exposed, (pauses, payments, merged, verdict)


def test_the_outcome_of_each_case() -> None:
    def case(pauses: list[tuple[float, bool]], payments: list[tuple[float, bool]], now: float = 200) -> str:
        spans = pause_spans([(at(s), p) for s, p in pauses], REC.end)  # type: ignore[arg-type]
        windows = payment_windows([(at(s), p, None) for s, p in payments])
        return judge(spans, windows, margin=MARGIN, recording=REC, now=at(now), wait_until=at(150)).state

    assert case([], []) == "no_payment"
    assert case([(10, True), (50, False)], [(20, True), (40, False)]) == "secured"
    assert case([(10, True)], [(20, True), (40, False)]) == "secured", "a resume forgotten: paused to the end"
    assert case([(21, True), (50, False)], [(20, True), (40, False)]) == "exposed", "the pause came late"
    assert case([(10, True), (50, False)], [(20, True)], now=100) == "waiting"
    assert case([(10, True), (50, False)], [(20, True)], now=160) == "exposed", "no end within the grace"
    assert case([], [(200, True), (210, False)]) == "no_payment", "after the recording ended"
