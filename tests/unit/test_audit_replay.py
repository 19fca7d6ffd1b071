"""The replay's rules: each planted violation is found with its evidence; a clean story has none."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from callvault.contract.fields import format_rfc3339
from callvault.rules.audit_replay import replay

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DUE = T0 + timedelta(days=31)
TOLERANCE = timedelta(minutes=5)


def _event(kind: str, at: datetime, call: str = "c1", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": str(uuid.uuid4()), "call_id": call, "tenant": "acme",
            "occurred_at": format_rfc3339(at), **fields}  # fmt: skip


def _story(
    call: str = "c1", *, disclosed: bool = True, deleted_after: timedelta | None = timedelta(seconds=4)
):
    rec = str(uuid.uuid4())
    key = f"acme/2026/03/01/{call}.wav"
    events = []
    if disclosed:
        events.append(_event("disclosure.verified", T0, call, recording_event_id=rec,
                             played_at=format_rfc3339(T0 - timedelta(seconds=5)),
                             recording_started_at=format_rfc3339(T0)))  # fmt: skip
    events.append(_event("recording.archived", T0, call, recording_event_id=rec, object={"key": key},
                         recording_started_at=format_rfc3339(T0),
                         expires_at=format_rfc3339(DUE)))  # fmt: skip
    if deleted_after is not None:
        gone = DUE + deleted_after
        events.append(_event("recording.deleted", gone, call, object={"key": key}, due_at=format_rfc3339(DUE),
                             deleted_at=format_rfc3339(gone)))  # fmt: skip
    return events


def _rules(events: list[dict[str, Any]], as_of: datetime = DUE + timedelta(days=2)) -> list[str]:
    return [v.rule for v in replay(events, as_of, TOLERANCE).violations]


def test_a_clean_story_has_no_violation_and_duplicates_count_once() -> None:
    events = _story() + _story("c2")
    result = replay(events + events[:2], DUE + timedelta(days=2), TOLERANCE)
    assert result.violations == []
    assert result.duplicates == 2 and result.compliance_rate("acme") == 1.0


def test_an_archive_without_disclosure_is_found_with_its_evidence() -> None:
    events = _story(disclosed=False)
    result = replay(events, DUE + timedelta(days=2), TOLERANCE)
    [violation] = result.violations
    assert violation.rule == "archived_without_disclosure"
    assert violation.evidence == (events[0]["event_id"],)


def test_a_late_deletion_is_found() -> None:
    assert _rules(_story(deleted_after=timedelta(hours=2))) == ["late_deletion"]


def test_a_hold_over_the_whole_overdue_time_excuses_lateness() -> None:
    events = _story(deleted_after=timedelta(days=1))
    placed = _event("legal_hold.placed", DUE - timedelta(days=3))
    released = _event("legal_hold.released", DUE + timedelta(hours=23, minutes=58))
    assert _rules([*events[:2], placed, released, events[2]]) == []


def test_a_deletion_during_a_hold_is_found() -> None:
    events = _story()
    placed = _event("legal_hold.placed", DUE - timedelta(days=1))
    assert _rules([*events[:2], placed, events[2]]) == ["deleted_during_hold"]


def test_another_tenants_hold_on_the_same_id_excuses_nothing() -> None:
    """A call is (tenant, call_id): beta's hold on its c1 says nothing of acme's c1."""
    events = _story(deleted_after=None)
    beta_hold = {**_event("legal_hold.placed", DUE - timedelta(days=1)), "tenant": "beta"}
    assert _rules([*events, beta_hold]) == ["not_deleted"]


def test_an_object_left_past_due_is_found_unless_held() -> None:
    events = _story(deleted_after=None)
    assert _rules(events) == ["not_deleted"]
    assert _rules([*events, _event("legal_hold.placed", DUE - timedelta(days=1))]) == []


def test_an_access_after_deletion_is_found() -> None:
    events = _story()
    access = _event(
        "recording.accessed", DUE + timedelta(days=1), accessed_by="coach", role="qa", purpose="qa"
    )
    assert _rules([*events, access]) == ["access_after_deletion"]


def test_reading_metadata_after_the_recording_is_deleted_is_allowed() -> None:
    events = _story()
    read = _event(
        "recording.accessed", DUE + timedelta(days=1), accessed_by="coach", role="qa", purpose="qa",
        what="metadata",
    )  # fmt: skip
    assert _rules([*events, read]) == []


def test_an_access_by_another_tenant_or_an_unentitled_role_is_found() -> None:
    events = _story(deleted_after=None)[:2]
    ok = {"accessed_by": "coach", "purpose": "qa", "granted_tenants": ["acme"]}
    before = DUE - timedelta(days=1)
    fine = _event("recording.accessed", before, role="qa", **ok)
    other = _event("recording.accessed", before, role="qa", **{**ok, "granted_tenants": ["globex"]})
    listened = _event("recording.accessed", before, role="auditor", what="audio", **ok)
    found = replay([*events, fine, other, listened], as_of=before, tolerance=timedelta(minutes=10))
    outside = [v for v in found.violations if v.rule == "access_outside_rights"]
    assert [v.evidence for v in outside] == [(other["event_id"],), (listened["event_id"],)]
    assert "globex" in outside[0].detail and "auditor" in outside[1].detail
