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
    allowed_sites_at,
    cancel_version,
    due_at,
    most_days,
    next_versions,
    pending_versions,
    site_versions,
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
        history.extend(
            next_versions(
                history,
                "acme",
                Scope(terms={"recording": term}),
                queue,
                changed_by="dpo",
                reason="contract",
                changed_at=at,
                effective_at=at,
                bounds=BOUNDS,
                defaults=DEFAULTS,
            )  # fmt: skip
        )
    return history


def change(
    history: list[PolicyVersion], at: datetime, effective: datetime | None = None, queue: str | None = None,
    **terms: str | bool,
) -> list[PolicyVersion]:  # fmt: skip
    """The versions `policy set` makes at `at` (recording=False for --no-recording)."""
    allowed = terms.pop("recording_allowed", None)
    scope = Scope(terms={k: str(v) for k, v in terms.items()}, recording_allowed=allowed)
    return next_versions(
        history, "acme", scope, queue, changed_by="dpo", reason="r", changed_at=at, effective_at=effective,
        bounds=BOUNDS, defaults=DEFAULTS,
    )  # fmt: skip


def recording_term(history: list[PolicyVersion], at: datetime, queue: str | None = None) -> str:
    return str(terms_at(history, queue, at, DEFAULTS).retention.duration_for(REC))


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
        next_versions(
            [], "acme", change, None, changed_by="dpo", reason="r", changed_at=T0, effective_at=None,
            bounds=BOUNDS, defaults=DEFAULTS,
        )  # fmt: skip


def test_a_change_cannot_take_effect_in_the_past_and_a_lengthening_waits_for_a_pending_version() -> None:
    history = build([(0, None, "P7D")])
    with pytest.raises(PolicyRefused, match="in the past"):
        change(history, T0, T0 - timedelta(days=1), recording="P3D")
    history += change(history, T0, T0 + timedelta(days=9), recording="P3D")
    with pytest.raises(
        PolicyRefused, match=r"only a shorter term or --no-recording applies before it.*cancel"
    ):
        change(history, T0, T0 + timedelta(days=2), recording="P1M")
    with pytest.raises(PolicyRefused, match="version 2 takes effect at 2026-01-14T08:00:00Z"):
        change(history, T0, None, metadata="P1Y")


def test_a_change_further_ahead_than_the_lead_is_refused() -> None:
    """Issue 32: a version dated 9999 by mistake would stand pending for ever (on main it was taken)."""
    history = build([(0, None, "P7D")])
    (within,) = change(history, T0, T0 + timedelta(days=365), recording="P3D")
    assert within.version == 2
    with pytest.raises(PolicyRefused, match=r"further ahead than P1Y \(CALLVAULT_POLICY_MAX_LEAD\)"):
        change(history, T0, datetime(9999, 1, 1, tzinfo=UTC), recording="P3D")


MONTH = timedelta(days=30)


def test_a_shortening_applies_at_once_while_a_version_is_pending_and_holds_after_it() -> None:
    """Issue 32: on main a pending version refused every change ("change ... after it has")."""
    history = build([(0, None, "P1M")])
    history += change(history, T0, T0 + MONTH, recording="P3M", metadata="P1Y")  # a clause next month
    urgent = change(history, T0 + timedelta(days=1), recording="P7D")
    assert [(v.version, v.effective_at) for v in urgent] == [(3, T0 + MONTH), (4, T0 + timedelta(days=1))]
    assert urgent[0].change == {"carried_into": 2, "recording": "P7D"}
    history += urgent
    assert recording_term(history, T0 + timedelta(days=1)) == "P7D", "at once"
    assert recording_term(history, T0 + MONTH) == "P7D", "and after the pending version takes effect"
    assert str(
        terms_at(history, None, T0 + MONTH, DEFAULTS).retention.duration_for(RetentionClass.METADATA)
    ) == ("P1Y"), "the rest of the pending version stands"
    assert [v.version for v in pending_versions(history, T0 + timedelta(days=1))] == [3]


def test_a_shortening_leaves_a_pending_version_that_is_shorter_already() -> None:
    history = build([(0, None, "P1M")])
    history += change(history, T0, T0 + MONTH, recording="P3D")
    (only,) = change(history, T0 + timedelta(days=1), recording="P7D")
    assert only.effective_at == T0 + timedelta(days=1)
    history.append(only)
    assert recording_term(history, T0 + MONTH) == "P3D"


def test_no_recording_applies_at_once_while_a_version_is_pending() -> None:
    history = build([(0, None, "P1M")])
    history += change(history, T0, T0 + MONTH, recording="P2M")
    history += change(history, T0, recording_allowed=False)
    for at in (T0, T0 + MONTH, T0 + 2 * MONTH):
        assert not terms_at(history, None, at, DEFAULTS).recording_allowed
    with pytest.raises(PolicyRefused, match="only a shorter term"):
        change(history, T0, recording_allowed=True)


def test_a_site_withdrawn_while_a_version_is_pending_is_withdrawn_from_it_too() -> None:
    """Issue 32: on main deny-site answered "change the sites after it has"."""
    sites = site_versions([], "acme", "ma-rabat", True, changed_by="dpo", reason="asked", changed_at=T0)
    history = [*sites, *change(sites, T0, T0 + MONTH, recording="P7D")]
    assert allowed_sites_at(history, T0 + MONTH) == {"ma-rabat"}
    with pytest.raises(PolicyRefused, match="allow the site once it has, or cancel it first"):
        site_versions(history, "acme", "es-madrid", True, changed_by="dpo", reason="r", changed_at=T0)
    denied = site_versions(
        history, "acme", "ma-rabat", False, changed_by="dpo", reason="ended", changed_at=T0
    )
    history += denied
    for at in (T0, T0 + MONTH, T0 + 2 * MONTH):
        assert allowed_sites_at(history, at) == frozenset(), at
    assert recording_term(history, T0 + MONTH) == "P7D"
    with pytest.raises(PolicyRefused, match="nothing to deny"):
        site_versions(history, "acme", "ma-rabat", False, changed_by="dpo", reason="r", changed_at=T0)


def test_a_pending_version_is_cancelled_and_never_in_force() -> None:
    history = build([(0, None, "P1M")])
    history += change(history, T0, T0 + MONTH, recording="P3D")
    cancelling = cancel_version(history, "acme", 2, changed_by="dpo", reason="sent by mistake", changed_at=T0)
    assert (cancelling.version, cancelling.effective_at, cancelling.change) == (3, T0 + MONTH, {"cancels": 2})
    history.append(cancelling)
    assert recording_term(history, T0 + 2 * MONTH) == "P1M"
    archived = T0 + timedelta(days=1)
    assert due_at(REC, archived, archived, None, history, DEFAULTS, T0 + 2 * MONTH).policy_version == 1, (
        "the cancelled P3D never redates what was archived before it"
    )


@pytest.mark.parametrize(
    ("cancelled", "at", "sentence"),
    [
        (9, T0, "has no policy version 9"),
        (1, T0, "took effect at 2026-01-05T08:00:00Z: objects were dated by it"),
        (2, T0, "version 4 takes effect after version 2 and was built on it; cancel version 4 first"),
        (3, T0, "version 3 was replaced at its instant by version 4; cancel version 4"),
    ],
)
def test_what_cannot_be_cancelled_is_refused_with_a_sentence(
    cancelled: int, at: datetime, sentence: str
) -> None:
    history = build([(0, None, "P1M")])
    history += change(history, T0, T0 + MONTH, recording="P3M")
    history += change(history, T0, T0 + 2 * MONTH, recording="P2M")
    history += change(history, T0, T0 + 2 * MONTH, recording="P1M")
    with pytest.raises(PolicyRefused, match=sentence):
        cancel_version(history, "acme", cancelled, changed_by="dpo", reason="r", changed_at=at)


shortening = st.sampled_from(["P1D", "P3D", "P7D", "P14D"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), terms), max_size=5), st.integers(0, 100), shortening)
def test_a_shortening_holds_at_every_instant_after_it_whatever_was_pending(
    pending: list[tuple[int, str]], urgent_day: int, urgent: str
) -> None:
    """Whatever versions stand pending, a tightening to `urgent` at a day applies from that day on, at
    every later instant; and a later lengthening is never taken back in silence."""
    history = build([(0, None, "P1M")])
    for days, term in sorted(pending):
        try:
            history += change(history, T0, T0 + timedelta(days=days), recording=term)
        except PolicyRefused:
            continue  # a lengthening before another pending version: refused, as it must be
    at = T0 + timedelta(days=urgent_day)
    try:
        history += change(history, at, recording=urgent)
    except PolicyRefused:
        standing = CalendarDuration.parse(recording_term(history, at))
        assert most_days(CalendarDuration.parse(urgent)) > most_days(standing), (
            "refused only as a lengthening"
        )
        return
    for day in range(urgent_day, 240, 3):
        found = terms_at(history, None, T0 + timedelta(days=day), DEFAULTS).retention.duration_for(REC)
        assert most_days(found) <= most_days(CalendarDuration.parse(urgent)), (day, str(found))


def test_a_version_replaced_at_the_instant_it_takes_effect_shortens_nothing() -> None:
    """P1D then P3D, both effective at one instant: P1D was never in force (hypothesis found it)."""
    history = build([(1, None, "P1D"), (0, None, "P3D")])
    dated = due_at(REC, T0, T0, None, history, DEFAULTS, T0 + timedelta(days=1))
    assert dated == Dated(T0 + timedelta(days=3), 2)


def test_each_bound_may_itself_be_set_and_a_queue_is_a_queue_name() -> None:
    """Issue 33, item 7: on main the longest term (P10Y) could not be set, bounds being asymmetric;
    and `--queue 'Sales Q1'` was stored, never to match a call's queue."""
    for term in ("P1D", "P10Y"):
        (made,) = change([], T0, recording=term)
        assert made.tenant_rules.terms == {"recording": term}
    with pytest.raises(PolicyRefused, match="is not a queue name"):
        change([], T0, queue="Sales Q1", recording="P7D")


def test_a_bad_tenant_name_is_a_sentence_not_a_traceback() -> None:
    """Issue 33, item 7: on main `policy set` with a bad tenant printed pydantic's traceback."""
    from typer.testing import CliRunner

    from callvault.cli.errors import UserError
    from callvault.cli.main import app

    done = CliRunner().invoke(app, ["policy", "set", "Bad Tenant", "--recording", "P7D", "--reason", "r"])
    assert isinstance(done.exception, UserError), done.exception  # the entry point prints it, exit 2
    assert "'Bad Tenant' is not a tenant name" in str(done.exception)
